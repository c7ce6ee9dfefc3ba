//! The private isolated subnets: one per AZ, `subnet-{index}` in the zone `zones.rs` chose for it.
//! No public IPs on launch; their route tables (route_table.rs) have no route to the internet.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};

use super::ec2::{at_most_one, ours, tag_spec};
use super::zones::{Zone, Zones};
use super::{Change, Ctx, Inputs, Observed, Outputs, Resource, outputs};
use crate::aws::AwsResultExt;
use crate::error::{Error, ErrorKind, Result};
use crate::wait::{Backoff, retry};

#[derive(Debug, Clone)]
pub struct Subnet {
    pub index: usize,
    pub cidr: String,
    /// The stack's zone choice, shared by its subnets.
    pub zones: Arc<Zones>,
}

/// What the subnet must be once the AZ and the VPC are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredSubnet {
    pub cidr: String,
    pub az: Zone,
    pub vpc_id: String,
}

/// The live subnet, as far as we compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSubnet {
    pub id: String,
    pub cidr: String,
    pub az: Zone,
    pub vpc_id: String,
    pub map_public_ip_on_launch: bool,
}

/// CIDR, AZ and VPC of a subnet are immutable in EC2: a difference means a new subnet.
pub fn diff(desired: &DesiredSubnet, live: &LiveSubnet) -> Vec<Change> {
    let mut changes = Vec::new();
    if desired.cidr != live.cidr {
        changes.push(Change::replace("cidr", &desired.cidr, &live.cidr));
    }
    // By zone ID: the same name may be another physical zone in another account.
    if desired.az.id != live.az.id {
        changes.push(Change::replace("availability_zone", &desired.az, &live.az));
    }
    if desired.vpc_id != live.vpc_id {
        changes.push(Change::replace("vpc", &desired.vpc_id, &live.vpc_id));
    }
    if live.map_public_ip_on_launch {
        changes.push(Change::update("map_public_ip_on_launch", false, true));
    }
    changes
}

/// `"{prefix}-{index}"` as a `&'static str`: the ids of the indexed resources (subnets, route
/// tables) are derived from their index, and `Resource::id` returns `&str`. Each distinct id is
/// allocated once for the whole process.
pub fn indexed_id(prefix: &'static str, index: usize) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static IDS: OnceLock<Mutex<HashMap<(&'static str, usize), &'static str>>> = OnceLock::new();
    let mut ids = IDS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    ids.entry((prefix, index)).or_insert_with(|| Box::leak(format!("{prefix}-{index}").into_boxed_str()))
}

impl Subnet {
    fn resource_id(&self) -> &'static str {
        indexed_id("subnet", self.index)
    }

    async fn desired(&self, ctx: &Ctx, inputs: &Inputs) -> Result<DesiredSubnet> {
        Ok(DesiredSubnet {
            cidr: self.cidr.clone(),
            az: self.zones.of(ctx, self.index).await?,
            vpc_id: inputs.desired("vpc", "id")?.to_string(),
        })
    }

    async fn find(&self, ctx: &Ctx) -> Result<Option<LiveSubnet>> {
        let id = self.resource_id();
        let out = ctx
            .aws
            .ec2
            .describe_subnets()
            .set_filters(Some(ours(ctx, id)))
            .send()
            .await
            .aws("EC2", "DescribeSubnets")?;
        let Some(s) = at_most_one(out.subnets().to_vec(), "subnet", id)? else {
            return Ok(None);
        };
        Ok(Some(LiveSubnet {
            id: s.subnet_id().unwrap_or_default().to_string(),
            cidr: s.cidr_block().unwrap_or_default().to_string(),
            az: Zone {
                name: s.availability_zone().unwrap_or_default().to_string(),
                id: s.availability_zone_id().unwrap_or_default().to_string(),
            },
            vpc_id: s.vpc_id().unwrap_or_default().to_string(),
            map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
        }))
    }

    async fn disable_public_ips(&self, ctx: &Ctx, subnet_id: &str) -> Result<()> {
        ctx.aws
            .ec2
            .modify_subnet_attribute()
            .subnet_id(subnet_id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(false).build())
            .send()
            .await
            .aws("EC2", "ModifySubnetAttribute")?;
        Ok(())
    }
}

fn subnet_outputs(id: String, az: &Zone, cidr: String) -> Outputs {
    outputs([("id", id), ("az", az.name.clone()), ("az_id", az.id.clone()), ("cidr", cidr)])
}

#[async_trait]
impl Resource for Subnet {
    fn id(&self) -> &str {
        indexed_id("subnet", self.index)
    }

