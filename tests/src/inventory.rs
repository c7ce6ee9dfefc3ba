//! What of a stack still exists, read straight from moto through the SDK (never through the
//! deployer's own code): for the `down` tests.
//!
//! Every service is asked on its own terms: EC2 by the `movies-stack:stack` tag filter, IAM,
//! CloudWatch Logs, Lambda and DynamoDB by the stack's derived names, API Gateway by the `tags`
//! of the listed items (moto cannot read restapi / usageplan / apikey tags any other way).

use aws_sdk_ec2::types::{Filter, Tag};

use crate::{Aws, StackNames};

pub const STACK_TAG: &str = "movies-stack:stack";

/// The shared, account-level API Gateway CloudWatch role: `down` must never delete it.
pub const ACCOUNT_ROLE: &str = "movies-stack-apigateway-cloudwatch";

fn tag_filter(stack: &str) -> Filter {
    Filter::builder().name(format!("tag:{STACK_TAG}")).values(stack).build()
}

fn has_stack_tag(tags: &[Tag], stack: &str) -> bool {
    tags.iter().any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(stack))
}

fn tagged(tags: Option<&std::collections::HashMap<String, String>>, stack: &str) -> bool {
    tags.and_then(|t| t.get(STACK_TAG)).is_some_and(|v| v == stack)
}

/// One line per live resource of the stack, e.g. `ec2 subnet subnet-0abc`, `iam role S-function`,
/// `dynamodb table S-table`. The account-level CloudWatch role is not listed (see
/// [`account_role_state`]). Panics on an unexpected SDK error.
pub async fn leftovers(aws: &Aws, n: &StackNames) -> Vec<String> {
    let s = n.stack.as_str();
    let mut out = Vec::new();

    // ------------------------------------------------------------------ EC2, by tag
    let vpcs = aws.ec2.describe_vpcs().filters(tag_filter(s)).send().await.expect("DescribeVpcs");
    out.extend(vpcs.vpcs().iter().map(|v| format!("ec2 vpc {}", v.vpc_id().unwrap_or("?"))));
    let subnets = aws.ec2.describe_subnets().filters(tag_filter(s)).send().await.expect("DescribeSubnets");
    out.extend(subnets.subnets().iter().map(|x| format!("ec2 subnet {}", x.subnet_id().unwrap_or("?"))));
    let rts = aws.ec2.describe_route_tables().filters(tag_filter(s)).send().await.expect("DescribeRouteTables");
    out.extend(rts.route_tables().iter().map(|x| format!("ec2 route-table {}", x.route_table_id().unwrap_or("?"))));
    let sgs = aws.ec2.describe_security_groups().filters(tag_filter(s)).send().await.expect("DescribeSecurityGroups");
    out.extend(sgs.security_groups().iter().map(|x| format!("ec2 security-group {}", x.group_id().unwrap_or("?"))));
    // moto keeps deleted endpoints listed with state `deleted` (as AWS does for a while).
    let eps = aws.ec2.describe_vpc_endpoints().filters(tag_filter(s)).send().await.expect("DescribeVpcEndpoints");
    out.extend(
        eps.vpc_endpoints()
            .iter()
            .filter(|e| e.state().map(|st| st.as_str().to_ascii_lowercase()) != Some("deleted".into()))
            .map(|e| {
                format!(
                    "ec2 vpc-endpoint {} ({})",
                    e.vpc_endpoint_id().unwrap_or("?"),
                    e.state().map(|st| st.as_str()).unwrap_or("?")
                )
            }),
    );
    let fls = aws.ec2.describe_flow_logs().filter(tag_filter(s)).send().await.expect("DescribeFlowLogs");
    out.extend(fls.flow_logs().iter().map(|x| format!("ec2 flow-log {}", x.flow_log_id().unwrap_or("?"))));
    // The tag filter is the deployer's own way of finding things; ask the unfiltered list too,
    // in case a filter were silently ignored.
    let all_sgs = aws.ec2.describe_security_groups().send().await.expect("DescribeSecurityGroups");
    for g in all_sgs.security_groups() {
        let line = format!("ec2 security-group {}", g.group_id().unwrap_or("?"));
        if has_stack_tag(g.tags(), s) && !out.contains(&line) {
            out.push(line);
        }
    }

    // ------------------------------------------------------------------ IAM, by name
    for role in [format!("{s}-function"), format!("{s}-flow-logs")] {
        match aws.iam.get_role().role_name(&role).send().await {
            Ok(_) => out.push(format!("iam role {role}")),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_entity_exception()) => {}
            Err(e) => panic!("GetRole {role}: {e:?}"),
        }
    }

    // ------------------------------------------------------------------ CloudWatch Logs, by name
    for group in [
        format!("/aws/lambda/{}", n.function),
        format!("/movies-stack/{s}/api-access"),
        format!("/movies-stack/{s}/vpc-flow-logs"),
    ] {
        let got = aws.logs.describe_log_groups().log_group_name_prefix(&group).send().await.expect("DescribeLogGroups");
        if got.log_groups().iter().any(|g| g.log_group_name() == Some(group.as_str())) {
            out.push(format!("logs log-group {group}"));
        }
    }

    // ------------------------------------------------------------------ Lambda, by name
    match aws.lambda.get_function().function_name(&n.function).send().await {
        Ok(_) => out.push(format!("lambda function {}", n.function)),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => {}
        Err(e) => panic!("GetFunction {}: {e:?}", n.function),
    }

    // ------------------------------------------------------------------ API Gateway, by item tags
    let apis = aws.apigateway.get_rest_apis().limit(500).send().await.expect("GetRestApis");
    out.extend(
        apis.items()
            .iter()
            .filter(|a| tagged(a.tags(), s))
            .map(|a| format!("apigateway restapi {}", a.id().unwrap_or("?"))),
    );
    let plans = aws.apigateway.get_usage_plans().limit(500).send().await.expect("GetUsagePlans");
    out.extend(
        plans
            .items()
            .iter()
            .filter(|p| tagged(p.tags(), s))
            .map(|p| format!("apigateway usage-plan {}", p.id().unwrap_or("?"))),
    );
    let keys = aws.apigateway.get_api_keys().limit(500).include_values(false).send().await.expect("GetApiKeys");
    out.extend(
        keys.items()
            .iter()
            .filter(|k| tagged(k.tags(), s))
            .map(|k| format!("apigateway api-key {}", k.id().unwrap_or("?"))),
    );

    // ------------------------------------------------------------------ DynamoDB, by name
    match aws.dynamodb.describe_table().table_name(&n.table).send().await {
        Ok(_) => out.push(format!("dynamodb table {}", n.table)),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => {}
        Err(e) => panic!("DescribeTable {}: {e:?}", n.table),
    }
    out
}

/// The account-level CloudWatch role: (the IAM role exists, GetAccount's cloudwatchRoleArn).
pub async fn account_role_state(aws: &Aws) -> (bool, Option<String>) {
    let exists = match aws.iam.get_role().role_name(ACCOUNT_ROLE).send().await {
        Ok(_) => true,
        Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_entity_exception()) => false,
        Err(e) => panic!("GetRole {ACCOUNT_ROLE}: {e:?}"),
    };
    let account = aws.apigateway.get_account().send().await.expect("GetAccount");
    (exists, account.cloudwatch_role_arn().map(str::to_string))
}
