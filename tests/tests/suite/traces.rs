//! Issue 22 (part 1), `movies-stack traces`, against a stack deployed in moto, with traces put
//! into moto's X-Ray through the proxy (PutTraceSegments with the SDK, as the stage and the
//! function would send them; the strict model keeps them and answers GetTraceSummaries and
//! GetServiceGraph, which moto does not, `e2e::strict` `xray-traces`):
//!
//! - an OK POST (API Gateway → Lambda → the function with its Initialization → the handler's
//!   DynamoDB PutItem, sent as its own subsegment document), a slow one, a 403 refused by API
//!   Gateway before the function (only the stage filter finds it), a 502 fault, and a trace of
//!   another application;
//! - `--output json`: this stack's traces newest first with the right nesting and timings, not
//!   the other application's; `--errors`, `--slowest 1`, `--id` select as they should; the text
//!   form draws the bars;
//! - `--follow`: the traces already there oldest first, then one sent after it started, none twice;
//! - `--map`: the nodes and edges with their counts and the edges' p50 / p99;
//! - a screenshot: `traces --id` in tmux at 100×30, the screen's text read back.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::inventory::Shape;
use e2e::{Account, Behaviour, Checks, sdk_config};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// A trace id for a request at `t` (X-Ray's format: its epoch seconds in hex).
fn trace_id(t: f64, n: u32) -> String {
    format!("1-{:08x}-{:024x}", t as u64, 0xe2e0_0000_u64 + u64::from(n))
}

/// The segment documents of one request, as API Gateway, Lambda and the function send them.
/// `function`: (duration of the function's segment, DynamoDB PutItem's start offset and
/// duration); `None`: refused by API Gateway (no function).
struct Request<'a> {
    trace: &'a str,
    t0: f64,
    stage: &'a str,
    function: &'a str,
    status: u16,
    /// Total time at API Gateway, seconds.
    total: f64,
    /// The function ran: its segment's length, and the PutItem's (offset, length) in it.
    run: Option<(f64, Option<(f64, f64)>)>,
}

impl Request<'_> {
    fn documents(&self) -> Vec<Value> {
        let (t0, trace) = (self.t0, self.trace);
        let fault = self.status >= 500;
        let id = |p: &str| format!("{p}{:012x}", (t0 * 1000.0) as u64 & 0xffff_ffff_ffff);
        let mut api = json!({"id": id("a"), "trace_id": trace, "name": self.stage, "origin": "AWS::ApiGateway::Stage",
            "start_time": t0, "end_time": t0 + self.total, "fault": fault, "error": (400..500).contains(&self.status),
            "http": {"request": {"method": "POST", "url": "https://api.example/prod/"}, "response": {"status": self.status}},
            "aws": {"api_gateway": {"stage": "prod", "request_id": id("r")}}});
        let Some((run, put)) = self.run else { return vec![api] };
        api["subsegments"] = json!([{"id": id("b"), "name": "Lambda", "namespace": "aws", "start_time": t0 + 0.002,
            "end_time": t0 + self.total - 0.002, "fault": fault, "aws": {"operation": "Invoke", "function_name": self.function},
            "http": {"response": {"status": if fault { 502 } else { 200 }}}}]);
        let lambda = json!({"id": id("c"), "trace_id": trace, "parent_id": id("b"), "name": self.function,
            "origin": "AWS::Lambda", "start_time": t0 + 0.003, "end_time": t0 + 0.004 + run, "fault": fault,
            "http": {"response": {"status": 200}}});
        let start = t0 + 0.004;
        let function = json!({"id": id("d"), "trace_id": trace, "parent_id": id("c"), "name": self.function,
        "origin": "AWS::Lambda::Function", "start_time": start, "end_time": start + run, "fault": fault,
        "subsegments": [
            {"id": id("e"), "name": "Initialization", "start_time": start, "end_time": start + 0.030},
            {"id": id("f"), "name": "Invocation", "start_time": start + 0.031, "end_time": start + run, "fault": fault}
        ]});
        let mut docs = vec![api, lambda, function];
        if let Some((offset, length)) = put {
            docs.push(json!({"type": "subsegment", "id": id("g"), "trace_id": trace, "parent_id": id("f"),
                "name": "DynamoDB", "namespace": "aws", "start_time": start + offset, "end_time": start + offset + length,
                "aws": {"operation": "PutItem", "table_name": "demo_table"}, "http": {"response": {"status": 200}}}));
        }
        docs
    }
}

