//! A recording, fault-injecting HTTP/1.1 reverse proxy for AWS API calls.
//!
//! Every request is classified as a [`Call`] (service from the SigV4 credential scope, operation
//! from `X-Amz-Target`, the query `Action`, or the REST method + path) and recorded when it
//! arrives; its status is filled in when the answer goes back. Requests to `/moto-api/...` pass
//! through unrecorded and are never faulted.
//!
//! Every request first meets the strict AWS model ([`crate::strict`], on by default): it is
//! validated against AWS's service model and judged against the state of the account as AWS would
//! see it; the model may answer instead of moto, and may rewrite moto's answer.
//!
//! Then faults are [`Rule`]s checked in order for each request: every matching rule in its window
//! adds its latency, and the first matching rule with a [`Fault`] answers instead of moto, with an
//! error body in the service's protocol so the SDK sees the error code.
//!
//! CloudWatch's RPC v2 CBOR requests are bridged to the JSON protocol moto reads, and their
//! answers back ([`crate::cbor`]); the model and the rules see the JSON request.
//!
//! The proxy runs on its own thread and Tokio runtime, so it works from sync and async tests
//! alike, and while the test blocks on a child process.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::cbor;
use crate::strict::request::HttpRequest;
use crate::strict::{Behaviour, Config, Model, MotoEc2, Timings, Verdict};

/// One AWS API call seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// SigV4 signing name: `ec2`, `iam`, `lambda`, `apigateway`, `dynamodb`, `logs`, `sts`, ...
    pub service: String,
    /// `CreateVpc`, `PutRetentionPolicy`, `UpdateFunctionCode`, ... For REST requests that match
    /// no operation of the service's model: `"<METHOD> <path>"`.
    pub operation: String,
    /// Whether the call may change something (see [`is_mutating`]).
    pub mutating: bool,
    /// HTTP status returned to the client; `None` while in flight (or if the client went away).
    pub status: Option<u16>,
    /// The answer was a fault injected by a [`Rule`], not moto's.
    pub injected: bool,
    /// The strict model answered instead of moto, or rewrote moto's answer: which behaviour.
    pub model: Option<Behaviour>,
    /// DynamoDB: the request's `TableName` (to tell the stack lock's bookkeeping apart).
    pub table: Option<String>,
}

impl Call {
    /// A call on the stack lock's table (`movies-stack-locks`): the lock's own bookkeeping,
    /// not a change to the stack.
    pub fn is_lock(&self) -> bool {
        self.service == "dynamodb" && self.table.as_deref() == Some(LOCK_TABLE)
    }

    /// `"service Operation"`, handy for assertions and messages.
    pub fn name(&self) -> String {
        format!("{} {}", self.service, self.operation)
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.service, self.operation)?;
        if self.mutating {
            write!(f, " (mutating)")?;
        }
        match self.status {
            Some(s) => write!(f, " -> {s}")?,
            None => write!(f, " -> (no answer)")?,
        }
        if self.injected {
            write!(f, " [injected]")?;
        }
        if let Some(b) = self.model {
            write!(f, " [strict model: {b}]")?;
        }
        Ok(())
    }
}

/// Counts per `"service Operation"`, sorted; for printing.
pub fn count_by_name(calls: &[Call]) -> std::collections::BTreeMap<String, usize> {
    let mut map = std::collections::BTreeMap::new();
    for c in calls {
        *map.entry(c.name()).or_insert(0) += 1;
    }
    map
}

/// Counts per service, sorted; for printing.
pub fn count_by_service(calls: &[Call]) -> std::collections::BTreeMap<String, usize> {
    let mut map = std::collections::BTreeMap::new();
    for c in calls {
        *map.entry(c.service.clone()).or_insert(0) += 1;
    }
    map
}

/// An error answer the proxy sends instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub status: u16,
    /// The AWS error code, e.g. `ThrottlingException`, `TooManyRequestsException`,
    /// `DependencyViolation`, `InvalidParameterValueException`.
    pub code: String,
    pub message: String,
}

/// A canned answer the proxy sends instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// A fault-injection rule. Build with the methods; all criteria are optional.
///
/// ```no_run
/// # use e2e::proxy::Rule;
/// # use std::time::Duration;
/// Rule::new().service("lambda").operation("CreateFunction")
///     .fail(400, "InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda.")
///     .times(3);
/// Rule::new().delay(Duration::from_millis(50)); // latency on every call
/// ```
#[derive(Debug, Clone, Default)]
pub struct Rule {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// Only calls that may change something (or only reads, with `Some(false)`).
    pub mutating: Option<bool>,
    pub delay: Option<Duration>,
    pub fault: Option<Fault>,
    /// A canned success answer instead of moto's: for AWS behaviour moto does not implement.
    pub reply: Option<Reply>,
    /// Let the first `skip` matching calls through untouched.
    pub skip: usize,
    /// Act on at most this many matching calls (after `skip`).
    pub times: Option<usize>,
    /// Act only from this long after the rule was added...
    pub from: Option<Duration>,
    /// ... and until this long after it was added.
    pub until: Option<Duration>,
}

