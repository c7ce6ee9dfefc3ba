//! Deploy benchmark (not a test): `movies-stack up` from nothing (cold) and a second `up` with
//! nothing to do (no-op), against a fresh moto behind the recording proxy with a fixed latency
//! added to every AWS call, at each `--concurrency` level. Each moto gets one read per service
//! first, so its lazy backend start-up is not counted. Run through `scripts/bench.sh`.
//!
//! ```text
//! bench_deploy --artifact ZIP [--latency-ms 50] [--concurrency 1,8] [--log-dir DIR]
//! ```
//!
//! `--concurrency 1,8,1,8` runs each level twice (a fresh moto each time). `--log-dir` keeps each
//! run's deployer output (stdout + stderr: the timestamped progress lines) and its AWS calls in
//! arrival order.
//!
//! The deployer is `$MOVIES_STACK_BIN` or `<target>/debug/movies-stack` next to this binary.

use std::path::PathBuf;
use std::time::Duration;

use e2e::{Aws, Deployer, Moto, Proxy, Rule, StackNames, TempDir, write_config};

struct Args {
    artifact: PathBuf,
    latency: Duration,
    levels: Vec<u16>,
    log_dir: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!("usage: bench_deploy --artifact ZIP [--latency-ms N] [--concurrency 1,8] [--log-dir DIR]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut artifact = None;
    let mut latency = Duration::from_millis(50);
    let mut levels = vec![1, 8];
    let mut log_dir = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--artifact" => artifact = Some(PathBuf::from(val())),
            "--latency-ms" => latency = Duration::from_millis(val().parse().unwrap_or_else(|_| usage())),
            "--concurrency" => {
                levels = val().split(',').map(|s| s.trim().parse().unwrap_or_else(|_| usage())).collect();
            }
            "--log-dir" => log_dir = Some(PathBuf::from(val())),
            _ => usage(),
        }
    }
    Args { artifact: artifact.unwrap_or_else(|| usage()), latency, levels, log_dir }
}

/// One `up` run's figures.
struct Run {
    wall: Duration,
    calls: usize,
    mutating: usize,
    /// API Gateway calls (its writes are serialized by the deployer).
    apigw: usize,
    changes: u64,
}

