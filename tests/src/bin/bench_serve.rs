//! `movies-stack serve` benchmark (not a test): requests per second and latency through the local
//! API Gateway with 1 and 4 execution environments, and what the gateway adds over invoking the
//! same `bootstrap` through a Lambda Runtime API directly. Run through `scripts/bench.sh`.
//!
//! ```text
//! bench_serve --bootstrap PATH --artifact ZIP [--requests N] [--clients C] [--wrk-seconds S] [--wrk-only]
//! ```
//!
//! - A stack is deployed into a fresh moto (through the recording proxy) with a Premium plan too
//!   large to throttle; the benchmark calls with the Premium key.
//! - The function's DynamoDB `PutItem` is answered `{}` at once by the proxy (a reply rule):
//!   moto's own latency is not the gateway's.
//! - Each row: `N` requests from `C` client threads (one keep-alive connection each, closed loop),
//!   latency measured by the client (request written → answer read).
//! - `GET /` is answered 405 by the handler without a DynamoDB call: the gateway's whole path
//!   (key, usage plan, event, Runtime API, response mapping, access log) plus the handler's
//!   routing. `POST /` adds the handler's PutItem.
//! - Direct: the same `bootstrap` under the suite's Runtime API server ([`RuntimeApi`]), the
//!   fixture event invoked sequentially, latency from queueing the event to its result.
//! - Load generator: `wrk` (Debian's package; `scripts/bench.sh` installs it) against one `serve`
//!   (4 environments, the default), `POST /` with the Premium key, `S` seconds at 1, 8 and 64
//!   connections (2 threads; 1 for 1 connection), after a warm-up at 64; a Lua script counts the
//!   answers by status and reads wrk's latency percentiles. Any answer but 200 or 429, or any
//!   socket error, fails the run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::artifact::artifact_path;
use e2e::bench::{Stats, fixture_event, ms, row};
use e2e::runtime_api::{Outcome, RuntimeApi};
use e2e::{Deployer, Function, LoadStack, Proxy, Rule, Serve, StackNames, TempDir};

const WARMUP: usize = 50;
const MOVIE: &str = r#"{"year":"2023","title":"Bench Movie","id":"bench"}"#;

/// `movies-stack serve` under load: its overhead over the handler, and wrk's figures.
#[derive(clap::Parser)]
#[command(name = "bench_serve")]
struct Args {
    /// The host build of the handler's `bootstrap`.
    #[arg(long)]
    bootstrap: PathBuf,
    /// The arm64 zip deployed into moto (default: the suite's).
    #[arg(long)]
    artifact: Option<PathBuf>,
    /// Requests measured after the warm-up (at least `--clients`).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Concurrent keep-alive clients (at least 1).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    clients: u64,
    /// How long wrk runs at each connection count.
    #[arg(long, default_value_t = 10)]
    wrk_seconds: u64,
    /// Only wrk's figures.
    #[arg(long)]
    wrk_only: bool,
}

fn parse_args() -> Args {
    let args = <Args as clap::Parser>::parse();
    if (args.requests as u64) < args.clients {
        <Args as clap::CommandFactory>::command()
            .error(clap::error::ErrorKind::ValueValidation, "--requests must be at least --clients")
            .exit();
    }
    args
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    out: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(base: &str) -> Client {
        let stream = TcpStream::connect(base.trim_start_matches("http://")).expect("connect to serve");
        stream.set_nodelay(true).expect("nodelay");
        Client { out: stream.try_clone().expect("clone"), reader: BufReader::new(stream) }
    }

    /// One request; its status.
    fn call(&mut self, method: &str, path: &str, key: &str, body: &str) -> u16 {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: bench\r\nx-api-key: {key}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.out.write_all(req.as_bytes()).expect("write request");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut len = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header line");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).expect("body");
        status
    }
}

/// A closed-loop load: `n` requests from `clients` threads, each answer expected to be `status`.
#[derive(Clone)]
struct Load {
    method: &'static str,
    body: &'static str,
    status: u16,
    clients: usize,
    n: usize,
}

