//! The real `bootstrap` binary run as Lambda runs it: polling a Lambda Runtime API server
//! ([`RuntimeApi`]) for API Gateway REST proxy events built from the real fixture, with
//! `TABLE_NAME` naming a table in moto. Its DynamoDB calls go through the recording proxy, so
//! each case also checks how many `PutItem` calls it made; items are read back with the SDK
//! straight from moto.
//!
//! - `serves_api_gateway_events_against_moto`: the issue's sample request, an overwrite, a
//!   numeric year, a base64 body, headers that are not valid HTTP (dropped, still served), every
//!   kind of bad input (no DynamoDB call, no item), a
//!   non-API-Gateway event (an invocation error, and the process goes on), a DynamoDB call that
//!   outlives the Lambda deadline (503 before the deadline), a missing table (500), and the log
//!   lines (JSON, request fields, never the body or the API key; run at TRACE level).
//! - `dynamodb_unreachable_is_a_generic_500`: `AWS_ENDPOINT_URL` at a closed port.
//! - `missing_table_name_fails_init`: no `TABLE_NAME`: the process exits before polling.
//! - `xray_subsegments_reach_the_daemon`: with `AWS_XRAY_DAEMON_ADDRESS` at a UDP listener, one
//!   sampled request sends exactly one well-formed DynamoDB subsegment (the invocation's trace id
//!   and parent, the table, moto's request id, status 200); a throttled PutItem sends one with the
//!   throttle flag; `Sampled=0` and a request refused before DynamoDB send nothing.
//!
//! Needs `cargo build --workspace --bins` first (the test finds `<target>/debug/bootstrap`, or
//! `$MOVIES_STACK_BOOTSTRAP`).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use base64::Engine as _;
use e2e::runtime_api::{Completed, Outcome, bootstrap_bin};
use e2e::{Account, Aws, Checks, Function, Proxy, Rule, RuntimeApi, free_port, repo_root, unique_suffix};
use serde_json::{Value, json};

const FUNCTION: &str = "movies-handler-e2e";
/// The fixture's `x-api-key` header and `identity.apiKey`.
const API_KEY: &str = "FIXTURE-API-KEY-d41d8cd98f00b204";
const SOURCE_IP: &str = "203.0.113.7";
const USER_AGENT: &str = "curl/8.5.0";
/// Put into the values of every rejected body: it must never reach a log line.
const MARK: &str = "Mk7qZ";
const OK: &str = "Successfully inserted data!";
const INVOKE_TIMEOUT: Duration = Duration::from_secs(15);

/// The fixture event (`POST /`), as JSON.
fn fixture() -> Value {
    let path = repo_root().join("handler/tests/fixtures/rest-root-post.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// What a case sends.
#[derive(Clone)]
struct Req {
    method: &'static str,
    path: &'static str,
    body: Option<String>,
    b64: bool,
    /// Added to `headers` and `multiValueHeaders`.
    headers: &'static [(&'static str, &'static str)],
}

impl Req {
    fn post(body: impl Into<String>) -> Req {
        Req { method: "POST", path: "/", body: Some(body.into()), b64: false, headers: &[] }
    }
}

/// The fixture with this case's method, path, resource, body and a unique API Gateway request id.
fn event(base: &Value, req: &Req, request_id: &str) -> Value {
    let mut ev = base.clone();
    ev["httpMethod"] = json!(req.method);
    ev["requestContext"]["httpMethod"] = json!(req.method);
    ev["path"] = json!(req.path);
    ev["requestContext"]["path"] = json!(format!("/prod{}", req.path));
    ev["requestContext"]["requestId"] = json!(request_id);
    if req.path == "/" {
        ev["resource"] = json!("/");
        ev["requestContext"]["resourcePath"] = json!("/");
        ev["pathParameters"] = Value::Null;
    } else {
        ev["resource"] = json!("/{proxy+}");
        ev["requestContext"]["resourcePath"] = json!("/{proxy+}");
        ev["pathParameters"] = json!({ "proxy": req.path.trim_start_matches('/') });
    }
    ev["body"] = req.body.as_ref().map_or(Value::Null, |b| json!(b));
    ev["isBase64Encoded"] = json!(req.b64);
    for (name, value) in req.headers {
        ev["headers"][*name] = json!(value);
        ev["multiValueHeaders"][*name] = json!([value]);
    }
    ev
}

/// An API Gateway proxy response, unpacked.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Header names in lower case (from `headers` and `multiValueHeaders`).
    headers: HashMap<String, String>,
    /// The body parsed as JSON (`Null` if it is not JSON).
    body: Value,
    raw_body: String,
}

fn unpack(c: &Completed) -> Result<Answer, String> {
    let Outcome::Response(bytes) = &c.outcome else {
        return Err(format!("the invocation failed instead of answering: {:?}", c.outcome));
    };
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("response is not JSON ({e}): {}", String::from_utf8_lossy(bytes)))?;
    let status = v["statusCode"].as_u64().ok_or_else(|| format!("no statusCode: {v}"))? as u16;
    let mut headers = HashMap::new();
    if let Some(m) = v["multiValueHeaders"].as_object() {
        for (k, vals) in m {
            if let Some(first) = vals.as_array().and_then(|a| a.first()).and_then(Value::as_str) {
                headers.insert(k.to_ascii_lowercase(), first.to_string());
            }
        }
    }
    if let Some(m) = v["headers"].as_object() {
        for (k, val) in m {
            if let Some(s) = val.as_str() {
                headers.insert(k.to_ascii_lowercase(), s.to_string());
            }
        }
    }
    let raw_body = v["body"].as_str().unwrap_or_default().to_string();
    let body = serde_json::from_str(&raw_body).unwrap_or(Value::Null);
    Ok(Answer { status, headers, body, raw_body })
}

