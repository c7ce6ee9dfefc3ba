//! Deploy benchmark (not a test): how many round trips each deployer command takes, against a
//! fresh moto behind the recording proxy, with a fixed latency L added to every AWS call, so
//! that wall / L counts the calls made one after another ("rounds"). Run through
//! `scripts/bench.sh`; the results and how to read them are in docs/benchmarks.md.
//!
//! ```text
//! bench_deploy --artifact ZIP [--latency-ms 100] [--timings instant|fast|aws-like]
//!              [--steps cold,noop,again,code,config,down] [--baseline] [--repeat 1] [--concurrency N]
//!              [--before BIN] [--before-without BEHAVIOUR,...] [--log-dir DIR]
//! ```
//!
//! One series, on a fresh moto (warmed up: one read per service straight to moto, so its lazy
//! backend start-up is not counted), runs the steps in order on one stack:
//! - `cold`: `up` from nothing; `noop`: `up` again; `code`: `up` with another artifact (the
//!   `bootstrap` changed); `config`: `up` with `function.memory_mb` changed; `down`.
//!
//! Before the first step a `down` of the not-yet-existing stack creates the account's lock table
//! (one-time account setup, not the stack's work). Each step starts 12 s after the previous run
//! ended: within 10 s of the previous hold the deployer sweeps twice (`SETTLED`, lock.rs).
//!
//! - `--timings`: the strict model's windows ([`Timings`]): `instant` (default: no waits, AWS's
//!   API Gateway quotas) counts round trips; `aws-like` adds AWS's waits.
//! - `--baseline`: each series runs again with 0 ms, so that the deployer's local work (process
//!   start, reading the artifact, moto's own time) is subtracted: net rounds = (wall(L) - wall(0)) / L.
//! - `--repeat N`: every series N times; walls are medians.
//! - `--before BIN`: the same series with another deployer binary (the "before" column), with the
//!   strict model's `--before-without` behaviours off.
//! - `--log-dir DIR`: each step's deployer output and its AWS calls with their times.
//!
//! The deployer is `$MOVIES_STACK_BIN` or `<target>/debug/movies-stack` next to this binary.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::artifact::write_modified;
use e2e::inventory::Kind;
use e2e::proxy::Timed;
use e2e::strict::Timings;
use e2e::{Aws, Behaviour, Deployer, Moto, Output, Proxy, Rule, StackNames, TempDir, write_config};
use serde_json::Value;

/// Within this long after the previous run released the lock, the deployer sweeps again (lock.rs
/// `SETTLED`, 10 s, compared in whole seconds): the steps are spaced by more.
const GAP: Duration = Duration::from_secs(12);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
enum Step {
    Cold,
    Noop,
    /// A no-op `up` started as soon as the previous run ended (no spacing).
    Again,
    Code,
    Config,
    Down,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Cold => "cold",
            Step::Noop => "noop",
            Step::Again => "again",
            Step::Code => "code",
            Step::Config => "config",
            Step::Down => "down",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Step::Cold => "cold `up` (from nothing)",
            Step::Noop => "no-op `up`",
            Step::Again => "no-op `up` right after a run",
            Step::Code => "code-only change (`up`, new zip)",
            Step::Config => "config change (`up`, `function.memory_mb`)",
            Step::Down => "`down`",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Model {
    Instant,
    Fast,
    AwsLike,
}

impl Model {
    fn timings(self) -> Timings {
        match self {
            Model::Instant => Timings::instant(),
            Model::Fast => Timings::fast(),
            Model::AwsLike => Timings::aws_like(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Model::Instant => "instant",
            Model::Fast => "fast",
            Model::AwsLike => "aws-like",
        }
    }
}

/// Round trips and wall time of the deployer's runs against moto behind the strict model, with
/// a latency added to every call.
#[derive(clap::Parser)]
#[command(name = "bench_deploy")]
struct Args {
    /// The arm64 handler zip to deploy.
    #[arg(long)]
    artifact: PathBuf,
    /// Milliseconds added to every AWS call (L).
    #[arg(long = "latency-ms", default_value = "100", value_parser = parse_millis)]
    latency: Duration,
    /// The strict model's waits.
    #[arg(long = "timings", value_enum, default_value = "instant")]
    model: Model,
    /// The steps, in this order whatever the order given.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cold,noop,again,code,config,down")]
    steps: Vec<Step>,
    /// Each series again at 0 ms, for net rounds.
    #[arg(long)]
    baseline: bool,
    /// How many series (medians are reported).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    repeat: u16,
    /// The deployer's `--concurrency`.
    #[arg(long)]
    concurrency: Option<u16>,
    /// A deployer to measure first ("before").
    #[arg(long)]
    before: Option<PathBuf>,
    /// Strict-model behaviours the "before" deployer predates.
    #[arg(long = "before-without", value_delimiter = ',', value_parser = parse_behaviour)]
    before_without: Vec<Behaviour>,
    /// Where to write each run's stderr and call log.
    #[arg(long = "log-dir")]
    log_dir: Option<PathBuf>,
}

fn parse_millis(s: &str) -> Result<Duration, String> {
    s.parse().map(Duration::from_millis).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_behaviour(s: &str) -> Result<Behaviour, String> {
    Behaviour::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Behaviour::ALL.iter().map(|b| b.name()).collect();
        format!("{s:?} is not one of the strict model's behaviours: {}", names.join(", "))
    })
}

fn parse_args() -> Args {
    let mut a = <Args as clap::Parser>::parse();
    a.steps.sort();
    a.steps.dedup();
    a
}

/// One run of the deployer in a series.
struct Run {
    step: Step,
    out: Output,
    calls: Vec<Timed>,
    /// stdout's JSON, when the deployer printed one.
    json: Option<Value>,
}

impl Run {
    fn mutating(&self) -> usize {
        self.calls.iter().filter(|t| t.call.mutating && !t.call.is_lock()).count()
    }

