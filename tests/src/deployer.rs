//! Runs the real `movies-stack` binary.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::{repo_root, venv_dir};

/// The deployer binary: `$MOVIES_STACK_BIN`, else `<target>/debug/movies-stack` derived from this
/// executable's path (a test binary `<target>/debug/deps/e2e-xxxx`, or a bin such as
/// `<target>/debug/bench_deploy`).
pub fn deployer_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MOVIES_STACK_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        let p = if p.is_absolute() { p } else { repo_root().join(p) };
        assert!(p.is_file(), "MOVIES_STACK_BIN={} does not exist", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut profile_dir = exe.parent().expect("the executable has a parent folder");
    if profile_dir.file_name().is_some_and(|n| n == "deps") {
        profile_dir = profile_dir.parent().expect("deps has a parent");
    }
    let bin = profile_dir.join(format!("movies-stack{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the deployer binary {} does not exist: run `cargo build --workspace --bins` first (scripts/test.sh does), \
         or set MOVIES_STACK_BIN",
        bin.display()
    );
    bin
}

/// One finished run of the deployer.
#[derive(Debug, Clone)]
pub struct Output {
    pub args: Vec<String>,
    /// The exit code; -1 if killed by a signal or the timeout.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    /// Panic with the whole output unless the exit code is 0.
    pub fn assert_ok(&self) -> &Output {
        assert_eq!(self.code, 0, "movies-stack failed:\n{self}");
        self
    }

    /// stdout parsed as exactly one JSON value (panics with the output otherwise).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not exactly one JSON document ({e}):\n{self}"))
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ movies-stack {}", self.args.join(" "))?;
        writeln!(f, "exit code {} after {:.1}s", self.code, self.elapsed.as_secs_f64())?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// PATH with the venv first: cargo-lambda (and the python that finds zig) for runs that build
/// the handler.
pub fn venv_path() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![venv_dir().join("bin")];
    paths.extend(std::env::split_paths(&path));
    std::env::join_paths(paths).expect("PATH")
}

/// The environment every test run of the binary gets: dummy credentials, us-east-1, nothing
/// from the developer's own AWS setup (profile, endpoint, session), no colours, the venv on PATH.
pub fn testing_env(cmd: &mut tokio::process::Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("AWS_ENDPOINT_URL")
            || ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"].contains(&k.as_ref())
        {
            cmd.env_remove(k.as_ref());
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1")
        .env("PATH", venv_path());
}

/// Runs `movies-stack` with a config and an endpoint (usually a [`crate::Proxy`]).
#[derive(Debug, Clone)]
pub struct Deployer {
    pub bin: PathBuf,
    pub config: Option<PathBuf>,
    pub endpoint: Option<String>,
    pub cwd: PathBuf,
    pub timeout: Duration,
    pub env: Vec<(String, String)>,
}

impl Default for Deployer {
    fn default() -> Self {
        Deployer::new()
    }
}

impl Deployer {
    /// No config and no endpoint yet; working directory = the repo root (so `--env NAME` finds
    /// `config/NAME.toml`).
    pub fn new() -> Deployer {
        let timeout = std::env::var("MOVIES_STACK_E2E_TIMEOUT")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(600));
        Deployer { bin: deployer_bin(), config: None, endpoint: None, cwd: repo_root(), timeout, env: Vec::new() }
    }

    /// `--config PATH --endpoint-url URL` on every run.
    pub fn with(config: &Path, endpoint: &str) -> Deployer {
        Deployer::new().config(config).endpoint(endpoint)
    }

    pub fn config(mut self, path: &Path) -> Deployer {
        self.config = Some(path.to_path_buf());
        self
    }

    pub fn endpoint(mut self, url: &str) -> Deployer {
        self.endpoint = Some(url.to_string());
        self
    }

    /// Run with the global `--config`/`--endpoint-url` flags (if set) followed by `args`.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_raw(&self.with_globals(args)).await
    }

    /// `--config`/`--endpoint-url` (if set) followed by `args`.
    fn with_globals(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        if let Some(c) = &self.config {
            all.push("--config".into());
            all.push(c.display().to_string());
        }
        if let Some(e) = &self.endpoint {
            all.push("--endpoint-url".into());
            all.push(e.clone());
        }
        all.extend(args.iter().map(|s| s.to_string()));
        all
    }

    /// The command [`Deployer::run`] would run (global flags, test environment, working
    /// directory), for a long-running process the test drives itself, such as `serve`. stdin is
    /// null, stdout and stderr piped (the caller may set them otherwise), killed on drop.
    pub fn command_with_globals(&self, args: &[&str]) -> tokio::process::Command {
        self.command(&self.with_globals(args))
    }

    /// The command for exactly `args`: the testing environment, stdout and stderr piped, killed
    /// when dropped.
    fn command(&self, args: &[String]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        testing_env(&mut cmd);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Start a run that the test reads while it runs (e.g. `logs --follow`), with the global
    /// flags as in [`Deployer::run`]. Killed when the child is dropped.
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.command(&self.with_globals(args))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()))
    }

    /// Run with exactly `args` (no flags added).
    pub async fn run_raw<S: AsRef<str>>(&self, args: &[S]) -> Output {
        let args: Vec<String> = args.iter().map(|s| s.as_ref().to_string()).collect();
        let mut cmd = self.command(&args);
        let start = Instant::now();
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => Output {
                args,
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                elapsed: start.elapsed(),
            },
            Ok(Err(e)) => panic!("waiting for movies-stack {args:?}: {e}"),
            Err(_) => panic!("movies-stack {args:?} did not finish within {:?} (killed)", self.timeout),
        }
    }

    /// `--output json up EXTRA...`: asserts exit 0 and returns the run and the parsed stdout.
    pub async fn up_json(&self, extra: &[&str]) -> (Output, serde_json::Value) {
        let mut args = vec!["--output", "json", "up"];
        args.extend_from_slice(extra);
        let out = self.run(&args).await;
        out.assert_ok();
        let json = out.json();
        (out, json)
    }
}
