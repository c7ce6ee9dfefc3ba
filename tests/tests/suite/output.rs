//! Issue 18 (one printer): what the deployer writes on stderr follows `--output` and `-q`, for
//! the engine's progress (`up`) and for `serve`'s lines alike.
//!
//! - `json_progress_and_quiet`: a cold `--output json up` writes only JSON objects on stderr, one
//!   per line, each with its `"event"` tag (`started`, `finished` with the resource's `id`); a
//!   `-q up` that changes nothing writes no progress (warnings at most) and its result on stdout as
//!   before; a failed `--output json` run ends with its error as a JSON line; `--output json serve` writes only JSON lines (`serve_listening` with its URL, the
//!   environment started and ready, the function's own output tagged with its environment,
//!   `serve_stopped`), while the access log keeps its format; `-q serve` writes the address it
//!   listens on and nothing else for a request that succeeds.
//!
//! Needs `cargo build --workspace --bins` (the deployer and `bootstrap`) and
//! `MOVIES_STACK_ARTIFACT` (the zip `up` deploys).

use e2e::artifact::artifact_path;
use e2e::runtime_api::bootstrap_bin;
use e2e::{Checks, Deployer, Moto, Proxy, Serve, StackNames, TempDir, write_config};
use serde_json::Value;

const MOVIE: &str = r#"{"year":"2023","title":"Output Movie","id":"o1"}"#;

/// Each line of `stderr` as a JSON object with an `"event"` tag; Err names the first line that
/// is not.
fn json_lines(stderr: &str) -> Result<Vec<Value>, String> {
    stderr
        .lines()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(v) if v["event"].is_string() => Ok(v),
            _ => Err(format!("not a JSON event line: {l:?}")),
        })
        .collect()
}

/// The first line of each `"event"` (and outcome), for the log.
fn print_one_of_each(lines: &[Value]) {
    let mut seen = std::collections::BTreeSet::new();
    for l in lines {
        if seen.insert((l["event"].to_string(), l["outcome"].to_string())) {
            println!("  {l}");
        }
    }
}