    fn lock(&self) -> usize {
        self.calls.iter().filter(|t| t.call.is_lock()).count()
    }

    fn reads(&self) -> usize {
        self.calls.len() - self.mutating() - self.lock()
    }

    /// Answers 429 (API Gateway's quotas, from the strict model).
    fn throttled(&self) -> usize {
        self.calls.iter().filter(|t| t.call.status == Some(429)).count()
    }
}

/// Which deployer, and how the model treats it.
struct Subject {
    label: String,
    bin: PathBuf,
    without: Vec<Behaviour>,
}

/// One read per service, straight to moto (not through the proxy): moto builds a service's
/// backend on its first request (EC2's takes about a second), which is emulator start-up and not
/// the deployer's work.
async fn warm_up(moto: &Moto) {
    let aws = Aws::new(moto.url()).await;
    let _ = aws.ec2.describe_vpcs().send().await;
    let _ = aws.iam.list_roles().send().await;
    let _ = aws.lambda.list_functions().send().await;
    let _ = aws.dynamodb.list_tables().send().await;
    let _ = aws.apigateway.get_rest_apis().send().await;
    let _ = aws.logs.describe_log_groups().send().await;
}

/// Runs the steps on a fresh moto with `latency` on every call.
async fn series(args: &Args, subject: &Subject, latency: Duration, tag: &str) -> Vec<Run> {
    let moto = Moto::start();
    warm_up(&moto).await;
    let mut builder = Proxy::builder(moto.url()).timings(args.model.timings());
    for &b in &subject.without {
        builder = builder.without(b, "bench_deploy --before-without: the deployer measured predates this behaviour");
    }
    let proxy = builder.start();
    proxy.add_rule(Rule::new().delay(latency));
    let dir = TempDir::new("bench");
    let names = StackNames::unique("bench");
    let config = write_config(dir.path(), &names, &[]);
    let mut deployer = Deployer::with(&config, proxy.url());
    deployer.bin = subject.bin.clone();
    let artifact = args.artifact.display().to_string();
    let changed = dir.path().join("changed.zip");
    write_modified(&args.artifact, &changed, "bench_deploy: a code-only change");
    let changed = changed.display().to_string();
    let concurrency = args.concurrency.map(|c| c.to_string());
    let with_concurrency = |mut v: Vec<String>| {
        if let Some(c) = &concurrency {
            v.extend(["--concurrency".to_string(), c.clone()]);
        }
        v
    };

    // The account's lock table, made by a `down` that finds nothing.
    let prime = deployer.run(&["down", "--yes"]).await;
    assert_eq!(prime.code, 0, "the priming `down` failed:\n{prime}");
    let mut ended = Instant::now();
    let mut runs = Vec::new();
    for &step in &args.steps {
        let argv: Vec<String> = match step {
            Step::Cold | Step::Noop | Step::Again => {
                with_concurrency(vec!["up".into(), "--artifact".into(), artifact.clone()])
            }
            Step::Code => with_concurrency(vec!["up".into(), "--artifact".into(), changed.clone()]),
            Step::Config => {
                write_config(dir.path(), &names, &[("function.memory_mb", "512")]);
                with_concurrency(vec!["up".into(), "--artifact".into(), changed.clone()])
            }
            Step::Down => with_concurrency(vec!["down".into(), "--yes".into()]),
        };
        let mut all = vec!["--output".to_string(), "json".to_string()];
        all.extend(argv);
        if step != Step::Again {
            tokio::time::sleep(GAP.saturating_sub(ended.elapsed())).await;
        }
        proxy.reset();
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = deployer.run(&refs).await;
        ended = Instant::now();
        let calls = proxy.timeline();
        let json = serde_json::from_str(out.stdout.trim()).ok();
        if let Some(d) = &args.log_dir {
            let path = d.join(format!("{tag}-{}.log", step.name()));
            std::fs::write(&path, log_text(&out, &calls)).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
        assert_eq!(out.code, 0, "{} ({}) failed:\n{out}", step.title(), subject.label);
        eprintln!("  {tag} {:<6} {:>6.2}s {:>3} calls", step.name(), out.elapsed.as_secs_f64(), calls.len());
        runs.push(Run { step, out, calls, json });
    }
    runs
}

fn log_text(out: &Output, calls: &[Timed]) -> String {
    let lines: Vec<String> = calls
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let answered = t.answered.map(|a| format!("{:>8.3}", a.as_secs_f64())).unwrap_or_else(|| "       -".into());
            format!("{i:4} {:>8.3} {answered}  {}", t.arrived.as_secs_f64(), t.call)
        })
        .collect();
    format!("{out}\n--- AWS calls in arrival order: #, arrived s, answered s, call ---\n{}\n", lines.join("\n"))
}

