//! The private isolated subnets: one per AZ, `subnet-{index}` in the zone `zones.rs` chose for it.
//! No public IPs on launch; their route tables (route_table.rs) have no route to the internet.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};

use super::ec2::{pick, stack_subnets, tag_spec};
use super::vpc;
use super::zones::{Zone, Zones};
use super::{Ctx, Dep, FieldChange, Grant, Id, Kind, KindChange, LiveStates, Resource, Scope};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::error::{Codes, Error, ErrorKind, Result};
use crate::wait::{backoff, retry};
use serde_json::json;

/// `subnet-{index}`.
pub const fn id(index: u8) -> Id<LiveSubnet> {
    Id::indexed("subnet", index)
}

/// Codes only the subnets' calls meet: subnets per VPC.
const CODES: &Codes = &[("SubnetLimitExceeded", ErrorKind::Quota)];

#[derive(Debug, Clone)]
pub struct Subnet {
    pub index: u8,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubnetChange {
    /// CIDR, zone and VPC of a subnet are immutable in EC2: a difference means a new subnet.
    Immutable(FieldChange),
    /// No public IPs on launch.
    PublicIps,
}

impl KindChange for SubnetChange {
    fn show(&self) -> FieldChange {
        match self {
            SubnetChange::Immutable(c) => c.clone(),
            SubnetChange::PublicIps => FieldChange::update("map_public_ip_on_launch", false, true),
        }
    }
}

pub fn diff(desired: &DesiredSubnet, live: &LiveSubnet) -> Vec<SubnetChange> {
    let mut changes = Vec::new();
    if desired.cidr != live.cidr {
        changes.push(SubnetChange::Immutable(FieldChange::replace("cidr", &desired.cidr, &live.cidr)));
    }
    // By zone ID: the same name may be another physical zone in another account.
    if desired.az.id != live.az.id {
        changes.push(SubnetChange::Immutable(FieldChange::replace("availability_zone", &desired.az, &live.az)));
    }
    if desired.vpc_id != live.vpc_id {
        changes.push(SubnetChange::Immutable(FieldChange::replace("vpc", &desired.vpc_id, &live.vpc_id)));
    }
    if live.map_public_ip_on_launch {
        changes.push(SubnetChange::PublicIps);
    }
    changes
}

/// The zones CreateSubnet allows, when it refused the one asked for: older accounts cannot create
/// subnets in some zones, and EC2 answers 400 InvalidParameterValue "Value (us-east-1b) for
/// parameter availabilityZone is invalid. Subnets can currently only be created in the following
/// availability zones: us-east-1d, us-east-1e, us-east-1a, us-east-1c." (widdix/aws-cf-templates#36,
/// hashicorp/terraform#3434). `Some(names)` for that refusal (empty when none can be read).
pub fn zone_refused(e: &Error) -> Option<Vec<String>> {
    const ONLY_IN: &str = "Subnets can currently only be created in the following availability zones:";
    let aws = e.aws()?;
    if aws.code.as_deref() != Some("InvalidParameterValue") {
        return None;
    }
    let (_, list) = aws.message.split_once(ONLY_IN)?;
    Some(
        list.trim()
            .trim_end_matches('.')
            .split(',')
            .map(str::trim)
            .filter(|z| !z.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn live_subnet(s: &aws_sdk_ec2::types::Subnet) -> LiveSubnet {
    LiveSubnet {
        id: s.subnet_id().unwrap_or_default().to_string(),
        cidr: s.cidr_block().unwrap_or_default().to_string(),
        az: Zone {
            name: s.availability_zone().unwrap_or_default().to_string(),
            id: s.availability_zone_id().unwrap_or_default().to_string(),
        },
        vpc_id: s.vpc_id().unwrap_or_default().to_string(),
        map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
    }
}

impl Subnet {
    fn desired(&self, inputs: &LiveStates, az: Zone) -> Result<DesiredSubnet> {
        Ok(DesiredSubnet { cidr: self.cidr.clone(), az, vpc_id: inputs.get(vpc::ID)?.id.clone() })
    }

    async fn disable_public_ips(&self, ctx: &Ctx, subnet_id: &str) -> Result<()> {
        ctx.aws
            .ec2
            .modify_subnet_attribute()
            .subnet_id(subnet_id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(false).build())
            .send()
            .await
            .aws_with("EC2", "ModifySubnetAttribute", CODES)?;
        Ok(())
    }
}

#[async_trait]
impl Resource for Subnet {
    type Live = LiveSubnet;
    type Change = SubnetChange;

    fn id(&self) -> Id<LiveSubnet> {
        id(self.index)
    }

    fn kind(&self) -> Kind {
        Kind::Subnet
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        let reads = ["ec2:DescribeAvailabilityZones", "ec2:DescribeSubnets"];
        let changes = ["ec2:CreateSubnet", "ec2:ModifySubnetAttribute", "ec2:DeleteSubnet"];
        let mut grants = super::ec2::grants(s, "subnet", &reads, "ec2:CreateSubnet", &changes, &["vpc"]);
        grants.extend(super::ec2::released_enis_grants(s));
        grants
    }

    fn deps(&self) -> Vec<Dep> {
        vec![Dep::on(vpc::ID)]
    }

    fn create_rounds(&self) -> u32 {
        1
    }

    fn delete_rounds(&self) -> u32 {
        3 // the released Lambda ENIs: DescribeNetworkInterfaces, DeleteNetworkInterface; DeleteSubnet
    }

    fn export(&self, ctx: &Ctx, live: &LiveSubnet) -> Vec<CfnResource> {
        let me = id(self.index);
        let properties = json!({
            "VpcId": cfn::reference(vpc::ID),
            "CidrBlock": live.cidr,
            "AvailabilityZone": live.az.name,
            "MapPublicIpOnLaunch": live.map_public_ip_on_launch,
            "Tags": cfn::tags(&ctx.tags(me.name())),
        });
        vec![
            CfnResource::new(me, "AWS::EC2::Subnet", properties, cfn::identifier(&[("SubnetId", &live.id)]))
                .lint_exception("W3010", "an imported subnet stays in its zone: the template says which one it is"),
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveSubnet>> {
        // The zone choice reads the region's zones and the stack's subnets: made now, in the
        // sweep, so that `diff` has it.
        let (subnets, _zone) = tokio::try_join!(stack_subnets(ctx), self.zones.of(ctx, self.index))?;
        let found = pick(ctx, &subnets, |s| s.tags(), "subnet", id(self.index).name())?;
        Ok(found.as_ref().map(live_subnet))
    }

    fn diff(&self, ctx: &Ctx, inputs: &LiveStates, live: &LiveSubnet) -> Result<Vec<SubnetChange>> {
        Ok(diff(&self.desired(inputs, self.zones.chosen(ctx, self.index)?)?, live))
    }

    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LiveSubnet> {
        let mut desired = self.desired(inputs, self.zones.of(ctx, self.index).await?)?;
        // A zone CreateSubnet refuses makes nothing: the subnet moves to another zone (each
        // refusal rules one out, so this ends).
        let out = loop {
            let res = ctx
                .aws
                .ec2
                .create_subnet()
                .vpc_id(&desired.vpc_id)
                .cidr_block(&desired.cidr)
                .availability_zone(&desired.az.name)
                .tag_specifications(tag_spec(ctx, id(self.index).name(), ResourceType::Subnet))
                .send()
                .await
                .aws_with("EC2", "CreateSubnet", CODES);
            match res {
                Ok(out) => break out,
                Err(e) => {
                    let Some(allowed) = zone_refused(&e) else { return Err(e) };
                    let next = self
                        .zones
                        .refused(ctx, self.index, &desired.az, &allowed)
                        .await
                        .map_err(|why| Error::input(format!("{why}. AWS said: {e}")))?;
                    ctx.warn(format!(
                        "{}: EC2 does not create subnets in {} for this account; using {} instead",
                        id(self.index),
                        desired.az,
                        next
                    ));
                    desired.az = next;
                }
            }
        };
        let subnet = out.subnet().ok_or_else(|| Error::other("EC2 CreateSubnet returned no subnet"))?;
        let mut live = live_subnet(subnet);
        live.az = desired.az;
        // Off by default outside default VPCs; set it if the account says otherwise, so the next
        // observe finds nothing to change.
        if live.map_public_ip_on_launch {
            self.disable_public_ips(ctx, &live.id).await?;
            live.map_public_ip_on_launch = false;
        }
        Ok(live)
    }

    async fn update(
        &self,
        ctx: &Ctx,
        _inputs: &LiveStates,
        live: &LiveSubnet,
        changes: &[SubnetChange],
    ) -> Result<LiveSubnet> {
        if changes.contains(&SubnetChange::PublicIps) {
            self.disable_public_ips(ctx, &live.id).await?;
        }
        Ok(LiveSubnet { map_public_ip_on_launch: false, ..live.clone() })
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveSubnet) -> Result<()> {
        let name = id(self.index).name();
        // Lambda's Hyperplane ENIs stay in the subnet long after the function is gone (P99 ~35
        // min, reports of 40-60 min: hashicorp/terraform-provider-aws#10329, #32130); until then
        // DeleteSubnet answers DependencyViolation.
        let what = format!("Lambda network interfaces in subnet {} to be released (can take ~45 min)", live.id);
        let res =
            retry(ctx, name, &what, &[ErrorKind::Conflict], ctx.timeouts.eni_release, backoff::ENI_RELEASE, || async {
                super::ec2::release_lambda_enis(ctx, name, "subnet-id", &live.id).await?;
                ctx.aws.ec2.delete_subnet().subnet_id(&live.id).send().await.aws_with("EC2", "DeleteSubnet", CODES)
            })
            .await;
        crate::error::gone_is_ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::test_support::*;

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
        let cases: Vec<(Edit<LiveSubnet>, &str, bool)> = vec![
            (|l| l.cidr = "10.1.9.0/24".into(), "cidr", true),
            (|l| l.az = zone("us-east-1a", "use1-az1"), "availability_zone", true),
            (|l| l.vpc_id = "vpc-2".into(), "vpc", true),
            (|l| l.map_public_ip_on_launch = true, "map_public_ip_on_launch", false),
        ];
        for (mutate, field, replace) in cases {
            let mut l = live();
            mutate(&mut l);
            let changes: Vec<FieldChange> = diff(&desired(), &l).iter().map(KindChange::show).collect();
            assert_eq!(changes.len(), 1, "{field}");
            assert_eq!(changes[0].field, field);
            assert_eq!(changes[0].replace, replace, "{field}");
        }
    }

    #[test]
    fn a_zone_refusal_is_read_with_the_zones_it_allows() {
        let err = |code: &str, message: &str| {
            Error::Aws(crate::error::AwsError {
                service: "EC2",
                operation: "CreateSubnet",
                code: Some(code.into()),
                message: message.into(),
                kind: crate::error::classify(Some(code), message, Some(400)),
                status: Some(400),
            })
        };
        let refused = err(
            "InvalidParameterValue",
            "Value (ap-northeast-1a) for parameter availabilityZone is invalid. Subnets can currently only be created \
             in the following availability zones: ap-northeast-1c, ap-northeast-1d.",
        );
        assert_eq!(zone_refused(&refused), Some(vec!["ap-northeast-1c".to_string(), "ap-northeast-1d".to_string()]));
        assert_eq!(zone_refused(&err("InvalidParameterValue", "Value (x) for parameter cidrBlock is invalid.")), None);
        assert_eq!(
            zone_refused(&err(
                "InvalidSubnet.Conflict",
                "Subnets can currently only be created in the following availability zones: a."
            )),
            None
        );
    }

    #[test]
    fn ids_are_indexed() {
        assert_eq!(id(1).to_string(), "subnet-1");
        assert_eq!(id(1), id(1));
    }
}
