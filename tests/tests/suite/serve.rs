//! Issue 11, `movies-stack serve`: the deployed API served locally, with the stack's keys and
//! usage plans enforced, around the real `bootstrap` run under an embedded Lambda Runtime API.
//!
//! Each test deploys a stack into its own moto (through the recording proxy), then runs the real
//! `movies-stack serve` against it, calls it over HTTP and reads the results back: items through
//! the SDK straight from moto, the access log file, serve's stderr (its own lines and the
//! function's, tagged `[env N]`).
//!
//! - `refused_before_serving`: a stack not deployed (exit 1, "run `movies-stack up` first"); a
//!   busy port and a `--bootstrap` that is not executable (exit 3, no AWS call).
//! - `keys_routes_and_the_real_handler`: 403 without, with a wrong and with a disabled key (the
//!   key disabled through the SDK, then SIGHUP); 200 and the item in the moto table; 400, 404 and
//!   405 passed through from the handler; 403 outside the stage; the request id and trace reach
//!   the function; one execution environment reused; the access log lines' fields; no key value
//!   printed anywhere.
//! - `usage_plans_throttle_and_quota_per_key` (Standard: 0.5 rps, burst 2; Premium: quota 3 per
//!   DAY): burst + 1 concurrent requests → exactly one 429 "Too Many Requests"; Premium keeps
//!   working meanwhile; quota + 1 → 429 "Limit Exceeded".
//! - `function_crashes_timeouts_and_malformed_answers` (function timeout 2 s): the real bootstrap
//!   killed (SIGKILL, pid from serve's stderr) while its DynamoDB call is held by the proxy → 502,
//!   and the next request served by a fresh environment; then a scripted runtime
//!   ([`FAKE_RUNTIME`], Python from the venv) that echoes the event and its environment (every
//!   field of the proxy event and of Lambda's environment checked), answers a malformed response
//!   (502), outlives the function timeout (502, environment replaced) or the integration timeout
//!   (504), and shows environments growing up to `--concurrency` and no further.
//!
//! Needs `cargo build --workspace --bins` (the deployer and `bootstrap`) and
//! `MOVIES_STACK_ARTIFACT` (the zip `up` deploys).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::artifact::artifact_path;
use e2e::runtime_api::bootstrap_bin;
use e2e::serve::USER_AGENT;
use e2e::{Aws, Checks, Deployer, HttpAnswer, Moto, Proxy, Rule, Serve, StackNames, TempDir, venv_dir, write_config};
use serde_json::{Value, json};

const MOVIE: &str = r#"{"year":"2023","title":"Test Movie","id":"12"}"#;
const OK: &str = r#"{"message":"Successfully inserted data!"}"#;
const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;
const INTERNAL: &str = r#"{"message": "Internal server error"}"#;

/// A deployed stack in its own moto, and its key values.
struct Deployed {
    _moto: Moto,
    proxy: Proxy,
    dir: TempDir,
    names: StackNames,
    deployer: Deployer,
    aws: Aws,
    /// (id, value) of the Standard and Premium keys.
    standard: (String, String),
    premium: (String, String),
}

/// moto + proxy + `up --artifact` of a unique stack with these config overrides. The one place
/// that sets the stack up (a shared fixture can replace it).
async fn deployed(prefix: &str, overrides: &[(&str, &str)]) -> Deployed {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.url());
    let dir = TempDir::new(prefix);
    let names = StackNames::unique(prefix);
    let config = write_config(dir.path(), &names, overrides);
    let deployer = Deployer::with(&config, proxy.url());
    let artifact = artifact_path();
    deployer.up_json(&["--artifact", artifact.to_str().expect("utf-8 path")]).await;
    let keys = deployer.run(&["--output", "json", "keys"]).await;
    keys.assert_ok();
    let keys = keys.json();
    let key = |tier: &str| {
        let k = &keys["keys"][tier];
        (k["id"].as_str().unwrap_or_default().to_string(), k["value"].as_str().unwrap_or_default().to_string())
    };
    let (standard, premium) = (key("standard"), key("premium"));
    assert!(!standard.1.is_empty() && !premium.1.is_empty(), "keys: {keys}");
    let aws = Aws::new(moto.url()).await;
    Deployed { _moto: moto, proxy, dir, names, deployer, aws, standard, premium }
}

