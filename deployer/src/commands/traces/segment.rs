//! X-Ray segment documents (JSON text, as BatchGetTraces and `serve` return them) read into a
//! typed tree: one [`Span`] per segment and subsegment, nested as X-Ray nests them.
//!
//! A segment document (X-Ray developer guide, "Segment documents") has `id`, `name`,
//! `start_time` / `end_time` (epoch seconds, fractional) or `in_progress`, the `error` /
//! `throttle` / `fault` flags, `http.response.status`, `origin` (`AWS::ApiGateway::Stage`,
//! `AWS::Lambda`, `AWS::Lambda::Function`), and its `subsegments`, nested. Segments link to their
//! parent across documents by `parent_id` (the Lambda service segment under API Gateway's, the
//! function's under Lambda's); a subsegment sent on its own (`"type": "subsegment"`, as a
//! function's SDK sends one to the daemon) links the same way.

use serde_json::Value;

/// A span's outcome, least to most severe (X-Ray's flags: a throttle is also an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Error,
    Throttle,
    Fault,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Throttle => "throttle",
            Status::Fault => "fault",
        }
    }

    /// `--errors`: faults and errors (throttles are 4XX errors too).
    pub fn is_failure(self) -> bool {
        self != Status::Ok
    }
}

/// One segment or subsegment.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub id: String,
    pub name: String,
    /// The segment's `origin` (`AWS::Lambda::Function`, ...); `None` for subsegments.
    pub origin: Option<String>,
    /// `aws.operation` of an AWS call's subsegment (`PutItem`).
    pub operation: Option<String>,
    /// Epoch seconds.
    pub start: f64,
    /// Epoch seconds; the start for a span still in progress.
    pub end: f64,
    pub in_progress: bool,
    pub status: Status,
    pub http_status: Option<u16>,
    /// `http.request.method` and `.url`, when recorded.
    pub method: Option<String>,
    pub url: Option<String>,
    /// Nested subsegments, and the segments whose parent this is; by start time.
    pub children: Vec<Span>,
}

impl Span {
    pub fn duration(&self) -> f64 {
        (self.end - self.start).max(0.0)
    }

    fn find_mut(&mut self, id: &str) -> Option<&mut Span> {
        if self.id == id {
            return Some(self);
        }
        self.children.iter_mut().find_map(|c| c.find_mut(id))
    }

    fn contains(&self, id: &str) -> bool {
        self.id == id || self.children.iter().any(|c| c.contains(id))
    }

    /// This span and every span under it, depth first, with its depth.
    pub fn walk<'a>(&'a self, depth: usize, out: &mut Vec<(usize, &'a Span)>) {
        out.push((depth, self));
        for c in &self.children {
            c.walk(depth + 1, out);
        }
    }

    fn sort(&mut self) {
        self.children.sort_by(|a, b| a.start.total_cmp(&b.start));
        self.children.iter_mut().for_each(Span::sort);
    }
}

/// One trace: its spans as a forest (normally one root, API Gateway's segment).
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub id: String,
    /// Epoch seconds: the first span's start, the last one's end.
    pub start: f64,
    pub end: f64,
    pub roots: Vec<Span>,
}

impl Trace {
    /// Seconds.
    pub fn duration(&self) -> f64 {
        (self.end - self.start).max(0.0)
    }

    /// Every span, depth first, with its depth.
    pub fn rows(&self) -> Vec<(usize, &Span)> {
        let mut out = Vec::new();
        for r in &self.roots {
            r.walk(0, &mut out);
        }
        out
    }

    /// The most severe status of any span.
    pub fn status(&self) -> Status {
        self.rows().iter().map(|(_, s)| s.status).max().unwrap_or(Status::Ok)
    }

    /// The status the caller got: the outermost span's that recorded one.
    pub fn http_status(&self) -> Option<u16> {
        self.rows().iter().find_map(|(_, s)| s.http_status)
    }

    /// The request (`POST https://…/prod/`), from the outermost span that recorded it.
    pub fn request(&self) -> Option<String> {
        self.rows().iter().find_map(|(_, s)| match (&s.method, &s.url) {
            (Some(m), Some(u)) => Some(format!("{m} {u}")),
            (Some(m), None) => Some(m.clone()),
            _ => None,
        })
    }
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("trace {trace}: segment document {index} is not JSON: {reason}")]
    NotJson { trace: String, index: usize, reason: String },
    #[error("trace {trace}: segment document {index} has no {field}")]
    Missing { trace: String, index: usize, field: &'static str },
}

