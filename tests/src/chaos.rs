//! Tools for the reliability tests: a seeded RNG (the seed is printed, so a failing run can be
//! replayed with `MOVIES_STACK_SEED=<seed>`), random fault schedules for the [`Proxy`], fault
//! windows that open at the first matching call, and a deployer process the test can kill or
//! interrupt while it runs.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::{Deployer, Output, Proxy, Rule};

/// SplitMix64: small, seedable, good enough to pick delays and fault positions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        lo + hi.saturating_sub(lo).mul_f64(self.unit())
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
}

/// `$MOVIES_STACK_SEED` if set (to replay a run), else a fresh seed from the clock. Printed
/// either way, with the test's label.
pub fn seed(label: &str) -> u64 {
    let seed =
        std::env::var("MOVIES_STACK_SEED").ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            nanos ^ (u64::from(std::process::id()) << 32)
        });
    println!("{label}: seed {seed} (replay with MOVIES_STACK_SEED={seed})");
    seed
}

/// One kind of answer in a random fault schedule.
#[derive(Debug, Clone)]
pub struct FaultKind {
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
}

/// Answer about `rate` of the first `horizon` calls to `service` with one of `kinds` (picked at
/// random), never more than `max_run` calls in a row.
///
/// The proxy has no probability rule, so the schedule is drawn here and installed as one
/// `skip(k).times(1)` rule per faulted position. The proxy does not count a call against later
/// fault rules once an earlier rule answered it, so rule `j` (0-based) for 1-based position `p`
/// skips `p - 1 - j` calls. Returns the faulted positions (1-based), for printing.
///
/// `max_run` exists because the SDK makes 4 attempts per call: with `max_run <= 3` a run of
/// faults alone cannot exhaust one call's attempts (interleaved concurrent calls still can; the
/// caller decides what that should mean).
pub fn sprinkle(
    proxy: &Proxy,
    rng: &mut Rng,
    service: &str,
    rate: f64,
    horizon: usize,
    max_run: usize,
    kinds: &[FaultKind],
) -> Vec<usize> {
    let mut positions = Vec::new();
    let mut run = 0;
    for p in 1..=horizon {
        if run < max_run && rng.unit() < rate {
            positions.push(p);
            run += 1;
        } else {
            run = 0;
        }
    }
    for (j, &p) in positions.iter().enumerate() {
        let k = &kinds[rng.below(kinds.len())];
        proxy.add_rule(Rule::new().service(service).skip(p - 1 - j).times(1).fail(k.status, k.code, k.message));
    }
    positions
}

/// A fault window that opens at the first call matching `rule` and stays open for `window`:
/// add the returned value's rule, run the deployer, and `await` [`Window::open_when_hit`]
/// meanwhile. The window (not a fixed count) is what the deployer's waits must outlast.
pub struct Window {
    first: usize,
    rule: Rule,
    window: Duration,
}

impl Window {
    /// Install the rule for the first matching call now (`rule` must carry a fault).
    pub fn arm(proxy: &Proxy, rule: Rule, window: Duration) -> Window {
        assert!(rule.fault.is_some(), "a window needs a fault");
        let first = proxy.rule_hits().len();
        proxy.add_rule(rule.clone().times(1));
        Window { first, rule, window }
    }

    /// Wait until the first matching call was answered with the fault, then keep answering it
    /// for `window`. Returns when the window rule is installed, or `false` if `run` ended first.
    pub async fn open_when_hit(&self, proxy: &Proxy, run: &Running) -> bool {
        loop {
            if proxy.rule_hits().get(self.first).copied().unwrap_or(0) > 0 {
                proxy.add_rule(self.rule.clone().during(Duration::ZERO, self.window));
                return true;
            }
            if run.finished() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The environment of a spawned deployer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    /// As [`Deployer::run`]: dummy credentials, region us-east-1, no AWS profile or endpoint
    /// variables from the test's environment.
    Testing,
    /// Nothing but `PATH`, `HOME` (an empty folder unless `Deployer::env` sets one) and what
    /// `Deployer::env` adds: no credentials, no region, no profile.
    Empty,
}

/// A deployer process the test can watch, kill or interrupt.
pub struct Running {
    child: tokio::process::Child,
    pub pid: u32,
    pub args: Vec<String>,
    pub started: Instant,
    timeout: Duration,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    /// The empty HOME of an [`Env::Empty`] run, removed when it ends.
    home: Option<std::path::PathBuf>,
}

fn reader<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    mut r: R,
    buf: Arc<Mutex<Vec<u8>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    })
}

impl Running {
    /// Like [`Deployer::run`]: `--config`/`--endpoint-url` (if set) then `args`.
    pub fn spawn(d: &Deployer, args: &[&str]) -> Running {
        let mut all: Vec<String> = Vec::new();
        if let Some(c) = &d.config {
            all.extend(["--config".to_string(), c.display().to_string()]);
        }
        if let Some(e) = &d.endpoint {
            all.extend(["--endpoint-url".to_string(), e.clone()]);
        }
        all.extend(args.iter().map(|s| s.to_string()));
        Running::spawn_raw(d, &all, Env::Testing)
    }