/// The longest chain of calls in which each arrived after the previous one was answered: the
/// calls that were in fact made one after another (whether or not they had to be). Returns the
/// chain's indexes into `calls`, first to last.
fn sequential_chain(calls: &[Timed]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..calls.len()).filter(|&i| calls[i].answered.is_some()).collect();
    order.sort_by_key(|&i| calls[i].arrived);
    let mut depth: HashMap<usize, (usize, Option<usize>)> = HashMap::new();
    for (k, &i) in order.iter().enumerate() {
        // Of the calls answered before this one arrived: the deepest, and of those the last
        // answered (the likeliest reason this one waited).
        let before = order[..k].iter().filter(|&&j| calls[j].answered.is_some_and(|a| a <= calls[i].arrived));
        let best = before.max_by_key(|&&j| (depth[&j].0, calls[j].answered));
        depth.insert(i, best.map_or((1, None), |&j| (depth[&j].0 + 1, Some(j))));
    }
    let Some(mut at) = order.iter().copied().max_by_key(|i| (depth[i].0, calls[*i].answered)) else {
        return Vec::new();
    };
    let mut chain = vec![at];
    while let Some(prev) = depth[&at].1 {
        chain.push(prev);
        at = prev;
    }
    chain.reverse();
    chain
}

/// The time on a chain between an answer and the next call of the chain (local work, pacing,
/// polling back-off, waits of the model), from the first call on.
fn idle(calls: &[Timed], chain: &[usize]) -> Duration {
    chain.windows(2).map(|w| calls[w[1]].arrived.saturating_sub(calls[w[0]].answered.unwrap_or_default())).sum()
}

/// A node of the graph the deployer prints (`graph` in its JSON).
#[derive(Debug, Clone)]
struct GraphNode {
    name: String,
    kind: Kind,
    create_rounds: u32,
    deps: Vec<String>,
}

fn graph_of(json: &Value) -> Option<Vec<GraphNode>> {
    let nodes = json.get("graph")?.as_array()?;
    nodes
        .iter()
        .map(|n| {
            Some(GraphNode {
                name: n.get("resource")?.as_str()?.to_string(),
                kind: serde_json::from_value(n.get("kind")?.clone()).ok()?,
                create_rounds: u32::try_from(n.get("create_rounds")?.as_u64()?).ok()?,
                deps: n
                    .get("deps")?
                    .as_array()?
                    .iter()
                    .filter_map(|d| Some(d.get("on")?.as_str()?.to_string()))
                    .collect(),
            })
        })
        .collect()
}

/// What the strict model makes a cold `up` wait for, beyond the round trips (tests/src/strict/):
/// `own` inside a node's create, `before` between a dependency's create and the dependent's.
struct Waits {
    own: Duration,
    before: Duration,
}

