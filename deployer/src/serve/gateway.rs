//! The local API Gateway: the stage's URL shape, API keys, usage plans, the Lambda proxy
//! integration (REST, payload 1.0) and the access log, as API Gateway documents them.
//!
//! For each request, in API Gateway's order:
//! 1. the stage: `/{stage}` and below; anything else is 403 `{"message":"Forbidden"}` (what the
//!    execute-api endpoint answers for a stage that does not exist);
//! 2. the route: `ANY /` and `ANY /{proxy+}`;
//! 3. a declared `Content-Length` over 10 MB (API Gateway's payload limit) → 413;
//! 4. the API key in `x-api-key`: missing, unknown, disabled, or not in a usage plan of this stage
//!    → 403 `{"message":"Forbidden"}`;
//! 5. the key's usage plan: throttle → 429 `{"message":"Too Many Requests"}`, quota → 429
//!    `{"message":"Limit Exceeded"}` ([`super::limits`]);
//! 6. the body, read only now: a chunked body is cut off with 413 once it passes 10 MB; a
//!    client gone mid-body gets nothing run (400 in the access log);
//! 7. the Lambda proxy event to the function ([`proxy_event`]): when as many events already wait
//!    for an environment as the pool allows, 503 `{"message":"Service Unavailable"}` with
//!    `Retry-After: 1`; its answer mapped back ([`map_response`]): a function error, a crash, a
//!    timeout of the function or a malformed answer → 502 `{"message": "Internal server
//!    error"}`; no answer within the integration timeout (29 s by default) → 504
//!    `{"message": "Endpoint request timed out"}`, and an event still waiting is withdrawn (it
//!    never runs), as is one whose client went away.
//!
//! Steps 1–5 read no body: an unauthenticated or refused request costs its head, whatever it
//! declares. hyper then reads at most one buffer of the unread body and closes the connection.
//!
//! Every response carries `x-amzn-RequestId`, `x-amz-apigw-id` and `X-Amzn-Trace-Id`, and gets an
//! access log line in the stage's format.
//!
//! Known differences from AWS: header names reach the function in lower case (the HTTP/1 parser
//! keeps no case; AWS keeps the client's); a body that is not UTF-8 is passed base64-encoded
//! (`isBase64Encoded: true`) where AWS, without binary media types, would mangle it; a response
//! with `isBase64Encoded: true` is decoded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use super::access_log::{AccessLog, render};
use super::limits::{Limiter, Verdict};
use super::rules::{Key, Rules};
use super::runtime::{Outcome, Pool, Ran};
use super::stats::{Answered, Stats};
use super::xray::{self, InvokeIds, Traces};
use crate::events::{Event, ServeEvent};
use crate::ui::Printer;

/// API Gateway's maximum payload (REST APIs: 10 MB).
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// An answer API Gateway itself gives (a "gateway response"), with its documented status, body
/// and response type (https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayError {
    /// A stage that does not exist.
    UnknownStage,
    /// A resource the API does not have.
    MissingAuthenticationToken,
    InvalidApiKey,
    RequestTooLarge,
    Throttled,
    QuotaExceeded,
    /// A function error, crash or timeout, or a malformed proxy response.
    Integration,
    IntegrationTimeout,
    /// As many events wait for an environment as the pool allows (where Lambda would throttle).
    Saturated,
    /// The client went away before its body ended: nothing runs; only the access log sees it.
    IncompleteBody,
}

impl GatewayError {
    pub fn status(self) -> StatusCode {
        match self {
            GatewayError::UnknownStage | GatewayError::MissingAuthenticationToken | GatewayError::InvalidApiKey => {
                StatusCode::FORBIDDEN
            }
            GatewayError::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::Throttled | GatewayError::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Integration => StatusCode::BAD_GATEWAY,
            GatewayError::IntegrationTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Saturated => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::IncompleteBody => StatusCode::BAD_REQUEST,
        }
    }

    /// `Retry-After` (seconds), for the answers a client should retry.
    pub fn retry_after(self) -> Option<&'static str> {
        match self {
            GatewayError::Saturated => Some("1"),
            _ => None,
        }
    }

    /// The body, byte for byte as API Gateway sends it.
    pub fn body(self) -> &'static str {
        match self {
            GatewayError::UnknownStage | GatewayError::InvalidApiKey => r#"{"message":"Forbidden"}"#,
            GatewayError::MissingAuthenticationToken => r#"{"message":"Missing Authentication Token"}"#,
            GatewayError::RequestTooLarge => r#"{"message":"Request Too Long"}"#,
            GatewayError::Throttled => r#"{"message":"Too Many Requests"}"#,
            GatewayError::QuotaExceeded => r#"{"message":"Limit Exceeded"}"#,
            GatewayError::Integration => r#"{"message": "Internal server error"}"#,
            GatewayError::IntegrationTimeout => r#"{"message": "Endpoint request timed out"}"#,
            GatewayError::Saturated => r#"{"message":"Service Unavailable"}"#,
            GatewayError::IncompleteBody => r#"{"message":"Bad Request"}"#,
        }
    }

    /// `$context.error.responseType`.
    pub fn response_type(self) -> &'static str {
        match self {
            GatewayError::UnknownStage => "DEFAULT_4XX",
            GatewayError::MissingAuthenticationToken => "MISSING_AUTHENTICATION_TOKEN",
            GatewayError::InvalidApiKey => "INVALID_API_KEY",
            GatewayError::RequestTooLarge => "REQUEST_TOO_LARGE",
            GatewayError::Throttled => "THROTTLED",
            GatewayError::QuotaExceeded => "QUOTA_EXCEEDED",
            GatewayError::Integration => "DEFAULT_5XX",
            GatewayError::IntegrationTimeout => "INTEGRATION_TIMEOUT",
            GatewayError::Saturated => "DEFAULT_5XX",
            GatewayError::IncompleteBody => "DEFAULT_4XX",
        }
    }

    /// `$context.error.message`: the body's message.
    fn message(self) -> &'static str {
        match self {
            GatewayError::UnknownStage | GatewayError::InvalidApiKey => "Forbidden",
            GatewayError::MissingAuthenticationToken => "Missing Authentication Token",
            GatewayError::RequestTooLarge => "Request Too Long",
            GatewayError::Throttled => "Too Many Requests",
            GatewayError::QuotaExceeded => "Limit Exceeded",
            GatewayError::Integration => "Internal server error",
            GatewayError::IntegrationTimeout => "Endpoint request timed out",
            GatewayError::Saturated => "Service Unavailable",
            GatewayError::IncompleteBody => "Bad Request",
        }
    }
}

