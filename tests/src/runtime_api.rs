//! A Lambda Runtime API server on 127.0.0.1, and the real `bootstrap` process polling it.
//!
//! [`RuntimeApi`] serves the part of the Runtime API (`2018-06-01`) that a custom runtime uses:
//!
//! - `GET  /2018-06-01/runtime/invocation/next`: long-polls until an event is queued, then hands it
//!   out with `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms` (absolute epoch ms, as
//!   in Lambda), `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error`: record the result
//!   (202); an unknown id gets 400 `InvalidRequestID` and is recorded as unexpected;
//! - `POST /2018-06-01/runtime/init/error`: recorded (202).
//!
//! Anything else is answered 404 and recorded as unexpected. Every `/next` poll is timestamped,
//! so a benchmark can measure start-up (process start → first poll) and per-invocation time
//! (event handed out → result received) on the server side.
//!
//! [`Function`] starts the real `bootstrap` binary with the environment Lambda gives a function
//! (`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_*`, region, credentials) plus the caller's
//! variables (`TABLE_NAME`, `AWS_ENDPOINT_URL`), and collects its stdout/stderr lines.
//!
//! Like [`crate::Proxy`], the server runs on its own thread and Tokio runtime.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};

/// The account and region in the function ARN handed out with each event.
pub const FUNCTION_ARN_PREFIX: &str = "arn:aws:lambda:us-east-1:123456789012:function:";

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `POST .../{id}/response` with this body.
    Response(Bytes),
    /// `POST .../{id}/error`: the `Lambda-Runtime-Function-Error-Type` header and the body.
    Error { error_type: Option<String>, body: String },
}

/// One finished invocation.
#[derive(Debug, Clone)]
pub struct Completed {
    pub request_id: String,
    /// The trace header handed out with the event.
    pub trace_id: String,
    /// The deadline handed out (epoch ms).
    pub deadline_ms: u64,
    pub outcome: Outcome,
    /// When the `/next` answer carrying the event was produced.
    pub handed_out: Instant,
    /// When the result request reached the server (its body not yet read).
    pub finished: Instant,
}

impl Completed {
    /// Time between handing the event out and the result arriving (server side).
    pub fn service_time(&self) -> Duration {
        self.finished.saturating_duration_since(self.handed_out)
    }

    /// The response body as JSON (panics with the outcome if it is an error or not JSON).
    pub fn response_json(&self) -> serde_json::Value {
        match &self.outcome {
            Outcome::Response(b) => serde_json::from_slice(b).unwrap_or_else(|e| {
                panic!("invocation {}: response is not JSON ({e}): {}", self.request_id, String::from_utf8_lossy(b))
            }),
            Outcome::Error { error_type, body } => {
                panic!("invocation {} failed: {error_type:?} {body}", self.request_id)
            }
        }
    }
}

/// A request the server did not expect (unknown path or request id).
#[derive(Debug, Clone)]
pub struct Unexpected {
    pub method: String,
    pub path: String,
    pub body: String,
}

/// `POST /runtime/init/error`.
#[derive(Debug, Clone)]
pub struct InitError {
    pub error_type: Option<String>,
    pub body: String,
}

struct Queued {
    request_id: String,
    payload: Bytes,
    deadline_in: Duration,
    trace_id: String,
    done: oneshot::Sender<Completed>,
}

struct InFlight {
    trace_id: String,
    deadline_ms: u64,
    handed_out: Instant,
    done: oneshot::Sender<Completed>,
}

struct State {
    function_name: String,
    tx: mpsc::UnboundedSender<Queued>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    in_flight: Mutex<HashMap<String, InFlight>>,
    polls: Mutex<Vec<Instant>>,
    init_errors: Mutex<Vec<InitError>>,
    unexpected: Mutex<Vec<Unexpected>>,
    seq: AtomicU64,
}

/// A queued invocation; await [`Pending::wait`] for its result.
pub struct Pending {
    pub request_id: String,
    rx: oneshot::Receiver<Completed>,
}

