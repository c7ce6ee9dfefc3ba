//! `movies-stack traces`: the stack's recent X-Ray traces, each drawn as a waterfall, or the
//! service map (`--map`).
//!
//! From AWS: GetTraceSummaries over `--since` (in windows of at most six hours, every page),
//! filtered to the stack's stage (`API_ID/STAGE`, `AWS::ApiGateway::Stage`) or its function
//! (`AWS::Lambda::Function`), `--errors` added to the filter; the traces are chosen from the
//! summaries (newest first, `--slowest N`, `--limit`) and only those are read with BatchGetTraces
//! (5 ids per call). `--id` reads one trace. `--local` reads what the `serve` of this stack
//! running here recorded (BatchGetTraces' shape, the same parser), filtered the same way on this
//! side. `--follow` polls and never prints a trace twice.
//!
//! `--output json`: one document (`stack`, `source`, `traces` with their segment trees, ids,
//! times, durations and statuses; or the map's `nodes` and `edges`); with `--follow`, one trace
//! per line.

pub mod map;
pub mod segment;
pub mod waterfall;

use std::collections::HashSet;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::{Output, TracesArgs};
use crate::config::Config;
use crate::ctx::Timeouts;
use crate::error::{Error, Result, exit};
use crate::events::Event;
use crate::local::{self, LocalTraces};
use crate::resources::xray::{self, MAX_WINDOW, RETENTION, TraceSummary};
use crate::resources::{Ctx, rest_api};
use crate::session::{CtrlC, Session};
use crate::ui::Printer;
use segment::{Span, Status, Trace};

/// How far back each `--follow` read starts before the previous one: X-Ray makes a trace
/// searchable some seconds after its segments arrive. Traces are remembered by id, so none is
/// printed twice.
const LATE_TRACES: Duration = Duration::from_secs(60);

/// The width the waterfall is drawn at when stdout is not a terminal.
const DEFAULT_WIDTH: usize = 100;

/// Which traces to show, from the flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub errors: bool,
    pub slowest: Option<usize>,
    pub limit: usize,
    /// Epoch seconds: traces that started before are left out.
    pub since: f64,
}

/// A trace as the selection sees it (from a summary, or from a parsed local trace).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub start: f64,
    pub duration: f64,
    pub status: Status,
}

impl Candidate {
    fn of_summary(s: &TraceSummary) -> Candidate {
        let status = if s.has_fault {
            Status::Fault
        } else if s.has_throttle {
            Status::Throttle
        } else if s.has_error {
            Status::Error
        } else {
            match s.http_status {
                Some(c) if c >= 500 => Status::Fault,
                Some(429) => Status::Throttle,
                Some(c) if c >= 400 => Status::Error,
                _ => Status::Ok,
            }
        };
        Candidate { id: s.id.clone(), start: s.start, duration: s.duration, status }
    }

    fn of_trace(t: &Trace) -> Candidate {
        Candidate { id: t.id.clone(), start: t.start, duration: t.duration(), status: t.status() }
    }
}

/// The traces to show, in the order shown: newest first, or slowest first with `--slowest`.
pub fn choose(candidates: Vec<Candidate>, sel: &Selection) -> Vec<Candidate> {
    let mut seen = HashSet::new();
    let mut chosen: Vec<Candidate> = candidates
        .into_iter()
        .filter(|c| c.start >= sel.since && (!sel.errors || c.status.is_failure()))
        .filter(|c| seen.insert(c.id.clone()))
        .collect();
    match sel.slowest {
        Some(n) => {
            chosen.sort_by(|a, b| b.duration.total_cmp(&a.duration).then(b.start.total_cmp(&a.start)));
            chosen.truncate(n);
        }
        None => {
            chosen.sort_by(|a, b| b.start.total_cmp(&a.start));
            chosen.truncate(sel.limit);
        }
    }
    chosen
}

/// The filter expression that keeps this stack's traces: through its stage, or its function
/// (a request refused before the function, a 403 without a key, only passes the stage). X-Ray
/// developer guide, "Use filter expressions": `service(id(name: …, type: …))`, `OR`, `AND`, and
/// the boolean keywords `fault` (5XX) and `error` (4XX).
pub fn filter_expression(function: &str, stage: Option<(&str, &str)>, errors: bool) -> String {
    let mut services = vec![format!("service(id(name: \"{function}\", type: \"AWS::Lambda::Function\"))")];
    if let Some((api, stage)) = stage {
        services.push(format!("service(id(name: \"{api}/{stage}\", type: \"AWS::ApiGateway::Stage\"))"));
    }
    let services = services.join(" OR ");
    if errors { format!("({services}) AND (fault OR error)") } else { services }
}