/// The route a path matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `ANY /`
    Root,
    /// `ANY /{proxy+}` with the `proxy` path parameter (decoded).
    Proxy(String),
}

impl Route {
    pub fn resource(&self) -> &'static str {
        match self {
            Route::Root => "/",
            Route::Proxy(_) => "/{proxy+}",
        }
    }
}

/// The path below the stage (`/` for the stage itself), or None when `path` is not under
/// `/{stage}`. Pure.
pub fn strip_stage<'a>(path: &'a str, stage: &str) -> Option<&'a str> {
    let rest = path.strip_prefix('/')?.strip_prefix(stage)?;
    match rest {
        "" => Some("/"),
        r if r.starts_with('/') => Some(r),
        _ => None,
    }
}

/// The route of a path below the stage. Pure.
pub fn route(path: &str) -> Route {
    match path.trim_start_matches('/') {
        "" => Route::Root,
        proxy => Route::Proxy(percent_decode(proxy)),
    }
}

/// `%XX` sequences decoded (invalid ones kept as they are); `+` stays `+`.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string's parameters in order, decoded. Pure.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// What is known about one request, for its event and its access log line.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub request_id: String,
    pub extended_request_id: String,
    pub method: String,
    /// The whole path, stage included (`requestContext.path`).
    pub path: String,
    pub protocol: String,
    pub source_ip: String,
    pub user_agent: Option<String>,
    pub domain_name: String,
    pub epoch_ms: i64,
    /// The X-Ray trace id (`1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy`).
    pub trace_id: String,
    pub resource_path: Option<&'static str>,
    pub resource_id: Option<String>,
    pub api_key_id: Option<String>,
    pub status: u16,
    pub response_length: usize,
    pub latency_ms: u128,
    pub integration_latency_ms: Option<u128>,
    pub error: Option<GatewayError>,
    /// The function's invocation, when the request got that far (its X-Ray segments).
    pub invoked: Option<Invoked>,
}

/// A request's Lambda invocation, for its X-Ray segments and the counters.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub ids: InvokeIds,
    /// Given to the pool, and its outcome or the integration timeout (seconds since the epoch).
    pub start: f64,
    pub end: f64,
    pub took: Duration,
    pub ran: Option<Ran>,
    /// Why it failed: a function error, a crash, a timeout, no answer in time.
    pub failure: Option<String>,
    pub response_length: Option<usize>,
}

