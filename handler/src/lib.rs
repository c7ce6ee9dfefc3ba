//! The movies API Lambda function: API Gateway REST proxy events (payload v1) → DynamoDB `PutItem`.
//!
//! Everything that decides *what* to answer lives here and is pure apart from the [`MovieStore`]
//! call, so it can be unit tested without AWS:
//!
//! * [`route`] — `ANY /` is the only route; everything under `/{proxy+}` is a 404.
//! * [`parse_movie`] — body size, base64, JSON and field validation → [`Movie`] or [`Rejection`].
//! * [`handle`] — the whole request: logs, validation, the store call, the response.
//! * [`handle_raw`] / [`decode_event`] — what `main` runs: the raw event decoded, with invalid
//!   header entries dropped instead of failing the invocation, then [`handle`].
//!
//! `store` holds the real DynamoDB implementation and `logging` the JSON log setup; `main.rs` only
//! wires them together. See `docs/handler.md` for the behaviour table and the log format.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine as _;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Map, Value};

pub mod logging;
pub mod store;
pub mod xray;

pub use store::DynamoStore;

/// Largest accepted request body, in bytes, after base64 decoding. Larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest accepted `id`, in characters (Unicode scalar values).
pub const MAX_ID_CHARS: usize = 128;
/// Longest accepted `title`, in characters (Unicode scalar values).
pub const MAX_TITLE_CHARS: usize = 512;
/// Earliest accepted `year` (the first motion pictures).
pub const MIN_YEAR: i64 = 1888;
/// Latest accepted `year`.
pub const MAX_YEAR: i64 = 2100;
/// The only fields a request body may contain; anything else is rejected with 400.
pub const ALLOWED_FIELDS: [&str; 3] = ["id", "title", "year"];
/// The answer to a successful `POST /`.
pub const SUCCESS_MESSAGE: &str = "Successfully inserted data!";

/// Longest user agent / path copied into a log line (characters); the rest is cut.
const MAX_LOGGED_CHARS: usize = 256;
/// Time kept back from the Lambda deadline so that a slow DynamoDB call still gets an answer.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// One validated movie, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movie {
    /// Partition key (`S`).
    pub id: String,
    /// `S`.
    pub title: String,
    /// Stored as `N`.
    pub year: i64,
}

/// Why a request was refused: the status and message the caller sees, plus a stable reason code
/// for the log (the log never gets the message itself, since that may echo request content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub message: String,
    /// Machine-readable reason, logged as `reason` (e.g. `malformed_json`).
    pub reason: &'static str,
    /// The body field the problem is about, if any; logged as `field`.
    pub field: Option<&'static str>,
}

impl Rejection {
    fn new(status: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), reason, field: None }
    }

    fn field(reason: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        Self { status: 400, message: message.into(), reason, field: Some(field) }
    }
}

/// DynamoDB error codes that mean "slow down" (answered with 503).
pub const THROTTLING_CODES: [&str; 3] =
    ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"];

/// What went wrong when writing the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// DynamoDB throttled us (after the SDK's own retries): answer 503.
    Throttled,
    /// No answer before the Lambda deadline or an SDK timeout: answer 503.
    Timeout,
    /// Anything else (missing table, access denied, network, ...): answer 500.
    Other,
}

/// A failed write. `code` and `detail` go to the log only, never to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub kind: StoreErrorKind,
    /// The AWS error code, e.g. `ProvisionedThroughputExceededException`.
    pub code: Option<String>,
    /// The error and its `source()` chain.
    pub detail: String,
}

impl StoreError {
    /// The HTTP status this failure maps to.
    pub fn status(&self) -> u16 {
        match self.kind {
            StoreErrorKind::Throttled | StoreErrorKind::Timeout => 503,
            StoreErrorKind::Other => 500,
        }
    }

    /// The generic message the caller sees.
    pub fn public_message(&self) -> &'static str {
        match self.kind {
            StoreErrorKind::Throttled | StoreErrorKind::Timeout => "Service temporarily unavailable, please retry",
            StoreErrorKind::Other => "Internal server error",
        }
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            StoreErrorKind::Throttled => "throttled",
            StoreErrorKind::Timeout => "timeout",
            StoreErrorKind::Other => "other",
        }
    }
}

