//! Unit tests: the whole request path with an in-memory store, on real API Gateway REST event
//! samples (`tests/fixtures/`, taken from the `aws_lambda_events` crate's own fixtures).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::http::Method;
use base64::Engine as _;
use serde_json::Value;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

use super::*;

/// `POST /` on the root resource, with an `x-api-key` header (from `example-apigw-request.json`).
const ROOT_EVENT: &str = include_str!("../tests/fixtures/rest-root-post.json");
/// The crate's unmodified sample: `POST /hello/world` through `/{proxy+}`.
const PROXY_EVENT: &str = include_str!("../tests/fixtures/example-apigw-request.json");
const API_KEY: &str = "FIXTURE-API-KEY-d41d8cd98f00b204";
const TABLE: &str = "movies-test";
const VALID: &str = r#"{"year": "2023", "title": "Test Movie", "id": "12"}"#;

// ---------------------------------------------------------------------------------------------
// helpers

#[derive(Default)]
struct FakeStore {
    items: Mutex<HashMap<String, Movie>>,
    fail_with: Mutex<Option<StoreError>>,
    delay: Mutex<Option<Duration>>,
    calls: AtomicUsize,
}

impl FakeStore {
    fn failing(kind: StoreErrorKind, code: &str) -> Self {
        let s = Self::default();
        *s.fail_with.lock().unwrap() =
            Some(StoreError { kind, code: Some(code.to_owned()), detail: format!("service error: {code}: simulated") });
        s
    }
}

impl MovieStore for FakeStore {
    async fn put_movie(&self, movie: &Movie) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if let Some(e) = self.fail_with.lock().unwrap().clone() {
            return Err(e);
        }
        self.items.lock().unwrap().insert(movie.id.clone(), movie.clone());
        Ok(())
    }
}

fn context() -> Context {
    let mut ctx = Context::default();
    ctx.request_id = "0b9bd1f5-lambda-request".to_owned();
    ctx.xray_trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".to_owned());
    ctx
}

fn event_from(fixture: &str, method: &str, body: Option<&str>, b64: bool) -> LambdaEvent<ApiGatewayProxyRequest> {
    let mut req: ApiGatewayProxyRequest = serde_json::from_str(fixture).expect("fixture parses");
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    req.http_method = method.clone();
    req.request_context.http_method = method;
    req.body = body.map(str::to_owned);
    req.is_base64_encoded = b64;
    LambdaEvent::new(req, context())
}

