//! `serve` as the X-Ray daemon of the function processes it runs, and the traces it keeps.
//!
//! - **The daemon** ([`Daemon`]): a UDP socket on `127.0.0.1` (an ephemeral port) given to the
//!   function's processes as `AWS_XRAY_DAEMON_ADDRESS`, as Lambda does for a function with Active
//!   tracing. Each datagram is the daemon protocol's header line (`{"format": "json", "version":
//!   1}`), a newline, and one segment or subsegment document (X-Ray developer guide, "Sending
//!   segment documents to the X-Ray daemon"). A datagram over [`MAX_DATAGRAM`] bytes, or one that
//!   is not that ([`parse_datagram`]: the header, then a JSON object with a 16-hex-digit `id`, a
//!   `trace_id` of the form `1-8hex-24hex`, a numeric `start_time`, an `end_time` or `in_progress`,
//!   and a `parent_id` for an independent subsegment), is dropped and counted
//!   ([`ServeEvent::XRayDropped`]).
//! - **`serve`'s own segments** (`super::gateway` records them for each request, [`Request`]):
//!   what AWS records for API Gateway → Lambda (API Gateway developer guide, "Understanding X-Ray
//!   traces for API Gateway APIs"; Lambda developer guide, "Visualize Lambda function invocations
//!   using AWS X-Ray"): the stage's segment (`API_ID/STAGE`, origin `AWS::ApiGateway::Stage`,
//!   `http`, `aws.api_gateway`, the `aws:api_id` / `aws:api_stage` annotations, `error` for a 4XX,
//!   `throttle` for a 429, `fault` for a 5XX) with its `Lambda` subsegment (the Invoke call); the
//!   Lambda service's segment (origin `AWS::Lambda`: the time the event spent in Lambda, waiting
//!   for an environment included); the function's segment (origin `AWS::Lambda::Function`) with
//!   its `Initialization` subsegment on a cold start and its `Invocation`. The trace header the
//!   function gets is `Root=TRACE;Parent=<the function segment's id>;Sampled=1`, so the handler's
//!   DynamoDB subsegments name the function segment as their parent. Every request is sampled
//!   (AWS samples the first request each second and 5% of the others): locally, each one is
//!   worth seeing.
//! - **The store** ([`Traces`]): the last [`local::KEPT_TRACES`] traces by trace id (the oldest
//!   dropped first), at most [`MAX_DOCUMENTS_PER_TRACE`] documents each and [`MAX_STORE_BYTES`]
//!   in all. Read as X-Ray's `BatchGetTraces` answer ([`local::LocalTraces`], newest first), each
//!   independent subsegment nested into its parent's document as X-Ray does.
//!
//! Times are seconds since the epoch with microseconds, as the X-Ray SDKs write them.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::stats::Stats;
use crate::events::{Event, ServeEvent};
use crate::local::{self, LocalSegment, LocalTrace, LocalTraces};
use crate::ui::Printer;

/// The largest datagram the daemon reads (X-Ray's segment documents are at most 64 kB).
pub const MAX_DATAGRAM: usize = 64 * 1024;

/// Documents kept per trace; more are dropped (a runaway loop of subsegments stays bounded).
pub const MAX_DOCUMENTS_PER_TRACE: usize = 500;

/// Bytes of documents kept in all; past it the oldest traces go first.
pub const MAX_STORE_BYTES: usize = 32 * 1024 * 1024;

/// Seconds since the epoch, to the microsecond.
pub fn epoch_seconds(t: SystemTime) -> f64 {
    let micros = t.duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    micros as f64 / 1e6
}

/// A new segment or subsegment id: 16 hex digits.
pub fn new_id() -> String {
    format!("{:016x}", super::random_u64())
}

/// A document, parsed just enough to file it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub trace_id: String,
    pub id: String,
    /// An independent subsegment's parent (a segment or subsegment id); None for a segment.
    pub parent_of_subsegment: Option<String>,
    pub start_time: f64,
    pub body: Map<String, Value>,
    /// Its size as received (or serialized), for the store's bound.
    pub bytes: usize,
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("a datagram of {0} bytes, over the daemon's {MAX_DATAGRAM}")]
    TooLarge(usize),
    #[error("no header line (`{{\"format\": \"json\", \"version\": 1}}` and a newline)")]
    NoHeader,
    #[error("the header is not `{{\"format\": \"json\", \"version\": 1}}`: {0}")]
    BadHeader(String),
    #[error("the document is not a JSON object: {0}")]
    NotAnObject(String),
    #[error("the document's `{field}` {problem}")]
    Field { field: &'static str, problem: &'static str },
    #[error("trace {0} already holds {MAX_DOCUMENTS_PER_TRACE} documents")]
    TraceFull(String),
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `1-` then 8 hex digits (the epoch time), `-`, then 24 hex digits. Pure.
pub fn is_trace_id(s: &str) -> bool {
    let mut parts = s.split('-');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("1"), Some(time), Some(random), None) if is_hex(time, 8) && is_hex(random, 24)
    )
}