/// The model's waits on `node`, given one of its dependencies `dep` (or none).
///
/// - The function and the flow log are refused while their role is fresh (CreateFunction,
///   CreateFlowLogs: `iam_propagation` after the role's last write), and so is the API Gateway
///   account's UpdateAccount inside its own create (after AttachRolePolicy).
/// - The table is `CREATING` (`table_creating`) and PITR cannot be enabled
///   (`pitr_unavailable`) from CreateTable on: both windows start together, the longer counts.
/// - A fresh security group is not found by its own rules' calls, nor a fresh subnet by the
///   route table's AssociateRouteTable (`ec2_not_found`).
/// - The function's `Pending`: nothing in the stack waits for it (existence, not readiness).
/// - API Gateway's quotas: a cold `up` calls each paced operation within its burst; a 429 would
///   show in the call log (reported).
fn model_waits(node: &GraphNode, dep: Option<&GraphNode>, t: &Timings) -> Waits {
    // Exhaustive: a new kind does not compile until the model says what it waits for.
    let own = match node.kind {
        Kind::Table => t.table_creating.max(t.pitr_unavailable),
        Kind::SecurityGroup => t.ec2_not_found,
        Kind::ApiGatewayAccount => t.iam_propagation,
        Kind::Vpc
        | Kind::Subnet
        | Kind::RouteTable
        | Kind::VpcEndpoint
        | Kind::FlowLog
        | Kind::IamRole
        | Kind::LogGroup
        | Kind::Function
        | Kind::FunctionAlias
        | Kind::RestApi
        | Kind::LambdaPermission
        | Kind::Stage
        | Kind::StageAccessLogs
        | Kind::UsagePlan
        | Kind::ApiKey
        | Kind::Alarm
        | Kind::WebAcl
        | Kind::WebAclAssociation => Duration::ZERO,
    };
    let before = match (dep.map(|d| d.kind), node.kind) {
        (Some(Kind::IamRole), Kind::Function | Kind::FlowLog) => t.iam_propagation,
        (Some(Kind::Subnet), Kind::RouteTable) => t.ec2_not_found,
        // PublishVersion waits for the function to leave Pending.
        (Some(Kind::Function), Kind::FunctionAlias) => t.lambda_pending,
        _ => Duration::ZERO,
    };
    Waits { own, before }
}

/// The model's critical path of a cold `up`: one round for the sweep, then the longest chain
/// through the graph where a node starts when each dependency has ended (plus the wait the model
/// puts between them) and costs `create_rounds` × L plus its own waits, then one round to
/// release the lock. With no waits it is (bound + 2) × L. Returns the duration and the chain.
fn model_path(graph: &[GraphNode], latency: Duration, t: &Timings) -> (Duration, Vec<String>) {
    let index: HashMap<&str, usize> = graph.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    // The graph comes in dependency order.
    let mut end: Vec<(Duration, Option<usize>)> = Vec::with_capacity(graph.len());
    for node in graph {
        let (start, via) = node
            .deps
            .iter()
            .filter_map(|d| index.get(d.as_str()).copied())
            .map(|j| (end[j].0 + model_waits(node, Some(&graph[j]), t).before, Some(j)))
            .max_by_key(|(s, _)| *s)
            .unwrap_or((Duration::ZERO, None));
        end.push((start + latency * node.create_rounds + model_waits(node, None, t).own, via));
    }
    let Some(mut at) = (0..graph.len()).max_by_key(|&i| end[i].0) else { return (latency * 2, Vec::new()) };
    let total = end[at].0 + latency * 2;
    let mut chain = vec![graph[at].name.clone()];
    while let Some(prev) = end[at].1 {
        chain.push(graph[prev].name.clone());
        at = prev;
    }
    chain.reverse();
    (total, chain)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.2}", a / b) } else { "-".into() }
}

fn row(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}

