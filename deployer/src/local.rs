//! What a running `movies-stack serve` shares with `traces --local` and `top --local` on the same
//! machine: where to find it, and the two documents its admin listener answers.
//!
//! `serve` opens a second listener on `127.0.0.1` (an ephemeral port, never the API's: the API
//! answers as API Gateway does, and traces are not the API's business) and writes
//! [`Discovery`] to [`discovery_path`] for its stack; it removes the file when it stops. The
//! readers find it there ([`find`]); a file left by a `serve` that is gone is told apart by the
//! refused connection.
//!
//! - `GET /traces?limit=N`: [`LocalTraces`], the last traces (newest first) in the shape of X-Ray's
//!   `BatchGetTraces` answer (`Traces[].Segments[].Document` are segment documents, JSON text), so
//!   one parser reads what AWS and `serve` record.
//! - `GET /stats`: [`ServeStats`], the request, status and latency counters per minute over the
//!   last hour, the function's concurrency and each key's use today.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How long a reader waits for `serve` to answer (it answers from memory).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// How many traces `serve` keeps (the oldest go first).
pub const KEPT_TRACES: usize = 200;

/// The folder of the discovery files: `MOVIES_STACK_STATE_DIR`, else `$XDG_RUNTIME_DIR/movies-stack`,
/// else `$HOME/.local/state/movies-stack`, else the temporary folder's `movies-stack`.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MOVIES_STACK_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Path::new(&dir).join("movies-stack");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return Path::new(&home).join(".local/state/movies-stack");
    }
    std::env::temp_dir().join("movies-stack")
}

/// Where the `serve` of `stack` writes its [`Discovery`].
pub fn discovery_path(stack: &str) -> PathBuf {
    state_dir().join(format!("serve-{stack}.json"))
}

/// The discovery file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    pub stack: String,
    pub pid: u32,
    /// `http://127.0.0.1:PORT`: the admin listener.
    pub admin: String,
    /// The API's base URL, stage included (`http://127.0.0.1:PORT/STAGE`).
    pub api: String,
}

impl Discovery {
    /// Written by `serve` (the folder created, the file replaced atomically).
    pub fn write(&self) -> std::io::Result<PathBuf> {
        let path = discovery_path(&self.stack);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("json.{}", self.pid));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("a discovery serializes"))?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

/// The `serve` of `stack` on this machine, from its discovery file. The error names the file and
/// says how to start one.
pub fn find(stack: &str) -> Result<Discovery> {
    let path = discovery_path(stack);
    let text = std::fs::read_to_string(&path).map_err(|_| not_running(stack, &path))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::input(format!("{}: not a serve discovery file: {e}", path.display())))
}

fn not_running(stack: &str, path: &Path) -> Error {
    Error::input(format!(
        "--local: no `movies-stack serve` of stack {stack} is running here ({} is missing); start one with `movies-stack --env ENV serve`",
        path.display()
    ))
}

/// `GET {admin}{path_and_query}`, the body parsed as `T`. A refused connection means the `serve`
/// that wrote the discovery file is gone.
pub async fn get<T: serde::de::DeserializeOwned>(found: &Discovery, path_and_query: &str) -> Result<T> {
    let gone = || not_running(&found.stack, &discovery_path(&found.stack));
    let authority = found.admin.strip_prefix("http://").unwrap_or(&found.admin).trim_end_matches('/').to_string();
    let fetch = async {
        let stream = tokio::net::TcpStream::connect(&authority).await.map_err(|_| gone())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::other(format!("serve at {}: {e}", found.admin)))?;
        tokio::spawn(conn);
        let req = hyper::Request::get(path_and_query)
            .header("host", &authority)
            .body(Empty::<Bytes>::new())
            .map_err(|e| Error::other(format!("GET {path_and_query}: {e}")))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| Error::other(format!("serve at {}: GET {path_and_query}: {e}", found.admin)))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::other(format!("serve at {}: GET {path_and_query}: {e}", found.admin)))?
            .to_bytes();
        if !status.is_success() {
            return Err(Error::other(format!(
                "serve at {}: GET {path_and_query}: {status}: {}",
                found.admin,
                String::from_utf8_lossy(&body)
            )));
        }
        serde_json::from_slice(&body).map_err(|e| {
            Error::other(format!("serve at {}: GET {path_and_query}: unexpected answer: {e}", found.admin))
        })
    };
    tokio::time::timeout(ANSWER_TIMEOUT, fetch)
        .await
        .map_err(|_| Error::other(format!("serve at {} did not answer within {ANSWER_TIMEOUT:?}", found.admin)))?
}

/// `GET /traces`: X-Ray's `BatchGetTraces` answer shape (newest first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LocalTraces {
    pub traces: Vec<LocalTrace>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LocalTrace {
    /// `1-XXXXXXXX-XXXXXXXXXXXXXXXXXXXXXXXX`.
    pub id: String,
    /// Seconds, from the first segment's start to the last one's end.
    pub duration: f64,
    pub segments: Vec<LocalSegment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LocalSegment {
    pub id: String,
    /// The segment document, JSON text, as X-Ray returns it (subsegments nested in it).
    pub document: String,
}

/// `GET /stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServeStats {
    pub stack: String,
    /// The stage served (`dev`, `prod`, …).
    pub stage: String,
    /// Seconds since the epoch: when `serve` started, and when this was read.
    pub started: u64,
    pub now: u64,
    /// One entry per minute of the last hour that saw a request, oldest first.
    pub minutes: Vec<MinuteStats>,
    /// Execution environments busy now, and the most `serve` runs at once (the function's
    /// reserved concurrency, or its default).
    pub running: u32,
    pub max_running: u32,
    /// Each API key's requests today (UTC) against its plan's quota.
    pub keys: Vec<KeyStats>,
}

/// The requests answered during one minute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MinuteStats {
    /// Seconds since the epoch, a multiple of 60.
    pub start: u64,
    pub requests: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// 429s of a key's throttle or quota (counted in `status_4xx` too).
    pub throttled: u64,
    /// Requests that reached the function, and those it failed (a function error or no answer).
    pub invocations: u64,
    pub function_errors: u64,
    /// Latency as API Gateway measures it (request received → answer), and of the integration
    /// alone (the function), milliseconds; `None` without a request (resp. an invocation).
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub integration_p50_ms: Option<f64>,
    pub integration_p99_ms: Option<f64>,
    /// DynamoDB calls the function made (from its X-Ray subsegments) and those throttled.
    pub dynamodb_calls: u64,
    pub dynamodb_throttles: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyStats {
    pub id: String,
    pub name: String,
    /// The usage plan's name.
    pub plan: String,
    pub used_today: u64,
    /// The plan's quota and its period (`DAY`, …), when it has one.
    pub quota_limit: Option<u64>,
    pub quota_period: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_document_has_batch_get_traces_shape() {
        let t = LocalTraces {
            traces: vec![LocalTrace {
                id: "1-5759e988-bd862e3fe1be46a994272793".into(),
                duration: 0.25,
                segments: vec![LocalSegment { id: "53995c3f42cd8ad8".into(), document: "{}".into() }],
            }],
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["Traces"][0]["Segments"][0]["Document"], "{}");
        assert_eq!(v["Traces"][0]["Duration"], 0.25);
    }

    #[test]
    fn the_discovery_file_is_per_stack_under_the_state_dir() {
        let p = discovery_path("movies-dev");
        assert!(p.ends_with("serve-movies-dev.json"), "{}", p.display());
    }
}
