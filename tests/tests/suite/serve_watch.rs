//! Issue 20 (part 4), `movies-stack serve --watch`: the handler rebuilt on a change of its
//! sources and swapped in while serving.
//!
//! Each test deploys a stack into its own moto (through the recording proxy), copies the
//! repository's `handler/` crate with the workspace's manifest (members: the handler alone) and
//! lock file into a folder of its own, and runs the real `movies-stack serve --watch` there (it
//! finds the handler above its working directory, as in the repository), so that editing the
//! copy's sources is what a developer does. The copies build with `--cargo-profile dev`, their
//! binaries into `<target>/serve-watch/target` and their intermediate files into the workspace's
//! own build dir (`CARGO_BUILD_BUILD_DIR`), whose compiled dependencies they reuse: the first build
//! compiles the handler alone, and a rebuild after an edit takes seconds where the release profile
//! (fat LTO) takes about a minute on 2 cores.
//!
//! - `an_edit_is_served_and_requests_in_flight_finish`: 200 with the handler's message; the
//!   message edited in `handler/src/lib.rs` → "rebuilt", and the next request gets the new one; a
//!   request whose DynamoDB call the proxy holds across a second edit's rebuild and swap is
//!   answered 200 by the build it started on (never dropped), after which that build's
//!   environment is stopped and later requests get the third message.
//! - `a_failed_rebuild_keeps_the_previous_build` (`--output json`): a syntax error → one
//!   `serve_rebuild_failed` event carrying the compiler's error (file and line), no new
//!   environment, and the previous build still answers.
//! - `watch_with_bootstrap_is_refused`: `--watch --bootstrap PATH` → exit 3, one line naming both
//!   flags, no AWS call.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::runtime_api::bootstrap_bin;
use e2e::{
    Account, Checks, Deployer, HttpAnswer, Proxy, Rule, StackNames, TempDir, deployer_bin, free_port, http_exchange,
    repo_root, write_config,
};
use tokio::io::AsyncBufReadExt;

const MOVIE: &str = r#"{"year":"2023","title":"Watched Movie","id":"w1"}"#;
const MESSAGE: &str = "Successfully inserted data!";

/// A deployed stack in its own moto, and the Standard key's value.
struct Deployed {
    /// moto and the proxy the stack is deployed through (kept running).
    account: Account,
    deployer: Deployer,
    key: String,
}

/// A stack of the shared fixture ([`Account::stack_with`]), deployed, and its Standard key.
async fn deployed(prefix: &str, overrides: &[(&str, &str)]) -> Deployed {
    let account = Account::start().await;
    let stack = account.stack_with(prefix, overrides);
    stack.deployer.up_json(&["--artifact", &stack.artifact]).await;
    let keys = stack.deployer.run(&["--output", "json", "keys"]).await;
    keys.assert_ok();
    let key = keys.json()["keys"]["standard"]["value"].as_str().unwrap_or_default().to_string();
    assert!(!key.is_empty(), "keys: {}", keys.json());
    Deployed { account, deployer: stack.deployer, key }
}

/// `<target>/serve-watch`: the copies of the workspace (one per test, made again each run) and
/// the target dir of their binaries.
fn watch_home() -> PathBuf {
    let bin = deployer_bin();
    let target = bin.parent().and_then(Path::parent).expect("the deployer is in <target>/debug");
    target.join("serve-watch")
}

/// A copy of the repository's handler crate in a workspace of its own at `<home>/<name>`: the
/// root manifest with the handler as its only member, and the lock file.
fn workspace_copy(name: &str) -> PathBuf {
    let ws = watch_home().join(name);
    let _ = std::fs::remove_dir_all(&ws);
    copy_dir(&repo_root().join("handler"), &ws.join("handler"));
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).expect("read Cargo.toml");
    let manifest: String = manifest
        .lines()
        .filter(|l| !l.starts_with("movies-stack-kinds ="))
        .map(|l| if l.starts_with("members = ") { "members = [\"handler\"]".to_string() } else { l.to_string() })
        // A version of its own: cargo names a workspace member's compiled units by its path
        // relative to the workspace root (`handler`), the same in every copy and in the
        // repository, and the copies share the repository's build dir: without it, one copy's
        // build would be taken for another's.
        .map(|l| if l == "version = \"0.1.0\"" { format!("version = \"0.1.0-{}\"", name.replace('_', "-")) } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(manifest.contains("members = [\"handler\"]"), "the workspace's manifest has no `members =` line");
    assert!(manifest.contains("version = \"0.1.0-"), "the workspace's manifest has no `version = \"0.1.0\"` line");
    std::fs::write(ws.join("Cargo.toml"), manifest).expect("write the copy's Cargo.toml");
    std::fs::copy(repo_root().join("Cargo.lock"), ws.join("Cargo.lock")).expect("copy Cargo.lock");
    // The lock file pruned to the handler's packages now, not by serve's first build (a change
    // of Cargo.lock serve would then build again).
    let status = std::process::Command::new("cargo")
        .args(["update", "--workspace", "--offline", "--quiet"])
        .current_dir(&ws)
        .stdout(Stdio::null())
        .status()
        .expect("run cargo update --workspace");
    assert!(status.success(), "cargo update --workspace in {}", ws.display());
    ws
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("dir entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().expect("file type").is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&src, &dst);
            }
        } else {
            std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}

