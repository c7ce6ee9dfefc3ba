//! One route table per subnet, associated with it. It holds only the VPC's `local` route and the
//! route the DynamoDB gateway endpoint adds: no internet gateway, no NAT. Any other route is
//! drift and is removed.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, Route};

use super::ec2::{at_most_one, filter, ours, tag_spec};
use super::subnet::indexed_id;
use super::{Change, Ctx, Inputs, Observed, Outputs, Resource, UNKNOWN, outputs};
use crate::aws::AwsResultExt;
use crate::error::{Error, ErrorKind, Result};
use crate::wait::{Backoff, retry};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    pub index: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRouteTable {
    pub vpc_id: String,
    pub subnet_id: String,
}

/// Where a route goes: the parameter DeleteRoute needs to name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Cidr(String),
    Ipv6Cidr(String),
    PrefixList(String),
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Cidr(c) | Destination::Ipv6Cidr(c) | Destination::PrefixList(c) => f.write_str(c),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRoute {
    pub destination: Destination,
    /// `local`, `vpce-…`, `igw-…`, `nat-…`, `eni-…`, … (or the route state when it has no target).
    pub target: String,
}

/// Who the subnet is associated with, when it is not our table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherAssociation {
    pub route_table_id: String,
    pub association_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRouteTable {
    pub id: String,
    pub vpc_id: String,
    pub routes: Vec<LiveRoute>,
    /// The association id of our subnet with this table, if associated.
    pub association_id: Option<String>,
    /// The subnet's association with another table (only looked up when ours is missing).
    pub other_association: Option<OtherAssociation>,
}

/// The routes an isolated subnet may have: the VPC's own `local` route(s), and gateway-endpoint
/// routes (prefix list → vpce-…) that CreateVpcEndpoint / ModifyVpcEndpoint add.
pub fn route_allowed(route: &LiveRoute) -> bool {
    route.target == "local"
        || (matches!(route.destination, Destination::PrefixList(_)) && route.target.starts_with("vpce-"))
}

pub fn diff(desired: &DesiredRouteTable, live: &LiveRouteTable) -> Vec<Change> {
    let mut changes = Vec::new();
    if desired.vpc_id != live.vpc_id {
        changes.push(Change::replace("vpc", &desired.vpc_id, &live.vpc_id));
    }
    for route in live.routes.iter().filter(|r| !route_allowed(r)) {
        changes.push(Change::update(format!("route {}", route.destination), "absent", format!("→ {}", route.target)));
    }
    if live.association_id.is_none() {
        let now = match &live.other_association {
            Some(other) => format!("associated with {}", other.route_table_id),
            None => "not associated".to_string(),
        };
        changes.push(Change::update("association", format!("associated with {}", desired.subnet_id), now));
    }
    changes
}

/// The target of a route, whichever kind it is.
fn route_target(r: &Route) -> String {
    [
        r.gateway_id(),
        r.nat_gateway_id(),
        r.transit_gateway_id(),
        r.network_interface_id(),
        r.vpc_peering_connection_id(),
        r.instance_id(),
        r.egress_only_internet_gateway_id(),
        r.carrier_gateway_id(),
        r.local_gateway_id(),
        r.core_network_arn(),
    ]
    .into_iter()
    .flatten()
    .next()
    .map(str::to_string)
    .unwrap_or_else(|| format!("(no target, {})", r.state().map(|s| s.as_str()).unwrap_or("?")))
}

fn live_route(r: &Route) -> Option<LiveRoute> {
    let destination = if let Some(c) = r.destination_cidr_block() {
        Destination::Cidr(c.to_string())
    } else if let Some(c) = r.destination_ipv6_cidr_block() {
        Destination::Ipv6Cidr(c.to_string())
    } else {
        Destination::PrefixList(r.destination_prefix_list_id()?.to_string())
    };
    Some(LiveRoute { destination, target: route_target(r) })
}