impl Pending {
    /// The result, or `None` if none arrived within `timeout`.
    pub async fn wait(self, timeout: Duration) -> Option<Completed> {
        match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(c)) => Some(c),
            _ => None,
        }
    }
}

/// The Runtime API server. Dropping it stops it.
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RuntimeApi {
    /// Listen on a free loopback port. `function_name` goes into the invoked-function ARN.
    pub fn start(function_name: &str) -> RuntimeApi {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("runtime api: bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("runtime api: nonblocking");
        let addr = listener.local_addr().expect("runtime api: local addr");
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            function_name: function_name.to_string(),
            tx,
            rx: tokio::sync::Mutex::new(rx),
            in_flight: Mutex::new(HashMap::new()),
            polls: Mutex::new(Vec::new()),
            init_errors: Mutex::new(Vec::new()),
            unexpected: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("runtime-api-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime api rt");
                rt.block_on(serve(listener, st, stop_rx));
                rt.shutdown_background();
            })
            .expect("spawn runtime api thread");
        RuntimeApi { addr, state, shutdown: Some(stop_tx), thread: Some(thread) }
    }

    /// `127.0.0.1:PORT`: the value of `AWS_LAMBDA_RUNTIME_API` (no scheme, as Lambda sets it).
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Queue an event with a deadline 30 s after it is handed out.
    pub fn enqueue(&self, payload: impl Into<Bytes>) -> Pending {
        self.enqueue_with_deadline(payload, Duration::from_secs(30))
    }

    /// Queue an event whose `Lambda-Runtime-Deadline-Ms` is `deadline_in` after it is handed out.
    pub fn enqueue_with_deadline(&self, payload: impl Into<Bytes>, deadline_in: Duration) -> Pending {
        self.enqueue_full(payload.into(), deadline_in, |n| trace_id(n, true))
    }

    /// Queue an event whose trace header says `Sampled=1` or `Sampled=0` (Lambda's sampling
    /// decision for the invocation).
    pub fn enqueue_sampled(&self, payload: impl Into<Bytes>, sampled: bool) -> Pending {
        self.enqueue_full(payload.into(), Duration::from_secs(30), |n| trace_id(n, sampled))
    }

    fn enqueue_full(&self, payload: Bytes, deadline_in: Duration, trace: impl Fn(u64) -> String) -> Pending {
        let n = self.state.seq.fetch_add(1, Ordering::Relaxed);
        let request_id = request_id(n);
        let trace_id = trace(n);
        let (done, rx) = oneshot::channel();
        let q = Queued { request_id: request_id.clone(), payload, deadline_in, trace_id, done };
        self.state.tx.send(q).unwrap_or_else(|_| panic!("runtime api server is gone"));
        Pending { request_id, rx }
    }

    /// Queue an event and wait for its result (`None` after `timeout`).
    pub async fn invoke(&self, payload: impl Into<Bytes>, timeout: Duration) -> Option<Completed> {
        self.enqueue(payload).wait(timeout).await
    }

    /// When each `GET .../invocation/next` arrived, in order.
    pub fn polls(&self) -> Vec<Instant> {
        self.state.polls.lock().unwrap().clone()
    }

    /// Wait until at least `n` polls have arrived; returns the `n`-th one's time.
    pub async fn wait_for_poll(&self, n: usize, timeout: Duration) -> Option<Instant> {
        let start = Instant::now();
        loop {
            if let Some(t) = self.state.polls.lock().unwrap().get(n.saturating_sub(1)) {
                return Some(*t);
            }
            if start.elapsed() > timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    pub fn init_errors(&self) -> Vec<InitError> {
        self.state.init_errors.lock().unwrap().clone()
    }

    pub fn unexpected(&self) -> Vec<Unexpected> {
        self.state.unexpected.lock().unwrap().clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request id shaped like Lambda's (a UUID), unique per server and process.
fn request_id(n: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0) as u64;
    let x = now ^ (u64::from(std::process::id()) << 32);
    format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", x as u32, (x >> 32) as u16, n >> 12 & 0xfff, n & 0xfff, n)
}

/// An X-Ray trace header like Lambda's.
fn trace_id(n: u64, sampled: bool) -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!(
        "Root=1-{secs:08x}-{:024x};Parent={:016x};Sampled={}",
        u128::from(n) + 0xe2e0_0000,
        n + 1,
        u8::from(sampled)
    )
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

async fn serve(listener: std::net::TcpListener, state: Arc<State>, mut shutdown: oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("runtime api: tokio listener");
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn accepted() -> Response<Full<Bytes>> {
    json(StatusCode::ACCEPTED, r#"{"status":"OK"}"#.to_string())
}

const PREFIX: &str = "/2018-06-01/runtime/";

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let arrived = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let rest = path.strip_prefix(PREFIX).unwrap_or("");

    if parts.method == Method::GET && rest == "invocation/next" {
        state.polls.lock().unwrap().push(arrived);
        let q = {
            let mut rx = state.rx.lock().await;
            rx.recv().await
        };
        let Some(q) = q else {
            return Ok(json(StatusCode::INTERNAL_SERVER_ERROR, r#"{"errorMessage":"shutting down"}"#.into()));
        };
        let deadline_ms = epoch_ms() + q.deadline_in.as_millis() as u64;
        let mut r = Response::new(Full::new(q.payload));
        let h = r.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("lambda-runtime-aws-request-id", HeaderValue::from_str(&q.request_id).expect("request id"));
        h.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline_ms));
        let arn = format!("{FUNCTION_ARN_PREFIX}{}", state.function_name);
        h.insert("lambda-runtime-invoked-function-arn", HeaderValue::from_str(&arn).expect("arn"));
        h.insert("lambda-runtime-trace-id", HeaderValue::from_str(&q.trace_id).expect("trace id"));
        state.in_flight.lock().unwrap().insert(
            q.request_id,
            InFlight { trace_id: q.trace_id, deadline_ms, handed_out: Instant::now(), done: q.done },
        );
        return Ok(r);
    }

    let error_type =
        parts.headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();

    if parts.method == Method::POST && rest == "init/error" {
        let body = String::from_utf8_lossy(&bytes).into_owned();
        state.init_errors.lock().unwrap().push(InitError { error_type, body });
        return Ok(accepted());
    }

    let result = rest
        .strip_prefix("invocation/")
        .and_then(|inv| inv.split_once('/'))
        .filter(|(_, kind)| parts.method == Method::POST && (*kind == "response" || *kind == "error"));
    if let Some((id, kind)) = result {
        let Some(f) = state.in_flight.lock().unwrap().remove(id) else {
            state.unexpected.lock().unwrap().push(Unexpected {
                method: parts.method.to_string(),
                path: path.clone(),
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
            return Ok(json(
                StatusCode::BAD_REQUEST,
                r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#.into(),
            ));
        };
        let outcome = if kind == "response" {
            Outcome::Response(bytes)
        } else {
            Outcome::Error { error_type, body: String::from_utf8_lossy(&bytes).into_owned() }
        };
        let _ = f.done.send(Completed {
            request_id: id.to_string(),
            trace_id: f.trace_id,
            deadline_ms: f.deadline_ms,
            outcome,
            handed_out: f.handed_out,
            finished: arrived,
        });
        return Ok(accepted());
    }

    state.unexpected.lock().unwrap().push(Unexpected {
        method: parts.method.to_string(),
        path,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
    Ok(json(StatusCode::NOT_FOUND, r#"{"errorMessage":"Unknown resource","errorType":"NotFound"}"#.into()))
}

/// The `bootstrap` binary: `$MOVIES_STACK_BOOTSTRAP`, else `<target>/debug/bootstrap` derived
/// from this executable's path (a test binary in `<target>/debug/deps/`, or a bin in
/// `<target>/debug/`).
pub fn bootstrap_bin() -> PathBuf {
    crate::deployer::workspace_bin("bootstrap", "MOVIES_STACK_BOOTSTRAP", "handler")
}

/// The environment Lambda gives a `provided.al2023` function (without the caller's own variables).
pub fn lambda_env(runtime_api: &str, function_name: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", &format!("/aws/lambda/{function_name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/25/[$LATEST]e2e0000000000000000000000000000"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing-session-token"),
        ("_HANDLER", "bootstrap"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
        ("TZ", ":UTC"),
        ("LANG", "en_US.UTF-8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A running `bootstrap` process (killed on drop). Its stdout and stderr are collected line by
/// line.
pub struct Function {
    child: Child,
    pub started: Instant,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Function {
    /// Start `bin` with an empty environment plus [`lambda_env`] and `extra` (which wins).
    /// `started` is taken just before the spawn.
    pub fn spawn(bin: &Path, api: &RuntimeApi, extra: &[(&str, &str)]) -> Function {
        let mut cmd = Command::new(bin);
        cmd.env_clear().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in lambda_env(&api.host_port(), &api.state.function_name) {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect_lines(child.stdout.take().expect("stdout"), stdout.clone()),
            collect_lines(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Function { child, started, stdout, stderr, readers }
    }

    /// The stdout lines so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// The exit status if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait up to `timeout` for the process to end; then all its output has been read.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.try_wait() {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return Some(s);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kill the process and wait until all of its output has been read.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        self.stop();
    }
}

fn collect_lines(pipe: impl std::io::Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let reader = BufReader::new(pipe);
        for line in reader.split(b'\n') {
            let Ok(line) = line else { return };
            into.lock().unwrap().push(String::from_utf8_lossy(&line).into_owned());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_lambdas() {
        let id = request_id(5);
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.split('-').map(str::len).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert_ne!(request_id(5), request_id(6));
        let t = trace_id(1, true);
        assert!(t.starts_with("Root=1-") && t.contains(";Parent=") && t.ends_with(";Sampled=1"), "{t}");
        assert!(trace_id(2, false).ends_with(";Sampled=0"));
    }

    /// The server against a hand-written runtime client: next → response, next → error, unknown id.
    #[tokio::test]
    async fn serves_events_and_records_results() {
        let api = RuntimeApi::start("fn");
        let base = format!("http://{}", api.host_port());
        let a = api.enqueue(r#"{"a":1}"#);
        let b = api.enqueue(r#"{"b":2}"#);
        let base2 = base.clone();
        let client = std::thread::spawn(move || {
            let next = |url: &str| crate::http_request(url, "GET", "/2018-06-01/runtime/invocation/next", None);
            let (s1, body1) = next(&base2).unwrap();
            assert_eq!((s1, body1.as_str()), (200, r#"{"a":1}"#));
            let (s2, _) = next(&base2).unwrap();
            assert_eq!(s2, 200);
        });
        client.join().unwrap();
        assert_eq!(api.polls().len(), 2);
        // Both events are in flight now; answer them out of order.
        let post = |path: String, body: &str| crate::http_request(&base, "POST", &path, Some(body)).unwrap();
        assert_eq!(post(format!("{PREFIX}invocation/{}/error", b.request_id), r#"{"errorType":"X"}"#).0, 202);
        assert_eq!(post(format!("{PREFIX}invocation/{}/response", a.request_id), r#"{"ok":true}"#).0, 202);
        assert_eq!(post(format!("{PREFIX}invocation/nope/response"), "{}").0, 400);
        assert_eq!(post(format!("{PREFIX}init/error"), r#"{"errorType":"Init"}"#).0, 202);
        let a = a.wait(Duration::from_secs(5)).await.expect("a finished");
        assert_eq!(a.response_json(), serde_json::json!({"ok": true}));
        assert!(a.deadline_ms > epoch_ms() + 20_000, "deadline is absolute epoch ms");
        let b = b.wait(Duration::from_secs(5)).await.expect("b finished");
        assert!(matches!(b.outcome, Outcome::Error { .. }));
        assert_eq!(api.unexpected().len(), 1);
        assert_eq!(api.init_errors().len(), 1);
    }
}
