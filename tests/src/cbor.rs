//! Smithy RPC v2 CBOR in front of moto's AWS JSON 1.0, for CloudWatch.
//!
//! The AWS SDK for Rust speaks CloudWatch's newest protocol, Smithy RPC v2 CBOR (`POST
//! /service/GraniteServiceVersion20100801/operation/PutMetricAlarm`, header `smithy-protocol:
//! rpc-v2-cbor`, CBOR bodies: smithy.io, "RPC v2 CBOR protocol"); moto 5.2.5 reads CloudWatch's
//! JSON and query protocols only (and botocore, hence moto's own tests, prefers JSON). The proxy
//! and the tests' read-back client bridge the two, as an RPC v2 front end over a JSON service:
//!
//! - the request's CBOR document becomes the same document in JSON, with the encodings
//!   awsJson1_0 uses (timestamps as epoch seconds, blobs as base64), sent as
//!   `X-Amz-Target: GraniteServiceVersion20100801.<Operation>`;
//! - the JSON answer goes back in CBOR, shaped by the operation's output in AWS's service model
//!   (botocore's): doubles stay doubles, integers integers, timestamps get CBOR tag 1, blobs are
//!   byte strings, as the SDK's decoder requires. An error answer becomes the map RPC v2 CBOR
//!   errors are (`__type`, `message`), its headers (e.g. `x-amzn-query-error`) kept.
//!
//! [`JsonBackend`] is the bridge as the SDK's HTTP client, for clients that talk to moto
//! directly; the proxy bridges what reaches it.

use std::convert::Infallible;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use base64::Engine;
use minicbor::data::{IanaTag, Tag, Type};
use serde_json::{Map, Value};

use crate::strict::botocore::{self, ServiceModel};

/// The header that marks an RPC v2 CBOR request (and answer).
pub const PROTOCOL_HEADER: &str = "smithy-protocol";
pub const PROTOCOL: &str = "rpc-v2-cbor";
pub const CONTENT_TYPE: &str = "application/cbor";
/// What awsJson1_0 requests carry.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// Why a request could not be bridged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeError {
    #[error("not an RPC v2 CBOR path (expected /service/<Service>/operation/<Operation>): {0}")]
    Path(String),
    #[error("the request body is not the CBOR RPC v2 sends: {0}")]
    Body(String),
}

/// An RPC v2 CBOR request, as the JSON request moto reads.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonRequest {
    pub operation: String,
    /// `X-Amz-Target`: `<Service>.<Operation>`.
    pub target: String,
    pub body: Vec<u8>,
}

/// Read an RPC v2 CBOR request (its path and body) as the equivalent awsJson1_0 request.
pub fn request_to_json(path: &str, body: &[u8]) -> Result<JsonRequest, BridgeError> {
    let rest = path.strip_prefix("/service/").ok_or_else(|| BridgeError::Path(path.to_string()))?;
    let (service, operation) = rest.split_once("/operation/").ok_or_else(|| BridgeError::Path(path.to_string()))?;
    if service.is_empty() || operation.is_empty() || operation.contains('/') {
        return Err(BridgeError::Path(path.to_string()));
    }
    let document = if body.is_empty() {
        Value::Object(Map::new())
    } else {
        let mut d = minicbor::Decoder::new(body);
        let v = decode(&mut d).map_err(|e| BridgeError::Body(e.to_string()))?;
        if d.position() != body.len() {
            return Err(BridgeError::Body(format!("{} bytes after the document", body.len() - d.position())));
        }
        v
    };
    Ok(JsonRequest {
        operation: operation.to_string(),
        target: format!("{service}.{operation}"),
        body: serde_json::to_vec(&document).expect("a JSON value serialises"),
    })
}

/// The CBOR answer for moto's JSON answer to `operation` of the service signing as
/// `signing_name`. `error_type`: the answer's `x-amzn-errortype` header, the error code when
/// the body does not carry one.
pub fn response_to_cbor(
    signing_name: &str,
    operation: &str,
    status: u16,
    error_type: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let mut e = minicbor::Encoder::new(Vec::new());
    let written = if (200..300).contains(&status) {
        let model = botocore::service(signing_name).ok();
        let output = model.as_deref().and_then(|m| Some((m, m.operation(operation)?["output"]["shape"].as_str()?)));
        let document = json.unwrap_or_else(|| Value::Object(Map::new()));
        match output {
            Some((model, shape)) => encode_shape(&mut e, model, shape, &document),
            None => encode_value(&mut e, &document),
        }
    } else {
        // awsJson errors: `__type` (maybe `namespace#Code`) and `message` / `Message`.
        let field = |k: &str| json.as_ref().and_then(|j| j.get(k)).and_then(Value::as_str).map(str::to_string);
        let code = field("__type").or_else(|| error_type.map(|t| t.split(':').next().unwrap_or(t).to_string()));
        let message =
            field("message").or_else(|| field("Message")).unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        let mut error = Map::new();
        error.insert("__type".into(), Value::String(code.unwrap_or_else(|| format!("HTTP {status}"))));
        error.insert("message".into(), Value::String(message));
        encode_value(&mut e, &Value::Object(error))
    };
    written.expect("writing CBOR to a Vec cannot fail");
    e.into_writer()
}