impl Rule {
    pub fn new() -> Rule {
        Rule::default()
    }
    pub fn service(mut self, service: &str) -> Rule {
        self.service = Some(service.to_string());
        self
    }
    pub fn operation(mut self, operation: &str) -> Rule {
        self.operation = Some(operation.to_string());
        self
    }
    pub fn mutating(mut self, mutating: bool) -> Rule {
        self.mutating = Some(mutating);
        self
    }
    pub fn delay(mut self, delay: Duration) -> Rule {
        self.delay = Some(delay);
        self
    }
    pub fn fail(mut self, status: u16, code: &str, message: &str) -> Rule {
        self.fault = Some(Fault { status, code: code.to_string(), message: message.to_string() });
        self
    }
    /// Answer with this status, content type and body (AWS's documented response for a call
    /// that moto does not implement), instead of forwarding.
    pub fn reply(mut self, status: u16, content_type: &str, body: &str) -> Rule {
        self.reply = Some(Reply { status, content_type: content_type.to_string(), body: body.to_string() });
        self
    }
    pub fn skip(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }
    /// Act only between `from` and `until` after the rule is added.
    pub fn during(mut self, from: Duration, until: Duration) -> Rule {
        self.from = Some(from);
        self.until = Some(until);
        self
    }

    fn matches(&self, call: &Call) -> bool {
        self.service.as_deref().is_none_or(|s| s == call.service)
            && self.operation.as_deref().is_none_or(|o| o == call.operation)
            && self.mutating.is_none_or(|m| m == call.mutating)
    }
}

/// A rule with its counters.
#[derive(Debug)]
struct ActiveRule {
    rule: Rule,
    added: Instant,
    seen: usize,
    acted: usize,
}

impl ActiveRule {
    /// Whether this rule acts on `call` (it matches and is inside its windows); counts it.
    fn check(&mut self, call: &Call, now: Instant) -> bool {
        if !self.rule.matches(call) {
            return false;
        }
        self.seen += 1;
        if self.seen <= self.rule.skip {
            return false;
        }
        if self.rule.times.is_some_and(|t| self.acted >= t) {
            return false;
        }
        let age = now.saturating_duration_since(self.added);
        if self.rule.from.is_some_and(|f| age < f) || self.rule.until.is_some_and(|u| age >= u) {
            return false;
        }
        self.acted += 1;
        true
    }
}

/// What the rules decided for one request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub delay: Duration,
    pub fault: Option<Fault>,
    pub reply: Option<Reply>,
}

#[derive(Debug, Default)]
struct Rules(Vec<ActiveRule>);

impl Rules {
    fn on_request(&mut self, call: &Call, now: Instant) -> Decision {
        let mut d = Decision::default();
        for r in &mut self.0 {
            // Once a fault is chosen, later fault rules are not consumed.
            if d.fault.is_some() && r.rule.fault.is_some() {
                continue;
            }
            if r.check(call, now) {
                if let Some(delay) = r.rule.delay {
                    d.delay += delay;
                }
                if d.fault.is_none() {
                    d.fault = r.rule.fault.clone();
                }
                if d.reply.is_none() {
                    d.reply = r.rule.reply.clone();
                }
            }
        }
        d
    }
}

struct Entry {
    seq: u64,
    call: Call,
    arrived: Instant,
    answered: Option<Instant>,
}

/// A recorded call with when it arrived and when its answer went back (`None`: never answered),
/// relative to the proxy's start or its last [`Proxy::reset`].
#[derive(Debug, Clone)]
pub struct Timed {
    pub call: Call,
    pub arrived: Duration,
    pub answered: Option<Duration>,
}

struct State {
    upstream: String,
    seq: AtomicU64,
    /// What [`Timed`] times are relative to.
    epoch: Mutex<Instant>,
    calls: Mutex<Vec<Entry>>,
    rules: Mutex<Rules>,
    model: Model,
    moto: MotoEc2,
}