fn header(cells: &[&str], align: &[&str]) {
    row(&cells.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    row(&align.iter().map(|s| s.to_string()).collect::<Vec<_>>());
}

/// A subject's figures: every repetition's runs at L (and at 0 ms with `--baseline`).
struct Measured {
    subject: Subject,
    at_l: Vec<Vec<Run>>,
    at_zero: Vec<Vec<Run>>,
}

impl Measured {
    fn wall(&self, step: Step) -> Duration {
        median(self.at_l.iter().flat_map(|s| s.iter().filter(|r| r.step == step).map(|r| r.out.elapsed)).collect())
    }

    fn wall_zero(&self, step: Step) -> Option<Duration> {
        let v: Vec<Duration> =
            self.at_zero.iter().flat_map(|s| s.iter().filter(|r| r.step == step).map(|r| r.out.elapsed)).collect();
        (!v.is_empty()).then(|| median(v))
    }

    /// The first repetition's run of `step` (call counts are the same in every repetition).
    fn run(&self, step: Step) -> Option<&Run> {
        self.at_l.first()?.iter().find(|r| r.step == step)
    }
}

/// The bound of a step in rounds, from the deployer's JSON: the sweep, the longest chain of
/// create (or delete) calls, the lock's release.
fn bound_rounds(run: &Run) -> Option<u64> {
    let b = run.json.as_ref()?.get("bound")?;
    let n = b.get("create_rounds").or_else(|| b.get("delete_rounds"))?.as_u64()?;
    Some(n + 2)
}

/// The rounds a code update spends waiting for itself: the polls of the function after
/// UpdateFunctionCode on the sequential chain (with the time before each).
fn update_wait(run: &Run, chain: &[usize], l: f64) -> f64 {
    let Some(p) = chain.iter().position(|&i| run.calls[i].call.operation == "UpdateFunctionCode") else { return 0.0 };
    let answered = |k: usize| run.calls[chain[k]].answered.unwrap_or_default().as_secs_f64();
    (p + 1..chain.len())
        .filter(|&k| run.calls[chain[k]].call.name() == "lambda GetFunction")
        .map(|k| (answered(k) - answered(k - 1)) / l)
        .sum()
}

/// What publishing a change adds to a code-only `up`: PublishVersion, then UpdateAlias.
const VERSION_ROUNDS: f64 = 2.0;

/// The issue's goal for a step, checked against the net rounds (`net`, with a baseline) or else
/// wall / L (`rounds`).
fn verdict(
    step: Step,
    rounds: f64,
    net: Option<f64>,
    bound: Option<u64>,
    run: &Run,
    chain: &[usize],
    l: f64,
) -> String {
    let check = |ok: bool, how: String| format!("{}: {how}", if ok { "met" } else { "**not met**" });
    let r = net.unwrap_or(rounds);
    match (step, bound) {
        (Step::Cold, Some(b)) => {
            let max = 1.25 * b as f64;
            check(r <= max, format!("{r:.1} vs ≤ 1.25 × {b} = {max:.1}"))
        }
        (Step::Noop | Step::Again, _) => {
            check(r <= 3.0 && run.mutating() == 0, format!("{r:.1} vs ≤ 3 rounds, {} mutating", run.mutating()))
        }
        // Issue 9's 4 rounds, plus the version a change is published as and the alias moved to it
        // (issue 20: PublishVersion, UpdateAlias), plus the update's own wait.
        (Step::Code, _) => {
            let wait = update_wait(run, chain, l);
            check(
                r <= 4.0 + VERSION_ROUNDS + wait,
                format!(
                    "{r:.1} vs ≤ 4 + {VERSION_ROUNDS} (the version, the alias) + {wait:.1} (the update's own wait)"
                ),
            )
        }
        (Step::Down, Some(b)) => {
            let max = 1.25 * b as f64;
            match net {
                // AWS's fixed waits (API Gateway pacing, ENIs) take as long at 0 ms: already out.
                Some(n) => check(n <= max, format!("{n:.1} vs ≤ 1.25 × {b} = {max:.1}")),
                // Without a baseline: the idle time on the chain stands for them (with some local work).
                None => {
                    let waits = idle(&run.calls, chain).as_secs_f64() / l;
                    check(
                        rounds - waits <= max,
                        format!("{rounds:.1} − {waits:.1} idle = {:.1} vs ≤ 1.25 × {b} = {max:.1}", rounds - waits),
                    )
                }
            }
        }
        (Step::Config, _) => "no goal".into(),
        (_, None) => "no bound (the deployer does not print one)".into(),
    }
}

fn report(args: &Args, m: &Measured) {
    let l = args.latency.as_secs_f64();
    println!(
        "\n### {} (`{}`): {} ms per AWS call, `--timings {}`, {} repetition(s)\n",
        m.subject.label,
        m.subject.bin.file_name().map(|f| f.to_string_lossy()).unwrap_or_default(),
        args.latency.as_millis(),
        args.model.name(),
        args.repeat
    );
    if !m.subject.without.is_empty() {
        let names: Vec<&str> = m.subject.without.iter().map(|b| b.name()).collect();
        println!("Strict model behaviours turned off for this deployer: {}.\n", names.join(", "));
    }
    header(
        &[
            "run",
            "wall s",
            "wall s at 0 ms",
            "rounds (wall / L)",
            "net rounds",
            "bound",
            "net / bound",
            "calls",
            "mutating",
            "reads",
            "lock",
            "sequential calls",
            "idle on them s",
            "goal",
        ],
        &["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---"],
    );
    for &step in &args.steps {
        let Some(run) = m.run(step) else { continue };
        let wall = m.wall(step);
        let zero = m.wall_zero(step);
        let rounds = wall.as_secs_f64() / l;
        let net = zero.map(|z| (wall.as_secs_f64() - z.as_secs_f64()) / l);
        let bound = bound_rounds(run).filter(|_| matches!(step, Step::Cold | Step::Down));
        let chain = sequential_chain(&run.calls);
        row(&[
            step.title().into(),
            secs(wall),
            zero.map(secs).unwrap_or_else(|| "-".into()),
            format!("{rounds:.1}"),
            net.map(|n| format!("{n:.1}")).unwrap_or_else(|| "-".into()),
            bound.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
            match (net, bound) {
                (Some(n), Some(b)) => ratio(n, b as f64),
                _ => "-".into(),
            },
            run.calls.len().to_string(),
            run.mutating().to_string(),
            run.reads().to_string(),
            run.lock().to_string(),
            chain.len().to_string(),
            secs(idle(&run.calls, &chain)),
            match args.model {
                // With waits, a cold `up` is held to the model's critical path (below), not to rounds.
                Model::Fast | Model::AwsLike if step == Step::Cold => "against the model's critical path, below".into(),
                _ => verdict(step, rounds, net, bound, run, &chain, l),
            },
        ]);
    }
    println!(
        "\n*rounds* = wall / L; *net rounds* = (wall − wall at 0 ms) / L; *bound* = 1 (sweep) + the longest chain of \
         create (delete) calls in the graph + 1 (lock release); *sequential calls* = the longest chain of calls in the \
         log each of which arrived after the previous one was answered; *idle on them* = the time between an answer on that \
         chain and its next call (local work, pacing, back-off)."
    );
    let throttled: usize = args.steps.iter().filter_map(|&s| m.run(s)).map(Run::throttled).sum();
    if throttled > 0 {
        println!("\nAPI Gateway answered 429 to {throttled} call(s).");
    }

    for &step in &args.steps {
        let Some(run) = m.run(step) else { continue };
        println!("\n#### {}\n", step.title());
        if let Some(json) = &run.json {
            // The bound is about creating (deleting) the stack: only cold `up` and `down` have one.
            if let Some(b) = json.get("bound").filter(|_| matches!(step, Step::Cold | Step::Down)) {
                let chain: Vec<&str> =
                    b.get("chain").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
                println!("- bound's chain: {}", chain.join(" → "));
            }
            if let Some(path) = json.get("critical_path").and_then(Value::as_array) {
                let declared: HashMap<String, u32> = match (step, graph_of(json)) {
                    (Step::Cold, Some(g)) => g.into_iter().map(|n| (n.name, n.create_rounds)).collect(),
                    _ => HashMap::new(),
                };
                let steps: Vec<String> = path
                    .iter()
                    .filter_map(|s| {
                        let ms = |k: &str| s.get(k)?.as_u64();
                        let name = s.get("resource")?.as_str()?;
                        let (start, end) = (ms("start_ms")? as f64 / 1000.0 / l, ms("end_ms")? as f64 / 1000.0 / l);
                        let declared = declared.get(name).map(|d| format!(", declares {d}")).unwrap_or_default();
                        Some(format!("{name} ({start:.1}–{end:.1}: {:.1}{declared})", end - start))
                    })
                    .collect();
                println!(
                    "- critical path the executor followed (rounds from the start of its phase: start–end: length): {}",
                    steps.join(" → ")
                );
            }
        }
        let chain = sequential_chain(&run.calls);
        let links: Vec<String> = chain
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let t = &run.calls[i];
                let gap = match k {
                    0 => t.arrived,
                    _ => t.arrived.saturating_sub(run.calls[chain[k - 1]].answered.unwrap_or_default()),
                };
                let gap =
                    if gap.as_secs_f64() >= 0.2 * l { format!(" (+{:.2}s)", gap.as_secs_f64()) } else { String::new() };
                format!("{}{gap}", t.call.name())
            })
            .collect();
        println!(
            "- the {} calls made one after another (+gap: time between the previous answer and this call, when over \
             0.2 L):\n  {}",
            chain.len(),
            links.join(" → ")
        );
    }
}