async fn up(deployer: &Deployer, proxy: &Proxy, artifact: &str, concurrency: u16, log: Option<PathBuf>) -> Run {
    proxy.reset();
    let c = concurrency.to_string();
    let (out, json) = deployer.up_json(&["--artifact", artifact, "--concurrency", &c]).await;
    if let Some(path) = log {
        let calls: Vec<String> = proxy.calls().iter().enumerate().map(|(i, c)| format!("{i:4} {c}")).collect();
        let text = format!("{out}\n--- AWS calls in arrival order ---\n{}\n", calls.join("\n"));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
    Run {
        wall: out.elapsed,
        calls: proxy.calls().len(),
        mutating: proxy.mutating_calls().len(),
        apigw: proxy.calls().iter().filter(|c| c.service == "apigateway").count(),
        changes: json["changes"].as_u64().unwrap_or(0),
    }
}

/// One read per service, straight to moto (not through the proxy): moto builds a service's
/// backend on its first request (EC2's takes about a second), which is emulator start-up and not
/// the deployer's work.
async fn warm_up(moto: &Moto) {
    let aws = Aws::new(moto.url()).await;
    let started = std::time::Instant::now();
    let _ = aws.ec2.describe_vpcs().send().await;
    let _ = aws.iam.list_roles().send().await;
    let _ = aws.lambda.list_functions().send().await;
    let _ = aws.dynamodb.list_tables().send().await;
    let _ = aws.apigateway.get_rest_apis().send().await;
    let _ = aws.logs.describe_log_groups().send().await;
    eprintln!("moto warm-up: {:.1}s", started.elapsed().as_secs_f64());
}

fn row(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    let artifact = args.artifact.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", args.artifact.display()));
    let art = artifact.to_str().expect("UTF-8 path");
    let mut results: Vec<(u16, Run, Run)> = Vec::new();
    if let Some(d) = &args.log_dir {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
    }
    for (i, &level) in args.levels.iter().enumerate() {
        let log = |kind: &str| args.log_dir.as_ref().map(|d| d.join(format!("{i:02}-c{level}-{kind}.log")));
        // A fresh moto per level: the account-level API Gateway role is created only once per
        // account, so a second stack in the same moto would do less work.
        let moto = Moto::start();
        warm_up(&moto).await;
        let proxy = Proxy::start(moto.url());
        proxy.add_rule(Rule::new().delay(args.latency));
        let dir = TempDir::new("bench");
        let names = StackNames::unique("bench");
        let config = write_config(dir.path(), &names, &[]);
        let deployer = Deployer::with(&config, proxy.url());
        let cold = up(&deployer, &proxy, art, level, log("cold")).await;
        eprintln!("concurrency {level}: cold up {:.1}s, {} calls", cold.wall.as_secs_f64(), cold.calls);
        let noop = up(&deployer, &proxy, art, level, log("noop")).await;
        eprintln!("concurrency {level}: no-op up {:.1}s, {} calls", noop.wall.as_secs_f64(), noop.calls);
        assert_eq!(noop.mutating, 0, "the second up changed something");
        results.push((level, cold, noop));
    }

    println!(
        "\n### Deploy: `movies-stack up` against moto (warmed up) through the proxy, {} ms added to every AWS call\n",
        args.latency.as_millis()
    );
    row(&[
        "run".into(),
        "--concurrency".into(),
        "wall s".into(),
        "AWS calls".into(),
        "mutating".into(),
        "API Gateway calls".into(),
        "changes".into(),
        "calls × latency s".into(),
    ]);
    row(&["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"].map(String::from));
    for (level, cold, noop) in &results {
        for (name, r) in [("cold (from nothing)", cold), ("no-op (second up)", noop)] {
            row(&[
                name.into(),
                level.to_string(),
                format!("{:.1}", r.wall.as_secs_f64()),
                r.calls.to_string(),
                r.mutating.to_string(),
                r.apigw.to_string(),
                r.changes.to_string(),
                format!("{:.1}", r.calls as f64 * args.latency.as_secs_f64()),
            ]);
        }
    }
    // Medians per level (the runs are interleaved, so slow phases of a shared machine hit both).
    let mut levels: Vec<u16> = args.levels.clone();
    levels.sort_unstable();
    levels.dedup();
    let median = |level: u16, pick: fn(&(u16, Run, Run)) -> Duration| {
        let mut v: Vec<Duration> = results.iter().filter(|r| r.0 == level).map(pick).collect();
        v.sort();
        v[v.len() / 2]
    };
    println!("\nMedian wall time per level:\n");
    row(&["--concurrency".into(), "runs".into(), "cold s".into(), "no-op s".into()]);
    row(&["---:", "---:", "---:", "---:"].map(String::from));
    for &l in &levels {
        row(&[
            l.to_string(),
            results.iter().filter(|r| r.0 == l).count().to_string(),
            format!("{:.1}", median(l, |r| r.1.wall).as_secs_f64()),
            format!("{:.1}", median(l, |r| r.2.wall).as_secs_f64()),
        ]);
    }
    if let (true, Some(&lo), Some(&hi)) = (levels.len() > 1, levels.first(), levels.last()) {
        println!(
            "\nSpeed-up of --concurrency {hi} over {lo} (ratio of median wall times): cold {:.2}×, no-op {:.2}×.",
            median(lo, |r| r.1.wall).as_secs_f64() / median(hi, |r| r.1.wall).as_secs_f64(),
            median(lo, |r| r.2.wall).as_secs_f64() / median(hi, |r| r.2.wall).as_secs_f64()
        );
    }
}