impl State {
    fn record(&self, call: Call) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.calls.lock().unwrap().push(Entry { seq, call, arrived: Instant::now(), answered: None });
        seq
    }

    fn finish(&self, seq: u64, status: u16, injected: bool) {
        let mut calls = self.calls.lock().unwrap();
        if let Some(e) = calls.iter_mut().rev().find(|e| e.seq == seq) {
            e.call.status = Some(status);
            e.call.injected = injected;
            e.answered = Some(Instant::now());
        }
    }

    /// The strict model answered (or rewrote the answer) for this call.
    fn by_model(&self, seq: u64, behaviour: Behaviour) {
        let mut calls = self.calls.lock().unwrap();
        if let Some(e) = calls.iter_mut().rev().find(|e| e.seq == seq) {
            e.call.model = Some(behaviour);
        }
    }
}

/// The proxy. Dropping it stops it.
pub struct Proxy {
    url: String,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Sets up a [`Proxy`] whose strict model differs from the default.
#[derive(Debug, Clone)]
pub struct ProxyBuilder {
    upstream: String,
    config: Config,
}

impl ProxyBuilder {
    /// Turn one behaviour of the strict model off, saying why (the reason is recorded in the
    /// suite report). Real AWS does this; turn it off only where a test is about something else
    /// and cannot bear it.
    pub fn without(mut self, behaviour: Behaviour, reason: &str) -> ProxyBuilder {
        assert!(!reason.trim().is_empty(), "turning off {behaviour} needs a reason");
        self.config.disabled.insert(behaviour, reason.to_string());
        self
    }

    /// The model's windows and rates (default [`Timings::fast`]).
    pub fn timings(mut self, timings: Timings) -> ProxyBuilder {
        self.config.timings = timings;
        self
    }

    /// The zone ID where Lambda refuses subnets (`None`: every zone is fine).
    pub fn lambda_refused_zone(mut self, zone_id: Option<&str>) -> ProxyBuilder {
        self.config.lambda_refused_zone = zone_id.map(str::to_string);
        self
    }

    /// The zone ID where CreateSubnet is refused (`None`, the default: every zone is fine).
    pub fn subnet_refused_zone(mut self, zone_id: Option<&str>) -> ProxyBuilder {
        self.config.subnet_refused_zone = zone_id.map(str::to_string);
        self
    }

    /// A zone ID and the state DescribeAvailabilityZones reports for it (`None`: all available).
    pub fn zone_state(mut self, zone: Option<(&str, &str)>) -> ProxyBuilder {
        self.config.zone_state = zone.map(|(z, s)| (z.to_string(), s.to_string()));
        self
    }

    /// The account's Lambda concurrency limit (default 1000; new accounts start at 10).
    /// The account's Lambda code storage, in bytes ([`crate::strict::Behaviour::LambdaVersions`]).
    pub fn lambda_code_storage_bytes(mut self, bytes: u64) -> ProxyBuilder {
        self.config.lambda_code_storage_bytes = bytes;
        self
    }

    pub fn lambda_concurrency_limit(mut self, limit: i64) -> ProxyBuilder {
        self.config.lambda_concurrency_limit = limit;
        self
    }

    /// Mark a web ACL (by name) as one the caller may not `wafv2:GetWebACL`: another team's.
    pub fn waf_unreadable_acl(mut self, name: &str) -> ProxyBuilder {
        self.config.waf_unreadable_acls.insert(name.to_string());
        self
    }

    /// Listen on a free loopback port and forward everything to the upstream.
    pub fn start(self) -> Proxy {
        Proxy::start_with(&self.upstream, self.config)
    }
}

impl Proxy {
    /// Listen on a free loopback port and forward everything to `upstream` (e.g. moto's URL),
    /// with the strict model fully on.
    pub fn start(upstream: &str) -> Proxy {
        Proxy::builder(upstream).start()
    }

    /// A proxy to `upstream` whose strict model can be changed before it starts.
    pub fn builder(upstream: &str) -> ProxyBuilder {
        ProxyBuilder { upstream: upstream.to_string(), config: Config::default() }
    }

    fn start_with(upstream: &str, mut config: Config) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy: bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("proxy: nonblocking");
        let addr: SocketAddr = listener.local_addr().expect("proxy: local addr");
        config.port = Some(addr.port());
        crate::strict::authz::register_upstream(addr.port(), upstream);
        let upstream = upstream.trim_end_matches('/').to_string();
        let client: Upstream =
            Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(5)).build_http();
        let state = Arc::new(State {
            upstream: upstream.clone(),
            seq: AtomicU64::new(0),
            epoch: Mutex::new(Instant::now()),
            calls: Mutex::new(Vec::new()),
            rules: Mutex::new(Rules::default()),
            model: Model::new(config),
            moto: MotoEc2 { upstream, client },
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                rt.block_on(serve(listener, st, rx));
                rt.shutdown_background();
            })
            .expect("spawn proxy thread");
        Proxy { url: format!("http://{addr}"), state, shutdown: Some(tx), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT`: give this to the deployer as `--endpoint-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every recorded call, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().iter().map(|e| e.call.clone()).collect()
    }