/// One datagram of the daemon protocol. Pure.
pub fn parse_datagram(datagram: &[u8]) -> Result<Document, Malformed> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(Malformed::TooLarge(datagram.len()));
    }
    let newline = datagram.iter().position(|b| *b == b'\n').ok_or(Malformed::NoHeader)?;
    let (header, body) = (&datagram[..newline], &datagram[newline + 1..]);
    let header: Value =
        serde_json::from_slice(header).map_err(|_| Malformed::BadHeader(String::from_utf8_lossy(header).into()))?;
    if header.get("format") != Some(&json!("json")) || header.get("version") != Some(&json!(1)) {
        return Err(Malformed::BadHeader(header.to_string()));
    }
    let body: Value = serde_json::from_slice(body).map_err(|e| Malformed::NotAnObject(e.to_string()))?;
    let Value::Object(body) = body else {
        return Err(Malformed::NotAnObject(format!("a JSON {}", kind_of(&body))));
    };
    document(body, datagram.len())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The checks of X-Ray's segment document schema that filing needs. Pure.
fn document(body: Map<String, Value>, bytes: usize) -> Result<Document, Malformed> {
    let field = |field: &'static str, problem: &'static str| Malformed::Field { field, problem };
    let string = |name: &'static str| body.get(name).and_then(Value::as_str);
    let id = string("id").filter(|id| is_hex(id, 16)).ok_or_else(|| field("id", "is not 16 hex digits"))?;
    let trace_id =
        string("trace_id").filter(|t| is_trace_id(t)).ok_or_else(|| field("trace_id", "is not 1-8hex-24hex"))?;
    string("name").filter(|n| !n.is_empty()).ok_or_else(|| field("name", "is missing"))?;
    let start_time =
        body.get("start_time").and_then(Value::as_f64).ok_or_else(|| field("start_time", "is not a number"))?;
    let ended = body.get("end_time").is_some_and(Value::is_number);
    let in_progress = body.get("in_progress") == Some(&Value::Bool(true));
    if !ended && !in_progress {
        return Err(field("end_time", "is missing (and `in_progress` is not true)"));
    }
    let parent_of_subsegment = if string("type") == Some("subsegment") {
        let parent =
            string("parent_id").filter(|p| is_hex(p, 16)).ok_or_else(|| field("parent_id", "is not 16 hex digits"))?;
        Some(parent.to_string())
    } else {
        None
    };
    Ok(Document { trace_id: trace_id.to_string(), id: id.to_string(), parent_of_subsegment, start_time, bytes, body })
}

#[derive(Debug, Default)]
struct Trace {
    docs: Vec<Document>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Store {
    /// Trace ids, the first seen first.
    order: VecDeque<String>,
    traces: HashMap<String, Trace>,
    bytes: usize,
}

/// The traces kept in memory, shared by the daemon, the gateway and the admin listener.
/// Survives a `serve --watch` swap: it belongs to neither pool.
#[derive(Debug, Default)]
pub struct Traces {
    store: Mutex<Store>,
}

impl Traces {
    /// File a document under its trace; the oldest traces go when there are too many.
    pub fn put(&self, doc: Document) -> Result<(), Malformed> {
        let mut st = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *st;
        if !st.traces.contains_key(&doc.trace_id) {
            st.order.push_back(doc.trace_id.clone());
            st.traces.insert(doc.trace_id.clone(), Trace::default());
        }
        let trace = st.traces.get_mut(&doc.trace_id).expect("inserted above");
        if trace.docs.len() >= MAX_DOCUMENTS_PER_TRACE {
            return Err(Malformed::TraceFull(doc.trace_id));
        }
        trace.bytes += doc.bytes;
        st.bytes += doc.bytes;
        trace.docs.push(doc);
        while st.order.len() > 1 && (st.order.len() > local::KEPT_TRACES || st.bytes > MAX_STORE_BYTES) {
            if let Some(oldest) = st.order.pop_front()
                && let Some(gone) = st.traces.remove(&oldest)
            {
                st.bytes -= gone.bytes;
            }
        }
        Ok(())
    }