impl RequestInfo {
    /// `$context.requestTime`: `15/May/2020:06:01:09 +0000`.
    pub fn request_time(&self) -> String {
        let Ok(t) = time::OffsetDateTime::from_unix_timestamp(self.epoch_ms.div_euclid(1000)) else {
            return String::new();
        };
        let month = t.month().to_string();
        format!(
            "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
            t.day(),
            &month[..3],
            t.year(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }

    /// The value of `$context.NAME`, for the access log.
    pub fn context_var(&self, name: &str, rules: &Rules) -> Option<String> {
        Some(match name {
            "requestId" => self.request_id.clone(),
            "extendedRequestId" => self.extended_request_id.clone(),
            "identity.sourceIp" => self.source_ip.clone(),
            "identity.userAgent" => self.user_agent.clone()?,
            "identity.apiKeyId" => self.api_key_id.clone()?,
            "requestTime" => self.request_time(),
            "requestTimeEpoch" => self.epoch_ms.to_string(),
            "httpMethod" => self.method.clone(),
            "resourcePath" => self.resource_path?.to_string(),
            "resourceId" => self.resource_id.clone()?,
            "path" => self.path.clone(),
            "protocol" => self.protocol.clone(),
            "status" => self.status.to_string(),
            "responseLength" => self.response_length.to_string(),
            "responseLatency" => self.latency_ms.to_string(),
            "integrationLatency" | "integration.latency" => self.integration_latency_ms?.to_string(),
            "xrayTraceId" => self.trace_id.clone(),
            "domainName" => self.domain_name.clone(),
            "domainPrefix" => self.domain_name.split('.').next().unwrap_or_default().to_string(),
            "stage" => rules.stage.clone(),
            "apiId" => rules.api_id.clone(),
            "accountId" => rules.account_id.clone(),
            "error.message" => self.error?.message().to_string(),
            "error.responseType" => self.error?.response_type().to_string(),
            _ => return None,
        })
    }
}

/// The parts of a request that go into its proxy event.
#[derive(Clone, Copy)]
pub struct ProxyRequest<'a> {
    pub route: &'a Route,
    /// The path below the stage (the event's `path`).
    pub resource_path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub key_value: &'a str,
    pub key: &'a Key,
}

/// The REST API proxy event (payload format 1.0) for a request that passed the key and usage
/// plan checks. Pure.
///
/// https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
/// ("Input format of a Lambda function for proxy integration").
pub fn proxy_event(info: &RequestInfo, rules: &Rules, req: &ProxyRequest<'_>) -> Value {
    let ProxyRequest { route, resource_path, query, headers, body, key_value, key } = *req;
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        // The single-value map keeps the last value of a repeated header.
        single.insert(name.as_str().to_string(), Value::String(v.clone()));
        match multi.get_mut(name.as_str()) {
            Some(Value::Array(values)) => values.push(Value::String(v)),
            _ => {
                multi.insert(name.as_str().to_string(), json!([v]));
            }
        }
    }
    let params = query.map(parse_query).unwrap_or_default();
    let (query_single, query_multi) = if params.is_empty() {
        (Value::Null, Value::Null)
    } else {
        let mut s = Map::new();
        let mut m: Map<String, Value> = Map::new();
        for (k, v) in params {
            s.insert(k.clone(), Value::String(v.clone()));
            match m.get_mut(&k) {
                Some(Value::Array(values)) => values.push(Value::String(v)),
                _ => {
                    m.insert(k, json!([v]));
                }
            }
        }
        (Value::Object(s), Value::Object(m))
    };
    let path_parameters = match route {
        Route::Root => Value::Null,
        Route::Proxy(p) => json!({ "proxy": p }),
    };
    let (body, is_base64) = match (body.is_empty(), std::str::from_utf8(body)) {
        (true, _) => (Value::Null, false),
        (false, Ok(text)) => (Value::String(text.to_string()), false),
        (false, Err(_)) => (Value::String(base64::engine::general_purpose::STANDARD.encode(body)), true),
    };
    json!({
        "resource": route.resource(),
        "path": resource_path,
        "httpMethod": info.method,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": query_single,
        "multiValueQueryStringParameters": query_multi,
        "pathParameters": path_parameters,
        "stageVariables": null,
        "requestContext": {
            "resourceId": info.resource_id,
            "resourcePath": route.resource(),
            "httpMethod": info.method,
            "extendedRequestId": info.extended_request_id,
            "requestTime": info.request_time(),
            "path": info.path,
            "accountId": rules.account_id,
            "protocol": info.protocol,
            "stage": rules.stage,
            "domainPrefix": info.domain_name.split('.').next().unwrap_or_default(),
            "requestTimeEpoch": info.epoch_ms,
            "requestId": info.request_id,
            "identity": {
                "cognitoIdentityPoolId": null,
                "accountId": null,
                "cognitoIdentityId": null,
                "caller": null,
                "sourceIp": info.source_ip,
                "principalOrgId": null,
                "accessKey": null,
                "cognitoAuthenticationType": null,
                "cognitoAuthenticationProvider": null,
                "userArn": null,
                "userAgent": info.user_agent,
                "user": null,
                "apiKey": key_value,
                "apiKeyId": key.id,
            },
            "domainName": info.domain_name,
            "apiId": rules.api_id,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// A function's proxy response, as it goes to the client.
#[derive(Debug)]
pub struct Mapped {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Map the function's answer: `statusCode`, `headers`, `multiValueHeaders`, `body`,
/// `isBase64Encoded`, nothing else (API Gateway: "Malformed Lambda proxy response" otherwise,
/// https://repost.aws/knowledge-center/malformed-502-api-gateway). Err: why it is malformed.
/// Pure.
pub fn map_response(payload: &[u8]) -> Result<Mapped, String> {
    const FIELDS: [&str; 5] = ["statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"];
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    if let Some(extra) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unexpected field `{extra}`"));
    }
    let status = obj
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or("`statusCode` is missing or not an HTTP status code")?;
    let mut headers = HeaderMap::new();
    let header = |name: &str, value: &Value| -> Result<(HeaderName, HeaderValue), String> {
        let value = value.as_str().ok_or_else(|| format!("header `{name}`: the value is not a string"))?;
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("`{name}` is not a header name"))?;
        let v = HeaderValue::from_str(value).map_err(|_| format!("header `{name}`: invalid value"))?;
        Ok((n, v))
    };
    // multiValueHeaders first; a name also in `headers` keeps the multi-value values only.
    match obj.get("multiValueHeaders") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (name, values) in m {
                let values = values.as_array().ok_or_else(|| format!("multiValueHeaders `{name}` is not a list"))?;
                for value in values {
                    let (n, v) = header(name, value)?;
                    headers.append(n, v);
                }
            }
        }
        Some(_) => return Err("`multiValueHeaders` is not an object".into()),
    }
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (name, value) in m {
                let (n, v) = header(name, value)?;
                if !headers.contains_key(&n) {
                    headers.insert(n, v);
                }
            }
        }
        Some(_) => return Err("`headers` is not an object".into()),
    }
    // Framing is ours to decide, not the function's.
    for hop in ["content-length", "transfer-encoding", "connection"] {
        headers.remove(hop);
    }
    if !headers.contains_key("content-type") {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
    }
    let is_base64 = match obj.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`isBase64Encoded` is not a boolean".into()),
    };
    let body = match obj.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if is_base64 => Bytes::from(
            base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| format!("`body` is not base64: {e}"))?,
        ),
        Some(Value::String(s)) => Bytes::from(s.clone()),
        Some(_) => return Err("`body` is not a string".into()),
    };
    Ok(Mapped { status, headers, body })
}

