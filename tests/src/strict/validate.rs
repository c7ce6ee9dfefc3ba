//! Validation of an operation's input against its shape, as AWS's front end does before the
//! service sees the request: required members, string lengths and patterns, enums, number
//! ranges, list and map sizes, recursively. Answers in AWS's words
//! (`1 validation error detected: Value '...' at 'functionName' failed to satisfy constraint:
//! Member must satisfy regular expression pattern: ...`).

use serde_json::Value;

use super::botocore::{Pattern, ServiceModel};
use crate::proxy::Fault;

/// One failed constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// AWS's path to the value: `functionName`, `tags.1.member.value`.
    pub path: String,
    /// The member's name on the wire, for EC2's `MissingParameter` message.
    pub wire_name: String,
    /// How AWS prints the value: `'text'`, `'5'`, or `null`.
    pub value: String,
    /// `Member must ...` (or `Map value must satisfy constraint: [...]`).
    pub constraint: String,
    /// A required member is absent.
    pub missing: bool,
}

impl Violation {
    pub fn sentence(&self) -> String {
        format!("Value {} at '{}' failed to satisfy constraint: {}", self.value, self.path, self.constraint)
    }
}

/// A pattern the model states but Rust's regex engine cannot check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NotCheckable {
    pub shape: String,
    pub pattern: String,
    pub reason: String,
}

/// What validating one input found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub violations: Vec<Violation>,
    pub not_checkable: Vec<NotCheckable>,
}

/// Validate `input` (keyed by member names) against the operation's input shape.
pub fn validate(model: &ServiceModel, operation: &str, input: &Value) -> Outcome {
    let mut out = Outcome::default();
    if let Some(shape) = model.input_shape(operation) {
        let mut v = Validator { model, out: &mut out };
        v.structure(shape, input, "");
    }
    out
}

struct Validator<'a> {
    model: &'a ServiceModel,
    out: &'a mut Outcome,
}

fn lower_camel(name: &str) -> String {
    let mut c = name.chars();
    c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_string() } else { format!("{path}.{name}") }
}

/// AWS prints values Java-style: strings bare, lists `[a, b]`, maps `{k=v}`.
fn java_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(java_text).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => {
            format!("{{{}}}", m.iter().map(|(k, v)| format!("{k}={}", java_text(v))).collect::<Vec<_>>().join(", "))
        }
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

fn quoted(v: &Value) -> String {
    if v.is_null() { "null".to_string() } else { format!("'{}'", java_text(v)) }
}

