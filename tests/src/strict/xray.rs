//! X-Ray as `traces` needs it ([`super::Behaviour::XRayTraces`]). moto 5.2's X-Ray keeps the
//! segment documents PutTraceSegments sends and serves them back with BatchGetTraces, but its
//! GetTraceSummaries answers 500 "Not implemented yet" to any FilterExpression and reports every
//! trace with `ResponseTime: 1` and a duration cut to whole seconds, and its GetServiceGraph
//! answers an empty graph whatever it holds. The model keeps the documents it sees pass in
//! PutTraceSegments (moto still stores them for BatchGetTraces) and answers the two itself, as
//! the X-Ray API reference and developer guide describe them:
//!
//! - GetTraceSummaries: the traces whose start (`TimeRangeType` `TraceId`, the default: the time
//!   in the trace id) falls in `[StartTime, EndTime]`, filtered by `FilterExpression`, each with
//!   its `Duration` (first segment start to last end), `ResponseTime` (the root segment's),
//!   `HasFault` / `HasError` / `HasThrottle` (any segment's or subsegment's flags), the root's
//!   `Http` and its `ServiceIds`. The filter expression subset evaluated is the one the binary
//!   sends ("Use filter expressions"): `service(id(name: "…", type: "…"))`, `service("…")`, the
//!   boolean keywords `ok`, `error`, `throttle`, `fault`, `!`, `AND` / `&&`, `OR` / `||` and
//!   parentheses. Anything else is refused with X-Ray's 400 `InvalidRequestException`, never
//!   silently ignored: a filter the model cannot read would otherwise pass everything.
//! - GetServiceGraph: one node per service (a segment's name and origin, and the AWS resources
//!   its `aws` subsegments call, DynamoDB tables by `table_name`) over the traces of the window,
//!   with its counts (ok, 4XX with throttles, 5XX) and one edge per caller → callee with the
//!   callee's counts and its response time histogram.
//!
//! Unverified details (no AWS account here): the exact message of the refusal, the page size (one
//! page is answered), and the `client` node AWS adds in front of the root service (not added).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Exchange;
use crate::proxy::{Fault, Reply};

/// The segment documents seen, by trace id, in arrival order.
#[derive(Debug, Default)]
pub struct Traces(BTreeMap<String, Vec<Value>>);

impl Traces {
    /// A PutTraceSegments that moto accepted: its documents, kept.
    pub fn record(&mut self, ex: &Exchange) {
        if !(ex.service == "xray" && ex.operation == "PutTraceSegments") {
            return;
        }
        for doc in ex.strings_at(&["TraceSegmentDocuments"]).unwrap_or_default() {
            let Ok(v) = serde_json::from_str::<Value>(&doc) else { continue };
            let Some(trace) = v.get("trace_id").and_then(Value::as_str).map(str::to_string) else { continue };
            self.0.entry(trace).or_default().push(v);
        }
    }

    /// The model's answer to GetTraceSummaries or GetServiceGraph; `None` for anything else.
    pub fn answer(&self, ex: &Exchange) -> Option<Result<Reply, Fault>> {
        if ex.service != "xray" {
            return None;
        }
        let window = || {
            let t = |k: &str| ex.input.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            (t("StartTime"), t("EndTime"))
        };
        match ex.operation.as_str() {
            "GetTraceSummaries" => Some(self.summaries(window(), ex.str_at(&["FilterExpression"]))),
            "GetServiceGraph" => Some(Ok(reply(self.service_graph(window())))),
            _ => None,
        }
    }

