//! The DynamoDB gateway endpoint: the only way out of the isolated subnets. It sits on every
//! route table of the stack, and its policy allows only what the function does (PutItem) on the
//! stack's table.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, VpcEndpoint, VpcEndpointType};
use serde_json::{Value, json};

use super::ec2::{filter, stack_filter, tag_spec};
use super::{
    Ctx, Dep, FieldChange, Grant, Id, Kind, LiveStates, Resource, Scope, at_most_one, route_table, table, vpc,
};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::error::{Error, Result};
use crate::wait::{backoff, wait_until};

pub const ID: Id<LiveEndpoint> = Id::new("dynamodb-endpoint");

/// The DynamoDB actions the function performs (handler: one PutItem per POST). Nothing else
/// goes through the endpoint.
pub const ACTIONS: [&str; 1] = ["dynamodb:PutItem"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoDbEndpoint {
    /// How many route tables (`route-table-0` … `route-table-{n-1}`) the endpoint serves.
    pub route_tables: u8,
    /// The table whose ARN the policy names (known from its name).
    pub table_name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredEndpoint {
    pub vpc_id: String,
    pub service_name: String,
    pub route_table_ids: BTreeSet<String>,
    pub policy: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEndpoint {
    pub id: String,
    pub vpc_id: String,
    pub service_name: String,
    /// `Gateway`, `Interface`, …
    pub endpoint_type: String,
    /// Lower-cased: `available`, `pending`, `failed`, …
    pub state: String,
    pub route_table_ids: BTreeSet<String>,
    pub policy: Option<String>,
}

pub fn service_name(region: &str) -> String {
    format!("com.amazonaws.{region}.dynamodb")
}

/// The endpoint policy: only our actions, only on our table, only by this account's principals
/// (`aws:PrincipalAccount`: credentials of another account, taken into the VPC, get nothing).
pub fn policy(table_arn: &str, account_id: &str) -> Value {
    policy_document(json!(table_arn), json!(account_id))
}

/// [`policy`], with the table's ARN and the account as any JSON value (CloudFormation's
/// references, for `export`).
pub fn policy_document(table_arn: Value, account_id: Value) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "FunctionWritesToTheStackTableOnly",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ACTIONS,
            "Resource": table_arn,
            "Condition": { "StringEquals": { "aws:PrincipalAccount": account_id } }
        }]
    })
}

/// A policy document in a canonical form, so that equivalent spellings compare equal: a single
/// statement vs a list of one, `"Action": "x"` vs `["x"]` (sorted), `Principal {"AWS": "*"}` vs
/// `"*"`. AWS stores endpoint policies as given but may reformat whitespace and key order.
pub fn normalize_policy(doc: &Value) -> Value {
    fn list(v: &Value) -> Value {
        let mut items: Vec<Value> = match v {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        items.sort_by_key(|v| v.to_string());
        items.dedup();
        Value::Array(items)
    }
    fn statement(s: &Value) -> Value {
        let Value::Object(map) = s else {
            return s.clone();
        };
        let mut out = map.clone();
        for key in ["Action", "NotAction", "Resource", "NotResource"] {
            if let Some(v) = map.get(key) {
                out.insert(key.to_string(), list(v));
            }
        }
        if map.get("Principal") == Some(&json!({"AWS": "*"})) {
            out.insert("Principal".to_string(), json!("*"));
        }
        Value::Object(out)
    }
    let Value::Object(map) = doc else {
        return doc.clone();
    };
    let mut out = map.clone();
    if let Some(st) = map.get("Statement") {
        let statements: Vec<Value> = match st {
            Value::Array(a) => a.iter().map(statement).collect(),
            one => vec![statement(one)],
        };
        out.insert("Statement".to_string(), Value::Array(statements));
    }
    Value::Object(out)
}

/// Whether the live policy text means the same as the desired document.
pub fn policy_matches(desired: &Value, live: Option<&str>) -> bool {
    live.and_then(|text| serde_json::from_str::<Value>(text).ok())
        .is_some_and(|live| normalize_policy(&live) == normalize_policy(desired))
}

pub fn diff(desired: &DesiredEndpoint, live: &LiveEndpoint) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    if desired.vpc_id != live.vpc_id {
        changes.push(FieldChange::replace("vpc", &desired.vpc_id, &live.vpc_id));
    }
    if desired.service_name != live.service_name {
        changes.push(FieldChange::replace("service_name", &desired.service_name, &live.service_name));
    }
    if live.endpoint_type != "Gateway" {
        changes.push(FieldChange::replace("type", "Gateway", &live.endpoint_type));
    }
    if matches!(live.state.as_str(), "failed" | "rejected" | "expired") {
        changes.push(FieldChange::replace("state", "available", &live.state));
    }
    if desired.route_table_ids != live.route_table_ids {
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        changes.push(FieldChange::update("route_tables", join(&desired.route_table_ids), join(&live.route_table_ids)));
    }
    if !policy_matches(&desired.policy, live.policy.as_deref()) {
        changes.push(FieldChange::update(
            "policy",
            desired.policy.to_string(),
            live.policy.as_deref().unwrap_or("(none)"),
        ));
    }
    changes
}

