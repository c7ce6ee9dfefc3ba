//! X-Ray reads for `traces` (no resource of the stack: X-Ray keeps what the API Gateway stage and
//! the function send it, with tracing on). Each call returns typed data; the segment documents
//! stay JSON text for `traces`' parser, which also reads what `serve` records.
//!
//! - GetTraceSummaries over a window, split into windows of at most [`MAX_WINDOW`] and paginated
//!   with NextToken;
//! - BatchGetTraces, at most [`BATCH_GET_TRACES_IDS`] ids per call (paginated too);
//! - GetServiceGraph over a window of at most [`MAX_WINDOW`], paginated.
//!
//! The three actions support no resource-level permission (Service Authorization Reference, X-Ray:
//! no resource type for them), hence `*` in `iam-policy`.

use std::time::Duration;

use aws_smithy_types::DateTime;

use super::Ctx;
use crate::aws::AwsResultExt;
use crate::error::Result;

/// The longest window one GetTraceSummaries or GetServiceGraph call is given: the X-Ray console
/// queries at most 6 hours at once and splits longer ranges into chunks ("Using filter
/// expressions"); the API reference gives no larger bound, so `traces` stays within it.
pub const MAX_WINDOW: Duration = Duration::from_secs(6 * 3600);

/// X-Ray keeps traces 30 days: no window reaches further back.
pub const RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// BatchGetTraces takes at most 5 trace ids per call (X-Ray API reference, BatchGetTraces); the
/// service model states no bound, so the SDK checks nothing.
pub const BATCH_GET_TRACES_IDS: usize = 5;

/// One trace summary as `traces` chooses among them.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub id: String,
    /// Seconds since the epoch; the trace id's own time when X-Ray does not say.
    pub start: f64,
    /// Seconds.
    pub duration: f64,
    pub has_fault: bool,
    pub has_error: bool,
    pub has_throttle: bool,
    pub http_status: Option<u16>,
}

/// One trace as BatchGetTraces returns it: the segment documents, JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTrace {
    pub id: String,
    /// Seconds, as X-Ray reports it.
    pub duration: Option<f64>,
    /// (segment id, document).
    pub segments: Vec<(String, String)>,
}

/// The traces found, and the ids X-Ray did not return.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traces {
    pub traces: Vec<RawTrace>,
    pub unprocessed: Vec<String>,
}

/// A node of the service graph.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphService {
    pub reference_id: i32,
    pub name: String,
    /// `AWS::ApiGateway::Stage`, `AWS::Lambda::Function`, `AWS::DynamoDB::Table`, `client`, ...
    pub kind: String,
    pub stats: Stats,
    pub edges: Vec<GraphEdge>,
}

/// An edge from the service that lists it to `reference_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphEdge {
    pub reference_id: i32,
    pub stats: Stats,
    /// (seconds, count), as X-Ray reports it.
    pub response_times: Vec<(f64, u64)>,
}

/// Request counts of a node or an edge.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    pub total: u64,
    pub ok: u64,
    /// 4XX (throttles included).
    pub errors: u64,
    pub throttles: u64,
    /// 5XX.
    pub faults: u64,
}

/// The windows of at most [`MAX_WINDOW`] that cover `[start, end)`, newest first (seconds).
pub fn windows(start: f64, end: f64) -> Vec<(f64, f64)> {
    let step = MAX_WINDOW.as_secs_f64();
    let mut out = Vec::new();
    let mut to = end;
    while to > start {
        let from = (to - step).max(start);
        out.push((from, to));
        to = from;
    }
    out
}

/// A trace id as X-Ray writes it: `1-`, 8 hex digits (the request's epoch seconds), `-`, 24 hex
/// digits (X-Ray developer guide, "Trace ID format").
pub fn is_trace_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 3 && parts[0] == "1" && hex(parts[1], 8) && hex(parts[2], 24)
}

/// The seconds a trace id carries (`1-5759e988-…`: the request's epoch time, hex).
pub fn trace_id_time(id: &str) -> Option<f64> {
    let hex = id.split('-').nth(1)?;
    u64::from_str_radix(hex, 16).ok().map(|s| s as f64)
}

/// GetTraceSummaries over `[start, end)` (seconds), newest window first, every page.
pub async fn trace_summaries(ctx: &Ctx, start: f64, end: f64, filter: Option<&str>) -> Result<Vec<TraceSummary>> {
    let mut out = Vec::new();
    for (from, to) in windows(start, end) {
        let mut pages = ctx
            .aws
            .xray
            .get_trace_summaries()
            .start_time(DateTime::from_secs_f64(from))
            .end_time(DateTime::from_secs_f64(to))
            .set_filter_expression(filter.map(str::to_string))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.aws("X-Ray", "GetTraceSummaries")?;
            out.extend(page.trace_summaries().iter().filter_map(|s| {
                let id = s.id()?.to_string();
                let start = s.start_time().map(DateTime::as_secs_f64).or_else(|| trace_id_time(&id))?;
                Some(TraceSummary {
                    start,
                    duration: s.duration().unwrap_or_default(),
                    has_fault: s.has_fault().unwrap_or(false),
                    has_error: s.has_error().unwrap_or(false),
                    has_throttle: s.has_throttle().unwrap_or(false),
                    http_status: s.http().and_then(|h| h.http_status()).and_then(|c| u16::try_from(c).ok()),
                    id,
                })
            }));
        }
    }
    Ok(out)
}