impl Validator<'_> {
    fn violation(&mut self, path: &str, wire_name: &str, value: &Value, constraint: String) {
        self.out.violations.push(Violation {
            path: path.to_string(),
            wire_name: wire_name.to_string(),
            value: quoted(value),
            constraint,
            missing: false,
        });
    }

    fn structure(&mut self, shape_name: &str, value: &Value, path: &str) {
        let Some(shape) = self.model.shape(shape_name) else { return };
        let Some(obj) = value.as_object() else { return };
        let required: Vec<&str> =
            shape["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let Some(members) = shape["members"].as_object() else { return };
        for (name, member) in members {
            let member_path = join(path, &lower_camel(name));
            let wire = member["queryName"].as_str().or(member["locationName"].as_str()).unwrap_or(name);
            match obj.get(name) {
                None | Some(Value::Null) => {
                    if required.contains(&name.as_str()) {
                        self.out.violations.push(Violation {
                            path: member_path,
                            wire_name: wire.to_string(),
                            value: "null".to_string(),
                            constraint: "Member must not be null".to_string(),
                            missing: true,
                        });
                    }
                }
                Some(v) => {
                    if let Some(target) = member["shape"].as_str() {
                        self.value(target, v, &member_path, wire);
                    }
                }
            }
        }
    }

    fn value(&mut self, shape_name: &str, v: &Value, path: &str, wire: &str) {
        let Some(shape) = self.model.shape(shape_name) else { return };
        match shape["type"].as_str() {
            Some("structure") => self.structure(shape_name, v, path),
            Some("list") => {
                let Some(items) = v.as_array() else { return };
                self.size(shape, items.len(), v, path, wire);
                if let Some(item) = shape["member"]["shape"].as_str() {
                    for (i, it) in items.iter().enumerate() {
                        self.value(item, it, &format!("{path}.{}.member", i + 1), wire);
                    }
                }
            }
            Some("map") => {
                let Some(entries) = v.as_object() else { return };
                self.size(shape, entries.len(), v, path, wire);
                self.map_entries(shape, entries, v, path, wire);
            }
            Some("string") => {
                if let Some(s) = v.as_str() {
                    for c in self.string_failures(shape_name, shape, s) {
                        self.violation(path, wire, v, c);
                    }
                }
            }
            Some("integer" | "long" | "float" | "double") => {
                let Some(n) = v.as_f64() else {
                    if v.is_string() {
                        self.violation(path, wire, v, "Member must be a number".to_string());
                    }
                    return;
                };
                if let Some(min) = shape["min"].as_f64().filter(|m| n < *m) {
                    self.violation(
                        path,
                        wire,
                        v,
                        format!("Member must have value greater than or equal to {}", num(min)),
                    );
                }
                if let Some(max) = shape["max"].as_f64().filter(|m| n > *m) {
                    self.violation(path, wire, v, format!("Member must have value less than or equal to {}", num(max)));
                }
            }
            _ => {}
        }
    }

    fn size(&mut self, shape: &Value, len: usize, v: &Value, path: &str, wire: &str) {
        if let Some(min) = shape["min"].as_u64().filter(|m| (len as u64) < *m) {
            self.violation(path, wire, v, format!("Member must have length greater than or equal to {min}"));
        }
        if let Some(max) = shape["max"].as_u64().filter(|m| (len as u64) > *m) {
            self.violation(path, wire, v, format!("Member must have length less than or equal to {max}"));
        }
    }

    /// AWS reports a bad map key or value once, at the map, listing every constraint of the
    /// key or value shape (cloud-custodian/cloud-custodian#2520: Lambda TagResource).
    fn map_entries(
        &mut self,
        shape: &Value,
        entries: &serde_json::Map<String, Value>,
        v: &Value,
        path: &str,
        wire: &str,
    ) {
        let key_shape = shape["key"]["shape"].as_str().unwrap_or("");
        if let Some(ks) = self.model.shape(key_shape).cloned()
            && entries.keys().any(|k| !self.string_failures(key_shape, &ks, k).is_empty())
        {
            let all = string_constraints(&ks);
            self.violation(path, wire, v, format!("Map keys must satisfy constraint: [{}]", all.join(", ")));
        }
        let value_shape = shape["value"]["shape"].as_str().unwrap_or("");
        let Some(vs) = self.model.shape(value_shape).cloned() else { return };
        if vs["type"] == "string" {
            if entries
                .values()
                .any(|x| x.as_str().is_some_and(|s| !self.string_failures(value_shape, &vs, s).is_empty()))
            {
                let all = string_constraints(&vs);
                self.violation(path, wire, v, format!("Map value must satisfy constraint: [{}]", all.join(", ")));
            }
        } else {
            for (k, x) in entries {
                self.value(value_shape, x, &format!("{path}.{k}"), wire);
            }
        }
    }

    /// The failed constraints of a string, in AWS's order (length, then pattern, then enum).
    fn string_failures(&mut self, shape_name: &str, shape: &Value, s: &str) -> Vec<String> {
        let mut failed = Vec::new();
        // Java counts UTF-16 units; for the characters our requests carry, chars are the same.
        let len = s.chars().count() as u64;
        if let Some(max) = shape["max"].as_u64().filter(|m| len > *m) {
            failed.push(format!("Member must have length less than or equal to {max}"));
        }
        if let Some(min) = shape["min"].as_u64().filter(|m| len < *m) {
            failed.push(format!("Member must have length greater than or equal to {min}"));
        }
        if let Some(p) = shape["pattern"].as_str() {
            match self.model.pattern(p) {
                Pattern::Checkable(r) => {
                    if !r.is_match(s) {
                        failed.push(format!("Member must satisfy regular expression pattern: {p}"));
                    }
                }
                Pattern::NotCheckable(reason) => {
                    let nc = NotCheckable { shape: shape_name.to_string(), pattern: p.to_string(), reason };
                    if !self.out.not_checkable.contains(&nc) {
                        self.out.not_checkable.push(nc);
                    }
                }
            }
        }
        if let Some(values) = shape["enum"].as_array()
            && !values.iter().any(|e| e.as_str() == Some(s))
        {
            let set: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
            failed.push(format!("Member must satisfy enum value set: [{}]", set.join(", ")));
        }
        failed
    }
}

/// Every constraint a string shape states, as AWS lists them in a map's message.
fn string_constraints(shape: &Value) -> Vec<String> {
    let mut all = Vec::new();
    if let Some(max) = shape["max"].as_u64() {
        all.push(format!("Member must have length less than or equal to {max}"));
    }
    if let Some(min) = shape["min"].as_u64() {
        all.push(format!("Member must have length greater than or equal to {min}"));
    }
    if let Some(p) = shape["pattern"].as_str() {
        all.push(format!("Member must satisfy regular expression pattern: {p}"));
    }
    all
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 { format!("{}", x as i64) } else { x.to_string() }
}

/// `1 validation error detected: ...` / `2 validation errors detected: ...; ...`.
pub fn message(violations: &[Violation]) -> String {
    let n = violations.len();
    let sentences: Vec<String> = violations.iter().map(Violation::sentence).collect();
    format!("{n} validation error{} detected: {}", if n == 1 { "" } else { "s" }, sentences.join("; "))
}