const PREFIX_LIST: &str = "ec2:DescribePrefixLists dynamodb";

/// The id of the AWS-managed prefix list of the region's DynamoDB service (`pl-…`), read once
/// per run: it differs per region, and moto makes up a new one at each server start.
pub async fn dynamodb_prefix_list_id(ctx: &Ctx) -> Result<std::sync::Arc<String>> {
    ctx.once(PREFIX_LIST, || async {
        let name = service_name(&ctx.aws.region);
        let out = ctx
            .aws
            .ec2
            .describe_prefix_lists()
            .filters(filter("prefix-list-name", &name))
            .send()
            .await
            .aws("EC2", "DescribePrefixLists")?;
        out.prefix_lists()
            .iter()
            .find(|p| p.prefix_list_name() == Some(name.as_str()))
            .and_then(|p| p.prefix_list_id())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::other(format!(
                    "EC2 has no prefix list `{name}` in region {}: is DynamoDB available there?",
                    ctx.aws.region
                ))
            })
    })
    .await
}

/// The prefix list id read by [`dynamodb_prefix_list_id`] earlier in the run (for `diff`).
pub fn known_prefix_list_id(ctx: &Ctx) -> Result<std::sync::Arc<String>> {
    ctx.already(PREFIX_LIST)
}

fn live_endpoint(e: &VpcEndpoint) -> LiveEndpoint {
    LiveEndpoint {
        id: e.vpc_endpoint_id().unwrap_or_default().to_string(),
        vpc_id: e.vpc_id().unwrap_or_default().to_string(),
        service_name: e.service_name().unwrap_or_default().to_string(),
        endpoint_type: e.vpc_endpoint_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        state: e.state().map(|s| s.as_str().to_ascii_lowercase()).unwrap_or_default(),
        route_table_ids: e.route_table_ids().iter().cloned().collect(),
        policy: e.policy_document().map(str::to_string),
    }
}

/// Deleted endpoints stay visible (state `deleted`) for a while, in AWS and in moto.
fn is_gone(state: &str) -> bool {
    matches!(state, "deleted" | "deleting")
}

/// The stack's VPC endpoints, deleted ones left out (one read per run).
async fn stack_endpoints(ctx: &Ctx) -> Result<std::sync::Arc<Vec<LiveEndpoint>>> {
    ctx.once("ec2:DescribeVpcEndpoints", || async {
        let out = ctx
            .aws
            .ec2
            .describe_vpc_endpoints()
            .filters(stack_filter(ctx))
            .send()
            .await
            .aws("EC2", "DescribeVpcEndpoints")?;
        Ok(out
            .vpc_endpoints()
            .iter()
            .filter(|e| {
                ctx.owns(
                    ID.name(),
                    e.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                )
            })
            .map(live_endpoint)
            .filter(|e| !is_gone(&e.state))
            .collect())
    })
    .await
}