    fn in_window(&self, (start, end): (f64, f64)) -> impl Iterator<Item = Trace<'_>> {
        self.0.iter().filter_map(move |(id, docs)| {
            let t = Trace::of(id, docs);
            (t.id_time >= start.floor() && t.id_time <= end).then_some(t)
        })
    }

    fn summaries(&self, window: (f64, f64), filter: Option<&str>) -> Result<Reply, Fault> {
        let filter = match filter.filter(|f| !f.trim().is_empty()) {
            Some(f) => Some(parse_filter(f).map_err(|why| Fault {
                status: 400,
                code: "InvalidRequestException".into(),
                message: format!("Invalid filter expression: {why}"),
            })?),
            None => None,
        };
        let mut summaries: Vec<(f64, Value)> = self
            .in_window(window)
            .filter(|t| filter.as_ref().is_none_or(|f| f.matches(t)))
            .map(|t| (t.start, t.summary()))
            .collect();
        summaries.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = summaries.len();
        Ok(reply(json!({
            "TraceSummaries": summaries.into_iter().map(|(_, s)| s).collect::<Vec<_>>(),
            "ApproximateTime": window.1,
            "TracesProcessedCount": n,
        })))
    }

    fn service_graph(&self, window: (f64, f64)) -> Value {
        // (name, type) → (reference id, counts, durations); (caller, callee) → (counts, durations).
        let mut nodes: BTreeMap<(String, String), (usize, Counts, Vec<f64>)> = BTreeMap::new();
        let mut edges: BTreeMap<(usize, usize), (Counts, Vec<f64>)> = BTreeMap::new();
        for t in self.in_window(window) {
            for call in t.calls() {
                let next = nodes.len();
                let callee = nodes.entry(call.callee.clone()).or_insert_with(|| (next, Counts::default(), Vec::new()));
                callee.1.add(call.status);
                callee.2.push(call.duration);
                let callee_ref = callee.0;
                if let Some(caller) = &call.caller {
                    let next = nodes.len();
                    let caller_ref =
                        nodes.entry(caller.clone()).or_insert_with(|| (next, Counts::default(), Vec::new())).0;
                    let e = edges.entry((caller_ref, callee_ref)).or_default();
                    e.0.add(call.status);
                    e.1.push(call.duration);
                }
            }
        }
        let services: Vec<Value> = nodes
            .iter()
            .map(|((name, kind), (reference, counts, durations))| {
                let node_edges: Vec<Value> = edges
                    .iter()
                    .filter(|((from, _), _)| from == reference)
                    .map(|((_, to), (c, d))| {
                        json!({"ReferenceId": to, "StartTime": window.0, "EndTime": window.1,
                            "SummaryStatistics": c.statistics(d), "ResponseTimeHistogram": histogram(d), "Aliases": []})
                    })
                    .collect();
                json!({"ReferenceId": reference, "Name": name, "Names": [name], "Type": kind, "State": "active",
                    "StartTime": window.0, "EndTime": window.1, "Edges": node_edges,
                    "SummaryStatistics": counts.statistics(durations),
                    "ResponseTimeHistogram": histogram(durations), "DurationHistogram": histogram(durations)})
            })
            .collect();
        json!({"StartTime": window.0, "EndTime": window.1, "Services": services, "ContainsOldGroupVersions": false})
    }
}

fn reply(body: Value) -> Reply {
    Reply { status: 200, content_type: "application/json".into(), body: body.to_string() }
}

/// Durations (seconds, to the millisecond) and how often each was seen.
fn histogram(durations: &[f64]) -> Value {
    let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
    for d in durations {
        *counts.entry((d * 1000.0).round() as i64).or_default() += 1;
    }
    Value::Array(counts.into_iter().map(|(ms, n)| json!({"Value": ms as f64 / 1000.0, "Count": n})).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Error,
    Throttle,
    Fault,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    ok: u64,
    errors: u64,
    throttles: u64,
    faults: u64,
}

impl Counts {
    fn add(&mut self, s: Status) {
        match s {
            Status::Ok => self.ok += 1,
            Status::Error => self.errors += 1,
            Status::Throttle => {
                self.errors += 1;
                self.throttles += 1;
            }
            Status::Fault => self.faults += 1,
        }
    }

    fn statistics(&self, durations: &[f64]) -> Value {
        json!({
            "OkCount": self.ok,
            "ErrorStatistics": {"ThrottleCount": self.throttles, "OtherCount": self.errors - self.throttles, "TotalCount": self.errors},
            "FaultStatistics": {"OtherCount": self.faults, "TotalCount": self.faults},
            "TotalCount": self.ok + self.errors + self.faults,
            "TotalResponseTime": durations.iter().sum::<f64>(),
        })
    }
}

/// A (sub)segment's outcome: its flags, else its HTTP status.
fn status(v: &Value) -> Status {
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let http = v.pointer("/http/response/status").and_then(Value::as_u64);
    if flag("fault") || http.is_some_and(|s| s >= 500) {
        Status::Fault
    } else if flag("throttle") || http == Some(429) {
        Status::Throttle
    } else if flag("error") || http.is_some_and(|s| s >= 400) {
        Status::Error
    } else {
        Status::Ok
    }
}

fn time(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn duration(v: &Value) -> f64 {
    match (time(v, "start_time"), time(v, "end_time")) {
        (Some(s), Some(e)) => (e - s).max(0.0),
        _ => 0.0,
    }
}

/// Every (sub)segment of a document, itself first.
fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    for s in v.get("subsegments").and_then(Value::as_array).into_iter().flatten() {
        walk(s, out);
    }
}

/// One service calling another, as the service graph counts it.
struct Call {
    caller: Option<(String, String)>,
    callee: (String, String),
    status: Status,
    duration: f64,
}

/// A trace's documents, read.
struct Trace<'a> {
    id: &'a str,
    docs: &'a [Value],
    /// The time in the id (`1-<hex seconds>-…`).
    id_time: f64,
    start: f64,
    end: f64,
}

