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
    workspace_bin("movies-stack", "MOVIES_STACK_BIN", "deployer")
}

/// A binary of the workspace: `$env_var` (absolute, or relative to the repository), else
/// `<target>/debug/<name>` derived from this executable's path (a test binary in
/// `<target>/debug/deps/`, or a bin in `<target>/debug/`). `what` names it in the failure.
pub fn workspace_bin(name: &str, env_var: &str, what: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        let p = if p.is_absolute() { p } else { repo_root().join(p) };
        assert!(p.is_file(), "{env_var}={} does not exist", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut profile_dir = exe.parent().expect("the executable has a parent folder");
    if profile_dir.file_name().is_some_and(|n| n == "deps") {
        profile_dir = profile_dir.parent().expect("deps has a parent");
    }
    let bin = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the {what} binary {} does not exist: run `cargo build --workspace --bins` first (scripts/test.sh does), \
         or set {env_var}",
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
        // `serve`'s discovery files (one per stack: each test's are its own) stay out of the
        // home folder; a test that reads them sets a folder of its own.
        .env("MOVIES_STACK_STATE_DIR", std::env::temp_dir().join("mse2e-state"))
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
    /// Whether an administrator bootstrapped the stack (its roles' permissions boundary) before
    /// this deployer's first run through a proxy: true but for tests of what happens without.
    pub bootstrap: bool,
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
        Deployer {
            bin: deployer_bin(),
            config: None,
            endpoint: None,
            cwd: repo_root(),
            timeout,
            env: Vec::new(),
            bootstrap: true,
        }
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
    /// when dropped. A run through a proxy of this process first tells the proxy's strict model
    /// which policy this user holds ([`Deployer::hold_policy`]).
    fn command(&self, args: &[String]) -> tokio::process::Command {
        self.hold_policy(args);
        self.bare_command(args)
    }

    fn bare_command(&self, args: &[String]) -> tokio::process::Command {
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

    /// The user who runs the deployer holds exactly the policy `movies-stack iam-policy` prints
    /// for the same config, environment and region: register it with the proxy the run goes
    /// through (its port in `--endpoint-url`), whose strict model authorizes every request against
    /// it ([`crate::strict::authz`]). Computed once per distinct config content.
    pub fn hold_policy(&self, args: &[String]) {
        let flag = |name: &str| -> Option<String> {
            let eq = format!("{name}=");
            args.iter().enumerate().find_map(|(i, a)| {
                if a == name { args.get(i + 1).cloned() } else { a.strip_prefix(&eq).map(str::to_string) }
            })
        };
        let env_var = |name: &str| self.env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let Some(endpoint) = flag("--endpoint-url").or_else(|| env_var("AWS_ENDPOINT_URL")) else { return };
        let Some(port) =
            endpoint.strip_prefix("http://127.0.0.1:").and_then(|rest| rest.trim_end_matches('/').parse::<u16>().ok())
        else {
            return;
        };
        let mut scope: Vec<String> = Vec::new();
        // The endpoint too: settings that only an emulator accepts need it (no call is made).
        for name in ["--config", "--env", "--region", "--endpoint-url"] {
            if let Some(v) = flag(name) {
                scope.push(name.to_string());
                scope.push(v);
            }
        }
        let content = flag("--config").and_then(|c| std::fs::read(self.cwd.join(c)).ok()).unwrap_or_default();
        let key = (scope.clone(), content.clone(), env_var("AWS_REGION"));
        type Cache = std::sync::Mutex<
            std::collections::HashMap<(Vec<String>, Vec<u8>, Option<String>), Option<serde_json::Value>>,
        >;
        static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let cached = cache.lock().unwrap().get(&key).cloned();
        let policy = match cached {
            Some(p) => p,
            None => {
                let mut policy_args = scope;
                policy_args.extend(["iam-policy", "--account", crate::strict::authz::ACCOUNT].map(String::from));
                let mut cmd = self.bare_command(&policy_args);
                let out = cmd.as_std_mut().output();
                // A config the deployer refuses makes no AWS call either: nothing to hold.
                let p = out
                    .ok()
                    .filter(|o| o.status.success())
                    .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok());
                cache.lock().unwrap().insert(key, p.clone());
                p
            }
        };
        let Some(p) = policy else { return };
        crate::strict::authz::register_policy(port, p);
        if self.bootstrap
            && let Some(moto) = crate::strict::authz::upstream_of(port)
        {
            self.bootstrap_on(&moto, &flag, &content);
        }
    }

    /// What an administrator does once per stack before its first `up` with the printed policy:
    /// `bootstrap --apply` (the roles' permissions boundary), straight against moto (as an
    /// administrator, not through the proxy and its policy). Once per moto and config content.
    fn bootstrap_on(&self, moto: &str, flag: &dyn Fn(&str) -> Option<String>, content: &[u8]) {
        type Done = std::sync::Mutex<std::collections::HashSet<(String, Vec<String>, Vec<u8>)>>;
        static DONE: std::sync::OnceLock<Done> = std::sync::OnceLock::new();
        let mut args: Vec<String> = Vec::new();
        for name in ["--config", "--env", "--region"] {
            if let Some(v) = flag(name) {
                args.push(name.to_string());
                args.push(v);
            }
        }
        let key = (moto.to_string(), args.clone(), content.to_vec());
        // Held while bootstrapping: two deployers started at once (a race test) must both find
        // the boundary in place.
        let mut done = DONE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        if done.contains(&key) {
            return;
        }
        // A moto that is not there (a test of what happens then) fails the run itself, not this;
        // and `bootstrap` would spend 1.4 s retrying the refused connection, per run.
        let reachable = moto
            .strip_prefix("http://")
            .and_then(|addr| addr.trim_end_matches('/').parse::<std::net::SocketAddr>().ok())
            .is_none_or(|addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
        if !reachable {
            return;
        }
        args.extend(["--endpoint-url", moto, "bootstrap", "--apply"].map(String::from));
        let out = self.bare_command(&args).as_std_mut().output();
        if out.is_ok_and(|o| o.status.success()) {
            done.insert(key);
        }
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
