//! IAM policy evaluation as AWS documents it ("Policy evaluation logic", IAM User Guide): an
//! explicit `Deny` wins, then an `Allow` whose action, resource and every condition match, else
//! the request is implicitly denied. Pure: the request context is given, nothing is fetched.
//!
//! What is implemented is what identity policies of this project (and an attacker's attempts in
//! the escalation test) use: `Action`/`NotAction`, `Resource`/`NotResource` with `*` and `?`, and
//! the condition operators `String*`, `Arn*`, `Bool`, `Null`, with `ForAllValues:`/`ForAnyValue:`
//! and `...IfExists`. An operator it does not know makes the statement fail to match and is
//! reported, so that a policy using one is never silently allowed.

use std::collections::BTreeMap;

use serde_json::Value;

/// One authorization request: an action on one resource, with the request's context keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `service:Action`, as AWS names it (`apigateway:PUT`, `ec2:CreateSubnet`).
    pub action: String,
    /// The resource's ARN, or `*` for an action that supports no resource type.
    pub resource: String,
    /// Context keys, lower-case (`aws:requesttag/movies-stack:stack`), each with its values.
    pub context: BTreeMap<String, Vec<String>>,
}

impl Request {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Request {
        Request { action: action.into(), resource: resource.into(), context: BTreeMap::new() }
    }