/// Replace `from` by `to` in `file` (it must be there), as an editor saves: a new file renamed
/// over the old one.
fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    assert!(text.contains(from), "{} has no {from:?}", file.display());
    let saved = file.with_extension("rs.saving");
    std::fs::write(&saved, text.replacen(from, to, 1)).expect("write the edit");
    std::fs::rename(&saved, file).expect("rename the edit over the file");
}

/// A running `movies-stack serve --watch` in a workspace copy, its stderr collected.
struct Watching {
    child: tokio::process::Child,
    base: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Watching {
    /// `serve --port 0 --watch --cargo-profile dev EXTRA...` (global flags `GLOBAL...` first) in
    /// `ws`, ready once it listens.
    async fn start(deployer: &Deployer, ws: &Path, global: &[&str], extra: &[&str]) -> Watching {
        let mut deployer = deployer.clone();
        deployer.cwd = ws.to_path_buf();
        let mut args = global.to_vec();
        args.extend(["serve", "--port", "0", "--watch", "--cargo-profile", "dev", "--access-log", "/dev/null"]);
        args.extend_from_slice(extra);
        let mut cmd = deployer.command_with_globals(&args);
        // The copy's cargo: its binaries in a target dir of its own (the workspace's `bootstrap`,
        // which other tests run, stays as built), its intermediate files in the workspace's build
        // dir, where the handler's dependencies are compiled already (the handler resolves the
        // workspace's features: `handler::the_handler_builds_with_the_workspaces_features`);
        // not the clippy wrapper a workspace build may set.
        let home = watch_home();
        cmd.env("CARGO_TARGET_DIR", home.join("target"))
            .env("CARGO_BUILD_BUILD_DIR", home.parent().expect("<target>/serve-watch has a parent"))
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CLIPPY_ARGS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start movies-stack serve --watch");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let mut reader = tokio::io::BufReader::new(child.stderr.take().expect("stderr piped")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                lines.lock().unwrap().push(line);
            }
        });
        let mut serve = Watching { child, base: String::new(), stderr };
        // The first build of the copy's dependencies (a clean target dir) takes minutes.
        let listening =
            |l: &str| l.contains("serve: listening on http://") || l.contains(r#""event":"serve_listening""#);
        let Some(line) = serve.wait_line(listening, 1, Duration::from_secs(900)).await else {
            let status = serve.child.try_wait().ok().flatten();
            panic!("serve --watch did not start listening (exit {status:?}):\n{}", serve.text());
        };
        let port = e2e::loopback_port_in(&line).unwrap_or_else(|| panic!("no port in {line}"));
        serve.base = format!("http://127.0.0.1:{port}");
        serve
    }

    fn lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    fn text(&self) -> String {
        self.lines().join("\n")
    }

    fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// The `n`-th line (1-based) matching `pred`, waiting up to `timeout`.
    async fn wait_line(&self, pred: impl Fn(&str) -> bool, n: usize, timeout: Duration) -> Option<String> {
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines().into_iter().filter(|l| pred(l)).nth(n - 1) {
                return Some(l);
            }
            if start.elapsed() > timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `POST /prod/` with the key and a movie; the future owns what it needs.
    fn post(&self, key: &str) -> impl std::future::Future<Output = HttpAnswer> + Send + use<> {
        let (base, key) = (self.base.clone(), key.to_string());
        async move {
            tokio::task::spawn_blocking(move || {
                http_exchange(&base, "POST", "/prod/", &[("x-api-key", key.as_str())], Some(MOVIE))
                    .unwrap_or_else(|e| panic!("POST /prod/ to serve: {e}"))
            })
            .await
            .expect("request thread")
        }
    }

    /// Ctrl-C, then the exit code and all of stderr.
    async fn stop(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().expect("serve is running").to_string();
        std::process::Command::new("kill").args(["-INT", &pid]).status().expect("run kill");
        let code = match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(Ok(s)) => s.code(),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        (code, self.text())
    }
}