    /// `serve`'s own documents (built here, so valid).
    pub fn record(&self, docs: Vec<Value>) {
        for doc in docs {
            let bytes = doc.to_string().len();
            if let Value::Object(body) = doc
                && let Ok(doc) = document(body, bytes)
            {
                let _ = self.put(doc);
            }
        }
    }

    /// The newest `limit` traces that have a segment, newest first (by their first segment's
    /// start), in `BatchGetTraces`' shape.
    pub fn local(&self, limit: usize) -> LocalTraces {
        let st = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let mut traces: Vec<(f64, LocalTrace)> = st.traces.iter().filter_map(|(id, t)| assemble(id, &t.docs)).collect();
        drop(st);
        traces.sort_by(|a, b| b.0.total_cmp(&a.0));
        LocalTraces { traces: traces.into_iter().take(limit).map(|(_, t)| t).collect() }
    }
}

/// One trace's documents as X-Ray returns them: its segments (a later document with the same id
/// replaces an earlier one, as a completed segment replaces its in-progress one), oldest first,
/// each independent subsegment nested under its parent (left out while the parent is unknown);
/// with the start of its first segment. None without a segment. Pure.
fn assemble(trace_id: &str, docs: &[Document]) -> Option<(f64, LocalTrace)> {
    let mut segments: Vec<(f64, Map<String, Value>)> = Vec::new();
    let mut pending: Vec<&Document> = Vec::new();
    for doc in docs {
        match &doc.parent_of_subsegment {
            None => match segments.iter_mut().find(|(_, s)| s.get("id") == doc.body.get("id")) {
                Some(seen) => *seen = (doc.start_time, doc.body.clone()),
                None => segments.push((doc.start_time, doc.body.clone())),
            },
            Some(_) => pending.push(doc),
        }
    }
    if segments.is_empty() {
        return None;
    }
    // A subsegment may be the parent of another: nest until nothing more finds its parent.
    loop {
        let before = pending.len();
        pending.retain(|doc| {
            let parent = doc.parent_of_subsegment.as_deref().unwrap_or_default();
            !segments.iter_mut().any(|(_, s)| nest(s, parent, &doc.body))
        });
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    segments.sort_by(|a, b| a.0.total_cmp(&b.0));
    let start = segments.iter().map(|(t, _)| *t).fold(f64::INFINITY, f64::min);
    let end = segments
        .iter()
        .map(|(t, s)| s.get("end_time").and_then(Value::as_f64).unwrap_or(*t))
        .fold(f64::NEG_INFINITY, f64::max);
    let segments = segments
        .into_iter()
        .map(|(_, mut s)| {
            sort_subsegments(&mut s);
            let id = s.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            LocalSegment { id, document: Value::Object(s).to_string() }
        })
        .collect();
    let duration = ((end - start).max(0.0) * 1e6).round() / 1e6;
    Some((start, LocalTrace { id: trace_id.to_string(), duration, segments }))
}

/// Put `sub` into the `subsegments` of the node with id `parent` in `node`'s tree; whether it
/// was found.
fn nest(node: &mut Map<String, Value>, parent: &str, sub: &Map<String, Value>) -> bool {
    if node.get("id").and_then(Value::as_str) == Some(parent) {
        let mut sub = sub.clone();
        // Nested, it is no longer independent.
        for field in ["type", "trace_id", "parent_id"] {
            sub.remove(field);
        }
        match node.entry("subsegments").or_insert_with(|| Value::Array(Vec::new())) {
            Value::Array(list) => list.push(Value::Object(sub)),
            other => *other = Value::Array(vec![Value::Object(sub)]),
        }
        return true;
    }
    match node.get_mut("subsegments") {
        Some(Value::Array(list)) => list.iter_mut().any(|s| s.as_object_mut().is_some_and(|s| nest(s, parent, sub))),
        _ => false,
    }
}

fn sort_subsegments(node: &mut Map<String, Value>) {
    if let Some(Value::Array(list)) = node.get_mut("subsegments") {
        let start = |v: &Value| v.get("start_time").and_then(Value::as_f64).unwrap_or(0.0);
        list.sort_by(|a, b| start(a).total_cmp(&start(b)));
        for s in list.iter_mut().filter_map(Value::as_object_mut) {
            sort_subsegments(s);
        }
    }
}

/// The DynamoDB calls in a document (a `DynamoDB` subsegment, itself or nested): (start, throttled)
/// of each, for the counters. Pure.
pub fn dynamodb_calls(body: &Map<String, Value>) -> Vec<(f64, bool)> {
    let mut calls = Vec::new();
    fn walk(node: &Map<String, Value>, calls: &mut Vec<(f64, bool)>) {
        if node.get("name").and_then(Value::as_str) == Some("DynamoDB")
            && node.get("namespace").and_then(Value::as_str) == Some("aws")
            && let Some(start) = node.get("start_time").and_then(Value::as_f64)
        {
            calls.push((start, node.get("throttle") == Some(&Value::Bool(true))));
        }
        if let Some(Value::Array(list)) = node.get("subsegments") {
            for s in list.iter().filter_map(Value::as_object) {
                walk(s, calls);
            }
        }
    }
    walk(body, &mut calls);
    calls
}

/// The daemon's socket.
pub struct Daemon {
    socket: tokio::net::UdpSocket,
    address: SocketAddr,
}

/// How often at most a line says datagrams were dropped.
const DROPPED_EVERY: Duration = Duration::from_secs(5);

impl Daemon {
    /// Bound on `127.0.0.1`, an ephemeral port.
    pub async fn bind() -> std::io::Result<Daemon> {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let address = socket.local_addr()?;
        Ok(Daemon { socket, address })
    }

    /// `127.0.0.1:PORT`, for `AWS_XRAY_DAEMON_ADDRESS`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// File every datagram until the task is aborted; count the DynamoDB calls the documents
    /// record. A dropped datagram is counted, and told at most once per [`DROPPED_EVERY`].
    pub async fn run(self, traces: Arc<Traces>, stats: Arc<Stats>, printer: Arc<dyn Printer>) {
        // One byte more than the largest datagram taken: a longer one shows as too large.
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        let (mut dropped, mut total) = (0usize, 0usize);
        let mut said: Option<Instant> = None;
        loop {
            let Ok((n, _)) = self.socket.recv_from(&mut buf).await else {
                // ICMP errors and the like: nothing was received.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let filed = parse_datagram(&buf[..n]).and_then(|doc| {
                let calls = dynamodb_calls(&doc.body);
                traces.put(doc)?;
                for (start, throttled) in calls {
                    stats.dynamodb_call(start.floor() as i64, throttled);
                }
                Ok(())
            });
            if let Err(why) = filed {
                dropped += 1;
                total += 1;
                if said.is_none_or(|t| t.elapsed() >= DROPPED_EVERY) {
                    let event = ServeEvent::XRayDropped { dropped, total, reason: why.to_string() };
                    printer.event(Event::Serve(event));
                    dropped = 0;
                    said = Some(Instant::now());
                }
            }
        }
    }
}

/// What `serve`'s segments of one request record.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub trace_id: &'a str,
    /// The stage segment's id.
    pub id: &'a str,
    pub api_id: &'a str,
    pub stage: &'a str,
    pub account_id: &'a str,
    pub region: &'a str,
    pub request_id: &'a str,
    pub extended_request_id: &'a str,
    pub method: &'a str,
    pub url: String,
    pub client_ip: &'a str,
    pub user_agent: Option<&'a str>,
    pub status: u16,
    pub content_length: usize,
    /// Received and answered (seconds since the epoch).
    pub start: f64,
    pub end: f64,
    pub invoked: Option<Invoke<'a>>,
}

