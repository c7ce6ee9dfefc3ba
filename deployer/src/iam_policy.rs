//! The least-privilege IAM policy a user (or CI role) needs to run movies-stack on one stack:
//! `up`, `down`, `status`, `plan`, `keys`, `unlock`, `smoke`, `usage`, `logs`, `serve`. Resources
//! are scoped by name where AWS allows it, by the stack tag where names are generated (EC2), and
//! `*` only where the action supports no resource (Service Authorization Reference, per service).
//!
//! The e2e suite checks its actions against reality: every operation the movies-stack binary sent
//! in the whole suite is allowed here, and every action here was needed by some test or is a
//! listed exception (`tests/src/iam_coverage.rs`, run by `tests/src/bin/suite_report.rs`).

use serde_json::{Value, json};

use crate::config::Config;
use crate::lock;
use crate::resources::{TAG_STACK, account_role, alarm, iam_role, log_group, rest_api, web_acl};

/// Who and where: the policy's resources are in this account and region.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub config: &'a Config,
    pub region: &'a str,
    pub account: &'a str,
}

impl Scope<'_> {
    fn arn(&self, service: &str, resource: &str) -> String {
        format!("arn:{}:{service}:{}:{}:{resource}", crate::aws::partition(self.region), self.region, self.account)
    }

    fn ec2(&self, types: &[&str]) -> Vec<String> {
        types.iter().map(|t| self.arn("ec2", &format!("{t}/*"))).collect()
    }

    fn role(&self, name: &str) -> String {
        format!("arn:{}:iam::{}:role/{name}", crate::aws::partition(self.region), self.account)
    }

    fn apigateway(&self, path: &str) -> String {
        format!("arn:{}:apigateway:{}::{path}", crate::aws::partition(self.region), self.region)
    }

    fn log_group(&self, name: &str) -> [String; 2] {
        let arn = self.arn("logs", &format!("log-group:{name}"));
        [arn.clone(), format!("{arn}:*")]
    }
}

/// The EC2 resource types the stack creates (each tagged `movies-stack:stack` in its create call).
const EC2_OWNED: [&str; 6] = ["vpc", "subnet", "route-table", "security-group", "vpc-endpoint", "vpc-flow-log"];
/// EC2 creates, each with `TagSpecifications`.
const EC2_CREATES: [&str; 6] = [
    "ec2:CreateVpc",
    "ec2:CreateSubnet",
    "ec2:CreateRouteTable",
    "ec2:CreateSecurityGroup",
    "ec2:CreateVpcEndpoint",
    "ec2:CreateFlowLogs",
];

