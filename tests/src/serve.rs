//! A running `movies-stack serve` for tests and benchmarks: started through [`Deployer::command`]
//! (so it gets the test environment), its stderr collected line by line, its access log in a
//! file, and calls to it over HTTP.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::{Deployer, HttpAnswer, Moto, Proxy, StackNames, TempDir, http_exchange, write_config};

/// The User-Agent of [`Serve::call`]'s requests.
pub const USER_AGENT: &str = "serve-e2e/1.0";

/// A running `movies-stack serve`, its stderr collected line by line, its access log in a file.
pub struct Serve {
    child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `/prod`: the stage's path.
    pub stage_path: String,
    stderr: Arc<Mutex<Vec<String>>>,
    access_log: PathBuf,
    /// Reads stderr until it closes.
    reader: tokio::task::JoinHandle<()>,
}

impl Serve {
    /// `movies-stack [flags of deployer] serve --port 0 --bootstrap B --access-log DIR/access-N.log
    /// EXTRA...`, ready once it says "listening on" (or, with `--output json`, writes its
    /// `serve_listening` line), at the port it says. (Port 0: serve binds one the kernel picks; a
    /// port picked here could be taken by another test's listener before serve bound it.)
    pub async fn start(deployer: &Deployer, dir: &Path, bootstrap: &Path, extra: &[&str]) -> Serve {
        let access_log = dir.join(format!("access-{}.log", crate::unique_suffix()));
        let mut args = vec!["serve", "--port", "0", "--bootstrap", bootstrap.to_str().expect("utf-8 path")];
        let log_arg = access_log.to_str().expect("utf-8 path").to_string();
        args.extend(["--access-log", &log_arg]);
        args.extend_from_slice(extra);
        let mut child = deployer
            .command_with_globals(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start movies-stack serve");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("stderr piped");
        let lines = stderr.clone();
        let reader = tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.lock().unwrap().push(line);
            }
        });
        let mut serve = Serve { child, base: String::new(), stage_path: "/prod".into(), stderr, access_log, reader };
        let listening =
            |l: &str| l.contains("serve: listening on http://") || l.contains(r#""event":"serve_listening""#);
        let Some(line) = serve.wait_line(listening, Duration::from_secs(120)).await else {
            let status = serve.child.try_wait().ok().flatten();
            panic!("serve did not start listening (exit {status:?}):\n{}", serve.stderr_text());
        };
        let port = crate::loopback_port_in(&line)
            .unwrap_or_else(|| panic!("serve's listening line names no http://127.0.0.1 port: {line}"));
        serve.base = format!("http://127.0.0.1:{port}");
        serve
    }

    /// serve's process id (None once it has been waited for).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stderr_text(&self) -> String {
        self.lines().join("\n")
    }

    /// The first stderr line matching `pred`, waiting up to `timeout` for it.
    pub async fn wait_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                return Some(l);
            }
            if start.elapsed() > timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether a stderr line contains `needle`, waiting up to 10 s for it (the lines are read
    /// as they come: one written just before an answer may not be read yet).
    pub async fn saw(&self, needle: &str) -> bool {
        self.wait_line(|l| l.contains(needle), Duration::from_secs(10)).await.is_some()
    }

    /// The pid of environment `env` (from "serve: env N started (pid P)").
    pub async fn env_pid(&self, env: u32) -> Option<u32> {
        let tag = format!("serve: env {env} started (pid ");
        let line = self.wait_line(|l| l.contains(&tag), Duration::from_secs(30)).await?;
        line.split(&tag).nth(1)?.trim_end_matches(')').parse().ok()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// `METHOD /prod{path}` with the key (if any) and the body. The future owns what it needs,
    /// so several can run at once.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> impl Future<Output = HttpAnswer> + Send + use<> {
        self.raw(method, &format!("{}{path}", self.stage_path), key, body)
    }

    /// `METHOD path` (stage not added).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> impl Future<Output = HttpAnswer> + Send + use<> {
        let (base, method, path) = (self.base.clone(), method.to_string(), path.to_string());
        let (key, body) = (key.map(str::to_string), body.map(str::to_string));
        async move {
            tokio::task::spawn_blocking(move || {
                let mut headers = vec![("User-Agent", USER_AGENT)];
                if let Some(k) = &key {
                    headers.push(("x-api-key", k.as_str()));
                }
                http_exchange(&base, &method, &path, &headers, body.as_deref())
                    .unwrap_or_else(|e| panic!("{method} {path} to serve: {e}"))
            })
            .await
            .expect("request thread")
        }
    }

    /// The access log lines, parsed.
    pub fn access_log(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("access log line is not JSON ({e}): {l}")))
            .collect()
    }

    /// SIGHUP, then wait for the reload to finish.
    pub async fn reload(&self) -> bool {
        let before = self.count("serve: rules reloaded");
        signal(&self.child, "-HUP");
        self.wait_line_count("serve: rules reloaded", before + 1, Duration::from_secs(60)).await
    }

    pub async fn wait_line_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let start = Instant::now();
        while self.count(needle) < n {
            if start.elapsed() > timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Ctrl-C (SIGINT), then the exit code and all of stderr.
    pub async fn stop(mut self) -> (Option<i32>, String) {
        signal(&self.child, "-INT");
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await;
        let code = match status {
            Ok(Ok(s)) => s.code(),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        };
        // Every line, up to the pipe's end.
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.reader).await;
        (code, self.stderr_text())
    }
}

fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("serve is running").to_string();
    let status = std::process::Command::new("kill").args([sig, &pid]).status().expect("run kill");
    assert!(status.success(), "kill {sig} {pid}");
}

/// A stack deployed into a moto of its own for loads against `serve`: the Premium plan's limits
/// raised out of the way (5,000 requests/s, burst 5,000, 2,000,000,000 a day), so that what is
/// measured is serve. Fields drop in their order: the deployer first, moto last.
pub struct LoadStack {
    pub deployer: Deployer,
    pub names: StackNames,
    pub dir: TempDir,
    pub proxy: Proxy,
    pub moto: Moto,
}

impl LoadStack {
    /// Start moto and a proxy, write the config under a temporary folder named after `prefix`,
    /// and `up` the stack with `artifact`.
    pub async fn deploy(prefix: &str, artifact: &Path) -> LoadStack {
        let moto = Moto::start();
        let proxy = Proxy::start(moto.url());
        let dir = TempDir::new(prefix);
        let names = StackNames::unique(prefix);
        let config = write_config(
            dir.path(),
            &names,
            &[
                ("usage_plans.premium.rate_limit", "5000.0"),
                ("usage_plans.premium.burst_limit", "5000"),
                ("usage_plans.premium.quota_limit", "2000000000"),
            ],
        );
        let deployer = Deployer::with(&config, proxy.url());
        deployer.up_json(&["--artifact", artifact.to_str().expect("utf-8 path")]).await;
        LoadStack { deployer, names, dir, proxy, moto }
    }
}