/// The "put item" boundary. [`DynamoStore`] is the real one; tests use an in-memory fake.
pub trait MovieStore: Send + Sync {
    /// Writes (or overwrites) the item with `movie.id`.
    fn put_movie(&self, movie: &Movie) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `ANY /`
    Root,
    /// Anything else (`ANY /{proxy+}`)
    NotFound,
}

/// Picks the route. The API Gateway `resource` (the matched resource template: `/` or
/// `/{proxy+}`) is used first, because the raw `path` can carry a custom-domain base path; the
/// `path` is only a fallback for hand-made events without a resource.
pub fn route(req: &ApiGatewayProxyRequest) -> Route {
    let matched =
        req.resource.as_deref().or(req.request_context.resource_path.as_deref()).or(req.path.as_deref()).unwrap_or("/");
    if matched == "/" { Route::Root } else { Route::NotFound }
}

/// Decodes and validates a request body into a [`Movie`].
///
/// Checks, in this order: size (413), presence, base64, UTF-8, JSON syntax, object, unknown
/// fields, then `id`, `title`, `year`. The first problem found is reported.
pub fn parse_movie(body: Option<&str>, is_base64_encoded: bool) -> Result<Movie, Rejection> {
    let raw = body.unwrap_or("");
    let bytes: Vec<u8> = if is_base64_encoded {
        // Refuse before decoding if even the encoded form is too large.
        if raw.len() > MAX_BODY_BYTES.div_ceil(3) * 4 {
            return Err(too_large());
        }
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| Rejection::new(400, "invalid_base64", "Request body is not valid base64"))?
    } else {
        raw.as_bytes().to_vec()
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Rejection::new(400, "invalid_utf8", "Request body is not valid UTF-8"))?;
    if text.trim().is_empty() {
        return Err(Rejection::new(400, "empty_body", "Request body is required"));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Rejection::new(400, "malformed_json", format!("Request body is not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(Rejection::new(400, "not_an_object", "Request body must be a JSON object"));
    };
    if let Some(unknown) = obj.keys().find(|k| !ALLOWED_FIELDS.contains(&k.as_str())) {
        return Err(Rejection::new(
            400,
            "unknown_field",
            format!("Unknown field '{}'; allowed fields are id, title, year", cut(unknown, 64)),
        ));
    }
    let id = string_field(&obj, "id", MAX_ID_CHARS)?;
    let title = string_field(&obj, "title", MAX_TITLE_CHARS)?;
    let year = year_field(&obj)?;
    Ok(Movie { id, title, year })
}

fn too_large() -> Rejection {
    Rejection::new(413, "body_too_large", format!("Request body must be at most {MAX_BODY_BYTES} bytes"))
}

fn string_field(obj: &Map<String, Value>, name: &'static str, max_chars: usize) -> Result<String, Rejection> {
    match obj.get(name) {
        None | Some(Value::Null) => {
            Err(Rejection::field("missing_field", name, format!("Missing required field '{name}'")))
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(Rejection::field("empty_field", name, format!("Field '{name}' must not be empty")))
        }
        Some(Value::String(s)) if s.chars().count() > max_chars => Err(Rejection::field(
            "field_too_long",
            name,
            format!("Field '{name}' must be at most {max_chars} characters"),
        )),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Rejection::field("wrong_type", name, format!("Field '{name}' must be a string"))),
    }
}

fn year_field(obj: &Map<String, Value>) -> Result<i64, Rejection> {
    let not_whole = || {
        Rejection::field(
            "invalid_year",
            "year",
            "Field 'year' must be a whole number (a JSON number or a numeric string)",
        )
    };
    let year = match obj.get("year") {
        None | Some(Value::Null) => {
            return Err(Rejection::field("missing_field", "year", "Missing required field 'year'"));
        }
        Some(Value::Number(n)) => match n.as_i64() {
            Some(y) => y,
            // 2023.0 is a float in JSON terms; u64 above i64::MAX is out of range anyway.
            None if n.is_u64() => i64::MAX,
            None => return Err(not_whole()),
        },
        Some(Value::String(s)) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(not_whole());
            }
            // All digits: a whole number; one too long for i64 is simply out of range.
            s.parse::<i64>().unwrap_or(i64::MAX)
        }
        Some(_) => return Err(not_whole()),
    };
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return Err(Rejection::field(
            "year_out_of_range",
            "year",
            format!("Field 'year' must be between {MIN_YEAR} and {MAX_YEAR}"),
        ));
    }
    Ok(year)
}