/// Cold `up` against the model's critical path. `graph`: the stack's graph as the deployer that
/// prints one reports it (the same stack for a deployer that does not).
fn report_model(args: &Args, m: &Measured, graph: &[GraphNode]) {
    if m.run(Step::Cold).is_none() {
        return;
    }
    let t = args.model.timings();
    let (path, chain) = model_path(graph, args.latency, &t);
    let wall = m.wall(Step::Cold);
    let max = 1.10; // issue 23 (was 1.15)
    let r = wall.as_secs_f64() / path.as_secs_f64();
    println!(
        "\nCold `up` under `--timings {}` ({}): wall {} s; the model's critical path {} s ({}); wall / path = {r:.2} \
         (goal ≤ {max}: {})",
        args.model.name(),
        m.subject.label,
        secs(wall),
        secs(path),
        chain.join(" → "),
        if r <= max { "met" } else { "**not met**" }
    );
    if let Some(zero) = m.wall_zero(Step::Cold) {
        // At 0 ms both are the waits alone: how much longer the deployer waits than the model makes it.
        let (waits, _) = model_path(graph, Duration::ZERO, &t);
        println!(
            "At 0 ms: wall {} s; the model's waits alone {} s: {}",
            secs(zero),
            secs(waits),
            ratio(zero.as_secs_f64(), waits.as_secs_f64())
        );
    }
}