impl<'a> Trace<'a> {
    fn of(id: &'a str, docs: &'a [Value]) -> Trace<'a> {
        let id_time = id.split('-').nth(1).and_then(|h| u64::from_str_radix(h, 16).ok()).unwrap_or(0) as f64;
        let mut all = Vec::new();
        docs.iter().for_each(|d| walk(d, &mut all));
        let start = all.iter().filter_map(|v| time(v, "start_time")).fold(f64::INFINITY, f64::min);
        let end = all.iter().filter_map(|v| time(v, "end_time")).fold(f64::NEG_INFINITY, f64::max);
        let start = if start.is_finite() { start } else { id_time };
        Trace { id, docs, id_time, start, end: end.max(start) }
    }

    /// Segments (not independent subsegments), as (name, origin).
    fn services(&self) -> Vec<(String, String)> {
        self.segments().map(service_of).collect()
    }

    fn segments(&self) -> impl Iterator<Item = &'a Value> {
        self.docs.iter().filter(|d| d.get("type").and_then(Value::as_str) != Some("subsegment"))
    }

    /// The segment no other one is the child of (API Gateway's, for a request).
    fn root(&self) -> Option<&'a Value> {
        let mut ids = Vec::new();
        self.docs.iter().for_each(|d| walk(d, &mut ids));
        let known = |p: &str| ids.iter().any(|v| v.get("id").and_then(Value::as_str) == Some(p));
        self.segments()
            .filter(|d| d.get("parent_id").and_then(Value::as_str).is_none_or(|p| !known(p)))
            .min_by(|a, b| time(a, "start_time").unwrap_or(0.0).total_cmp(&time(b, "start_time").unwrap_or(0.0)))
    }

    fn flags(&self) -> (bool, bool, bool) {
        let mut all = Vec::new();
        self.docs.iter().for_each(|d| walk(d, &mut all));
        let any = |k: &str| all.iter().any(|v| v.get(k).and_then(Value::as_bool).unwrap_or(false));
        (any("fault"), any("error") || any("throttle"), any("throttle"))
    }

    fn summary(&self) -> Value {
        let (fault, error, throttle) = self.flags();
        let root = self.root();
        let http = root.map(|r| {
            let mut h = serde_json::Map::new();
            if let Some(s) = r.pointer("/http/response/status") {
                h.insert("HttpStatus".into(), s.clone());
            }
            if let Some(m) = r.pointer("/http/request/method") {
                h.insert("HttpMethod".into(), m.clone());
            }
            if let Some(u) = r.pointer("/http/request/url") {
                h.insert("HttpURL".into(), u.clone());
            }
            Value::Object(h)
        });
        let partial = self.docs.iter().any(|d| d.get("in_progress").and_then(Value::as_bool) == Some(true));
        json!({
            "Id": self.id,
            "StartTime": self.start,
            "Duration": self.end - self.start,
            "ResponseTime": root.map(duration).unwrap_or(0.0),
            "HasFault": fault,
            "HasError": error,
            "HasThrottle": throttle,
            "IsPartial": partial,
            "Http": http.unwrap_or_else(|| json!({})),
            "ServiceIds": self.services().into_iter().map(|(n, t)| json!({"Name": n, "Names": [n], "Type": t})).collect::<Vec<_>>(),
            "Revision": 1,
        })
    }

    /// Who called whom: each segment under the segment that holds its parent, and each `aws`
    /// subsegment's resource (a DynamoDB table by its name) under the segment making the call.
    fn calls(&self) -> Vec<Call> {
        let mut calls = Vec::new();
        let holder = |id: &str| {
            self.segments().find(|d| {
                let mut all = Vec::new();
                walk(d, &mut all);
                all.iter().any(|v| v.get("id").and_then(Value::as_str) == Some(id))
            })
        };
        for seg in self.segments() {
            let caller = seg.get("parent_id").and_then(Value::as_str).and_then(holder).map(service_of);
            calls.push(Call { caller, callee: service_of(seg), status: status(seg), duration: duration(seg) });
        }
        for doc in self.docs {
            // The segment an (independent) subsegment belongs to.
            let owner = if doc.get("type").and_then(Value::as_str) == Some("subsegment") {
                doc.get("parent_id").and_then(Value::as_str).and_then(holder)
            } else {
                Some(doc)
            };
            let Some(owner) = owner else { continue };
            let mut all = Vec::new();
            walk(doc, &mut all);
            for sub in all {
                if let Some(table) = sub.pointer("/aws/table_name").and_then(Value::as_str) {
                    calls.push(Call {
                        caller: Some(service_of(owner)),
                        callee: (table.to_string(), "AWS::DynamoDB::Table".to_string()),
                        status: status(sub),
                        duration: duration(sub),
                    });
                }
            }
        }
        calls
    }
}

