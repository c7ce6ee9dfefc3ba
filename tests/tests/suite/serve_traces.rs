//! Issue 22 (part 3), `movies-stack serve` as the local X-Ray daemon: its traces and counters,
//! read from its admin listener, found through its discovery file.
//!
//! Each test deploys a stack into its own moto (the shared fixture, through the recording proxy)
//! and runs the real `movies-stack serve` with the real `bootstrap` (its DynamoDB calls go to
//! moto), with `MOVIES_STACK_STATE_DIR` in a folder of the test's own (no test sees another's
//! discovery file).
//!
//! - `a_request_is_traced_end_to_end_and_counted`: while serving, the discovery file names
//!   serve's pid, its admin listener and the API; a 200 shows up in `GET /traces` under the trace
//!   id serve returned in `X-Amzn-Trace-Id`: the stage's segment with its `Lambda` subsegment,
//!   Lambda's segment, the function's segment with `Initialization` (the cold start) and
//!   `Invocation`, and the handler's DynamoDB `PutItem` subsegment nested under the function's
//!   segment, each child within its parent's interval and every duration above zero; a 403
//!   without a key is the stage's segment alone, with `error`; a burst past the Standard plan's
//!   bucket gives 429s traced with `throttle`; `GET /stats` counts the requests, 4XX, 429s,
//!   invocations and DynamoDB calls in the minute(s) they fell in, with latencies, and the Standard
//!   key's use today; anything else is 404; the CLI's readers agree: `traces --local --id` gives
//!   the same tree (JSON: nested, each span within its parent; text: the waterfall's bars and
//!   labels), `traces --local --errors` the 403 and the 429s alone, and `top --local --once` the
//!   same counts; after Ctrl-C the discovery file is gone.
//! - `the_admin_address_is_an_event`: with `--output json`, the `serve_admin` event names the
//!   admin listener and the X-Ray daemon; SIGTERM removes the discovery file too.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::runtime_api::bootstrap_bin;
use e2e::{Account, Checks, Deployer, HttpAnswer, Serve, StackNames, TempDir, http_exchange};
use serde_json::Value;

const MOVIE: &str = r#"{"year":"2023","title":"Traced Movie","id":"t1"}"#;

/// A deployed stack in its own moto, the Standard key (id, value), and serve's state folder.
struct Deployed {
    /// moto and the proxy the stack is deployed through (kept running).
    _account: Account,
    names: StackNames,
    deployer: Deployer,
    standard: (String, String),
    premium_id: String,
    state: TempDir,
}

async fn deployed(prefix: &str, overrides: &[(&str, &str)]) -> Deployed {
    let account = Account::start().await;
    let stack = account.stack_with(prefix, overrides);
    let state = TempDir::new(&format!("{prefix}-state"));
    let mut deployer = stack.deployer.clone();
    deployer.env.push(("MOVIES_STACK_STATE_DIR".into(), state.path().display().to_string()));
    deployer.up_json(&["--artifact", &stack.artifact]).await;
    let keys = deployer.run(&["--output", "json", "keys"]).await;
    keys.assert_ok();
    let keys = keys.json();
    let field = |tier: &str, f: &str| keys["keys"][tier][f].as_str().unwrap_or_default().to_string();
    let standard = (field("standard", "id"), field("standard", "value"));
    assert!(!standard.1.is_empty(), "keys: {keys}");
    Deployed { _account: account, names: stack.names, deployer, standard, premium_id: field("premium", "id"), state }
}

fn discovery_file(state: &Path, stack: &str) -> PathBuf {
    state.join(format!("serve-{stack}.json"))
}

/// `GET {admin}{path}` (the body as JSON; Null when it is not).
async fn admin_get(admin: &str, method: &str, path: &str) -> (u16, Value) {
    let (admin, method, path) = (admin.to_string(), method.to_string(), path.to_string());
    let answer: HttpAnswer = tokio::task::spawn_blocking(move || {
        http_exchange(&admin, &method, &path, &[], None).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    })
    .await
    .expect("request thread");
    (answer.status, serde_json::from_str(&answer.body).unwrap_or(Value::Null))
}

