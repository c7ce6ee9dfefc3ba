//! An HTTP request read back into its operation's input shape, as AWS's front end does: by the
//! service's wire protocol (json, query, ec2, rest-json), member names from the model.

use serde_json::{Map, Value};

use super::botocore::{ServiceModel, WireProtocol};
use crate::proxy::form_pairs;

/// The parts of an HTTP request the model reads.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The raw (still percent-encoded) path, without the query.
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a hyper::HeaderMap,
    pub body: &'a [u8],
}

/// An identified operation and its input, keyed by the model's member names.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub operation: String,
    pub input: Value,
}

/// Why a request could not be read as one of the model's operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no such operation in AWS's service model ({service} {api_version}): {what}")]
    NoOperation { service: String, api_version: String, what: String },
    #[error("the service model ({service}) speaks {protocols:?}, none of which the strict model reads")]
    UnsupportedProtocol { service: String, protocols: Vec<String> },
    #[error("the request body is not what the {protocol} protocol sends: {reason}")]
    Body { protocol: &'static str, reason: String },
}

/// Identify the operation and read its input.
pub fn parse(model: &ServiceModel, req: &HttpRequest) -> Result<Parsed, ParseError> {
    let no_op = |what: String| ParseError::NoOperation {
        service: model.folder.clone(),
        api_version: model.api_version.clone(),
        what,
    };
    let protocol = model.protocol.ok_or_else(|| ParseError::UnsupportedProtocol {
        service: model.folder.clone(),
        protocols: model.protocol_names.clone(),
    })?;
    match protocol {
        WireProtocol::Json => {
            let target = req.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
            let (prefix, operation) = target.rsplit_once('.').unwrap_or(("", target));
            // The SDKs send either botocore's target prefix or its last part
            // (`com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101` / `CloudTrail_20131101`).
            let prefix_ok =
                model.target_prefix.as_deref().is_none_or(|p| p == prefix || p.ends_with(&format!(".{prefix}")));
            if !prefix_ok || model.operation(operation).is_none() {
                return Err(no_op(format!("X-Amz-Target {target:?}")));
            }
            let body: Value = if req.body.is_empty() {
                Value::Object(Map::new())
            } else {
                serde_json::from_slice(req.body)
                    .map_err(|e| ParseError::Body { protocol: "json", reason: e.to_string() })?
            };
            let input = match model.input_shape(operation) {
                Some(shape) => json_value(model, shape, &body),
                None => Value::Object(Map::new()),
            };
            Ok(Parsed { operation: operation.to_string(), input })
        }
        WireProtocol::Query | WireProtocol::Ec2 => {
            let mut pairs = form_pairs(req.query);
            pairs.extend(form_pairs(std::str::from_utf8(req.body).unwrap_or("")));
            let action = pairs.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()).unwrap_or_default();
            if model.operation(&action).is_none() {
                return Err(no_op(format!("Action {action:?}")));
            }
            let ec2 = protocol == WireProtocol::Ec2;
            let form = Form(pairs);
            let input = match model.input_shape(&action) {
                Some(shape) => query_value(model, shape, "", &form, ec2).unwrap_or(Value::Object(Map::new())),
                None => Value::Object(Map::new()),
            };
            Ok(Parsed { operation: action, input })
        }
        WireProtocol::RestJson => {
            let query = form_pairs(req.query);
            let m = model
                .rest_operation(req.method, req.path, &query)
                .ok_or_else(|| no_op(format!("{} {}", req.method, req.path)))?;
            let input = match model.input_shape(&m.operation) {
                Some(shape) => rest_input(model, shape, &m.labels, &query, req)?,
                None => Value::Object(Map::new()),
            };
            Ok(Parsed { operation: m.operation, input })
        }
    }
}

fn members(shape: &Value) -> impl Iterator<Item = (&String, &Value)> {
    shape["members"].as_object().into_iter().flat_map(|m| m.iter())
}

/// The member's name on the wire (JSON key): `locationName`, else the member name.
fn wire_name<'a>(name: &'a str, member: &'a Value) -> &'a str {
    member["locationName"].as_str().unwrap_or(name)
}