fn service_of(seg: &Value) -> (String, String) {
    let s = |k: &str| seg.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    (s("name"), s("origin"))
}

/// The filter expression subset the model evaluates.
#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Or(Vec<Filter>),
    And(Vec<Filter>),
    Not(Box<Filter>),
    /// `service(id(name: …, type: …))` (type `None`: `service("name")`).
    Service {
        name: String,
        kind: Option<String>,
    },
    Keyword(Keyword),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Keyword {
    Ok,
    Error,
    Throttle,
    Fault,
}

impl Filter {
    fn matches(&self, t: &Trace) -> bool {
        match self {
            Filter::Or(fs) => fs.iter().any(|f| f.matches(t)),
            Filter::And(fs) => fs.iter().all(|f| f.matches(t)),
            Filter::Not(f) => !f.matches(t),
            Filter::Service { name, kind } => {
                t.services().iter().any(|(n, k)| n == name && kind.as_ref().is_none_or(|want| want == k))
            }
            Filter::Keyword(k) => {
                let (fault, error, throttle) = t.flags();
                match k {
                    Keyword::Ok => !fault && !error,
                    Keyword::Error => error,
                    Keyword::Throttle => throttle,
                    Keyword::Fault => fault,
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Punct(char),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => s.extend(chars.next()),
                        Some(c) => s.push(c),
                        None => return Err("a string is not closed".into()),
                    }
                }
                out.push(Token::Str(s));
            }
            '(' | ')' | ':' | ',' | '!' => {
                chars.next();
                out.push(Token::Punct(c));
            }
            '&' | '|' => {
                chars.next();
                if chars.next() != Some(c) {
                    return Err(format!("unexpected `{c}`"));
                }
                out.push(Token::Word(if c == '&' { "AND".into() } else { "OR".into() }));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let mut w = String::new();
                while let Some(&c) = chars.peek().filter(|c| c.is_alphanumeric() || **c == '_' || **c == '.') {
                    w.push(c);
                    chars.next();
                }
                out.push(Token::Word(w));
            }
            c => return Err(format!("unexpected `{c}`")),
        }
    }
    Ok(out)
}