    /// The recorded calls that may change something.
    /// Mutating calls on the stack's resources. The stack lock's own writes (taking and
    /// releasing the lock item in `movies-stack-locks`) are not changes to the stack: see
    /// [`Proxy::lock_calls`].
    pub fn mutating_calls(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.mutating && !c.is_lock()).collect()
    }

    /// Calls on the stack lock's table.
    pub fn lock_calls(&self) -> Vec<Call> {
        self.calls().into_iter().filter(Call::is_lock).collect()
    }

    /// What [`Proxy::timeline`]'s times count from (to put two proxies' calls on one clock).
    pub fn epoch(&self) -> Instant {
        *self.state.epoch.lock().unwrap()
    }

    /// Every recorded call with its arrival and answer times, in arrival order.
    pub fn timeline(&self) -> Vec<Timed> {
        let epoch = *self.state.epoch.lock().unwrap();
        let since = |t: Instant| t.saturating_duration_since(epoch);
        let calls = self.state.calls.lock().unwrap();
        calls
            .iter()
            .map(|e| Timed { call: e.call.clone(), arrived: since(e.arrived), answered: e.answered.map(since) })
            .collect()
    }

    /// Forget the recorded calls (rules stay); [`Proxy::timeline`] counts from now.
    pub fn reset(&self) {
        let mut calls = self.state.calls.lock().unwrap();
        calls.clear();
        *self.state.epoch.lock().unwrap() = Instant::now();
    }

    /// Add a fault rule; its time window starts now.
    pub fn add_rule(&self, rule: Rule) {
        self.state.rules.lock().unwrap().0.push(ActiveRule { rule, added: Instant::now(), seen: 0, acted: 0 });
    }

    /// Remove every rule.
    pub fn clear_rules(&self) {
        self.state.rules.lock().unwrap().0.clear();
    }

    /// How many calls each rule acted on, in the order the rules were added.
    pub fn rule_hits(&self) -> Vec<usize> {
        self.state.rules.lock().unwrap().0.iter().map(|r| r.acted).collect()
    }

    /// How many times each behaviour of the strict model acted (every behaviour, zero included).
    pub fn model_hits(&self) -> std::collections::BTreeMap<Behaviour, usize> {
        self.state.model.hits()
    }

    /// Every operation the strict model saw, with how many calls it validated and refused.
    pub fn model_operations(&self) -> Vec<crate::strict::OperationStats> {
        self.state.model.operations()
    }

    /// The strict model's record of this proxy, as the suite report reads it.
    pub fn model_record(&self) -> crate::strict::Record {
        let test = std::thread::current().name().unwrap_or("main").to_string();
        self.state.model.record(&crate::strict::report::binary_name(), &test)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(dir) = std::env::var_os(crate::strict::report::SUITE_DIR_ENV).filter(|d| !d.is_empty())
            && let Err(e) = crate::strict::report::append(std::path::Path::new(&dir), &self.model_record())
        {
            eprintln!("strict model: writing the suite record failed: {e}");
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The HTTP client the proxy (and the strict model) reach moto with.
pub(crate) type Upstream = Client<HttpConnector, Full<Bytes>>;

async fn serve(listener: std::net::TcpListener, state: Arc<State>, mut shutdown: tokio::sync::oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("proxy: tokio listener");
    let client = state.moto.client.clone();
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(state.clone(), client.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "content-length",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
}

fn plain(status: u16, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut().insert("content-type", HeaderValue::from_static("text/plain"));
    r
}

async fn handle(
    state: Arc<State>,
    client: Upstream,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(plain(400, format!("proxy: reading the request body failed: {e}"))),
    };
    if parts.headers.get(cbor::PROTOCOL_HEADER).is_some_and(|v| v == cbor::PROTOCOL) {
        return Ok(bridge_cbor(state, client, parts, body).await);
    }
    Ok(exchange(state, client, parts, body).await)
}

/// An RPC v2 CBOR request (CloudWatch), forwarded as the JSON request moto reads; the answer,
/// moto's or the proxy's own, back in CBOR.
async fn bridge_cbor(
    state: Arc<State>,
    client: Upstream,
    mut parts: hyper::http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let json = match cbor::request_to_json(parts.uri.path(), &body) {
        Ok(j) => j,
        Err(e) => return plain(400, format!("proxy: {e}")),
    };
    let signing_name = service_of(&parts.headers, &parts.uri).unwrap_or_default();
    parts.uri = Uri::from_static("/");
    let h = &mut parts.headers;
    h.remove(cbor::PROTOCOL_HEADER);
    h.remove(hyper::header::ACCEPT);
    h.insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static(cbor::JSON_CONTENT_TYPE));
    h.insert("x-amz-target", HeaderValue::from_str(&json.target).expect("an operation name is a header value"));
    let answer = exchange(state, client, parts, Bytes::from(json.body)).await;
    let (mut rparts, rbody) = answer.into_parts();
    let rbody = rbody.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let error_type = rparts.headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok());
    let out = cbor::response_to_cbor(&signing_name, &json.operation, rparts.status.as_u16(), error_type, &rbody);
    rparts.headers.remove("x-amzn-errortype");
    rparts.headers.insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static(cbor::CONTENT_TYPE));
    rparts.headers.insert(cbor::PROTOCOL_HEADER, HeaderValue::from_static(cbor::PROTOCOL));
    Response::from_parts(rparts, Full::new(Bytes::from(out)))
}