/// The trace `id` from `GET /traces`, once `ready` says it is complete (at most 15 s: the
/// handler's subsegments arrive by UDP, independently of the answer).
async fn trace(admin: &str, id: &str, ready: impl Fn(&Value) -> bool) -> Option<Value> {
    let start = Instant::now();
    loop {
        let (status, traces) = admin_get(admin, "GET", "/traces").await;
        assert_eq!(status, 200, "GET /traces: {traces}");
        let found = traces["Traces"].as_array().and_then(|t| t.iter().find(|t| t["Id"] == id)).cloned();
        match found {
            Some(t) if ready(&t) => return Some(t),
            last if start.elapsed() > Duration::from_secs(15) => return last,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The trace's segment documents, parsed.
fn documents(trace: &Value) -> Vec<Value> {
    trace["Segments"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| serde_json::from_str(s["Document"].as_str()?).ok()).collect())
        .unwrap_or_default()
}

fn by_origin<'a>(docs: &'a [Value], origin: &str) -> Option<&'a Value> {
    docs.iter().find(|d| d["origin"] == origin)
}

fn subsegment<'a>(doc: &'a Value, name: &str) -> Option<&'a Value> {
    doc["subsegments"].as_array()?.iter().find(|s| s["name"] == name)
}

fn times(doc: &Value) -> (f64, f64) {
    (doc["start_time"].as_f64().unwrap_or(f64::NAN), doc["end_time"].as_f64().unwrap_or(f64::NAN))
}

/// `child` starts and ends within `parent`, and both last more than nothing.
fn check_within(c: &mut Checks, what: &str, child: &Value, parent: &Value) {
    let ((cs, ce), (ps, pe)) = (times(child), times(parent));
    c.check(ce > cs && pe > ps, format!("{what}: durations above zero ({cs}..{ce} in {ps}..{pe})"));
    c.check(cs >= ps && ce <= pe, format!("{what}: {cs}..{ce} within its parent's {ps}..{pe}"));
}