fn serve_count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// The two tests that build run one at a time: they share the copies' target dir, where cargo's
/// `debug/bootstrap` is one file for every copy (and so is the handler's fingerprint: a build of
/// one copy interleaved with another's may find the other's output fresh).
static BUILDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn message(answer: &HttpAnswer) -> String {
    serde_json::from_str::<serde_json::Value>(&answer.body).map(|v| v["message"].to_string()).unwrap_or_default()
}

fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_is_served_and_requests_in_flight_finish() {
    // The held request waits longer than a rebuild: room for it under the function's timeout
    // and API Gateway's integration timeout.
    let d = deployed("watch1", &[("function.timeout_seconds", "300")]).await;
    let _one = BUILDING.lock().await;
    let ws = workspace_copy("an_edit_is_served");
    let lib = ws.join("handler/src/lib.rs");
    let serve = Watching::start(&d.deployer, &ws, &[], &["--integration-timeout", "300"]).await;
    let mut c = Checks::new();
    c.check(
        serve.count("serve: watching handler/src/**/*.rs, handler/Cargo.toml, Cargo.lock") == 1,
        "the watch is announced",
    );

    let first = serve.post(&d.key).await;
    c.eq("before any edit: status", first.status, 200);
    c.eq("before any edit: message", message(&first), quoted(MESSAGE));

    // ------------------------------------------------------------------ an edit, then served
    let second_message = "Inserted, second build!";
    let edited = Instant::now();
    edit(&lib, &quoted(MESSAGE), &quoted(second_message));
    let rebuilt = serve.wait_line(|l| l.contains("serve: rebuilt in "), 1, Duration::from_secs(300)).await;
    let took = edited.elapsed();
    c.check(rebuilt.is_some(), format!("\"rebuilt\" within 300 s of the edit:\n{}", serve.text()));
    c.check(serve.count("serve: handler/src/lib.rs changed: rebuilding the handler") == 1, "the change is named once");
    let after = serve.post(&d.key).await;
    c.eq("after the edit: status", after.status, 200);
    c.eq("after the edit: message", message(&after), quoted(second_message));
    println!("edit → rebuilt: {:.1} s (dev profile)", took.as_secs_f64());
    c.check(
        serve.wait_line(|l| l.contains("serve: previous build stopped"), 1, Duration::from_secs(30)).await.is_some(),
        "the first build's environments stop once idle",
    );

    // ------------------------------------ a request in flight across the second swap
    // Its PutItem is held by the proxy for twice the first rebuild, plus 10 s.
    let hold = took * 2 + Duration::from_secs(10);
    d.account.proxy.add_rule(Rule::new().service("dynamodb").operation("PutItem").delay(hold).times(1));
    let calls_before = d.account.proxy.calls().iter().filter(|x| x.operation == "PutItem").count();
    let held = tokio::spawn(serve.post(&d.key));
    let start = Instant::now();
    while d.account.proxy.calls().iter().filter(|x| x.operation == "PutItem").count() == calls_before
        && start.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let third_message = "Inserted, third build!";
    edit(&lib, &quoted(second_message), &quoted(third_message));
    let swapped = serve.wait_line(|l| l.contains("serve: rebuilt in "), 2, hold).await.is_some();
    c.check(swapped, format!("the second rebuild finished while the request was held ({hold:?}):\n{}", serve.text()));
    c.check(!held.is_finished(), "the held request was still in flight at the swap");
    let third = serve.post(&d.key).await;
    c.eq("after the second edit: status", third.status, 200);
    c.eq("after the second edit: message", message(&third), quoted(third_message));
    c.eq("stopped builds while the held request runs", serve.count("serve: previous build stopped"), 1);
    let held = held.await.expect("held request");
    c.eq("the request in flight during the swap: status", held.status, 200);
    c.eq("the request in flight during the swap: the build it started on", message(&held), quoted(second_message));
    c.check(
        serve.wait_line(|l| l.contains("serve: previous build stopped"), 2, Duration::from_secs(30)).await.is_some(),
        "the second build stops once its request is answered",
    );
    // Traces and counters belong to neither pool: the swaps keep them (issue 22).
    let admin_line = serve.wait_line(|l| l.contains("serve: traces and counters on "), 1, Duration::from_secs(1)).await;
    let admin = admin_line.as_deref().and_then(e2e::loopback_port_in).map(|p| format!("http://127.0.0.1:{p}"));
    let admin = admin.unwrap_or_else(|| panic!("serve names its admin listener:\n{}", serve.text()));
    let get = |path: &'static str| {
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || {
            let answer = http_exchange(&admin, "GET", path, &[], None).unwrap_or_else(|e| panic!("GET {path}: {e}"));
            serde_json::from_str::<serde_json::Value>(&answer.body).unwrap_or_default()
        })
    };
    let stats = get("/stats").await.expect("request thread");
    let minutes = stats["minutes"].as_array().cloned().unwrap_or_default();
    let sum = |f: &str| minutes.iter().map(|m| m[f].as_u64().unwrap_or(0)).sum::<u64>();
    c.eq("counters across both swaps: requests, invocations", (sum("requests"), sum("invocations")), (4, 4));
    let traces = get("/traces").await.expect("request thread");
    let ids: Vec<&str> = traces["Traces"].as_array().into_iter().flatten().filter_map(|t| t["Id"].as_str()).collect();
    for (what, answer) in [("the first build's", &first), ("the third build's", &third)] {
        let id = answer.header("x-amzn-trace-id").and_then(|h| h.strip_prefix("Root=")).unwrap_or_default();
        c.check(ids.contains(&id), format!("{what} request's trace {id} kept ({ids:?})"));
    }
    let (code, text) = serve.stop().await;
    c.eq("exit code", code, Some(0));
    c.check(!text.contains("during invocation"), "no environment ended during an invocation");
    // Numbered across builds: env 1 (the first build), 2 (the second), 3 (the third).
    for env in 1..=3 {
        c.eq(&format!("env {env} stopped"), serve_count(&text, &format!("serve: env {env} exited (")), 1);
    }
    c.check(!text.contains("rebuild failed"), "no failed rebuild");
    c.check(!text.contains("   Compiling "), "the rebuilds' cargo output is not printed");
    println!("{text}");
    c.finish("serve --watch: edits served, a request in flight kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rebuild_keeps_the_previous_build() {
    let d = deployed("watch2", &[]).await;
    let _one = BUILDING.lock().await;
    let ws = workspace_copy("a_failed_rebuild");
    let lib = ws.join("handler/src/lib.rs");
    let serve = Watching::start(&d.deployer, &ws, &["--output", "json"], &[]).await;
    let mut c = Checks::new();
    let first = serve.post(&d.key).await;
    c.eq("before: status", first.status, 200);

    edit(
        &lib,
        &format!("SUCCESS_MESSAGE: &str = {};", quoted(MESSAGE)),
        &format!("SUCCESS_MESSAGE: &str = {}", quoted(MESSAGE)),
    );
    let failed = serve
        .wait_line(|l| l.contains(r#""event":"serve_rebuild_failed""#), 1, Duration::from_secs(300))
        .await
        .unwrap_or_else(|| panic!("no serve_rebuild_failed event:\n{}", serve.text()));
    let event: serde_json::Value = serde_json::from_str(&failed).expect("one JSON object");
    let error = event["error"].as_str().unwrap_or_default();
    c.eq("level", event["level"].as_str(), Some("warning"));
    c.check(error.starts_with("error"), format!("the compiler's error first: {error}"));
    c.check(error.contains("handler/src/lib.rs:"), format!("the file and line: {error}"));
    c.check(error.contains("could not compile `handler`"), format!("cargo's verdict: {error}"));
    c.check(!error.contains("Compiling"), "no progress lines in the error");
    let after = serve.post(&d.key).await;
    c.eq("after the failed rebuild: status", after.status, 200);
    c.eq("after the failed rebuild: the previous build's message", message(&after), quoted(MESSAGE));
    c.eq("rebuilt events", serve.count(r#""event":"serve_rebuilt""#), 0);
    c.eq("environments started", serve.count(r#""event":"serve_env_started""#), 1);
    let (code, text) = serve.stop().await;
    c.eq("exit code", code, Some(0));
    c.check(!text.contains("   Compiling "), "the rebuild's cargo output is not printed");
    println!("{text}");
    c.finish("serve --watch: a failed rebuild");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_with_bootstrap_is_refused() {
    let proxy = Proxy::start(&format!("http://127.0.0.1:{}", free_port()));
    let dir = TempDir::new("watch3");
    let names = StackNames::unique("watch3");
    let config = write_config(dir.path(), &names, &[]);
    let deployer = Deployer::with(&config, proxy.url());
    let bootstrap = bootstrap_bin();
    let out =
        deployer.run(&["serve", "--port", "0", "--watch", "--bootstrap", bootstrap.to_str().expect("utf-8")]).await;
    let mut c = Checks::new();
    c.eq("exit code", out.code, 3);
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    c.eq("stderr lines", lines.len(), 1);
    c.check(
        out.stderr.contains("--watch") && out.stderr.contains("--bootstrap"),
        format!("both flags named: {}", out.stderr),
    );
    c.eq("AWS calls", proxy.calls().len(), 0);
    c.finish("serve --watch --bootstrap refused");
}
