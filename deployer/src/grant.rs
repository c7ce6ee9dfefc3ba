//! The statements of the tool's own IAM policy (`movies-stack iam-policy`), typed. Each resource
//! kind declares the grants it needs to be managed (`Resource::grants`, next to the calls that
//! need them); `iam_policy.rs` folds them over the registry and merges the grants that share a
//! Sid. Below the resources: it knows nothing of them.

use serde_json::{Map, Value, json};

use crate::config::Config;

/// Who and where: the policy's resources are in this account and region, for this stack.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub config: &'a Config,
    pub region: &'a str,
    pub account: &'a str,
}

impl Scope<'_> {
    pub fn partition(&self) -> &'static str {
        crate::aws::partition(self.region)
    }

    /// `arn:<partition>:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!("arn:{}:{service}:{}:{}:{resource}", self.partition(), self.region, self.account)
    }

    /// Every EC2 resource of a type (`vpc/*`): EC2 generates the ids, the stack's tag scopes them.
    pub fn ec2(&self, resource_type: &str) -> String {
        self.arn("ec2", &format!("{resource_type}/*"))
    }

    /// An IAM role of the account (IAM is global: no region).
    pub fn role(&self, name: &str) -> String {
        format!("arn:{}:iam::{}:role/{name}", self.partition(), self.account)
    }

    /// An API Gateway resource path (`/restapis/*`): no account in API Gateway's ARNs.
    pub fn apigateway(&self, path: &str) -> String {
        format!("arn:{}:apigateway:{}::{path}", self.partition(), self.region)
    }

    /// A log group, and its streams (`:*`), which some actions are authorized on.
    pub fn log_group(&self, name: &str) -> [String; 2] {
        let arn = self.arn("logs", &format!("log-group:{name}"));
        [arn.clone(), format!("{arn}:*")]
    }
}

/// One condition of a statement: `{operator: {key: value(s)}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `StringEquals`, `ArnEquals`, `ForAllValues:StringEquals`, ...
    pub operator: &'static str,
    pub key: String,
    pub values: Vec<String>,
    /// Written as a list even with one value (a multivalued key such as `dynamodb:LeadingKeys`).
    pub list: bool,
}

impl Condition {
    /// `{operator: {key: value}}`.
    pub fn one(operator: &'static str, key: impl Into<String>, value: impl Into<String>) -> Condition {
        Condition { operator, key: key.into(), values: vec![value.into()], list: false }
    }

    /// `{operator: {key: [values]}}`.
    pub fn any_of(
        operator: &'static str,
        key: impl Into<String>,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Condition {
        Condition { operator, key: key.into(), values: values.into_iter().map(Into::into).collect(), list: true }
    }

    /// `StringEquals` with one value.
    pub fn equals(key: impl Into<String>, value: impl Into<String>) -> Condition {
        Condition::one("StringEquals", key, value)
    }
}

/// One Allow statement the tool's policy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub sid: &'static str,
    pub actions: Vec<&'static str>,
    pub resources: Vec<String>,
    pub conditions: Vec<Condition>,
}

impl Grant {
    pub fn new(sid: &'static str, actions: &[&'static str], resources: impl IntoIterator<Item = String>) -> Grant {
        Grant { sid, actions: actions.to_vec(), resources: resources.into_iter().collect(), conditions: Vec::new() }
    }

    /// Only when `condition` holds too.
    pub fn when(mut self, condition: Condition) -> Grant {
        self.conditions.push(condition);
        self
    }

    /// Merge another grant of the same Sid: the union of the actions, of the resources and of each
    /// condition's values (in the order first met). The Sid is one statement, so it allows every
    /// action on every resource under every value: grants share a Sid only when that is what they
    /// mean (the EC2 kinds' creates, each adding its own type and `ec2:CreateAction`). Grants of
    /// one Sid with different condition keys are a bug in their declarations.
    pub fn merge(&mut self, other: Grant) {
        assert_eq!(self.sid, other.sid);
        let keys = |g: &Grant| g.conditions.iter().map(|c| (c.operator, c.key.clone())).collect::<Vec<_>>();
        assert_eq!(keys(self), keys(&other), "the grants of Sid {} have different conditions", self.sid);
        union(&mut self.actions, other.actions);
        union(&mut self.resources, other.resources);
        for (mine, theirs) in self.conditions.iter_mut().zip(other.conditions) {
            mine.list |= theirs.list;
            union(&mut mine.values, theirs.values);
        }
    }

    /// The policy statement: one action or resource as a string, more as a list.
    pub fn statement(&self) -> Value {
        let one_or_many = |v: Vec<Value>| if v.len() == 1 { v[0].clone() } else { Value::Array(v) };
        let mut st = json!({
            "Sid": self.sid,
            "Effect": "Allow",
            "Action": one_or_many(self.actions.iter().map(|a| json!(a)).collect()),
            "Resource": one_or_many(self.resources.iter().map(|r| json!(r)).collect()),
        });
        if !self.conditions.is_empty() {
            let mut by_operator = Map::new();
            for c in &self.conditions {
                let value = if c.list || c.values.len() > 1 { json!(c.values) } else { json!(c.values[0]) };
                let entry = by_operator.entry(c.operator).or_insert_with(|| json!({}));
                entry[c.key.as_str()] = value;
            }
            st["Condition"] = Value::Object(by_operator);
        }
        st
    }
}

fn union<T: PartialEq>(mine: &mut Vec<T>, theirs: Vec<T>) {
    for t in theirs {
        if !mine.contains(&t) {
            mine.push(t);
        }
    }
}

/// Grants merged by Sid, in the order each Sid is first met.
pub fn merge(grants: impl IntoIterator<Item = Grant>) -> Vec<Grant> {
    let mut merged: Vec<Grant> = Vec::new();
    for g in grants {
        match merged.iter_mut().find(|m| m.sid == g.sid) {
            Some(m) => m.merge(g),
            None => merged.push(g),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_of_one_sid_merge_into_one_statement() {
        let create = |action, ty: &str| {
            Grant::new("Ec2Create", &[action], [format!("arn:aws:ec2:r:1:{ty}/*")]).when(Condition::any_of(
                "StringEquals",
                "ec2:CreateAction",
                [action.trim_start_matches("ec2:")],
            ))
        };
        let merged = merge([
            create("ec2:CreateVpc", "vpc"),
            Grant::new("Other", &["s3:GetObject"], ["*".to_string()]),
            create("ec2:CreateSubnet", "subnet"),
            create("ec2:CreateVpc", "vpc"),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(
            merged[0].statement(),
            json!({
                "Sid": "Ec2Create",
                "Effect": "Allow",
                "Action": ["ec2:CreateVpc", "ec2:CreateSubnet"],
                "Resource": ["arn:aws:ec2:r:1:vpc/*", "arn:aws:ec2:r:1:subnet/*"],
                "Condition": {"StringEquals": {"ec2:CreateAction": ["CreateVpc", "CreateSubnet"]}}
            })
        );
        assert_eq!(
            merged[1].statement(),
            json!({"Sid": "Other", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
        );
    }

    #[test]
    #[should_panic(expected = "different conditions")]
    fn one_sid_with_and_without_a_condition_is_a_bug() {
        merge([
            Grant::new("S", &["iam:PassRole"], ["a".to_string()]),
            Grant::new("S", &["iam:PassRole"], ["b".to_string()]).when(Condition::equals("iam:PassedToService", "x")),
        ]);
    }
}