/// `Root=1-...` → `1-...`
fn root(answer: &HttpAnswer) -> String {
    answer
        .header("x-amzn-trace-id")
        .and_then(|h| h.split(';').find_map(|p| p.strip_prefix("Root=")))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_traced_end_to_end_and_counted() {
    // Standard: a bucket of 2 refilled every 5 s, so that a burst of 3 meets a 429.
    let d =
        deployed("trace1", &[("usage_plans.standard.rate_limit", "0.2"), ("usage_plans.standard.burst_limit", "2")])
            .await;
    let serve = Serve::start(&d.deployer, d.state.path(), &bootstrap_bin(), &[]).await;
    let key = Some(d.standard.1.as_str());
    let mut c = Checks::new();

    // The discovery file, while serving.
    let path = discovery_file(d.state.path(), &d.names.stack);
    let found: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("{} while serving:\n{}", path.display(), serve.stderr_text()));
    c.eq("discovery: stack", found["stack"].as_str(), Some(d.names.stack.as_str()));
    c.eq("discovery: pid", found["pid"].as_u64(), serve.pid().map(u64::from));
    c.eq("discovery: api", found["api"].as_str(), Some(format!("{}/prod", serve.base).as_str()));
    let admin = found["admin"].as_str().unwrap_or_default().to_string();
    c.check(
        admin.starts_with("http://127.0.0.1:") && admin != serve.base,
        format!("discovery: admin {admin} (the API is {})", serve.base),
    );
    c.check(
        serve.saw(&format!("serve: traces and counters on {admin} (GET /traces, GET /stats)")).await,
        "serve says where",
    );

    // A 200, a 403 without a key, then a burst past the bucket.
    let ok = serve.call("POST", "/", key, Some(MOVIE)).await;
    c.eq("POST with the key: status", ok.status, 200);
    let forbidden = serve.call("POST", "/", None, Some(MOVIE)).await;
    c.eq("POST without a key: status", forbidden.status, 403);
    let burst: Vec<HttpAnswer> = {
        let calls: Vec<_> = (0..3).map(|_| tokio::spawn(serve.call("POST", "/", key, Some(MOVIE)))).collect();
        let mut out = Vec::new();
        for call in calls {
            out.push(call.await.expect("request task"));
        }
        out
    };
    let burst_ok = burst.iter().filter(|a| a.status == 200).count() as u64;
    let throttled: Vec<&HttpAnswer> = burst.iter().filter(|a| a.status == 429).collect();
    c.eq("burst: every answer a 200 or a 429", burst_ok + throttled.len() as u64, 3);
    c.check(!throttled.is_empty(), format!("burst: a 429 ({:?})", burst.iter().map(|a| a.status).collect::<Vec<_>>()));

    // The 200: gateway → Lambda → function → DynamoDB, nested and timed.
    let id = root(&ok);
    c.check(id.starts_with("1-") && id.len() == 35, format!("the 200's trace id {id}"));
    let has_dynamodb = |t: &Value| {
        documents(t).iter().any(|d| d["origin"] == "AWS::Lambda::Function" && subsegment(d, "DynamoDB").is_some())
    };
    let traced = trace(&admin, &id, has_dynamodb).await.unwrap_or_else(|| panic!("trace {id} in GET /traces"));
    let docs = documents(&traced);
    c.eq("the 200's trace: segments", docs.len(), 3);
    c.check(traced["Duration"].as_f64().is_some_and(|d| d > 0.0), format!("trace duration {}", traced["Duration"]));
    let stage = by_origin(&docs, "AWS::ApiGateway::Stage").cloned().unwrap_or_default();
    let service = by_origin(&docs, "AWS::Lambda").cloned().unwrap_or_default();
    let function = by_origin(&docs, "AWS::Lambda::Function").cloned().unwrap_or_default();
    for (what, doc) in [("stage", &stage), ("Lambda", &service), ("function", &function)] {
        c.eq(&format!("{what} segment: trace_id"), doc["trace_id"].as_str(), Some(id.as_str()));
    }
    c.check(
        stage["name"].as_str().is_some_and(|n| n.ends_with("/prod")),
        format!("stage segment name {}", stage["name"]),
    );
    c.eq("stage segment: no parent", stage.get("parent_id"), None);
    c.eq("stage segment: http status", &stage["http"]["response"]["status"], &Value::from(200));
    c.eq("stage segment: method", &stage["http"]["request"]["method"], &Value::from("POST"));
    c.eq(
        "stage segment: request id",
        stage["aws"]["api_gateway"]["request_id"].as_str(),
        ok.header("x-amzn-requestid"),
    );
    c.eq("stage segment: no error", (stage.get("error"), stage.get("fault")), (None, None));
    let call = subsegment(&stage, "Lambda").cloned().unwrap_or_default();
    c.eq("Lambda subsegment: operation", &call["aws"]["operation"], &Value::from("Invoke"));
    c.eq("Lambda segment: parent", service["parent_id"].as_str(), call["id"].as_str());
    c.eq("function segment: name", function["name"].as_str(), Some(d.names.function.as_str()));
    c.eq("function segment: parent", function["parent_id"].as_str(), service["id"].as_str());
    let init = subsegment(&function, "Initialization").cloned().unwrap_or_default();
    let invocation = subsegment(&function, "Invocation").cloned().unwrap_or_default();
    let dynamodb = subsegment(&function, "DynamoDB").cloned().unwrap_or_default();
    c.eq("DynamoDB subsegment: operation", &dynamodb["aws"]["operation"], &Value::from("PutItem"));
    c.eq("DynamoDB subsegment: table", dynamodb["aws"]["table_name"].as_str(), Some(d.names.table.as_str()));
    c.eq("DynamoDB subsegment: status", &dynamodb["http"]["response"]["status"], &Value::from(200));
    check_within(&mut c, "Lambda subsegment in the stage segment", &call, &stage);
    check_within(&mut c, "Lambda segment in its subsegment", &service, &call);
    check_within(&mut c, "function segment in Lambda's", &function, &service);
    check_within(&mut c, "Initialization (the cold start) in the function segment", &init, &function);
    check_within(&mut c, "Invocation in the function segment", &invocation, &function);
    check_within(&mut c, "DynamoDB in the function segment", &dynamodb, &function);
    check_within(&mut c, "DynamoDB within the invocation", &dynamodb, &invocation);
    c.check(times(&init).1 <= times(&invocation).0, "the initialization ends before the invocation starts");

    // The 403: the stage's segment alone, an error.
    let id403 = root(&forbidden);
    let t403 = trace(&admin, &id403, |_| true).await.unwrap_or_else(|| panic!("trace {id403}"));
    let docs403 = documents(&t403);
    c.eq("403: one segment", docs403.len(), 1);
    let s403 = docs403.first().cloned().unwrap_or_default();
    c.eq("403: the stage's", s403["origin"].as_str(), Some("AWS::ApiGateway::Stage"));
    c.eq("403: error", &s403["error"], &Value::Bool(true));
    c.eq("403: http status", &s403["http"]["response"]["status"], &Value::from(403));
    c.eq("403: no subsegment", s403.get("subsegments"), None);
    c.check(s403["end_time"].as_f64() > s403["start_time"].as_f64(), "403: a duration above zero");
    // A 429: throttled.
    let id429 = throttled.first().map(|a| root(a)).unwrap_or_default();
    let t429 = trace(&admin, &id429, |_| true).await.unwrap_or_default();
    let s429 = documents(&t429).first().cloned().unwrap_or_default();
    c.eq("429: throttle and error", (&s429["throttle"], &s429["error"]), (&Value::Bool(true), &Value::Bool(true)));
    let (_, newest) = admin_get(&admin, "GET", "/traces?limit=2").await;
    c.eq("?limit=2", newest["Traces"].as_array().map(Vec::len), Some(2));

    // The counters: the 5 requests in the minute(s) they fell in.
    let (status, stats) = admin_get(&admin, "GET", "/stats").await;
    c.eq("GET /stats: status", status, 200);
    let minutes = stats["minutes"].as_array().cloned().unwrap_or_default();
    let sum = |f: &str| minutes.iter().map(|m| m[f].as_u64().unwrap_or(0)).sum::<u64>();
    let n429 = throttled.len() as u64;
    c.eq("stats: requests", sum("requests"), 5);
    c.eq("stats: 4XX (the 403 and the 429s)", sum("status_4xx"), 1 + n429);
    c.eq("stats: 5XX", sum("status_5xx"), 0);
    c.eq("stats: throttled", sum("throttled"), n429);
    c.eq("stats: invocations", sum("invocations"), 1 + burst_ok);
    c.eq("stats: function errors", sum("function_errors"), 0);
    c.eq("stats: DynamoDB calls (one PutItem per 200)", sum("dynamodb_calls"), 1 + burst_ok);
    c.check(minutes.iter().all(|m| m["start"].as_u64().is_some_and(|s| s % 60 == 0)), "minutes start on the minute");
    c.check(
        minutes.iter().all(|m| {
            m["latency_p50_ms"].as_f64().is_some_and(|p| p > 0.0)
                && m["latency_p99_ms"].as_f64() >= m["latency_p50_ms"].as_f64()
        }),
        format!("latencies per minute: {minutes:?}"),
    );
    c.check(
        minutes.iter().any(|m| m["integration_p50_ms"].as_f64().is_some_and(|p| p > 0.0)),
        "integration latency of the invocations",
    );
    c.eq("stats: stack", stats["stack"].as_str(), Some(d.names.stack.as_str()));
    c.eq("stats: stage", stats["stage"].as_str(), Some("prod"));
    c.eq("stats: nothing running now", stats["running"].as_u64(), Some(0));
    c.check(stats["max_running"].as_u64().is_some_and(|m| m >= 1), format!("max_running {}", stats["max_running"]));
    let keys = stats["keys"].as_array().cloned().unwrap_or_default();
    let key_stats = |id: &str| keys.iter().find(|k| k["id"] == id).cloned().unwrap_or_default();
    let standard = key_stats(&d.standard.0);
    c.eq("stats: Standard key's use today (its 200s)", standard["used_today"].as_u64(), Some(1 + burst_ok));
    c.eq(
        "stats: Standard key's quota",
        (standard["quota_limit"].as_u64(), standard["quota_period"].as_str()),
        (Some(10_000), Some("DAY")),
    );
    c.eq("stats: Premium key's use today", key_stats(&d.premium_id)["used_today"].as_u64(), Some(0));

    // Anything else: 404.
    for (method, path) in [("GET", "/"), ("GET", "/prod/"), ("POST", "/traces"), ("GET", "/stats/x")] {
        c.eq(&format!("{method} {path} on the admin listener"), admin_get(&admin, method, path).await.0, 404);
    }

    // The same, through the CLI's `--local` readers (found by the discovery file).
    check_traces_local(&mut c, &d, &id, &id403, n429).await;
    let top = d.deployer.run(&["--output", "json", "top", "--local", "--once"]).await;
    c.eq("top --local --once: exit", top.code, 0);
    let snap = top.json();
    let total = |k: &str| snap["series"][k]["total"].as_f64();
    c.eq("top --local: source", snap["source"]["kind"].as_str(), Some("local"));
    c.eq("top --local: requests", total("api_requests"), Some(5.0));
    c.eq("top --local: 4XX", total("api_4xx"), Some((1 + n429) as f64));
    c.eq("top --local: invocations", total("function_invocations"), Some((1 + burst_ok) as f64));
    c.check(
        snap["series"]["api_latency_p99"]["max"].as_f64().is_some_and(|v| v > 0.0),
        format!("top --local: latency p99 {}", snap["series"]["api_latency_p99"]),
    );
    let top_keys = snap["keys"]["keys"].as_array().cloned().unwrap_or_default();
    let top_standard = top_keys.iter().find(|k| k["id"] == d.standard.0.as_str()).cloned().unwrap_or_default();
    c.eq("top --local: Standard key's use today", top_standard["used_today"].as_u64(), Some(1 + burst_ok));
    let text = d.deployer.run(&["top", "--local", "--once"]).await;
    c.eq("top --local --once (text): exit", text.code, 0);
    c.check(text.stdout.contains("requests"), format!("top --local --once (text):\n{}", text.stdout));
    println!("$ movies-stack top --local --once\n{}", text.stdout);

    // What docs/commands.md shows.
    println!("--- GET /traces: the 200's trace ---\n{}", serde_json::to_string_pretty(&traced).unwrap_or_default());
    for doc in &docs {
        println!("{}", serde_json::to_string_pretty(doc).unwrap_or_default());
    }
    println!("--- GET /stats ---\n{}", serde_json::to_string_pretty(&stats).unwrap_or_default());
    let (code, stderr) = serve.stop().await;
    println!("--- serve's stderr ---\n{stderr}");
    c.eq("exit code", code, Some(0));
    c.check(!path.exists(), format!("{} removed after stop", path.display()));
    c.check(!stderr.contains("X-Ray daemon: dropped"), "no datagram dropped");
    c.finish("serve: traces and counters");
}

