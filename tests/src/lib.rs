//! Fixtures for the end-to-end tests: real processes, no SDK mocks.
//!
//! - [`Account`]: what most tests start with: moto, the proxy, read-back clients and a temp
//!   folder, and in it [`Stack`]s (names, config, deployer) made of the pieces below.
//! - [`Moto`]: a `moto_server` from the project venv on a free loopback port (one per test).
//! - [`Proxy`]: an HTTP/1.1 reverse proxy between the deployer and moto that records every AWS
//!   call ([`Call`]) and can inject faults ([`Rule`]: latency, error answers, windows). In it,
//!   the [`strict`] AWS model: requests validated against AWS's service models, and AWS's
//!   refusals and waits that moto does not have ([`Behaviour`]), on unless a test turns one off.
//! - [`Deployer`]: runs the real `movies-stack` binary.
//! - [`write_config`]: a TOML config for a unique stack ([`StackNames`]).
//! - [`Aws`]: SDK clients for reading the deployed state back (straight to moto, not via the proxy).
//! - [`artifact`]: the handler zip the suite deploys, and variants of it.
//! - [`inventory`]: everything on the server, and the checks of a converged / removed stack.
//! - [`RuntimeApi`] / [`Function`]: a Lambda Runtime API server and the real `bootstrap` process
//!   polling it.
//! - [`Serve`]: a running `movies-stack serve`, and calls to it.
//!
//! Environment read by the fixtures:
//! - `MOVIES_STACK_VENV`: the venv made by `scripts/setup.sh` (default `<repo>/.venv`).
//! - `MOVIES_STACK_BIN`: the deployer binary (default `<target>/debug/movies-stack`, next to the
//!   test binary's `deps/` folder).
//! - `MOVIES_STACK_BOOTSTRAP`: the handler binary (default `<target>/debug/bootstrap`).
//! - `MOVIES_STACK_ARTIFACT`: the packaged handler zip (`scripts/test.sh` builds it once).
//! - `MOVIES_STACK_E2E_TIMEOUT`: seconds one deployer run may take (default 600).

mod account;
pub mod artifact;
mod aws;
pub mod bench;
pub mod cbor;
pub mod chaos;
mod config;
mod deployer;
pub mod iam_coverage;
pub mod inventory;
mod moto;
pub mod proxy;
pub mod runtime_api;
pub mod serve;
pub mod strict;

pub use account::{Account, Stack};
pub use aws::{Aws, ec2_filter, sdk_config};
pub use config::{REMOVE, StackNames, TempDir, base_config, write_config, write_config_file};
pub use deployer::{Deployer, Output, deployer_bin};
pub use moto::Moto;
pub use proxy::{Call, Fault, Proxy, ProxyBuilder, Rule};
pub use runtime_api::{Function, RuntimeApi};
pub use serve::{LoadStack, Serve};
pub use strict::Behaviour;

use std::path::PathBuf;

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().expect("tests/ has a parent").to_path_buf()
}

/// The Python venv holding `moto_server` and `cargo-lambda`.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("MOVIES_STACK_VENV") {
        Some(v) if !v.is_empty() => {
            let p = PathBuf::from(v);
            if p.is_absolute() { p } else { repo_root().join(p) }
        }
        _ => repo_root().join(".venv"),
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// The port of the first `http://127.0.0.1:PORT` in `text` (what a server that bound port 0 logs).
pub fn loopback_port_in(text: &str) -> Option<u16> {
    let rest = text.split("http://127.0.0.1:").nth(1)?;
    rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

/// A short string unique to this process and call (lowercase base-36).
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0) as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut x = nanos
        .wrapping_mul(6364136223846793005)
        .wrapping_add(u64::from(std::process::id()) << 20)
        .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut s = String::new();
    for _ in 0..7 {
        let d = (x % 36) as u8;
        s.push(if d < 10 { (b'0' + d) as char } else { (b'a' + d - 10) as char });
        x /= 36;
    }
    s
}

/// A plain HTTP/1.1 request over std's TcpStream (no async runtime needed): `(status, body)`.
pub fn http_request(base_url: &str, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    http_exchange(base_url, method, path, &[], body).map(|a| (a.status, a.body))
}

/// An HTTP answer: status, headers (names in lower case, in order) and body.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// [`http_request`] with extra request headers, answering the headers too. `Content-Type:
/// application/json` unless `headers` sets one; one request per connection.
pub fn http_exchange(
    base_url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<HttpAnswer> {
    use std::io::{Read, Write};
    let host = base_url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    let mut extra = String::new();
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        extra.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        extra.push_str(&format!("{k}: {v}\r\n"));
    }
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {:.200}", text)))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpAnswer { status, headers, body: body.to_string() })
}

/// Collects many checks and reports them all at once, with honest counts.
#[derive(Debug, Default)]
pub struct Checks {
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    pub fn new() -> Checks {
        Checks::default()
    }

    /// Record one check.
    pub fn check(&mut self, ok: bool, what: impl std::fmt::Display) -> bool {
        if ok {
            self.passed += 1;
        } else {
            self.failed.push(what.to_string());
        }
        ok
    }

    /// Record `actual == expected`.
    pub fn eq<A, E>(&mut self, what: &str, actual: A, expected: E) -> bool
    where
        A: PartialEq<E> + std::fmt::Debug,
        E: std::fmt::Debug,
    {
        let ok = actual == expected;
        self.check(ok, format_args!("{what}: got {actual:?}, expected {expected:?}"))
    }

    pub fn passed(&self) -> usize {
        self.passed
    }

    pub fn failed(&self) -> &[String] {
        &self.failed
    }

    /// Print the counts and every failure; panic if any failed.
    pub fn finish(self, title: &str) {
        println!("{title}: {} checks passed, {} failed", self.passed, self.failed.len());
        for f in &self.failed {
            println!("  FAILED: {f}");
        }
        assert!(
            self.failed.is_empty(),
            "{title}: {} of {} checks failed:\n  {}",
            self.failed.len(),
            self.passed + self.failed.len(),
            self.failed.join("\n  ")
        );
    }
}