/// Where the gateway records what it serves: the traces (X-Ray segments) and the counters.
/// Neither belongs to a pool, so both survive `serve --watch`'s swaps.
#[derive(Clone, Default)]
pub struct Recorders {
    pub traces: Arc<Traces>,
    pub stats: Arc<Stats>,
}

/// The local API Gateway: rules (swapped on reload), usage, the function and the access log.
pub struct Gateway {
    rules: RwLock<Arc<Rules>>,
    limiter: Limiter,
    /// Swapped by `serve --watch` ([`Gateway::swap_pool`]); an event is given to the pool under
    /// the read lock, so none reaches a pool after it was swapped out.
    pool: RwLock<Pool>,
    log: AccessLog,
    integration_timeout: Duration,
    /// The port we listen on (`X-Forwarded-Port`).
    port: u16,
    printer: Arc<dyn Printer>,
    in_flight: AtomicUsize,
    idle: Notify,
    recorders: Recorders,
}

/// Counts a request as in flight while alive.
struct Tracked<'a>(&'a Gateway);

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Gateway {
    pub fn new(
        rules: Rules,
        pool: Pool,
        log: AccessLog,
        integration_timeout: Duration,
        port: u16,
        printer: Arc<dyn Printer>,
        recorders: Recorders,
    ) -> Gateway {
        Gateway {
            rules: RwLock::new(Arc::new(rules)),
            limiter: Limiter::default(),
            pool: RwLock::new(pool),
            log,
            integration_timeout,
            port,
            printer,
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            recorders,
        }
    }

    /// The requests of key `key_id` in plan `plan_id` allowed on the UTC day of `epoch_secs`.
    pub fn used_today(&self, plan_id: &str, key_id: &str, epoch_secs: i64) -> u64 {
        self.limiter.used_today(plan_id, key_id, epoch_secs)
    }

    fn say(&self, event: ServeEvent) {
        self.printer.event(Event::Serve(event));
    }

    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_rules(&self, rules: Rules) {
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
    }

    /// The pool new requests go to.
    pub fn pool(&self) -> Pool {
        self.pool.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Send new requests to `pool`; the pool they went to is returned, with the events already
    /// given to it (they finish there: [`Pool::retire`]).
    pub fn swap_pool(&self, pool: Pool) -> Pool {
        std::mem::replace(&mut *self.pool.write().unwrap_or_else(|p| p.into_inner()), pool)
    }

    /// Wait until no request is in flight, at most `within`.
    pub async fn drained(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let idle = self.idle.notified();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, idle).await.is_err() {
                return;
            }
        }
    }

    /// Answer one request from `peer`, and log it.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _tracked = Tracked(self);
        let received = Instant::now();
        let received_at = xray::epoch_seconds(SystemTime::now());
        let rules = self.rules();
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let url = format!(
            "http://{}{}",
            header("host").unwrap_or_else(|| format!("127.0.0.1:{}", self.port)),
            req.uri().path_and_query().map_or("/", |p| p.as_str())
        );
        let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        // A client's own trace header is kept (its Root), as API Gateway does.
        let trace_id = header("x-amzn-trace-id")
            .and_then(|h| h.split(';').find_map(|p| p.trim().strip_prefix("Root=").map(str::to_string)))
            .unwrap_or_else(|| format!("1-{:08x}-{:024x}", epoch_ms / 1000, super::random_u128() >> 32));
        let mut info = RequestInfo {
            request_id: super::request_id(),
            extended_request_id: base64::engine::general_purpose::STANDARD
                .encode(&super::random_u128().to_be_bytes()[..11]),
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            protocol: format!("{:?}", req.version()),
            source_ip: peer.ip().to_string(),
            user_agent: header("user-agent"),
            domain_name: header("host")
                .map(|h| h.split(':').next().unwrap_or_default().to_string())
                .unwrap_or_default(),
            epoch_ms,
            trace_id,
            ..RequestInfo::default()
        };
        let mut response = match self.serve(&rules, req, &mut info).await {
            Ok(r) => r,
            Err(e) => {
                info.error = Some(e);
                let mut r = Response::new(Full::new(Bytes::from_static(e.body().as_bytes())));
                *r.status_mut() = e.status();
                r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
                if let Some(after) = e.retry_after() {
                    r.headers_mut().insert("retry-after", HeaderValue::from_static(after));
                }
                r
            }
        };
        let h = response.headers_mut();
        for (name, value) in [
            ("x-amzn-requestid", info.request_id.clone()),
            ("x-amz-apigw-id", info.extended_request_id.clone()),
            ("x-amzn-trace-id", format!("Root={}", info.trace_id)),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        info.status = response.status().as_u16();
        info.response_length = hyper::body::Body::size_hint(response.body()).exact().unwrap_or(0) as usize;
        info.latency_ms = received.elapsed().as_millis();
        // A stage that does not exist has no tracing and no metrics.
        if info.error != Some(GatewayError::UnknownStage) {
            self.record(&rules, &info, url, received_at, received.elapsed());
        }
        // A log that cannot be written must not fail the request; a warning says so, once per line.
        if let Err(e) = self.log.write(&render(&rules.access_log_format, |name| info.context_var(name, &rules))) {
            self.say(ServeEvent::AccessLogFailed { error: e.to_string() });
        }
        response
    }

    async fn serve(
        &self,
        rules: &Rules,
        req: Request<Incoming>,
        info: &mut RequestInfo,
    ) -> Result<Response<Full<Bytes>>, GatewayError> {
        let below = strip_stage(&info.path, &rules.stage).ok_or(GatewayError::UnknownStage)?.to_string();
        let route = route(&below);
        let resource_id = match &route {
            Route::Root => Some(rules.root_resource_id.clone()),
            Route::Proxy(_) => rules.proxy_resource_id.clone(),
        };
        let resource_id = resource_id.ok_or(GatewayError::MissingAuthenticationToken)?;
        info.resource_path = Some(route.resource());
        info.resource_id = Some(resource_id);

        let (parts, body) = req.into_parts();
        // Nothing of the body is read before the key and the usage plan accept the request.
        if body.size_hint().lower() > MAX_REQUEST_BYTES as u64 {
            return Err(GatewayError::RequestTooLarge);
        }
        let key_value = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let key = rules.key(&key_value).filter(|k| k.enabled).ok_or(GatewayError::InvalidApiKey)?;
        info.api_key_id = Some(key.id.clone());
        let epoch_secs = info.epoch_ms.div_euclid(1000);
        match self.limiter.check(&key.plan, &key.id, Instant::now(), epoch_secs) {
            Verdict::Allowed => {}
            Verdict::Throttled => {
                self.say(ServeEvent::Throttled {
                    request_id: info.request_id.clone(),
                    usage_plan: key.plan.id.clone(),
                });
                return Err(GatewayError::Throttled);
            }
            Verdict::QuotaExceeded => {
                let (limit, period) = key.plan.quota.as_ref().map(|q| (q.limit, q.period.as_str())).unwrap_or((0, "-"));
                self.say(ServeEvent::QuotaExhausted {
                    request_id: info.request_id.clone(),
                    usage_plan: key.plan.id.clone(),
                    limit,
                    period: period.to_string(),
                });
                return Err(GatewayError::QuotaExceeded);
            }
        }
        let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(GatewayError::RequestTooLarge),
            // The client went away mid-body: nobody reads the answer, and nothing runs.
            Err(_) => return Err(GatewayError::IncompleteBody),
        };

        let mut headers = parts.headers;
        add_forwarding_headers(&mut headers, info, self.port);
        let request = ProxyRequest {
            route: &route,
            resource_path: &below,
            query: parts.uri.query(),
            headers: &headers,
            body: &body,
            key_value: &key_value,
            key,
        };
        let event = proxy_event(info, rules, &request);
        let ids = InvokeIds::new();
        let lambda_trace = ids.trace_header(&info.trace_id);
        let invoke_start = xray::epoch_seconds(SystemTime::now());
        let started = Instant::now();
        // Under the read lock: a swap waits for the event to be in the pool (whose retirement then
        // waits for it), and no event reaches a pool swapped out.
        let invoked =
            self.pool.read().unwrap_or_else(|p| p.into_inner()).invoke(Bytes::from(event.to_string()), lambda_trace);
        let mut invocation = invoked.map_err(|full| {
            self.say(ServeEvent::Saturated { request_id: info.request_id.clone(), waiting: full.bound });
            GatewayError::Saturated
        })?;
        // Dropped with this future (the client went away), the invocation is withdrawn if it
        // still waits.
        let outcome = tokio::time::timeout(self.integration_timeout, invocation.outcome()).await;
        let took = started.elapsed();
        info.integration_latency_ms = Some(took.as_millis());
        let mut invoked = Invoked {
            ids,
            start: invoke_start,
            end: xray::epoch_seconds(SystemTime::now()),
            took,
            ran: invocation.ran(),
            failure: None,
            response_length: None,
        };
        let outcome = match outcome {
            Err(_) => {
                let never_ran = invocation.withdraw();
                invoked.failure = Some(format!(
                    "no answer within the integration timeout ({} s)",
                    self.integration_timeout.as_secs()
                ));
                info.invoked = Some(invoked);
                self.say(ServeEvent::IntegrationTimeout {
                    request_id: info.request_id.clone(),
                    timeout: self.integration_timeout,
                    function_ran: !never_ran,
                });
                return Err(GatewayError::IntegrationTimeout);
            }
            Ok(Err(_)) => Outcome::NotRun("the execution environment ended before taking the event".into()),
            Ok(Ok(outcome)) => outcome,
        };
        match &outcome {
            Outcome::Response(payload) => invoked.response_length = Some(payload.len()),
            failed => invoked.failure = failed.failure(),
        }
        info.invoked = Some(invoked);
        let payload = match outcome {
            Outcome::Response(payload) => payload,
            failed => {
                let why = failed.failure().unwrap_or_default();
                self.say(ServeEvent::InvocationFailed { request_id: info.request_id.clone(), error: why });
                return Err(GatewayError::Integration);
            }
        };
        let mapped = map_response(&payload).map_err(|why| {
            self.say(ServeEvent::MalformedResponse { request_id: info.request_id.clone(), error: why.to_string() });
            GatewayError::Integration
        })?;
        let mut response = Response::new(Full::new(mapped.body));
        *response.status_mut() = mapped.status;
        *response.headers_mut() = mapped.headers;
        Ok(response)
    }
}