/// `traces --local`: the 200's trace as JSON (the gateway, Lambda's and the function's segments and
/// the DynamoDB call nested in one tree, each within its parent) and as a waterfall; `--errors`
/// the 403 and the 429s, not the 200.
async fn check_traces_local(c: &mut Checks, d: &Deployed, id: &str, id403: &str, n429: u64) {
    let json = d.deployer.run(&["--output", "json", "traces", "--local", "--id", id]).await;
    c.eq("traces --local --id: exit", json.code, 0);
    let doc = json.json();
    let trace = doc["traces"][0].clone();
    c.eq("traces --local --id: the trace", trace["id"].as_str(), Some(id));
    c.eq("traces --local: http status", trace["http_status"].as_u64(), Some(200));
    // Depth-first, each span with its depth and its parent's (offset, duration).
    type Visited = (usize, Value, Option<(f64, f64)>);
    fn walk(span: &Value, depth: usize, parent: Option<(f64, f64)>, out: &mut Vec<Visited>) {
        let own = (span["offset_ms"].as_f64().unwrap_or(-1.0), span["duration_ms"].as_f64().unwrap_or(-1.0));
        out.push((depth, span.clone(), parent));
        for child in span["children"].as_array().into_iter().flatten() {
            walk(child, depth + 1, Some(own), out);
        }
    }
    let mut spans = Vec::new();
    for root in trace["segments"].as_array().into_iter().flatten() {
        walk(root, 0, None, &mut spans);
    }
    let depth_of = |origin: &str| spans.iter().find(|(_, s, _)| s["origin"] == origin).map(|(d, _, _)| *d);
    let dynamodb = spans.iter().find(|(_, s, _)| s["name"] == "DynamoDB").map(|(d, s, _)| (*d, s.clone()));
    c.eq("traces --local: one root, the stage's", trace["segments"].as_array().map(Vec::len), Some(1));
    c.eq("traces --local: the stage at the root", depth_of("AWS::ApiGateway::Stage"), Some(0));
    let (stage, lambda, function) =
        (depth_of("AWS::ApiGateway::Stage"), depth_of("AWS::Lambda"), depth_of("AWS::Lambda::Function"));
    c.check(
        matches!((stage, lambda, function), (Some(s), Some(l), Some(f)) if s < l && l < f),
        format!("traces --local: stage {stage:?} above Lambda {lambda:?} above the function {function:?}"),
    );
    c.check(
        dynamodb.as_ref().is_some_and(|(d, s)| Some(*d) > function && s["operation"] == "PutItem"),
        format!("traces --local: DynamoDB PutItem below the function ({dynamodb:?})"),
    );
    for (_, span, parent) in &spans {
        let (offset, duration) =
            (span["offset_ms"].as_f64().unwrap_or(-1.0), span["duration_ms"].as_f64().unwrap_or(-1.0));
        if let Some((p_offset, p_duration)) = parent {
            c.check(
                offset >= p_offset - 0.001 && offset + duration <= p_offset + p_duration + 0.001 && duration >= 0.0,
                format!(
                    "traces --local: {} ({offset} ms, {duration} ms) within its parent ({p_offset}, {p_duration})",
                    span["label"]
                ),
            );
        }
    }
    let text = d.deployer.run(&["traces", "--local", "--id", id]).await;
    c.eq("traces --local --id (text): exit", text.code, 0);
    for want in [id, "PutItem", "Initialization", "200"] {
        c.check(text.stdout.contains(want), format!("the waterfall shows {want}:\n{}", text.stdout));
    }
    c.check(text.stdout.contains("=="), format!("the waterfall has bars:\n{}", text.stdout));
    println!("$ movies-stack traces --local --id {id}\n{}", text.stdout);
    let errors = d.deployer.run(&["--output", "json", "traces", "--local", "--errors"]).await;
    c.eq("traces --local --errors: exit", errors.code, 0);
    let ids: Vec<String> = errors.json()["traces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect();
    c.check(ids.iter().any(|i| i == id403), format!("--errors lists the 403 ({ids:?})"));
    c.check(!ids.iter().any(|i| i == id), format!("--errors leaves the 200 out ({ids:?})"));
    c.eq("--errors: the 403 and the 429s", ids.len() as u64, 1 + n429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_address_is_an_event() {
    let d = deployed("trace2", &[]).await;
    let serve = Serve::start(&d.deployer, d.state.path(), &bootstrap_bin(), &["--output", "json"]).await;
    let mut c = Checks::new();
    let line = serve.wait_line(|l| l.contains(r#""event":"serve_admin""#), Duration::from_secs(10)).await;
    let event: Value = line.as_deref().and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
    let path = discovery_file(d.state.path(), &d.names.stack);
    let found: Value =
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    c.check(event["url"].as_str().is_some_and(|u| u.starts_with("http://127.0.0.1:")), format!("serve_admin: {event}"));
    c.eq("serve_admin: the discovery file's admin", event["url"].as_str(), found["admin"].as_str());
    c.eq("serve_admin: the discovery file", event["discovery"].as_str(), path.to_str());
    c.check(
        event["xray_daemon"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")),
        format!("serve_admin: the daemon {}", event["xray_daemon"]),
    );
    let (status, stats) = admin_get(event["url"].as_str().unwrap_or_default(), "GET", "/stats").await;
    c.eq("GET /stats before any request", (status, stats["minutes"].as_array().map(Vec::len)), (200, Some(0)));
    // SIGTERM stops serve as Ctrl-C does, the file removed too.
    let pid = serve.pid().expect("serve runs").to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
    c.check(status.success(), "kill -TERM");
    let stopped = serve.wait_line(|l| l.contains(r#""event":"serve_stopped""#), Duration::from_secs(30)).await;
    c.check(stopped.is_some(), "serve_stopped after SIGTERM");
    // Reaps the process (already gone: the signal `stop` sends finds it a zombie).
    let (code, stderr) = serve.stop().await;
    c.eq("exit code after SIGTERM", code, Some(0));
    c.check(!path.exists(), format!("{} removed after SIGTERM", path.display()));
    if !c.failed().is_empty() {
        println!("--- serve's stderr ---\n{stderr}");
    }
    c.finish("serve: the admin event");
}