/// Run `load` against `base` + `path` with `key`: the latencies and the wall time.
fn run(base: &str, path: &str, key: &str, load: &Load) -> (Stats, Duration) {
    let Load { method, body, status, clients, n } = load.clone();
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (base, path, key) = (base.to_string(), path.to_string(), key.to_string());
            let share = n / clients + usize::from(c < n % clients);
            std::thread::spawn(move || {
                let mut client = Client::connect(&base);
                (0..share)
                    .map(|i| {
                        let t = Instant::now();
                        let got = client.call(method, &path, &key, body);
                        assert_eq!(got, status, "{method} {path}, request {i} of client {c}");
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let samples: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().expect("client thread")).collect();
    (Stats::new(samples), start.elapsed())
}

fn rps(n: usize, wall: Duration) -> String {
    format!("{:.0}", n as f64 / wall.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    let bootstrap = args.bootstrap.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", args.bootstrap.display()));
    let artifact = args.artifact.clone().unwrap_or_else(artifact_path);
    let (n, clients) = (args.requests, usize::try_from(args.clients).expect("a client count"));

    // `_moto` (not `_`): moto runs until the end of the function.
    let LoadStack { deployer, names, dir, proxy, moto: _moto } = LoadStack::deploy("bench-serve", &artifact).await;
    let keys = deployer.run(&["--output", "json", "keys", "--tier", "premium"]).await;
    keys.assert_ok();
    let key = keys.json()["keys"]["premium"]["value"].as_str().expect("premium key value").to_string();
    proxy.add_rule(Rule::new().service("dynamodb").operation("PutItem").reply(200, "application/x-amz-json-1.0", "{}"));

    println!("bootstrap under test: {}", bootstrap.display());
    let premium_key = key.clone();
    if !args.wrk_only {
        closed_loop(&deployer, &dir, &bootstrap, &key, &names, &proxy, n, clients).await;
    }
    load_generator(&deployer, &dir, &bootstrap, &premium_key, args.wrk_seconds).await;
}

/// The closed-loop rows (our own client), then the direct invocations.
#[allow(clippy::too_many_arguments)]
async fn closed_loop(
    deployer: &Deployer,
    dir: &TempDir,
    bootstrap: &std::path::Path,
    key: &str,
    names: &StackNames,
    proxy: &Proxy,
    n: usize,
    clients: usize,
) {
    println!(
        "\n### Through `movies-stack serve` (debug build): {n} requests per row, after {WARMUP} warm-up; client-side latency\n"
    );
    row(&["environments".into(), "clients".into(), "request".into(), "req/s".into(), "p50 ms".into(), "p99 ms".into()]);
    row(&["---:".into(), "---:".into(), "---".into(), "---:".into(), "---:".into(), "---:".into()]);
    let mut serve_seq_p50 = Duration::ZERO;
    let mut started = Vec::new();
    for envs in [1usize, 4] {
        let serve = Serve::start(deployer, dir.path(), bootstrap, &["--concurrency", &envs.to_string()]).await;
        let base = serve.base.clone();
        let path = format!("{}/", serve.stage_path);
        let key = key.to_string();
        let get = |clients, n| Load { method: "GET", body: "", status: 405, clients, n };
        let loads = [get(1, n), get(clients, n), Load { method: "POST", body: MOVIE, status: 200, clients, n }];
        let rows = tokio::task::spawn_blocking(move || {
            run(&base, &path, &key, &get(1, WARMUP));
            loads.into_iter().map(|l| (run(&base, &path, &key, &l), l)).collect::<Vec<_>>()
        })
        .await
        .expect("load threads");
        for ((stats, wall), l) in rows {
            if envs == 1 && l.clients == 1 {
                serve_seq_p50 = stats.median();
            }
            let what = if l.method == "GET" {
                "GET / → 405 (no DynamoDB call)"
            } else {
                "POST / → 200 (PutItem answered at once)"
            };
            row(&[
                envs.to_string(),
                l.clients.to_string(),
                what.into(),
                rps(n, wall),
                ms(stats.median()),
                ms(stats.pct(99)),
            ]);
        }
        started.push(format!("{} of {envs} allowed", serve.count("started (pid")));
        let (code, stderr) = serve.stop().await;
        assert_eq!(code, Some(0), "serve's exit code:\n{stderr}");
    }
    println!("\nEnvironments started: {}.", started.join("; "));

    // The same bootstrap, invoked directly through a Runtime API, sequentially.
    let api = RuntimeApi::start(&names.function);
    let mut func = Function::spawn(bootstrap, &api, &[("TABLE_NAME", &names.table), ("AWS_ENDPOINT_URL", proxy.url())]);
    api.wait_for_poll(1, Duration::from_secs(10)).await.expect("first poll");
    let mut direct = Vec::new();
    for (method, body, status) in [("GET", "", 405), ("POST", MOVIE, 200)] {
        let event = fixture_event(method, body);
        let mut samples = Vec::with_capacity(n);
        let start = Instant::now();
        for i in 0..WARMUP + n {
            let t = Instant::now();
            let done = api.invoke(event.clone(), Duration::from_secs(30)).await.expect("an answer within 30 s");
            let Outcome::Response(_) = &done.outcome else { panic!("invocation {i} failed: {:?}", done.outcome) };
            assert_eq!(done.response_json()["statusCode"].as_u64(), Some(status), "{method} invocation {i}");
            if i >= WARMUP {
                samples.push(t.elapsed());
            }
        }
        direct.push((method, Stats::new(samples), start.elapsed()));
    }
    func.stop();
    println!(
        "\n### Direct: the same `bootstrap` under a Runtime API, {n} sequential invocations, after {WARMUP} warm-up\n"
    );
    row(&["event".into(), "inv/s".into(), "p50 ms".into(), "p99 ms".into()]);
    row(&["---".into(), "---:".into(), "---:".into(), "---:".into()]);
    for (method, stats, wall) in &direct {
        row(&[format!("{method} / fixture event"), rps(n + WARMUP, *wall), ms(stats.median()), ms(stats.pct(99))]);
    }
    let direct_get = direct[0].1.median();
    println!(
        "\nserve's own overhead per request (1 environment, 1 client, GET): p50 {} ms through serve − {} ms direct = {} ms",
        ms(serve_seq_p50),
        ms(direct_get),
        ms(serve_seq_p50.saturating_sub(direct_get))
    );
}

/// Counts wrk's answers by status and prints one `WRK` line per figure (wrk's own summary has no
/// status breakdown). The key comes from the environment, never from the command line.
const WRK_SCRIPT: &str = r#"
wrk.method = "POST"
wrk.body = '{"year":"2023","title":"Bench Movie","id":"bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = os.getenv("BENCH_API_KEY")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests %d\nWRK duration_us %d\nWRK p50_us %d\nWRK p99_us %d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99)))
  io.write(string.format("WRK socket_errors %d\n", e.connect + e.read + e.write + e.timeout))
  local counts = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do counts[status] = (counts[status] or 0) + n end
  end
  for status, n in pairs(counts) do io.write(string.format("WRK status_%d %d\n", status, n)) end
end
"#;

/// One wrk run: its `WRK` figures by name.
fn wrk(url: &str, key: &str, script: &std::path::Path, connections: usize, seconds: u64) -> BTreeMap<String, u64> {
    let threads = connections.min(2).to_string();
    let out = std::process::Command::new("wrk")
        .args(["-t", &threads, "-c", &connections.to_string(), "-d", &format!("{seconds}s"), "--timeout", "10s"])
        .arg("-s")
        .arg(script)
        .arg(url)
        .env("BENCH_API_KEY", key)
        .output()
        .unwrap_or_else(|e| panic!("cannot run wrk (apt-get install wrk; scripts/bench.sh does): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed ({}):\n{text}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    text.lines()
        .filter_map(|l| l.strip_prefix("WRK "))
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
        .collect()
}

/// requests/s and wrk's p50/p99 at 1, 8 and 64 connections through one `serve`.
async fn load_generator(deployer: &Deployer, dir: &TempDir, bootstrap: &std::path::Path, key: &str, seconds: u64) {
    let script = dir.path().join("count-statuses.lua");
    std::fs::write(&script, WRK_SCRIPT).expect("write the wrk script");
    let serve = Serve::start(deployer, dir.path(), bootstrap, &[]).await;
    let url = format!("{}{}/", serve.base, serve.stage_path);
    println!(
        "\n### Load generator: wrk, `POST /` → 200 (PutItem answered at once), 4 environments, {seconds} s per row\n"
    );
    row(&["connections".into(), "requests".into(), "req/s".into(), "p50 ms".into(), "p99 ms".into(), "answers".into()]);
    row(&["---:".into(), "---:".into(), "---:".into(), "---:".into(), "---:".into(), "---".into()]);
    let (url2, key2, script2) = (url.clone(), key.to_string(), script.clone());
    let rows = tokio::task::spawn_blocking(move || {
        // Every environment started before the rows.
        wrk(&url2, &key2, &script2, 64, 2);
        [1usize, 8, 64].map(|c| (c, wrk(&url2, &key2, &script2, c, seconds)))
    })
    .await
    .expect("wrk runs");
    let mut bad = Vec::new();
    for (connections, figures) in &rows {
        let get = |k: &str| figures.get(k).copied().unwrap_or(0);
        let answers: Vec<String> =
            figures.iter().filter_map(|(k, v)| k.strip_prefix("status_").map(|s| format!("{v} × {s}"))).collect();
        for (k, v) in figures {
            if (k.starts_with("status_") && k != "status_200" && k != "status_429") || (k == "socket_errors" && *v > 0)
            {
                bad.push(format!("{connections} connections: {k} = {v}"));
            }
        }
        let secs = get("duration_us") as f64 / 1e6;
        row(&[
            connections.to_string(),
            get("requests").to_string(),
            format!("{:.0}", get("requests") as f64 / secs),
            format!("{:.2}", get("p50_us") as f64 / 1e3),
            format!("{:.2}", get("p99_us") as f64 / 1e3),
            answers.join(", "),
        ]);
    }
    println!("\nEnvironments started: {}.", serve.count("started (pid"));
    let (code, stderr) = serve.stop().await;
    assert_eq!(code, Some(0), "serve's exit code:\n{stderr}");
    assert!(bad.is_empty(), "answers other than 200 and 429, or socket errors: {bad:?}");
}