    /// Exactly `args`, in the given environment.
    pub fn spawn_raw<S: AsRef<str>>(d: &Deployer, args: &[S], env: Env) -> Running {
        let args: Vec<String> = args.iter().map(|s| s.as_ref().to_string()).collect();
        d.hold_policy(&args);
        let mut cmd = tokio::process::Command::new(&d.bin);
        cmd.args(&args)
            .current_dir(&d.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut home = None;
        match env {
            Env::Testing => crate::deployer::testing_env(&mut cmd),
            Env::Empty => {
                let dir = std::env::temp_dir().join(format!("mse2e-home-{}", crate::unique_suffix()));
                std::fs::create_dir_all(&dir).expect("create empty HOME");
                cmd.env_clear().env("PATH", crate::deployer::venv_path()).env("HOME", &dir).env("NO_COLOR", "1");
                home = Some(dir);
            }
        }
        for (k, v) in &d.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", d.bin.display()));
        let pid = child.id().expect("child pid");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            reader(child.stdout.take().expect("stdout"), stdout.clone()),
            reader(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Running { child, pid, args, started: Instant::now(), timeout: d.timeout, stdout, stderr, readers, home }
    }

    /// stderr so far.
    pub fn stderr_now(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Whether the process has exited (an unreaped zombie counts as exited).
    pub fn finished(&self) -> bool {
        !pid_alive(self.pid)
    }

    /// Send a signal by name (`INT`, `TERM`, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", name, &self.pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill -s {name} {}: {e}", self.pid));
        assert!(status.success() || self.finished(), "kill -s {name} {} failed: {status}", self.pid);
    }

    /// SIGKILL now, reap it, and return what it printed (`code` -1 if the signal killed it,
    /// its own code if it had already exited).
    pub async fn kill(mut self) -> Output {
        let _ = self.child.start_kill();
        self.finish().await
    }

    /// Wait for it to exit on its own (panics after the deployer timeout).
    pub async fn wait(mut self) -> Output {
        match tokio::time::timeout(self.timeout, self.child.wait()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("waiting for movies-stack {:?}: {e}", self.args),
            Err(_) => {
                let _ = self.child.start_kill();
                let out = self.finish().await;
                panic!("movies-stack {:?} did not finish within {:?} (killed):\n{out}", out.args, self.timeout);
            }
        }
        self.finish().await
    }

    async fn finish(&mut self) -> Output {
        let status = self.child.wait().await.expect("wait for the child");
        for r in self.readers.drain(..) {
            let _ = r.await;
        }
        if let Some(home) = self.home.take() {
            let _ = std::fs::remove_dir_all(home);
        }
        Output {
            args: self.args.clone(),
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned(),
            elapsed: self.started.elapsed(),
        }
    }
}

/// Whether the process with this pid still exists (zombies count as gone).
pub fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.split(") ").nth(1).is_some_and(|rest| rest.starts_with('Z')))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The skip arithmetic of [`sprinkle`], against a live proxy: exactly the drawn positions
    /// are answered with a fault (the upstream is dead, so the others are 502s from the proxy).
    #[test]
    fn sprinkle_faults_exactly_the_drawn_positions() {
        // 60 GetRestApis at once would meet API Gateway's shared quota (burst 40) in the strict
        // model; this test is about the rules' skip arithmetic only.
        let proxy = Proxy::builder(&format!("http://127.0.0.1:{}", crate::free_port()))
            .without(crate::Behaviour::ApiGatewayQuotas, "60 calls in a burst: the test checks rule arithmetic only")
            .start();
        let mut rng = Rng::new(42);
        let kinds = [FaultKind { status: 429, code: "TooManyRequestsException", message: "Too Many Requests" }];
        let positions = sprinkle(&proxy, &mut rng, "apigateway", 0.4, 60, 3, &kinds);
        assert!(positions.len() > 10, "{positions:?}");
        let auth = "AWS4-HMAC-SHA256 Credential=testing/20261125/us-east-1/apigateway/aws4_request, SignedHeaders=host, Signature=0";
        for _ in 0..60 {
            let host = proxy.url().trim_start_matches("http://").to_string();
            let mut s = std::net::TcpStream::connect(&host).unwrap();
            use std::io::{Read, Write};
            write!(s, "GET /restapis HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
        }
        let injected: Vec<usize> =
            proxy.calls().iter().enumerate().filter(|(_, c)| c.injected).map(|(i, _)| i + 1).collect();
        assert_eq!(injected, positions);
        let mut longest = 0;
        let mut run = 0;
        for c in proxy.calls() {
            run = if c.injected { run + 1 } else { 0 };
            longest = longest.max(run);
        }
        assert!(longest <= 3, "at most 3 faults in a row: {longest}");
    }

    #[test]
    fn rng_is_deterministic_and_spread() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut r = Rng::new(1);
        let mean = (0..10_000).map(|_| r.unit()).sum::<f64>() / 10_000.0;
        assert!((0.45..0.55).contains(&mean), "{mean}");
        let d = r.between(Duration::from_secs(1), Duration::from_secs(2));
        assert!(d >= Duration::from_secs(1) && d < Duration::from_secs(2));
    }
}
