//! Issue 10, `movies-stack logs`, against a stack deployed in moto with lines written into its log
//! groups through the SDK (moto's function stub writes none itself):
//!
//! - `--output json` passes every event through once, in time order (JSON lines as objects,
//!   plain lines as strings); the human form shows the columns (time, request id, status, source
//!   IP, user agent, event);
//! - `--source api` reads the access log; `--filter` and `--since` narrow the read;
//! - a missing log group is a clear message, not a crash;
//! - `--follow` prints a line written after it started, and never prints a line twice.
//!
//! moto ignores JSON filter patterns (`{ $.level = "ERROR" }`), so `--filter` is tested with a
//! plain term, which it implements.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use e2e::inventory::Shape;
use e2e::{Account, Aws, Checks};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A line as the handler writes it.
fn handler_line(event: &str, level: &str, request_id: &str, status: u16) -> String {
    json!({
        "timestamp": "2026-11-30T10:00:00.000000Z", "level": level, "message": event.replace('_', " "),
        "event": event, "request_id": request_id, "lambda_request_id": "d9bdc335-3118-4fb5-a741-3c27dcb3d095",
        "source_ip": "203.0.113.7", "user_agent": "curl/8.5.0", "table": "movies", "status": status,
    })
    .to_string()
}

async fn put(aws: &Aws, group: &str, stream: &str, events: &[(i64, String)]) {
    let _ = aws.logs.create_log_stream().log_group_name(group).log_stream_name(stream).send().await;
    let events: Vec<InputLogEvent> =
        events.iter().map(|(ts, m)| InputLogEvent::builder().timestamp(*ts).message(m).build().unwrap()).collect();
    aws.logs
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(events))
        .send()
        .await
        .expect("PutLogEvents");
}

/// Read JSON lines into `seen` until it holds `want` or `within` has passed.
async fn read_lines<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
    seen: &mut Vec<Value>,
    want: usize,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    while seen.len() < want && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await {
            Ok(Ok(Some(l))) => seen.push(serde_json::from_str(&l).unwrap_or(Value::Null)),
            Ok(_) => return,
            Err(_) => {}
        }
    }
}