/// A JSON document read into the shape: wire names become member names, recursively.
fn json_value(model: &ServiceModel, shape_name: &str, v: &Value) -> Value {
    let Some(shape) = model.shape(shape_name) else { return v.clone() };
    match (shape["type"].as_str(), v) {
        (Some("structure"), Value::Object(obj)) => {
            let mut out = Map::new();
            for (name, member) in members(shape) {
                if let (Some(target), Some(val)) = (member["shape"].as_str(), obj.get(wire_name(name, member))) {
                    out.insert(name.clone(), json_value(model, target, val));
                }
            }
            Value::Object(out)
        }
        (Some("list"), Value::Array(items)) => match shape["member"]["shape"].as_str() {
            Some(target) => Value::Array(items.iter().map(|i| json_value(model, target, i)).collect()),
            None => v.clone(),
        },
        (Some("map"), Value::Object(obj)) => match shape["value"]["shape"].as_str() {
            Some(target) => Value::Object(obj.iter().map(|(k, i)| (k.clone(), json_value(model, target, i))).collect()),
            None => v.clone(),
        },
        _ => v.clone(),
    }
}

/// Decoded form fields, in order.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether any field is `key` itself or under `key.`.
    fn has_under(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key || k.strip_prefix(key).is_some_and(|rest| rest.starts_with('.')))
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// A member's key in a query form. awsQuery: `locationName`, else the member name. EC2:
/// `queryName`, else the capitalised `locationName`, else the member name.
fn query_name(name: &str, member: &Value, ec2: bool) -> String {
    if ec2 {
        if let Some(q) = member["queryName"].as_str() {
            return q.to_string();
        }
        if let Some(l) = member["locationName"].as_str() {
            return capitalise(l);
        }
        return name.to_string();
    }
    wire_name(name, member).to_string()
}

/// A scalar form value typed by its shape (numbers and booleans; everything else a string).
fn scalar(shape: &Value, raw: &str) -> Value {
    match shape["type"].as_str() {
        Some("integer" | "long") => raw.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(raw)),
        Some("float" | "double") => raw.parse::<f64>().map(Value::from).unwrap_or_else(|_| Value::from(raw)),
        Some("boolean") => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::from(raw),
        },
        _ => Value::from(raw),
    }
}

/// Read the value at `key` of a query form as `shape_name` (`None`: absent).
fn query_value(model: &ServiceModel, shape_name: &str, key: &str, form: &Form, ec2: bool) -> Option<Value> {
    let shape = model.shape(shape_name)?;
    let under = |k: &str| if key.is_empty() { k.to_string() } else { format!("{key}.{k}") };
    match shape["type"].as_str() {
        Some("structure") => {
            let mut out = Map::new();
            for (name, member) in members(shape) {
                let Some(target) = member["shape"].as_str() else { continue };
                let member_key = under(&query_name(name, member, ec2));
                let flattened = member["flattened"].as_bool().unwrap_or(false);
                let v = if flattened && !ec2 {
                    query_flattened(model, target, &member_key, form)
                } else {
                    query_value(model, target, &member_key, form, ec2)
                };
                if let Some(v) = v {
                    out.insert(name.clone(), v);
                }
            }
            (key.is_empty() || !out.is_empty() || form.has_under(key)).then_some(Value::Object(out))
        }
        Some("list") => {
            let target = shape["member"]["shape"].as_str()?;
            // EC2 lists are always flattened (`Name.N`); awsQuery lists are `Name.member.N`
            // unless the list is flattened.
            let prefix = if ec2 || shape["flattened"].as_bool().unwrap_or(false) {
                key.to_string()
            } else {
                format!("{key}.{}", shape["member"]["locationName"].as_str().unwrap_or("member"))
            };
            list_items(model, target, &prefix, form, ec2)
        }
        Some("map") => {
            let flattened = shape["flattened"].as_bool().unwrap_or(false);
            let prefix = if flattened { key.to_string() } else { format!("{key}.entry") };
            map_entries(model, shape, &prefix, form, ec2)
        }
        _ => form.get(key).map(|raw| scalar(shape, raw)),
    }
}

/// A flattened awsQuery member (`Name.N`, or the member's own `locationName`).
fn query_flattened(model: &ServiceModel, target: &str, key: &str, form: &Form) -> Option<Value> {
    let shape = model.shape(target)?;
    match shape["type"].as_str() {
        Some("list") => {
            let item = shape["member"]["shape"].as_str()?;
            let prefix = match shape["member"]["locationName"].as_str() {
                Some(name) => match key.rsplit_once('.') {
                    Some((parent, _)) => format!("{parent}.{name}"),
                    None => name.to_string(),
                },
                None => key.to_string(),
            };
            list_items(model, item, &prefix, form, false)
        }
        Some("map") => map_entries(model, shape, key, form, false),
        _ => query_value(model, target, key, form, false),
    }
}

