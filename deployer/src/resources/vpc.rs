//! The VPC: one per stack, DNS support and DNS hostnames on (the DynamoDB gateway endpoint and
//! the Lambda ENIs need DNS). No internet gateway, ever.

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};

use super::ec2::{at_most_one, ours, tag_spec};
use super::{Change, Ctx, Inputs, Observed, Outputs, Resource, outputs};
use crate::aws::AwsResultExt;
use crate::error::{ErrorKind, Result};
use crate::wait::{Backoff, retry, wait_until};

pub const ID: &str = "vpc";

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

pub fn diff(desired: &Vpc, live: &LiveVpc) -> Vec<Change> {
    let mut changes = Vec::new();
    if desired.cidr != live.cidr {
        changes.push(Change::replace("cidr", &desired.cidr, &live.cidr));
    }
    if !live.dns_support {
        changes.push(Change::update("enable_dns_support", true, false));
    }
    if !live.dns_hostnames {
        changes.push(Change::update("enable_dns_hostnames", true, false));
    }
    changes
}

impl Vpc {
    async fn find(&self, ctx: &Ctx) -> Result<Option<LiveVpc>> {
        let out =
            ctx.aws.ec2.describe_vpcs().set_filters(Some(ours(ctx, ID))).send().await.aws("EC2", "DescribeVpcs")?;
        let Some(vpc) = at_most_one(out.vpcs().to_vec(), "VPC", ID)? else { return Ok(None) };
        let id = vpc.vpc_id().unwrap_or_default().to_string();
        let dns_support = self.attribute(ctx, &id, VpcAttributeName::EnableDnsSupport).await?;
        let dns_hostnames = self.attribute(ctx, &id, VpcAttributeName::EnableDnsHostnames).await?;
        Ok(Some(LiveVpc { id, cidr: vpc.cidr_block().unwrap_or_default().to_string(), dns_support, dns_hostnames }))
    }

    async fn attribute(&self, ctx: &Ctx, id: &str, name: VpcAttributeName) -> Result<bool> {
        let out = ctx
            .aws
            .ec2
            .describe_vpc_attribute()
            .vpc_id(id)
            .attribute(name.clone())
            .send()
            .await
            .aws("EC2", "DescribeVpcAttribute")?;
        let value = match name {
            VpcAttributeName::EnableDnsSupport => out.enable_dns_support(),
            _ => out.enable_dns_hostnames(),
        };
        Ok(value.and_then(|v| v.value()).unwrap_or(false))
    }

    async fn set_attribute(&self, ctx: &Ctx, id: &str, field: &str) -> Result<()> {
        // One attribute per ModifyVpcAttribute call (an EC2 rule).
        let on = AttributeBooleanValue::builder().value(true).build();
        let req = ctx.aws.ec2.modify_vpc_attribute().vpc_id(id);
        let req = if field == "enable_dns_support" { req.enable_dns_support(on) } else { req.enable_dns_hostnames(on) };
        req.send().await.aws("EC2", "ModifyVpcAttribute")?;
        Ok(())
    }
}

#[async_trait]
impl Resource for Vpc {
    fn id(&self) -> &str {
        ID
    }

    fn kind(&self) -> &'static str {
        "VPC"
    }

    fn deps(&self) -> Vec<String> {
        vec![]
    }

    async fn observe(&self, ctx: &Ctx, _inputs: &Inputs) -> Result<Observed> {
        Ok(match self.find(ctx).await? {
            None => Observed::Missing,
            Some(live) => Observed::Present { changes: diff(self, &live), outputs: outputs([("id", live.id)]) },
        })
    }

    async fn create(&self, ctx: &Ctx, _inputs: &Inputs) -> Result<Outputs> {
        let out = ctx
            .aws
            .ec2
            .create_vpc()
            .cidr_block(&self.cidr)
            .tag_specifications(tag_spec(ctx, ID, ResourceType::Vpc))
            .send()
            .await
            .aws("EC2", "CreateVpc")?;
        let id = out.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_string();
        wait_until(ctx, ID, "VPC available", ctx.timeouts.resource_ready, Backoff::new(500, 5000), || async {
            let out = ctx.aws.ec2.describe_vpcs().vpc_ids(&id).send().await.aws("EC2", "DescribeVpcs")?;
            Ok(out.vpcs().first().filter(|v| v.state().is_some_and(|s| s.as_str() == "available")).map(|_| ()))
        })
        .await?;
        self.set_attribute(ctx, &id, "enable_dns_support").await?;
        self.set_attribute(ctx, &id, "enable_dns_hostnames").await?;
        Ok(outputs([("id", id)]))
    }

    async fn update(&self, ctx: &Ctx, _inputs: &Inputs, live: &Outputs, changes: &[Change]) -> Result<Outputs> {
        let id = &live["id"];
        for change in changes {
            match change.field.as_str() {
                "enable_dns_support" | "enable_dns_hostnames" => self.set_attribute(ctx, id, &change.field).await?,
                other => return Err(crate::error::Error::other(format!("cannot update VPC field `{other}` in place"))),
            }
        }
        Ok(live.clone())
    }

    async fn delete(&self, ctx: &Ctx, live: &Outputs) -> Result<()> {
        let id = &live["id"];
        let res = retry(
            ctx,
            ID,
            "the VPC's dependencies to go",
            &[ErrorKind::Conflict],
            ctx.timeouts.eni_release,
            Backoff::new(2000, 30000),
            || async { ctx.aws.ec2.delete_vpc().vpc_id(id).send().await.aws("EC2", "DeleteVpc") },
        )
        .await;
        crate::error::gone_is_ok(res)
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
        let changes = diff(&Vpc { cidr: "10.1.0.0/16".into() }, &l);
        assert_eq!(changes.len(), 2);
        assert!(changes[0].replace && changes[0].field == "cidr");
        assert!(!changes[1].replace && changes[1].field == "enable_dns_hostnames");
    }
}