/// The integration: the Lambda Invoke of one request.
#[derive(Debug, Clone)]
pub struct Invoke<'a> {
    /// The ids given out before the invoke: the stage segment's `Lambda` subsegment, the Lambda
    /// service's segment, the function's segment (the trace header's `Parent`).
    pub ids: &'a InvokeIds,
    pub function_name: &'a str,
    pub function_arn: &'a str,
    /// Given to the pool, and its outcome (or the integration timeout).
    pub start: f64,
    pub end: f64,
    /// How the function ran (None: no environment took the event).
    pub ran: Option<super::runtime::Ran>,
    /// Why the invoke failed (a function error, a crash, a timeout, no answer in time).
    pub failure: Option<String>,
    /// The payload's size, when there was one.
    pub response_length: Option<usize>,
}

/// The ids of an invoke's segments, made before it (the function's goes in its trace header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeIds {
    pub lambda_call: String,
    pub lambda_service: String,
    pub function: String,
}

impl InvokeIds {
    pub fn new() -> InvokeIds {
        InvokeIds { lambda_call: new_id(), lambda_service: new_id(), function: new_id() }
    }

    /// The trace header the function gets.
    pub fn trace_header(&self, trace_id: &str) -> String {
        format!("Root={trace_id};Parent={};Sampled=1", self.function)
    }
}