impl DynamoDbEndpoint {
    fn desired(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<DesiredEndpoint> {
        let route_table_ids = (0..self.route_tables)
            .map(|i| inputs.get(route_table::id(i)).map(|rt| rt.id.clone()))
            .collect::<Result<_>>()?;
        Ok(DesiredEndpoint {
            vpc_id: inputs.get(vpc::ID)?.id.clone(),
            service_name: service_name(&ctx.aws.region),
            route_table_ids,
            policy: policy(&table::arn(ctx, &self.table_name), ctx.account_id()),
        })
    }
}

#[async_trait]
impl Resource for DynamoDbEndpoint {
    type Live = LiveEndpoint;
    type Change = FieldChange;

    fn id(&self) -> Id<LiveEndpoint> {
        ID
    }

    fn kind(&self) -> Kind {
        Kind::VpcEndpoint
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        let reads = ["ec2:DescribeVpcEndpoints", "ec2:DescribePrefixLists"];
        let changes = ["ec2:CreateVpcEndpoint", "ec2:ModifyVpcEndpoint", "ec2:DeleteVpcEndpoints"];
        super::ec2::grants(s, "vpc-endpoint", &reads, "ec2:CreateVpcEndpoint", &changes, &["vpc", "route-table"])
    }

    fn deps(&self) -> Vec<Dep> {
        let mut deps = vec![Dep::on(vpc::ID)];
        deps.extend((0..self.route_tables).map(|i| Dep::on(route_table::id(i))));
        deps
    }

    fn create_rounds(&self) -> u32 {
        1
    }

