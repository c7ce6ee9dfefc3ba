//! The VPC: one per stack, DNS support and DNS hostnames on (the DynamoDB gateway endpoint and
//! the Lambda ENIs need DNS). No internet gateway, ever.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};

use super::ec2::{pick, stack_filter, tag_spec};
use super::{Ctx, FieldChange, Grant, Id, Kind, KindChange, LiveStates, Resource, Scope};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::error::{Codes, ErrorKind, Result};
use crate::wait::{backoff, retry, wait_until};
use serde_json::json;

pub const ID: Id<LiveVpc> = Id::new("vpc");

/// Codes only the VPC's calls meet: VPCs per region (5 by default).
const CODES: &Codes = &[("VpcLimitExceeded", ErrorKind::Quota)];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    pub cidr: String,
}

/// The live VPC, as far as we compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveVpc {
    pub id: String,
    pub cidr: String,
    pub dns_support: bool,
    pub dns_hostnames: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VpcChange {
    /// Immutable: a new VPC.
    Cidr { desired: String, live: String },
    /// The DynamoDB endpoint and the Lambda ENIs need DNS.
    Attribute(VpcAttributeName),
}

impl KindChange for VpcChange {
    fn show(&self) -> FieldChange {
        match self {
            VpcChange::Cidr { desired, live } => FieldChange::replace("cidr", desired, live),
            VpcChange::Attribute(VpcAttributeName::EnableDnsSupport) => {
                FieldChange::update("enable_dns_support", true, false)
            }
            VpcChange::Attribute(_) => FieldChange::update("enable_dns_hostnames", true, false),
        }
    }
}

pub fn diff(desired: &Vpc, live: &LiveVpc) -> Vec<VpcChange> {
    let mut changes = Vec::new();
    if desired.cidr != live.cidr {
        changes.push(VpcChange::Cidr { desired: desired.cidr.clone(), live: live.cidr.clone() });
    }
    if !live.dns_support {
        changes.push(VpcChange::Attribute(VpcAttributeName::EnableDnsSupport));
    }
    if !live.dns_hostnames {
        changes.push(VpcChange::Attribute(VpcAttributeName::EnableDnsHostnames));
    }
    changes
}

/// The stack's VPCs (one read per run).
async fn stack_vpcs(ctx: &Ctx) -> Result<Arc<Vec<aws_sdk_ec2::types::Vpc>>> {
    ctx.once("ec2:DescribeVpcs", || async {
        let out = ctx.aws.ec2.describe_vpcs().filters(stack_filter(ctx)).send().await.aws_with(
            "EC2",
            "DescribeVpcs",
            CODES,
        )?;
        Ok(out.vpcs().to_vec())
    })
    .await
}

impl Vpc {
    async fn attribute(&self, ctx: &Ctx, id: &str, name: VpcAttributeName) -> Result<bool> {
        let out = ctx.aws.ec2.describe_vpc_attribute().vpc_id(id).attribute(name.clone()).send().await.aws_with(
            "EC2",
            "DescribeVpcAttribute",
            CODES,
        )?;
        let value = match name {
            VpcAttributeName::EnableDnsSupport => out.enable_dns_support(),
            _ => out.enable_dns_hostnames(),
        };
        Ok(value.and_then(|v| v.value()).unwrap_or(false))
    }

    /// One attribute per ModifyVpcAttribute call (an EC2 rule); the calls may run at once.
    async fn set_attribute(&self, ctx: &Ctx, id: &str, name: &VpcAttributeName) -> Result<()> {
        let on = AttributeBooleanValue::builder().value(true).build();
        let req = ctx.aws.ec2.modify_vpc_attribute().vpc_id(id);
        let req = match name {
            VpcAttributeName::EnableDnsSupport => req.enable_dns_support(on),
            _ => req.enable_dns_hostnames(on),
        };
        req.send().await.aws_with("EC2", "ModifyVpcAttribute", CODES)?;
        Ok(())
    }

    async fn set_attributes(&self, ctx: &Ctx, id: &str, names: &[&VpcAttributeName]) -> Result<()> {
        crate::wait::settle_all(names.iter().map(|n| self.set_attribute(ctx, id, n))).await?;
        Ok(())
    }
}

#[async_trait]
impl Resource for Vpc {
    type Live = LiveVpc;
    type Change = VpcChange;

    fn id(&self) -> Id<LiveVpc> {
        ID
    }

    fn kind(&self) -> Kind {
        Kind::Vpc
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        let changes = ["ec2:DescribeVpcAttribute", "ec2:ModifyVpcAttribute", "ec2:DeleteVpc"];
        super::ec2::grants(s, "vpc", &["ec2:DescribeVpcs"], "ec2:CreateVpc", &changes, &[])
    }

    fn create_rounds(&self) -> u32 {
        2 // CreateVpc, then both ModifyVpcAttribute at once
    }

