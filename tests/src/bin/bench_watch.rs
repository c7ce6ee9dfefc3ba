//! `movies-stack serve --watch` benchmark (not a test): edit to answer, against `cargo lambda
//! watch` on the same machine, the same edit, the same handler. Run through `scripts/bench.sh`.
//!
//! ```text
//! bench_watch [--artifact ZIP] [--repetitions N] [--profile dev|release] [--cargo-lambda PATH]
//! ```
//!
//! - A stack is deployed into a fresh moto (through the recording proxy) with a Premium plan too
//!   large to throttle; the function's DynamoDB `PutItem` is answered `{}` at once by the proxy
//!   (a reply rule), for both tools.
//! - The repository's `handler/` is copied with the workspace's manifest (members: the handler
//!   alone) and lock file into `<target>/serve-watch/bench`; both tools run there and build into
//!   `<target>/serve-watch/target` (`CARGO_TARGET_DIR`), in the cargo profile `--profile`.
//! - One repetition: the handler's success message (`SUCCESS_MESSAGE` in `handler/src/lib.rs`)
//!   is replaced by a new one, saved as an editor does (a new file renamed over the old), and a
//!   client sends the same request again and again (one at a time, 20 ms apart) until an answer
//!   carries the new message: edit to answer is from the rename to that answer.
//! - `serve --watch`: `POST /prod/` with the Premium key (API Gateway's path: key, plan, proxy
//!   event). `cargo lambda watch`: the API Gateway REST event of the handler's fixture invoked
//!   through its Lambda invoke endpoint (`POST /2015-03-31/functions/bootstrap/invocations`).
//! - `serve --watch` runs all its repetitions first, then `cargo lambda watch`; each tool is warm
//!   (started, built and answered once) before its first repetition.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::artifact::artifact_path;
use e2e::bench::{Stats, fixture_event, row};
use e2e::{LoadStack, Rule, deployer_bin, free_port, repo_root};
use tokio::io::AsyncBufReadExt;

const MOVIE: &str = r#"{"year":"2023","title":"Bench Movie","id":"bench"}"#;
const MESSAGE_LINE: &str = "pub const SUCCESS_MESSAGE: &str = ";

/// Edit to answer: `serve --watch` against `cargo lambda watch`.
#[derive(clap::Parser)]
#[command(name = "bench_watch")]
struct Args {
    /// The arm64 zip deployed into moto (default: the suite's).
    #[arg(long)]
    artifact: Option<PathBuf>,
    /// Edits measured per tool.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    repetitions: u64,
    /// The cargo profile both tools build the handler with.
    #[arg(long, default_value = "dev", value_parser = ["dev", "release"])]
    profile: String,
    /// The cargo-lambda executable (default: the venv's, `$MOVIES_STACK_VENV/bin/cargo-lambda`).
    #[arg(long)]
    cargo_lambda: Option<PathBuf>,
}

/// `<target>/serve-watch`, as the e2e tests of `serve --watch` use it.
fn watch_home() -> PathBuf {
    let bin = deployer_bin();
    bin.parent().and_then(Path::parent).expect("the deployer is in <target>/debug").join("serve-watch")
}

/// The handler crate in a workspace of its own: the root manifest with the handler as its only
/// member, and the lock file.
fn workspace_copy(ws: &Path) {
    let _ = std::fs::remove_dir_all(ws);
    std::fs::create_dir_all(ws).expect("create the workspace copy");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo_root().join("handler"))
        .arg(ws.join("handler"))
        .status()
        .expect("run cp");
    assert!(status.success(), "cp -r handler/ {}", ws.display());
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).expect("read Cargo.toml");
    let manifest: Vec<&str> = manifest
        .lines()
        .filter(|l| !l.starts_with("movies-stack-kinds ="))
        .map(|l| if l.starts_with("members = ") { "members = [\"handler\"]" } else { l })
        .collect();
    std::fs::write(ws.join("Cargo.toml"), manifest.join("\n")).expect("write the copy's manifest");
    std::fs::copy(repo_root().join("Cargo.lock"), ws.join("Cargo.lock")).expect("copy Cargo.lock");
    // The lock file pruned to the handler's packages now, not by the tools' first build.
    let status = std::process::Command::new("cargo")
        .args(["update", "--workspace", "--offline", "--quiet"])
        .current_dir(ws)
        .stdout(Stdio::null())
        .status()
        .expect("run cargo update --workspace");
    assert!(status.success(), "cargo update --workspace in {}", ws.display());
}