/// One request: recorded, judged by the strict model and the rules, forwarded to moto (or
/// answered instead), and moto's answer possibly rewritten by the model.
async fn exchange(
    state: Arc<State>,
    client: Upstream,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let moto_api = parts.uri.path().starts_with("/moto-api");
    let mut seq = None;
    let mut exchange = None;
    // A REST API write the model let through is in flight until this function returns.
    let mut _rest_api_write = None;
    if !moto_api {
        let call = classify(&parts.method, &parts.uri, &parts.headers, &body);
        let protocol = Protocol::of(&call.service, &parts.headers, &body);
        let (service, operation) = (call.service.clone(), call.operation.clone());
        let s = state.record(call.clone());
        seq = Some(s);
        let http = HttpRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body: &body,
        };
        match state.model.on_request(&state.moto, &service, &operation, &http).await {
            Verdict::Refuse(behaviour, fault) => {
                state.by_model(s, behaviour);
                state.finish(s, fault.status, false);
                return fault_response(&fault, protocol);
            }
            Verdict::Answer(behaviour, reply) => {
                state.by_model(s, behaviour);
                state.finish(s, reply.status, false);
                return reply_response(reply);
            }
            Verdict::Unknown(text) => {
                state.by_model(s, Behaviour::Validation);
                state.finish(s, 500, false);
                return plain(500, text);
            }
            Verdict::Forward(ex) => exchange = ex,
        }
        _rest_api_write = exchange.as_ref().and_then(|ex| state.model.rest_api_write(ex));
        let decision = state.rules.lock().unwrap().on_request(&call, Instant::now());
        if !decision.delay.is_zero() {
            tokio::time::sleep(decision.delay).await;
        }
        if let Some(fault) = decision.fault {
            state.finish(s, fault.status, true);
            return fault_response(&fault, protocol);
        }
        if let Some(reply) = decision.reply {
            state.finish(s, reply.status, true);
            return reply_response(reply);
        }
    }

    let pq = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let uri: Uri = match format!("{}{}", state.upstream, pq).parse() {
        Ok(u) => u,
        Err(e) => return plain(400, format!("proxy: bad upstream URI: {e}")),
    };
    let mut up =
        Request::builder().method(parts.method.clone()).uri(uri).body(Full::new(body.clone())).expect("request");
    *up.headers_mut() = parts.headers.clone();
    strip_hop_by_hop(up.headers_mut());
    if !body.is_empty() || !matches!(parts.method, Method::GET | Method::HEAD) {
        up.headers_mut().insert("content-length", HeaderValue::from(body.len()));
    }

    let resp = match client.request(up).await {
        Ok(r) => r,
        Err(e) => {
            if let Some(s) = seq {
                state.finish(s, 502, false);
            }
            return plain(502, format!("proxy: upstream {} failed: {e:?}", state.upstream));
        }
    };
    let (mut rparts, rbody) = resp.into_parts();
    let rbytes = match rbody.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if let Some(s) = seq {
                state.finish(s, 502, false);
            }
            return plain(502, format!("proxy: reading the upstream body failed: {e}"));
        }
    };
    strip_hop_by_hop(&mut rparts.headers);
    let mut rbytes = rbytes;
    if let Some(ex) = exchange {
        let mut rewritten = rbytes.to_vec();
        if let Some(behaviour) = state.model.on_response(&state.moto, &ex, rparts.status.as_u16(), &mut rewritten).await
        {
            if let Some(s) = seq {
                state.by_model(s, behaviour);
            }
            // DynamoDB signs its answers' bodies with a CRC32 that SDKs may check.
            if rparts.headers.contains_key("x-amz-crc32") {
                let mut crc = flate2::Crc::new();
                crc.update(&rewritten);
                rparts.headers.insert("x-amz-crc32", HeaderValue::from(crc.sum()));
            }
            rbytes = Bytes::from(rewritten);
        }
    }
    if let Some(s) = seq {
        state.finish(s, rparts.status.as_u16(), false);
    }
    Response::from_parts(rparts, Full::new(rbytes))
}