/// A JSON response `{"message": ...}` with `Content-Type: application/json`.
pub fn json_response(status: u16, message: &str) -> ApiGatewayProxyResponse {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut resp = ApiGatewayProxyResponse::default();
    resp.status_code = i64::from(status);
    resp.headers = headers;
    resp.body = Some(Body::Text(serde_json::json!({ "message": message }).to_string()));
    resp.is_base64_encoded = false;
    resp
}

/// The fields every log line of one request carries.
#[derive(Debug, Clone)]
pub struct LogFields {
    /// API Gateway's `requestContext.requestId`.
    pub request_id: String,
    /// Lambda's request id (the `requestId` the Lambda platform logs in START/END/REPORT).
    pub lambda_request_id: String,
    /// The X-Ray trace header for this invocation (`Root=...;Parent=...;Sampled=...`).
    pub xray_trace_id: String,
    pub source_ip: String,
    pub user_agent: String,
    pub table: String,
}

impl LogFields {
    pub fn new(req: &ApiGatewayProxyRequest, ctx: &Context, table: &str) -> Self {
        let dash = || "-".to_owned();
        let user_agent = req
            .request_context
            .identity
            .user_agent
            .clone()
            .or_else(|| req.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned));
        Self {
            request_id: req.request_context.request_id.clone().unwrap_or_else(dash),
            lambda_request_id: if ctx.request_id.is_empty() { dash() } else { ctx.request_id.clone() },
            xray_trace_id: ctx.xray_trace_id.clone().unwrap_or_else(dash),
            source_ip: req.request_context.identity.source_ip.clone().unwrap_or_else(dash),
            user_agent: user_agent.map(|ua| cut(&ua, MAX_LOGGED_CHARS)).unwrap_or_else(dash),
            table: table.to_owned(),
        }
    }
}

impl LogFields {
    /// The same fields read from an event that did not decode (see [`decode_event`]).
    pub fn from_value(event: &Value, ctx: &Context, table: &str) -> Self {
        let text = |v: &Value| v.as_str().map(|s| cut(s, MAX_LOGGED_CHARS)).unwrap_or_else(|| "-".to_owned());
        let identity = &event["requestContext"]["identity"];
        let user_agent = identity["userAgent"]
            .as_str()
            .or_else(|| {
                event["headers"]
                    .as_object()
                    .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("user-agent")))
                    .and_then(|(_, v)| v.as_str())
            })
            .map_or_else(|| "-".to_owned(), |ua| cut(ua, MAX_LOGGED_CHARS));
        Self {
            request_id: text(&event["requestContext"]["requestId"]),
            lambda_request_id: if ctx.request_id.is_empty() { "-".to_owned() } else { ctx.request_id.clone() },
            xray_trace_id: ctx.xray_trace_id.clone().unwrap_or_else(|| "-".to_owned()),
            source_ip: text(&identity["sourceIp"]),
            user_agent,
            table: table.to_owned(),
        }
    }
}

/// Logs one event with the common request fields. Never pass the body, a header map or the
/// API key in here.
macro_rules! log_event {
    ($level:ident, $f:expr, $event:literal $(, $($rest:tt)+)?) => {
        tracing::$level!(
            event = $event,
            request_id = $f.request_id.as_str(),
            lambda_request_id = $f.lambda_request_id.as_str(),
            xray_trace_id = $f.xray_trace_id.as_str(),
            source_ip = $f.source_ip.as_str(),
            user_agent = $f.user_agent.as_str(),
            table = $f.table.as_str(),
            $($($rest)+)?
        )
    };
}