/// The answer AWS gives a request that fails validation, in the service's own error shape.
pub fn refusal(service: &str, violations: &[Violation]) -> Fault {
    let fault = |code: &str, message: String| Fault { status: 400, code: code.to_string(), message };
    match service {
        // EC2 names the first bad parameter in its own words.
        "ec2" => match violations.iter().find(|v| v.missing) {
            Some(v) => fault("MissingParameter", format!("The request must contain the parameter {}", v.wire_name)),
            None => {
                let v = &violations[0];
                fault(
                    "InvalidParameterValue",
                    format!(
                        "Value ({}) for parameter {} is invalid. {}",
                        v.value.trim_matches('\''),
                        v.wire_name,
                        v.constraint
                    ),
                )
            }
        },
        // awsQuery services: `ValidationError` (IAM, STS, CloudFormation).
        "iam" | "sts" | "cloudformation" => fault("ValidationError", message(violations)),
        "logs" => fault("InvalidParameterException", message(violations)),
        "apigateway" => fault("BadRequestException", message(violations)),
        _ => fault("ValidationException", message(violations)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strict::botocore::service;
    use crate::strict::request::{HttpRequest, parse};
    use hyper::HeaderMap;

    fn req<'a>(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> HttpRequest<'a> {
        HttpRequest { method, path, query, headers, body }
    }

    fn target(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-amz-target", t.parse().unwrap());
        h
    }

    /// Parse and validate one request; the refusal, if any.
    fn judge(service_name: &str, r: &HttpRequest) -> Option<Fault> {
        let model = service(service_name).expect("model");
        let p = parse(&model, r).expect("parsed");
        let out = validate(&model, &p.operation, &p.input);
        (!out.violations.is_empty()).then(|| refusal(service_name, &out.violations))
    }

    #[test]
    fn rest_json_a_placeholder_function_name_fails_lambdas_pattern() {
        let h = HeaderMap::new();
        let r = req("GET", "/2015-03-31/functions/%28known%20after%20apply%29/policy", "", &h, b"");
        let f = judge("lambda", &r).expect("refused");
        assert_eq!((f.status, f.code.as_str()), (400, "ValidationException"));
        assert!(
            f.message.starts_with(
                "1 validation error detected: Value '(known after apply)' at 'functionName' failed to satisfy constraint: \
                 Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?"
            ),
            "{}",
            f.message
        );
        let ok = req("GET", "/2015-03-31/functions/apigw_handler/policy", "", &h, b"");
        assert!(judge("lambda", &ok).is_none());
        // Query-string members are read and checked too (MaxItems 1..10000).
        let bad_max = req("GET", "/2015-03-31/functions/", "MaxItems=0", &h, b"");
        assert!(
            judge("lambda", &bad_max).unwrap().message.contains(
                "at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )
        );
        // The JSON body: an enum violated, an integer out of range.
        let body = br#"{"FunctionName":"f","Role":"arn:aws:iam::123456789012:role/r","Code":{"ZipFile":"UEsDBA=="},"Runtime":"cobol99","Timeout":5401}"#;
        let f = judge("lambda", &req("POST", "/2015-03-31/functions", "", &h, body)).unwrap();
        assert!(f.message.starts_with("2 validation errors detected: "), "{}", f.message);
        assert!(f.message.contains("at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: ["));
        assert!(f.message.contains(
            "Value '5401' at 'timeout' failed to satisfy constraint: Member must have value less than or equal to 5400"
        ));
    }

    #[test]
    fn json_required_members_and_dynamodb_tag_lengths() {
        let h = target("DynamoDB_20120810.CreateTable");
        let f = judge("dynamodb", &req("POST", "/", "", &h, br#"{"BillingMode":"PAY_PER_REQUEST"}"#)).unwrap();
        assert!(
            f.message.contains("Value null at 'tableName' failed to satisfy constraint: Member must not be null"),
            "{}",
            f.message
        );
        let long = format!(
            r#"{{"TableName":"t1","KeySchema":[{{"AttributeName":"id","KeyType":"HASH"}}],"AttributeDefinitions":[{{"AttributeName":"id","AttributeType":"S"}}],"BillingMode":"PAY_PER_REQUEST","Tags":[{{"Key":"k","Value":"{}"}}]}}"#,
            "v".repeat(257)
        );
        let f = judge("dynamodb", &req("POST", "/", "", &h, long.as_bytes())).unwrap();
        assert!(f.message.contains("at 'tags.1.member.value' failed to satisfy constraint: Member must have length less than or equal to 256"), "{}", f.message);
        // The model has no character rule for DynamoDB tag values: that is the tag rules' job.
        let shared = long.replace(&"v".repeat(257), "*shared*");
        assert!(judge("dynamodb", &req("POST", "/", "", &h, shared.as_bytes())).is_none());

        let logs = target("Logs_20140328.PutRetentionPolicy");
        let f = judge("logs", &req("POST", "/", "", &logs, br#"{"logGroupName":"g","retentionInDays":366}"#));
        // retentionInDays is a plain integer in the model (AWS checks the allowed values itself).
        assert!(f.is_none());
        let f = judge("logs", &req("POST", "/", "", &logs, br#"{"logGroupName":"bad name!","retentionInDays":7}"#))
            .unwrap();
        assert_eq!(f.code, "InvalidParameterException");
    }

    #[test]
    fn query_lists_maps_and_nested_members() {
        let h = HeaderMap::new();
        let body = b"Action=CreateRole&Version=2010-05-08&RoleName=r&AssumeRolePolicyDocument=%7B%7D&Tags.member.1.Key=k&Tags.member.1.Value=a%2Ab";
        let f = judge("iam", &req("POST", "/", "", &h, body)).unwrap();
        assert_eq!(f.code, "ValidationError");
        assert!(
            f.message.contains("Value 'a*b' at 'tags.1.member.value' failed to satisfy constraint"),
            "{}",
            f.message
        );
        let missing = b"Action=CreateRole&Version=2010-05-08&RoleName=r";
        let f = judge("iam", &req("POST", "/", "", &h, missing)).unwrap();
        assert!(
            f.message.contains("at 'assumeRolePolicyDocument' failed to satisfy constraint: Member must not be null")
        );
        let cfn = b"Action=DescribeStacks&Version=2010-05-15&StackName=";
        assert!(judge("cloudformation", &req("POST", "/", "", &h, cfn)).is_none(), "StackName has no minimum");
    }

    #[test]
    fn ec2_flattened_lists_and_its_own_error_codes() {
        let h = HeaderMap::new();
        let tags = b"Action=CreateTags&Version=2016-11-15&ResourceId.1=vpc-1&Tag.1.Key=movies-stack%3Ashared&Tag.1.Value=%2Ashared%2A";
        assert!(judge("ec2", &req("POST", "/", "", &h, tags)).is_none(), "EC2 accepts any character in tags");
        let model = service("ec2").unwrap();
        let p = parse(&model, &req("POST", "/", "", &h, tags)).unwrap();
        assert_eq!(p.input["Resources"][0], "vpc-1");
        assert_eq!(p.input["Tags"][0]["Value"], "*shared*");
        let missing = b"Action=CreateTags&Version=2016-11-15&Tag.1.Key=k";
        let f = judge("ec2", &req("POST", "/", "", &h, missing)).unwrap();
        assert_eq!(
            (f.code.as_str(), f.message.as_str()),
            ("MissingParameter", "The request must contain the parameter ResourceId")
        );
        let bad_enum = b"Action=CreateFlowLogs&Version=2016-11-15&ResourceId.1=vpc-1&ResourceType=Volcano";
        let f = judge("ec2", &req("POST", "/", "", &h, bad_enum)).unwrap();
        assert_eq!(f.code, "InvalidParameterValue");
        assert!(f.message.starts_with("Value (Volcano) for parameter ResourceType is invalid."), "{}", f.message);
    }

    #[test]
    fn api_gateway_patch_operations_and_unknown_operations() {
        let h = HeaderMap::new();
        let body = br#"{"patchOperations":[{"op":"replace","path":"/cloudwatchRoleArn","value":"arn"}]}"#;
        assert!(judge("apigateway", &req("PATCH", "/account", "", &h, body)).is_none());
        let bad = br#"{"patchOperations":[{"op":"frobnicate","path":"/x"}]}"#;
        assert_eq!(judge("apigateway", &req("PATCH", "/account", "", &h, bad)).unwrap().code, "BadRequestException");
        let no_name = br#"{"description":"d"}"#;
        assert!(judge("apigateway", &req("POST", "/restapis", "", &h, no_name)).unwrap().message.contains("at 'name'"));

        let model = service("apigateway").unwrap();
        let err = parse(&model, &req("PATCH", "/restapis/a1/widgets", "", &h, b"{}")).unwrap_err();
        assert!(err.to_string().starts_with("no such operation in AWS's service model (apigateway "), "{err}");
        let trail = service("cloudtrail").unwrap();
        let short = target("CloudTrail_20131101.DescribeTrails");
        assert_eq!(parse(&trail, &req("POST", "/", "", &short, b"{}")).unwrap().operation, "DescribeTrails");
        let ddb = service("dynamodb").unwrap();
        let t = target("DynamoDB_20120810.FrobnicateTable");
        assert!(parse(&ddb, &req("POST", "/", "", &t, b"{}")).is_err());
    }
}