fn now() -> f64 {
    crate::clock::now_ms() as f64 / 1000.0
}

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &TracesArgs,
    output: Output,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    if args.since > RETENTION {
        return Err(Error::input(format!(
            "--since {}: X-Ray keeps traces 30 days: ask for 30d at most",
            crate::clock::format_duration(args.since)
        )));
    }
    if args.map && args.since > MAX_WINDOW {
        return Err(Error::input(format!(
            "--since {}: the service map is read over 6h at most (--map --since 6h)",
            crate::clock::format_duration(args.since)
        )));
    }
    let width = terminal_width();
    if args.local {
        return local_traces(config, args, output, printer, width).await;
    }
    let session = Session::open(settings, config, printer.clone(), CtrlC::Exits, Timeouts::default()).await?;
    let ctx = session.ctx.clone();
    if args.map {
        session.who_am_i().await?;
        let end = now();
        let start = end - args.since.as_secs_f64();
        let services = xray::service_graph(&ctx, start, end).await?;
        let m = map::ServiceMap::of(&services);
        match output {
            Output::Json => printer.out(
                &json!({"stack": config.stack, "start": start, "end": end, "nodes": m.nodes, "edges": m.edges})
                    .to_string(),
            ),
            Output::Human => {
                let mut lines = vec![format!(
                    "Service map of stack {}, last {} (X-Ray GetServiceGraph):",
                    config.stack,
                    crate::clock::format_duration(args.since)
                )];
                lines.extend(m.lines());
                printer.out(&lines.join("\n"));
            }
        }
        return Ok(exit::OK);
    }
    if let Some(id) = &args.id {
        session.who_am_i().await?;
        let found = xray::batch_get_traces(&ctx, std::slice::from_ref(id)).await?;
        let Some(raw) = found.traces.into_iter().find(|t| &t.id == id) else {
            return Err(Error::other(format!(
                "trace {id} was not found in X-Ray (region {}): a trace is searchable some seconds after its request, and kept 30 days",
                ctx.aws.region
            )));
        };
        let trace = parse_raw(&raw)?;
        print_traces(&printer, output, config, "xray", &[trace], width, false);
        return Ok(exit::OK);
    }

    // The stack's names: the function from the config, the stage's API from the live stack.
    let live = session.observe_live(config, &[rest_api::ID.name()]).await?;
    let api = match (live.state.get(rest_api::ID), live.failure(rest_api::ID.name())) {
        (Ok(api), _) => Some(api.id.clone()),
        (Err(_), Some(e)) => {
            return Err(Error::other(format!("cannot read the REST API of stack {}: {e}", config.stack)));
        }
        (Err(_), None) => {
            ctx.info(format!(
                "stack {} has no REST API: showing the traces of function {} alone",
                config.stack, config.function.name
            ));
            None
        }
    };
    let filter =
        filter_expression(&config.function.name, api.as_deref().map(|a| (a, config.api.stage.as_str())), args.errors);
    let first = now() - args.since.as_secs_f64();
    let mut sel = Selection {
        errors: args.errors,
        slowest: args.slowest.map(|n| n as usize),
        limit: args.limit as usize,
        since: first,
    };
    let mut start = first;
    let mut printed = HashSet::new();
    loop {
        let polled_at = now();
        let summaries = xray::trace_summaries(&ctx, start, polled_at, Some(&filter)).await?;
        let chosen: Vec<Candidate> = choose(summaries.iter().map(Candidate::of_summary).collect(), &sel)
            .into_iter()
            .filter(|c| !printed.contains(&c.id))
            .collect();
        let traces = read_traces(&ctx, &chosen).await?;
        let mut traces = traces;
        if args.follow {
            // A stream reads in time order.
            traces.reverse();
        }
        print_traces(&printer, output, config, "xray", &traces, width, args.follow);
        printed.extend(traces.iter().map(|t| t.id.clone()));
        if !args.follow {
            if traces.is_empty() && output == Output::Human {
                ctx.info(nothing_found(config, args));
            }
            break;
        }
        // Every new trace from now on, not only the newest `--limit`.
        sel.limit = usize::MAX;
        start = start.max(polled_at - LATE_TRACES.as_secs_f64());
        tokio::time::sleep(Duration::from_secs(args.poll_interval)).await;
    }
    Ok(exit::OK)
}

/// BatchGetTraces for the chosen ones, parsed, in the chosen order.
async fn read_traces(ctx: &Ctx, chosen: &[Candidate]) -> Result<Vec<Trace>> {
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = chosen.iter().map(|c| c.id.clone()).collect();
    let found = xray::batch_get_traces(ctx, &ids).await?;
    let mut traces = Vec::new();
    for id in &ids {
        if let Some(raw) = found.traces.iter().find(|t| &t.id == id) {
            traces.push(parse_raw(raw)?);
        }
    }
    Ok(traces)
}