/// Set the handler's success message to `message`, saved as an editor does.
fn set_message(ws: &Path, message: &str) {
    let lib = ws.join("handler/src/lib.rs");
    let text = std::fs::read_to_string(&lib).expect("read handler/src/lib.rs");
    let line = text.lines().find(|l| l.starts_with(MESSAGE_LINE)).expect("the SUCCESS_MESSAGE line");
    let new = format!("{MESSAGE_LINE}{};", serde_json::Value::from(message));
    let saving = lib.with_extension("rs.saving");
    std::fs::write(&saving, text.replacen(line, &new, 1)).expect("write the edit");
    std::fs::rename(&saving, &lib).expect("rename the edit over handler/src/lib.rs");
}

/// One HTTP/1.1 request (its own connection): the whole answer as text, or None if it failed.
fn exchange(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(600))).ok()?;
    let mut req =
        format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-type: application/json\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    (!answer.is_empty()).then_some(answer)
}

/// A tool under measurement: how to ask it, and its process.
struct Tool {
    name: &'static str,
    child: tokio::process::Child,
    ask: Box<dyn Fn() -> Option<String> + Send + Sync>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Tool {
    fn collect(child: &mut tokio::process::Child) -> Arc<Mutex<Vec<String>>> {
        let lines = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            child.stderr.take().map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child.stdout.take().map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut reader = tokio::io::BufReader::new(pipe).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        lines
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Ask until an answer carries `marker` (within `limit`): the time it took.
    async fn until_answer(&self, marker: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let answer = tokio::task::block_in_place(|| (self.ask)());
            if answer.as_deref().is_some_and(|a| a.contains(marker)) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{}: no answer with {marker:?} within {limit:?}; last: {answer:?}\n{}",
                self.name,
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM to its process group (cargo-lambda runs cargo and the function; serve stops on
    /// SIGTERM as on Ctrl-C), then wait; SIGKILL to the group after 30 s.
    async fn stop(mut self) {
        let signal_group = |child: &tokio::process::Child, signal: &str| {
            // `kill -s SIG -- -PGID`: procps-ng 4.0's kill reads `kill -SIG -PGID` as
            // kill(-<first digit>, SIG) (`kill -INT -1234` signals every process: kill(-1)).
            if let Some(pid) = child.id().filter(|&p| p > 1) {
                let _ = std::process::Command::new("kill").args(["-s", signal, "--", &format!("-{pid}")]).status();
            }
        };
        signal_group(&self.child, "TERM");
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.is_err() {
            signal_group(&self.child, "KILL");
            let _ = self.child.wait().await;
        }
    }
}

/// `repetitions` edits, each timed from the save to the first answer carrying it.
async fn measure(tool: &Tool, ws: &Path, tag: &str, repetitions: u64) -> Vec<Duration> {
    let mut times = Vec::new();
    for i in 1..=repetitions {
        let message = format!("Successfully inserted data! ({tag} edit {i})");
        // Quiet before the edit: the previous build's stop and any log lines settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        set_message(ws, &message);
        let took = tool.until_answer(&message, Duration::from_secs(900)).await;
        println!("  {} edit {i}: {:.2} s", tool.name, took.as_secs_f64());
        times.push(took);
    }
    times
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let args = <Args as clap::Parser>::parse();
    let artifact = args.artifact.clone().unwrap_or_else(artifact_path);
    let cargo_lambda = args.cargo_lambda.clone().unwrap_or_else(|| e2e::venv_dir().join("bin").join("cargo-lambda"));
    assert!(cargo_lambda.is_file(), "no cargo-lambda at {} (scripts/setup.sh installs it)", cargo_lambda.display());

    let stack = LoadStack::deploy("benchwatch", &artifact).await;
    let keys = stack.deployer.run(&["--output", "json", "keys", "--tier", "premium"]).await;
    keys.assert_ok();
    let key = keys.json()["keys"]["premium"]["value"].as_str().expect("premium key value").to_string();
    stack.proxy.add_rule(Rule::new().service("dynamodb").operation("PutItem").reply(
        200,
        "application/x-amz-json-1.0",
        "{}",
    ));

    let home = watch_home();
    let ws = home.join("bench");
    let target = home.join("target");
    workspace_copy(&ws);
    let profile = args.profile.as_str();
    println!(
        "edit to answer, {} profile, {} repetitions each (workspace copy {})",
        profile,
        args.repetitions,
        ws.display()
    );

    // ------------------------------------------------------------------ serve --watch
    let mut deployer = stack.deployer.clone();
    deployer.cwd = ws.clone();
    let mut cmd = deployer.command_with_globals(&[
        "serve",
        "--port",
        "0",
        "--watch",
        "--cargo-profile",
        profile,
        "--access-log",
        "/dev/null",
    ]);
    cmd.env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().expect("start movies-stack serve --watch");
    let lines = Tool::collect(&mut child);
    let started = Instant::now();
    let port = loop {
        let line = lines.lock().unwrap().iter().find(|l| l.contains("serve: listening on http://")).cloned();
        if let Some(port) = line.as_deref().and_then(e2e::loopback_port_in) {
            break port;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800) && child.try_wait().ok().flatten().is_none(),
            "serve --watch did not start:\n{}",
            lines.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let serve_key = key.clone();
    let serve = Tool {
        name: "serve --watch",
        child,
        ask: Box::new(move || exchange(port, "/prod/", &[("x-api-key", serve_key.as_str())], MOVIE)),
        lines,
    };
    serve.until_answer(" 200 OK", Duration::from_secs(60)).await;
    let serve_times = measure(&serve, &ws, "serve", args.repetitions).await;
    let rebuilt: Vec<String> = serve
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.split("serve: rebuilt in ").nth(1)?.split(' ').next().map(str::to_string))
        .collect();
    serve.stop().await;

    // ------------------------------------------------------------------ cargo lambda watch
    let invoke_port = free_port();
    let env = [
        ("TABLE_NAME", stack.names.table.clone()),
        ("AWS_ENDPOINT_URL", stack.proxy.url().to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    let path = format!("{}:{}", e2e::venv_dir().join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = tokio::process::Command::new(&cargo_lambda);
    cmd.current_dir(&ws)
        .args(["lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", &invoke_port.to_string()])
        .args(if profile == "release" { vec!["--release"] } else { vec![] })
        .env("CARGO_TARGET_DIR", &target)
        .env("PATH", path)
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (k, v) in &env {
        cmd.arg("--env-var").arg(format!("{k}={v}"));
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start cargo lambda watch");
    let lines = Tool::collect(&mut child);
    let event = fixture_event("POST", MOVIE);
    let cargo_lambda = Tool {
        name: "cargo lambda watch",
        child,
        ask: Box::new(move || exchange(invoke_port, "/2015-03-31/functions/bootstrap/invocations", &[], &event)),
        lines,
    };
    cargo_lambda.until_answer("statusCode", Duration::from_secs(1800)).await;
    let lambda_times = measure(&cargo_lambda, &ws, "cargo-lambda", args.repetitions).await;
    cargo_lambda.stop().await;

    // ------------------------------------------------------------------ results
    let (s, l) = (Stats::new(serve_times), Stats::new(lambda_times));
    let secs = |d: Duration| format!("{:.2}", d.as_secs_f64());
    println!();
    row(&["tool".into(), "edit to answer, median (s)".into(), "min (s)".into(), "max (s)".into(), "runs".into()]);
    row(&["---".into(), "---:".into(), "---:".into(), "---:".into(), "---:".into()]);
    for (name, st) in [("`serve --watch`", &s), ("`cargo lambda watch`", &l)] {
        row(&[name.into(), secs(st.median()), secs(st.min()), secs(st.max()), args.repetitions.to_string()]);
    }
    println!(
        "\nratio of medians (cargo lambda watch / serve --watch): {:.2}; serve's own rebuild times (s): {}",
        l.median().as_secs_f64() / s.median().as_secs_f64(),
        rebuilt.join(", ")
    );
}