/// The policy document.
pub fn policy(s: &Scope) -> Value {
    let c = s.config;
    let partition = crate::aws::partition(s.region);
    let stack_tag = json!({ "StringEquals": { format!("aws:ResourceTag/{TAG_STACK}"): c.stack } });
    let request_tag = json!({ "StringEquals": { format!("aws:RequestTag/{TAG_STACK}"): c.stack } });
    let within_boundary = json!({ "StringEquals": { "iam:PermissionsBoundary": boundary_arn(s) } });
    let function_arn = s.arn("lambda", &format!("function:{}", c.function.name));
    let table_arn = s.arn("dynamodb", &format!("table/{}", c.table.name));
    let lock_table_arn = s.arn("dynamodb", &format!("table/{}", lock::TABLE));
    let log_groups: Vec<String> =
        [log_group::flow_log_group_name(c), log_group::function_log_group_name(c), log_group::access_log_group_name(c)]
            .iter()
            .flat_map(|g| s.log_group(g))
            .collect();
    let stack_roles = [s.role(&iam_role::function_role_name(c)), s.role(&iam_role::flow_log_role_name(c))];
    let watched = alarm::Watched { function: &c.function.name, api: &rest_api::api_name(c), stage: &c.api.stage };
    let alarm_arns: Vec<String> = alarm::alarms(&c.stack, &watched, &c.alarms)
        .iter()
        .map(|a| s.arn("cloudwatch", &format!("alarm:{}", a.name)))
        .collect();
    let account_role = s.role(account_role::ROLE_NAME);
    let web_acl = s.arn("wafv2", &format!("regional/webacl/{}/*", web_acl::web_acl_name(c)));
    let stage = s.apigateway(&format!("/restapis/*/stages/{}", c.api.stage));
    let statements = vec![
        json!({
            // These support no resource-level permissions (Service Authorization Reference).
            "Sid": "ReadWithoutResourceScope",
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeAvailabilityZones", "ec2:DescribeVpcs",
                "ec2:DescribeSubnets", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups",
                "ec2:DescribeSecurityGroupRules", "ec2:DescribePrefixLists", "ec2:DescribeVpcEndpoints",
                "ec2:DescribeFlowLogs", "ec2:DescribeNetworkInterfaces",
                // The CloudTrail preflight lists every trail, organization trails included.
                "cloudtrail:DescribeTrails",
                // "Is this name owned by a CloudFormation stack?", asked by PhysicalResourceId:
                // the stack is what the answer names, so no stack ARN can be given in advance.
                "cloudformation:DescribeStackResources",
                // The account's Lambda concurrency, read before reserving some for the function.
                "lambda:GetAccountSettings",
                // Finds the web ACL by name (every run, `[waf]` on or off: an earlier config may
                // have made one).
                "wafv2:ListWebACLs",
                // Lists groups: AWS authorizes it on `log-group::log-stream:`, not on a group
                // (terraform-provider-aws#8804), so no group's ARN can scope it.
                "logs:DescribeLogGroups"
            ],
            "Resource": "*"
        }),
        json!({
            // Every trail's status and selectors, wherever it lives (an organization trail
            // belongs to the management account; shadow trails to their home region).
            "Sid": "CloudTrailPreflight",
            "Effect": "Allow",
            "Action": ["cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors"],
            "Resource": format!("arn:{partition}:cloudtrail:*:*:trail/*")
        }),
        json!({
            "Sid": "Ec2CreateTaggedAsTheStack",
            "Effect": "Allow",
            "Action": EC2_CREATES,
            "Resource": s.ec2(&EC2_OWNED),
            "Condition": request_tag
        }),
        json!({
            // The tags ride on the create calls above and nowhere else.
            "Sid": "Ec2TagOnCreateOnly",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": s.ec2(&EC2_OWNED),
            "Condition": { "StringEquals": { "ec2:CreateAction": EC2_CREATES.map(|a| a.trim_start_matches("ec2:")) } }
        }),
        json!({
            // Creating a subnet, route table, group, endpoint or flow log also acts on the VPC
            // (and an endpoint on the route tables): the stack's own, by tag.
            "Sid": "Ec2ChangeTheStacksOwn",
            "Effect": "Allow",
            "Action": [
                "ec2:CreateSubnet", "ec2:CreateRouteTable", "ec2:CreateSecurityGroup", "ec2:CreateVpcEndpoint",
                "ec2:CreateFlowLogs", "ec2:DescribeVpcAttribute", "ec2:ModifyVpcAttribute",
                "ec2:ModifySubnetAttribute", "ec2:AssociateRouteTable", "ec2:DisassociateRouteTable",
                "ec2:ReplaceRouteTableAssociation", "ec2:DeleteRoute", "ec2:AuthorizeSecurityGroupEgress",
                "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress", "ec2:ModifyVpcEndpoint",
                "ec2:DeleteVpcEndpoints", "ec2:DeleteFlowLogs", "ec2:DeleteRouteTable", "ec2:DeleteSecurityGroup",
                "ec2:DeleteSubnet", "ec2:DeleteVpc"
            ],
            "Resource": s.ec2(&EC2_OWNED),
            "Condition": stack_tag
        }),
        json!({
            // A rule of the (tag-scoped) group, to DynamoDB's prefix list, which AWS owns (its
            // ARN's account may be `aws`).
            "Sid": "Ec2RulesOfTheStacksGroup",
            "Effect": "Allow",
            "Action": ["ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress"],
            "Resource": [
                s.arn("ec2", "security-group-rule/*"),
                format!("arn:{partition}:ec2:{}:*:prefix-list/*", s.region)
            ]
        }),
        json!({
            // `down` deletes the function's Hyperplane ENIs once Lambda releases them. Lambda
            // owns and names them: they carry no tag of ours and no id known in advance.
            "Sid": "Ec2ReleasedLambdaNetworkInterfaces",
            "Effect": "Allow",
            "Action": "ec2:DeleteNetworkInterface",
            "Resource": s.arn("ec2", "network-interface/*")
        }),
        json!({
            // ListRoleTags: a same-named role that is not ours is said to be someone else's.
            "Sid": "ReadTheStacksRoles",
            "Effect": "Allow",
            "Action": [
                "iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
                "iam:ListRoleTags"
            ],
            "Resource": stack_roles
        }),
        json!({
            // What can grant a permission (a new role, an inline policy, a trust policy) only
            // on a role capped by the stack's permissions boundary, which this policy can never
            // change or remove: whatever is written, the role can do no more than the boundary
            // allows ("Permissions boundaries for IAM entities", IAM User Guide).
            "Sid": "ChangeTheStacksRolesWithinTheBoundary",
            "Effect": "Allow",
            "Action": [
                "iam:CreateRole", "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:PutRolePermissionsBoundary"
            ],
            "Resource": stack_roles,
            "Condition": within_boundary
        }),
        json!({
            // Taking permissions away, and the tags of CreateRole.
            "Sid": "TagAndEmptyTheStacksRoles",
            "Effect": "Allow",
            "Action": ["iam:TagRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:DeleteRole"],
            "Resource": stack_roles
        }),
        json!({
            // The account's API Gateway CloudWatch role: created if the account has none, never
            // changed or deleted afterwards.
            "Sid": "ApiGatewayCloudWatchRole",
            "Effect": "Allow",
            "Action": ["iam:GetRole", "iam:TagRole", "iam:ListRoleTags", "iam:ListAttachedRolePolicies"],
            "Resource": account_role
        }),
        json!({
            "Sid": "CreateApiGatewayCloudWatchRoleWithinTheBoundary",
            "Effect": "Allow",
            "Action": "iam:CreateRole",
            "Resource": account_role,
            "Condition": within_boundary
        }),
        json!({
            // API Gateway may point at any role of the account: `up` checks it still exists
            // (read only).
            "Sid": "CheckTheAccountsCloudWatchRole",
            "Effect": "Allow",
            "Action": "iam:GetRole",
            "Resource": s.role("*")
        }),
        json!({
            "Sid": "ApiGatewayCloudWatchRolePolicy",
            "Effect": "Allow",
            "Action": "iam:AttachRolePolicy",
            "Resource": account_role,
            "Condition": {
                "ArnEquals": { "iam:PolicyARN": format!("arn:{partition}:iam::aws:policy/{}", account_role::POLICY_NAME) },
                "StringEquals": { "iam:PermissionsBoundary": boundary_arn(s) }
            }
        }),
        json!({
            "Sid": "PassTheFunctionRoleToLambda",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": s.role(&iam_role::function_role_name(c)),
            "Condition": { "StringEquals": { "iam:PassedToService": "lambda.amazonaws.com" } }
        }),
        json!({
            "Sid": "PassTheFlowLogRoleToVpcFlowLogs",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": s.role(&iam_role::flow_log_role_name(c)),
            "Condition": { "StringEquals": { "iam:PassedToService": "vpc-flow-logs.amazonaws.com" } }
        }),
        json!({
            "Sid": "PassTheCloudWatchRoleToApiGateway",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": account_role,
            "Condition": { "StringEquals": { "iam:PassedToService": "apigateway.amazonaws.com" } }
        }),
        json!({
            "Sid": "TheFunction",
            "Effect": "Allow",
            "Action": [
                "lambda:GetFunction", "lambda:CreateFunction", "lambda:TagResource", "lambda:ListTags",
                "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:DeleteFunction",
                "lambda:GetPolicy", "lambda:AddPermission", "lambda:RemovePermission",
                "lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency"
            ],
            "Resource": function_arn
        }),
        json!({
            // The stack's alarms, by name (each action supports the `alarm` resource type). Their
            // tags ride on PutMetricAlarm, which needs cloudwatch:TagResource for them: "To use
            // this field to set tags for an alarm when you create it, you must be signed on with
            // both the cloudwatch:PutMetricAlarm and cloudwatch:TagResource permissions"
            // (PutMetricAlarm API reference, Tags).
            "Sid": "TheAlarms",
            "Effect": "Allow",
            "Action": [
                "cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource", "cloudwatch:PutMetricAlarm",
                "cloudwatch:TagResource", "cloudwatch:DeleteAlarms"
            ],
            "Resource": alarm_arns
        }),
        json!({
            "Sid": "TheTable",
            "Effect": "Allow",
            "Action": [
                "dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:TagResource",
                "dynamodb:ListTagsOfResource", "dynamodb:DescribeContinuousBackups",
                "dynamodb:UpdateContinuousBackups", "dynamodb:UpdateTable", "dynamodb:DeleteTable",
                // `smoke` reads its test item back and deletes it.
                "dynamodb:GetItem", "dynamodb:DeleteItem"
            ],
            "Resource": table_arn
        }),
        json!({
            // The per-stack lock (`lock.rs`): one table per account and region, shared by every
            // stack of it...
            "Sid": "TheLockTable",
            "Effect": "Allow",
            "Action": ["dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:TagResource"],
            "Resource": lock_table_arn
        }),
        json!({
            // ...one item per stack: this stack's only (its partition key is the stack's name).
            "Sid": "TheStacksLockItem",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
            "Resource": lock_table_arn,
            "Condition": { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [c.stack.clone()] } }
        }),
        json!({
            "Sid": "TheLogGroups",
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup", "logs:TagResource", "logs:ListTagsForResource", "logs:PutRetentionPolicy",
                "logs:DeleteLogGroup",
                // `logs`.
                "logs:FilterLogEvents"
            ],
            "Resource": log_groups
        }),
        json!({
            // API Gateway's actions are HTTP verbs on resource paths. Finding the stack's REST
            // API, plans and keys lists them: a list is not a tagged resource, AWS cannot scope
            // it (docs/iam.md, "What the policy cannot scope").
            "Sid": "ApiGatewayFind",
            "Effect": "Allow",
            "Action": "apigateway:GET",
            "Resource": [s.apigateway("/restapis"), s.apigateway("/usageplans"), s.apigateway("/apikeys")]
        }),
        json!({
            "Sid": "ApiGatewayCreateTaggedAsTheStack",
            "Effect": "Allow",
            "Action": "apigateway:POST",
            "Resource": [s.apigateway("/restapis"), s.apigateway("/usageplans"), s.apigateway("/apikeys")],
            "Condition": request_tag
        }),
        json!({
            // A create that carries tags is also authorized as a PUT on the new resource's
            // `/tags/<ARN>` (mattclay/aws-terminator#284): only with the stack's tag.
            "Sid": "ApiGatewayTagOnCreate",
            "Effect": "Allow",
            "Action": "apigateway:PUT",
            "Resource": s.apigateway("/tags/*"),
            "Condition": request_tag
        }),
        json!({
            // The stack's REST API, plans and keys, by their tag; methods, stages, deployments
            // and plan keys inherit their parent's tags for this ("API Gateway resources that can
            // be tagged", tag inheritance).
            "Sid": "ApiGatewayTheStacksOwn",
            "Effect": "Allow",
            "Action": ["apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE"],
            "Resource": [s.apigateway("/restapis/*"), s.apigateway("/usageplans/*"), s.apigateway("/apikeys/*")],
            "Condition": stack_tag
        }),
        json!({
            // The stack's web ACL (`[waf]`), by name; WAF adds the id to the ARN.
            "Sid": "TheWebAcl",
            "Effect": "Allow",
            "Action": [
                "wafv2:CreateWebACL", "wafv2:GetWebACL", "wafv2:UpdateWebACL", "wafv2:DeleteWebACL",
                "wafv2:TagResource", "wafv2:ListTagsForResource"
            ],
            "Resource": web_acl
        }),
        json!({
            // Associating the web ACL with the stage acts on both; disassociating on the stage;
            // API Gateway's own `SetWebACL` on the stage too (WAF Developer Guide, "Permissions
            // for AssociateWebACL"). The API's id is generated: any API, this stage name.
            "Sid": "TheWebAclOnTheStage",
            "Effect": "Allow",
            "Action": ["wafv2:AssociateWebACL", "wafv2:GetWebACLForResource"],
            "Resource": [web_acl, stage.clone()]
        }),
        json!({
            "Sid": "TheStageOfTheWebAcl",
            "Effect": "Allow",
            "Action": ["wafv2:DisassociateWebACL", "apigateway:SetWebACL"],
            "Resource": stage
        }),
        json!({
            "Sid": "ApiGatewayAccountSettings",
            "Effect": "Allow",
            "Action": ["apigateway:GET", "apigateway:PATCH"],
            "Resource": s.apigateway("/account")
        }),
    ];
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The permissions boundary's ARN: a customer-managed policy of the account.
pub fn boundary_arn(s: &Scope) -> String {
    iam_role::boundary_arn(crate::aws::partition(s.region), s.account, &iam_role::permissions_boundary_name(s.config))
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

    fn boundary_document(c: &Config) -> Value {
        boundary(&Scope { config: c, region: "us-east-1", account: "123456789012" })
    }

    #[test]
    fn partitions_follow_the_region() {
        let c = crate::config::parse("stack = \"s\"").unwrap();
        let p = policy(&Scope { config: &c, region: "cn-north-1", account: "123456789012" }).to_string();
        assert!(p.contains("arn:aws-cn:lambda:cn-north-1:123456789012:function:apigw_handler"), "{p}");
        assert!(!p.contains("arn:aws:"), "{p}");
    }
}