fn parse_raw(raw: &xray::RawTrace) -> Result<Trace> {
    let docs: Vec<&str> = raw.segments.iter().map(|(_, d)| d.as_str()).collect();
    segment::parse_trace(&raw.id, &docs).map_err(|e| Error::other(format!("X-Ray BatchGetTraces: {e}")))
}

/// `--local`: the traces the `serve` of this stack running here recorded, chosen as from X-Ray.
async fn local_traces(
    config: &Config,
    args: &TracesArgs,
    output: Output,
    printer: Arc<dyn Printer>,
    width: usize,
) -> Result<i32> {
    let found = local::find(&config.stack)?;
    let mut sel = Selection {
        errors: args.errors,
        slowest: args.slowest.map(|n| n as usize),
        limit: args.limit as usize,
        since: now() - args.since.as_secs_f64(),
    };
    let mut printed = HashSet::new();
    loop {
        let answer: LocalTraces = local::get(&found, &format!("/traces?limit={}", local::KEPT_TRACES)).await?;
        let traces = local_selection(&answer, &sel, args.id.as_deref())?
            .into_iter()
            .filter(|t| !printed.contains(&t.id))
            .collect::<Vec<_>>();
        let mut traces = traces;
        if args.follow {
            traces.reverse();
        }
        print_traces(&printer, output, config, "local", &traces, width, args.follow);
        printed.extend(traces.iter().map(|t| t.id.clone()));
        if !args.follow {
            if let Some(id) = &args.id
                && traces.is_empty()
            {
                return Err(Error::other(format!(
                    "trace {id} is not among the last {} traces `serve` keeps ({})",
                    local::KEPT_TRACES,
                    found.admin
                )));
            }
            if traces.is_empty() && output == Output::Human {
                printer.event(Event::Info(nothing_found(config, args)));
            }
            break;
        }
        sel.limit = usize::MAX;
        tokio::time::sleep(Duration::from_secs(args.poll_interval)).await;
    }
    Ok(exit::OK)
}

/// `serve`'s traces parsed, and chosen by the flags (an `--id` alone picks that trace).
pub fn local_selection(answer: &LocalTraces, sel: &Selection, id: Option<&str>) -> Result<Vec<Trace>> {
    let mut parsed = Vec::new();
    for t in &answer.traces {
        if id.is_some_and(|id| id != t.id) {
            continue;
        }
        let docs: Vec<&str> = t.segments.iter().map(|s| s.document.as_str()).collect();
        parsed.push(segment::parse_trace(&t.id, &docs).map_err(|e| Error::other(format!("serve's GET /traces: {e}")))?);
    }
    if id.is_some() {
        return Ok(parsed);
    }
    let chosen = choose(parsed.iter().map(Candidate::of_trace).collect(), sel);
    Ok(chosen.iter().filter_map(|c| parsed.iter().find(|t| t.id == c.id).cloned()).collect())
}

fn nothing_found(config: &Config, args: &TracesArgs) -> String {
    format!(
        "no {}traces of stack {} in the last {}{}",
        if args.errors { "failed " } else { "" },
        config.stack,
        crate::clock::format_duration(args.since),
        if args.local { " (serve, --local)" } else { "" }
    )
}

/// The traces on stdout: waterfalls, or JSON (one document; one line per trace with `--follow`).
fn print_traces(
    printer: &Arc<dyn Printer>,
    output: Output,
    config: &Config,
    source: &str,
    traces: &[Trace],
    width: usize,
    follow: bool,
) {
    match output {
        Output::Json if follow => traces.iter().for_each(|t| printer.out(&trace_json(t).to_string())),
        Output::Json => printer.out(
            &json!({"stack": config.stack, "source": source, "traces": traces.iter().map(trace_json).collect::<Vec<_>>()})
                .to_string(),
        ),
        Output::Human => {
            for t in traces {
                let mut lines = waterfall::render(t, width);
                lines.push(String::new());
                printer.out(&lines.join("\n"));
            }
        }
    }
}

/// One trace, typed for scripts: ids, times (epoch seconds), durations (ms), statuses, and the
/// tree of segments.
pub fn trace_json(t: &Trace) -> Value {
    json!({
        "id": t.id,
        "start": t.start,
        "start_utc": crate::clock::utc_ms((t.start * 1000.0) as i64),
        "duration_ms": round_ms(t.duration()),
        "status": t.status(),
        "http_status": t.http_status(),
        "request": t.request(),
        "segments": t.roots.iter().map(|s| span_json(s, t.start)).collect::<Vec<_>>(),
    })
}