fn report_operations(args: &Args, measured: &[Measured]) {
    println!("\n### Calls by operation (first repetition at L; (m): mutating)\n");
    let mut cols: Vec<String> = vec!["operation".into()];
    let mut counts: Vec<BTreeMap<String, usize>> = Vec::new();
    for m in measured {
        for &step in &args.steps {
            let Some(run) = m.run(step) else { continue };
            cols.push(if measured.len() > 1 {
                format!("{} {}", m.subject.label, step.name())
            } else {
                step.name().into()
            });
            let mut c = BTreeMap::new();
            for t in &run.calls {
                let lock = if t.call.is_lock() { " [lock]" } else { "" };
                let m = if t.call.mutating { " (m)" } else { "" };
                *c.entry(format!("{}{m}{lock}", t.call.name())).or_insert(0) += 1;
            }
            counts.push(c);
        }
    }
    let mut ops: Vec<&String> = counts.iter().flat_map(|c| c.keys()).collect();
    ops.sort();
    ops.dedup();
    let mut align = vec!["---".to_string()];
    align.extend(std::iter::repeat_n("---:".to_string(), cols.len() - 1));
    row(&cols);
    row(&align);
    for op in ops {
        let mut cells = vec![op.clone()];
        cells.extend(counts.iter().map(|c| c.get(op).map(|n| n.to_string()).unwrap_or_default()));
        row(&cells);
    }
}

fn report_before_after(args: &Args, before: &Measured, after: &Measured) {
    let l = args.latency.as_secs_f64();
    println!("\n### Before / after ({} ms per call)\n", args.latency.as_millis());
    header(
        &[
            "run",
            "calls before",
            "calls after",
            "rounds before",
            "rounds after",
            "net rounds before",
            "net rounds after",
        ],
        &["---", "---:", "---:", "---:", "---:", "---:", "---:"],
    );
    for &step in &args.steps {
        let (Some(b), Some(a)) = (before.run(step), after.run(step)) else { continue };
        let net = |m: &Measured| {
            m.wall_zero(step)
                .map(|z| format!("{:.1}", (m.wall(step).as_secs_f64() - z.as_secs_f64()) / l))
                .unwrap_or_else(|| "-".into())
        };
        row(&[
            step.title().into(),
            b.calls.len().to_string(),
            a.calls.len().to_string(),
            format!("{:.1}", before.wall(step).as_secs_f64() / l),
            format!("{:.1}", after.wall(step).as_secs_f64() / l),
            net(before),
            net(after),
        ]);
    }
}