fn list_items(model: &ServiceModel, item: &str, prefix: &str, form: &Form, ec2: bool) -> Option<Value> {
    let mut items = Vec::new();
    for n in 1.. {
        let k = format!("{prefix}.{n}");
        if !form.has_under(&k) {
            break;
        }
        items.push(query_value(model, item, &k, form, ec2).unwrap_or(Value::Null));
    }
    // `Name=` alone is how the query protocols send an empty list.
    (!items.is_empty() || form.get(prefix).is_some()).then_some(Value::Array(items))
}

fn map_entries(model: &ServiceModel, shape: &Value, prefix: &str, form: &Form, ec2: bool) -> Option<Value> {
    let key_name = shape["key"]["locationName"].as_str().unwrap_or("key");
    let value_name = shape["value"]["locationName"].as_str().unwrap_or("value");
    let value_shape = shape["value"]["shape"].as_str()?;
    let mut out = Map::new();
    for n in 1.. {
        let entry = format!("{prefix}.{n}");
        if !form.has_under(&entry) {
            break;
        }
        let k = form.get(&format!("{entry}.{key_name}")).unwrap_or_default().to_string();
        let v = query_value(model, value_shape, &format!("{entry}.{value_name}"), form, ec2).unwrap_or(Value::Null);
        out.insert(k, v);
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// A restJson1 request: URI labels, query string and header members, then the JSON body (or the
/// `payload` member).
fn rest_input(
    model: &ServiceModel,
    shape_name: &str,
    labels: &[(String, String)],
    query: &[(String, String)],
    req: &HttpRequest,
) -> Result<Value, ParseError> {
    let Some(shape) = model.shape(shape_name) else { return Ok(Value::Object(Map::new())) };
    let payload = shape["payload"].as_str();
    let mut out = Map::new();
    let mut body_members = Map::new();
    let body: Option<Value> = if req.body.is_empty() {
        None
    } else if payload.is_some_and(|p| {
        members(shape).any(|(n, m)| {
            n == p && model.shape(m["shape"].as_str().unwrap_or("")).is_some_and(|s| s["type"] != "structure")
        })
    }) {
        // A blob or string payload (Invoke's event): nothing to validate inside it.
        None
    } else {
        Some(
            serde_json::from_slice(req.body)
                .map_err(|e| ParseError::Body { protocol: "rest-json", reason: e.to_string() })?,
        )
    };
    for (name, member) in members(shape) {
        let Some(target) = member["shape"].as_str() else { continue };
        let target_shape = model.shape(target).cloned().unwrap_or(Value::Null);
        let location_name = wire_name(name, member);
        let value = match member["location"].as_str() {
            Some("uri") => labels.iter().find(|(l, _)| l == location_name).map(|(_, v)| scalar(&target_shape, v)),
            Some("querystring") => {
                let values: Vec<&String> = query.iter().filter(|(k, _)| k == location_name).map(|(_, v)| v).collect();
                if target_shape["type"] == "list" {
                    let item = model.shape(target_shape["member"]["shape"].as_str().unwrap_or("")).cloned();
                    (!values.is_empty()).then(|| {
                        Value::Array(values.iter().map(|v| scalar(item.as_ref().unwrap_or(&Value::Null), v)).collect())
                    })
                } else {
                    values.first().map(|v| scalar(&target_shape, v))
                }
            }
            Some("header") => {
                req.headers.get(location_name).and_then(|v| v.to_str().ok()).map(|v| scalar(&target_shape, v))
            }
            // Prefixed header maps, status codes: never carried by a request we validate.
            Some(_) => None,
            None if Some(name.as_str()) == payload => body.as_ref().map(|b| json_value(model, target, b)),
            None => {
                if payload.is_none()
                    && let Some(v) = body.as_ref().and_then(|b| b.get(location_name))
                {
                    body_members.insert(name.clone(), json_value(model, target, v));
                }
                None
            }
        };
        if let Some(v) = value {
            out.insert(name.clone(), v);
        }
    }
    out.extend(body_members);
    Ok(Value::Object(out))
}
