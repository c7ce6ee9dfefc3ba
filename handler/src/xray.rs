//! X-Ray subsegments for the function's DynamoDB calls, so the service map shows
//! API Gateway → Lambda → DynamoDB.
//!
//! Lambda runs an X-Ray daemon beside a function with Active tracing and tells it where through
//! `AWS_XRAY_DAEMON_ADDRESS`. For each DynamoDB operation of a sampled invocation, [`XRay`] (an
//! SDK interceptor on the DynamoDB client) sends one UDP datagram to the daemon: the header
//! `{"format": "json", "version": 1}`, a newline, and an independent subsegment document whose
//! `trace_id` and `parent_id` are the `Root` and `Parent` of `_X_AMZN_TRACE_ID` (the function's
//! segment, which Lambda itself records). See the X-Ray developer guide, "Sending segment
//! documents to the X-Ray daemon" and "AWS X-Ray segment documents" (subsegment fields,
//! `namespace: "aws"`, the `aws` and `http` objects, `error`/`throttle`/`fault`).
//!
//! Nothing is sent when `Sampled` is not `1`, when there is no trace header, or when the daemon
//! address is unset (outside Lambda). Sending never fails a request: UDP to a local daemon does
//! not block, and a send error is ignored, as the X-Ray SDKs do.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, Region, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use serde::Serialize;

/// The first line of every datagram to the daemon.
pub const HEADER: &str = r#"{"format": "json", "version": 1}"#;

/// The parts of an X-Ray trace header (`Root=1-…;Parent=…;Sampled=1`) a subsegment needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    pub root: String,
    pub parent: String,
    pub sampled: bool,
}

impl TraceHeader {
    /// `None` when `Root` or `Parent` is missing. `Sampled` other than `1` (`0`, `?`, absent)
    /// is not sampled: the daemon is only sent what Lambda decided to trace.
    pub fn parse(header: &str) -> Option<TraceHeader> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for part in header.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", v)) if !v.is_empty() => root = Some(v.to_string()),
                Some(("Parent", v)) if !v.is_empty() => parent = Some(v.to_string()),
                Some(("Sampled", v)) => sampled = v == "1",
                _ => {}
            }
        }
        Some(TraceHeader { root: root?, parent: parent?, sampled })
    }
}

/// The daemon's UDP address from `AWS_XRAY_DAEMON_ADDRESS`: `host:port`, or the
/// `udp:host:port tcp:host:port` form the X-Ray SDKs also accept (the UDP part is used).
pub fn daemon_address(value: &str) -> Option<SocketAddr> {
    let value = value.trim();
    let udp = if value.contains(' ') || value.starts_with("udp:") || value.starts_with("tcp:") {
        value.split_whitespace().find_map(|p| p.strip_prefix("udp:"))?
    } else {
        value
    };
    udp.to_socket_addrs().ok()?.next()
}

/// `aws` object of a DynamoDB subsegment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AwsFields {
    pub operation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpResponse {
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpFields {
    pub response: HttpResponse,
}

/// An independent subsegment document (`"type": "subsegment"`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subsegment {
    pub name: &'static str,
    pub id: String,
    pub trace_id: String,
    pub parent_id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub namespace: &'static str,
    /// Seconds since the epoch, microsecond precision.
    pub start_time: f64,
    pub end_time: f64,
    pub aws: AwsFields,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpFields>,
    /// A 4xx answer (throttling included).
    pub error: bool,
    /// DynamoDB throttled the call (429, or a throttling error code).
    pub throttle: bool,
    /// A 5xx answer, or no answer at all (timeout, connection failure).
    pub fault: bool,
}

impl Subsegment {
    /// The datagram: header, newline, document.
    pub fn datagram(&self) -> String {
        format!("{HEADER}\n{}", serde_json::to_string(self).expect("a subsegment serializes"))
    }
}

/// What the interceptor learns about one DynamoDB operation while it runs.
#[derive(Debug, Clone)]
struct InFlight {
    trace: TraceHeader,
    start_time: f64,
    table_name: Option<String>,
}

impl Storable for InFlight {
    type Storer = StoreReplace<Self>;
}

/// The interceptor. `daemon: None` (no `AWS_XRAY_DAEMON_ADDRESS`) records nothing.
#[derive(Debug)]
pub struct XRay {
    daemon: Option<SocketAddr>,
    socket: OnceLock<Option<UdpSocket>>,
}

impl XRay {
    /// From `AWS_XRAY_DAEMON_ADDRESS`, as Lambda sets it for a function with Active tracing.
    pub fn from_env() -> XRay {
        XRay::new(std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok().as_deref().and_then(daemon_address))
    }

    pub fn new(daemon: Option<SocketAddr>) -> XRay {
        XRay { daemon, socket: OnceLock::new() }
    }

    /// Bound on first use, so an unsampled function never opens it (start-up stays as it was).
    fn send(&self, datagram: &str) {
        let Some(daemon) = self.daemon else { return };
        let local = if daemon.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        if let Some(socket) = self.socket.get_or_init(|| UdpSocket::bind(local).ok()) {
            let _ = socket.send_to(datagram.as_bytes(), daemon);
        }
    }
}

fn epoch_seconds() -> f64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    // Microseconds, as the X-Ray SDKs write them.
    (d.as_micros() as f64) / 1e6
}

/// 16 random hex digits: std's `RandomState` is seeded from the OS's randomness.
fn segment_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{:016x}", h.finish())
}

/// The error code of a DynamoDB (awsJson 1.0) error body: the part after `#` of `__type`.
fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let t = v.get("__type")?.as_str()?;
    Some(t.rsplit('#').next().unwrap_or(t).to_string())
}

