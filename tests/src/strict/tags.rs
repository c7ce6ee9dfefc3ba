//! Tag rules per service. DynamoDB, CloudWatch Logs, Lambda, IAM and API Gateway accept only
//! letters, digits, whitespace and `_ . : / = + - @` in tag keys and values (Unicode letters and
//! digits included), keys of 1 to 128 characters, values of 0 to 256, and no `aws:` prefix
//! (docs.aws.amazon.com/amazondynamodb/latest/developerguide/TaggingRestrictions.html; the
//! tagging best-practices whitepaper). EC2 accepts any character.
//!
//! Tags travel in the input member `Tags` (or `tags`) of every create and TagResource call:
//! CreateTable, CreateLogGroup, CreateFunction, CreateRole, CreateRestApi, CreateStage,
//! CreateApiKey, CreateUsagePlan, each service's TagResource/TagRole/TagLogGroup, ...: a list of
//! `{Key, Value}` or a map.

use serde_json::Value;

use super::Exchange;
use crate::proxy::Fault;

/// The character set, as the services' own models write it.
const TAG_PATTERN: &str = r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$";
const TAG_PATTERN_IAM: &str = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*";

fn allowed_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

fn key_ok(k: &str) -> bool {
    let n = k.chars().count();
    (1..=128).contains(&n) && k.chars().all(allowed_char) && !k.to_ascii_lowercase().starts_with("aws:")
}

fn value_ok(v: &str) -> bool {
    v.chars().count() <= 256 && v.chars().all(allowed_char)
}

/// The tags of a request as `(key, value)` pairs, in order.
fn tags_of(input: &Value) -> Option<Vec<(String, String)>> {
    let tags = input.get("Tags").or_else(|| input.get("tags"))?;
    match tags {
        Value::Array(items) => Some(
            items
                .iter()
                .map(|t| {
                    let s = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                    (s("Key"), s("Value"))
                })
                .collect(),
        ),
        Value::Object(m) => {
            Some(m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        }
        _ => None,
    }
}

fn java_map(tags: &[(String, String)]) -> String {
    format!("{{{}}}", tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "))
}

/// The map-style message Lambda and CloudWatch Logs give (cloud-custodian/cloud-custodian#2520
/// for Lambda TagResource; Logs' models state the same pattern on its tag maps).
fn map_message(tags: &[(String, String)], bad_key: bool) -> String {
    let constraint = if bad_key {
        format!(
            "Map keys must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: {TAG_PATTERN}]"
        )
    } else {
        format!(
            "Map value must satisfy constraint: [Member must have length less than or equal to 256, Member must have length greater than or equal to 0, Member must satisfy regular expression pattern: {TAG_PATTERN}]"
        )
    };
    format!(
        "1 validation error detected: Value '{}' at 'tags' failed to satisfy constraint: {constraint}",
        java_map(tags)
    )
}

/// The service's refusal of a request carrying a tag it does not accept.
pub fn check(ex: &Exchange) -> Option<Fault> {
    if !matches!(ex.service.as_str(), "dynamodb" | "logs" | "lambda" | "iam" | "apigateway") {
        return None;
    }
    let tags = tags_of(&ex.input)?;
    let bad = tags.iter().enumerate().find(|(_, (k, v))| !key_ok(k) || !value_ok(v))?;
    let (i, (k, v)) = bad;
    let bad_key = !key_ok(k);
    let fault = |code: &str, message: String| Some(Fault { status: 400, code: code.to_string(), message });
    match ex.service.as_str() {
        // aws-amplify/amplify-cli#6628 and this project's issue 8 (the `*shared*` value).
        "dynamodb" => fault(
            "ValidationException",
            if bad_key { "The Tag Key provided is invalid" } else { "The Tag Value provided is invalid" }.to_string(),
        ),
        "lambda" => fault("ValidationException", map_message(&tags, bad_key)),
        "logs" => fault("InvalidParameterException", map_message(&tags, bad_key)),
        // IAM's list-style message (SWO-GS/auto-tag#90: CreateUser/TagUser tag values).
        "iam" => {
            let (what, value) = if bad_key { ("key", k) } else { ("value", v) };
            fault(
                "ValidationError",
                format!(
                    "1 validation error detected: Value '{value}' at 'tags.{}.member.{what}' failed to satisfy constraint: Member must satisfy regular expression pattern: {TAG_PATTERN_IAM}",
                    i + 1
                ),
            )
        }
        // API Gateway's own wording for tags was not found in public threads; this is the
        // wording of the services that answer BadRequestException for tags (AWS Batch,
        // nf-core/hic#224; VPC Lattice, aws-ia/terraform-aws-eks-blueprints-addons#306).
        _ => {
            let (what, value) = if bad_key { ("TagKey", k) } else { ("TagValue", v) };
            fault(
                "BadRequestException",
                format!("'{value}' is not a valid value for {what} - it contains illegal characters"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ex(service: &str, operation: &str, input: Value) -> Exchange {
        Exchange { service: service.into(), operation: operation.into(), input }
    }

    #[test]
    fn dynamodb_refuses_the_shared_lock_tag_value() {
        let f = check(&ex(
            "dynamodb",
            "CreateTable",
            json!({"TableName": "movies-stack-locks", "Tags": [{"Key": "movies-stack:stack", "Value": "*shared*"}]}),
        ))
        .expect("refused");
        assert_eq!(
            (f.status, f.code.as_str(), f.message.as_str()),
            (400, "ValidationException", "The Tag Value provided is invalid")
        );
        let f = check(&ex("dynamodb", "TagResource", json!({"Tags": [{"Key": "aws:x", "Value": "v"}]}))).unwrap();
        assert_eq!(f.message, "The Tag Key provided is invalid");
    }

    #[test]
    fn each_service_answers_in_its_own_words() {
        let f = check(&ex("lambda", "CreateFunction", json!({"Tags": {"k": "a*b"}}))).unwrap();
        assert_eq!(f.code, "ValidationException");
        assert!(
            f.message.contains("at 'tags' failed to satisfy constraint: Map value must satisfy constraint"),
            "{}",
            f.message
        );
        let f = check(&ex("logs", "CreateLogGroup", json!({"tags": {"bad!": "v"}}))).unwrap();
        assert_eq!(f.code, "InvalidParameterException");
        assert!(f.message.contains("Map keys must satisfy"));
        let f =
            check(&ex("iam", "CreateRole", json!({"Tags": [{"Key": "ok", "Value": "v"}, {"Key": "k", "Value": "*"}]})))
                .unwrap();
        assert_eq!(f.code, "ValidationError");
        assert!(f.message.contains("at 'tags.2.member.value'"), "{}", f.message);
        let f = check(&ex("apigateway", "CreateRestApi", json!({"tags": {"k": "x#y"}}))).unwrap();
        assert_eq!(f.code, "BadRequestException");
    }

    #[test]
    fn what_the_rules_allow() {
        let fine = json!({"Tags": [{"Key": "Név 名前 _.:/=+-@", "Value": ""}, {"Key": "k", "Value": "x".repeat(256)}]});
        assert!(check(&ex("dynamodb", "CreateTable", fine)).is_none());
        let long_key = json!({"Tags": [{"Key": "k".repeat(129), "Value": "v"}]});
        assert!(check(&ex("iam", "TagRole", long_key)).is_some());
        // EC2 accepts any character.
        assert!(check(&ex("ec2", "CreateTags", json!({"Tags": [{"Key": "*", "Value": "*shared*"}]}))).is_none());
    }
}