fn tags(lines: &[Value]) -> Vec<&str> {
    lines.iter().filter_map(|l| l["event"].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_progress_and_quiet() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.url());
    let dir = TempDir::new("output");
    let names = StackNames::unique("output");
    let deployer = Deployer::with(&write_config(dir.path(), &names, &[]), proxy.url());
    let artifact = artifact_path();
    let art = artifact.to_str().expect("utf-8 path");
    let mut c = Checks::new();

    // ------------------------------------------------------------ up: JSON lines, then quiet
    let (cold, _) = deployer.up_json(&["--artifact", art]).await;
    match json_lines(&cold.stderr) {
        Ok(lines) => {
            let function = |tag: &str| lines.iter().any(|l| l["event"] == tag && l["id"] == "function");
            c.check(
                function("started") && function("finished"),
                format!("up: the function's start and end:\n{}", cold.stderr),
            );
            let created = lines.iter().find(|l| l["event"] == "finished" && l["id"] == "function");
            c.eq("up: the function's outcome", created.and_then(|l| l["outcome"].as_str()), Some("created"));
            c.check(
                lines.iter().all(|l| l["at_ms"].is_u64() && l["level"].is_string()),
                "up: every line has at_ms and level",
            );
            println!("--output json up: {} lines on stderr; one of each kind:", lines.len());
            print_one_of_each(&lines);
        }
        Err(e) => {
            c.check(false, format!("up --output json: {e}\n{cold}"));
        }
    }
    let quiet = deployer.run(&["-q", "up", "--artifact", art]).await;
    c.eq("-q up: exit code", quiet.code, 0);
    let noise: Vec<&str> = quiet.stderr.lines().filter(|l| !l.contains("warning: ")).collect();
    c.check(noise.is_empty(), format!("-q up: warnings at most on stderr: {noise:?}\n{quiet}"));
    let loud = deployer.run(&["up", "--artifact", art]).await;
    c.check(
        !quiet.stdout.is_empty() && quiet.stdout.lines().next() == loud.stdout.lines().next(),
        format!("-q up: the result on stdout as without -q\n{quiet}\n{loud}"),
    );
    c.check(loud.stderr.lines().count() > quiet.stderr.lines().count(), "-q up: fewer lines than without");
    let refused = deployer.run(&["-q", "-v", "status"]).await;
    c.eq("-q with -v: a usage error", refused.code, 3);
    let failed = deployer.run(&["--output", "json", "smoke", "--url", "ftp://x"]).await;
    c.eq("--output json, a failed run: exit code", failed.code, 3);
    let last = json_lines(&failed.stderr).map(|lines| lines.last().cloned().unwrap_or(Value::Null));
    c.check(
        last.as_ref().is_ok_and(|l| l["event"] == "error" && l["exit_code"] == 3 && l["message"].is_string()),
        format!("--output json, a failed run: its error is the last JSON line: {last:?}\n{failed}"),
    );

    let keys = deployer.run(&["--output", "json", "keys", "--tier", "standard"]).await.json();
    let key = keys["keys"]["standard"]["value"].as_str().unwrap_or_default().to_string();

    // ------------------------------------------------------------ serve --output json
    let serve = Serve::start(&deployer, dir.path(), &bootstrap_bin(), &["--output", "json"]).await;
    let ok = serve.call("POST", "/", Some(&key), Some(MOVIE)).await;
    c.eq("serve --output json: status", ok.status, 200);
    let request_id = ok.header("x-amzn-requestid").unwrap_or_default().to_string();
    c.check(serve.saw("\"serve_function_output\"").await, "serve --output json: the function's output");
    let access = serve.access_log();
    let (code, stderr) = serve.stop().await;
    c.eq("serve --output json: exit code", code, Some(0));
    match json_lines(&stderr) {
        Ok(lines) => {
            println!("--output json serve: {} lines on stderr; one of each kind:", lines.len());
            print_one_of_each(&lines);
            let t = tags(&lines);
            for want in [
                "serve_stack",
                "serve_rules",
                "serve_function",
                "serve_limits",
                "serve_listening",
                "serve_env_started",
                "serve_env_ready",
                "serve_function_output",
                "serve_stopping",
                "serve_stopped",
            ] {
                c.check(t.contains(&want), format!("serve --output json: a {want} line: {t:?}"));
            }
            let find = |tag: &str| lines.iter().find(|l| l["event"] == tag).cloned().unwrap_or(Value::Null);
            c.check(
                find("serve_listening")["url"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("http://127.0.0.1:") && u.ends_with("/prod/")),
                format!("serve_listening: its url: {}", find("serve_listening")),
            );
            c.check(
                find("serve_env_ready")["init_ms"].is_u64(),
                format!("serve_env_ready: init_ms {}", find("serve_env_ready")),
            );
            let output = lines.iter().find(|l| {
                l["event"] == "serve_function_output" && l["line"].as_str().is_some_and(|s| s.contains(&request_id))
            });
            c.check(
                output.is_some_and(|l| l["env"] == 1),
                format!("serve_function_output: the function's log line of {request_id}, from env 1:\n{stderr}"),
            );
        }
        Err(e) => {
            c.check(false, format!("serve --output json: {e}\n{stderr}"));
        }
    }
    c.eq("serve --output json: the access log keeps its format", access.len(), 1);

    // ------------------------------------------------------------ serve -q
    let serve = Serve::start(&deployer, dir.path(), &bootstrap_bin(), &["-q"]).await;
    let ok = serve.call("POST", "/", Some(&key), Some(MOVIE)).await;
    c.eq("serve -q: status", ok.status, 200);
    let (code, stderr) = serve.stop().await;
    c.eq("serve -q: exit code", code, Some(0));
    let lines: Vec<&str> = stderr.lines().collect();
    c.check(
        lines.len() == 1 && lines[0].starts_with("serve: listening on http://"),
        format!("serve -q: only the address it listens on:\n{stderr}"),
    );
    c.finish("--output json and -q on stderr");
}