impl Intercept for XRay {
    fn name(&self) -> &'static str {
        "XRaySubsegments"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.daemon.is_none() {
            return Ok(());
        }
        // lambda_runtime sets it for the invocation being handled (the SDK's recursion-detection
        // interceptor reads the same variable for the X-Amzn-Trace-Id header).
        let trace = std::env::var("_X_AMZN_TRACE_ID").ok().as_deref().and_then(TraceHeader::parse);
        if let Some(trace) = trace.filter(|t| t.sampled) {
            cfg.interceptor_state().store_put(InFlight { trace, start_time: epoch_seconds(), table_name: None });
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(mut in_flight) = cfg.load::<InFlight>().cloned() else { return Ok(()) };
        if in_flight.table_name.is_none() {
            // Every DynamoDB request is a JSON body naming its table (awsJson 1.0).
            in_flight.table_name = context
                .request()
                .body()
                .bytes()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                .and_then(|v| v.get("TableName")?.as_str().map(str::to_string));
            cfg.interceptor_state().store_put(in_flight);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(in_flight) = cfg.load::<InFlight>().cloned() else { return Ok(()) };
        let response = context.response();
        let status = response.map(|r| r.status().as_u16());
        let code = match context.output_or_error() {
            Some(Err(_)) => response.and_then(|r| r.body().bytes()).and_then(error_code),
            _ => None,
        };
        let throttle = status == Some(429) || code.as_deref().is_some_and(|c| crate::THROTTLING_CODES.contains(&c));
        let segment = Subsegment {
            name: "DynamoDB",
            id: segment_id(),
            trace_id: in_flight.trace.root,
            parent_id: in_flight.trace.parent,
            kind: "subsegment",
            namespace: "aws",
            start_time: in_flight.start_time,
            end_time: epoch_seconds(),
            aws: AwsFields {
                operation: cfg.load::<Metadata>().map(|m| m.name().to_string()).unwrap_or_default(),
                table_name: in_flight.table_name,
                request_id: response.and_then(|r| r.headers().get("x-amzn-requestid")).map(str::to_string),
                region: cfg.load::<Region>().map(|r| r.to_string()),
                retries: cfg.load::<RequestAttempts>().map_or(0, |a| a.attempts().saturating_sub(1)),
            },
            http: status.map(|status| HttpFields { response: HttpResponse { status } }),
            error: throttle || status.is_some_and(|s| (400..500).contains(&s)),
            throttle,
            fault: status.is_none_or(|s| s >= 500),
        };
        self.send(&segment.datagram());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_headers() {
        let t =
            TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1").unwrap();
        assert_eq!(t.root, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(t.parent, "53995c3f42cd8ad8");
        assert!(t.sampled);
        let lineage = TraceHeader::parse("Root=1-a-b;Parent=c;Sampled=1;Lineage=a87bd80c:1|68fd508a:5").unwrap();
        assert!(lineage.sampled);
        for unsampled in ["Root=1-a-b;Parent=c;Sampled=0", "Root=1-a-b;Parent=c", "Root=1-a-b;Parent=c;Sampled=?"] {
            assert!(!TraceHeader::parse(unsampled).unwrap().sampled, "{unsampled}");
        }
        assert_eq!(TraceHeader::parse("Root=1-a-b;Sampled=1"), None, "no parent");
        assert_eq!(TraceHeader::parse(""), None);
    }

    #[test]
    fn daemon_addresses() {
        assert_eq!(daemon_address("169.254.79.129:2000"), Some("169.254.79.129:2000".parse().unwrap()));
        assert_eq!(daemon_address("tcp:127.0.0.1:2000 udp:127.0.0.2:2001"), Some("127.0.0.2:2001".parse().unwrap()));
        assert_eq!(daemon_address("udp:127.0.0.1:3000"), Some("127.0.0.1:3000".parse().unwrap()));
        assert_eq!(daemon_address("tcp:127.0.0.1:2000"), None);
        assert_eq!(daemon_address("not an address"), None);
    }

    #[test]
    fn the_datagram_is_the_header_and_one_document() {
        let s = Subsegment {
            name: "DynamoDB",
            id: segment_id(),
            trace_id: "1-5759e988-bd862e3fe1be46a994272793".into(),
            parent_id: "53995c3f42cd8ad8".into(),
            kind: "subsegment",
            namespace: "aws",
            start_time: 1_795_632_000.123_456,
            end_time: 1_795_632_000.130_001,
            aws: AwsFields {
                operation: "PutItem".into(),
                table_name: Some("movies".into()),
                request_id: Some("R1".into()),
                region: Some("us-east-1".into()),
                retries: 0,
            },
            http: Some(HttpFields { response: HttpResponse { status: 400 } }),
            error: true,
            throttle: true,
            fault: false,
        };
        let d = s.datagram();
        let (header, doc) = d.split_once('\n').unwrap();
        assert_eq!(header, r#"{"format": "json", "version": 1}"#);
        let v: serde_json::Value = serde_json::from_str(doc).unwrap();
        assert_eq!(v["type"], "subsegment");
        assert_eq!(v["namespace"], "aws");
        assert_eq!(v["aws"]["table_name"], "movies");
        assert_eq!(v["http"]["response"]["status"], 400);
        assert_eq!(v["start_time"].as_f64(), Some(1_795_632_000.123_456));
        assert_eq!(v["id"].as_str().unwrap().len(), 16);
        assert!(!doc.contains('\n'));
    }

    #[test]
    fn error_codes_from_dynamodb_bodies() {
        let body =
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"x"}"#;
        assert_eq!(error_code(body).as_deref(), Some("ProvisionedThroughputExceededException"));
        assert_eq!(error_code(br#"{"__type":"ThrottlingException"}"#).as_deref(), Some("ThrottlingException"));
        assert_eq!(error_code(b"<html>"), None);
    }
}
