//! Issue 4, lifecycle on one stack: `status` / `plan` / `up` around drifts made behind the
//! deployer's back, then a code-only `up` (hotswap).
//!
//! One stack, one moto. After a cold `up`, `status` is in sync. Then, one after another, each
//! drift is made through the SDK straight against moto (not through the proxy):
//!   - the function's log group retention set to 7 days (PutRetentionPolicy),
//!   - the Standard usage plan's rateLimit set to 10 (UpdateUsagePlan),
//!   - the VPC flow log deleted (DeleteFlowLogs),
//!   - an extra security-group egress rule, tcp/80 to 0.0.0.0/0 (AuthorizeSecurityGroupEgress),
//!   - an ingress rule on that group, tcp/22 from 10.0.0.0/8 (AuthorizeSecurityGroupIngress),
//!   - the function's memory set to 1024 MB (UpdateFunctionConfiguration),
//!   - a route 0.0.0.0/0 to an internet gateway in route-table-0 (CreateInternetGateway,
//!     AttachInternetGateway, CreateRoute),
//!   - subnet-1 moved to a route table made by hand (CreateRouteTable,
//!     ReplaceRouteTableAssociation),
//!   - MapPublicIpOnLaunch turned on for subnet-0 (ModifySubnetAttribute),
//!   - the DynamoDB endpoint taken off route-table-1 (ModifyVpcEndpoint RemoveRouteTableIds),
//!   - AdministratorAccess attached to the function's role (AttachRolePolicy),
//!   - the flow-log role's trust opened to EC2 and its aws:SourceAccount condition dropped
//!     (UpdateAssumeRolePolicy),
//!   - the function role's permissions boundary removed (PutRolePermissionsBoundary).
//!
//! For each: `status` exits 2 and names exactly that resource (drifted with the field, or
//! missing); `plan` exits 2, names it with action update/create and makes no mutating call;
//! `up` fixes exactly that: its mutating calls are exactly the expected operations; the fix is
//! read back through the SDK; `status` is in sync again. Together they make every repair `up`
//! can make at least once, so that the IAM coverage report (`suite_report`) sees each action of
//! `movies-stack iam-policy` that only a repair needs.
//!
//! Finally a new artifact: `plan` shows a code update, `up` makes exactly three mutating calls
//! (UpdateFunctionCode, PublishVersion, UpdateAlias) and says `hotswap` on stderr.

use aws_sdk_apigateway::types::{Op, PatchOperation};
use std::path::Path;

use aws_sdk_ec2::types::{AttributeBooleanValue, IpPermission, IpRange};
use e2e::artifact::{code_sha256, write_modified};
use e2e::inventory::{Inventory, Shape, TAG_STACK};
use e2e::proxy::percent_decode;
use e2e::{Account, Aws, Checks, Output, Proxy, StackNames, ec2_filter};
use serde_json::{Value, json};

const RETENTION_DAYS: i32 = 365;
const MEMORY_MB: i32 = 256;
const STANDARD_RATE: f64 = 50.0;
/// The managed policy someone attaches to the function's role (loaded in moto by
/// `MOTO_IAM_LOAD_MANAGED_POLICIES`).
const ADMIN_POLICY: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

/// The row of resource `id` in `status` / `plan` JSON.
fn row<'a>(json: &'a Value, id: &str) -> Option<&'a Value> {
    json["resources"].as_array()?.iter().find(|r| r["id"] == id)
}

/// The sorted `"service Operation"` names of the mutating calls the proxy saw.
fn mutating(proxy: &Proxy) -> Vec<String> {
    let mut v: Vec<String> = proxy.mutating_calls().iter().map(|c| c.name()).collect();
    v.sort();
    v
}

/// A `status` row as the config wants it: present, or turned off and absent (the web ACL of
/// the base config).
fn in_sync_state(row: &Value) -> bool {
    row["state"] == "present" || row["state"] == "off"
}

/// A `plan` row that `up` leaves alone: no change, or turned off and absent.
fn no_action(row: &Value) -> bool {
    row["action"] == "none" || row["action"] == "off"
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drift {
    Retention,
    RateLimit,
    FlowLogDeleted,
    EgressRule,
    IngressRule,
    Memory,
    RouteToInternet,
    SubnetMoved,
    PublicIps,
    EndpointLostRouteTable,
    ManagedPolicy,
    TrustPolicy,
    BoundaryRemoved,
    PermissionWidened,
    AccessLogFormat,
}

/// How a value of a drifted field reads in `status --output json` (`live` / `desired`).
#[derive(Debug)]
enum Shown {
    /// A number (the JSON carries numbers as strings: "7", "10", "1024").
    Number(f64),
    /// Exactly this text.
    Text(String),
    /// Text containing each of these (ids made at run time, policy documents).
    Containing(Vec<String>),
}

impl Shown {
    fn text(s: impl Into<String>) -> Shown {
        Shown::Text(s.into())
    }

    fn containing(parts: &[&str]) -> Shown {
        Shown::Containing(parts.iter().map(|p| p.to_string()).collect())
    }

    fn matches(&self, value: &Value) -> bool {
        let Some(s) = value.as_str() else { return false };
        match self {
            Shown::Number(want) => s.trim().parse::<f64>().is_ok_and(|v| (v - want).abs() < 1e-9),
            Shown::Text(want) => s == want,
            Shown::Containing(parts) => parts.iter().all(|p| s.contains(p.as_str())),
        }
    }
}

/// The one drifted field of a resource.
struct Field {
    /// Its name (a prefix: rule fields end with the rule id).
    name: &'static str,
    live: Shown,
    desired: Shown,
}

/// What the deployer must say and do about one drift.
struct Expect {
    /// The deployer's resource id.
    resource: &'static str,
    /// `status` state: drifted | missing.
    state: &'static str,
    /// `plan` action: update | create.
    action: &'static str,
    /// The drifted field; `None` for a missing resource.
    field: Option<Field>,
    /// Exactly the mutating calls `up` may make to fix it.
    calls: &'static [&'static str],
}