impl Gateway {
    /// The request's X-Ray segments and its counts.
    fn record(&self, rules: &Rules, info: &RequestInfo, url: String, received_at: f64, latency: Duration) {
        let pool = self.pool();
        let spec = pool.spec();
        let id = xray::new_id();
        let request = xray::Request {
            trace_id: &info.trace_id,
            id: &id,
            api_id: &rules.api_id,
            stage: &rules.stage,
            account_id: &rules.account_id,
            region: &rules.region,
            request_id: &info.request_id,
            extended_request_id: &info.extended_request_id,
            method: &info.method,
            url,
            client_ip: &info.source_ip,
            user_agent: info.user_agent.as_deref(),
            status: info.status,
            content_length: info.response_length,
            start: received_at,
            end: xray::epoch_seconds(SystemTime::now()),
            invoked: info.invoked.as_ref().map(|inv| xray::Invoke {
                ids: &inv.ids,
                function_name: &spec.name,
                function_arn: &spec.arn,
                start: inv.start,
                end: inv.end,
                ran: inv.ran.clone(),
                failure: inv.failure.clone(),
                response_length: inv.response_length,
            }),
        };
        self.recorders.traces.record(xray::segments(&request));
        self.recorders.stats.answered(Answered {
            at: info.epoch_ms.div_euclid(1000),
            status: info.status,
            throttled: matches!(info.error, Some(GatewayError::Throttled | GatewayError::QuotaExceeded)),
            latency_ms: latency.as_secs_f64() * 1000.0,
            integration_ms: info.invoked.as_ref().map(|inv| inv.took.as_secs_f64() * 1000.0),
            function_error: info.invoked.as_ref().is_some_and(|inv| inv.failure.is_some()),
        });
    }
}