    /// Add a context key (its name is case-insensitive, as in IAM).
    pub fn with(mut self, key: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Request {
        self.context.entry(key.to_ascii_lowercase()).or_default().extend(values.into_iter().map(Into::into));
        self
    }
}

/// The outcome of evaluating a request against one or more policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the statement with this Sid (or its index when it has none).
    Allow(String),
    /// Denied by an explicit `Deny` statement.
    ExplicitDeny(String),
    /// No statement allows it.
    ImplicitDeny,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` one character. Actions match without
/// regard to case, resources and condition values with it (the caller lower-cases for actions).
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

fn action_matches(st: &Value, action: &str) -> bool {
    let action = action.to_ascii_lowercase();
    let any = |v: &Value| strings(v).iter().any(|p| wildcard(&p.to_ascii_lowercase(), &action));
    match (st.get("Action"), st.get("NotAction")) {
        (Some(a), _) => any(a),
        (None, Some(n)) => !any(n),
        (None, None) => false,
    }
}

fn resource_matches(st: &Value, resource: &str) -> bool {
    let any = |v: &Value| strings(v).iter().any(|p| wildcard(p, resource));
    match (st.get("Resource"), st.get("NotResource")) {
        (Some(r), _) => any(r),
        (None, Some(n)) => !any(n),
        (None, None) => false,
    }
}

/// One value of a condition against one context value.
fn value_matches(base: &str, condition: &str, context: &str) -> Option<bool> {
    Some(match base {
        "StringEquals" | "ArnEquals" => condition == context,
        "StringEqualsIgnoreCase" => condition.eq_ignore_ascii_case(context),
        "StringLike" | "ArnLike" => wildcard(condition, context),
        "Bool" => condition.eq_ignore_ascii_case(context),
        _ => return None,
    })
}

/// The positive form of a negated operator (`StringNotEquals` → `StringEquals`).
fn positive(base: &str) -> Option<&'static str> {
    Some(match base {
        "StringNotEquals" => "StringEquals",
        "StringNotEqualsIgnoreCase" => "StringEqualsIgnoreCase",
        "StringNotLike" => "StringLike",
        "ArnNotEquals" => "ArnEquals",
        "ArnNotLike" => "ArnLike",
        _ => return None,
    })
}

/// Does one `operator: { key: values }` entry hold? `Err` names an operator this evaluator does
/// not implement.
fn condition_holds(
    operator: &str,
    key: &str,
    wanted: &[String],
    ctx: &BTreeMap<String, Vec<String>>,
) -> Result<bool, String> {
    let (set, rest) = if let Some(r) = operator.strip_prefix("ForAllValues:") {
        (Some(true), r)
    } else if let Some(r) = operator.strip_prefix("ForAnyValue:") {
        (Some(false), r)
    } else {
        (None, operator)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (rest, false),
    };
    let present = ctx.get(&key.to_ascii_lowercase()).filter(|v| !v.is_empty());
    if base == "Null" {
        let want_absent = wanted.iter().any(|w| w.eq_ignore_ascii_case("true"));
        return Ok(want_absent == present.is_none());
    }
    let (base, negated) = match positive(base) {
        Some(p) => (p, true),
        None => (base, false),
    };
    if value_matches(base, "", "").is_none() {
        return Err(format!("condition operator {operator} is not implemented by the suite's evaluator"));
    }
    let Some(values) = present else {
        // A missing key: IfExists and ForAllValues hold; a negated operator holds; others fail.
        return Ok(if_exists || set == Some(true) || negated);
    };
    let one = |v: &String| wanted.iter().any(|w| value_matches(base, w, v).unwrap_or(false));
    let matched = match set {
        Some(true) => values.iter().all(one),
        _ => values.iter().any(one),
    };
    Ok(if negated { !matched } else { matched })
}

fn conditions_hold(st: &Value, ctx: &BTreeMap<String, Vec<String>>) -> Result<bool, String> {
    let Some(block) = st.get("Condition").and_then(Value::as_object) else { return Ok(true) };
    for (operator, keys) in block {
        for (key, wanted) in keys.as_object().into_iter().flatten() {
            if !condition_holds(operator, key, &strings(wanted), ctx)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn statements(policy: &Value) -> Vec<&Value> {
    match policy.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
}

fn sid(st: &Value, i: usize) -> String {
    st.get("Sid").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("statement #{i}"))
}

/// Evaluate a request against identity policies (all of one principal). `Err`: a statement that
/// could apply uses a condition operator this evaluator does not implement.
pub fn evaluate(policies: &[&Value], req: &Request) -> Result<Decision, String> {
    let mut allow = None;
    for policy in policies {
        for (i, st) in statements(policy).into_iter().enumerate() {
            if !action_matches(st, &req.action) || !resource_matches(st, &req.resource) {
                continue;
            }
            if !conditions_hold(st, &req.context)? {
                continue;
            }
            match st.get("Effect").and_then(Value::as_str) {
                Some("Deny") => return Ok(Decision::ExplicitDeny(sid(st, i))),
                Some("Allow") if allow.is_none() => allow = Some(sid(st, i)),
                _ => {}
            }
        }
    }
    Ok(allow.map(Decision::Allow).unwrap_or(Decision::ImplicitDeny))
}

/// What a role may do: allowed by its own policies and by its permissions boundary (when it has
/// one), and denied by neither ("Permissions boundaries for IAM entities", IAM User Guide).
pub fn evaluate_bounded(policies: &[&Value], boundary: Option<&Value>, req: &Request) -> Result<Decision, String> {
    let own = evaluate(policies, req)?;
    match (own, boundary) {
        (Decision::Allow(sid), Some(b)) => match evaluate(&[b], req)? {
            Decision::Allow(_) => Ok(Decision::Allow(sid)),
            other => Ok(other),
        },
        (other, _) => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(wildcard("arn:aws:ec2:*:*:vpc/*", "arn:aws:ec2:us-east-1:1:vpc/vpc-1"));
        assert!(wildcard("a?c", "abc") && !wildcard("a?c", "ac"));
        assert!(wildcard("*", "") && wildcard("a*", "a") && !wildcard("a*b", "ab c"));
        assert!(!wildcard("arn:aws:iam::1:role/x", "arn:aws:iam::1:role/xy"));
    }

    fn p(statements: Value) -> Value {
        json!({ "Version": "2012-10-17", "Statement": statements })
    }

    #[test]
    fn allow_needs_action_resource_and_every_condition() {
        let policy = p(json!([{
            "Sid": "Tagged", "Effect": "Allow", "Action": ["EC2:CreateSubnet"], "Resource": "arn:aws:ec2:*:1:subnet/*",
            "Condition": { "StringEquals": { "aws:RequestTag/stack": "s" } }
        }]));
        let req = Request::new("ec2:createsubnet", "arn:aws:ec2:us-east-1:1:subnet/*");
        assert_eq!(evaluate(&[&policy], &req).unwrap(), Decision::ImplicitDeny, "no tag in the request");
        let tagged = req.clone().with("aws:RequestTag/stack", ["s"]);
        assert_eq!(evaluate(&[&policy], &tagged).unwrap(), Decision::Allow("Tagged".into()));
        let other = req.clone().with("aws:RequestTag/stack", ["t"]);
        assert!(!evaluate(&[&policy], &other).unwrap().allowed());
        let vpc =
            Request::new("ec2:CreateSubnet", "arn:aws:ec2:us-east-1:1:vpc/vpc-1").with("aws:RequestTag/stack", ["s"]);
        assert!(!evaluate(&[&policy], &vpc).unwrap().allowed(), "resource out of scope");
    }

    #[test]
    fn explicit_deny_wins_and_operators_behave() {
        let policy = p(json!([
            { "Effect": "Allow", "Action": "iam:*", "Resource": "*" },
            { "Sid": "KeepBoundary", "Effect": "Deny", "Action": "iam:CreateRole", "Resource": "*",
              "Condition": { "StringNotEquals": { "iam:PermissionsBoundary": "arn:b" } } }
        ]));
        let bare = Request::new("iam:CreateRole", "arn:aws:iam::1:role/r");
        assert_eq!(
            evaluate(&[&policy], &bare).unwrap(),
            Decision::ExplicitDeny("KeepBoundary".into()),
            "a missing key satisfies a negated operator"
        );
        let bounded = bare.clone().with("iam:PermissionsBoundary", ["arn:b"]);
        assert!(evaluate(&[&policy], &bounded).unwrap().allowed());
        let keys = p(json!([{ "Effect": "Allow", "Action": "x:Y", "Resource": "*",
            "Condition": { "ForAllValues:StringEquals": { "aws:TagKeys": ["a", "b"] }, "Null": { "aws:RequestTag/a": "false" } } }]));
        let ok = Request::new("x:Y", "*").with("aws:TagKeys", ["a"]).with("aws:RequestTag/a", ["1"]);
        assert!(evaluate(&[&keys], &ok).unwrap().allowed());
        let extra = Request::new("x:Y", "*").with("aws:TagKeys", ["a", "c"]).with("aws:RequestTag/a", ["1"]);
        assert!(!evaluate(&[&keys], &extra).unwrap().allowed());
        let unknown = p(
            json!([{ "Effect": "Allow", "Action": "x:Y", "Resource": "*", "Condition": { "DateGreaterThan": { "aws:CurrentTime": "2020" } } }]),
        );
        assert!(evaluate(&[&unknown], &Request::new("x:Y", "*")).is_err(), "never allowed silently");
    }

    #[test]
    fn a_boundary_caps_what_a_role_may_do() {
        let own = p(json!([{ "Effect": "Allow", "Action": "*", "Resource": "*" }]));
        let boundary = p(json!([{ "Sid": "B", "Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "arn:t" }]));
        let put = Request::new("dynamodb:PutItem", "arn:t");
        assert!(evaluate_bounded(&[&own], Some(&boundary), &put).unwrap().allowed());
        let admin = Request::new("iam:CreateUser", "*");
        assert!(!evaluate_bounded(&[&own], Some(&boundary), &admin).unwrap().allowed());
        assert!(evaluate_bounded(&[&own], None, &admin).unwrap().allowed());
    }
}