/// The ids of the JSON document's traces, in order.
fn ids(out: &Value) -> Vec<String> {
    out["traces"].as_array().into_iter().flatten().map(|t| t["id"].as_str().unwrap_or_default().to_string()).collect()
}

/// Depth-first labels of a trace's segment tree, as (depth, label).
fn labels(trace: &Value) -> Vec<(usize, String)> {
    fn walk(v: &Value, depth: usize, out: &mut Vec<(usize, String)>) {
        out.push((depth, v["label"].as_str().unwrap_or_default().to_string()));
        for c in v["children"].as_array().into_iter().flatten() {
            walk(c, depth + 1, out);
        }
    }
    let mut out = Vec::new();
    for s in trace["segments"].as_array().into_iter().flatten() {
        walk(s, 0, &mut out);
    }
    out
}

fn find_label<'a>(v: &'a Value, label: &str) -> Option<&'a Value> {
    if v["label"] == label {
        return Some(v);
    }
    v["children"].as_array().into_iter().flatten().find_map(|c| find_label(c, label))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_of_the_stack_come_back_nested_filtered_and_drawn() {
    let account = Account::start().await;
    let e = account.stack("traces");
    let deployer = &e.deployer;
    deployer.up_json(&["--artifact", &e.artifact]).await;
    let shape = Shape::of(&e).await;
    let function = e.names.function.clone();
    let api_name = shape.name_of("api").to_string();
    let apis = account.aws.apigateway.get_rest_apis().send().await.expect("GetRestApis");
    let api_id =
        apis.items().iter().find(|a| a.name() == Some(api_name.as_str())).and_then(|a| a.id()).unwrap().to_string();
    let stage = format!("{api_id}/prod");
    let mut c = Checks::new();

    // ------------------------------------------------------------------ the traces, through the proxy
    let xray = aws_sdk_xray::Client::new(&sdk_config(account.proxy.url(), 3).await);
    let t = now() - 300.0;
    let (ok, slow, refused, fault, other) =
        (trace_id(t, 1), trace_id(t + 60.0, 2), trace_id(t + 120.0, 3), trace_id(t + 180.0, 4), trace_id(t + 240.0, 5));
    let requests = [
        Request {
            trace: &ok,
            t0: t,
            stage: &stage,
            function: &function,
            status: 200,
            total: 0.180,
            run: Some((0.150, Some((0.080, 0.040)))),
        },
        Request {
            trace: &slow,
            t0: t + 60.0,
            stage: &stage,
            function: &function,
            status: 200,
            total: 2.400,
            run: Some((2.300, Some((0.100, 2.100)))),
        },
        Request {
            trace: &refused,
            t0: t + 120.0,
            stage: &stage,
            function: &function,
            status: 403,
            total: 0.004,
            run: None,
        },
        Request {
            trace: &fault,
            t0: t + 180.0,
            stage: &stage,
            function: &function,
            status: 502,
            total: 0.950,
            run: Some((0.900, None)),
        },
        Request {
            trace: &other,
            t0: t + 240.0,
            stage: "zzzz99/live",
            function: "billing-fn",
            status: 200,
            total: 0.100,
            run: Some((0.080, Some((0.010, 0.020)))),
        },
    ];
    for r in &requests {
        let docs: Vec<String> = r.documents().iter().map(Value::to_string).collect();
        let out =
            xray.put_trace_segments().set_trace_segment_documents(Some(docs)).send().await.expect("PutTraceSegments");
        assert!(out.unprocessed_trace_segments().is_empty(), "{out:?}");
    }

    // ------------------------------------------------------------------ json: this stack's, newest first, nested
    let run = deployer.run(&["--output", "json", "traces", "--since", "10m"]).await;
    c.eq("json: exit code", run.code, 0);
    let out = run.json();
    c.eq(
        "json: this stack's traces, newest first (not the other app's)",
        ids(&out),
        vec![fault.clone(), refused.clone(), slow.clone(), ok.clone()],
    );
    let traces = out["traces"].as_array().cloned().unwrap_or_default();
    let by_id = |id: &str| traces.iter().find(|t| t["id"] == id).cloned().unwrap_or(Value::Null);
    let first = by_id(&ok);
    c.eq(
        "json: the OK POST's tree",
        labels(&first),
        vec![
            (0, format!("API Gateway {stage}")),
            (1, "Lambda Invoke".to_string()),
            (2, format!("Lambda {function}")),
            (3, format!("function {function}")),
            (4, "Initialization".to_string()),
            (4, "Invocation".to_string()),
            (5, "DynamoDB PutItem".to_string()),
        ],
    );
    c.eq("json: the OK POST's duration", first["duration_ms"].as_f64(), Some(180.0));
    c.eq(
        "json: status and HTTP status",
        (first["status"].clone(), first["http_status"].clone()),
        (json!("ok"), json!(200)),
    );
    let root = &first["segments"][0];
    let put = find_label(root, "DynamoDB PutItem").cloned().unwrap_or(Value::Null);
    c.eq("json: PutItem's duration", put["duration_ms"].as_f64(), Some(40.0));
    c.eq("json: PutItem's offset in the trace", put["offset_ms"].as_f64(), Some(84.0));
    let init = find_label(root, "Initialization").cloned().unwrap_or(Value::Null);
    c.eq("json: Initialization's duration", init["duration_ms"].as_f64(), Some(30.0));
    c.eq(
        "json: the fault",
        (by_id(&fault)["status"].clone(), by_id(&fault)["http_status"].clone()),
        (json!("fault"), json!(502)),
    );
    c.eq(
        "json: the 403 has the stage's segment alone",
        labels(&by_id(&refused)),
        vec![(0, format!("API Gateway {stage}"))],
    );
    c.eq("json: the slow one", by_id(&slow)["duration_ms"].as_f64(), Some(2400.0));

    // ------------------------------------------------------------------ selections
    let run = deployer.run(&["--output", "json", "traces", "--since", "10m", "--errors"]).await;
    c.eq("--errors: the fault and the 403", ids(&run.json()), vec![fault.clone(), refused.clone()]);
    let run = deployer.run(&["--output", "json", "traces", "--since", "10m", "--slowest", "1"]).await;
    c.eq("--slowest 1", ids(&run.json()), vec![slow.clone()]);
    let run = deployer.run(&["--output", "json", "traces", "--id", &ok]).await;
    c.eq("--id: exit code", run.code, 0);
    c.eq("--id: that trace", ids(&run.json()), vec![ok.clone()]);
    let run = deployer.run(&["--output", "json", "traces", "--since", "10m", "--limit", "2"]).await;
    c.eq("--limit 2: the newest two", ids(&run.json()), vec![fault.clone(), refused.clone()]);
    let run = deployer.run(&["traces", "--since", "30s"]).await;
    c.check(
        run.code == 0 && run.stdout.is_empty() && run.stderr.contains("no traces of stack"),
        format!("nothing in 30s: said so:\n{run}"),
    );
    let missing = "1-00000001-000000000000000000000000";
    let run = deployer.run(&["traces", "--id", missing]).await;
    c.check(
        run.code == 1 && run.stderr.contains(missing) && run.stderr.contains("not found"),
        format!("--id unknown: a clear error:\n{run}"),
    );

    // ------------------------------------------------------------------ text: the waterfall
    let run = deployer.run(&["traces", "--since", "10m"]).await;
    c.eq("text: exit code", run.code, 0);
    // Newest first: the slow POST's PutItem (2.1 s of its 2.4 s), then the OK one's.
    let put_rows: Vec<&str> = run.stdout.lines().filter(|l| l.contains("DynamoDB PutItem")).collect();
    c.eq("text: one PutItem row per trace that made one", put_rows.len(), 2);
    let (slow_put, ok_put) =
        (put_rows.first().copied().unwrap_or_default(), put_rows.get(1).copied().unwrap_or_default());
    c.check(slow_put.ends_with("| ok        2100.0 ms 200"), format!("text: the slow PutItem row: {slow_put:?}"));
    c.check(ok_put.ends_with("| ok          40.0 ms 200"), format!("text: the OK PutItem row: {ok_put:?}"));
    c.check(
        put_rows.iter().all(|r| r.starts_with("          DynamoDB PutItem") && r.contains("|") && r.contains('=')),
        format!("text: indented by nesting, with a bar: {put_rows:?}"),
    );
    // The slow PutItem fills most of its trace's bar; the OK one's, a sliver.
    let filled = |r: &str| r.split('|').nth(1).unwrap_or_default().matches('=').count();
    c.check(filled(slow_put) > 30 && filled(ok_put) < 12, format!("text: bars to scale: {put_rows:?}"));
    c.check(run.stdout.lines().all(|l| l.chars().count() <= 100), format!("text: fits 100 columns:\n{}", run.stdout));
    c.check(
        run.stdout.contains(&format!("{fault}  ")) && run.stdout.contains("  fault 502, 950.0 ms"),
        format!("text: the fault's header:\n{}", run.stdout),
    );
    c.check(run.stdout.lines().any(|l| l.contains("|#")), format!("text: the fault's bars are #:\n{}", run.stdout));
    c.check(!run.stdout.contains("billing-fn"), "text: not the other app's trace");

    // ------------------------------------------------------------------ the service map
    let run = deployer.run(&["--output", "json", "traces", "--map", "--since", "10m"]).await;
    c.eq("map: exit code", run.code, 0);
    let map = run.json();
    let node = |name: &str, kind: &str| {
        map["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["name"] == name && n["type"] == kind)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let stage_node = node(&stage, "AWS::ApiGateway::Stage");
    c.eq("map: the stage's requests", stage_node["requests"].as_u64(), Some(4));
    c.eq("map: the stage's fault rate", stage_node["fault_rate"].as_f64(), Some(0.25));
    c.eq("map: the stage's error rate", stage_node["error_rate"].as_f64(), Some(0.25));
    c.eq("map: the table", node("demo_table", "AWS::DynamoDB::Table")["requests"].as_u64(), Some(3));
    let edge = |from: &str, to: &str| {
        map["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["from"] == from && e["to"] == to)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let invoke = edge(&stage, &function);
    c.eq("map: stage -> Lambda requests", invoke["requests"].as_u64(), Some(3));
    let to_table = edge(&function, "demo_table");
    c.eq("map: function -> table requests (the other app's aside)", to_table["requests"].as_u64(), Some(2));
    c.eq(
        "map: function -> table p50 / p99 (ms)",
        (to_table["p50_ms"].as_f64(), to_table["p99_ms"].as_f64()),
        (Some(40.0), Some(2100.0)),
    );
    let run = deployer.run(&["traces", "--map", "--since", "10m"]).await;
    c.check(
        run.stdout.contains(&format!("{stage} -> {function}"))
            && run.stdout.contains("AWS::DynamoDB::Table")
            && run.stdout.contains("25.0%"),
        format!("map: the text tables:\n{run}"),
    );
    c.check(account.proxy.model_hits()[&Behaviour::XRayTraces] >= 8, "the model answered the summaries and the graph");

    // ------------------------------------------------------------------ --follow
    let mut child =
        deployer.spawn(&["--output", "json", "traces", "--follow", "--since", "10m", "--poll-interval", "1"]);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen: Vec<String> = Vec::new();
    read_ids(&mut lines, &mut seen, 4, Duration::from_secs(30)).await;
    c.eq(
        "--follow: the traces already there, oldest first",
        seen.clone(),
        vec![ok.clone(), slow.clone(), refused.clone(), fault.clone()],
    );
    let late = trace_id(now(), 6);
    let r = Request {
        trace: &late,
        t0: now(),
        stage: &stage,
        function: &function,
        status: 200,
        total: 0.050,
        run: Some((0.040, None)),
    };
    let docs: Vec<String> = r.documents().iter().map(Value::to_string).collect();
    xray.put_trace_segments().set_trace_segment_documents(Some(docs)).send().await.expect("PutTraceSegments");
    read_ids(&mut lines, &mut seen, 5, Duration::from_secs(30)).await;
    c.eq("--follow: the trace sent after it started", seen.get(4).cloned(), Some(late.clone()));
    // Several more polls: nothing comes twice.
    read_ids(&mut lines, &mut seen, usize::MAX, Duration::from_secs(3)).await;
    c.eq("--follow: no trace twice", seen.len(), 5);
    c.check(child.try_wait().ok().flatten().is_none(), "--follow: still following");
    let _ = child.kill().await;

    // ------------------------------------------------------------------ a screenshot in tmux
    let screen = tmux_screen(deployer, &["traces", "--id", &ok], "DynamoDB PutItem").await;
    let screen_row =
        |needle: &str| screen.lines().find(|l| l.contains(needle)).unwrap_or_default().trim_end().to_string();
    c.check(
        screen.lines().any(|l| l.starts_with(&ok) && l.contains(" UTC  POST ")),
        format!("tmux: the header:\n{screen}"),
    );
    c.check(screen.contains("ok 200, 180.0 ms, 7 segments"), format!("tmux: the summary line:\n{screen}"));
    let api_row = screen_row(&format!("API Gateway {stage}"));
    c.check(
        api_row.contains("|=====") && api_row.ends_with("ok         180.0 ms 200"),
        format!("tmux: the stage's full bar: {api_row:?}"),
    );
    let init_row = screen_row("Initialization");
    c.check(
        init_row.contains("=") && init_row.ends_with("ok          30.0 ms   -"),
        format!("tmux: Initialization: {init_row:?}"),
    );
    c.check(screen_row("DynamoDB PutItem").ends_with("40.0 ms 200"), format!("tmux: PutItem:\n{screen}"));
    c.finish("traces");
}

/// Read JSON lines (one trace each) into `seen` (their ids) until it holds `want` or `within` has
/// passed.
async fn read_ids<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
    seen: &mut Vec<String>,
    want: usize,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    while seen.len() < want && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await {
            Ok(Ok(Some(l))) => {
                let v: Value = serde_json::from_str(&l).unwrap_or(Value::Null);
                seen.push(v["id"].as_str().unwrap_or("not a trace line").to_string());
            }
            Ok(_) => return,
            Err(_) => {}
        }
    }
}

/// Run the deployer with `args` in a detached tmux session of 100×30 and return the screen's
/// text once it shows `until` (or after 60 s).
async fn tmux_screen(deployer: &e2e::Deployer, args: &[&str], until: &str) -> String {
    let session = format!("traces-{}", std::process::id());
    let socket = format!("e2e-{session}");
    let mut all: Vec<String> = Vec::new();
    if let Some(c) = &deployer.config {
        all.extend(["--config".to_string(), c.display().to_string()]);
    }
    if let Some(e) = &deployer.endpoint {
        all.extend(["--endpoint-url".to_string(), e.clone()]);
    }
    all.extend(args.iter().map(|s| s.to_string()));
    deployer.hold_policy(&all);
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut env = vec![
        ("AWS_ACCESS_KEY_ID".to_string(), "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), "testing".to_string()),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
        ("NO_COLOR".to_string(), "1".to_string()),
    ];
    env.extend(deployer.env.iter().cloned());
    let script = format!(
        "cd {} && env -u AWS_PROFILE -u AWS_ENDPOINT_URL {} {} {}; sleep 600",
        quote(&deployer.cwd.display().to_string()),
        env.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect::<Vec<_>>().join(" "),
        quote(&deployer.bin.display().to_string()),
        all.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
    );
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .arg("-L")
            .arg(&socket)
            .args(args)
            .output()
            .expect("tmux runs (scripts/test.sh installs it)")
    };
    let started = tmux(&["new-session", "-d", "-x", "100", "-y", "30", "-s", &session, &script]);
    assert!(started.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&started.stderr));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut screen = String::new();
    while Instant::now() < deadline {
        screen = String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).into_owned();
        if screen.contains(until) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tmux(&["kill-server"]);
    screen
}