/// An SDK HTTP client that sends RPC v2 CBOR requests to a JSON service (moto) and hands the
/// SDK CBOR answers: for the CloudWatch client of [`crate::Aws`].
#[derive(Debug, Clone)]
pub struct JsonBackend {
    inner: SharedHttpClient,
    /// The SigV4 signing name of the service (its model types the answers).
    signing_name: &'static str,
}

impl JsonBackend {
    pub fn new(inner: SharedHttpClient, signing_name: &'static str) -> JsonBackend {
        JsonBackend { inner, signing_name }
    }
}

impl HttpClient for JsonBackend {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(JsonConnector {
            inner: self.inner.http_connector(settings, components),
            signing_name: self.signing_name,
        })
    }
}

#[derive(Debug)]
struct JsonConnector {
    inner: SharedHttpConnector,
    signing_name: &'static str,
}

impl HttpConnector for JsonConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let uri: hyper::Uri = match request.uri().parse() {
            Ok(u) => u,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(Box::new(e)))),
        };
        let json = match request_to_json(uri.path(), request.body().bytes().unwrap_or_default()) {
            Ok(j) => j,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(Box::new(e)))),
        };
        let root =
            format!("{}://{}/", uri.scheme_str().unwrap_or("http"), uri.authority().map(|a| a.as_str()).unwrap_or(""));
        if let Err(e) = request.set_uri(root) {
            return HttpConnectorFuture::ready(Err(ConnectorError::user(Box::new(e))));
        }
        let h = request.headers_mut();
        h.remove(PROTOCOL_HEADER);
        h.remove("accept");
        h.insert("content-type", JSON_CONTENT_TYPE);
        h.insert("x-amz-target", json.target.clone());
        h.insert("content-length", json.body.len().to_string());
        *request.body_mut() = SdkBody::from(json.body);
        let (inner, signing_name) = (self.inner.clone(), self.signing_name);
        HttpConnectorFuture::new(async move {
            let response = inner.call(request).await?;
            let status = response.status();
            let mut headers = response.headers().clone();
            let body =
                http_body_util::BodyExt::collect(response.into_body()).await.map_err(ConnectorError::io)?.to_bytes();
            let out = response_to_cbor(
                signing_name,
                &json.operation,
                status.as_u16(),
                headers.get("x-amzn-errortype"),
                &body,
            );
            headers.remove("x-amzn-errortype");
            headers.insert("content-type", CONTENT_TYPE);
            headers.insert(PROTOCOL_HEADER, PROTOCOL);
            headers.insert("content-length", out.len().to_string());
            let mut answer = HttpResponse::new(status, SdkBody::from(out));
            *answer.headers_mut() = headers;
            Ok(answer)
        })
    }
}

type Written = Result<(), minicbor::encode::Error<Infallible>>;

/// A JSON value in CBOR, by its own types (numbers: integers when they are).
fn encode_value(e: &mut minicbor::Encoder<Vec<u8>>, v: &Value) -> Written {
    match v {
        Value::Null => e.null().map(drop),
        Value::Bool(b) => e.bool(*b).map(drop),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => e.i64(i).map(drop),
            (None, Some(u)) => e.u64(u).map(drop),
            _ => e.f64(n.as_f64().unwrap_or_default()).map(drop),
        },
        Value::String(s) => e.str(s).map(drop),
        Value::Array(items) => {
            e.array(items.len() as u64)?;
            items.iter().try_for_each(|x| encode_value(e, x))
        }
        Value::Object(m) => {
            e.map(m.len() as u64)?;
            m.iter().try_for_each(|(k, x)| {
                e.str(k)?;
                encode_value(e, x)
            })
        }
    }
}