impl Expect {
    fn drifted(resource: &'static str, field: Field, calls: &'static [&'static str]) -> Expect {
        Expect { resource, state: "drifted", action: "update", field: Some(field), calls }
    }
}

impl Drift {
    const ALL: [Drift; 15] = [
        Drift::Retention,
        Drift::RateLimit,
        Drift::FlowLogDeleted,
        Drift::EgressRule,
        Drift::IngressRule,
        Drift::Memory,
        Drift::RouteToInternet,
        Drift::SubnetMoved,
        Drift::PublicIps,
        Drift::EndpointLostRouteTable,
        Drift::ManagedPolicy,
        Drift::TrustPolicy,
        Drift::BoundaryRemoved,
        Drift::PermissionWidened,
        Drift::AccessLogFormat,
    ];

    fn expect(self, live: &Live) -> Expect {
        let field = |name, live, desired| Field { name, live, desired };
        match self {
            Drift::Retention => Expect::drifted(
                "function-log-group",
                field("retention_days", Shown::Number(7.0), Shown::Number(f64::from(RETENTION_DAYS))),
                &["logs PutRetentionPolicy"],
            ),
            Drift::RateLimit => Expect::drifted(
                "usage-plan-standard",
                field("throttle.rate_limit", Shown::Number(10.0), Shown::Number(STANDARD_RATE)),
                &["apigateway UpdateUsagePlan"],
            ),
            Drift::FlowLogDeleted => Expect {
                resource: "flow-log",
                state: "missing",
                action: "create",
                field: None,
                calls: &["ec2 CreateFlowLogs"],
            },
            Drift::EgressRule => Expect::drifted(
                "function-sg",
                field("egress rule", Shown::containing(&["tcp/80 to 0.0.0.0/0"]), Shown::text("absent")),
                &["ec2 RevokeSecurityGroupEgress"],
            ),
            Drift::IngressRule => Expect::drifted(
                "function-sg",
                field("ingress rule", Shown::containing(&["tcp/22 from 10.0.0.0/8"]), Shown::text("absent")),
                &["ec2 RevokeSecurityGroupIngress"],
            ),
            Drift::Memory => Expect::drifted(
                "function",
                field("memory_mb", Shown::Number(1024.0), Shown::Number(f64::from(MEMORY_MB))),
                &["lambda UpdateFunctionConfiguration"],
            ),
            Drift::RouteToInternet => Expect::drifted(
                "route-table-0",
                field("route 0.0.0.0/0", Shown::containing(&["igw-"]), Shown::text("absent")),
                &["ec2 DeleteRoute"],
            ),
            Drift::SubnetMoved => Expect::drifted(
                "route-table-1",
                field(
                    "association",
                    Shown::containing(&["associated with rtb-"]),
                    Shown::text(format!("associated with {}", live.subnet_ids[1])),
                ),
                &["ec2 ReplaceRouteTableAssociation"],
            ),
            Drift::PublicIps => Expect::drifted(
                "subnet-0",
                field("map_public_ip_on_launch", Shown::text("true"), Shown::text("false")),
                &["ec2 ModifySubnetAttribute"],
            ),
            Drift::EndpointLostRouteTable => {
                let mut both = live.route_table_ids.clone();
                both.sort();
                Expect::drifted(
                    "dynamodb-endpoint",
                    field("route_tables", Shown::text(&live.route_table_ids[0]), Shown::text(both.join(","))),
                    &["ec2 ModifyVpcEndpoint"],
                )
            }
            Drift::ManagedPolicy => Expect::drifted(
                "function-role",
                field("attached_managed_policies", Shown::text(ADMIN_POLICY), Shown::text("none")),
                &["iam DetachRolePolicy"],
            ),
            Drift::TrustPolicy => Expect::drifted(
                "flow-log-role",
                field(
                    "trust_policy",
                    Shown::containing(&["ec2.amazonaws.com"]),
                    Shown::containing(&["vpc-flow-logs.amazonaws.com", "aws:SourceAccount"]),
                ),
                &["iam UpdateAssumeRolePolicy"],
            ),
            // The boundary goes back first: IAM authorizes the other role changes by it.
            Drift::BoundaryRemoved => Expect::drifted(
                "function-role",
                field("permissions_boundary", Shown::text("none"), Shown::containing(&["-permissions-boundary"])),
                &["iam PutRolePermissionsBoundary"],
            ),
            // A Lambda permission cannot be edited: it is removed and added again (calls sorted).
            Drift::PermissionWidened => Expect::drifted(
                "api-permission",
                field(
                    "source_arn",
                    Shown::containing(&[":*/*"]),
                    Shown::containing(&[&format!(":{}/{STAGE}/*", live.api_id)]),
                ),
                &["lambda AddPermission", "lambda RemovePermission"],
            ),
            // Its own resource (it needs the account's CloudWatch role; the stage does not).
            Drift::AccessLogFormat => Expect::drifted(
                "stage-access-logs",
                field(
                    "access_log_format",
                    Shown::text(TRIMMED_LOG_FORMAT),
                    Shown::containing(&["$context.xrayTraceId"]),
                ),
                &["apigateway UpdateStage"],
            ),
        }
    }
}

/// The access log format someone trimmed by hand.
const TRIMMED_LOG_FORMAT: &str = "$context.requestId";

/// Ids and names the drifts need, looked up once after the cold `up`.
/// The stage of the suite's config (tests/src/config.rs): the only one the permission lets in.
const STAGE: &str = "prod";

struct Live {
    vpc_id: String,
    sg_id: String,
    standard_plan_id: String,
    /// `subnet-0`, `subnet-1`.
    subnet_ids: [String; 2],
    /// `route-table-0`, `route-table-1`.
    route_table_ids: [String; 2],
    endpoint_id: String,
    function_role: String,
    flow_log_role: String,
    api_id: String,
    /// The function's log group, by its name.
    function_log_group: String,
}

async fn live_ids(aws: &Aws, shape: &Shape) -> Live {
    let inv = Inventory::scan(aws).await;
    let id = |resource: &str| {
        inv.find(&shape.names.stack, resource).map(|i| i.id.clone()).unwrap_or_else(|| panic!("the stack's {resource}"))
    };
    Live {
        vpc_id: id("vpc"),
        sg_id: id("function-sg"),
        standard_plan_id: id("usage-plan-standard"),
        subnet_ids: [id("subnet-0"), id("subnet-1")],
        route_table_ids: [id("route-table-0"), id("route-table-1")],
        endpoint_id: id("dynamodb-endpoint"),
        function_role: id("function-role"),
        flow_log_role: id("flow-log-role"),
        api_id: id("api"),
        function_log_group: shape.name_of("function-log-group").to_string(),
    }
}

/// The routes of a route table: (destination, target).
async fn routes(aws: &Aws, route_table_id: &str) -> Vec<(String, String)> {
    let out =
        aws.ec2.describe_route_tables().route_table_ids(route_table_id).send().await.expect("DescribeRouteTables");
    let table = out.route_tables().first().unwrap_or_else(|| panic!("route table {route_table_id}"));
    table
        .routes()
        .iter()
        .map(|r| {
            let destination = r.destination_cidr_block().or(r.destination_prefix_list_id()).unwrap_or("?");
            (destination.to_string(), r.gateway_id().unwrap_or("?").to_string())
        })
        .collect()
}

/// The route table subnet `subnet_id` is explicitly associated with: (table id, association id).
async fn association_of(aws: &Aws, subnet_id: &str) -> Option<(String, String)> {
    let out = aws
        .ec2
        .describe_route_tables()
        .filters(ec2_filter("association.subnet-id", subnet_id))
        .send()
        .await
        .expect("DescribeRouteTables");
    out.route_tables().iter().find_map(|rt| {
        let a = rt.associations().iter().find(|a| a.subnet_id() == Some(subnet_id))?;
        Some((rt.route_table_id()?.to_string(), a.route_table_association_id()?.to_string()))
    })
}

/// A role's trust policy, decoded (IAM answers it URL-encoded).
async fn trust_policy(aws: &Aws, role: &str) -> Value {
    let out = aws.iam.get_role().role_name(role).send().await.expect("GetRole");
    let raw = out.role().and_then(|r| r.assume_role_policy_document()).unwrap_or_default();
    serde_json::from_str(&percent_decode(raw)).unwrap_or(Value::Null)
}

/// The source ARN of the stack's statement in the function's resource policy.
/// The source ARN of the stack's statement in the alias `live`'s policy.
async fn permission_source(aws: &Aws, function: &str) -> Option<String> {
    let out = aws.lambda.get_policy().function_name(function).qualifier("live").send().await.ok()?;
    let doc: Value = serde_json::from_str(out.policy()?).ok()?;
    let statements = doc["Statement"].as_array()?;
    let ours = statements.iter().find(|s| s["Sid"] == "movies-stack-apigateway")?;
    ours["Condition"]["ArnLike"]["AWS:SourceArn"].as_str().map(str::to_string)
}

/// A security group rule: TCP `port` from or to `cidr`.
fn tcp_rule(port: i32, cidr: &str) -> IpPermission {
    let range = IpRange::builder().cidr_ip(cidr).build();
    IpPermission::builder().ip_protocol("tcp").from_port(port).to_port(port).ip_ranges(range).build()
}

/// Make the drift through the SDK, straight against moto.
async fn make(drift: Drift, aws: &Aws, n: &StackNames, live: &Live) {
    match drift {
        Drift::Retention => {
            aws.logs
                .put_retention_policy()
                .log_group_name(&live.function_log_group)
                .retention_in_days(7)
                .send()
                .await
                .expect("PutRetentionPolicy");
        }
        Drift::RateLimit => {
            // An integer: moto parses rateLimit with int(). (Never /quota/limit: moto then breaks
            // GetUsagePlans.)
            aws.apigateway
                .update_usage_plan()
                .usage_plan_id(&live.standard_plan_id)
                .patch_operations(
                    PatchOperation::builder().op(Op::Replace).path("/throttle/rateLimit").value("10").build(),
                )
                .send()
                .await
                .expect("UpdateUsagePlan");
        }
        Drift::FlowLogDeleted => {
            let fls = aws
                .ec2
                .describe_flow_logs()
                .filter(ec2_filter("resource-id", &live.vpc_id))
                .send()
                .await
                .expect("DescribeFlowLogs");
            let ids: Vec<String> = fls.flow_logs().iter().filter_map(|f| f.flow_log_id()).map(str::to_string).collect();
            assert_eq!(ids.len(), 1, "one flow log on the VPC before deleting it: {ids:?}");
            aws.ec2.delete_flow_logs().set_flow_log_ids(Some(ids)).send().await.expect("DeleteFlowLogs");
        }
        Drift::EgressRule => {
            aws.ec2
                .authorize_security_group_egress()
                .group_id(&live.sg_id)
                .ip_permissions(tcp_rule(80, "0.0.0.0/0"))
                .send()
                .await
                .expect("AuthorizeSecurityGroupEgress");
        }
        Drift::IngressRule => {
            aws.ec2
                .authorize_security_group_ingress()
                .group_id(&live.sg_id)
                .ip_permissions(tcp_rule(22, "10.0.0.0/8"))
                .send()
                .await
                .expect("AuthorizeSecurityGroupIngress");
        }
        Drift::Memory => {
            aws.lambda
                .update_function_configuration()
                .function_name(&n.function)
                .memory_size(1024)
                .send()
                .await
                .expect("UpdateFunctionConfiguration");
        }
        Drift::RouteToInternet => {
            // As AWS requires, the gateway is attached to the VPC before a route can use it. It
            // stays attached afterwards: internet gateways are not the stack's, only the route is.
            let igw = aws.ec2.create_internet_gateway().send().await.expect("CreateInternetGateway");
            let igw_id = igw.internet_gateway().and_then(|g| g.internet_gateway_id()).expect("an igw id");
            aws.ec2
                .attach_internet_gateway()
                .internet_gateway_id(igw_id)
                .vpc_id(&live.vpc_id)
                .send()
                .await
                .expect("AttachInternetGateway");
            aws.ec2
                .create_route()
                .route_table_id(&live.route_table_ids[0])
                .destination_cidr_block("0.0.0.0/0")
                .gateway_id(igw_id)
                .send()
                .await
                .expect("CreateRoute");
        }
        Drift::SubnetMoved => {
            // The hand-made table stays in the VPC after the fix: untagged, it is not the
            // stack's, and `status` must be in sync with it there.
            let other = aws.ec2.create_route_table().vpc_id(&live.vpc_id).send().await.expect("CreateRouteTable");
            let other_id = other.route_table().and_then(|t| t.route_table_id()).expect("a route table id");
            let (table, association) =
                association_of(aws, &live.subnet_ids[1]).await.expect("subnet-1 associated with a route table");
            assert_eq!(table, live.route_table_ids[1], "subnet-1 is with route-table-1 before the drift");
            aws.ec2
                .replace_route_table_association()
                .association_id(association)
                .route_table_id(other_id)
                .send()
                .await
                .expect("ReplaceRouteTableAssociation");
        }
        Drift::PublicIps => {
            aws.ec2
                .modify_subnet_attribute()
                .subnet_id(&live.subnet_ids[0])
                .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
                .send()
                .await
                .expect("ModifySubnetAttribute");
        }
        Drift::EndpointLostRouteTable => {
            // MOTO GAP: AWS also deletes the endpoint's prefix-list route from that table; moto
            // keeps it. The deployer does not mind either way (a table without the endpoint's
            // route is in sync, route_table.rs), so only the endpoint is drifted in both.
            aws.ec2
                .modify_vpc_endpoint()
                .vpc_endpoint_id(&live.endpoint_id)
                .remove_route_table_ids(&live.route_table_ids[1])
                .send()
                .await
                .expect("ModifyVpcEndpoint");
        }
        Drift::ManagedPolicy => {
            aws.iam
                .attach_role_policy()
                .role_name(&live.function_role)
                .policy_arn(ADMIN_POLICY)
                .send()
                .await
                .expect("AttachRolePolicy");
        }
        Drift::TrustPolicy => {
            // EC2 may assume it too, and any account's flow logs (no aws:SourceAccount).
            let trust = json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": { "Service": ["vpc-flow-logs.amazonaws.com", "ec2.amazonaws.com"] },
                    "Action": "sts:AssumeRole"
                }]
            });
            aws.iam
                .update_assume_role_policy()
                .role_name(&live.flow_log_role)
                .policy_document(trust.to_string())
                .send()
                .await
                .expect("UpdateAssumeRolePolicy");
        }
        Drift::BoundaryRemoved => {
            aws.iam
                .delete_role_permissions_boundary()
                .role_name(&live.function_role)
                .send()
                .await
                .expect("DeleteRolePermissionsBoundary");
        }
        Drift::PermissionWidened => {
            // Any API of the account may invoke the function's alias, not only the stack's.
            let source = permission_source(aws, &n.function).await.expect("the stack's permission statement");
            let (prefix, _) = source.rsplit_once(':').expect("an ARN");
            aws.lambda
                .remove_permission()
                .function_name(&n.function)
                .qualifier("live")
                .statement_id("movies-stack-apigateway")
                .send()
                .await
                .expect("RemovePermission");
            aws.lambda
                .add_permission()
                .function_name(&n.function)
                .qualifier("live")
                .statement_id("movies-stack-apigateway")
                .action("lambda:InvokeFunction")
                .principal("apigateway.amazonaws.com")
                .source_arn(format!("{prefix}:*/*"))
                .send()
                .await
                .expect("AddPermission");
        }
        Drift::AccessLogFormat => {
            let op = PatchOperation::builder().op(Op::Replace).path("/accessLogSettings/format");
            aws.apigateway
                .update_stage()
                .rest_api_id(&live.api_id)
                .stage_name(STAGE)
                .patch_operations(op.value(TRIMMED_LOG_FORMAT).build())
                .send()
                .await
                .expect("UpdateStage");
        }
    }
}