fn kill_pid(pid: u32) {
    let status = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("run kill");
    assert!(status.success(), "kill -KILL {pid}");
}

async fn item(aws: &Aws, table: &str, id: &str) -> Option<std::collections::HashMap<String, String>> {
    let out = aws
        .dynamodb
        .get_item()
        .table_name(table)
        .key("id", aws_sdk_dynamodb::types::AttributeValue::S(id.to_string()))
        .send()
        .await
        .expect("GetItem in moto");
    out.item().map(|m| {
        m.iter().map(|(k, v)| (k.clone(), v.as_s().or_else(|_| v.as_n()).cloned().unwrap_or_default())).collect()
    })
}

/// `01/Dec/2026:10:11:12 +0000`
fn is_request_time(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 26
        && b[2] == b'/'
        && b[6] == b'/'
        && b[11] == b':'
        && s.ends_with(" +0000")
        && ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].contains(&&s[3..6])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_before_serving() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.url());
    let dir = TempDir::new("serve0");
    let names = StackNames::unique("serve0");
    let config = write_config(dir.path(), &names, &[]);
    let out = Deployer::with(&config, proxy.url())
        .run(&["serve", "--port", "0", "--bootstrap", bootstrap_bin().to_str().unwrap()])
        .await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains(&format!("stack {} is not deployed", names.stack)), "{out}");
    assert!(out.stderr.contains("run `movies-stack up` first"), "{out}");
    assert!(!out.stderr.contains("listening on"), "{out}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let calls = proxy.calls().len();
    let out = Deployer::with(&config, proxy.url()).run(&["serve", "--port", &port]).await;
    assert_eq!(out.code, 3, "a busy port is an input error: {out}");
    assert!(out.stderr.contains(&format!("--port {port}: cannot listen there")), "{out}");
    assert_eq!(proxy.calls().len(), calls, "a busy port costs no AWS call");
    let not_executable = dir.path().join("bootstrap.txt");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    let out = Deployer::with(&config, proxy.url())
        .run(&["serve", "--port", "0", "--bootstrap", not_executable.to_str().unwrap()])
        .await;
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stderr.contains("bootstrap.txt: not an executable file"), "{out}");
    assert_eq!(proxy.calls().len(), calls, "a bad --bootstrap costs no AWS call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_routes_and_the_real_handler() {
    let d = deployed("serve1", &[]).await;
    let serve = Serve::start(&d.deployer, d.dir.path(), &bootstrap_bin(), &[]).await;
    let (std_key, premium_key) = (d.standard.1.as_str(), d.premium.1.as_str());
    let mut c = Checks::new();

    // 403: no key, a wrong key, outside the stage.
    let none = serve.call("POST", "/", None, Some(MOVIE)).await;
    c.eq("no key: status", none.status, 403);
    c.eq("no key: body", none.body.as_str(), FORBIDDEN);
    let wrong = serve.call("POST", "/", Some("not-a-key-of-this-stack-0123456789"), Some(MOVIE)).await;
    c.eq("wrong key: status", wrong.status, 403);
    c.eq("wrong key: body", wrong.body.as_str(), FORBIDDEN);
    let outside = serve.raw("POST", "/dev/", Some(std_key), Some(MOVIE)).await;
    c.eq("another stage: status", outside.status, 403);

    // 200, and the item in moto's table.
    let ok = serve.call("POST", "/", Some(std_key), Some(MOVIE)).await;
    c.eq("standard key: status", ok.status, 200);
    c.eq("standard key: body", ok.body.as_str(), OK);
    c.eq("content-type", ok.header("content-type"), Some("application/json"));
    let stored = item(&d.aws, &d.names.table, "12").await;
    c.eq(
        "the item in moto",
        stored.map(|m| (m["title"].clone(), m["year"].clone())),
        Some(("Test Movie".to_string(), "2023".to_string())),
    );
    let premium = serve.call("POST", "", Some(premium_key), Some(r#"{"year":1999,"title":"P","id":"p1"}"#)).await;
    c.eq("premium key, /prod without slash: status", premium.status, 200);

    // The handler's own answers pass through.
    let bad = serve.call("POST", "/", Some(std_key), Some("{not json")).await;
    c.eq("bad JSON: status", bad.status, 400);
    c.check(bad.body.contains("not valid JSON"), format!("bad JSON: body {}", bad.body));
    let missing = serve.call("POST", "/movies/12?x=1", Some(std_key), Some(MOVIE)).await;
    c.eq("/movies/12: status", missing.status, 404);
    let get = serve.call("GET", "/", Some(std_key), None).await;
    c.eq("GET /: status", get.status, 405);
    c.check(get.body.contains("Method not allowed"), format!("GET /: body {}", get.body));

    // The function saw API Gateway's request id, trace and client (its JSON log line).
    let request_id = ok.header("x-amzn-requestid").unwrap_or_default().to_string();
    let trace = ok.header("x-amzn-trace-id").unwrap_or_default().to_string();
    c.check(request_id.len() == 36, format!("x-amzn-RequestId {request_id:?}"));
    c.check(trace.starts_with("Root=1-"), format!("X-Amzn-Trace-Id {trace:?}"));
    c.check(ok.header("x-amz-apigw-id").is_some_and(|v| !v.is_empty()), "x-amz-apigw-id");
    let logged =
        serve.wait_line(|l| l.starts_with("[env 1] ") && l.contains(&request_id), Duration::from_secs(10)).await;
    match logged.and_then(|l| serde_json::from_str::<Value>(l.trim_start_matches("[env 1] ")).ok()) {
        Some(line) => {
            c.eq("function log: source_ip", line["source_ip"].as_str(), Some("127.0.0.1"));
            c.eq("function log: user_agent", line["user_agent"].as_str(), Some(USER_AGENT));
            c.eq("function log: path", line["path"].as_str(), Some("/"));
            c.check(
                line["xray_trace_id"].as_str().is_some_and(|t| t.starts_with(&trace)),
                format!("function log: trace {} under {trace}", line["xray_trace_id"]),
            );
        }
        None => {
            c.check(false, format!("no [env 1] log line with request id {request_id}:\n{}", serve.stderr_text()));
        }
    }
    c.eq("one environment served every request", serve.count("started (pid"), 1);

    // The access log: one line per request, in the stage's format.
    let log = serve.access_log();
    c.eq("access log lines", log.len(), 8);
    let line_of = |id: &str| log.iter().find(|l| l["requestId"] == id).cloned().unwrap_or(Value::Null);
    let l = line_of(&request_id);
    c.eq("log: ip", l["ip"].as_str(), Some("127.0.0.1"));
    c.eq("log: userAgent", l["userAgent"].as_str(), Some(USER_AGENT));
    c.check(l["requestTime"].as_str().is_some_and(is_request_time), format!("log: requestTime {}", l["requestTime"]));
    c.eq("log: httpMethod", l["httpMethod"].as_str(), Some("POST"));
    c.eq("log: resourcePath", l["resourcePath"].as_str(), Some("/"));
    c.eq("log: status", l["status"].as_str(), Some("200"));
    c.check(
        l["responseLatency"].as_str().and_then(|s| s.parse::<u64>().ok()).is_some(),
        format!("log: responseLatency {}", l["responseLatency"]),
    );
    c.eq("log: apiKeyId", l["apiKeyId"].as_str(), Some(d.standard.0.as_str()));
    c.eq("log: xrayTraceId", l["xrayTraceId"].as_str().map(|t| format!("Root={t}")), Some(trace.clone()));
    let l = line_of(none.header("x-amzn-requestid").unwrap_or_default());
    c.eq("log of the 403: status", l["status"].as_str(), Some("403"));
    c.eq("log of the 403: apiKeyId", l["apiKeyId"].as_str(), Some("-"));
    let l = line_of(missing.header("x-amzn-requestid").unwrap_or_default());
    c.eq("log of the 404: resourcePath", l["resourcePath"].as_str(), Some("/{proxy+}"));
    c.eq("log of the 404: status", l["status"].as_str(), Some("404"));

    // A key disabled through the SDK: 403 once serve re-reads the stack (SIGHUP).
    d.aws
        .apigateway
        .update_api_key()
        .api_key(&d.standard.0)
        .patch_operations(
            aws_sdk_apigateway::types::PatchOperation::builder()
                .op(aws_sdk_apigateway::types::Op::Replace)
                .path("/enabled")
                .value("false")
                .build(),
        )
        .send()
        .await
        .expect("UpdateApiKey enabled=false in moto");
    let before = serve.call("POST", "/", Some(std_key), Some(MOVIE)).await;
    c.eq("disabled key, before SIGHUP: still the old rules", before.status, 200);
    c.check(serve.reload().await, format!("reload after SIGHUP:\n{}", serve.stderr_text()));
    c.check(serve.stderr_text().contains(", disabled)"), "the reload shows the key disabled");
    let disabled = serve.call("POST", "/", Some(std_key), Some(MOVIE)).await;
    c.eq("disabled key: status", disabled.status, 403);
    c.eq("disabled key: body", disabled.body.as_str(), FORBIDDEN);
    let premium = serve.call("POST", "/", Some(premium_key), Some(MOVIE)).await;
    c.eq("premium key after the reload", premium.status, 200);

    let (code, stderr) = serve.stop().await;
    c.eq("Ctrl-C: exit code", code, Some(0));
    c.check(stderr.contains("serve: env 1 exited"), "Ctrl-C stops the function process");
    for (name, value) in [("standard", std_key), ("premium", premium_key)] {
        c.check(!stderr.contains(value), format!("the {name} key value is not on serve's stderr"));
    }
    let access = serve_access_text(&d);
    for (name, value) in [("standard", std_key), ("premium", premium_key)] {
        c.check(!access.contains(value), format!("the {name} key value is not in the access log"));
    }
    c.finish("serve: keys, routes and the real handler");
}

/// Every access log file of the test's folder, as text.
fn serve_access_text(d: &Deployed) -> String {
    std::fs::read_dir(d.dir.path())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("access-"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_plans_throttle_and_quota_per_key() {
    let d = deployed(
        "serve2",
        &[
            ("usage_plans.standard.rate_limit", "0.2"),
            ("usage_plans.standard.burst_limit", "2"),
            ("usage_plans.premium.quota_limit", "3"),
            ("usage_plans.premium.quota_period", "\"DAY\""),
        ],
    )
    .await;
    let serve = Serve::start(&d.deployer, d.dir.path(), &bootstrap_bin(), &[]).await;
    let (std_key, premium_key) = (d.standard.1.as_str(), d.premium.1.as_str());
    let mut c = Checks::new();

    // burst + 1 at once: the bucket holds 2 tokens and refills one per 5 s.
    let burst: Vec<HttpAnswer> =
        futures_join((0..3).map(|_| serve.call("POST", "/", Some(std_key), Some(MOVIE))).collect()).await;
    let mut statuses: Vec<u16> = burst.iter().map(|a| a.status).collect();
    statuses.sort();
    c.eq("standard, burst + 1 at once: statuses", statuses, vec![200u16, 200, 429]);
    let throttled = burst.iter().find(|a| a.status == 429).map(|a| a.body.clone()).unwrap_or_default();
    c.eq("429 body", throttled.as_str(), r#"{"message":"Too Many Requests"}"#);
    let p1 = serve.call("POST", "/", Some(premium_key), Some(MOVIE)).await;
    c.eq("premium while standard is throttled", p1.status, 200);
    c.eq("premium body", p1.body.as_str(), OK);
    let again = serve.call("POST", "/", Some(std_key), Some(MOVIE)).await;
    c.eq("standard still throttled", again.status, 429);
    c.check(serve.saw("Key throttle limit exceeded for Usage Plan ID").await, "serve says which plan throttled");

    // The quota: 3 per DAY for Premium; the 4th is refused.
    let p2 = serve.call("POST", "/", Some(premium_key), Some(MOVIE)).await;
    let p3 = serve.call("GET", "/", Some(premium_key), None).await;
    c.eq("premium 2nd and 3rd", (p2.status, p3.status), (200, 405));
    let p4 = serve.call("POST", "/", Some(premium_key), Some(MOVIE)).await;
    c.eq("premium quota + 1: status", p4.status, 429);
    c.eq("premium quota + 1: body", p4.body.as_str(), r#"{"message":"Limit Exceeded"}"#);
    c.check(serve.saw("Key quota exhausted for Usage Plan ID").await, "serve says whose quota");

    // Standard refills at 0.2 rps: one request passes again 5 s after the burst.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = serve.call("POST", "/", Some(std_key), Some(MOVIE)).await;
    c.eq("standard 5 s later", later.status, 200);

    let log = serve.access_log();
    let statuses: Vec<&str> = log.iter().filter_map(|l| l["status"].as_str()).collect();
    c.eq("429s in the access log", statuses.iter().filter(|s| **s == "429").count(), 3);
    let (code, _) = serve.stop().await;
    c.eq("exit code", code, Some(0));
    c.finish("serve: usage plans");
}

/// Run the futures concurrently on the runtime, results in order.
async fn futures_join<F: std::future::Future<Output = T> + Send + 'static, T: Send + 'static>(futs: Vec<F>) -> Vec<T> {
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// A Lambda runtime in Python (the venv's, which the suite has anyway), driven by the request
/// body: `{"mode": "echo"}` answers 200 with the event, the environment and the invocation's
/// headers as the body; `"malformed"` answers a response API Gateway must refuse; `"sleep"`
/// sleeps `seconds`, then answers 200.
const FAKE_RUNTIME: &str = r#"
import json, os, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        headers = {k.lower(): v for k, v in r.headers.items()}
        event = json.load(r)
    ask = json.loads(event.get("body") or "{}")
    mode = ask.get("mode")
    if mode == "sleep":
        time.sleep(float(ask["seconds"]))
        answer = {"statusCode": 200, "body": "slept"}
    elif mode == "malformed":
        answer = {"status": 200, "message": "not a proxy response"}
    else:
        answer = {"statusCode": 201, "headers": {"x-echo": "1"}, "multiValueHeaders": {"x-multi": ["a", "b"]},
                  "body": json.dumps({"event": event, "env": dict(os.environ), "invocation": headers})}
    req = urllib.request.Request(api + rid + "/response", data=json.dumps(answer).encode(), method="POST")
    urllib.request.urlopen(req).read()
"#;

fn fake_runtime(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-runtime").join("bootstrap");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let python = venv_dir().join("bin").join("python3");
    std::fs::write(&path, format!("#!{}\n{FAKE_RUNTIME}", python.display())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_crashes_timeouts_and_malformed_answers() {
    let d = deployed("serve3", &[("function.timeout_seconds", "2")]).await;
    let key = d.standard.1.clone();
    let key = Some(key.as_str());
    let mut c = Checks::new();

    // ---------------------------------------------------------------- the real bootstrap, killed
    let serve = Serve::start(&d.deployer, d.dir.path(), &bootstrap_bin(), &[]).await;
    // Its DynamoDB call is held by the proxy (1.8 s, under the 2 s deadline): kill it meanwhile.
    d.proxy.add_rule(Rule::new().service("dynamodb").operation("PutItem").delay(Duration::from_millis(1800)).times(1));
    let held = tokio::spawn(serve.call("POST", "/", key, Some(MOVIE)));
    let start = Instant::now();
    let on_table = |x: &e2e::Call| x.operation == "PutItem" && x.table.as_deref() == Some(d.names.table.as_str());
    while !d.proxy.calls().iter().any(on_table) && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = serve.env_pid(1).await.expect("env 1's pid on serve's stderr");
    kill_pid(pid);
    let crashed = held.await.expect("request task");
    c.eq("killed mid-request: status", crashed.status, 502);
    c.eq("killed mid-request: body", crashed.body.as_str(), INTERNAL);
    c.check(serve.saw("serve: env 1 exited").await, "serve reports env 1 exited");
    let next = serve.call("POST", "/", key, Some(MOVIE)).await;
    c.eq("the next request: status", next.status, 200);
    c.check(serve.env_pid(2).await.is_some(), "a fresh environment (env 2) served it");
    c.check(serve.saw("[env 2] ").await, "env 2's log lines are tagged");
    let mut transcript = serve.stop().await.1;

    // --------------------------------------------- a scripted runtime: the event, bad answers
    let fake = fake_runtime(d.dir.path());
    let serve = Serve::start(&d.deployer, d.dir.path(), &fake, &["--concurrency", "2"]).await;
    let echo = serve.call("POST", "/movies/a%20b?q=1&q=2&x=y", key, Some(r#"{"mode":"echo"}"#)).await;
    c.eq("echo: status", echo.status, 201);
    c.eq("echo: single header", echo.header("x-echo"), Some("1"));
    c.eq(
        "echo: multi-value header",
        echo.headers.iter().filter(|(k, _)| k == "x-multi").map(|(_, v)| v.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"],
    );
    let seen: Value = serde_json::from_str(&echo.body).unwrap_or(Value::Null);
    let ev = &seen["event"];
    c.eq("event.resource", &ev["resource"], &json!("/{proxy+}"));
    c.eq("event.path", &ev["path"], &json!("/movies/a%20b"));
    c.eq("event.httpMethod", &ev["httpMethod"], &json!("POST"));
    c.eq("event.headers x-api-key", &ev["headers"]["x-api-key"], &json!(d.standard.1));
    c.eq("event.headers user-agent", &ev["headers"]["user-agent"], &json!(USER_AGENT));
    c.eq("event.multiValueHeaders user-agent", &ev["multiValueHeaders"]["user-agent"], &json!([USER_AGENT]));
    c.eq("event.queryStringParameters", &ev["queryStringParameters"], &json!({"q": "2", "x": "y"}));
    c.eq(
        "event.multiValueQueryStringParameters",
        &ev["multiValueQueryStringParameters"],
        &json!({"q": ["1", "2"], "x": ["y"]}),
    );
    c.eq("event.pathParameters", &ev["pathParameters"], &json!({"proxy": "movies/a b"}));
    c.eq("event.body", &ev["body"], &json!(r#"{"mode":"echo"}"#));
    c.eq("event.isBase64Encoded", &ev["isBase64Encoded"], &json!(false));
    let rc = &ev["requestContext"];
    c.eq("requestContext.requestId", rc["requestId"].as_str(), echo.header("x-amzn-requestid"));
    c.eq("requestContext.accountId", &rc["accountId"], &json!("123456789012"));
    c.check(rc["apiId"].as_str().is_some_and(|s| !s.is_empty()), format!("requestContext.apiId {}", rc["apiId"]));
    c.eq("requestContext.stage", &rc["stage"], &json!("prod"));
    c.eq("requestContext.resourcePath", &rc["resourcePath"], &json!("/{proxy+}"));
    c.eq("requestContext.httpMethod", &rc["httpMethod"], &json!("POST"));
    c.eq("requestContext.path", &rc["path"], &json!("/prod/movies/a%20b"));
    c.eq("identity.sourceIp", &rc["identity"]["sourceIp"], &json!("127.0.0.1"));
    c.eq("identity.userAgent", &rc["identity"]["userAgent"], &json!(USER_AGENT));
    c.eq("identity.apiKey", &rc["identity"]["apiKey"], &json!(d.standard.1));
    c.eq("identity.apiKeyId", &rc["identity"]["apiKeyId"], &json!(d.standard.0));
    let epoch = rc["requestTimeEpoch"].as_i64().unwrap_or(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    c.check((now - 60_000..=now).contains(&epoch), format!("requestContext.requestTimeEpoch {epoch} (now {now})"));
    let env = &seen["env"];
    for (var, want) in [
        ("TABLE_NAME", json!(d.names.table)),
        ("AWS_REGION", json!("us-east-1")),
        ("AWS_LAMBDA_FUNCTION_NAME", json!(d.names.function)),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", json!("256")),
        ("AWS_ACCESS_KEY_ID", json!("testing")),
        ("AWS_SECRET_ACCESS_KEY", json!("testing")),
        ("AWS_ENDPOINT_URL", json!(d.proxy.url())),
    ] {
        c.eq(&format!("env {var}"), &env[var], &want);
    }
    c.check(
        env["AWS_LAMBDA_RUNTIME_API"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")),
        format!("env AWS_LAMBDA_RUNTIME_API {}", env["AWS_LAMBDA_RUNTIME_API"]),
    );
    c.check(env.get("HOME").is_none(), "nothing of the host's environment but Lambda's");
    let inv = &seen["invocation"];
    let trace = echo.header("x-amzn-trace-id").unwrap_or_default();
    c.check(
        inv["lambda-runtime-trace-id"].as_str().is_some_and(|t| t.starts_with(&format!("{trace};Parent="))),
        format!("per-invocation trace {} under {trace}", inv["lambda-runtime-trace-id"]),
    );
    c.check(
        inv["lambda-runtime-invoked-function-arn"]
            .as_str()
            .is_some_and(|a| a.ends_with(&format!(":function:{}", d.names.function))),
        format!("invoked function ARN {}", inv["lambda-runtime-invoked-function-arn"]),
    );
    let deadline = inv["lambda-runtime-deadline-ms"].as_str().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    c.check(
        (2_000..=7_000).contains(&(deadline - epoch)),
        format!("deadline {deadline}: the 2 s timeout after the hand-out (request at {epoch})"),
    );

    let malformed = serve.call("POST", "/", key, Some(r#"{"mode":"malformed"}"#)).await;
    c.eq("malformed answer: status", malformed.status, 502);
    c.eq("malformed answer: body", malformed.body.as_str(), INTERNAL);
    c.check(serve.saw("Malformed Lambda proxy response: unexpected field").await, "serve says why");

    // Over the function's timeout (2 s): 502, and the environment is replaced.
    let started_before = serve.count("started (pid");
    let t0 = Instant::now();
    let slow = serve.call("POST", "/", key, Some(r#"{"mode":"sleep","seconds":5}"#)).await;
    let took = t0.elapsed();
    c.eq("function timeout: status", slow.status, 502);
    c.check(took >= Duration::from_secs(2) && took < Duration::from_secs(5), format!("answered after {took:?}"));
    c.check(serve.saw("Task timed out after 2.00 seconds").await, "serve reports Lambda's timeout line");
    let after = serve.call("POST", "/", key, Some(r#"{"mode":"echo"}"#)).await;
    c.eq("after the timeout: status", after.status, 201);

    // Environments grow with the load up to --concurrency (2); the third request waits.
    let busy = (0..3).map(|_| serve.call("POST", "/", key, Some(r#"{"mode":"sleep","seconds":1}"#))).collect();
    let t0 = Instant::now();
    let answers: Vec<HttpAnswer> = futures_join(busy).await;
    let took = t0.elapsed();
    c.eq(
        "3 at once with --concurrency 2: statuses",
        answers.iter().map(|a| a.status).collect::<Vec<_>>(),
        vec![200u16; 3],
    );
    c.check(took >= Duration::from_secs(2), format!("the third waited for a free environment ({took:?})"));
    // One replaced the timed-out environment, one more for the second concurrent request.
    c.eq("environments started since the timeout", serve.count("started (pid") - started_before, 2);
    transcript += &serve.stop().await.1;

    // ------------------------------------------------------------ the integration timeout
    let serve = Serve::start(&d.deployer, d.dir.path(), &fake, &["--integration-timeout", "1"]).await;
    let t0 = Instant::now();
    let late = serve.call("POST", "/", key, Some(r#"{"mode":"sleep","seconds":1.8}"#)).await;
    let took = t0.elapsed();
    c.eq("integration timeout: status", late.status, 504);
    c.eq("integration timeout: body", late.body.as_str(), r#"{"message": "Endpoint request timed out"}"#);
    c.check(took >= Duration::from_secs(1) && took < Duration::from_millis(1800), format!("answered after {took:?}"));
    let log = serve.access_log();
    c.eq("504 in the access log", log.last().and_then(|l| l["status"].as_str()), Some("504"));
    let (code, stderr) = serve.stop().await;
    c.eq("exit code", code, Some(0));
    if !c.failed().is_empty() {
        println!("--- serve's stderr ---\n{transcript}{stderr}");
    }
    c.finish("serve: function failures");
}