/// AWS is eventually consistent right after CreateRouteTable: the first association may answer
/// InvalidRouteTableID.NotFound for a moment.
const JUST_CREATED: Duration = Duration::from_secs(60);

impl RouteTable {
    fn resource_id(&self) -> &'static str {
        indexed_id("route-table", self.index)
    }

    fn subnet_resource(&self) -> &'static str {
        indexed_id("subnet", self.index)
    }

    fn desired(&self, inputs: &Inputs) -> Result<DesiredRouteTable> {
        Ok(DesiredRouteTable {
            vpc_id: inputs.desired("vpc", "id")?.to_string(),
            subnet_id: inputs.desired(self.subnet_resource(), "id")?.to_string(),
        })
    }

    /// Our route table and its association with `subnet_id`. While observing a stack whose
    /// subnet does not exist ([`UNKNOWN`]), there is no association to look for.
    async fn find(&self, ctx: &Ctx, subnet_id: &str) -> Result<Option<LiveRouteTable>> {
        let id = self.resource_id();
        let out = ctx
            .aws
            .ec2
            .describe_route_tables()
            .set_filters(Some(ours(ctx, id)))
            .send()
            .await
            .aws("EC2", "DescribeRouteTables")?;
        let Some(rt) = at_most_one(out.route_tables().to_vec(), "route table", id)? else {
            return Ok(None);
        };
        let association_id = rt
            .associations()
            .iter()
            .find(|a| a.subnet_id() == Some(subnet_id))
            .and_then(|a| a.route_table_association_id())
            .map(str::to_string);
        let rt_id = rt.route_table_id().unwrap_or_default().to_string();
        let other_association = match association_id {
            Some(_) => None,
            None if subnet_id == UNKNOWN => None,
            None => self.subnet_association(ctx, subnet_id).await?.filter(|o| o.route_table_id != rt_id),
        };
        Ok(Some(LiveRouteTable {
            id: rt_id,
            vpc_id: rt.vpc_id().unwrap_or_default().to_string(),
            routes: rt.routes().iter().filter_map(live_route).collect(),
            association_id,
            other_association,
        }))
    }

    /// The subnet's explicit association, whatever table it is with.
    async fn subnet_association(&self, ctx: &Ctx, subnet_id: &str) -> Result<Option<OtherAssociation>> {
        let out = ctx
            .aws
            .ec2
            .describe_route_tables()
            .filters(filter("association.subnet-id", subnet_id))
            .send()
            .await
            .aws("EC2", "DescribeRouteTables")?;
        Ok(out.route_tables().iter().find_map(|rt| {
            let a = rt.associations().iter().find(|a| a.subnet_id() == Some(subnet_id))?;
            Some(OtherAssociation {
                route_table_id: rt.route_table_id().unwrap_or_default().to_string(),
                association_id: a.route_table_association_id().unwrap_or_default().to_string(),
            })
        }))
    }

    /// Associate the subnet with our table: a subnet has at most one explicit association, so
    /// if it is with another table, move it (ReplaceRouteTableAssociation).
    async fn associate(
        &self,
        ctx: &Ctx,
        rt_id: &str,
        subnet_id: &str,
        other: Option<&OtherAssociation>,
    ) -> Result<String> {
        let deadline = JUST_CREATED.min(ctx.timeouts.resource_ready);
        let what = format!("route table {rt_id} to be visible");
        match other {
            Some(other) => {
                ctx.progress(
                    self.resource_id(),
                    format!(
                        "subnet {subnet_id} is associated with route table {}: moving it to {rt_id}",
                        other.route_table_id
                    ),
                );
                let out = retry(
                    ctx,
                    self.resource_id(),
                    &what,
                    &[ErrorKind::NotFound],
                    deadline,
                    Backoff::new(1000, 5000),
                    || async {
                        ctx.aws
                            .ec2
                            .replace_route_table_association()
                            .association_id(&other.association_id)
                            .route_table_id(rt_id)
                            .send()
                            .await
                            .aws("EC2", "ReplaceRouteTableAssociation")
                    },
                )
                .await?;
                Ok(out.new_association_id().unwrap_or_default().to_string())
            }
            None => {
                let out = retry(
                    ctx,
                    self.resource_id(),
                    &what,
                    &[ErrorKind::NotFound],
                    deadline,
                    Backoff::new(1000, 5000),
                    || async {
                        ctx.aws
                            .ec2
                            .associate_route_table()
                            .route_table_id(rt_id)
                            .subnet_id(subnet_id)
                            .send()
                            .await
                            .aws("EC2", "AssociateRouteTable")
                    },
                )
                .await?;
                Ok(out.association_id().unwrap_or_default().to_string())
            }
        }
    }

    async fn delete_route(&self, ctx: &Ctx, rt_id: &str, route: &LiveRoute) -> Result<()> {
        let req = ctx.aws.ec2.delete_route().route_table_id(rt_id);
        let req = match &route.destination {
            Destination::Cidr(c) => req.destination_cidr_block(c),
            Destination::Ipv6Cidr(c) => req.destination_ipv6_cidr_block(c),
            Destination::PrefixList(p) => req.destination_prefix_list_id(p),
        };
        match req.send().await.aws("EC2", "DeleteRoute") {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Resource for RouteTable {
    fn id(&self) -> &str {
        self.resource_id()
    }

    fn kind(&self) -> &'static str {
        "route table"
    }

    fn deps(&self) -> Vec<String> {
        vec!["vpc".to_string(), self.subnet_resource().to_string()]
    }

    async fn observe(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Observed> {
        let desired = self.desired(inputs)?;
        Ok(match self.find(ctx, &desired.subnet_id).await? {
            None => Observed::Missing,
            Some(live) => Observed::Present {
                changes: diff(&desired, &live),
                outputs: outputs([("id", live.id), ("association_id", live.association_id.unwrap_or_default())]),
            },
        })
    }

    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Outputs> {
        let desired = self.desired(inputs)?;
        let out = ctx
            .aws
            .ec2
            .create_route_table()
            .vpc_id(&desired.vpc_id)
            .tag_specifications(tag_spec(ctx, self.resource_id(), ResourceType::RouteTable))
            .send()
            .await
            .aws("EC2", "CreateRouteTable")?;
        let rt_id = out.route_table().and_then(|r| r.route_table_id()).unwrap_or_default().to_string();
        // A fresh subnet has no explicit association, but one made by hand (or by an earlier
        // table of ours that was replaced) must be moved, not duplicated.
        let other = self.subnet_association(ctx, &desired.subnet_id).await?;
        let association_id = self.associate(ctx, &rt_id, &desired.subnet_id, other.as_ref()).await?;
        Ok(outputs([("id", rt_id), ("association_id", association_id)]))
    }

    async fn update(&self, ctx: &Ctx, inputs: &Inputs, live: &Outputs, changes: &[Change]) -> Result<Outputs> {
        if let Some(c) = changes.iter().find(|c| c.replace) {
            return Err(Error::other(format!("cannot update route table field `{}` in place", c.field)));
        }
        // Act on a fresh read rather than on the change texts: the routes and associations to
        // fix are whatever is there now.
        let desired = self.desired(inputs)?;
        let Some(current) = self.find(ctx, &desired.subnet_id).await? else {
            return Err(Error::other(format!("route table {} disappeared during the update", live["id"])));
        };
        for route in current.routes.iter().filter(|r| !route_allowed(r)) {
            ctx.progress(self.resource_id(), format!("removing route {} → {}", route.destination, route.target));
            self.delete_route(ctx, &current.id, route).await?;
        }
        let association_id = match current.association_id {
            Some(a) => a,
            None => self.associate(ctx, &current.id, &desired.subnet_id, current.other_association.as_ref()).await?,
        };
        Ok(outputs([("id", current.id), ("association_id", association_id)]))
    }

    async fn delete(&self, ctx: &Ctx, live: &Outputs) -> Result<()> {
        let rt_id = &live["id"];
        // Disassociate whatever is associated now (the association id in `live` may be stale).
        let out = match ctx
            .aws
            .ec2
            .describe_route_tables()
            .route_table_ids(rt_id)
            .send()
            .await
            .aws("EC2", "DescribeRouteTables")
        {
            Ok(out) => out,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let associations: Vec<String> = out
            .route_tables()
            .iter()
            .flat_map(|rt| rt.associations())
            .filter(|a| !a.main().unwrap_or(false))
            .filter_map(|a| a.route_table_association_id().map(str::to_string))
            .collect();
        for association_id in associations {
            match ctx
                .aws
                .ec2
                .disassociate_route_table()
                .association_id(&association_id)
                .send()
                .await
                .aws("EC2", "DisassociateRouteTable")
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        // A disassociation can take a moment to be seen by DeleteRouteTable (DependencyViolation).
        let res = retry(
            ctx,
            self.resource_id(),
            "the route table's associations to go",
            &[ErrorKind::Conflict],
            ctx.timeouts.resource_ready,
            Backoff::new(1000, 10000),
            || async {
                ctx.aws.ec2.delete_route_table().route_table_id(rt_id).send().await.aws("EC2", "DeleteRouteTable")
            },
        )
        .await;
        crate::error::gone_is_ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> DesiredRouteTable {
        DesiredRouteTable { vpc_id: "vpc-1".into(), subnet_id: "subnet-1".into() }
    }

    fn route(destination: Destination, target: &str) -> LiveRoute {
        LiveRoute { destination, target: target.into() }
    }

    fn live() -> LiveRouteTable {
        LiveRouteTable {
            id: "rtb-1".into(),
            vpc_id: "vpc-1".into(),
            routes: vec![
                route(Destination::Cidr("10.1.0.0/16".into()), "local"),
                route(Destination::PrefixList("pl-1".into()), "vpce-1"),
            ],
            association_id: Some("rtbassoc-1".into()),
            other_association: None,
        }
    }

    #[test]
    fn local_and_endpoint_routes_are_in_sync() {
        assert!(diff(&desired(), &live()).is_empty());
        let mut l = live();
        l.routes.truncate(1);
        assert!(diff(&desired(), &l).is_empty(), "no endpoint route yet is fine");
    }

    #[test]
    fn any_other_route_is_drift() {
        let extra = [
            route(Destination::Cidr("0.0.0.0/0".into()), "igw-1"),
            route(Destination::Cidr("0.0.0.0/0".into()), "nat-1"),
            route(Destination::Ipv6Cidr("::/0".into()), "eigw-1"),
            route(Destination::PrefixList("pl-2".into()), "igw-1"),
            route(Destination::Cidr("10.9.0.0/16".into()), "vpce-1"),
            route(Destination::Cidr("10.9.0.0/16".into()), "(no target, blackhole)"),
        ];
        for r in extra {
            let mut l = live();
            l.routes.push(r.clone());
            let changes = diff(&desired(), &l);
            assert_eq!(changes.len(), 1, "{r:?}");
            assert_eq!(changes[0].field, format!("route {}", r.destination));
            assert!(!changes[0].replace);
        }
    }

    #[test]
    fn missing_association_is_an_update_and_names_the_other_table() {
        let mut l = live();
        l.association_id = None;
        let changes = diff(&desired(), &l);
        assert_eq!(changes, vec![Change::update("association", "associated with subnet-1", "not associated")]);
        l.other_association = Some(OtherAssociation { route_table_id: "rtb-9".into(), association_id: "a-9".into() });
        assert_eq!(diff(&desired(), &l)[0].live, "associated with rtb-9");
    }

    #[test]
    fn another_vpc_is_a_replacement() {
        let mut l = live();
        l.vpc_id = "vpc-2".into();
        let changes = diff(&desired(), &l);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].replace);
    }
}