fn root(method: &str, body: Option<&str>) -> LambdaEvent<ApiGatewayProxyRequest> {
    event_from(ROOT_EVENT, method, body, false)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Status, `message` and headers of a response; also checks it is JSON with only `message`.
fn unpack(resp: &ApiGatewayProxyResponse) -> (u16, String) {
    assert_eq!(resp.headers.get("content-type").unwrap(), "application/json");
    assert!(!resp.is_base64_encoded);
    let Some(Body::Text(text)) = &resp.body else { panic!("text body expected: {resp:?}") };
    let v: Value = serde_json::from_str(text).expect("response body is JSON");
    let obj = v.as_object().expect("response body is an object");
    assert_eq!(obj.len(), 1, "only `message`: {text}");
    (u16::try_from(resp.status_code).unwrap(), obj["message"].as_str().unwrap().to_owned())
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
    fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// the behaviour table

struct Case {
    name: &'static str,
    method: &'static str,
    body: Option<String>,
    b64: bool,
    status: u16,
    /// Exact message, or a prefix when it ends with `*`.
    message: &'static str,
}

fn case(name: &'static str, body: &str, status: u16, message: &'static str) -> Case {
    Case { name, method: "POST", body: Some(body.to_owned()), b64: false, status, message }
}

fn cases() -> Vec<Case> {
    let long_id = "i".repeat(MAX_ID_CHARS + 1);
    let max_id = "i".repeat(MAX_ID_CHARS);
    let max_id_multibyte = "é".repeat(MAX_ID_CHARS); // 256 bytes, 128 chars: allowed
    let long_title = "t".repeat(MAX_TITLE_CHARS + 1);
    let max_title = "t".repeat(MAX_TITLE_CHARS);
    let with = |id: &str, title: &str| format!(r#"{{"id": "{id}", "title": "{title}", "year": 2001}}"#);
    // A valid body padded with spaces to exactly MAX_BODY_BYTES, and one byte more.
    let pad = |n: usize| {
        let mut s = VALID.to_owned();
        s.insert_str(1, &" ".repeat(n - VALID.len()));
        s
    };
    let at_limit = pad(MAX_BODY_BYTES);
    let over_limit = pad(MAX_BODY_BYTES + 1);
    assert_eq!(at_limit.len(), MAX_BODY_BYTES);
    let ok = SUCCESS_MESSAGE;
    let year_nan = "Field 'year' must be a whole number (a JSON number or a numeric string)";
    let year_range = "Field 'year' must be between 1888 and 2100";
    let not_object = "Request body must be a JSON object";

    let mut v = vec![
        // success
        case("issue example (year as string)", VALID, 200, ok),
        case("year as number", r#"{"id": "13", "title": "T", "year": 1999}"#, 200, ok),
        case("fields in any order, unicode", r#"{"title": "Amélie 🎬", "year": 2001, "id": "amélie"}"#, 200, ok),
        case("id at max length", &with(&max_id, "T"), 200, ok),
        case("id at max length, multibyte", &with(&max_id_multibyte, "T"), 200, ok),
        case("title at max length", &with("x", &max_title), 200, ok),
        case("year lower bound", r#"{"id": "a", "title": "T", "year": 1888}"#, 200, ok),
        case("year upper bound (string)", r#"{"id": "a", "title": "T", "year": "2100"}"#, 200, ok),
        case("body exactly at size limit", &at_limit, 200, ok),
        Case { b64: true, ..case("base64 body", &b64(VALID.as_bytes()), 200, ok) },
        // empty / malformed
        Case { body: None, ..case("missing body", "", 400, "Request body is required") },
        case("empty body", "", 400, "Request body is required"),
        case("whitespace body", " \r\n\t ", 400, "Request body is required"),
        case("malformed JSON", r#"{"id": "1", "title": "#, 400, "Request body is not valid JSON: *"),
        case(
            "trailing garbage",
            r#"{"id": "1", "title": "T", "year": 2000} x"#,
            400,
            "Request body is not valid JSON: *",
        ),
        case("body is an array", r#"[{"id": "1"}]"#, 400, not_object),
        case("body is a string", r#""hello""#, 400, not_object),
        case("body is a number", "42", 400, not_object),
        case("body is null", "null", 400, not_object),
        // unknown fields
        case(
            "unknown field",
            r#"{"id": "1", "title": "T", "year": 2000, "rating": 5}"#,
            400,
            "Unknown field 'rating'; allowed fields are id, title, year",
        ),
        case("wrong-case field", r#"{"ID": "1", "title": "T", "year": 2000}"#, 400, "Unknown field 'ID'*"),
        // id
        case("missing id", r#"{"title": "T", "year": 2000}"#, 400, "Missing required field 'id'"),
        case("null id", r#"{"id": null, "title": "T", "year": 2000}"#, 400, "Missing required field 'id'"),
        case("empty id", r#"{"id": "", "title": "T", "year": 2000}"#, 400, "Field 'id' must not be empty"),
        case("blank id", r#"{"id": "   ", "title": "T", "year": 2000}"#, 400, "Field 'id' must not be empty"),
        case("numeric id", r#"{"id": 12, "title": "T", "year": 2000}"#, 400, "Field 'id' must be a string"),
        case("id too long", &with(&long_id, "T"), 400, "Field 'id' must be at most 128 characters"),
        // title
        case("missing title", r#"{"id": "1", "year": 2000}"#, 400, "Missing required field 'title'"),
        case("empty title", r#"{"id": "1", "title": "", "year": 2000}"#, 400, "Field 'title' must not be empty"),
        case("title is an object", r#"{"id": "1", "title": {}, "year": 2000}"#, 400, "Field 'title' must be a string"),
        case("title too long", &with("x", &long_title), 400, "Field 'title' must be at most 512 characters"),
        // year
        case("missing year", r#"{"id": "1", "title": "T"}"#, 400, "Missing required field 'year'"),
        case("null year", r#"{"id": "1", "title": "T", "year": null}"#, 400, "Missing required field 'year'"),
        case("year not numeric", r#"{"id": "1", "title": "T", "year": "abc"}"#, 400, year_nan),
        case("year empty string", r#"{"id": "1", "title": "T", "year": ""}"#, 400, year_nan),
        case("year with spaces", r#"{"id": "1", "title": "T", "year": " 2023"}"#, 400, year_nan),
        case("year fraction", r#"{"id": "1", "title": "T", "year": 2023.5}"#, 400, year_nan),
        case("year float syntax", r#"{"id": "1", "title": "T", "year": 2023.0}"#, 400, year_nan),
        case("year exponent", r#"{"id": "1", "title": "T", "year": 2e3}"#, 400, year_nan),
        case("year fraction string", r#"{"id": "1", "title": "T", "year": "2023.5"}"#, 400, year_nan),
        case("year boolean", r#"{"id": "1", "title": "T", "year": true}"#, 400, year_nan),
        case("year array", r#"{"id": "1", "title": "T", "year": [2023]}"#, 400, year_nan),
        case("year too early", r#"{"id": "1", "title": "T", "year": 1887}"#, 400, year_range),
        case("year too late", r#"{"id": "1", "title": "T", "year": 2101}"#, 400, year_range),
        case("year too late (string)", r#"{"id": "1", "title": "T", "year": "20230"}"#, 400, year_range),
        case("year negative", r#"{"id": "1", "title": "T", "year": -5}"#, 400, year_range),
        case("year negative string", r#"{"id": "1", "title": "T", "year": "-2000"}"#, 400, year_range),
        case("year huge number", r#"{"id": "1", "title": "T", "year": 18446744073709551615}"#, 400, year_range),
        case("year huge string", r#"{"id": "1", "title": "T", "year": "99999999999999999999999"}"#, 400, year_range),
        // size and encoding
        case("body one byte over limit", &over_limit, 413, "Request body must be at most 16384 bytes"),
        case("huge body", &"x".repeat(1 << 20), 413, "Request body must be at most 16384 bytes"),
        Case {
            b64: true,
            ..case(
                "base64 body over limit",
                &b64(over_limit.as_bytes()),
                413,
                "Request body must be at most 16384 bytes",
            )
        },
        Case { b64: true, ..case("base64 body at limit", &b64(at_limit.as_bytes()), 200, ok) },
        Case { b64: true, ..case("invalid base64", "not base64!", 400, "Request body is not valid base64") },
        Case {
            b64: true,
            ..case("base64 of non-UTF-8", &b64(&[0xff, 0xfe, 0x00]), 400, "Request body is not valid UTF-8")
        },
        Case { b64: true, ..case("base64 of empty body", "", 400, "Request body is required") },
    ];
    for method in ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        v.push(Case { method, ..case("other method on /", VALID, 405, "Method not allowed; use POST") });
    }
    v
}

fn matches(expected: &str, got: &str) -> bool {
    match expected.strip_suffix('*') {
        Some(prefix) => got.starts_with(prefix),
        None => got == expected,
    }
}

#[tokio::test]
async fn behaviour_table() {
    let mut failures = Vec::new();
    for c in cases() {
        let store = FakeStore::default();
        let ev = event_from(ROOT_EVENT, c.method, c.body.as_deref(), c.b64);
        let resp = handle(&store, TABLE, ev).await;
        let (status, message) = unpack(&resp);
        if status != c.status || !matches(c.message, &message) {
            failures.push(format!("{}: expected {} {:?}, got {status} {message:?}", c.name, c.status, c.message));
        }
        // Only successful requests reach the store.
        let calls = store.calls.load(Ordering::SeqCst);
        if (status == 200) != (calls == 1) {
            failures.push(format!("{}: status {status} but {calls} store calls", c.name));
        }
        if status == 405 && resp.headers.get("allow").map(|v| v.to_str().unwrap()) != Some("POST") {
            failures.push(format!("{}: 405 without `Allow: POST`", c.name));
        }
        if status != 405 && resp.headers.contains_key("allow") {
            failures.push(format!("{}: unexpected Allow header", c.name));
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn writes_the_issue_example_item() {
    let store = FakeStore::default();
    let resp = handle(&store, TABLE, root("POST", Some(VALID))).await;
    assert_eq!(unpack(&resp), (200, "Successfully inserted data!".to_owned()));
    let items = store.items.lock().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items["12"], Movie { id: "12".into(), title: "Test Movie".into(), year: 2023 });
}

#[tokio::test]
async fn the_fixture_body_as_sent_is_accepted() {
    // rest-root-post.json carries the issue's example body itself.
    let store = FakeStore::default();
    let ev = LambdaEvent::new(serde_json::from_str(ROOT_EVENT).unwrap(), context());
    assert_eq!(unpack(&handle(&store, TABLE, ev).await).0, 200);
}

#[tokio::test]
async fn same_id_overwrites() {
    let store = FakeStore::default();
    handle(&store, TABLE, root("POST", Some(VALID))).await;
    let again = r#"{"id": "12", "title": "Test Movie (Director's Cut)", "year": 2024}"#;
    assert_eq!(unpack(&handle(&store, TABLE, root("POST", Some(again))).await).0, 200);
    let items = store.items.lock().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items["12"].title, "Test Movie (Director's Cut)");
    assert_eq!(items["12"].year, 2024);
}

#[tokio::test]
async fn other_paths_are_404_for_any_method() {
    for method in ["POST", "GET", "DELETE"] {
        let store = FakeStore::default();
        let resp = handle(&store, TABLE, event_from(PROXY_EVENT, method, Some(VALID), false)).await;
        assert_eq!(unpack(&resp), (404, "Not found".to_owned()), "{method} /hello/world");
        assert!(!resp.headers.contains_key("allow"));
        assert_eq!(store.calls.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn routing_uses_the_resource_then_the_path() {
    let mut req: ApiGatewayProxyRequest = serde_json::from_str(ROOT_EVENT).unwrap();
    assert_eq!(route(&req), Route::Root);
    // A custom domain with a base path mapping puts the base path into `path`; `resource` is still `/`.
    req.path = Some("/api/".into());
    assert_eq!(route(&req), Route::Root);
    req.resource = Some("/{proxy+}".into());
    assert_eq!(route(&req), Route::NotFound);
    // Hand-made events without a resource fall back to the path.
    req.resource = None;
    req.request_context.resource_path = None;
    req.path = Some("/".into());
    assert_eq!(route(&req), Route::Root);
    req.path = Some("/movies".into());
    assert_eq!(route(&req), Route::NotFound);
}

#[tokio::test]
async fn store_failures_map_to_503_or_500_with_a_generic_message() {
    let retry = "Service temporarily unavailable, please retry";
    let table = [
        (StoreErrorKind::Throttled, "ProvisionedThroughputExceededException", 503, retry),
        (StoreErrorKind::Throttled, "ThrottlingException", 503, retry),
        (StoreErrorKind::Throttled, "RequestLimitExceeded", 503, retry),
        (StoreErrorKind::Timeout, "-", 503, retry),
        (StoreErrorKind::Other, "ResourceNotFoundException", 500, "Internal server error"),
        (StoreErrorKind::Other, "AccessDeniedException", 500, "Internal server error"),
    ];
    for (kind, code, status, message) in table {
        let store = FakeStore::failing(kind, code);
        let (got_status, got_message) = unpack(&handle(&store, TABLE, root("POST", Some(VALID))).await);
        assert_eq!((got_status, got_message.as_str()), (status, message), "{code}");
        assert!(!got_message.contains(code), "details stay out of the response");
    }
}

#[test]
fn error_codes_are_classified() {
    use crate::store::classify_code;
    assert_eq!(classify_code(Some("ProvisionedThroughputExceededException")), StoreErrorKind::Throttled);
    assert_eq!(classify_code(Some("ThrottlingException")), StoreErrorKind::Throttled);
    assert_eq!(classify_code(Some("RequestLimitExceeded")), StoreErrorKind::Throttled);
    assert_eq!(classify_code(Some("ResourceNotFoundException")), StoreErrorKind::Other);
    assert_eq!(classify_code(Some("ValidationException")), StoreErrorKind::Other);
    assert_eq!(classify_code(None), StoreErrorKind::Other);
}

#[tokio::test]
async fn a_slow_store_is_cut_off_before_the_lambda_deadline() {
    let store = FakeStore::default();
    *store.delay.lock().unwrap() = Some(Duration::from_secs(30));
    let mut ev = root("POST", Some(VALID));
    let now_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    ev.context.deadline = now_ms + 800; // budget: 800 ms - 500 ms margin
    let started = std::time::Instant::now();
    let (status, message) = unpack(&handle(&store, TABLE, ev).await);
    assert_eq!((status, message.as_str()), (503, "Service temporarily unavailable, please retry"));
    assert!(started.elapsed() < Duration::from_secs(5), "gave up at the deadline, not after the store");
}

#[tokio::test]
async fn a_deadline_that_is_not_in_the_future_is_ignored() {
    // `cargo lambda watch` sends `Lambda-Runtime-Deadline-Ms: 600000` (relative, not epoch ms).
    let store = FakeStore::default();
    *store.delay.lock().unwrap() = Some(Duration::from_millis(300));
    let mut ev = root("POST", Some(VALID));
    ev.context.deadline = 600_000;
    assert_eq!(unpack(&handle(&store, TABLE, ev).await).0, 200);
}

#[test]
fn parse_movie_returns_the_item() {
    assert_eq!(
        parse_movie(Some(r#"{"id": "7", "title": "Se7en", "year": "1995"}"#), false),
        Ok(Movie { id: "7".into(), title: "Se7en".into(), year: 1995 })
    );
    let leading_zero = parse_movie(Some(r#"{"id": "7", "title": "T", "year": "01995"}"#), false).unwrap();
    assert_eq!(leading_zero.year, 1995, "stored as the canonical number");
    let rej = parse_movie(Some(r#"{"id": "", "title": "T", "year": 2000}"#), false).unwrap_err();
    assert_eq!((rej.status, rej.reason, rej.field), (400, "empty_field", Some("id")));
}

#[test]
fn unknown_field_names_are_cut_in_the_message() {
    let body = format!(r#"{{"{}": 1}}"#, "k".repeat(10_000));
    let rej = parse_movie(Some(&body), false).unwrap_err();
    assert_eq!(rej.reason, "unknown_field");
    assert!(rej.message.len() < 200, "{}", rej.message);
}

#[test]
fn log_levels_parse() {
    use crate::logging::parse_level;
    assert_eq!(parse_level("DEBUG"), LevelFilter::DEBUG);
    assert_eq!(parse_level("warn"), LevelFilter::WARN);
    assert_eq!(parse_level("FATAL"), LevelFilter::ERROR);
    assert_eq!(parse_level(""), LevelFilter::INFO);
    assert_eq!(parse_level("handler=debug"), LevelFilter::INFO);
}

// ---------------------------------------------------------------------------------------------
// logs

thread_local! {
    /// Where this test thread's log lines go (none: dropped).
    static CAPTURE: std::cell::RefCell<Option<Capture>> = const { std::cell::RefCell::new(None) };
}

/// Writes to the current thread's [`CAPTURE`].
struct Routed;

impl io::Write for Routed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(cap) = c.borrow_mut().as_mut() {
                let _ = io::Write::write_all(cap, buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

/// Send this thread's log lines to `cap`, through the real subscriber (`logging::subscriber`).
/// It is installed once as the GLOBAL default, routed per thread: with per-test scoped
/// subscribers, tracing's per-call-site "is anyone listening" cache raced between parallel
/// tests and dropped events (tokio-rs/tracing#2874).
fn capture_logs(cap: &Capture) -> CaptureGuard {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        tracing::subscriber::set_global_default(logging::subscriber(|| Routed, LevelFilter::TRACE))
            .expect("no other global subscriber in the unit tests");
    });
    CAPTURE.with(|c| *c.borrow_mut() = Some(cap.clone()));
    CaptureGuard
}

const LOG_FIELDS: [&str; 7] =
    ["event", "request_id", "lambda_request_id", "xray_trace_id", "source_ip", "user_agent", "table"];

#[tokio::test]
async fn every_log_line_is_json_with_the_request_fields() {
    let cap = Capture::default();
    let _guard = capture_logs(&cap);

    handle(&FakeStore::default(), TABLE, root("POST", Some(VALID))).await;
    handle(&FakeStore::default(), TABLE, root("POST", Some("{"))).await;
    handle(&FakeStore::default(), TABLE, root("GET", None)).await;
    handle(&FakeStore::failing(StoreErrorKind::Throttled, "ThrottlingException"), TABLE, root("POST", Some(VALID)))
        .await;

    let lines = cap.lines();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap_or("<none>")).collect();
    assert_eq!(
        events,
        [
            "request_received",
            "item_written",
            "request_received",
            "request_rejected",
            "request_received",
            "request_rejected",
            "request_received",
            "dynamodb_error"
        ]
    );
    for line in &lines {
        for field in LOG_FIELDS {
            assert!(line.get(field).and_then(Value::as_str).is_some(), "`{field}` missing in {line}");
        }
        assert_eq!(line["request_id"], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
        assert_eq!(line["lambda_request_id"], "0b9bd1f5-lambda-request");
        assert_eq!(line["xray_trace_id"], "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
        assert_eq!(line["source_ip"], "203.0.113.7");
        assert_eq!(line["user_agent"], "curl/8.5.0");
        assert_eq!(line["table"], TABLE);
        assert!(line.get("level").is_some() && line.get("timestamp").is_some());
    }
    assert_eq!(lines[0]["http_method"], "POST");
    assert_eq!(lines[0]["path"], "/");
    assert_eq!(lines[1]["status"], 200);
    assert_eq!(lines[3]["reason"], "malformed_json");
    assert_eq!(lines[3]["status"], 400);
    assert_eq!(lines[5]["reason"], "method_not_allowed");
    assert_eq!(lines[7]["status"], 503);
    assert_eq!(lines[7]["error_code"], "ThrottlingException");
    assert_eq!(lines[7]["error_kind"], "throttled");
    assert_eq!(lines[7]["level"], "ERROR");
    // Plain JSON lines: no prefix before the `{`.
    assert!(cap.text().lines().all(|l| l.starts_with('{') && l.ends_with('}')));
}

#[tokio::test]
async fn logs_never_contain_the_body_or_the_api_key() {
    const MARK: &str = "SECRET-BODY-MARKER-93c1";
    let cap = Capture::default();
    let _guard = capture_logs(&cap);

    let mut bodies: Vec<(String, bool)> = cases().into_iter().filter_map(|c| c.body.map(|b| (b, c.b64))).collect();
    bodies.extend([
        (format!(r#"{{"id": "{MARK}", "title": "{MARK}", "year": 2000}}"#), false),
        (format!(r#"{{"id": "1", "title": "{MARK}", "year": 2000, "{MARK}": 1}}"#), false),
        (format!(r#"{{"id": "1", "title": "{MARK}", "year": "{MARK}"}}"#), false),
        (format!(r#"{{"id": "1", "title": "{MARK}""#), false),
        (b64(format!(r#"{{"id": "1", "title": "{MARK}", "year": 2000}}"#).as_bytes()), true),
    ]);
    let failing = FakeStore::failing(StoreErrorKind::Other, "ValidationException");
    for (body, is_b64) in &bodies {
        handle(&FakeStore::default(), TABLE, event_from(ROOT_EVENT, "POST", Some(body), *is_b64)).await;
        handle(&failing, TABLE, event_from(ROOT_EVENT, "POST", Some(body), *is_b64)).await;
    }
    let log = cap.text();
    assert!(log.lines().count() >= bodies.len() * 4);
    assert!(!log.contains(API_KEY), "API key leaked into the log");
    assert!(!log.contains("x-api-key"), "headers leaked into the log");
    assert!(!log.contains(MARK), "request body content leaked into the log");
    assert!(!log.contains("Test Movie"), "request body content leaked into the log");
    for (body, _) in &bodies {
        if body.len() > 12 {
            assert!(!log.contains(body.as_str()), "body leaked into the log: {body}");
        }
    }
}

#[test]
fn cut_keeps_char_boundaries() {
    assert_eq!(cut("abc", 5), "abc");
    assert_eq!(cut("abcdef", 3), "abc…");
    assert_eq!(cut("ééé", 2), "éé…");
}

#[test]
fn error_chain_joins_sources() {
    #[derive(Debug)]
    struct Outer(io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("dispatch failure")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let e = Outer(io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused"));
    assert_eq!(store::error_chain(&e), "dispatch failure: connection refused");
}

// ---------------------------------------------------------------------------------------------
// raw events: what `main` runs (`handle_raw`)

/// The root fixture as a raw event, changed by `mutate`.
fn raw_event(mutate: impl FnOnce(&mut Value)) -> LambdaEvent<RawEvent> {
    let mut v: Value = serde_json::from_str(ROOT_EVENT).unwrap();
    mutate(&mut v);
    LambdaEvent::new(serde_json::value::to_raw_value(&v).unwrap(), context())
}

/// Adds a header to both `headers` and `multiValueHeaders`.
fn with_header(v: &mut Value, name: &str, value: Value) {
    v["headers"][name] = value.clone();
    v["multiValueHeaders"][name] = Value::Array(vec![value]);
}

/// Header entries the `http` crate refuses: they used to fail the whole event in the runtime
/// (an invocation error, i.e. a 502 from API Gateway, and the value in the runtime's error log).
fn invalid_headers() -> Vec<(&'static str, Value)> {
    vec![
        ("X-Control", Value::from("a\u{1}b")),
        ("X-Delete", Value::from("a\u{7f}b")),
        ("Bad Name", Value::from("x")),
        ("x-a@b", Value::from("x")),
        ("X-Number", Value::from(5)),
        ("x-api-key", Value::from(format!("{API_KEY}\u{0}"))),
    ]
}

#[tokio::test]
async fn raw_fixture_event_is_handled_like_the_typed_one() {
    let store = FakeStore::default();
    let resp = handle_raw(&store, TABLE, raw_event(|_| {})).await.expect("an answer");
    assert_eq!(unpack(&resp), (200, SUCCESS_MESSAGE.to_owned()));
    assert_eq!(store.items.lock().unwrap()["12"], Movie { id: "12".into(), title: "Test Movie".into(), year: 2023 });
    let d = decode_event(raw_event(|_| {}).payload.get(), &context(), TABLE).unwrap();
    assert_eq!(d.dropped_headers, 0);
    // Non-ASCII header values are valid HTTP (obs-text) and decode as they are.
    let utf8 = raw_event(|v| with_header(v, "X-Title", Value::from("Amélie ☕")));
    assert_eq!(decode_event(utf8.payload.get(), &context(), TABLE).unwrap().dropped_headers, 0);
}

#[tokio::test]
async fn invalid_headers_are_dropped_instead_of_failing_the_invocation() {
    for (name, value) in invalid_headers() {
        let ev = raw_event(|v| with_header(v, name, value.clone()));
        // The typed decoder alone refuses the event: this is what the runtime used to do.
        assert!(serde_json::from_str::<ApiGatewayProxyRequest>(ev.payload.get()).is_err(), "{name}");
        let d = decode_event(ev.payload.get(), &context(), TABLE).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(d.dropped_headers, 2, "{name}: dropped from headers and multiValueHeaders");
        assert!(!d.req.headers.contains_key("x-control") && d.req.headers.contains_key("user-agent"));
        let store = FakeStore::default();
        let resp = handle_raw(&store, TABLE, ev).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(unpack(&resp), (200, SUCCESS_MESSAGE.to_owned()), "{name}");
        assert_eq!(store.calls.load(Ordering::SeqCst), 1, "{name}");
    }
    // A bad request stays a 4xx with a bad header too.
    let ev = raw_event(|v| {
        with_header(v, "X-Control", Value::from("\u{1}"));
        v["body"] = Value::from("{");
    });
    assert_eq!(unpack(&handle_raw(&FakeStore::default(), TABLE, ev).await.unwrap()).0, 400);
}

/// A change made to an event.
type Mutation = Box<dyn Fn(&mut Value)>;

#[tokio::test]
async fn an_undecodable_api_gateway_event_is_a_400() {
    let cases: Vec<(&str, Mutation)> = vec![
        ("invalid method", Box::new(|v: &mut Value| v["httpMethod"] = Value::from("G E T"))),
        ("headers not an object", Box::new(|v: &mut Value| v["headers"] = Value::from("x"))),
        ("body not a string", Box::new(|v: &mut Value| v["body"] = serde_json::json!({"id": "1"}))),
        ("isBase64Encoded not a bool", Box::new(|v: &mut Value| v["isBase64Encoded"] = Value::from("yes"))),
    ];
    for (name, mutate) in cases {
        let store = FakeStore::default();
        let resp = handle_raw(&store, TABLE, raw_event(mutate)).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(unpack(&resp), (400, "Request is not a valid API Gateway proxy request".to_owned()), "{name}");
        assert_eq!(store.calls.load(Ordering::SeqCst), 0, "{name}");
    }
}

#[tokio::test]
async fn events_that_are_not_from_api_gateway_are_invocation_errors() {
    for payload in
        ["{}", r#""SECRET-PAYLOAD""#, "[1, 2]", "null", r#"{"httpMethod": "POST", "body": "SECRET-PAYLOAD"}"#]
    {
        let ev = LambdaEvent::new(serde_json::value::RawValue::from_string(payload.to_owned()).unwrap(), context());
        let store = FakeStore::default();
        match handle_raw(&store, TABLE, ev).await {
            Err(e @ EventError::NotApiGateway(_)) => {
                let msg = e.to_string();
                assert!(msg.starts_with("the event is not an API Gateway REST proxy"), "{payload}: {msg}");
                assert!(!msg.contains("SECRET"), "{payload}: the error echoes the event: {msg}");
                let d = lambda_runtime::Diagnostic::from(e);
                assert_eq!(d.error_type, "InvalidEvent");
            }
            other => panic!("{payload}: expected NotApiGateway, got {other:?}"),
        }
        assert_eq!(store.calls.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test]
async fn raw_event_logs_carry_the_request_fields_and_no_header_values() {
    let cap = Capture::default();
    let _guard = tracing::subscriber::set_default(logging::subscriber(cap.clone(), LevelFilter::TRACE));
    for (name, value) in invalid_headers() {
        handle_raw(&FakeStore::default(), TABLE, raw_event(|v| with_header(v, name, value.clone()))).await.unwrap();
    }
    handle_raw(&FakeStore::default(), TABLE, raw_event(|v| v["httpMethod"] = Value::from("G E T"))).await.unwrap();
    let lines = cap.lines();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap_or("<none>")).collect();
    let per_header = ["headers_dropped", "request_received", "item_written"];
    assert_eq!(events.len(), per_header.len() * invalid_headers().len() + 2, "{events:?}");
    assert!(events.chunks(3).take(invalid_headers().len()).all(|c| c == per_header), "{events:?}");
    assert_eq!(events[events.len() - 2..], ["request_received", "request_rejected"]);
    for line in &lines {
        for field in LOG_FIELDS {
            assert!(line.get(field).and_then(Value::as_str).is_some(), "`{field}` missing in {line}");
        }
        assert_eq!(line["request_id"], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
        assert_eq!(line["lambda_request_id"], "0b9bd1f5-lambda-request");
        assert_eq!(line["source_ip"], "203.0.113.7");
        assert_eq!(line["user_agent"], "curl/8.5.0");
    }
    assert_eq!(lines[0]["dropped_headers"], 2);
    assert_eq!(lines.last().unwrap()["reason"], "invalid_event");
    let log = cap.text();
    assert!(!log.contains(API_KEY), "API key leaked into the log");
    for bad in ["a\\u0001b", "G E T", "Bad Name", "x-a@b", "Test Movie"] {
        assert!(!log.contains(bad), "{bad:?} leaked into the log");
    }
}

// ---------------------------------------------------------------------------------------------
// SDK configuration from the environment

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
}

#[test]
fn sdk_config_comes_from_lambdas_environment_variables() {
    let c = store::sdk_config_from(env_of(&[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "us-east-2"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2"),
        ("AWS_MAX_ATTEMPTS", "5"),
    ]));
    assert_eq!(c.region().map(|r| r.as_ref()), Some("eu-west-1"));
    assert_eq!(c.endpoint_url(), Some("http://127.0.0.1:2"), "the service-specific endpoint wins");
    assert_eq!(c.retry_config().map(|r| r.max_attempts()), Some(5));
    assert!(c.credentials_provider().is_some() && c.http_client().is_some() && c.behavior_version().is_some());
    assert_eq!(c.timeout_config().and_then(|t| t.connect_timeout()), Some(Duration::from_millis(3100)));

    let c = store::sdk_config_from(env_of(&[
        ("AWS_DEFAULT_REGION", "us-east-2"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ("AWS_MAX_ATTEMPTS", "many"),
    ]));
    assert_eq!(c.region().map(|r| r.as_ref()), Some("us-east-2"));
    assert_eq!(c.endpoint_url(), Some("http://127.0.0.1:1"));
    assert_eq!(c.retry_config().map(|r| r.max_attempts()), Some(3), "unparsable: the default");

    let c = store::sdk_config_from(env_of(&[("AWS_REGION", " "), ("AWS_ENDPOINT_URL", ""), ("AWS_MAX_ATTEMPTS", "0")]));
    assert_eq!(c.region(), None);
    assert_eq!(c.endpoint_url(), None, "empty values are unset");
    assert_eq!(c.retry_config().map(|r| r.max_attempts()), Some(3));
}