/// A trace from its segment documents (in any order).
pub fn parse_trace(id: &str, documents: &[&str]) -> Result<Trace, ParseError> {
    let mut trees: Vec<(Option<String>, Span)> = Vec::new();
    for (index, doc) in documents.iter().enumerate() {
        let v: Value = serde_json::from_str(doc).map_err(|e| ParseError::NotJson {
            trace: id.to_string(),
            index,
            reason: e.to_string(),
        })?;
        let span = span(&v, true).map_err(|field| ParseError::Missing { trace: id.to_string(), index, field })?;
        let parent = v.get("parent_id").and_then(Value::as_str).map(str::to_string);
        trees.push((parent, span));
    }
    // Each document goes under its parent, wherever that is (another document, or a subsegment
    // nested in one), until none moves; a parent never found leaves it a root.
    loop {
        let moved = (0..trees.len()).find_map(|i| {
            let parent = trees[i].0.as_deref()?;
            let j = (0..trees.len()).find(|&j| j != i && trees[j].1.contains(parent))?;
            Some((i, j))
        });
        let Some((i, j)) = moved else { break };
        let (parent, child) = trees.remove(i);
        let j = if j > i { j - 1 } else { j };
        let parent = parent.expect("only a document with a parent id moves");
        trees[j].1.find_mut(&parent).expect("the parent was found there").children.push(child);
    }
    let mut roots: Vec<Span> = trees.into_iter().map(|(_, s)| s).collect();
    roots.iter_mut().for_each(Span::sort);
    roots.sort_by(|a, b| a.start.total_cmp(&b.start));
    let mut all = Vec::new();
    for r in &roots {
        r.walk(0, &mut all);
    }
    let start = all.iter().map(|(_, s)| s.start).fold(f64::INFINITY, f64::min);
    let end = all.iter().map(|(_, s)| s.end).fold(f64::NEG_INFINITY, f64::max);
    let (start, end) = if all.is_empty() { (0.0, 0.0) } else { (start, end.max(start)) };
    // A span still in progress is drawn to the end of what is known.
    fn stretch(s: &mut Span, end: f64) {
        if s.in_progress {
            s.end = s.end.max(end);
        }
        s.children.iter_mut().for_each(|c| stretch(c, end));
    }
    roots.iter_mut().for_each(|r| stretch(r, end));
    Ok(Trace { id: id.to_string(), start, end, roots })
}