    fn kind(&self) -> &'static str {
        "subnet"
    }

    fn deps(&self) -> Vec<String> {
        vec!["vpc".to_string()]
    }

    async fn observe(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Observed> {
        let Some(live) = self.find(ctx).await? else {
            return Ok(Observed::Missing);
        };
        let desired = self.desired(ctx, inputs).await?;
        Ok(Observed::Present {
            changes: diff(&desired, &live),
            outputs: subnet_outputs(live.id.clone(), &live.az, live.cidr.clone()),
        })
    }

    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Outputs> {
        let desired = self.desired(ctx, inputs).await?;
        let id = self.resource_id();
        let out = ctx
            .aws
            .ec2
            .create_subnet()
            .vpc_id(&desired.vpc_id)
            .cidr_block(&desired.cidr)
            .availability_zone(&desired.az.name)
            .tag_specifications(tag_spec(ctx, id, ResourceType::Subnet))
            .send()
            .await
            .aws("EC2", "CreateSubnet")?;
        let subnet = out.subnet().ok_or_else(|| Error::other("EC2 CreateSubnet returned no subnet"))?;
        let subnet_id = subnet.subnet_id().unwrap_or_default().to_string();
        // Off by default outside default VPCs; set it if the account says otherwise, so the next
        // observe finds nothing to change.
        if subnet.map_public_ip_on_launch().unwrap_or(false) {
            self.disable_public_ips(ctx, &subnet_id).await?;
        }
        Ok(subnet_outputs(subnet_id, &desired.az, desired.cidr))
    }

    async fn update(&self, ctx: &Ctx, _inputs: &Inputs, live: &Outputs, changes: &[Change]) -> Result<Outputs> {
        let subnet_id = &live["id"];
        for change in changes {
            match change.field.as_str() {
                "map_public_ip_on_launch" => self.disable_public_ips(ctx, subnet_id).await?,
                other => {
                    return Err(Error::other(format!("cannot update subnet field `{other}` in place")));
                }
            }
        }
        Ok(live.clone())
    }

    async fn delete(&self, ctx: &Ctx, live: &Outputs) -> Result<()> {
        let subnet_id = &live["id"];
        let id = self.resource_id();
        // Lambda's Hyperplane ENIs stay in the subnet long after the function is gone (P99 ~35
        // min, reports of 40-60 min: hashicorp/terraform-provider-aws#10329, #32130); until then
        // DeleteSubnet answers DependencyViolation.
        let what = format!("Lambda network interfaces in subnet {subnet_id} to be released (can take ~45 min)");
        let res = retry(
            ctx,
            id,
            &what,
            &[ErrorKind::Conflict],
            ctx.timeouts.eni_release,
            Backoff::new(5000, 30000),
            || async {
                super::ec2::release_lambda_enis(ctx, self.id(), "subnet-id", subnet_id).await?;
                ctx.aws.ec2.delete_subnet().subnet_id(subnet_id).send().await.aws("EC2", "DeleteSubnet")
            },
        )
        .await;
        crate::error::gone_is_ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str, id: &str) -> Zone {
        Zone { name: name.into(), id: id.into() }
    }

    fn desired() -> DesiredSubnet {
        DesiredSubnet { cidr: "10.1.0.0/24".into(), az: zone("us-east-1a", "use1-az6"), vpc_id: "vpc-1".into() }
    }

    fn live() -> LiveSubnet {
        LiveSubnet {
            id: "subnet-1".into(),
            cidr: "10.1.0.0/24".into(),
            az: zone("us-east-1a", "use1-az6"),
            vpc_id: "vpc-1".into(),
            map_public_ip_on_launch: false,
        }
    }

    #[test]
    fn in_sync_subnet_has_no_changes() {
        assert!(diff(&desired(), &live()).is_empty());
    }

    #[test]
    fn immutable_fields_are_replacements_and_public_ips_an_update() {
        let cases: Vec<(fn(&mut LiveSubnet), &str, bool)> = vec![
            (|l| l.cidr = "10.1.9.0/24".into(), "cidr", true),
            (|l| l.az = zone("us-east-1a", "use1-az1"), "availability_zone", true),
            (|l| l.vpc_id = "vpc-2".into(), "vpc", true),
            (|l| l.map_public_ip_on_launch = true, "map_public_ip_on_launch", false),
        ];
        for (mutate, field, replace) in cases {
            let mut l = live();
            mutate(&mut l);
            let changes = diff(&desired(), &l);
            assert_eq!(changes.len(), 1, "{field}");
            assert_eq!(changes[0].field, field);
            assert_eq!(changes[0].replace, replace, "{field}");
        }
    }

    #[test]
    fn indexed_ids_are_stable() {
        assert_eq!(indexed_id("subnet", 1), "subnet-1");
        assert!(std::ptr::eq(indexed_id("subnet", 1), indexed_id("subnet", 1)));
    }
}