/// The headers API Gateway adds to what the function sees: `X-Forwarded-For` (the client's
/// address appended), `-Port`, `-Proto`, and the trace header when the client sent none.
fn add_forwarding_headers(headers: &mut HeaderMap, info: &RequestInfo, port: u16) {
    let forwarded = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(chain) => format!("{chain}, {}", info.source_ip),
        None => info.source_ip.clone(),
    };
    for (name, value) in [
        ("x-forwarded-for", Some(forwarded)),
        ("x-forwarded-port", Some(port.to_string())),
        ("x-forwarded-proto", Some("http".to_string())),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, v);
        }
    }
    if !headers.contains_key("x-amzn-trace-id")
        && let Ok(v) = HeaderValue::from_str(&format!("Root={}", info.trace_id))
    {
        headers.insert("x-amzn-trace-id", v);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::serve::rules::sample_rules;

    #[test]
    fn paths_below_the_stage_route_to_root_or_proxy() {
        assert_eq!(strip_stage("/prod", "prod"), Some("/"));
        assert_eq!(strip_stage("/prod/", "prod"), Some("/"));
        assert_eq!(strip_stage("/prod/movies/12", "prod"), Some("/movies/12"));
        assert_eq!(strip_stage("/production", "prod"), None);
        assert_eq!(strip_stage("/", "prod"), None);
        assert_eq!(strip_stage("/dev/x", "prod"), None);
        assert_eq!(route("/"), Route::Root);
        assert_eq!(route("/movies/a%20b"), Route::Proxy("movies/a b".into()));
    }

    #[test]
    fn queries_decode_and_keep_repeats() {
        assert_eq!(
            parse_query("a=1&b=x%2By+z&a=2&flag&&c="),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x+y+z".to_string()),
                ("a".to_string(), "2".to_string()),
                ("flag".to_string(), String::new()),
                ("c".to_string(), String::new()),
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    fn info() -> RequestInfo {
        RequestInfo {
            request_id: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef".into(),
            extended_request_id: "BHgGvGI9IAMEcEA=".into(),
            method: "POST".into(),
            path: "/prod/movies".into(),
            protocol: "HTTP/1.1".into(),
            source_ip: "203.0.113.7".into(),
            user_agent: Some("curl/8.5.0".into()),
            domain_name: "localhost".into(),
            epoch_ms: 1_589_522_469_693,
            trace_id: "1-5ebe3025-0123456789abcdef01234567".into(),
            resource_id: Some("proxy1".into()),
            ..RequestInfo::default()
        }
    }

    #[test]
    fn the_event_has_every_field_of_payload_1_0() {
        let rules = sample_rules();
        let key = rules.key("VALUE-1").unwrap().clone();
        let mut headers = HeaderMap::new();
        headers.append("x-api-key", HeaderValue::from_static("VALUE-1"));
        headers.append("accept", HeaderValue::from_static("a/b"));
        headers.append("accept", HeaderValue::from_static("c/d"));
        let route = Route::Proxy("movies".into());
        let req = ProxyRequest {
            route: &route,
            resource_path: "/movies",
            query: Some("q=1&q=2&x=y"),
            headers: &headers,
            body: b"{}",
            key_value: "VALUE-1",
            key: &key,
        };
        let ev = proxy_event(&info(), &rules, &req);
        assert_eq!(ev["resource"], "/{proxy+}");
        assert_eq!(ev["path"], "/movies");
        assert_eq!(ev["httpMethod"], "POST");
        assert_eq!(ev["headers"]["accept"], "c/d", "the last value");
        assert_eq!(ev["multiValueHeaders"]["accept"], json!(["a/b", "c/d"]));
        assert_eq!(ev["queryStringParameters"], json!({"q": "2", "x": "y"}));
        assert_eq!(ev["multiValueQueryStringParameters"], json!({"q": ["1", "2"], "x": ["y"]}));
        assert_eq!(ev["pathParameters"], json!({"proxy": "movies"}));
        assert_eq!(ev["body"], "{}");
        assert_eq!(ev["isBase64Encoded"], false);
        let rc = &ev["requestContext"];
        for (field, want) in [
            ("requestId", json!("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")),
            ("accountId", json!("123456789012")),
            ("apiId", json!("api1")),
            ("stage", json!("prod")),
            ("resourcePath", json!("/{proxy+}")),
            ("resourceId", json!("proxy1")),
            ("httpMethod", json!("POST")),
            ("path", json!("/prod/movies")),
            ("requestTimeEpoch", json!(1_589_522_469_693_i64)),
            ("requestTime", json!("15/May/2020:06:01:09 +0000")),
        ] {
            assert_eq!(rc[field], want, "requestContext.{field}");
        }
        let id = &rc["identity"];
        assert_eq!(id["sourceIp"], "203.0.113.7");
        assert_eq!(id["userAgent"], "curl/8.5.0");
        assert_eq!(id["apiKey"], "VALUE-1");
        assert_eq!(id["apiKeyId"], "k1");
    }

    #[test]
    fn an_empty_body_is_null_and_binary_is_base64() {
        let rules = sample_rules();
        let key = rules.key("VALUE-1").unwrap().clone();
        let h = HeaderMap::new();
        let mut req = ProxyRequest {
            route: &Route::Root,
            resource_path: "/",
            query: None,
            headers: &h,
            body: b"",
            key_value: "VALUE-1",
            key: &key,
        };
        let ev = proxy_event(&info(), &rules, &req);
        assert_eq!((ev["body"].clone(), ev["isBase64Encoded"].clone()), (Value::Null, json!(false)));
        assert_eq!(ev["pathParameters"], Value::Null);
        assert_eq!(ev["queryStringParameters"], Value::Null);
        req.body = &[0xff, 0x00];
        let ev = proxy_event(&info(), &rules, &req);
        assert_eq!((ev["body"].clone(), ev["isBase64Encoded"].clone()), (json!("/wA="), json!(true)));
    }

    #[test]
    fn responses_map_status_headers_and_body() {
        let m = map_response(
            br#"{"statusCode":201,"headers":{"x-a":"1","x-b":"h"},"multiValueHeaders":{"x-b":["m1","m2"]},"body":"hi","isBase64Encoded":false}"#,
        )
        .unwrap();
        assert_eq!(m.status, StatusCode::CREATED);
        assert_eq!(m.headers["x-a"], "1");
        assert_eq!(m.headers.get_all("x-b").iter().collect::<Vec<_>>(), ["m1", "m2"]);
        assert_eq!(m.headers["content-type"], "application/json", "API Gateway's default");
        assert_eq!(m.body, "hi");
        let m = map_response(br#"{"statusCode":200,"body":"aGk=","isBase64Encoded":true}"#).unwrap();
        assert_eq!(m.body, "hi");
        let m = map_response(br#"{"statusCode":204}"#).unwrap();
        assert!(m.body.is_empty());
    }

    #[test]
    fn malformed_responses_are_refused_with_the_reason() {
        let cases: HashMap<&str, &str> = HashMap::from([
            ("not json", "not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"body":"x"}"#, "statusCode"),
            (r#"{"statusCode":"200"}"#, "statusCode"),
            (r#"{"statusCode":99}"#, "statusCode"),
            (r#"{"statusCode":200,"extra":1}"#, "unexpected field `extra`"),
            (r#"{"statusCode":200,"body":{"a":1}}"#, "`body` is not a string"),
            (r#"{"statusCode":200,"headers":{"a":1}}"#, "header `a`"),
            (r#"{"statusCode":200,"headers":{"bad name":"v"}}"#, "not a header name"),
            (r#"{"statusCode":200,"body":"%%","isBase64Encoded":true}"#, "not base64"),
        ]);
        for (payload, why) in cases {
            let err = map_response(payload.as_bytes()).expect_err(payload);
            assert!(err.contains(why), "{payload}: {err}");
        }
    }

    #[test]
    fn gateway_error_messages_are_their_bodies() {
        use GatewayError::*;
        for e in [
            UnknownStage,
            MissingAuthenticationToken,
            InvalidApiKey,
            RequestTooLarge,
            Throttled,
            QuotaExceeded,
            Integration,
            IntegrationTimeout,
            Saturated,
            IncompleteBody,
        ] {
            let body: Value = serde_json::from_str(e.body()).expect("JSON body");
            assert_eq!(body["message"], e.message(), "{e:?}");
        }
    }

    #[test]
    fn gateway_errors_are_api_gateways() {
        assert_eq!(GatewayError::InvalidApiKey.body(), r#"{"message":"Forbidden"}"#);
        assert_eq!(GatewayError::Throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(GatewayError::QuotaExceeded.body(), r#"{"message":"Limit Exceeded"}"#);
        assert_eq!(GatewayError::Integration.body(), r#"{"message": "Internal server error"}"#);
        assert_eq!(GatewayError::IntegrationTimeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(GatewayError::IntegrationTimeout.message(), "Endpoint request timed out");
    }

    /// A gateway with [`sample_rules`] on a loopback port, its function never started (a
    /// bootstrap that does not exist), and where its access log goes.
    async fn gateway_on_loopback() -> (SocketAddr, std::path::PathBuf) {
        use crate::serve::server::{Limits, Server, serve_connection};
        let log_path = std::env::temp_dir().join(format!("serve-gateway-test-{}.log", crate::serve::random_u64()));
        let printer: Arc<crate::ui::Recorder> = Arc::new(crate::ui::Recorder::default());
        let pool = Pool::new(crate::serve::runtime::sample_spec(), 1, printer.clone());
        let gateway = Arc::new(Gateway::new(
            sample_rules(),
            pool,
            AccessLog::file(&log_path).unwrap(),
            Duration::from_secs(5),
            0,
            printer.clone(),
            Recorders::default(),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits { header_read: Duration::from_secs(5), connections: 16, read_buffer: 64 * 1024 };
        let mut server = Server::new(listener, limits, printer);
        tokio::spawn(async move {
            loop {
                let (stream, peer, permit) = server.accept().await;
                let gateway = gateway.clone();
                serve_connection(stream, permit, limits, move |req| {
                    let gateway = gateway.clone();
                    async move { gateway.handle(req, peer).await }
                });
            }
        });
        (addr, log_path)
    }

    /// Send `head` (and `body`, in the background), then read the answer's status line: how
    /// long it took, and how many body bytes had been written by then.
    fn answer_to(addr: SocketAddr, head: &str, body: &'static [u8]) -> (String, Duration, usize) {
        use std::io::{Read, Write};
        use std::sync::atomic::AtomicUsize;
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.write_all(head.as_bytes()).unwrap();
        let written = Arc::new(AtomicUsize::new(0));
        let mut out = conn.try_clone().unwrap();
        let counter = written.clone();
        std::thread::spawn(move || {
            for chunk in body.chunks(16 * 1024) {
                if out.write_all(chunk).is_err() {
                    return;
                }
                counter.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        });
        let start = Instant::now();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).unwrap_or(0);
        let status = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string();
        (status, start.elapsed(), written.load(Ordering::SeqCst))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_key_and_the_length_are_checked_before_the_body_is_read() {
        let (addr, log_path) = gateway_on_loopback().await;
        tokio::task::spawn_blocking(move || {
            const TEN_MB: usize = 10 * 1024 * 1024;
            // Declared 10 MB, none sent: with no key, or an unknown one, 403 at once.
            for key in ["", "x-api-key: not-a-key\r\n", "x-api-key: \r\n"] {
                let head = format!("POST /prod/ HTTP/1.1\r\nhost: t\r\n{key}content-length: {TEN_MB}\r\n\r\n");
                let (status, took, _) = answer_to(addr, &head, b"");
                assert_eq!(status, "HTTP/1.1 403 Forbidden", "{key:?}");
                assert!(took < Duration::from_secs(2), "{key:?}: answered after {took:?}, without the body");
            }
            // A declared length over the limit, with a good key: 413 without the body.
            let head = format!(
                "POST /prod/ HTTP/1.1\r\nhost: t\r\nx-api-key: VALUE-1\r\ncontent-length: {}\r\n\r\n",
                TEN_MB + 1
            );
            let (status, took, _) = answer_to(addr, &head, b"");
            assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
            assert!(took < Duration::from_secs(2), "answered after {took:?}");
            // A chunked body with a good key: 413 once it passes 10 MB, before it ends.
            static CHUNKS: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            let chunks = CHUNKS.get_or_init(|| {
                let chunk = vec![b'a'; 1024 * 1024];
                let mut body = Vec::new();
                for _ in 0..32 {
                    body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    body.extend_from_slice(&chunk);
                    body.extend_from_slice(b"\r\n");
                }
                body.extend_from_slice(b"0\r\n\r\n");
                body
            });
            let head = "POST /prod/ HTTP/1.1\r\nhost: t\r\nx-api-key: VALUE-1\r\ntransfer-encoding: chunked\r\n\r\n";
            let (status, _, written) = answer_to(addr, head, chunks);
            assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
            assert!(written < chunks.len(), "answered before the 32 MB body ended ({written} bytes written)");
        })
        .await
        .unwrap();
        let log = std::fs::read_to_string(&log_path).unwrap();
        let _ = std::fs::remove_file(&log_path);
        let statuses: Vec<Value> =
            log.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["status"].clone()).collect();
        assert_eq!(statuses, [json!("403"), json!("403"), json!("403"), json!("413"), json!("413")]);
    }

    #[test]
    fn only_the_queue_full_answer_asks_for_a_retry() {
        assert_eq!(GatewayError::Saturated.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(GatewayError::Saturated.retry_after(), Some("1"));
        assert_eq!(GatewayError::Throttled.retry_after(), None);
        assert_eq!(GatewayError::IntegrationTimeout.retry_after(), None);
    }
}
