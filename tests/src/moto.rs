//! A `moto_server` process on a loopback port of its own, killed on drop.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{http_request, loopback_port_in, unique_suffix, venv_dir};

/// One moto server. Start-up takes about half a second; use one per test.
pub struct Moto {
    child: Child,
    port: u16,
    url: String,
    log: PathBuf,
}

impl Moto {
    /// Start `moto_server` from the venv with AWS managed policies loaded, wait until it answers,
    /// and switch Lambda to the Docker-less backend (this must happen before any function is
    /// created: functions made before the switch become invisible).
    ///
    /// Panics (never skips) when the venv is missing: run `scripts/setup.sh`.
    pub fn start() -> Moto {
        const MOTO_SERVER: &str = "import gc, sys\nfrom moto.server import main\ngc.freeze()\n\
                                   gc.set_threshold(50000, 20, 20)\nsys.exit(main())";
        let venv = venv_dir();
        let bin = venv.join("bin").join("moto_server");
        if !bin.is_file() {
            panic!(
                "moto_server not found at {}.\nRun scripts/setup.sh first (it creates the venv with the pinned moto); \
                 set MOVIES_STACK_VENV if your venv lives elsewhere.",
                bin.display()
            );
        }
        let log = std::env::temp_dir().join(format!("mse2e-moto-{}.log", unique_suffix()));
        let out = File::create(&log).expect("create moto log file");
        let err = out.try_clone().expect("clone log handle");
        // `moto_server` itself, with Python's cyclic GC made lazier: a collection every 700
        // allocations spent 15-20% of moto's CPU in the suite (perf), and a test's moto lives two
        // minutes at most. The objects of the imports are frozen out of collections. Port 0: the
        // server binds a port the kernel picks and logs it. (A port picked here and handed over
        // could be taken meanwhile by another test's listener, which then answered for this moto
        // until it went away.)
        let child = Command::new(venv.join("bin").join("python"))
            .args(["-c", MOTO_SERVER, "-H", "127.0.0.1", "-p", "0"])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut moto = Moto { child, port: 0, url: String::new(), log };
        if let Err(e) = moto.wait_ready(Duration::from_secs(60)) {
            panic!("moto_server did not start: {e}");
        }
        let (status, body) =
            http_request(&moto.url, "POST", "/moto-api/config", Some(r#"{"lambda":{"use_docker":false}}"#))
                .unwrap_or_else(|e| panic!("POST /moto-api/config to {}: {e}", moto.url));
        let lambda_simple =
            serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["lambda"]["use_docker"].as_bool())
                == Some(false);
        assert!((200..300).contains(&status) && lambda_simple, "POST /moto-api/config answered {status}: {body}");
        moto
    }

    /// The port the server logged (`* Running on http://127.0.0.1:PORT`), once it has bound it.
    fn logged_port(&self) -> Option<u16> {
        loopback_port_in(&std::fs::read_to_string(&self.log).ok()?)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if self.port == 0
                && let Some(port) = self.logged_port()
            {
                self.port = port;
                self.url = format!("http://127.0.0.1:{port}");
            }
            if self.port != 0
                && let Ok((200, _)) = http_request(&self.url, "GET", "/moto-api/", None)
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "moto_server on port {} exited with {status}; log {}:\n{}",
                    self.port,
                    self.log.display(),
                    self.log_tail(20)
                ));
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "moto_server on port {} did not answer GET /moto-api/ within {timeout:?}; log:\n{}",
                    self.port,
                    self.log_tail(20)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Clear every backend (about 1 s). The Lambda `use_docker:false` setting survives.
    pub fn reset(&self) {
        let (status, body) =
            http_request(&self.url, "POST", "/moto-api/reset", Some("")).expect("POST /moto-api/reset");
        assert!((200..300).contains(&status), "POST /moto-api/reset answered {status}: {body}");
    }

    /// The last `n` lines of the server's log (requests and tracebacks).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("moto_server log kept at {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}