/// Handles one API Gateway event. Always answers (never returns an error to the runtime, which
/// API Gateway would turn into a bare 502).
pub async fn handle<S: MovieStore>(
    store: &S,
    table: &str,
    event: LambdaEvent<ApiGatewayProxyRequest>,
) -> ApiGatewayProxyResponse {
    let LambdaEvent { payload: req, context: ctx } = event;
    let f = LogFields::new(&req, &ctx, table);
    let path = req.path.as_deref().unwrap_or("-");
    log_event!(
        info,
        f,
        "request_received",
        http_method = req.http_method.as_str(),
        path = cut(path, MAX_LOGGED_CHARS).as_str(),
        body_bytes = req.body.as_ref().map_or(0, String::len),
        is_base64_encoded = req.is_base64_encoded,
        "request received"
    );

    let movie = match check(&req) {
        Ok(movie) => movie,
        Err(rej) => {
            log_event!(
                info,
                f,
                "request_rejected",
                status = rej.status,
                reason = rej.reason,
                field = rej.field.unwrap_or("-"),
                "request rejected"
            );
            let mut resp = json_response(rej.status, &rej.message);
            if rej.status == 405 {
                resp.headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            return resp;
        }
    };

    let started = std::time::Instant::now();
    let result = match time_left(&ctx) {
        Some(budget) => match tokio::time::timeout(budget, store.put_movie(&movie)).await {
            Ok(r) => r,
            Err(_) => Err(StoreError {
                kind: StoreErrorKind::Timeout,
                code: None,
                detail: format!("no answer from DynamoDB within {} ms (Lambda deadline)", budget.as_millis()),
            }),
        },
        None => store.put_movie(&movie).await,
    };
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

    match result {
        Ok(()) => {
            log_event!(info, f, "item_written", status = 200u16, duration_ms = elapsed_ms, "item written");
            json_response(200, SUCCESS_MESSAGE)
        }
        Err(err) => {
            let status = err.status();
            log_event!(
                error,
                f,
                "dynamodb_error",
                status = status,
                error_kind = err.kind_name(),
                error_code = err.code.as_deref().unwrap_or("-"),
                error = err.detail.as_str(),
                duration_ms = elapsed_ms,
                "DynamoDB PutItem failed"
            );
            json_response(status, err.public_message())
        }
    }
}

/// The event exactly as the Lambda runtime hands it over: kept as raw JSON so that an API
/// Gateway event the typed decoder refuses (e.g. a header value with a control character) can
/// still be answered instead of failing the invocation. See [`decode_event`].
pub type RawEvent = Box<serde_json::value::RawValue>;

/// An event turned into a request by [`decode_event`].
#[derive(Debug)]
pub struct Decoded {
    pub req: ApiGatewayProxyRequest,
    /// `headers` / `multiValueHeaders` entries removed because their name or value is not valid
    /// HTTP (the typed decoder refuses the whole event otherwise).
    pub dropped_headers: usize,
}

/// Why [`decode_event`] gave up.
#[derive(Debug)]
pub enum EventError {
    /// Shaped like an API Gateway event (`httpMethod` and `requestContext`) but still not
    /// decodable after dropping invalid headers: answered 400. `fields` are for the log.
    Invalid(Box<LogFields>),
    /// Not an API Gateway REST proxy event at all (a console test event, another trigger): an
    /// invocation error, as before. The message names no content of the event.
    NotApiGateway(String),
}

/// Decodes one event. The fast path is the typed decoder; only when it fails is the event parsed
/// into a [`Value`], invalid header entries dropped, and decoded again.
pub fn decode_event(raw: &str, ctx: &Context, table: &str) -> Result<Decoded, EventError> {
    let first_error = match serde_json::from_str::<ApiGatewayProxyRequest>(raw) {
        Ok(req) => return Ok(Decoded { req, dropped_headers: 0 }),
        Err(e) => e,
    };
    let not_api_gateway = || {
        EventError::NotApiGateway(format!(
            "the event is not an API Gateway REST proxy (payload v1) event ({:?} error at line {} column {})",
            first_error.classify(),
            first_error.line(),
            first_error.column()
        ))
    };
    let Ok(mut value) = serde_json::from_str::<Value>(raw) else {
        return Err(not_api_gateway());
    };
    if !(value["httpMethod"].is_string() && value["requestContext"].is_object()) {
        return Err(not_api_gateway());
    }
    let fields = LogFields::from_value(&value, ctx, table);
    let dropped_headers = drop_invalid_headers(&mut value);
    match serde_json::from_value::<ApiGatewayProxyRequest>(value) {
        Ok(req) => Ok(Decoded { req, dropped_headers }),
        Err(_) => Err(EventError::Invalid(Box::new(fields))),
    }
}

/// Removes the `headers` / `multiValueHeaders` entries that `http` refuses (a name that is not
/// an HTTP token, a value with control characters, a value that is not a string) and returns how
/// many entries went. The handler needs no header but `User-Agent` for the log.
fn drop_invalid_headers(event: &mut Value) -> usize {
    let valid_name = |k: &str| header::HeaderName::from_bytes(k.as_bytes()).is_ok();
    let valid_value = |v: &Value| v.as_str().is_some_and(|s| HeaderValue::from_str(s).is_ok());
    let mut dropped = 0;
    if let Some(map) = event.get_mut("headers").and_then(Value::as_object_mut) {
        let before = map.len();
        map.retain(|k, v| valid_name(k) && valid_value(v));
        dropped += before - map.len();
    }
    if let Some(map) = event.get_mut("multiValueHeaders").and_then(Value::as_object_mut) {
        let before = map.len();
        map.retain(|k, v| valid_name(k) && v.as_array().is_some_and(|vals| vals.iter().all(valid_value)));
        dropped += before - map.len();
    }
    dropped
}

/// [`handle`] for a [`RawEvent`]: what `main` runs. `Err` only for an event that is not an API
/// Gateway REST proxy event at all.
pub async fn handle_raw<S: MovieStore>(
    store: &S,
    table: &str,
    event: LambdaEvent<RawEvent>,
) -> Result<ApiGatewayProxyResponse, EventError> {
    let LambdaEvent { payload, context: ctx } = event;
    match decode_event(payload.get(), &ctx, table) {
        Ok(Decoded { req, dropped_headers }) => {
            if dropped_headers > 0 {
                let f = LogFields::new(&req, &ctx, table);
                log_event!(
                    warn,
                    f,
                    "headers_dropped",
                    dropped_headers = dropped_headers,
                    "invalid request headers dropped"
                );
            }
            Ok(handle(store, table, LambdaEvent::new(req, ctx)).await)
        }
        Err(EventError::Invalid(f)) => {
            log_event!(info, f, "request_received", decodable = false, "request received");
            let rej = Rejection::new(400, "invalid_event", "Request is not a valid API Gateway proxy request");
            log_event!(
                info,
                f,
                "request_rejected",
                status = rej.status,
                reason = rej.reason,
                field = "-",
                "request rejected"
            );
            Ok(json_response(rej.status, &rej.message))
        }
        Err(EventError::NotApiGateway(msg)) => {
            tracing::error!(
                event = "invalid_event",
                lambda_request_id = ctx.request_id.as_str(),
                table = table,
                error = msg.as_str(),
                "not an API Gateway event"
            );
            Err(EventError::NotApiGateway(msg))
        }
    }
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventError::Invalid(_) => f.write_str("the API Gateway event cannot be decoded"),
            EventError::NotApiGateway(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for EventError {}

impl From<EventError> for lambda_runtime::Diagnostic {
    fn from(e: EventError) -> Self {
        lambda_runtime::Diagnostic { error_type: "InvalidEvent".to_owned(), error_message: e.to_string() }
    }
}

/// Routing, method and body checks.
fn check(req: &ApiGatewayProxyRequest) -> Result<Movie, Rejection> {
    if route(req) == Route::NotFound {
        return Err(Rejection::new(404, "not_found", "Not found"));
    }
    if req.http_method != Method::POST {
        return Err(Rejection::new(405, "method_not_allowed", "Method not allowed; use POST"));
    }
    parse_movie(req.body.as_deref(), req.is_base64_encoded)
}

/// Time until the Lambda deadline minus a safety margin. `None` when there is no usable deadline:
/// none at all (tests, hand-made contexts) or one that is not in the future, e.g. the
/// `cargo lambda watch` emulator sends a relative `600000` instead of epoch milliseconds.
fn time_left(ctx: &Context) -> Option<Duration> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis();
    let deadline_ms = u128::from(ctx.deadline);
    if deadline_ms <= now_ms {
        return None;
    }
    let left = Duration::from_millis(u64::try_from(deadline_ms - now_ms).ok()?);
    Some(left.saturating_sub(DEADLINE_MARGIN).max(Duration::from_millis(100)))
}

/// At most `max` characters of `s`, with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod handler_tests;