/// BatchGetTraces for `ids`, [`BATCH_GET_TRACES_IDS`] per call.
pub async fn batch_get_traces(ctx: &Ctx, ids: &[String]) -> Result<Traces> {
    let mut out = Traces::default();
    for chunk in ids.chunks(BATCH_GET_TRACES_IDS) {
        let mut pages = ctx.aws.xray.batch_get_traces().set_trace_ids(Some(chunk.to_vec())).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.aws("X-Ray", "BatchGetTraces")?;
            out.unprocessed.extend(page.unprocessed_trace_ids().iter().cloned());
            out.traces.extend(page.traces().iter().filter_map(|t| {
                Some(RawTrace {
                    id: t.id()?.to_string(),
                    duration: t.duration(),
                    segments: t
                        .segments()
                        .iter()
                        .filter_map(|s| Some((s.id().unwrap_or_default().to_string(), s.document()?.to_string())))
                        .collect(),
                })
            }));
        }
    }
    Ok(out)
}

/// GetServiceGraph over `[start, end)` (seconds), every page.
pub async fn service_graph(ctx: &Ctx, start: f64, end: f64) -> Result<Vec<GraphService>> {
    let mut pages = ctx
        .aws
        .xray
        .get_service_graph()
        .start_time(DateTime::from_secs_f64(start))
        .end_time(DateTime::from_secs_f64(end))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.aws("X-Ray", "GetServiceGraph")?;
        for s in page.services() {
            let Some(reference_id) = s.reference_id() else { continue };
            out.push(GraphService {
                reference_id,
                name: s.name().unwrap_or_default().to_string(),
                kind: s.r#type().unwrap_or_default().to_string(),
                stats: s.summary_statistics().map(service_stats).unwrap_or_default(),
                edges: s
                    .edges()
                    .iter()
                    .filter_map(|e| {
                        Some(GraphEdge {
                            reference_id: e.reference_id()?,
                            stats: e.summary_statistics().map(edge_stats).unwrap_or_default(),
                            response_times: e
                                .response_time_histogram()
                                .iter()
                                .filter_map(|h| Some((h.value(), u64::try_from(h.count()).ok()?)))
                                .collect(),
                        })
                    })
                    .collect(),
            });
        }
    }
    Ok(out)
}

fn count(n: Option<i64>) -> u64 {
    n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

/// A node's or an edge's counters: `ServiceStatistics` and `EdgeStatistics` are two SDK types
/// with the same accessors.
macro_rules! stats_of {
    ($s:expr) => {
        Stats {
            total: count($s.total_count()),
            ok: count($s.ok_count()),
            errors: count($s.error_statistics().and_then(|e| e.total_count())),
            throttles: count($s.error_statistics().and_then(|e| e.throttle_count())),
            faults: count($s.fault_statistics().and_then(|f| f.total_count())),
        }
    };
}

fn service_stats(s: &aws_sdk_xray::types::ServiceStatistics) -> Stats {
    stats_of!(s)
}

fn edge_stats(s: &aws_sdk_xray::types::EdgeStatistics) -> Stats {
    stats_of!(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_window_is_split_newest_first_into_windows_of_at_most_six_hours() {
        let h = 3600.0;
        assert_eq!(windows(0.0, 15.0 * 60.0), vec![(0.0, 900.0)]);
        assert_eq!(windows(0.0, 13.0 * h), vec![(7.0 * h, 13.0 * h), (h, 7.0 * h), (0.0, h)]);
        assert_eq!(windows(10.0, 10.0), Vec::<(f64, f64)>::new());
    }

    #[test]
    fn trace_ids_are_checked() {
        assert!(is_trace_id("1-6750a1b2-0123456789abcdef01234567"));
        for bad in [
            "",
            "1-6750a1b2",
            "2-6750a1b2-0123456789abcdef01234567",
            "1-6750a1b2-0123456789abcdef0123456z",
            "1-6750a1b-0123456789abcdef012345678",
        ] {
            assert!(!is_trace_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_trace_id_carries_its_time() {
        assert_eq!(trace_id_time("1-5759e988-bd862e3fe1be46a994272793"), Some(1_465_510_280.0));
        assert_eq!(trace_id_time("nonsense"), None);
    }
}