/// `error` / `throttle` / `fault` of an HTTP status, as X-Ray sets them.
fn status_flags(doc: &mut Map<String, Value>, status: u16) {
    if (400..500).contains(&status) {
        doc.insert("error".into(), Value::Bool(true));
    }
    if status == 429 {
        doc.insert("throttle".into(), Value::Bool(true));
    }
    if status >= 500 {
        doc.insert("fault".into(), Value::Bool(true));
    }
}

/// Microseconds, as the SDKs write them.
fn t(seconds: f64) -> Value {
    json!((seconds * 1e6).round() / 1e6)
}

/// The segments `serve` records for one request: the stage's (with its `Lambda` subsegment),
/// and when it invoked the function, Lambda's and the function's. Pure.
pub fn segments(r: &Request<'_>) -> Vec<Value> {
    let partition = crate::aws::partition(r.region);
    let end = r.end.max(r.start + 1e-6);
    let mut stage = json!({
        "name": format!("{}/{}", r.api_id, r.stage),
        "id": r.id,
        "trace_id": r.trace_id,
        "start_time": t(r.start),
        "end_time": t(end),
        "origin": "AWS::ApiGateway::Stage",
        "resource_arn": format!("arn:{partition}:apigateway:{}::/restapis/{}/stages/{}", r.region, r.api_id, r.stage),
        "http": {
            "request": {"url": r.url, "method": r.method, "client_ip": r.client_ip, "user_agent": r.user_agent},
            "response": {"status": r.status, "content_length": r.content_length},
        },
        "aws": {"api_gateway": {
            "account_id": r.account_id, "rest_api_id": r.api_id, "stage": r.stage, "request_id": r.request_id,
        }},
        "annotations": {"aws:api_id": r.api_id, "aws:api_stage": r.stage},
        "metadata": {"default": {"extended_request_id": r.extended_request_id, "request_id": r.request_id}},
    });
    let stage_doc = stage.as_object_mut().expect("an object");
    if r.user_agent.is_none()
        && let Some(Value::Object(req)) = stage_doc.get_mut("http").and_then(|h| h.get_mut("request"))
    {
        req.remove("user_agent");
    }
    status_flags(stage_doc, r.status);
    let Some(inv) = &r.invoked else {
        return vec![stage];
    };
    let region = r.region;
    let inv_end = inv.end.max(inv.start + 1e-6);
    let failed = inv.failure.is_some();
    let mut http = json!({
        "request": {
            "url": format!(
                "https://lambda.{region}.{}/2015-03-31/functions/{}/invocations",
                crate::resources::apigw::dns_suffix(region),
                inv.function_arn
            ),
            "method": "POST",
        },
    });
    if let Some(len) = inv.response_length {
        http["response"] = json!({"status": 200, "content_length": len});
    }
    let mut call = json!({
        "id": inv.ids.lambda_call,
        "name": "Lambda",
        "start_time": t(inv.start),
        "end_time": t(inv_end),
        "namespace": "aws",
        "http": http,
        "aws": {"function_name": inv.function_name, "region": region, "operation": "Invoke", "resource_names": [inv.function_name]},
    });
    let call_doc = call.as_object_mut().expect("an object");
    if failed {
        call_doc.insert("fault".into(), Value::Bool(true));
    }
    stage_doc.insert("subsegments".into(), json!([call]));

    let mut service = json!({
        "name": inv.function_name,
        "id": inv.ids.lambda_service,
        "trace_id": r.trace_id,
        "parent_id": inv.ids.lambda_call,
        "start_time": t(inv.start),
        "end_time": t(inv_end),
        "origin": "AWS::Lambda",
        "resource_arn": inv.function_arn,
    });
    let service_doc = service.as_object_mut().expect("an object");
    if let Some(ran) = &inv.ran {
        service_doc.insert("aws".into(), json!({"request_id": ran.request_id}));
        service_doc.insert("http".into(), json!({"response": {"status": 200}}));
    }
    let Some(ran) = &inv.ran else {
        // No environment took it (the queue's wait ran past the integration timeout).
        service_doc.insert("fault".into(), Value::Bool(true));
        return vec![stage, service];
    };
    let fn_start = ran.init.map_or(ran.taken, |(started, _)| started.min(ran.taken));
    let mut subsegments = Vec::new();
    if let Some((started, ready)) = ran.init {
        subsegments.push(json!({
            "id": new_id(), "name": "Initialization", "start_time": t(started), "end_time": t(ready.max(started + 1e-6)),
            "aws": {"function_arn": inv.function_arn},
        }));
    }
    let mut invocation = json!({
        "id": new_id(), "name": "Invocation", "start_time": t(ran.taken), "end_time": t(inv_end.max(ran.taken + 1e-6)),
        "aws": {"function_arn": inv.function_arn},
    });
    if failed {
        invocation.as_object_mut().expect("an object").insert("fault".into(), Value::Bool(true));
    }
    subsegments.push(invocation);
    let mut function = json!({
        "name": inv.function_name,
        "id": inv.ids.function,
        "trace_id": r.trace_id,
        "parent_id": inv.ids.lambda_service,
        "start_time": t(fn_start),
        "end_time": t(inv_end.max(ran.taken + 1e-6)),
        "origin": "AWS::Lambda::Function",
        "resource_arn": inv.function_arn,
        "aws": {"function_arn": inv.function_arn, "resource_names": [inv.function_name], "account_id": r.account_id},
        "subsegments": subsegments,
    });
    if let Some(why) = &inv.failure {
        let doc = function.as_object_mut().expect("an object");
        doc.insert("fault".into(), Value::Bool(true));
        doc.insert("cause".into(), json!({"exceptions": [{"id": new_id(), "message": why}]}));
    }
    vec![stage, service, function]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "1-5759e988-bd862e3fe1be46a994272793";

    fn datagram(doc: &Value) -> Vec<u8> {
        format!("{{\"format\": \"json\", \"version\": 1}}\n{doc}").into_bytes()
    }

    fn dynamodb(parent: &str, start: f64, end: f64) -> Value {
        json!({"name": "DynamoDB", "id": new_id(), "trace_id": TRACE, "parent_id": parent, "type": "subsegment",
               "namespace": "aws", "start_time": start, "end_time": end, "aws": {"operation": "PutItem"},
               "throttle": false})
    }

    #[test]
    fn datagrams_are_the_header_and_one_document() {
        let sub = dynamodb("53995c3f42cd8ad8", 1.5, 1.6);
        let doc = parse_datagram(&datagram(&sub)).expect("a subsegment");
        assert_eq!((doc.trace_id.as_str(), doc.parent_of_subsegment.as_deref()), (TRACE, Some("53995c3f42cd8ad8")));
        assert_eq!(doc.start_time, 1.5);
        let compact = format!("{{\"format\":\"json\",\"version\":1}}\n{sub}");
        assert!(parse_datagram(compact.as_bytes()).is_ok(), "the header's spacing does not matter");
        let segment =
            json!({"name": "s", "id": "0123456789abcdef", "trace_id": TRACE, "start_time": 1.0, "in_progress": true});
        assert_eq!(parse_datagram(&datagram(&segment)).unwrap().parent_of_subsegment, None);
    }

    #[test]
    fn malformed_datagrams_say_why() {
        let good = dynamodb("53995c3f42cd8ad8", 1.5, 1.6);
        let with = |f: &dyn Fn(&mut Map<String, Value>)| {
            let mut d = good.as_object().unwrap().clone();
            f(&mut d);
            datagram(&Value::Object(d))
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good.to_string().into_bytes(), "no header"),
            (format!("{{\"format\":\"json\",\"version\":2}}\n{good}").into_bytes(), "header"),
            (b"not json\n{}".to_vec(), "header"),
            (b"{\"format\":\"json\",\"version\":1}\n[1]".to_vec(), "a JSON array"),
            (b"{\"format\":\"json\",\"version\":1}\n{".to_vec(), "not a JSON object"),
            (
                with(&|d| {
                    d.insert("id".into(), json!("xyz"));
                }),
                "`id`",
            ),
            (
                with(&|d| {
                    d.insert("trace_id".into(), json!("1-abc-def"));
                }),
                "`trace_id`",
            ),
            (
                with(&|d| {
                    d.remove("name");
                }),
                "`name`",
            ),
            (
                with(&|d| {
                    d.insert("start_time".into(), json!("soon"));
                }),
                "`start_time`",
            ),
            (
                with(&|d| {
                    d.remove("end_time");
                }),
                "`end_time`",
            ),
            (
                with(&|d| {
                    d.remove("parent_id");
                }),
                "`parent_id`",
            ),
            (vec![b' '; MAX_DATAGRAM + 1], "over the daemon's 65536"),
        ];
        for (bytes, why) in cases {
            let err = parse_datagram(&bytes).expect_err(why).to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
        assert!(is_trace_id(TRACE) && !is_trace_id("1-5759e988-bd862e3fe1be46a99427279") && !is_trace_id("2-a-b"));
    }

    #[test]
    fn subsegments_nest_under_their_parent_and_traces_are_newest_first() {
        let traces = Traces::default();
        let seg = json!({"name": "fn", "id": "aaaaaaaaaaaaaaaa", "trace_id": TRACE, "start_time": 10.0, "end_time": 10.5,
                         "subsegments": [{"id": "bbbbbbbbbbbbbbbb", "name": "Invocation", "start_time": 10.1, "end_time": 10.4}]});
        // The subsegments arrive first (as the handler's do), one of them under another.
        let d1 = dynamodb("bbbbbbbbbbbbbbbb", 10.2, 10.3);
        let inner_id = d1["id"].as_str().unwrap().to_string();
        let d2 = dynamodb(&inner_id, 10.25, 10.28);
        for d in [&d2, &d1] {
            traces.put(parse_datagram(&datagram(d)).unwrap()).unwrap();
        }
        assert!(traces.local(10).traces.is_empty(), "no segment yet: nothing to show");
        traces.record(vec![seg]);
        let other = "1-5759e989-bd862e3fe1be46a994272793";
        traces.record(vec![
            json!({"name": "g", "id": "cccccccccccccccc", "trace_id": other, "start_time": 20.0, "end_time": 20.01}),
        ]);
        let got = traces.local(10);
        assert_eq!(got.traces.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [other, TRACE], "newest first");
        assert_eq!(traces.local(1).traces.len(), 1);
        let t = &got.traces[1];
        assert_eq!(t.duration, 0.5);
        let doc: Value = serde_json::from_str(&t.segments[0].document).unwrap();
        let invocation = &doc["subsegments"][0];
        assert_eq!(invocation["subsegments"][0]["id"], d1["id"]);
        assert_eq!(invocation["subsegments"][0]["subsegments"][0]["id"], d2["id"]);
        assert!(invocation["subsegments"][0].get("trace_id").is_none(), "nested, not independent");
    }

    #[test]
    fn the_store_is_bounded() {
        let traces = Traces::default();
        for i in 0..(local::KEPT_TRACES + 5) {
            let trace = format!("1-5759e988-{i:024x}");
            traces.record(vec![json!({"name": "g", "id": "cccccccccccccccc", "trace_id": trace, "start_time": i as f64, "end_time": i as f64 + 0.1})]);
        }
        let kept = traces.local(usize::MAX).traces;
        assert_eq!(kept.len(), local::KEPT_TRACES);
        assert_eq!(
            kept.last().map(|t| t.id.as_str()),
            Some("1-5759e988-000000000000000000000005"),
            "the oldest dropped"
        );
        let full = (0..=MAX_DOCUMENTS_PER_TRACE)
            .map(|_| traces.put(parse_datagram(&datagram(&dynamodb("53995c3f42cd8ad8", 1.0, 2.0))).unwrap()))
            .filter(Result::is_err)
            .count();
        assert_eq!(full, 1, "one past the per-trace bound is refused");
    }

    fn ran(init: bool) -> super::super::runtime::Ran {
        super::super::runtime::Ran {
            env: 1,
            request_id: "r-1".into(),
            init: init.then_some((100.002, 100.050)),
            taken: 100.051,
        }
    }

    fn request<'a>(ids: &'a InvokeIds, status: u16, invoked: bool, init: bool) -> Request<'a> {
        Request {
            trace_id: TRACE,
            id: "1111111111111111",
            api_id: "api1",
            stage: "prod",
            account_id: "123456789012",
            region: "eu-west-1",
            request_id: "req-1",
            extended_request_id: "ext=",
            method: "POST",
            url: "http://127.0.0.1:8080/prod/".into(),
            client_ip: "127.0.0.1",
            user_agent: Some("curl/8"),
            status,
            content_length: 42,
            start: 100.0,
            end: 100.2,
            invoked: invoked.then(|| Invoke {
                ids,
                function_name: "apigw_handler",
                function_arn: "arn:aws:lambda:eu-west-1:123456789012:function:apigw_handler",
                start: 100.001,
                end: 100.19,
                ran: Some(ran(init)),
                failure: None,
                response_length: Some(42),
            }),
        }
    }

    #[test]
    fn a_request_refused_by_the_gateway_is_its_segment_alone() {
        let ids = InvokeIds::new();
        let docs = segments(&request(&ids, 403, false, false));
        assert_eq!(docs.len(), 1);
        let s = &docs[0];
        assert_eq!((s["name"].as_str(), s["origin"].as_str()), (Some("api1/prod"), Some("AWS::ApiGateway::Stage")));
        assert_eq!(s["resource_arn"], "arn:aws:apigateway:eu-west-1::/restapis/api1/stages/prod");
        assert_eq!((s["error"].clone(), s.get("fault"), s.get("throttle")), (json!(true), None, None));
        assert_eq!(s["http"]["response"]["status"], 403);
        assert_eq!(s["annotations"]["aws:api_stage"], "prod");
        let throttled = &segments(&request(&ids, 429, false, false))[0];
        assert_eq!((throttled["error"].clone(), throttled["throttle"].clone()), (json!(true), json!(true)));
        assert_eq!(segments(&request(&ids, 504, false, false))[0]["fault"], true);
    }

    #[test]
    fn an_invoked_request_nests_gateway_lambda_and_function() {
        let ids = InvokeIds::new();
        let docs = segments(&request(&ids, 200, true, true));
        let [stage, service, function] = &docs[..] else { panic!("three segments: {docs:?}") };
        let call = &stage["subsegments"][0];
        assert_eq!((call["name"].as_str(), call["namespace"].as_str()), (Some("Lambda"), Some("aws")));
        assert_eq!(call["aws"]["operation"], "Invoke");
        assert_eq!(service["parent_id"].as_str(), call["id"].as_str());
        assert_eq!(service["origin"], "AWS::Lambda");
        assert_eq!(function["parent_id"].as_str(), service["id"].as_str());
        assert_eq!(function["origin"], "AWS::Lambda::Function");
        assert_eq!(function["id"].as_str(), Some(ids.function.as_str()));
        assert_eq!(ids.trace_header(TRACE), format!("Root={TRACE};Parent={};Sampled=1", ids.function));
        let names: Vec<&str> =
            function["subsegments"].as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
        assert_eq!(names, ["Initialization", "Invocation"]);
        // Each child within its parent.
        let within = |child: &Value, parent: &Value| {
            child["start_time"].as_f64() >= parent["start_time"].as_f64()
                && child["end_time"].as_f64() <= parent["end_time"].as_f64()
        };
        assert!(within(call, stage) && within(service, call) && within(function, service));
        for sub in function["subsegments"].as_array().unwrap() {
            assert!(within(sub, function), "{sub}");
        }
        // A warm start: no Initialization.
        let warm = segments(&request(&ids, 200, true, false));
        assert_eq!(warm[2]["subsegments"].as_array().map(Vec::len), Some(1));
    }

    /// The daemon on a real socket: what the handler sends is filed and counted; garbage is
    /// dropped and told.
    #[tokio::test]
    async fn the_daemon_files_what_it_receives_and_drops_the_rest() {
        let daemon = Daemon::bind().await.unwrap();
        let address = daemon.address();
        assert!(address.ip().is_loopback());
        let (traces, stats) = (Arc::new(Traces::default()), Arc::new(Stats::default()));
        let printer = Arc::new(crate::ui::Recorder::default());
        let task = tokio::spawn(daemon.run(traces.clone(), stats.clone(), printer.clone()));
        let now = epoch_seconds(SystemTime::now());
        let segment = json!({"name": "fn", "id": "aaaaaaaaaaaaaaaa", "trace_id": TRACE, "start_time": now, "end_time": now + 0.1});
        let mut sub = dynamodb("aaaaaaaaaaaaaaaa", now + 0.01, now + 0.02);
        sub["throttle"] = json!(true);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for datagram in [datagram(&segment), b"not the protocol".to_vec(), datagram(&sub)] {
            sender.send_to(&datagram, address).unwrap();
        }
        let start = Instant::now();
        while traces.local(1).traces.first().is_none_or(|t| !t.segments[0].document.contains("DynamoDB")) {
            assert!(start.elapsed() < Duration::from_secs(5), "filed within 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        let minutes = stats.minutes(now as u64);
        assert_eq!((minutes[0].dynamodb_calls, minutes[0].dynamodb_throttles), (1, 1));
        let events = printer.events.lock().unwrap();
        let dropped: Vec<&Event> =
            events.iter().filter(|e| matches!(e, Event::Serve(ServeEvent::XRayDropped { .. }))).collect();
        assert_eq!(dropped.len(), 1, "{events:?}");
        let Event::Serve(ServeEvent::XRayDropped { dropped, total, reason }) = dropped[0] else { unreachable!() };
        assert_eq!((*dropped, *total), (1, 1));
        assert!(reason.contains("no header line"), "{reason}");
    }

    #[test]
    fn dynamodb_calls_are_found_nested_too() {
        let d = dynamodb("53995c3f42cd8ad8", 1.5, 1.6);
        assert_eq!(dynamodb_calls(d.as_object().unwrap()), [(1.5, false)]);
        let seg = json!({"name": "x", "subsegments": [{"name": "DynamoDB", "namespace": "aws", "start_time": 2.0, "throttle": true}]});
        assert_eq!(dynamodb_calls(seg.as_object().unwrap()), [(2.0, true)]);
    }
}