/// After `up`: the drift is gone, read back through the SDK.
async fn check_fixed(c: &mut Checks, drift: Drift, aws: &Aws, n: &StackNames, live: &Live) {
    let what = format!("{drift:?} fixed");
    match drift {
        Drift::Retention => {
            let name = &live.function_log_group;
            let got =
                aws.logs.describe_log_groups().log_group_name_prefix(name).send().await.expect("DescribeLogGroups");
            let retention = got
                .log_groups()
                .iter()
                .find(|g| g.log_group_name() == Some(name.as_str()))
                .and_then(|g| g.retention_in_days());
            c.eq(&format!("{what}: {name} retention"), retention, Some(RETENTION_DAYS));
        }
        Drift::RateLimit => {
            let p = aws.apigateway.get_usage_plan().usage_plan_id(&live.standard_plan_id).send().await;
            let rate = p.ok().and_then(|p| p.throttle().map(|t| t.rate_limit()));
            c.eq(&format!("{what}: Standard rate limit"), rate, Some(STANDARD_RATE));
        }
        Drift::FlowLogDeleted => {
            let fls = aws
                .ec2
                .describe_flow_logs()
                .filter(ec2_filter("resource-id", &live.vpc_id))
                .send()
                .await
                .expect("DescribeFlowLogs");
            let tagged = fls
                .flow_logs()
                .iter()
                .filter(|f| f.tags().iter().any(|t| t.key() == Some(TAG_STACK) && t.value() == Some(n.stack.as_str())))
                .count();
            c.eq(&format!("{what}: flow logs on the VPC"), fls.flow_logs().len(), 1);
            c.eq(&format!("{what}: flow logs tagged with the stack"), tagged, 1);
            if let Some(f) = fls.flow_logs().first() {
                c.eq(&format!("{what}: traffic type"), f.traffic_type().map(|t| t.as_str()), Some("ALL"));
            }
        }
        Drift::EgressRule | Drift::IngressRule => {
            let sgs =
                aws.ec2.describe_security_groups().group_ids(&live.sg_id).send().await.expect("DescribeSecurityGroups");
            let rules = |permissions: &[IpPermission]| -> Vec<(Option<String>, Option<i32>)> {
                permissions.iter().map(|p| (p.ip_protocol().map(str::to_string), p.from_port())).collect()
            };
            let group = sgs.security_groups().first();
            c.eq(
                &format!("{what}: egress rules (protocol, port)"),
                group.map(|g| rules(g.ip_permissions_egress())).unwrap_or_default(),
                vec![(Some("tcp".to_string()), Some(443))],
            );
            c.eq(
                &format!("{what}: ingress rules (protocol, port)"),
                group.map(|g| rules(g.ip_permissions())).unwrap_or_default(),
                vec![],
            );
        }
        Drift::Memory => {
            let f = aws.lambda.get_function_configuration().function_name(&n.function).send().await;
            c.eq(&format!("{what}: memory"), f.ok().and_then(|f| f.memory_size()), Some(MEMORY_MB));
        }
        Drift::RouteToInternet => {
            // Left: the VPC's local route and the endpoint's prefix-list route.
            let left: Vec<(String, String)> = routes(aws, &live.route_table_ids[0])
                .await
                .into_iter()
                .filter(|(_, target)| target != "local" && !target.starts_with("vpce-"))
                .collect();
            c.eq(&format!("{what}: routes of route-table-0 other than local and the endpoint's"), left, vec![]);
        }
        Drift::SubnetMoved => {
            let table = association_of(aws, &live.subnet_ids[1]).await.map(|(table, _)| table);
            c.eq(&format!("{what}: subnet-1's route table"), table.as_ref(), Some(&live.route_table_ids[1]));
        }
        Drift::PublicIps => {
            let out = aws.ec2.describe_subnets().subnet_ids(&live.subnet_ids[0]).send().await.expect("DescribeSubnets");
            let public = out.subnets().first().and_then(|s| s.map_public_ip_on_launch());
            c.eq(&format!("{what}: subnet-0 MapPublicIpOnLaunch"), public, Some(false));
        }
        Drift::EndpointLostRouteTable => {
            let out = aws
                .ec2
                .describe_vpc_endpoints()
                .vpc_endpoint_ids(&live.endpoint_id)
                .send()
                .await
                .expect("DescribeVpcEndpoints");
            let mut tables: Vec<String> =
                out.vpc_endpoints().first().map(|e| e.route_table_ids().to_vec()).unwrap_or_default();
            tables.sort();
            let mut want = live.route_table_ids.to_vec();
            want.sort();
            c.eq(&format!("{what}: the endpoint's route tables"), tables, want);
        }
        Drift::ManagedPolicy => {
            let out = aws
                .iam
                .list_attached_role_policies()
                .role_name(&live.function_role)
                .send()
                .await
                .expect("ListAttachedRolePolicies");
            let attached: Vec<&str> = out.attached_policies().iter().filter_map(|p| p.policy_arn()).collect();
            c.eq(&format!("{what}: managed policies on the function role"), attached, Vec::<&str>::new());
        }
        Drift::TrustPolicy => {
            let trust = trust_policy(aws, &live.flow_log_role).await;
            let statement = &trust["Statement"][0];
            c.eq(
                &format!("{what}: the flow-log role's trusted service"),
                &statement["Principal"]["Service"],
                &json!("vpc-flow-logs.amazonaws.com"),
            );
            c.check(
                statement["Condition"]["StringEquals"]["aws:SourceAccount"].is_string(),
                format!("{what}: the flow-log role's trust has its aws:SourceAccount condition again: {trust}"),
            );
        }
        Drift::BoundaryRemoved => {
            let role = aws.iam.get_role().role_name(&live.function_role).send().await.expect("GetRole");
            let boundary =
                role.role().and_then(|r| r.permissions_boundary()).and_then(|b| b.permissions_boundary_arn());
            c.check(
                boundary.is_some_and(|b| b.ends_with(&format!(":policy/{}-permissions-boundary", n.stack))),
                format!("{what}: the function role's permissions boundary is the stack's again: {boundary:?}"),
            );
        }
        Drift::PermissionWidened => {
            let source = permission_source(aws, &n.function).await;
            c.check(
                source.as_ref().is_some_and(|s| s.ends_with(&format!(":{}/{STAGE}/*", live.api_id))),
                format!("{what}: the permission's source ARN is the stack's stage again: {source:?}"),
            );
        }
        Drift::AccessLogFormat => {
            let stage = aws.apigateway.get_stage().rest_api_id(&live.api_id).stage_name(STAGE).send().await;
            let format = stage.expect("GetStage").access_log_settings().and_then(|l| l.format()).map(str::to_string);
            c.check(
                format
                    .as_deref()
                    .is_some_and(|f| f.starts_with("{\"requestId\"") && f.contains("$context.xrayTraceId")),
                format!("{what}: the stage logs the JSON format again: {format:?}"),
            );
        }
    }
}