/// A canned answer as an HTTP response.
fn reply_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(reply.body)));
    *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&reply.content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// How a service encodes its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// awsJson1_0 / awsJson1_1 (`X-Amz-Target`): DynamoDB, Logs, CloudTrail.
    Json,
    /// EC2's query dialect.
    Ec2Query,
    /// awsQuery (`Action=` form body): IAM, STS, CloudFormation.
    Query,
    /// restJson1: Lambda, API Gateway.
    RestJson,
}

impl Protocol {
    fn of(service: &str, headers: &HeaderMap, body: &[u8]) -> Protocol {
        if headers.contains_key("x-amz-target") {
            Protocol::Json
        } else if service == "ec2" {
            Protocol::Ec2Query
        } else if form_value(body, "Action").is_some() {
            Protocol::Query
        } else {
            Protocol::RestJson
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An error answer the SDK parses into `fault.code` / `fault.message`.
pub fn fault_response(fault: &Fault, protocol: Protocol) -> Response<Full<Bytes>> {
    const REQUEST_ID: &str = "00000000-0000-0000-0000-00000000fa17";
    let (content_type, body) = match protocol {
        Protocol::Json => (
            "application/x-amz-json-1.1",
            serde_json::json!({"__type": fault.code, "message": fault.message}).to_string(),
        ),
        Protocol::RestJson => (
            "application/json",
            serde_json::json!({"Type": "User", "message": fault.message, "code": fault.code}).to_string(),
        ),
        Protocol::Ec2Query => (
            "text/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{REQUEST_ID}</RequestID></Response>",
                xml_escape(&fault.code),
                xml_escape(&fault.message)
            ),
        ),
        Protocol::Query => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{REQUEST_ID}</RequestId></ErrorResponse>",
                if fault.status >= 500 { "Receiver" } else { "Sender" },
                xml_escape(&fault.code),
                xml_escape(&fault.message)
            ),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    h.insert("x-amzn-requestid", HeaderValue::from_static(REQUEST_ID));
    if matches!(protocol, Protocol::Json | Protocol::RestJson)
        && let Ok(v) = HeaderValue::from_str(&fault.code)
    {
        h.insert(HeaderName::from_static("x-amzn-errortype"), v);
    }
    r
}

/// The deployer's lock table (deployer/src/lock.rs).
pub const LOCK_TABLE: &str = "movies-stack-locks";

/// `TableName` of a DynamoDB JSON request body.
fn table_name(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("TableName")?.as_str().map(str::to_string)
}

/// Read-only operation name prefixes (JSON and query protocols).
const READ_PREFIXES: [&str; 7] = ["Describe", "Get", "List", "BatchGet", "Query", "Scan", "LookupEvents"];

/// Whether a JSON/query operation may change something.
pub fn is_mutating(operation: &str) -> bool {
    !READ_PREFIXES.iter().any(|p| operation.starts_with(p))
}

/// Classify one request. Public for unit tests.
pub fn classify(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Call {
    let service = service_of(headers, uri).unwrap_or_else(|| "unknown".to_string());
    let rpc = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
        .or_else(|| form_value(body, "Action"))
        .or_else(|| uri.query().and_then(|q| form_value(q.as_bytes(), "Action")))
        .or_else(|| {
            // Smithy RPC v2 CBOR: POST /service/<Service>/operation/<Operation>
            let p = uri.path();
            p.contains("/service/").then(|| p.rsplit_once("/operation/").map(|(_, op)| op.to_string())).flatten()
        });
    match rpc {
        Some(operation) => {
            let mutating = is_mutating(&operation);
            let table = if service == "dynamodb" { table_name(body) } else { None };
            Call { service, operation, mutating, status: None, injected: false, model: None, table }
        }
        None => {
            let mutating = !matches!(*method, Method::GET | Method::HEAD);
            let operation = rest_operation(&service, method.as_str(), uri.path(), uri.query().unwrap_or(""))
                .unwrap_or_else(|| format!("{} {}", method, uri.path()));
            Call { service, operation, mutating, status: None, injected: false, model: None, table: None }
        }
    }
}

/// The 4th `/`-separated element of the SigV4 credential scope
/// (`AKID/20261125/us-east-1/ec2/aws4_request`), from the `Authorization` header or a presigned
/// URL's `X-Amz-Credential`.
pub fn service_of(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let scope = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .map(|s| s.split([',', ' ']).next().unwrap_or(s).to_string())
        .or_else(|| uri.query().and_then(|q| form_value(q.as_bytes(), "X-Amz-Credential")))?;
    scope.split('/').nth(3).filter(|s| !s.is_empty()).map(str::to_string)
}

/// A field of an `application/x-www-form-urlencoded` body (or query string), decoded.
pub fn form_value(body: &[u8], key: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if text.starts_with('{') || text.starts_with('<') {
        return None;
    }
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

/// Every field of a form body or query string, decoded, in order.
pub fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(pair), String::new()),
        })
        .collect()
}