    fn export(&self, ctx: &Ctx, live: &LiveVpc) -> Vec<CfnResource> {
        let properties = json!({
            "CidrBlock": live.cidr,
            "EnableDnsSupport": live.dns_support,
            "EnableDnsHostnames": live.dns_hostnames,
            "Tags": cfn::tags(&ctx.tags(ID.name())),
        });
        vec![CfnResource::new(ID, "AWS::EC2::VPC", properties, cfn::identifier(&[("VpcId", &live.id)]))]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveVpc>> {
        let Some(vpc) = pick(ctx, &stack_vpcs(ctx).await?, |v| v.tags(), "VPC", ID.name())? else { return Ok(None) };
        let id = vpc.vpc_id().unwrap_or_default().to_string();
        let (dns_support, dns_hostnames) = tokio::try_join!(
            self.attribute(ctx, &id, VpcAttributeName::EnableDnsSupport),
            self.attribute(ctx, &id, VpcAttributeName::EnableDnsHostnames)
        )?;
        Ok(Some(LiveVpc { id, cidr: vpc.cidr_block().unwrap_or_default().to_string(), dns_support, dns_hostnames }))
    }

    fn diff(&self, _ctx: &Ctx, _inputs: &LiveStates, live: &LiveVpc) -> Result<Vec<VpcChange>> {
        Ok(diff(self, live))
    }

    async fn create(&self, ctx: &Ctx, _inputs: &LiveStates) -> Result<LiveVpc> {
        let out = ctx
            .aws
            .ec2
            .create_vpc()
            .cidr_block(&self.cidr)
            .tag_specifications(tag_spec(ctx, ID.name(), ResourceType::Vpc))
            .send()
            .await
            .aws_with("EC2", "CreateVpc", CODES)?;
        let vpc = out.vpc();
        let id = vpc.and_then(|v| v.vpc_id()).unwrap_or_default().to_string();
        // Usually `available` at once; `pending` otherwise, for a moment.
        if vpc.and_then(|v| v.state()).is_none_or(|s| s.as_str() != "available") {
            wait_until(ctx, ID, "VPC available", ctx.timeouts.resource_ready, backoff::SETTLING, || async {
                let out =
                    ctx.aws.ec2.describe_vpcs().vpc_ids(&id).send().await.aws_with("EC2", "DescribeVpcs", CODES)?;
                Ok(out.vpcs().first().filter(|v| v.state().is_some_and(|s| s.as_str() == "available")).map(|_| ()))
            })
            .await?;
        }
        self.set_attributes(ctx, &id, &[&VpcAttributeName::EnableDnsSupport, &VpcAttributeName::EnableDnsHostnames])
            .await?;
        Ok(LiveVpc { id, cidr: self.cidr.clone(), dns_support: true, dns_hostnames: true })
    }

    async fn update(&self, ctx: &Ctx, _inputs: &LiveStates, live: &LiveVpc, changes: &[VpcChange]) -> Result<LiveVpc> {
        let names: Vec<&VpcAttributeName> = changes
            .iter()
            .filter_map(|c| match c {
                VpcChange::Attribute(name) => Some(name),
                // The executor refuses replacements before calling update.
                VpcChange::Cidr { .. } => None,
            })
            .collect();
        self.set_attributes(ctx, &live.id, &names).await?;
        Ok(LiveVpc { dns_support: true, dns_hostnames: true, ..live.clone() })
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveVpc) -> Result<()> {
        let res = retry(
            ctx,
            ID,
            "the VPC's dependencies to go",
            &[ErrorKind::Conflict],
            ctx.timeouts.eni_release,
            backoff::DEPENDENCIES_GOING,
            || async { ctx.aws.ec2.delete_vpc().vpc_id(&live.id).send().await.aws_with("EC2", "DeleteVpc", CODES) },
        )
        .await;
        crate::error::gone_is_ok(res)
    }

    fn outputs(&self, _ctx: &Ctx, live: &LiveVpc) -> Vec<(&'static str, String)> {
        vec![("VpcId", live.id.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> LiveVpc {
        LiveVpc { id: "vpc-1".into(), cidr: "10.1.0.0/16".into(), dns_support: true, dns_hostnames: true }
    }

    #[test]
    fn in_sync_vpc_has_no_changes() {
        assert!(diff(&Vpc { cidr: "10.1.0.0/16".into() }, &live()).is_empty());
    }

    #[test]
    fn cidr_change_is_a_replacement_and_dns_is_an_update() {
        let mut l = live();
        l.cidr = "10.2.0.0/16".into();
        l.dns_hostnames = false;
        let changes: Vec<FieldChange> =
            diff(&Vpc { cidr: "10.1.0.0/16".into() }, &l).iter().map(KindChange::show).collect();
        assert_eq!(changes.len(), 2);
        assert!(changes[0].replace && changes[0].field == "cidr");
        assert!(!changes[1].replace && changes[1].field == "enable_dns_hostnames");
    }
}