/// A JSON value in CBOR as the model's `shape` says it is typed. Members the model does not
/// know, and nulls, are left out (the SDK would skip them anyway).
fn encode_shape(e: &mut minicbor::Encoder<Vec<u8>>, model: &ServiceModel, shape: &str, v: &Value) -> Written {
    let Some(def) = model.shape(shape) else { return encode_value(e, v) };
    let target = |member: &Value| member["shape"].as_str().unwrap_or_default().to_string();
    match (def["type"].as_str().unwrap_or_default(), v) {
        ("structure", Value::Object(m)) => {
            let members = def["members"].as_object();
            let known: Vec<(&String, &Value, String)> = m
                .iter()
                .filter(|(_, x)| !x.is_null())
                .filter_map(|(k, x)| Some((k, x, target(members?.get(k)?))))
                .collect();
            e.map(known.len() as u64)?;
            known.iter().try_for_each(|(k, x, t)| {
                e.str(k)?;
                encode_shape(e, model, t, x)
            })
        }
        ("list", Value::Array(items)) => {
            let t = target(&def["member"]);
            e.array(items.len() as u64)?;
            items.iter().try_for_each(|x| encode_shape(e, model, &t, x))
        }
        ("map", Value::Object(m)) => {
            let t = target(&def["value"]);
            e.map(m.len() as u64)?;
            m.iter().try_for_each(|(k, x)| {
                e.str(k)?;
                encode_shape(e, model, &t, x)
            })
        }
        ("double" | "float", Value::Number(n)) => e.f64(n.as_f64().unwrap_or_default()).map(drop),
        ("integer" | "long" | "short" | "byte", Value::Number(n)) => match n.as_i64() {
            Some(i) => e.i64(i).map(drop),
            // A whole number moto wrote as a float (`300.0`).
            None => e.i64(n.as_f64().unwrap_or_default() as i64).map(drop),
        },
        // awsJson timestamps are epoch seconds; RPC v2 CBOR's are tag 1 on them.
        ("timestamp", Value::Number(n)) => e.tag(IanaTag::Timestamp)?.f64(n.as_f64().unwrap_or_default()).map(drop),
        ("blob", Value::String(s)) => match base64::engine::general_purpose::STANDARD.decode(s) {
            Ok(bytes) => e.bytes(&bytes).map(drop),
            Err(_) => e.str(s).map(drop),
        },
        // Strings, booleans, documents, and anything typed otherwise than the model says (the
        // SDK then reports the mismatch, naming the field).
        _ => encode_value(e, v),
    }
}

