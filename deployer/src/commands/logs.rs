//! `movies-stack logs`: the function's log group, the API access log or the VPC flow logs, read
//! with FilterLogEvents (every page). JSON lines (the function's and the access log's) are shown
//! as columns: time, request id, status, source IP, user agent, event or message; `--output json`
//! passes each event through as one JSON line. `--follow` polls and never prints an event twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::cli::{LogSource, LogsArgs, Output};
use crate::config::Config;
use crate::ctx::Timeouts;
use crate::error::{Error, Result, exit};
use crate::resources::log_group::{self, LogEvent};
use crate::resources::{Ctx, log_group::filter_events};
use crate::session::{CtrlC, Session};
use crate::ui::Printer;

/// How far back each `--follow` read starts before the previous read: CloudWatch Logs makes an
/// event searchable a few seconds after it is put, possibly after later ones. Events are
/// remembered by id over that window, so none is printed twice.
const LATE_EVENTS: Duration = Duration::from_secs(60);

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &LogsArgs,
    output: Output,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let (resource, name) = match args.source {
        LogSource::Function => (log_group::FUNCTION, crate::resources::log_group::function_log_group_name(config)),
        LogSource::Api => (log_group::ACCESS, crate::resources::log_group::access_log_group_name(config)),
        LogSource::Flow => (log_group::FLOW, crate::resources::log_group::flow_log_group_name(config)),
    };
    let session = Session::open(settings, config, printer.clone(), CtrlC::Exits, Timeouts::default()).await?;
    let ctx = session.ctx.clone();
    let live = session.observe_live(config, &[resource.name()]).await?;
    let group = match (live.state.get(resource), live.failure(resource.name())) {
        (Ok(group), _) => group.name.clone(),
        (Err(_), Some(e)) => return Err(Error::other(format!("cannot read log group {name}: {e}"))),
        (Err(_), None) => return Err(missing_group(&name, config)),
    };

    let mut start = crate::clock::now_ms() - millis(args.since);
    let mut seen = Seen::default();
    let mut printed = 0usize;
    loop {
        let polled_at = crate::clock::now_ms();
        let events = read(&ctx, &group, start, args.filter.as_deref(), config).await?;
        for e in events.iter().filter(|e| seen.first_time(e)) {
            printer.out(&event_text(e, output));
            printed += 1;
        }
        if !args.follow {
            break;
        }
        start = start.max(polled_at - millis(LATE_EVENTS));
        seen.forget_before(start);
        tokio::time::sleep(Duration::from_secs(args.poll_interval)).await;
    }
    if printed == 0 && output == Output::Human {
        ctx.info(format!(
            "no events in {group} in the last {}{}",
            crate::clock::format_duration(args.since),
            args.filter.as_deref().map(|f| format!(" matching {f:?}")).unwrap_or_default()
        ));
    }
    Ok(exit::OK)
}

/// FilterLogEvents; a group deleted since it was observed is the same clear message.
async fn read(ctx: &Ctx, group: &str, start: i64, filter: Option<&str>, config: &Config) -> Result<Vec<LogEvent>> {
    filter_events(ctx, group, start, filter)
        .await
        .map_err(|e| if e.is_not_found() { missing_group(group, config) } else { e.for_resource(group) })
}