/// Decode `%XX` escapes and `+` (form encoding).
pub fn percent_decode(s: &str) -> String {
    decode(s, true)
}

/// Decode `%XX` escapes of a URI path segment (`+` is itself there).
pub fn percent_decode_path(s: &str) -> String {
    decode(s, false)
}

fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The name of a REST operation, from the service's own model (`None`: the model has no such
/// operation, or cannot be loaded; the strict model then answers the call with a 500).
pub fn rest_operation(service: &str, method: &str, path: &str, query: &str) -> Option<String> {
    let model = crate::strict::botocore::service(service).ok()?;
    model.rest_operation(method, path, &form_pairs(query)).map(|m| m.operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn auth(service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=testing/20261125/us-east-1/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
        )
    }

    #[test]
    fn classifies_query_json_and_rest_calls() {
        let post = Method::POST;
        let uri: Uri = "/".parse().unwrap();
        let c = classify(
            &post,
            &uri,
            &headers(&[("authorization", &auth("ec2"))]),
            b"Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0%2F16",
        );
        assert_eq!((c.service.as_str(), c.operation.as_str(), c.mutating), ("ec2", "CreateVpc", true));

        let c = classify(
            &post,
            &uri,
            &headers(&[("authorization", &auth("iam"))]),
            b"Action=GetRole&RoleName=x&Version=2010-05-08",
        );
        assert_eq!((c.service.as_str(), c.operation.as_str(), c.mutating), ("iam", "GetRole", false));

        let c = classify(
            &post,
            &uri,
            &headers(&[("authorization", &auth("dynamodb")), ("x-amz-target", "DynamoDB_20120810.DescribeTable")]),
            b"{}",
        );
        assert_eq!((c.service.as_str(), c.operation.as_str(), c.mutating), ("dynamodb", "DescribeTable", false));

        let c = classify(
            &post,
            &uri,
            &headers(&[
                ("authorization", &auth("cloudtrail")),
                ("x-amz-target", "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"),
            ]),
            b"{}",
        );
        assert_eq!((c.operation.as_str(), c.mutating), ("LookupEvents", false));

        let c = classify(
            &post,
            &uri,
            &headers(&[("authorization", &auth("logs")), ("x-amz-target", "Logs_20140328.PutRetentionPolicy")]),
            b"{}",
        );
        assert_eq!((c.service.as_str(), c.operation.as_str(), c.mutating), ("logs", "PutRetentionPolicy", true));

        let put = Method::PUT;
        let code: Uri = "/2015-03-31/functions/apigw_handler/code".parse().unwrap();
        let c = classify(&put, &code, &headers(&[("authorization", &auth("lambda"))]), b"{\"ZipFile\":\"UEsDBA==\"}");
        assert_eq!((c.service.as_str(), c.operation.as_str(), c.mutating), ("lambda", "UpdateFunctionCode", true));

        let create: Uri = "/2015-03-31/functions".parse().unwrap();
        let c = classify(&post, &create, &headers(&[("authorization", &auth("lambda"))]), b"{}");
        assert_eq!(c.operation, "CreateFunction");

        let conf: Uri = "/2015-03-31/functions/f/configuration".parse().unwrap();
        let c = classify(&put, &conf, &headers(&[("authorization", &auth("lambda"))]), b"{}");
        assert_eq!(c.operation, "UpdateFunctionConfiguration");

        let list: Uri = "/2015-03-31/functions/?MaxItems=50".parse().unwrap();
        let c = classify(&Method::GET, &list, &headers(&[("authorization", &auth("lambda"))]), b"");
        assert_eq!((c.operation.as_str(), c.mutating), ("ListFunctions", false));

        let unknown: Uri = "/restapis/abc/widgets".parse().unwrap();
        let c = classify(&Method::PATCH, &unknown, &headers(&[("authorization", &auth("apigateway"))]), b"{}");
        assert_eq!((c.operation.as_str(), c.mutating), ("PATCH /restapis/abc/widgets", true));

        let method: Uri = "/restapis/abc/resources/r1/methods/ANY".parse().unwrap();
        let c = classify(&Method::GET, &method, &headers(&[("authorization", &auth("apigateway"))]), b"");
        assert_eq!((c.operation.as_str(), c.mutating), ("GetMethod", false));

        let c = classify(&Method::GET, &uri, &HeaderMap::new(), b"");
        assert_eq!(c.service, "unknown");
    }

    #[test]
    fn mutating_names() {
        for read in ["DescribeVpcs", "GetRole", "ListTagsOfResource", "BatchGetItem", "Query", "Scan", "LookupEvents"] {
            assert!(!is_mutating(read), "{read}");
        }
        for write in ["CreateVpc", "PutItem", "TagResource", "UpdateTable", "DeleteRole", "AttachRolePolicy"] {
            assert!(is_mutating(write), "{write}");
        }
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            form_value(b"Action=CreateVpc&CidrBlock=10.0.0.0%2F16", "CidrBlock").as_deref(),
            Some("10.0.0.0/16")
        );
        assert_eq!(form_value(b"A=a+b&B=%zz", "A").as_deref(), Some("a b"));
        assert_eq!(form_value(b"A=a+b&B=%zz", "B").as_deref(), Some("%zz"));
        assert_eq!(form_value(b"A=%4", "A").as_deref(), Some("%4"));
        assert_eq!(form_value(br#"{"Action":"x"}"#, "Action"), None);
    }

    fn call(service: &str, op: &str) -> Call {
        Call {
            service: service.into(),
            operation: op.into(),
            mutating: is_mutating(op),
            status: None,
            injected: false,
            model: None,
            table: None,
        }
    }

    #[test]
    fn rule_windows() {
        let t0 = Instant::now();
        let mut rules = Rules::default();
        let added = |rule| ActiveRule { rule, added: t0, seen: 0, acted: 0 };
        rules.0.push(added(
            Rule::new()
                .service("lambda")
                .operation("CreateFunction")
                .fail(400, "InvalidParameterValueException", "role")
                .skip(1)
                .times(2),
        ));
        rules.0.push(added(Rule::new().delay(Duration::from_millis(10))));
        rules.0.push(added(
            Rule::new()
                .service("ec2")
                .fail(503, "Unavailable", "x")
                .during(Duration::from_secs(1), Duration::from_secs(2)),
        ));

        let cf = call("lambda", "CreateFunction");
        let got: Vec<bool> = (0..5).map(|_| rules.on_request(&cf, t0).fault.is_some()).collect();
        assert_eq!(got, [false, true, true, false, false]);
        assert_eq!(rules.on_request(&cf, t0).delay, Duration::from_millis(10));

        let vpc = call("ec2", "CreateVpc");
        assert!(rules.on_request(&vpc, t0).fault.is_none());
        assert_eq!(rules.on_request(&vpc, t0 + Duration::from_millis(1500)).fault.unwrap().code, "Unavailable");
        assert!(rules.on_request(&vpc, t0 + Duration::from_secs(2)).fault.is_none());
        assert_eq!(rules.0[0].acted, 2);
    }

    #[test]
    fn first_fault_wins_and_later_fault_rules_are_not_consumed() {
        let t0 = Instant::now();
        let mut rules = Rules::default();
        for code in ["First", "Second"] {
            rules.0.push(ActiveRule { rule: Rule::new().fail(400, code, "m").times(1), added: t0, seen: 0, acted: 0 });
        }
        let c = call("iam", "CreateRole");
        assert_eq!(rules.on_request(&c, t0).fault.unwrap().code, "First");
        assert_eq!(rules.on_request(&c, t0).fault.unwrap().code, "Second");
        assert!(rules.on_request(&c, t0).fault.is_none());
    }

    #[test]
    fn fault_bodies_per_protocol() {
        let f = Fault { status: 400, code: "DependencyViolation".into(), message: "a < b".into() };
        let r = fault_response(&f, Protocol::Ec2Query);
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("x-amzn-errortype").is_none());
        let r = fault_response(&f, Protocol::Json);
        assert_eq!(r.headers()["x-amzn-errortype"], "DependencyViolation");
    }
}