/// `status` (JSON and human) reports exactly this drift, with exit 2.
fn check_status(c: &mut Checks, drift: Drift, e: &Expect, json_run: &Output, human_run: &Output) {
    let what = format!("{drift:?}: status");
    c.eq(&format!("{what} --output json exit code"), json_run.code, 2);
    let Ok(json) = serde_json::from_str::<Value>(json_run.stdout.trim()) else {
        c.check(false, format!("{what}: stdout is JSON:\n{json_run}"));
        return;
    };
    c.eq(&format!("{what}: in_sync"), json["in_sync"].as_bool(), Some(false));
    match row(&json, e.resource) {
        None => {
            c.check(false, format!("{what}: has a row for {}: {json}", e.resource));
        }
        Some(r) => {
            c.eq(&format!("{what}: {} state", e.resource), r["state"].as_str(), Some(e.state));
            if let Some(field) = &e.field {
                let drift_rows = r["drift"].as_array().cloned().unwrap_or_default();
                let found = drift_rows.iter().find(|d| d["field"].as_str().is_some_and(|f| f.starts_with(field.name)));
                if let Some(d) = found {
                    c.check(
                        field.live.matches(&d["live"]),
                        format!("{what}: {} live is {:?}: {d}", field.name, field.live),
                    );
                    c.check(
                        field.desired.matches(&d["desired"]),
                        format!("{what}: {} desired is {:?}: {d}", field.name, field.desired),
                    );
                } else {
                    c.check(false, format!("{what}: {} drift names field {}: {r}", e.resource, field.name));
                }
                c.eq(&format!("{what}: number of drifted fields of {}", e.resource), drift_rows.len(), 1);
            }
        }
    }
    // Exactly this resource is out of sync.
    let others: Vec<String> = json["resources"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["id"] != e.resource && !in_sync_state(r))
                .map(|r| format!("{} {}", r["id"], r["state"]))
                .collect()
        })
        .unwrap_or_default();
    c.eq(&format!("{what}: other resources not present/in sync"), others, Vec::<String>::new());

    c.eq(&format!("{what} (human) exit code"), human_run.code, 2);
    let line = human_run.stdout.lines().find(|l| l.split_whitespace().nth(1) == Some(e.resource));
    c.check(
        line.is_some_and(|l| l.split_whitespace().next() == Some(e.state)),
        format!("{what} (human): a line `{} {}`:\n{human_run}", e.state, e.resource),
    );
    if let Some(field) = &e.field {
        c.check(
            human_run.stdout.contains(field.name),
            format!("{what} (human) names the field {}:\n{human_run}", field.name),
        );
    }
}