/// The `message` of each JSON line of stdout.
fn messages(stdout: &str) -> Vec<Value> {
    stdout.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).map(|v| v["message"].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_reads_filters_and_follows_the_stacks_log_groups() {
    let account = Account::start().await;
    let e = account.stack("logs");
    let (deployer, aws) = (&e.deployer, &account.aws);
    deployer.up_json(&["--artifact", &e.artifact]).await;
    let shape = Shape::of(&e).await;
    let function_group = shape.name_of("function-log-group");
    let access_group = shape.name_of("access-log-group");
    let flow_group = shape.name_of("flow-log-group");
    let mut c = Checks::new();

    // ------------------------------------------------------------------ lines in two streams
    let t = now_ms() - 30_000;
    let start = "START RequestId: d9bdc335-3118-4fb5-a741-3c27dcb3d095 Version: $LATEST".to_string();
    let received = handler_line("request_received", "INFO", "req-1", 0);
    let written = handler_line("item_written", "INFO", "req-1", 200);
    let failed = handler_line("dynamodb_error", "ERROR", "req-2", 500);
    let old = handler_line("item_written", "INFO", "req-old", 200);
    put(
        aws,
        function_group,
        "2026/11/30/[$LATEST]aaaa",
        &[(t, start.clone()), (t + 1, received.clone()), (t + 2, written.clone())],
    )
    .await;
    put(aws, function_group, "2026/11/30/[$LATEST]bbbb", &[(t + 5, failed.clone())]).await;
    put(aws, function_group, "2026/11/30/[$LATEST]cccc", &[(now_ms() - 5 * 60_000, old.clone())]).await;
    let access = json!({"requestId": "req-1", "ip": "198.51.100.2", "userAgent": "curl/8.5.0", "requestTime": "30/Nov/2026:10:00:00 +0000",
        "httpMethod": "POST", "resourcePath": "/", "status": "200", "responseLatency": "12", "apiKeyId": "k1", "xrayTraceId": "-"})
    .to_string();
    put(aws, access_group, "e2e", &[(t, access.clone())]).await;

    // ------------------------------------------------------------------ json: every event once, in order
    let run = deployer.run(&["--output", "json", "logs", "--since", "2m"]).await;
    c.eq("json: exit code", run.code, 0);
    let parsed = |s: &str| serde_json::from_str::<Value>(s).unwrap();
    c.eq(
        "json: the function's events since 2m, in time order, as they are",
        messages(&run.stdout),
        vec![json!(start), parsed(&received), parsed(&written), parsed(&failed)],
    );
    let first: Value = run.stdout.lines().next().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    c.eq("json: timestamp", first["timestamp"].as_i64(), Some(t));
    c.eq("json: log stream", first["log_stream"].as_str(), Some("2026/11/30/[$LATEST]aaaa"));
    let run = deployer.run(&["--output", "json", "logs", "--since", "10m"]).await;
    c.eq("json --since 10m: the older line too", messages(&run.stdout).len(), 5);

    // ------------------------------------------------------------------ human columns
    let run = deployer.run(&["logs", "--since", "2m"]).await;
    c.eq("human: exit code", run.code, 0);
    let line = run.stdout.lines().find(|l| l.contains("item_written")).unwrap_or_default().to_string();
    for part in ["req-1", "  200  ", "203.0.113.7", "curl/8.5.0"] {
        c.check(line.contains(part), format!("human: {part:?} in the item_written line: {line:?}"));
    }
    c.check(
        line.starts_with("20") && line.contains('T') && line.contains("Z  "),
        format!("human: time first: {line:?}"),
    );
    c.check(run.stdout.lines().any(|l| l.ends_with(&start)), format!("human: the plain line as it is:\n{run}"));
    c.check(run.stdout.lines().any(|l| l.ends_with("dynamodb_error")), "human: the error line");

    let run = deployer.run(&["logs", "--source", "api", "--since", "2m"]).await;
    c.eq("api: exit code", run.code, 0);
    c.check(
        run.stdout.contains("req-1") && run.stdout.contains("198.51.100.2") && run.stdout.contains("POST / 12ms"),
        format!("api: the access line as columns:\n{run}"),
    );

    // ------------------------------------------------------------------ --filter
    let run = deployer.run(&["--output", "json", "logs", "--since", "2m", "--filter", "ERROR"]).await;
    c.eq("--filter ERROR: only the error line", messages(&run.stdout), vec![parsed(&failed)]);
    let run = deployer.run(&["logs", "--since", "2m", "--filter", "nothing-matches-this"]).await;
    c.eq("--filter, no match: exit code", run.code, 0);
    c.check(
        run.stdout.is_empty() && run.stderr.contains("no events in"),
        format!("--filter, no match: said so:\n{run}"),
    );

    // ------------------------------------------------------------------ a missing log group
    aws.logs.delete_log_group().log_group_name(flow_group).send().await.expect("DeleteLogGroup");
    let run = deployer.run(&["logs", "--source", "flow"]).await;
    c.eq("missing group: exit code", run.code, 1);
    c.check(
        run.stderr.contains(&format!("log group {flow_group} does not exist"))
            && run.stderr.contains("movies-stack up"),
        format!("missing group: a clear message:\n{run}"),
    );
    c.check(!run.stderr.contains("panicked"), "missing group: no crash");
    let run = deployer.run(&["logs", "--since", "10"]).await;
    c.eq("--since 10 (no unit): exit code", run.code, 3);

    // ------------------------------------------------------------------ --follow
    let mut child = deployer.spawn(&["--output", "json", "logs", "--follow", "--since", "2m", "--poll-interval", "1"]);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen: Vec<Value> = Vec::new();
    read_lines(&mut lines, &mut seen, 4, Duration::from_secs(30)).await;
    c.eq("--follow: the events already there", seen.len(), 4);
    let late = handler_line("item_written", "INFO", "req-late", 200);
    put(aws, function_group, "2026/11/30/[$LATEST]dddd", &[(now_ms(), late.clone())]).await;
    read_lines(&mut lines, &mut seen, 5, Duration::from_secs(30)).await;
    c.eq("--follow: the line written after it started", seen.get(4).map(|v| v["message"].clone()), Some(parsed(&late)));
    // Several more polls: nothing comes twice.
    read_lines(&mut lines, &mut seen, usize::MAX, Duration::from_secs(4)).await;
    let mut ids: Vec<&str> = seen.iter().filter_map(|v| v["event_id"].as_str()).collect();
    let printed = ids.len();
    ids.sort();
    ids.dedup();
    c.eq("--follow: lines printed after 4 s more of polling", printed, 5);
    c.eq("--follow: no line twice", ids.len(), printed);
    c.check(child.try_wait().ok().flatten().is_none(), "--follow: still following");
    let _ = child.kill().await;
    c.finish("logs");
}