fn missing_group(name: &str, config: &Config) -> Error {
    Error::other(format!(
        "log group {name} does not exist: stack {} is not deployed, or nothing created it yet (run `movies-stack up`)",
        config.stack
    ))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The events already printed, by id, with their timestamps (to forget the old ones).
#[derive(Default)]
struct Seen(HashMap<String, i64>);

impl Seen {
    fn first_time(&mut self, e: &LogEvent) -> bool {
        self.0.insert(e.event_id.clone(), e.timestamp).is_none()
    }

    /// No read starts before `start` any more: older ids cannot come back.
    fn forget_before(&mut self, start: i64) {
        self.0.retain(|_, ts| *ts >= start);
    }
}

/// One event as printed: one JSON object (`--output json`), or columns.
fn event_text(e: &LogEvent, output: Output) -> String {
    let parsed = serde_json::from_str::<Value>(&e.message).ok().filter(Value::is_object);
    match output {
        Output::Json => serde_json::json!({
            "timestamp": e.timestamp,
            "log_stream": e.log_stream,
            "event_id": e.event_id,
            "message": parsed.unwrap_or_else(|| Value::String(e.message.clone())),
        })
        .to_string(),
        Output::Human => columns(e, parsed.as_ref()),
    }
}

/// One line: time, request id, status, source IP, user agent, event or message. A line that is
/// not JSON (a flow log record, a plain platform line) is the time and the line.
fn columns(e: &LogEvent, json: Option<&Value>) -> String {
    let time = crate::clock::utc_ms(e.timestamp);
    let Some(v) = json else {
        return format!("{time}  {}", e.message);
    };
    // The function's lines (snake_case), the access log's (camelCase), Lambda's JSON platform
    // lines (`record.requestId`).
    let field = |names: &[&str]| -> Option<String> {
        names.iter().find_map(|n| match v.pointer(n) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(x)) => Some(x.to_string()),
            _ => None,
        })
    };
    let request_id = field(&["/request_id", "/requestId", "/record/requestId"]);
    let status = field(&["/status", "/statusCode"]);
    let ip = field(&["/source_ip", "/ip", "/sourceIp"]);
    let agent = field(&["/user_agent", "/userAgent"]).map(|a| cut(&a, 30));
    let what = match (field(&["/event"]), field(&["/httpMethod"])) {
        (Some(event), _) => match field(&["/error_code", "/reason"]) {
            Some(detail) if detail != "-" => format!("{event} {detail}"),
            _ => event,
        },
        (None, Some(method)) => format!(
            "{method} {} {}ms",
            field(&["/resourcePath"]).unwrap_or_default(),
            field(&["/responseLatency"]).unwrap_or_else(|| "?".into())
        ),
        (None, None) => field(&["/message", "/type"]).unwrap_or_else(|| v.to_string()),
    };
    let dash = |x: Option<String>| x.unwrap_or_else(|| "-".into());
    format!("{time}  {:<36}  {:<3}  {:<15}  {:<30}  {what}", dash(request_id), dash(status), dash(ip), dash(agent))
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, ts: i64, message: &str) -> LogEvent {
        LogEvent { timestamp: ts, event_id: id.into(), log_stream: "s".into(), message: message.into() }
    }

    #[test]
    fn function_lines_become_columns() {
        let line = r#"{"timestamp":"2026-11-25T18:40:00.1Z","level":"INFO","message":"item written","event":"item_written","request_id":"c6af9ac6","source_ip":"203.0.113.7","user_agent":"curl/8.5.0","status":200,"duration_ms":8}"#;
        let e = ev("1", 1_795_632_000_123, line);
        let v: Value = serde_json::from_str(line).unwrap();
        let got = columns(&e, Some(&v));
        assert!(got.starts_with("2026-11-25T18:40:00.123Z  c6af9ac6 "), "{got}");
        for part in ["  200  ", "203.0.113.7", "curl/8.5.0", "item_written"] {
            assert!(got.contains(part), "{part} in {got}");
        }
        assert!(got.ends_with("item_written"), "{got}");
    }

    #[test]
    fn access_log_and_platform_lines() {
        let access = r#"{"requestId":"r-1","ip":"198.51.100.2","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit","requestTime":"x","httpMethod":"POST","resourcePath":"/","status":"403","responseLatency":"4","apiKeyId":"-"}"#;
        let v: Value = serde_json::from_str(access).unwrap();
        let got = columns(&ev("2", 0, access), Some(&v));
        assert!(got.contains("r-1") && got.contains("  403  ") && got.contains("198.51.100.2"), "{got}");
        assert!(got.contains("Mozilla/5.0 (X11; Linux x86_64… "), "user agent cut to 30: {got}");
        assert!(got.ends_with("POST / 4ms"), "{got}");
        let platform = r#"{"time":"t","type":"platform.start","record":{"requestId":"lambda-1","version":"$LATEST"}}"#;
        let v: Value = serde_json::from_str(platform).unwrap();
        let got = columns(&ev("3", 0, platform), Some(&v));
        assert!(got.contains("lambda-1") && got.ends_with("platform.start"), "{got}");
        let rejected = r#"{"event":"request_rejected","reason":"malformed_json","status":400}"#;
        let v: Value = serde_json::from_str(rejected).unwrap();
        assert!(columns(&ev("4", 0, rejected), Some(&v)).ends_with("request_rejected malformed_json"));
        let flow = "2 123456789012 eni-1 10.1.0.5 10.1.1.9 443 49152 6 10 840 1 2 ACCEPT OK";
        assert_eq!(columns(&ev("5", 0, flow), None), format!("1970-01-01T00:00:00.000Z  {flow}"));
    }

    #[test]
    fn an_event_is_printed_once_and_forgotten_only_when_out_of_reach() {
        let mut seen = Seen::default();
        assert!(seen.first_time(&ev("a", 100, "x")));
        assert!(!seen.first_time(&ev("a", 100, "x")));
        assert!(seen.first_time(&ev("b", 200, "y")));
        seen.forget_before(150);
        assert!(!seen.first_time(&ev("b", 200, "y")), "still inside the window");
        assert!(seen.first_time(&ev("a", 100, "x")), "forgotten: no later read can return it");
    }
}