/// One (sub)segment and its nested subsegments; `Err(field)` when a required field is missing.
fn span(v: &Value, top: bool) -> Result<Span, &'static str> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let id = text("id").ok_or("id")?;
    let name = text("name").ok_or("name")?;
    let start = v.get("start_time").and_then(Value::as_f64).ok_or("start_time")?;
    let in_progress = flag("in_progress") || v.get("end_time").is_none();
    let end = v.get("end_time").and_then(Value::as_f64).unwrap_or(start).max(start);
    let http_status = v.pointer("/http/response/status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok());
    let status = if flag("fault") {
        Status::Fault
    } else if flag("throttle") {
        Status::Throttle
    } else if flag("error") {
        Status::Error
    } else {
        match http_status {
            Some(s) if s >= 500 => Status::Fault,
            Some(429) => Status::Throttle,
            Some(s) if s >= 400 => Status::Error,
            _ => Status::Ok,
        }
    };
    let children = match v.get("subsegments").and_then(Value::as_array) {
        Some(subs) => subs.iter().map(|s| span(s, false)).collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    Ok(Span {
        id,
        name,
        origin: if top { text("origin") } else { None },
        operation: v.pointer("/aws/operation").and_then(Value::as_str).map(str::to_string),
        start,
        end,
        in_progress,
        status,
        http_status,
        method: v.pointer("/http/request/method").and_then(Value::as_str).map(str::to_string),
        url: v.pointer("/http/request/url").and_then(Value::as_str).map(str::to_string),
        children,
    })
}

/// What a row is called: the kind of segment and its name, or the subsegment's name and the AWS
/// operation it made.
pub fn label(s: &Span) -> String {
    let kind = match s.origin.as_deref() {
        Some("AWS::ApiGateway::Stage") => Some("API Gateway"),
        Some("AWS::Lambda") => Some("Lambda"),
        Some("AWS::Lambda::Function") => Some("function"),
        Some("AWS::DynamoDB::Table") => Some("DynamoDB"),
        _ => None,
    };
    match (kind, &s.operation) {
        (Some(k), _) => format!("{k} {}", s.name),
        (None, Some(op)) if op != &s.name => format!("{} {op}", s.name),
        _ => s.name.clone(),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub const TRACE: &str = "1-6750a1b2-0123456789abcdef01234567";

    /// A POST through API Gateway → Lambda → the function (Initialization, then the handler's
    /// DynamoDB PutItem, sent to the daemon as its own subsegment document), as AWS records it.
    pub fn ok_post() -> Vec<String> {
        let t0 = 1_733_337_522.0;
        vec![
            // The function's segment and the handler's independent subsegment first: the order
            // of BatchGetTraces' segments is not the order of the tree.
            serde_json::json!({"id": "f1", "name": "apigw_handler", "trace_id": TRACE, "parent_id": "l1",
                "origin": "AWS::Lambda::Function", "start_time": t0 + 0.010, "end_time": t0 + 0.118,
                "subsegments": [
                    {"id": "i1", "name": "Initialization", "start_time": t0 + 0.004, "end_time": t0 + 0.060},
                    {"id": "v1", "name": "Invocation", "start_time": t0 + 0.061, "end_time": t0 + 0.117}
                ]})
            .to_string(),
            serde_json::json!({"type": "subsegment", "id": "d1", "name": "DynamoDB", "trace_id": TRACE,
                "parent_id": "v1", "namespace": "aws", "start_time": t0 + 0.070, "end_time": t0 + 0.110,
                "aws": {"operation": "PutItem", "table_name": "demo_table"},
                "http": {"response": {"status": 200}}})
            .to_string(),
            serde_json::json!({"id": "a1", "name": "abc123/prod", "trace_id": TRACE, "origin": "AWS::ApiGateway::Stage",
                "start_time": t0, "end_time": t0 + 0.125,
                "http": {"request": {"method": "POST", "url": "https://abc123.execute-api.us-east-1.amazonaws.com/prod/"},
                         "response": {"status": 200}},
                "subsegments": [{"id": "s1", "name": "Lambda", "namespace": "aws", "start_time": t0 + 0.002,
                    "end_time": t0 + 0.121, "aws": {"operation": "Invoke"}, "http": {"response": {"status": 200}}}]})
            .to_string(),
            serde_json::json!({"id": "l1", "name": "apigw_handler", "trace_id": TRACE, "parent_id": "s1",
                "origin": "AWS::Lambda", "start_time": t0 + 0.003, "end_time": t0 + 0.120,
                "http": {"response": {"status": 200}}})
            .to_string(),
        ]
    }

    pub fn parsed(id: &str, docs: &[String]) -> Trace {
        let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
        parse_trace(id, &refs).unwrap()
    }

    #[test]
    fn documents_nest_by_parent_id_across_documents_and_subsegments() {
        let t = parsed(TRACE, &ok_post());
        let rows: Vec<(usize, String)> = t.rows().iter().map(|(d, s)| (*d, label(s))).collect();
        assert_eq!(
            rows,
            vec![
                (0, "API Gateway abc123/prod".to_string()),
                (1, "Lambda Invoke".to_string()),
                (2, "Lambda apigw_handler".to_string()),
                (3, "function apigw_handler".to_string()),
                (4, "Initialization".to_string()),
                (4, "Invocation".to_string()),
                (5, "DynamoDB PutItem".to_string()),
            ]
        );
        assert!((t.duration() - 0.125).abs() < 1e-6, "{}", t.duration());
        assert_eq!((t.status(), t.http_status()), (Status::Ok, Some(200)));
        assert_eq!(t.request().as_deref(), Some("POST https://abc123.execute-api.us-east-1.amazonaws.com/prod/"));
        let put = t.rows().into_iter().find(|(_, s)| s.id == "d1").unwrap().1;
        assert!((put.duration() - 0.040).abs() < 1e-6, "{}", put.duration());
        assert_eq!(put.operation.as_deref(), Some("PutItem"));
    }

    #[test]
    fn flags_and_http_status_give_the_status_and_the_worst_one_is_the_traces() {
        let t0 = 1_733_337_522.0;
        let docs = [
            serde_json::json!({"id": "a", "name": "x/prod", "start_time": t0, "end_time": t0 + 1.0,
                "fault": true, "http": {"response": {"status": 502}},
                "subsegments": [{"id": "b", "name": "q", "start_time": t0, "end_time": t0 + 0.5,
                    "http": {"response": {"status": 429}}}]})
            .to_string(),
            serde_json::json!({"id": "c", "name": "fn", "parent_id": "zzz", "start_time": t0 + 0.1, "in_progress": true})
                .to_string(),
        ];
        let t = parsed("1-6750a1b2-000000000000000000000000", &docs);
        assert_eq!(t.roots.len(), 2, "an unknown parent leaves the document a root");
        assert_eq!((t.status(), t.http_status()), (Status::Fault, Some(502)));
        assert_eq!(t.roots[0].children[0].status, Status::Throttle);
        let open = &t.roots[1];
        assert!(open.in_progress && (open.end - (t0 + 1.0)).abs() < 1e-6, "drawn to the trace's end");
    }

    #[test]
    fn a_broken_document_names_the_trace_and_what_is_wrong() {
        let e = parse_trace("1-x-y", &["{not json"]).unwrap_err();
        assert!(e.to_string().starts_with("trace 1-x-y: segment document 0 is not JSON"), "{e}");
        let e = parse_trace("1-x-y", &[r#"{"id":"a","name":"n"}"#]).unwrap_err();
        assert_eq!(e.to_string(), "trace 1-x-y: segment document 0 has no start_time");
    }
}