/// One CBOR data item as JSON: timestamps (tag 1) as epoch seconds, byte strings as base64.
fn decode(d: &mut minicbor::Decoder) -> Result<Value, minicbor::decode::Error> {
    Ok(match d.datatype()? {
        Type::Bool => Value::Bool(d.bool()?),
        Type::Null => {
            d.null()?;
            Value::Null
        }
        Type::Undefined => {
            d.undefined()?;
            Value::Null
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Value::from(d.u64()?),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => {
            let i = i128::from(d.int()?);
            i64::try_from(i)
                .map(Value::from)
                .map_err(|_| minicbor::decode::Error::message(format!("integer {i} does not fit 64 bits")))?
        }
        Type::F16 | Type::F32 | Type::F64 => Value::from(d.f64()?),
        Type::Bytes | Type::BytesIndef => {
            let mut bytes = Vec::new();
            for chunk in d.bytes_iter()? {
                bytes.extend_from_slice(chunk?);
            }
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        Type::String | Type::StringIndef => {
            let mut s = String::new();
            for chunk in d.str_iter()? {
                s.push_str(chunk?);
            }
            Value::String(s)
        }
        Type::Array | Type::ArrayIndef => {
            let mut items = Vec::new();
            match d.array()? {
                Some(n) => {
                    for _ in 0..n {
                        items.push(decode(d)?);
                    }
                }
                None => {
                    while d.datatype()? != Type::Break {
                        items.push(decode(d)?);
                    }
                    d.skip()?;
                }
            }
            Value::Array(items)
        }
        Type::Map | Type::MapIndef => {
            let mut m = Map::new();
            let mut entry = |d: &mut minicbor::Decoder| -> Result<(), minicbor::decode::Error> {
                let key = match decode(d)? {
                    Value::String(k) => k,
                    other => return Err(minicbor::decode::Error::message(format!("map key {other} is not a string"))),
                };
                m.insert(key, decode(d)?);
                Ok(())
            };
            match d.map()? {
                Some(n) => {
                    for _ in 0..n {
                        entry(d)?;
                    }
                }
                None => {
                    while d.datatype()? != Type::Break {
                        entry(d)?;
                    }
                    d.skip()?;
                }
            }
            Value::Object(m)
        }
        // Tag 1 (epoch-seconds timestamp) is exactly awsJson's timestamp once the tag is gone;
        // any other tag is read as its content.
        Type::Tag => {
            let _: Tag = d.tag()?;
            decode(d)?
        }
        other => return Err(minicbor::decode::Error::message(format!("unexpected CBOR item: {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cbor(f: impl FnOnce(&mut minicbor::Encoder<Vec<u8>>) -> Written) -> Vec<u8> {
        let mut e = minicbor::Encoder::new(Vec::new());
        f(&mut e).unwrap();
        e.into_writer()
    }

    #[test]
    fn requests_become_aws_json_with_the_same_document() {
        // As the SDK writes PutMetricAlarm: an indefinite map, a double, a tagged timestamp.
        let body = cbor(|e| {
            e.begin_map()?.str("AlarmName")?.str("s-api-latency")?.str("Threshold")?.f64(2500.0)?;
            e.str("Period")?.i32(300)?.str("Dimensions")?.array(1)?.map(2)?.str("Name")?.str("Stage")?;
            e.str("Value")?.str("prod")?.str("At")?.tag(IanaTag::Timestamp)?.f64(1.5)?.str("Blob")?.bytes(b"hi")?;
            e.end().map(drop)
        });
        let req = request_to_json("/service/GraniteServiceVersion20100801/operation/PutMetricAlarm", &body).unwrap();
        assert_eq!(req.operation, "PutMetricAlarm");
        assert_eq!(req.target, "GraniteServiceVersion20100801.PutMetricAlarm");
        let v: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            v,
            json!({"AlarmName": "s-api-latency", "Threshold": 2500.0, "Period": 300,
                   "Dimensions": [{"Name": "Stage", "Value": "prod"}], "At": 1.5, "Blob": "aGk="})
        );
        let empty = request_to_json("/service/S/operation/ListThings", b"").unwrap();
        assert_eq!(empty.body, b"{}");
        assert!(matches!(request_to_json("/", b""), Err(BridgeError::Path(_))));
        assert!(matches!(request_to_json("/service/S/operation/Op", &[0xff]), Err(BridgeError::Body(_))));
    }

    /// The (key, CBOR type) pairs of the map at the decoder, the map read whole.
    fn entries(d: &mut minicbor::Decoder) -> Vec<(String, Type)> {
        let n = d.map().unwrap().expect("a definite map");
        (0..n)
            .map(|_| {
                let key = d.str().unwrap().to_string();
                let t = d.datatype().unwrap();
                d.skip().unwrap();
                (key, t)
            })
            .collect()
    }

    #[test]
    fn answers_are_typed_by_the_operation_output() {
        let moto = json!({"MetricAlarms": [{"AlarmName": "a", "Threshold": 0, "Period": 300.0,
            "StateUpdatedTimestamp": 1796034276.412, "Dimensions": [{"Name": "FunctionName", "Value": "f"}],
            "NotInTheModel": 1, "AlarmDescription": null}], "CompositeAlarms": []});
        let out = response_to_cbor("monitoring", "DescribeAlarms", 200, None, moto.to_string().as_bytes());
        let mut d = minicbor::Decoder::new(&out);
        assert_eq!(d.map().unwrap(), Some(2));
        assert_eq!(d.str().unwrap(), "CompositeAlarms");
        d.skip().unwrap();
        assert_eq!(d.str().unwrap(), "MetricAlarms");
        assert_eq!(d.array().unwrap(), Some(1));
        // Unknown members and nulls are left out; a double stays one even when moto writes 0, an
        // integer written `300.0` is an integer, a timestamp carries tag 1.
        assert_eq!(
            entries(&mut d),
            [
                ("AlarmName".to_string(), Type::String),
                ("Dimensions".to_string(), Type::Array),
                ("Period".to_string(), Type::U16),
                ("StateUpdatedTimestamp".to_string(), Type::Tag),
                ("Threshold".to_string(), Type::F64),
            ]
        );
        let back = decode(&mut minicbor::Decoder::new(&out)).unwrap();
        assert_eq!(back["MetricAlarms"][0]["Dimensions"], moto["MetricAlarms"][0]["Dimensions"]);
        assert_eq!(back["MetricAlarms"][0]["StateUpdatedTimestamp"], json!(1796034276.412));
        // An empty answer is an empty map.
        assert_eq!(response_to_cbor("monitoring", "PutMetricAlarm", 200, None, b"{}"), cbor(|e| e.map(0).map(drop)));
    }

    #[test]
    fn errors_carry_type_and_message() {
        let read = |out: Vec<u8>| decode(&mut minicbor::Decoder::new(&out)).unwrap();
        let moto = br#"{"__type": "ResourceNotFound", "message": "no such alarm"}"#;
        assert_eq!(
            read(response_to_cbor("monitoring", "DeleteAlarms", 404, None, moto)),
            json!({"__type": "ResourceNotFound", "message": "no such alarm"})
        );
        // A plain-text answer (the strict model's 500), its code from x-amzn-errortype.
        assert_eq!(
            read(response_to_cbor("monitoring", "X", 400, Some("ValidationError:http://internal"), b"bad input")),
            json!({"__type": "ValidationError", "message": "bad input"})
        );
        assert_eq!(read(response_to_cbor("monitoring", "X", 500, None, b"boom"))["__type"], "HTTP 500");
    }
}