    fn export(&self, ctx: &Ctx, live: &LiveEndpoint) -> Vec<CfnResource> {
        let route_tables: Vec<Value> = (0..self.route_tables).map(|i| cfn::reference(route_table::id(i))).collect();
        let policy = policy_document(cfn::attribute(table::ID, "Arn"), json!({ "Ref": "AWS::AccountId" }));
        let properties = json!({
            "VpcEndpointType": "Gateway",
            "VpcId": cfn::reference(vpc::ID),
            "ServiceName": live.service_name,
            "RouteTableIds": route_tables,
            "PolicyDocument": policy,
            "Tags": cfn::tags(&ctx.tags(ID.name())),
        });
        vec![CfnResource::new(ID, "AWS::EC2::VPCEndpoint", properties, cfn::identifier(&[("Id", &live.id)]))]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveEndpoint>> {
        at_most_one(stack_endpoints(ctx).await?.to_vec(), "VPC endpoint", ID.name())
    }

    fn diff(&self, ctx: &Ctx, inputs: &LiveStates, live: &LiveEndpoint) -> Result<Vec<FieldChange>> {
        Ok(diff(&self.desired(ctx, inputs)?, live))
    }

    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LiveEndpoint> {
        let desired = self.desired(ctx, inputs)?;
        let out = ctx
            .aws
            .ec2
            .create_vpc_endpoint()
            .vpc_endpoint_type(VpcEndpointType::Gateway)
            .vpc_id(&desired.vpc_id)
            .service_name(&desired.service_name)
            .set_route_table_ids(Some(desired.route_table_ids.iter().cloned().collect()))
            .policy_document(desired.policy.to_string())
            .tag_specifications(tag_spec(ctx, ID.name(), ResourceType::VpcEndpoint))
            .send()
            .await
            .aws("EC2", "CreateVpcEndpoint")?;
        let created = out
            .vpc_endpoint()
            .map(live_endpoint)
            .ok_or_else(|| Error::other("EC2 CreateVpcEndpoint returned no endpoint"))?;
        // Gateway endpoints are usually `available` at once; otherwise wait, so that the routes
        // are there when the function starts.
        if created.state == "available" {
            return Ok(created);
        }
        wait_until(
            ctx,
            ID,
            "the DynamoDB endpoint to be available",
            ctx.timeouts.resource_ready,
            backoff::SETTLING,
            || async {
                let out = ctx
                    .aws
                    .ec2
                    .describe_vpc_endpoints()
                    .vpc_endpoint_ids(&created.id)
                    .send()
                    .await
                    .aws("EC2", "DescribeVpcEndpoints")?;
                let now = out.vpc_endpoints().first().map(live_endpoint);
                match now.as_ref().map(|e| e.state.as_str()) {
                    Some("available") => Ok(now),
                    Some(state @ ("failed" | "rejected")) => {
                        Err(Error::other(format!("VPC endpoint {} is {state}", created.id)))
                    }
                    _ => Ok(None),
                }
            },
        )
        .await
    }

    async fn update(
        &self,
        ctx: &Ctx,
        inputs: &LiveStates,
        live: &LiveEndpoint,
        _changes: &[FieldChange],
    ) -> Result<LiveEndpoint> {
        // Route tables and policy are set together, from desired and live, in one call.
        let desired = self.desired(ctx, inputs)?;
        let add: Vec<String> = desired.route_table_ids.difference(&live.route_table_ids).cloned().collect();
        let remove: Vec<String> = live.route_table_ids.difference(&desired.route_table_ids).cloned().collect();
        let policy_differs = !policy_matches(&desired.policy, live.policy.as_deref());
        let mut req = ctx.aws.ec2.modify_vpc_endpoint().vpc_endpoint_id(&live.id);
        if !add.is_empty() {
            req = req.set_add_route_table_ids(Some(add));
        }
        if !remove.is_empty() {
            req = req.set_remove_route_table_ids(Some(remove));
        }
        if policy_differs {
            req = req.policy_document(desired.policy.to_string());
        }
        req.send().await.aws("EC2", "ModifyVpcEndpoint")?;
        Ok(LiveEndpoint {
            route_table_ids: desired.route_table_ids,
            policy: Some(desired.policy.to_string()),
            ..live.clone()
        })
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveEndpoint) -> Result<()> {
        let endpoint_id = &live.id;
        let out = match ctx
            .aws
            .ec2
            .delete_vpc_endpoints()
            .vpc_endpoint_ids(endpoint_id)
            .send()
            .await
            .aws("EC2", "DeleteVpcEndpoints")
        {
            Ok(out) => out,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        // DeleteVpcEndpoints reports per-endpoint failures in `Unsuccessful`, with HTTP 200.
        if let Some(err) = out
            .unsuccessful()
            .iter()
            .filter_map(|u| u.error())
            .find(|e| !e.code().unwrap_or_default().ends_with("NotFound"))
        {
            return Err(Error::other(format!(
                "EC2 DeleteVpcEndpoints failed for {endpoint_id}: {}: {}",
                err.code().unwrap_or("?"),
                err.message().unwrap_or_default()
            )));
        }
        // Wait until it is gone, so the route tables after it can be deleted.
        wait_until(
            ctx,
            ID,
            "the DynamoDB endpoint to be deleted",
            ctx.timeouts.resource_ready,
            backoff::STATE,
            || async {
                match ctx
                    .aws
                    .ec2
                    .describe_vpc_endpoints()
                    .vpc_endpoint_ids(endpoint_id)
                    .send()
                    .await
                    .aws("EC2", "DescribeVpcEndpoints")
                {
                    Ok(out) => {
                        Ok(out.vpc_endpoints().iter().map(live_endpoint).all(|e| e.state == "deleted").then_some(()))
                    }
                    Err(e) if e.is_not_found() => Ok(Some(())),
                    Err(e) => Err(e),
                }
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::test_support::*;

    const ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/demo_table";

    fn desired() -> DesiredEndpoint {
        DesiredEndpoint {
            vpc_id: "vpc-1".into(),
            service_name: service_name("us-east-1"),
            route_table_ids: ["rtb-1", "rtb-2"].map(String::from).into(),
            policy: policy(ARN, "123456789012"),
        }
    }

    fn live() -> LiveEndpoint {
        LiveEndpoint {
            id: "vpce-1".into(),
            vpc_id: "vpc-1".into(),
            service_name: "com.amazonaws.us-east-1.dynamodb".into(),
            endpoint_type: "Gateway".into(),
            state: "available".into(),
            // AWS returns them in its own order: compared as a set.
            route_table_ids: ["rtb-2", "rtb-1"].map(String::from).into(),
            policy: Some(policy(ARN, "123456789012").to_string()),
        }
    }

    #[test]
    fn in_sync_endpoint_has_no_changes() {
        assert_eq!(diff(&desired(), &live()), vec![]);
    }

    #[test]
    fn policy_is_limited_to_put_item_on_the_table() {
        let p = policy(ARN, "123456789012");
        assert_eq!(p["Statement"][0]["Action"], json!(["dynamodb:PutItem"]));
        assert_eq!(p["Statement"][0]["Condition"]["StringEquals"]["aws:PrincipalAccount"], json!("123456789012"));
        assert_eq!(p["Statement"][0]["Resource"], json!(ARN));
        assert_eq!(p["Statement"][0]["Principal"], json!("*"));
    }

    #[test]
    fn policy_comparison_is_semantic() {
        let d = policy(ARN, "123456789012");
        let reformatted = format!(
            r#"{{ "Statement": {{ "Resource": ["{ARN}"], "Action": "dynamodb:PutItem", "Principal": {{"AWS": "*"}},
                 "Effect": "Allow", "Sid": "FunctionWritesToTheStackTableOnly",
                 "Condition": {{"StringEquals": {{"aws:PrincipalAccount": "123456789012"}}}} }},
                "Version": "2012-10-17" }}"#
        );
        assert!(policy_matches(&d, Some(&reformatted)));
        let broad = policy(ARN, "123456789012").to_string().replace("dynamodb:PutItem", "dynamodb:*");
        assert!(!policy_matches(&d, Some(&broad)));
        let other_table = policy("arn:aws:dynamodb:us-east-1:123456789012:table/other", "123456789012");
        assert!(!policy_matches(&d, Some(&other_table.to_string())));
        let any_account = policy(ARN, "123456789012")
            .to_string()
            .replace(r#","Condition":{"StringEquals":{"aws:PrincipalAccount":"123456789012"}}"#, "");
        assert!(!any_account.contains("PrincipalAccount"), "{any_account}");
        assert!(!policy_matches(&d, Some(&any_account)));
        assert!(!policy_matches(&d, Some(&other_table.to_string())));
        assert!(!policy_matches(&d, Some("not json")));
        assert!(!policy_matches(&d, None));
    }

    #[test]
    fn route_tables_and_policy_are_updates() {
        let mut l = live();
        l.route_table_ids.remove("rtb-2");
        l.route_table_ids.insert("rtb-9".into());
        l.policy = Some(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#.into());
        let changes = diff(&desired(), &l);
        let fields: Vec<_> = changes.iter().map(|c| (c.field.as_str(), c.replace)).collect();
        assert_eq!(fields, vec![("route_tables", false), ("policy", false)]);
        assert_eq!(changes[0].desired, "rtb-1,rtb-2");
        assert_eq!(changes[0].live, "rtb-1,rtb-9");
    }

    #[test]
    fn vpc_service_type_and_failure_are_replacements() {
        let cases: Vec<(Edit<LiveEndpoint>, &str)> = vec![
            (|l| l.vpc_id = "vpc-2".into(), "vpc"),
            (|l| l.service_name = "com.amazonaws.us-east-1.s3".into(), "service_name"),
            (|l| l.endpoint_type = "Interface".into(), "type"),
            (|l| l.state = "failed".into(), "state"),
        ];
        for (mutate, field) in cases {
            let mut l = live();
            mutate(&mut l);
            let changes = diff(&desired(), &l);
            assert_eq!(changes.len(), 1, "{field}");
            assert_eq!(changes[0].field, field);
            assert!(changes[0].replace, "{field}");
        }
    }
}