async fn measure(args: &Args, subject: Subject) -> Measured {
    eprintln!("{}: {}", subject.label, subject.bin.display());
    let mut m = Measured { subject, at_l: Vec::new(), at_zero: Vec::new() };
    for rep in 0..args.repeat {
        eprintln!("{}: repetition {} of {}", m.subject.label, rep + 1, args.repeat);
        let tag = |ms: u128| format!("{}-r{rep}-{ms}ms", m.subject.label.replace(' ', "_"));
        m.at_l.push(series(args, &m.subject, args.latency, &tag(args.latency.as_millis())).await);
        if args.baseline {
            m.at_zero.push(series(args, &m.subject, Duration::ZERO, &tag(0)).await);
        }
    }
    m
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = parse_args();
    args.artifact = args.artifact.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", args.artifact.display()));
    if let Some(d) = &args.log_dir {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
    }
    let started = Instant::now();
    let current = Deployer::new().bin;
    let mut measured = Vec::new();
    if let Some(bin) = &args.before {
        let subject = Subject { label: "before".into(), bin: bin.clone(), without: args.before_without.clone() };
        measured.push(measure(&args, subject).await);
    }
    let subject = Subject { label: "after".into(), bin: current, without: Vec::new() };
    measured.push(measure(&args, subject).await);

    let graph = measured.iter().rev().filter_map(|m| m.run(Step::Cold)?.json.as_ref().and_then(graph_of)).next();
    for m in &measured {
        report(&args, m);
        // With no waits the model's path is the bound itself, already in the table.
        match &graph {
            _ if args.model == Model::Instant => {}
            Some(g) => report_model(&args, m, g),
            None if args.steps.contains(&Step::Cold) => {
                println!("\n(no `graph` in any deployer's JSON: no model critical path)")
            }
            None => {}
        }
    }
    report_operations(&args, &measured);
    if let [before, after] = measured.as_slice() {
        report_before_after(&args, before, after);
    }
    eprintln!("bench_deploy: {:.0}s in all", started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use e2e::Call;

    fn timed(op: &str, arrived: u64, answered: u64) -> Timed {
        Timed {
            call: Call {
                service: "ec2".into(),
                operation: op.into(),
                mutating: false,
                status: Some(200),
                injected: false,
                model: None,
                table: None,
            },
            arrived: Duration::from_millis(arrived),
            answered: Some(Duration::from_millis(answered)),
        }
    }

    #[test]
    fn the_sequential_chain_follows_answers_to_later_calls() {
        // a and b at once; c after a; d after c and b; e overlaps everything.
        let calls =
            [timed("a", 0, 100), timed("b", 0, 150), timed("c", 110, 210), timed("d", 220, 320), timed("e", 50, 300)];
        let chain: Vec<&str> = sequential_chain(&calls).iter().map(|&i| calls[i].call.operation.as_str()).collect();
        assert_eq!(chain, ["a", "c", "d"]);
        assert!(sequential_chain(&[]).is_empty());
    }

    fn node(name: &str, kind: Kind, rounds: u32, deps: &[&str]) -> GraphNode {
        GraphNode { name: name.into(), kind, create_rounds: rounds, deps: deps.iter().map(|d| d.to_string()).collect() }
    }

    #[test]
    fn the_model_path_adds_the_waits_to_the_rounds() {
        let l = Duration::from_millis(100);
        let graph = [
            node("role", Kind::IamRole, 2, &[]),
            node("function", Kind::Function, 1, &["role"]),
            node("table", Kind::Table, 4, &[]),
        ];
        // No waits: the longest chain of rounds (3) plus the sweep and the release.
        let (path, chain) = model_path(&graph, l, &Timings::instant());
        assert_eq!((path, chain), (l * 6, vec!["table".to_string()]));
        // AWS-like: the role's 8 s before the function beat the table's 10 s only by rounds.
        let t = Timings::aws_like();
        let (path, chain) = model_path(&graph, l, &t);
        assert_eq!(path, l * 6 + t.table_creating);
        assert_eq!(chain, ["table"]);
        let mut slow_iam = t;
        slow_iam.iam_propagation = Duration::from_secs(30);
        let (path, chain) = model_path(&graph, l, &slow_iam);
        assert_eq!(path, l * 5 + Duration::from_secs(30));
        assert_eq!(chain, ["role", "function"]);
    }

    #[test]
    fn the_api_gateway_account_waits_for_iam_inside_its_own_create() {
        // UpdateAccount is refused until the new role has propagated (after AttachRolePolicy).
        let l = Duration::from_millis(100);
        let graph =
            [node("apigw-account", Kind::ApiGatewayAccount, 4, &[]), node("stage", Kind::Stage, 2, &["apigw-account"])];
        let t = Timings::aws_like();
        let (path, chain) = model_path(&graph, l, &t);
        assert_eq!(path, l * 8 + t.iam_propagation);
        assert_eq!(chain, ["apigw-account", "stage"]);
    }
}