fn span_json(s: &Span, trace_start: f64) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "label": segment::label(s),
        "origin": s.origin,
        "operation": s.operation,
        "start": s.start,
        "offset_ms": round_ms(s.start - trace_start),
        "duration_ms": round_ms(s.duration()),
        "status": s.status,
        "in_progress": s.in_progress,
        "http_status": s.http_status,
        "children": s.children.iter().map(|c| span_json(c, trace_start)).collect::<Vec<_>>(),
    })
}

/// Seconds → milliseconds, to the microsecond.
fn round_ms(seconds: f64) -> f64 {
    (seconds * 1_000_000.0).round() / 1000.0
}

/// The terminal's width when stdout is one, else [`DEFAULT_WIDTH`].
fn terminal_width() -> usize {
    if !std::io::stdout().is_terminal() {
        return DEFAULT_WIDTH;
    }
    match ratatui::crossterm::terminal::size() {
        Ok((cols, _)) if cols > 0 => usize::from(cols),
        _ => DEFAULT_WIDTH,
    }
}

#[cfg(test)]
mod tests {
    use super::segment::tests::{TRACE, ok_post};
    use super::*;
    use crate::local::{LocalSegment, LocalTrace};

    fn cand(id: &str, start: f64, duration: f64, status: Status) -> Candidate {
        Candidate { id: id.into(), start, duration, status }
    }

    fn sel(errors: bool, slowest: Option<usize>, limit: usize) -> Selection {
        Selection { errors, slowest, limit, since: 100.0 }
    }

    #[test]
    fn newest_first_errors_slowest_and_the_window() {
        let all = vec![
            cand("a", 110.0, 0.1, Status::Ok),
            cand("b", 130.0, 2.0, Status::Fault),
            cand("c", 120.0, 0.5, Status::Error),
            cand("old", 90.0, 9.0, Status::Fault),
            cand("c", 120.0, 0.5, Status::Error),
        ];
        let ids = |v: Vec<Candidate>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(choose(all.clone(), &sel(false, None, 10))), ["b", "c", "a"]);
        assert_eq!(ids(choose(all.clone(), &sel(false, None, 2))), ["b", "c"]);
        assert_eq!(ids(choose(all.clone(), &sel(true, None, 10))), ["b", "c"]);
        assert_eq!(ids(choose(all.clone(), &sel(false, Some(1), 10))), ["b"]);
        assert_eq!(ids(choose(all, &sel(false, Some(2), 1))), ["b", "c"], "--slowest N is not cut by --limit");
    }

    #[test]
    fn the_filter_keeps_the_stage_or_the_function_and_errors_narrow_it() {
        assert_eq!(
            filter_expression("apigw_handler", Some(("abc123", "prod")), false),
            r#"service(id(name: "apigw_handler", type: "AWS::Lambda::Function")) OR service(id(name: "abc123/prod", type: "AWS::ApiGateway::Stage"))"#
        );
        assert_eq!(
            filter_expression("fn", None, true),
            r#"(service(id(name: "fn", type: "AWS::Lambda::Function"))) AND (fault OR error)"#
        );
    }

    fn local(id: &str, docs: Vec<String>) -> LocalTrace {
        LocalTrace {
            id: id.into(),
            duration: 0.0,
            segments: docs
                .into_iter()
                .enumerate()
                .map(|(i, d)| LocalSegment { id: format!("s{i}"), document: d })
                .collect(),
        }
    }

    #[test]
    fn serves_traces_are_parsed_and_chosen_like_xrays() {
        let failed = vec![
            serde_json::json!({"id": "a9", "name": "local/dev", "origin": "AWS::ApiGateway::Stage",
                "start_time": 1_733_337_600.0, "end_time": 1_733_337_600.5, "fault": true,
                "http": {"response": {"status": 502}}})
            .to_string(),
        ];
        let second = "1-6750a200-000000000000000000000009";
        let answer = LocalTraces { traces: vec![local(second, failed), local(TRACE, ok_post())] };
        let all = local_selection(&answer, &sel(false, None, 10), None).unwrap();
        assert_eq!(all.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [second, TRACE]);
        assert_eq!(all[1].rows().len(), 7, "the same tree as from X-Ray");
        let errors = local_selection(&answer, &sel(true, None, 10), None).unwrap();
        assert_eq!(errors.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [second]);
        let one = local_selection(&answer, &sel(true, None, 10), Some(TRACE)).unwrap();
        assert_eq!(one.len(), 1, "--id picks the trace whatever the other flags");
        let v = trace_json(&one[0]);
        assert_eq!(v["duration_ms"], 125.0);
        assert_eq!(v["segments"][0]["children"][0]["children"][0]["children"][0]["label"], "function apigw_handler");
        assert_eq!(v["segments"][0]["status"], "ok");
    }
}
