//! The least-privilege IAM policy a user (or CI role) needs to run movies-stack on one stack:
//! `up`, `down`, `status`, `plan`, `keys`, `unlock`, `smoke`, `usage`, `logs`, `serve`, `top`. Resources
//! are scoped by name where AWS allows it, by the stack tag where names are generated (EC2), and
//! `*` only where the action supports no resource (Service Authorization Reference, per service).
//!
//! Each resource kind declares its own statements (`Resource::grants`, in its module); this file
//! folds them over the registry and adds what belongs to no resource.
//!
//! The e2e suite checks its actions against reality: every operation the movies-stack binary sent
//! in the whole suite is allowed here, and every action here was needed by some test or is a
//! listed exception (`tests/src/iam_coverage.rs`, run by `tests/src/bin/suite_report.rs`).

use std::sync::Arc;

use serde_json::{Value, json};

pub use crate::grant::Scope;
use crate::grant::{Grant, merge};
use crate::lock;
use crate::package::Artifact;
use crate::resources::{iam_role, log_group};
use crate::stack;

/// The policy document: what every resource of the registry declares (`Resource::grants`), what
/// the lock needs, and what belongs to no resource (the preflight, the CloudFormation ownership
/// check, the read-only commands), merged by Sid.
pub fn policy(s: &Scope) -> Value {
    let resources = stack::resources(s.config, Arc::new(Artifact::unknown()));
    let grants = outside_the_resources(s)
        .into_iter()
        .chain(resources.iter().flat_map(|r| r.grants(s)))
        .chain(lock::grants(s))
        .chain(read_commands(s));
    let statements: Vec<Value> = merge(grants).iter().map(Grant::statement).collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The checks `up` makes before it changes anything.
fn outside_the_resources(s: &Scope) -> Vec<Grant> {
    let reads = [
        // The CloudTrail preflight lists every trail, organization trails included.
        "cloudtrail:DescribeTrails",
        // "Is this name owned by a CloudFormation stack?", asked by PhysicalResourceId before
        // creating a named resource: the stack is what the answer names, so no stack ARN can be
        // given in advance.
        "cloudformation:DescribeStackResources",
    ];
    vec![
        // These support no resource-level permissions (Service Authorization Reference); the
        // resources add their own reads to this statement.
        Grant::new("ReadWithoutResourceScope", &reads, ["*".to_string()]),
        // Every trail's status and selectors, wherever it lives (an organization trail belongs to
        // the management account; shadow trails to their home region).
        Grant::new(
            "CloudTrailPreflight",
            &["cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors"],
            [format!("arn:{}:cloudtrail:*:*:trail/*", s.partition())],
        ),
    ]
}

/// What the read-only commands need beyond what managing the resources does (`keys` and `usage`
/// read API Gateway within the resources' grants).
fn read_commands(s: &Scope) -> Vec<Grant> {
    let c = s.config;
    let groups =
        [log_group::flow_log_group_name(c), log_group::function_log_group_name(c), log_group::access_log_group_name(c)];
    vec![
        // `smoke` reads its test item back and deletes it.
        Grant::new(
            "TheTable",
            &["dynamodb:GetItem", "dynamodb:DeleteItem"],
            [s.arn("dynamodb", &format!("table/{}", c.table.name))],
        ),
        // `logs`.
        Grant::new("TheLogGroups", &["logs:FilterLogEvents"], groups.iter().flat_map(|g| s.log_group(g))),
        // `traces`: X-Ray's reads support no resource-level permission (Service Authorization
        // Reference, AWS X-Ray: no resource type for these actions).
        Grant::new(
            "ReadWithoutResourceScope",
            &["xray:GetTraceSummaries", "xray:BatchGetTraces", "xray:GetServiceGraph"],
            ["*".to_string()],
        ),
        // `top`: one GetMetricData per refresh, which supports no resource-level permission
        // (Service Authorization Reference, Amazon CloudWatch); its DescribeAlarms and GetUsage
        // are within the alarms' and the usage plans' own grants.
        Grant::new("ReadWithoutResourceScope", &["cloudwatch:GetMetricData"], ["*".to_string()]),
    ]
}

/// The permissions boundary's ARN: a customer-managed policy of the account.
pub fn boundary_arn(s: &Scope) -> String {
    iam_role::boundary_arn(s.partition(), s.account, &iam_role::permissions_boundary_name(s.config))
}

/// The permissions boundary of every role the stack creates: what the function role, the
/// flow-log role and the account's API Gateway CloudWatch role need, and nothing else. An
/// administrator creates it (`movies-stack bootstrap`); the tool's policy can neither change nor
/// remove it, and creates or changes a role only with it attached.
pub fn boundary(s: &Scope) -> Value {
    let c = s.config;
    let role =
        |purpose| iam_role::Role { id: iam_role::FUNCTION, name: String::new(), purpose, boundary: String::new() };
    let function = role(iam_role::RolePurpose::Function {
        table: c.table.name.clone(),
        log_group: log_group::function_log_group_name(c),
    });
    let flow = role(iam_role::RolePurpose::FlowLogs { log_group: log_group::flow_log_group_name(c) });
    let mut statements: Vec<Value> = Vec::new();
    for (prefix, r) in [("Function", function), ("FlowLogs", flow)] {
        let inline = r.policy_json(s.region, s.account).inline;
        for st in inline["Statement"].as_array().into_iter().flatten() {
            let mut st = st.clone();
            st["Sid"] = json!(format!("{prefix}{}", st["Sid"].as_str().unwrap_or_default()));
            statements.push(st);
        }
    }
    statements.push(json!({
        // AmazonAPIGatewayPushToCloudWatchLogs, which the shared CloudWatch role carries: API
        // Gateway writes each API's execution and access logs with it, in groups it names.
        "Sid": "ApiGatewayPushToCloudWatchLogs",
        "Effect": "Allow",
        "Action": [
            "logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogGroups", "logs:DescribeLogStreams",
            "logs:PutLogEvents", "logs:GetLogEvents", "logs:FilterLogEvents"
        ],
        "Resource": s.arn("logs", "log-group:*")
    }));
    json!({ "Version": "2012-10-17", "Statement": statements })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope_policy() -> Value {
        let c = crate::config::parse("stack = \"movies-dev\"").unwrap();
        policy(&Scope { config: &c, region: "us-east-1", account: "123456789012" })
    }

    #[test]
    fn every_statement_is_scoped_or_says_why_not() {
        let p = scope_policy();
        let statements = p["Statement"].as_array().unwrap();
        let mut sids = std::collections::BTreeSet::new();
        for st in statements {
            let sid = st["Sid"].as_str().unwrap();
            assert!(sids.insert(sid), "Sid {sid} twice");
            assert_eq!(st["Effect"], "Allow", "{sid}");
            let actions: Vec<&str> = match &st["Action"] {
                Value::String(a) => vec![a.as_str()],
                Value::Array(a) => a.iter().map(|v| v.as_str().unwrap()).collect(),
                other => panic!("{sid}: Action {other}"),
            };
            assert!(actions.iter().all(|a| !a.contains('*')), "{sid}: no wildcard action: {actions:?}");
            if st["Resource"] == "*" {
                assert_eq!(sid, "ReadWithoutResourceScope", "only reads that support no resource use `*`");
            }
        }
        let text = p.to_string();
        assert!(text.contains("arn:aws:lambda:us-east-1:123456789012:function:apigw_handler"));
        assert!(text.contains("arn:aws:dynamodb:us-east-1:123456789012:table/demo_table"));
        assert!(text.contains("arn:aws:iam::123456789012:role/movies-dev-function"));
        assert!(text.contains("\"aws:RequestTag/movies-stack:stack\":\"movies-dev\""));
        let alarms = statements.iter().find(|st| st["Sid"] == "TheAlarms").expect("alarms statement");
        assert_eq!(alarms["Resource"].as_array().map(Vec::len), Some(5));
        assert_eq!(alarms["Resource"][0], "arn:aws:cloudwatch:us-east-1:123456789012:alarm:movies-dev-function-errors");
        assert!(text.contains("lambda:PutFunctionConcurrency") && text.contains("lambda:GetAccountSettings",));
        assert!(text.contains("arn:aws:wafv2:us-east-1:123456789012:regional/webacl/movies-dev-web-acl/*"));
        assert!(text.contains("arn:aws:apigateway:us-east-1::/restapis/*/stages/prod"));
        // `top`'s GetMetricData supports only `*`: with the other reads that do.
        let star = statements.iter().find(|st| st["Sid"] == "ReadWithoutResourceScope").unwrap();
        assert!(star["Action"].as_array().unwrap().iter().any(|a| a == "cloudwatch:GetMetricData"), "{star}");
    }

    #[test]
    fn what_can_grant_a_permission_needs_the_boundary_and_the_boundary_is_untouchable() {
        let p = scope_policy();
        let boundary = "arn:aws:iam::123456789012:policy/movies-dev-permissions-boundary";
        let granting = [
            "iam:CreateRole",
            "iam:PutRolePolicy",
            "iam:UpdateAssumeRolePolicy",
            "iam:AttachRolePolicy",
            "iam:PutRolePermissionsBoundary",
        ];
        for st in p["Statement"].as_array().unwrap() {
            let actions: Vec<&str> = match &st["Action"] {
                Value::String(a) => vec![a.as_str()],
                Value::Array(a) => a.iter().map(|v| v.as_str().unwrap()).collect(),
                _ => vec![],
            };
            for a in &actions {
                assert!(
                    ![
                        "iam:DeleteRolePermissionsBoundary",
                        "iam:CreatePolicyVersion",
                        "iam:SetDefaultPolicyVersion",
                        "iam:DeletePolicy"
                    ]
                    .contains(a),
                    "{a} would let the boundary be changed or removed"
                );
                if granting.contains(a) {
                    assert_eq!(
                        st["Condition"]["StringEquals"]["iam:PermissionsBoundary"], boundary,
                        "{}: {a}",
                        st["Sid"]
                    );
                }
            }
        }
        let c = crate::config::parse("stack = \"movies-dev\"").unwrap();
        let b = boundary_document(&c);
        let text = b.to_string();
        assert!(
            text.contains("dynamodb:PutItem")
                && text.contains("arn:aws:dynamodb:us-east-1:123456789012:table/demo_table")
        );
        assert!(!text.contains("\"iam:") && !text.contains("\"sts:") && !text.contains("\"lambda:"), "{text}");
    }

    fn boundary_document(c: &crate::config::Config) -> Value {
        boundary(&Scope { config: c, region: "us-east-1", account: "123456789012" })
    }

    #[test]
    fn every_resource_declares_what_it_needs_in_the_policy() {
        let c = crate::config::parse("stack = \"s\"\n[waf]\nenabled = true").unwrap();
        let s = Scope { config: &c, region: "us-east-1", account: "123456789012" };
        for r in stack::resources(&c, Arc::new(Artifact::unknown())) {
            assert!(!r.grants(&s).is_empty(), "{} ({}) declares no grant", r.name(), r.kind());
        }
        // The alarms' ARNs come from the alarms themselves: one per alarm of the registry.
        let p = policy(&s);
        let alarms = p["Statement"].as_array().unwrap().iter().find(|st| st["Sid"] == "TheAlarms").unwrap();
        assert_eq!(alarms["Resource"].as_array().map(Vec::len), Some(5));
    }

    #[test]
    fn partitions_follow_the_region() {
        let c = crate::config::parse("stack = \"s\"").unwrap();
        let p = policy(&Scope { config: &c, region: "cn-north-1", account: "123456789012" }).to_string();
        assert!(p.contains("arn:aws-cn:lambda:cn-north-1:123456789012:function:apigw_handler"), "{p}");
        assert!(!p.contains("arn:aws:"), "{p}");
    }
}