fn parse_filter(text: &str) -> Result<Filter, String> {
    let tokens = tokens(text)?;
    let mut p = Parser { tokens: &tokens, at: 0 };
    let f = p.or()?;
    match p.tokens.get(p.at) {
        None => Ok(f),
        Some(t) => Err(format!("unexpected {t:?} after a complete expression")),
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
}

impl Parser<'_> {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn punct(&mut self, c: char) -> Result<(), String> {
        match self.tokens.get(self.at) {
            Some(Token::Punct(x)) if *x == c => {
                self.at += 1;
                Ok(())
            }
            other => Err(format!("expected `{c}`, found {other:?}")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        match self.tokens.get(self.at) {
            Some(Token::Str(s)) => {
                self.at += 1;
                Ok(s.clone())
            }
            other => Err(format!("expected a string, found {other:?}")),
        }
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut parts = vec![self.and()?];
        while self.peek_word("OR") {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Filter::Or(parts) })
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut parts = vec![self.unary()?];
        while self.peek_word("AND") {
            self.at += 1;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Filter::And(parts) })
    }

    fn unary(&mut self) -> Result<Filter, String> {
        if self.tokens.get(self.at) == Some(&Token::Punct('!')) {
            self.at += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        match self.tokens.get(self.at).cloned() {
            Some(Token::Punct('(')) => {
                self.at += 1;
                let f = self.or()?;
                self.punct(')')?;
                Ok(f)
            }
            Some(Token::Word(w)) => {
                self.at += 1;
                match w.as_str() {
                    "ok" => Ok(Filter::Keyword(Keyword::Ok)),
                    "error" => Ok(Filter::Keyword(Keyword::Error)),
                    "throttle" => Ok(Filter::Keyword(Keyword::Throttle)),
                    "fault" => Ok(Filter::Keyword(Keyword::Fault)),
                    "service" => self.service(),
                    other => Err(format!("`{other}` is not in the subset the strict model evaluates")),
                }
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }

    /// After `service`: `("name")` or `(id(name: "…", type: "…"))`.
    fn service(&mut self) -> Result<Filter, String> {
        self.punct('(')?;
        if let Some(Token::Str(_)) = self.tokens.get(self.at) {
            let name = self.string()?;
            self.punct(')')?;
            return Ok(Filter::Service { name, kind: None });
        }
        if !self.peek_word("id") {
            return Err("service() takes a name or id(name: …, type: …)".into());
        }
        self.at += 1;
        self.punct('(')?;
        let (mut name, mut kind) = (None, None);
        loop {
            let key = match self.tokens.get(self.at) {
                Some(Token::Word(k)) => k.clone(),
                other => return Err(format!("expected name or type in id(), found {other:?}")),
            };
            self.at += 1;
            self.punct(':')?;
            let value = self.string()?;
            match key.as_str() {
                "name" => name = Some(value),
                "type" => kind = Some(value),
                other => return Err(format!("id() has no `{other}` in the strict model's subset")),
            }
            if self.tokens.get(self.at) == Some(&Token::Punct(',')) {
                self.at += 1;
                continue;
            }
            break;
        }
        self.punct(')')?;
        self.punct(')')?;
        Ok(Filter::Service { name: name.ok_or("id() without a name")?, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "1-6750a1b2-000000000000000000000001";
    const FAILED: &str = "1-6750a1b3-000000000000000000000002";
    const OTHER: &str = "1-6750a1b4-000000000000000000000003";

    fn put(docs: Vec<Value>) -> Exchange {
        Exchange {
            service: "xray".into(),
            operation: "PutTraceSegments".into(),
            input: json!({"TraceSegmentDocuments": docs.iter().map(Value::to_string).collect::<Vec<_>>()}),
        }
    }

    fn request(trace: &str, t0: f64, api: &str, function: &str, status: u16) -> Vec<Value> {
        vec![
            json!({"id": format!("a{t0}"), "trace_id": trace, "name": api, "origin": "AWS::ApiGateway::Stage",
                "start_time": t0, "end_time": t0 + 0.2, "fault": status >= 500,
                "http": {"request": {"method": "POST", "url": "https://x/prod/"}, "response": {"status": status}},
                "subsegments": [{"id": format!("s{t0}"), "name": "Lambda", "namespace": "aws", "start_time": t0, "end_time": t0 + 0.19}]}),
            json!({"id": format!("f{t0}"), "trace_id": trace, "parent_id": format!("s{t0}"), "name": function,
                "origin": "AWS::Lambda::Function", "start_time": t0 + 0.01, "end_time": t0 + 0.18, "fault": status >= 500}),
            json!({"type": "subsegment", "id": format!("d{t0}"), "trace_id": trace, "parent_id": format!("f{t0}"),
                "name": "DynamoDB", "namespace": "aws", "start_time": t0 + 0.05, "end_time": t0 + 0.09,
                "aws": {"operation": "PutItem", "table_name": "demo_table"}}),
        ]
    }

    fn model() -> Traces {
        let mut m = Traces::default();
        m.record(&put(request(OK, 1_733_337_522.0, "abc/prod", "apigw_handler", 200)));
        m.record(&put(request(FAILED, 1_733_337_523.0, "abc/prod", "apigw_handler", 502)));
        m.record(&put(request(OTHER, 1_733_337_524.0, "zzz/live", "billing", 200)));
        m
    }

    fn summaries(m: &Traces, filter: Option<&str>) -> Result<Vec<Value>, Fault> {
        let mut input = json!({"StartTime": 1_733_337_500.0, "EndTime": 1_733_337_600.0});
        if let Some(f) = filter {
            input["FilterExpression"] = json!(f);
        }
        let ex = Exchange { service: "xray".into(), operation: "GetTraceSummaries".into(), input };
        let reply = m.answer(&ex).expect("answered")?;
        let v: Value = serde_json::from_str(&reply.body).unwrap();
        Ok(v["TraceSummaries"].as_array().unwrap().clone())
    }

    #[test]
    fn summaries_are_filtered_by_service_and_keywords_with_real_durations() {
        let m = model();
        let ids = |v: Vec<Value>| v.iter().map(|s| s["Id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
        assert_eq!(ids(summaries(&m, None).unwrap()), [OK, FAILED, OTHER]);
        let ours = r#"service(id(name: "apigw_handler", type: "AWS::Lambda::Function")) OR service(id(name: "abc/prod", type: "AWS::ApiGateway::Stage"))"#;
        assert_eq!(ids(summaries(&m, Some(ours)).unwrap()), [OK, FAILED]);
        let failed = format!("({ours}) AND (fault OR error)");
        assert_eq!(ids(summaries(&m, Some(&failed)).unwrap()), [FAILED]);
        assert_eq!(ids(summaries(&m, Some(r#"!fault && service("billing")"#)).unwrap()), [OTHER]);
        let s = &summaries(&m, Some(ours)).unwrap()[1];
        assert!((s["Duration"].as_f64().unwrap() - 0.2).abs() < 1e-6, "{s}");
        assert_eq!((s["HasFault"].as_bool(), s["Http"]["HttpStatus"].as_u64()), (Some(true), Some(502)));
        let wrong_type = r#"service(id(name: "apigw_handler", type: "AWS::Lambda"))"#;
        assert!(summaries(&m, Some(wrong_type)).unwrap().is_empty());
    }

    #[test]
    fn a_filter_outside_the_subset_is_refused_as_aws_refuses_a_bad_one() {
        for bad in [r#"responsetime > 5"#, r#"service(id(name: "x""#, "fault OR", r#"annotation.account = "1""#] {
            let f = summaries(&model(), Some(bad)).unwrap_err();
            assert_eq!((f.status, f.code.as_str()), (400, "InvalidRequestException"), "{bad}");
        }
    }

    #[test]
    fn the_service_graph_counts_nodes_and_edges_with_histograms() {
        let ex = Exchange {
            service: "xray".into(),
            operation: "GetServiceGraph".into(),
            input: json!({"StartTime": 1_733_337_500.0, "EndTime": 1_733_337_600.0}),
        };
        let v: Value = serde_json::from_str(&model().answer(&ex).unwrap().unwrap().body).unwrap();
        let services = v["Services"].as_array().unwrap();
        let node = |name: &str| services.iter().find(|s| s["Name"] == name).cloned().unwrap_or(Value::Null);
        let api = node("abc/prod");
        assert_eq!(api["Type"], "AWS::ApiGateway::Stage");
        assert_eq!(api["SummaryStatistics"]["TotalCount"], 2);
        assert_eq!(api["SummaryStatistics"]["FaultStatistics"]["TotalCount"], 1);
        let function = node("apigw_handler");
        let edge = &api["Edges"][0];
        assert_eq!(edge["ReferenceId"], function["ReferenceId"]);
        assert_eq!(edge["SummaryStatistics"]["TotalCount"], 2);
        assert_eq!(edge["ResponseTimeHistogram"], json!([{"Value": 0.17, "Count": 2}]));
        let table = node("demo_table");
        assert_eq!(table["Type"], "AWS::DynamoDB::Table");
        assert_eq!(function["Edges"][0]["ReferenceId"], table["ReferenceId"]);
        assert_eq!(function["Edges"][0]["SummaryStatistics"]["TotalCount"], 2);
        assert_eq!(node("billing")["Edges"][0]["SummaryStatistics"]["TotalCount"], 1, "the other app's table edge");
    }
}