/// Exact message, or a prefix when it ends with `*`.
fn message_matches(expected: &str, got: &str) -> bool {
    match expected.strip_suffix('*') {
        Some(prefix) => got.starts_with(prefix),
        None => got == expected,
    }
}

async fn create_table(aws: &Aws, table: &str) {
    aws.dynamodb
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("id").attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap())
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("CreateTable in moto");
}

async fn get_item(aws: &Aws, table: &str, id: &str) -> Option<HashMap<String, AttributeValue>> {
    let out = aws
        .dynamodb
        .get_item()
        .table_name(table)
        .key("id", AttributeValue::S(id.to_string()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    out.item
}

fn item(id: &str, title: &str, year: i64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("id".to_string(), AttributeValue::S(id.to_string())),
        ("title".to_string(), AttributeValue::S(title.to_string())),
        ("year".to_string(), AttributeValue::N(year.to_string())),
    ])
}

fn put_items(proxy: &Proxy) -> usize {
    proxy.calls().iter().filter(|c| c.service == "dynamodb" && c.operation == "PutItem").count()
}

/// The last log line a request must produce.
enum Logged {
    /// `request_rejected` with this `reason`.
    Rejected(&'static str),
    /// This `event` (`item_written`, `dynamodb_error`).
    Event(&'static str),
}

/// One request through the real process.
struct Case {
    name: &'static str,
    req: Req,
    status: u16,
    /// Exact `message`, or a prefix ending with `*`.
    message: &'static str,
    /// The `reason` of the `request_rejected` log line (rejections only).
    reason: Option<&'static str>,
    /// The item this request must leave in the table (successes only).
    writes: Option<(&'static str, &'static str, i64)>,
}

fn ok(name: &'static str, body: &str, writes: (&'static str, &'static str, i64)) -> Case {
    Case { name, req: Req::post(body), status: 200, message: OK, reason: None, writes: Some(writes) }
}

fn bad(name: &'static str, req: Req, status: u16, reason: &'static str, message: &'static str) -> Case {
    Case { name, req, status, message, reason: Some(reason), writes: None }
}

fn cases(seed_body: &str) -> Vec<Case> {
    let m = MARK;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let post = |s: String| Req::post(s);
    let year_nan = "Field 'year' must be a whole number (a JSON number or a numeric string)";
    // Over 16384 bytes, otherwise a valid movie.
    let oversized = format!(r#"{{"id": "big-{m}", "title": "{}", "year": 2000}}"#, "x".repeat(16_400));
    vec![
        ok("the issue's sample request", seed_body, ("12", "Test Movie", 2023)),
        ok(
            "the same id again overwrites",
            r#"{"year": "2024", "title": "Test Movie (director's cut)", "id": "12"}"#,
            ("12", "Test Movie (director's cut)", 2024),
        ),
        ok(
            "year as a JSON number",
            r#"{"id": "13", "title": "Numeric Year", "year": 1999}"#,
            ("13", "Numeric Year", 1999),
        ),
        Case {
            req: Req { b64: true, ..Req::post(b64(r#"{"id": "14", "title": "Base64", "year": "1888"}"#)) },
            ..ok("base64-encoded body", "", ("14", "Base64", 1888))
        },
        // Headers that are not valid HTTP (a control character, a name that is not a token) made
        // the runtime's typed decoder refuse the whole event: an invocation error, so a 502 from
        // API Gateway. They are dropped now and the request is served.
        Case {
            req: Req {
                headers: &[
                    ("X-Control", "a\u{1}b"),
                    ("Bad Header@Name", "x"),
                    ("x-api-key", "FIXTURE-API-KEY-d41d8cd98f00b204\u{7f}"),
                ],
                ..Req::post(r#"{"id": "15", "title": "Odd Headers", "year": 2001}"#)
            },
            ..ok("invalid request headers are dropped", "", ("15", "Odd Headers", 2001))
        },
        bad(
            "an API Gateway event that does not decode",
            Req { method: "G E T", ..post(format!(r#"{{"id": "gete-{m}", "title": "T", "year": 2000}}"#)) },
            400,
            "invalid_event",
            "Request is not a valid API Gateway proxy request",
        ),
        bad("no body", Req { body: None, ..Req::post("") }, 400, "empty_body", "Request body is required"),
        bad("empty body", Req::post(""), 400, "empty_body", "Request body is required"),
        bad(
            "malformed JSON",
            post(format!(r#"{{"id": "bad-{m}", "title": "#)),
            400,
            "malformed_json",
            "Request body is not valid JSON: *",
        ),
        bad("not an object", post(format!(r#"["{m}"]"#)), 400, "not_an_object", "Request body must be a JSON object"),
        bad(
            "missing id",
            post(format!(r#"{{"title": "T-{m}", "year": 2000}}"#)),
            400,
            "missing_field",
            "Missing required field 'id'",
        ),
        bad(
            "id not a string",
            post(format!(r#"{{"id": 15, "title": "T-{m}", "year": 2000}}"#)),
            400,
            "wrong_type",
            "Field 'id' must be a string",
        ),
        bad(
            "empty title",
            post(format!(r#"{{"id": "bad-{m}", "title": " ", "year": 2000}}"#)),
            400,
            "empty_field",
            "Field 'title' must not be empty",
        ),
        bad(
            "year not a number",
            post(format!(r#"{{"id": "bad-{m}", "title": "T", "year": "abc"}}"#)),
            400,
            "invalid_year",
            year_nan,
        ),
        bad(
            "year out of range",
            post(format!(r#"{{"id": "bad-{m}", "title": "T", "year": 1500}}"#)),
            400,
            "year_out_of_range",
            "Field 'year' must be between 1888 and 2100",
        ),
        bad(
            "unknown field",
            post(format!(r#"{{"id": "bad-{m}", "title": "T", "year": 2000, "rating": "{m}"}}"#)),
            400,
            "unknown_field",
            "Unknown field 'rating'; allowed fields are id, title, year",
        ),
        bad(
            "id too long",
            post(format!(r#"{{"id": "{m}{}", "title": "T", "year": 2000}}"#, "i".repeat(124))),
            400,
            "field_too_long",
            "Field 'id' must be at most 128 characters",
        ),
        bad(
            "title too long",
            post(format!(r#"{{"id": "bad-{m}", "title": "{m}{}", "year": 2000}}"#, "t".repeat(508))),
            400,
            "field_too_long",
            "Field 'title' must be at most 512 characters",
        ),
        bad("oversized body", post(oversized), 413, "body_too_large", "Request body must be at most 16384 bytes"),
        bad(
            "invalid base64",
            Req { b64: true, ..post(format!("!!{m}!!")) },
            400,
            "invalid_base64",
            "Request body is not valid base64",
        ),
        bad(
            "GET /",
            Req { method: "GET", path: "/", body: None, b64: false, headers: &[] },
            405,
            "method_not_allowed",
            "Method not allowed; use POST",
        ),
        bad(
            "DELETE / with a valid body",
            Req { method: "DELETE", ..post(format!(r#"{{"id": "del-{m}", "title": "T", "year": 2000}}"#)) },
            405,
            "method_not_allowed",
            "Method not allowed; use POST",
        ),
        bad(
            "POST /other with a valid body",
            Req { path: "/other", ..post(format!(r#"{{"id": "other-{m}", "title": "T", "year": 2000}}"#)) },
            404,
            "not_found",
            "Not found",
        ),
    ]
}

/// Checks one answer's status, JSON `{"message"}` body and content type.
fn check_answer(c: &mut Checks, what: &str, a: &Answer, status: u16, message: &str) {
    c.eq(&format!("{what}: status"), a.status, status);
    c.eq(&format!("{what}: content-type"), a.headers.get("content-type").map(String::as_str), Some("application/json"));
    let keys: Vec<&String> = a.body.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    c.check(keys == ["message"], format!("{what}: body is exactly {{\"message\": ...}}: {}", a.raw_body));
    let got = a.body["message"].as_str().unwrap_or_default();
    c.check(message_matches(message, got), format!("{what}: message {got:?}, expected {message:?}"));
}

/// [`check_answer`] on an invocation's response; an invocation that did not answer (or not as
/// API Gateway reads it) is one failed check.
fn check_response(c: &mut Checks, what: &str, done: &Completed, status: u16, message: &str) -> Option<Answer> {
    match unpack(done) {
        Ok(a) => {
            check_answer(c, what, &a, status, message);
            Some(a)
        }
        Err(e) => {
            c.check(false, format!("{what}: {e}"));
            None
        }
    }
}

/// The JSON log lines of one API Gateway request id.
fn lines_for<'a>(lines: &'a [Value], request_id: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["request_id"] == request_id).collect()
}

/// Every line of one request carries the request fields, matching this invocation.
fn check_request_lines(c: &mut Checks, what: &str, lines: &[&Value], done: &Completed, table: &str) {
    c.check(lines.len() >= 2, format!("{what}: at least 2 log lines (received + outcome), got {}", lines.len()));
    for l in lines {
        let ev = l["event"].as_str().unwrap_or("?");
        c.eq(
            &format!("{what}: {ev}: lambda_request_id"),
            l["lambda_request_id"].as_str(),
            Some(done.request_id.as_str()),
        );
        c.eq(&format!("{what}: {ev}: xray_trace_id"), l["xray_trace_id"].as_str(), Some(done.trace_id.as_str()));
        c.eq(&format!("{what}: {ev}: source_ip"), l["source_ip"].as_str(), Some(SOURCE_IP));
        c.eq(&format!("{what}: {ev}: user_agent"), l["user_agent"].as_str(), Some(USER_AGENT));
        c.eq(&format!("{what}: {ev}: table"), l["table"].as_str(), Some(table));
    }
    c.check(
        lines.iter().any(|l| l["event"] == "request_received"),
        format!("{what}: a request_received line: {lines:?}"),
    );
}

/// Stdout must be JSON objects only; returns them.
fn parse_stdout(c: &mut Checks, what: &str, stdout: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for line in stdout.iter().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => {
                c.check(
                    v["level"].is_string() && v["timestamp"].is_string() && v["message"].is_string(),
                    format!("{what}: log line has level/timestamp/message: {line}"),
                );
                out.push(v);
            }
            _ => {
                c.check(false, format!("{what}: stdout line is not a JSON object: {line}"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_api_gateway_events_against_moto() {
    let t0 = Instant::now();
    let bin = bootstrap_bin();
    let account = Account::start().await;
    let (aws, proxy) = (&account.aws, &account.proxy);
    let table = format!("e2e-handler-{}", unique_suffix());
    create_table(aws, &table).await;
    let api = RuntimeApi::start(FUNCTION);
    // TRACE: the most the function can log; the body and the API key must still stay out.
    let mut func = Function::spawn(
        &bin,
        &api,
        &[("TABLE_NAME", &table), ("AWS_ENDPOINT_URL", proxy.url()), ("AWS_LAMBDA_LOG_LEVEL", "TRACE")],
    );
    let first_poll = api.wait_for_poll(1, Duration::from_secs(10)).await;
    assert!(
        first_poll.is_some(),
        "bootstrap never polled the Runtime API; stdout:\n{}\nstderr:\n{}",
        func.stdout_lines().join("\n"),
        func.stderr_lines().join("\n")
    );
    println!(
        "setup {:.2}s; bootstrap {} polled {:.1} ms after start",
        t0.elapsed().as_secs_f64(),
        bin.display(),
        first_poll.unwrap().duration_since(func.started).as_secs_f64() * 1e3
    );

    let base = fixture();
    let seed_body = base["body"].as_str().expect("fixture body").to_string();
    assert_eq!(
        serde_json::from_str::<Value>(&seed_body).unwrap(),
        json!({"year": "2023", "title": "Test Movie", "id": "12"})
    );
    let mut c = Checks::new();
    // (case name, API Gateway request id, the invocation, the expected last log line)
    let mut done: Vec<(String, String, Completed, Logged)> = Vec::new();
    let all = cases(&seed_body);
    let mut expected_items: HashMap<&str, HashMap<String, AttributeValue>> = HashMap::new();

    for (i, case) in all.iter().enumerate() {
        let what = format!("#{i} {}", case.name);
        let apigw_id = format!("e2e-{i:02}-{}", unique_suffix());
        let puts_before = put_items(proxy);
        let Some(result) = api.invoke(event(&base, &case.req, &apigw_id).to_string(), INVOKE_TIMEOUT).await else {
            c.check(false, format!("{what}: no answer within {INVOKE_TIMEOUT:?}"));
            continue;
        };
        let answer = check_response(&mut c, &what, &result, case.status, case.message);
        if let Some(a) = answer.filter(|_| case.status == 405) {
            c.eq(&format!("{what}: Allow header"), a.headers.get("allow").map(String::as_str), Some("POST"));
        }
        let puts = put_items(proxy) - puts_before;
        c.eq(&format!("{what}: PutItem calls"), puts, usize::from(case.writes.is_some()));
        if let Some((id, title, year)) = case.writes {
            let want = item(id, title, year);
            c.eq(
                &format!("{what}: item {id} read back with GetItem"),
                get_item(aws, &table, id).await,
                Some(want.clone()),
            );
            expected_items.insert(id, want);
        }
        let logged = case.reason.map_or(Logged::Event("item_written"), Logged::Rejected);
        done.push((what, apigw_id, result, logged));
    }

    // Only the good requests left items, and the last write of each id won.
    let scan = aws.dynamodb.scan().table_name(&table).consistent_read(true).send().await.expect("Scan");
    let ids: BTreeSet<String> =
        scan.items().iter().filter_map(|i| i.get("id").and_then(|v| v.as_s().ok()).cloned()).collect();
    c.eq(
        "ids in the table after every case",
        ids,
        BTreeSet::from(["12".to_string(), "13".into(), "14".into(), "15".into()]),
    );
    for (id, want) in &expected_items {
        c.eq(&format!("final item {id}"), get_item(aws, &table, id).await.as_ref(), Some(want));
    }

    // Not an API Gateway event at all: an invocation error (the runtime's deserialisation), and
    // the process keeps serving.
    let not_an_event = api.invoke(r#""not an API Gateway event""#, INVOKE_TIMEOUT).await;
    match not_an_event.as_ref().map(|r| &r.outcome) {
        Some(Outcome::Error { error_type, body }) => {
            println!("non-API-Gateway event -> invocation error {error_type:?}: {body}");
            c.check(!body.contains(MARK), "the invocation error does not echo request content");
        }
        other => {
            c.check(false, format!("a non-API-Gateway event: expected an invocation error, got {other:?}"));
        }
    }

    // DynamoDB slower than the Lambda deadline: a 503 before the deadline, nothing written.
    proxy.add_rule(
        Rule::new()
            .service("dynamodb")
            .operation("PutItem")
            .delay(Duration::from_secs(4))
            .fail(500, "InternalServerError", "injected: too slow")
            .times(1),
    );
    let slow_id = format!("e2e-slow-{}", unique_suffix());
    let slow_req = Req::post(r#"{"id": "slow", "title": "Slow", "year": 2000}"#);
    let pending = api.enqueue_with_deadline(event(&base, &slow_req, &slow_id).to_string(), Duration::from_millis(1500));
    match pending.wait(INVOKE_TIMEOUT).await {
        Some(r) => {
            let what = "DynamoDB slower than the deadline";
            check_response(&mut c, what, &r, 503, "Service temporarily unavailable, please retry");
            let took = r.service_time();
            c.check(took < Duration::from_millis(1500), format!("answered before the 1.5 s deadline (took {took:?})"));
            done.push((what.into(), slow_id, r, Logged::Event("dynamodb_error")));
        }
        None => {
            c.check(false, "DynamoDB slower than the deadline: no answer");
        }
    }
    proxy.clear_rules();
    c.eq("the slow item was not written", get_item(aws, &table, "slow").await, None);

    // The table is gone: 500 with a generic message.
    aws.dynamodb.delete_table().table_name(&table).send().await.expect("DeleteTable");
    let gone_id = format!("e2e-gone-{}", unique_suffix());
    match api.invoke(event(&base, &Req::post(&seed_body), &gone_id).to_string(), INVOKE_TIMEOUT).await {
        Some(r) => {
            check_response(&mut c, "table missing", &r, 500, "Internal server error");
            done.push(("table missing".into(), gone_id, r, Logged::Event("dynamodb_error")));
        }
        None => {
            c.check(false, "table missing: no answer");
        }
    }

    c.check(func.try_wait().is_none(), "bootstrap is still running after every case");
    c.check(api.unexpected().is_empty(), format!("no unexpected Runtime API requests: {:?}", api.unexpected()));
    c.check(api.init_errors().is_empty(), format!("no init error: {:?}", api.init_errors()));

    // ------------------------------------------------------------------ logs
    func.stop();
    let stdout = func.stdout_lines();
    let stderr = func.stderr_lines();
    let lines = parse_stdout(&mut c, "stdout", &stdout);
    println!("bootstrap wrote {} stdout lines, {} stderr lines", stdout.len(), stderr.len());
    c.check(
        lines.iter().any(|l| l["event"] == "init" && l["table"] == table.as_str()),
        "an `init` line naming the table",
    );
    for (what, apigw_id, result, outcome_event) in &done {
        let mine = lines_for(&lines, apigw_id);
        check_request_lines(&mut c, what, &mine, result, &table);
        let last = mine.last().copied().cloned().unwrap_or_default();
        match outcome_event {
            Logged::Rejected(reason) => {
                c.eq(&format!("{what}: rejection logged"), last["event"].as_str(), Some("request_rejected"));
                c.eq(&format!("{what}: logged reason"), last["reason"].as_str(), Some(*reason));
            }
            Logged::Event(ev) => {
                c.eq(&format!("{what}: outcome logged"), last["event"].as_str(), Some(*ev));
            }
        }
    }
    let everything = format!("{}\n{}", stdout.join("\n"), stderr.join("\n"));
    c.check(!everything.contains(API_KEY), "no log line contains the x-api-key value");
    c.check(!everything.contains(MARK), "no log line contains content of a rejected body");
    c.check(!everything.contains("Test Movie"), "no log line contains the title of a written movie");
    c.check(
        !everything.contains("Numeric Year")
            && !everything.contains("Odd Headers")
            && !everything.contains("a\\u0001b"),
        "nor any other title, nor a dropped header value",
    );
    for case in cases(&seed_body) {
        if let Some(b) = case.req.body.as_ref().filter(|b| b.len() >= 8) {
            c.check(!everything.contains(b.as_str()), format!("{}: the body is not in the logs", case.name));
        }
    }
    println!("elapsed {:.2}s", t0.elapsed().as_secs_f64());
    c.finish("handler e2e");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_unreachable_is_a_generic_500() {
    let api = RuntimeApi::start(FUNCTION);
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mut func = Function::spawn(&bootstrap_bin(), &api, &[("TABLE_NAME", "movies"), ("AWS_ENDPOINT_URL", &closed)]);
    let base = fixture();
    let apigw_id = format!("e2e-down-{}", unique_suffix());
    let started = Instant::now();
    let body = base["body"].as_str().unwrap().to_string();
    let r = api
        .invoke(event(&base, &Req::post(body), &apigw_id).to_string(), INVOKE_TIMEOUT)
        .await
        .expect("an answer while DynamoDB is unreachable");
    println!("DynamoDB unreachable: answered in {:.2}s (SDK retries included)", started.elapsed().as_secs_f64());
    let mut c = Checks::new();
    check_response(&mut c, "DynamoDB unreachable", &r, 500, "Internal server error");
    c.check(func.try_wait().is_none(), "bootstrap is still running");
    func.stop();
    let lines = parse_stdout(&mut c, "stdout", &func.stdout_lines());
    let mine = lines_for(&lines, &apigw_id);
    check_request_lines(&mut c, "DynamoDB unreachable", &mine, &r, "movies");
    let err = mine.iter().find(|l| l["event"] == "dynamodb_error");
    c.check(err.is_some(), "a dynamodb_error line");
    if let Some(err) = err {
        c.eq("error_kind", err["error_kind"].as_str(), Some("other"));
        let detail = err["error"].as_str().unwrap_or_default().to_lowercase();
        c.check(detail.contains("connection refused"), format!("the log has the cause: {detail}"));
    }
    let raw = func.stdout_lines().join("\n");
    c.check(!raw.contains(API_KEY) && !raw.contains("Test Movie"), "no body or API key in the logs");
    c.finish("DynamoDB unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_table_name_fails_init() {
    let api = RuntimeApi::start(FUNCTION);
    let mut func = Function::spawn(&bootstrap_bin(), &api, &[]);
    let status = func.wait_exit(Duration::from_secs(10)).expect("bootstrap exits without TABLE_NAME");
    let mut c = Checks::new();
    c.check(!status.success(), format!("exit status is a failure: {status}"));
    c.eq("Runtime API polls", api.polls().len(), 0);
    let lines = parse_stdout(&mut c, "stdout", &func.stdout_lines());
    c.check(
        lines.iter().any(|l| l["event"] == "init_failed" && l["level"] == "ERROR"),
        format!("an init_failed line: {:?}", func.stdout_lines()),
    );
    c.finish("missing TABLE_NAME");
}

/// One datagram from the function, split into the header line and the document.
fn recv_datagram(socket: &std::net::UdpSocket, wait: Duration) -> Option<(String, Value)> {
    socket.set_read_timeout(Some(wait)).expect("set_read_timeout");
    let mut buf = [0u8; 65_536];
    let n = socket.recv(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let (header, doc) = text.split_once('\n').unwrap_or((&text, ""));
    Some((header.to_string(), serde_json::from_str(doc).unwrap_or(Value::Null)))
}

/// `Root` and `Parent` of a trace header.
fn root_and_parent(header: &str) -> (String, String) {
    let get =
        |k: &str| header.split(';').find_map(|p| p.strip_prefix(k)?.strip_prefix('=')).unwrap_or_default().to_string();
    (get("Root"), get("Parent"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xray_subsegments_reach_the_daemon() {
    let account = Account::start().await;
    let (aws, proxy) = (&account.aws, &account.proxy);
    let table = format!("e2e-xray-{}", unique_suffix());
    create_table(aws, &table).await;
    // The X-Ray daemon Lambda runs beside the function, played by a UDP socket.
    let daemon = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind the daemon socket");
    let daemon_addr = daemon.local_addr().unwrap().to_string();
    let api = RuntimeApi::start(FUNCTION);
    let _func = Function::spawn(
        &bootstrap_bin(),
        &api,
        &[("TABLE_NAME", &table), ("AWS_ENDPOINT_URL", proxy.url()), ("AWS_XRAY_DAEMON_ADDRESS", &daemon_addr)],
    );
    let base = fixture();
    let body = |id: &str| json!({"year": "2023", "title": "Traced", "id": id}).to_string();
    let mut c = Checks::new();

    // ------------------------------------------------------------------ sampled: one subsegment
    let ev = event(&base, &Req::post(body("xray-1")), "e2e-xray-1").to_string();
    let done = api.enqueue_sampled(ev, true).wait(INVOKE_TIMEOUT).await.expect("the sampled request is answered");
    c.eq("sampled: status", unpack(&done).map(|a| a.status).ok(), Some(200));
    let (root, parent) = root_and_parent(&done.trace_id);
    match recv_datagram(&daemon, Duration::from_secs(5)) {
        None => {
            c.check(false, "sampled: a datagram reached the daemon");
        }
        Some((header, doc)) => {
            c.eq("header", header.as_str(), r#"{"format": "json", "version": 1}"#);
            c.eq("type", doc["type"].as_str(), Some("subsegment"));
            c.eq("name", doc["name"].as_str(), Some("DynamoDB"));
            c.eq("namespace", doc["namespace"].as_str(), Some("aws"));
            c.eq("trace_id = the invocation's Root", doc["trace_id"].as_str(), Some(root.as_str()));
            c.eq("parent_id = the invocation's Parent", doc["parent_id"].as_str(), Some(parent.as_str()));
            let id = doc["id"].as_str().unwrap_or_default();
            c.check(
                id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                format!("id is 16 hex digits: {id:?}"),
            );
            c.eq("aws.operation", doc["aws"]["operation"].as_str(), Some("PutItem"));
            c.eq("aws.table_name", doc["aws"]["table_name"].as_str(), Some(table.as_str()));
            c.check(
                doc["aws"]["request_id"].as_str().is_some_and(|r| !r.is_empty()),
                format!("aws.request_id is moto's x-amzn-RequestId: {doc}"),
            );
            c.eq("aws.region", doc["aws"]["region"].as_str(), Some("us-east-1"));
            c.eq("http.response.status", doc["http"]["response"]["status"].as_u64(), Some(200));
            for flag in ["error", "throttle", "fault"] {
                c.eq(flag, doc[flag].as_bool(), Some(false));
            }
            let (start, end) = (doc["start_time"].as_f64().unwrap_or(0.0), doc["end_time"].as_f64().unwrap_or(0.0));
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
            c.check(
                start > now - 60.0 && start <= end && end - start < 10.0,
                format!("start_time {start} <= end_time {end}, seconds since the epoch"),
            );
        }
    }
    c.check(recv_datagram(&daemon, Duration::from_millis(500)).is_none(), "one DynamoDB call: one datagram");

    // ------------------------------------------------------------------ not sampled: nothing
    let ev = event(&base, &Req::post(body("xray-2")), "e2e-xray-2").to_string();
    let done = api.enqueue_sampled(ev, false).wait(INVOKE_TIMEOUT).await.expect("the unsampled request is answered");
    c.eq("Sampled=0: status", unpack(&done).map(|a| a.status).ok(), Some(200));
    c.check(get_item(aws, &table, "xray-2").await.is_some(), "Sampled=0: the item was written all the same");
    c.check(recv_datagram(&daemon, Duration::from_secs(1)).is_none(), "Sampled=0: no datagram");

    // ------------------------------------------------------------------ refused before DynamoDB: nothing
    let ev = event(&base, &Req::post("{"), "e2e-xray-3").to_string();
    let done = api.enqueue_sampled(ev, true).wait(INVOKE_TIMEOUT).await.expect("the bad request is answered");
    c.eq("malformed: status", unpack(&done).map(|a| a.status).ok(), Some(400));
    c.check(recv_datagram(&daemon, Duration::from_millis(500)).is_none(), "no DynamoDB call: no datagram");

    // ------------------------------------------------------------------ throttled: the flags
    // Every attempt of the SDK (3) is throttled, as DynamoDB answers it (400 + the code).
    proxy.add_rule(
        Rule::new()
            .service("dynamodb")
            .operation("PutItem")
            .fail(
                400,
                "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded.",
            )
            .times(3),
    );
    let ev = event(&base, &Req::post(body("xray-4")), "e2e-xray-4").to_string();
    let done = api.enqueue_sampled(ev, true).wait(INVOKE_TIMEOUT).await.expect("the throttled request is answered");
    c.eq("throttled: status", unpack(&done).map(|a| a.status).ok(), Some(503));
    match recv_datagram(&daemon, Duration::from_secs(5)) {
        None => {
            c.check(false, "throttled: a datagram reached the daemon");
        }
        Some((_, doc)) => {
            c.eq("throttled: http.response.status", doc["http"]["response"]["status"].as_u64(), Some(400));
            c.eq("throttled: throttle", doc["throttle"].as_bool(), Some(true));
            c.eq("throttled: error (4xx)", doc["error"].as_bool(), Some(true));
            c.eq("throttled: fault", doc["fault"].as_bool(), Some(false));
            c.eq("throttled: aws.retries", doc["aws"]["retries"].as_u64(), Some(2));
            c.eq("throttled: trace_id", doc["trace_id"].as_str(), Some(root_and_parent(&done.trace_id).0.as_str()));
        }
    }
    c.finish("X-Ray subsegments");
}

/// `cargo tree -f "{p}|{f}"` of one selection (`--workspace`, or `-p handler`): each package of
/// this machine's target with the features cargo resolves for it.
fn resolved_features(selection: &[&str]) -> std::collections::BTreeMap<String, String> {
    let host =
        String::from_utf8(std::process::Command::new("rustc").arg("-vV").output().expect("run rustc -vV").stdout)
            .expect("utf-8");
    let host = host.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc -vV names the host").to_string();
    let mut args = vec!["tree", "--offline", "--locked", "--prefix", "none", "-e", "normal,build", "-f", "{p}|{f}"];
    args.extend(selection);
    args.extend(["--target", &host]);
    let out =
        std::process::Command::new("cargo").args(&args).current_dir(repo_root()).output().expect("run cargo tree");
    assert!(out.status.success(), "cargo {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|l| l.replace(" (*)", "").split_once('|').map(|(p, f)| (p.trim().to_string(), f.to_string())))
        .collect()
}

/// `serve --watch` builds the handler alone (`cargo build -p handler`): with the features a
/// workspace build resolves for each of its dependencies, it reuses that build's compiled
/// dependencies (handler/Cargo.toml, the block after its own dependencies) instead of compiling
/// about 40 of them again, and so do the `serve_watch` tests.
#[test]
fn the_handler_builds_with_the_workspaces_features() {
    let workspace = resolved_features(&["--workspace"]);
    let handler = resolved_features(&["-p", "handler"]);
    assert!(handler.len() > 100, "cargo tree -p handler listed {} packages", handler.len());
    let differ: Vec<String> = handler
        .iter()
        .filter(|(p, f)| workspace.get(*p) != Some(*f))
        .map(|(p, f)| format!("{p}: -p handler [{f}], --workspace [{}]", workspace.get(p).map_or("absent", |s| s)))
        .collect();
    assert!(
        differ.is_empty(),
        "a handler-only build resolves other features than the workspace's; enable the workspace's in handler/Cargo.toml:\n{}",
        differ.join("\n")
    );
}