/// `plan` (JSON and human) names exactly this change, exit 2.
fn check_plan(c: &mut Checks, drift: Drift, e: &Expect, json_run: &Output, human_run: &Output) {
    let what = format!("{drift:?}: plan");
    c.eq(&format!("{what} --output json exit code"), json_run.code, 2);
    let Ok(json) = serde_json::from_str::<Value>(json_run.stdout.trim()) else {
        c.check(false, format!("{what}: stdout is JSON:\n{json_run}"));
        return;
    };
    match row(&json, e.resource) {
        None => {
            c.check(false, format!("{what}: has a row for {}: {json}", e.resource));
        }
        Some(r) => {
            c.eq(&format!("{what}: {} action", e.resource), r["action"].as_str(), Some(e.action));
            if let Some(field) = &e.field {
                let names: Vec<&str> = r["changes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x["field"].as_str()).collect())
                    .unwrap_or_default();
                c.check(
                    names.len() == 1 && names[0].starts_with(field.name),
                    format!("{what}: {} changes are exactly [{}...]: {names:?}", e.resource, field.name),
                );
            }
        }
    }
    let others: Vec<String> = json["resources"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["id"] != e.resource && !no_action(r))
                .map(|r| format!("{} {}", r["id"], r["action"]))
                .collect()
        })
        .unwrap_or_default();
    c.eq(&format!("{what}: other resources with an action"), others, Vec::<String>::new());
    let key = if e.action == "create" { "create" } else { "update" };
    c.eq(&format!("{what}: summary.{key}"), json["summary"][key].as_u64(), Some(1));

    c.eq(&format!("{what} (human) exit code"), human_run.code, 2);
    c.check(
        human_run.stdout.lines().any(|l| l.contains(e.resource) && l.contains(e.action)),
        format!("{what} (human): a line naming {} with `{}`:\n{human_run}", e.resource, e.action),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_reported_planned_and_fixed_exactly_then_hotswap() {
    let account = Account::start().await;
    let stack = account.stack("life");
    let (aws, proxy, n, deployer, art) =
        (&account.aws, &account.proxy, &stack.names, &stack.deployer, stack.artifact.as_str());
    let mut c = Checks::new();
    let started = std::time::Instant::now();

    let (cold, _) = deployer.up_json(&["--artifact", art]).await;
    println!("cold up: {:.1}s, {} calls", cold.elapsed.as_secs_f64(), proxy.calls().len());

    // ------------------------------------------------------------------ in sync after up
    proxy.reset();
    let st = deployer.run(&["--output", "json", "status"]).await;
    c.eq("status after up: exit code", st.code, 0);
    let json: Value = serde_json::from_str(st.stdout.trim()).unwrap_or(Value::Null);
    c.eq("status after up: in_sync", json["in_sync"].as_bool(), Some(true));
    let not_present: Vec<String> = json["resources"]
        .as_array()
        .map(|rows| rows.iter().filter(|r| !in_sync_state(r)).map(|r| r.to_string()).collect())
        .unwrap_or_default();
    c.eq("status after up: rows not present", not_present, Vec::<String>::new());
    let st_h = deployer.run(&["status"]).await;
    c.eq("status (human) after up: exit code", st_h.code, 0);
    c.check(st_h.stdout.contains("In sync"), format!("status (human) after up says In sync:\n{st_h}"));
    let pl = deployer.run(&["--output", "json", "plan", "--artifact", art]).await;
    c.eq("plan after up: exit code", pl.code, 0);
    let json: Value = serde_json::from_str(pl.stdout.trim()).unwrap_or(Value::Null);
    c.eq(
        "plan after up: summary.unchanged + off = all",
        json["summary"]["unchanged"].as_u64().zip(json["summary"]["off"].as_u64()).map(|(u, off)| u + off),
        json["resources"].as_array().map(|a| a.len() as u64),
    );
    c.eq("status + plan after up: mutating calls", mutating(proxy), Vec::<String>::new());

    let live = live_ids(aws, &Shape::of(&stack).await).await;

    // ------------------------------------------------------------------ the drifts, one by one
    for drift in Drift::ALL {
        let e = drift.expect(&live);
        make(drift, aws, n, &live).await;

        proxy.reset();
        let st_json = deployer.run(&["--output", "json", "status"]).await;
        let st_human = deployer.run(&["status"]).await;
        check_status(&mut c, drift, &e, &st_json, &st_human);
        let pl_json = deployer.run(&["--output", "json", "plan", "--artifact", art]).await;
        let pl_human = deployer.run(&["plan", "--artifact", art]).await;
        check_plan(&mut c, drift, &e, &pl_json, &pl_human);
        c.eq(&format!("{drift:?}: status + plan mutating calls"), mutating(proxy), Vec::<String>::new());

        proxy.reset();
        let up = deployer.run(&["--output", "json", "up", "--artifact", art]).await;
        let calls = mutating(proxy);
        println!("{drift:?}: up {:.1}s, {} calls, mutating {:?}", up.elapsed.as_secs_f64(), proxy.calls().len(), calls);
        if c.eq(&format!("{drift:?}: up exit code"), up.code, 0) {
            let json = up.json();
            c.eq(&format!("{drift:?}: up changes"), json["changes"].as_u64(), Some(1));
            let summary = json["resources"][e.resource].as_str().unwrap_or_default();
            let want = if e.action == "create" { "created" } else { "updated" };
            c.check(summary.starts_with(want), format!("{drift:?}: up says {} {want}: {summary:?}", e.resource));
        } else {
            println!("{up}");
        }
        c.eq(
            &format!("{drift:?}: up's mutating calls"),
            calls,
            e.calls.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        );
        check_fixed(&mut c, drift, aws, n, &live).await;

        let again = deployer.run(&["--output", "json", "status"]).await;
        c.eq(&format!("{drift:?}: status after up: exit code"), again.code, 0);
        let json: Value = serde_json::from_str(again.stdout.trim()).unwrap_or(Value::Null);
        c.eq(&format!("{drift:?}: status after up: in_sync"), json["in_sync"].as_bool(), Some(true));
    }

    // ------------------------------------------------------------------ hotswap
    let modified_path = account.dir.path().join("handler-v2.zip");
    let modified = write_modified(Path::new(art), &modified_path, &n.stack);
    let modified_arg = modified_path.to_str().unwrap();
    proxy.reset();
    let pl = deployer.run(&["--output", "json", "plan", "--artifact", modified_arg]).await;
    c.eq("hotswap: plan exit code", pl.code, 2);
    let json: Value = serde_json::from_str(pl.stdout.trim()).unwrap_or(Value::Null);
    let fields: Vec<String> = row(&json, "function")
        .and_then(|r| {
            r["changes"].as_array().map(|a| a.iter().filter_map(|x| x["field"].as_str().map(str::to_string)).collect())
        })
        .unwrap_or_default();
    c.eq("hotswap: plan's function changes", fields, vec!["code".to_string()]);
    c.eq("hotswap: plan's mutating calls", mutating(proxy), Vec::<String>::new());

    proxy.reset();
    let up = deployer.run(&["up", "--artifact", modified_arg]).await;
    c.eq("hotswap: up exit code", up.code, 0);
    // The code, published as a version, which the alias `live` takes (sorted by name).
    c.eq(
        "hotswap: up's mutating calls",
        mutating(proxy),
        ["lambda PublishVersion", "lambda UpdateAlias", "lambda UpdateFunctionCode"].map(String::from).to_vec(),
    );
    c.check(up.stderr.contains("hotswap"), format!("hotswap: up's stderr says hotswap:\n{up}"));
    let f = aws.lambda.get_function_configuration().function_name(&n.function).send().await;
    c.eq(
        "hotswap: live CodeSha256 = the new zip's",
        f.ok().and_then(|f| f.code_sha256().map(str::to_string)),
        Some(code_sha256(&modified)),
    );
    proxy.reset();
    let pl = deployer.run(&["plan", "--artifact", modified_arg]).await;
    c.eq("hotswap: plan afterwards: exit code", pl.code, 0);
    let st = deployer.run(&["status"]).await;
    c.eq("hotswap: status afterwards: exit code", st.code, 0);
    // A no-op up is not a hotswap.
    let noop = deployer.run(&["up", "--artifact", modified_arg]).await;
    c.eq("hotswap: up again: exit code", noop.code, 0);
    c.check(!noop.stderr.contains("hotswap"), format!("a no-op up does not say hotswap:\n{noop}"));
    c.eq("hotswap: plan/status/up again: mutating calls", mutating(proxy), Vec::<String>::new());

    println!("lifecycle: {:.1}s in all", started.elapsed().as_secs_f64());
    c.finish("lifecycle (drift + hotswap)");
}
