//! One route table per subnet, associated with it. It holds only the VPC's `local` route and the
//! route the DynamoDB gateway endpoint adds: no internet gateway, no NAT. Any other route is
//! drift and is removed.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, Route};

use super::ec2::{filter, pick, stack_filter, stack_subnets, tag_spec};
use super::{Ctx, Dep, FieldChange, Grant, Id, Kind, KindChange, LiveStates, Resource, Scope, subnet, vpc};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::error::{Error, ErrorKind, Result};
use crate::wait::{backoff, retry};
use serde_json::json;

/// `route-table-{index}`: the table of `subnet-{index}`.
pub const fn id(index: u8) -> Id<LiveRouteTable> {
    Id::indexed("route-table", index)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    pub index: u8,
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
    /// The table's explicit associations: (subnet id, association id).
    pub associations: Vec<(String, String)>,
    /// Our subnet's association with another table (looked up only when ours is missing).
    pub other_association: Option<OtherAssociation>,
}

impl LiveRouteTable {
    fn association_with(&self, subnet_id: &str) -> Option<&str> {
        self.associations.iter().find(|(s, _)| s == subnet_id).map(|(_, a)| a.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTableChange {
    /// Immutable: a new table.
    Vpc { desired: String, live: String },
    /// A route an isolated subnet must not have.
    ExtraRoute(LiveRoute),
    /// The subnet is not associated with the table.
    Association { subnet_id: String, now: String },
}

impl KindChange for RouteTableChange {
    fn show(&self) -> FieldChange {
        match self {
            RouteTableChange::Vpc { desired, live } => FieldChange::replace("vpc", desired, live),
            RouteTableChange::ExtraRoute(r) => {
                FieldChange::update(format!("route {}", r.destination), "absent", format!("→ {}", r.target))
            }
            RouteTableChange::Association { subnet_id, now } => {
                FieldChange::update("association", format!("associated with {subnet_id}"), now)
            }
        }
    }
}

/// The routes an isolated subnet may have: the VPC's own `local` route(s), and gateway-endpoint
/// routes (prefix list → vpce-…) that CreateVpcEndpoint / ModifyVpcEndpoint add.
pub fn route_allowed(route: &LiveRoute) -> bool {
    route.target == "local"
        || (matches!(route.destination, Destination::PrefixList(_)) && route.target.starts_with("vpce-"))
}

pub fn diff(desired: &DesiredRouteTable, live: &LiveRouteTable) -> Vec<RouteTableChange> {
    let mut changes = Vec::new();
    if desired.vpc_id != live.vpc_id {
        changes.push(RouteTableChange::Vpc { desired: desired.vpc_id.clone(), live: live.vpc_id.clone() });
    }
    for route in live.routes.iter().filter(|r| !route_allowed(r)) {
        changes.push(RouteTableChange::ExtraRoute(route.clone()));
    }
    if live.association_with(&desired.subnet_id).is_none() {
        let now = match &live.other_association {
            Some(other) => format!("associated with {}", other.route_table_id),
            None => "not associated".to_string(),
        };
        changes.push(RouteTableChange::Association { subnet_id: desired.subnet_id.clone(), now });
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

/// The stack's route tables, with their routes and associations (one read per run).
async fn stack_route_tables(ctx: &Ctx) -> Result<Arc<Vec<aws_sdk_ec2::types::RouteTable>>> {
    ctx.once("ec2:DescribeRouteTables", || async {
        let out = ctx
            .aws
            .ec2
            .describe_route_tables()
            .filters(stack_filter(ctx))
            .send()
            .await
            .aws("EC2", "DescribeRouteTables")?;
        Ok(out.route_tables().to_vec())
    })
    .await
}

fn live_table(rt: &aws_sdk_ec2::types::RouteTable) -> LiveRouteTable {
    LiveRouteTable {
        id: rt.route_table_id().unwrap_or_default().to_string(),
        vpc_id: rt.vpc_id().unwrap_or_default().to_string(),
        routes: rt.routes().iter().filter_map(live_route).collect(),
        associations: rt
            .associations()
            .iter()
            .filter(|a| !a.main().unwrap_or(false))
            .filter_map(|a| Some((a.subnet_id()?.to_string(), a.route_table_association_id()?.to_string())))
            .collect(),
        other_association: None,
    }
}

impl RouteTable {
    fn name(&self) -> super::Name {
        id(self.index).name()
    }

    fn desired(&self, inputs: &LiveStates) -> Result<DesiredRouteTable> {
        Ok(DesiredRouteTable {
            vpc_id: inputs.get(vpc::ID)?.id.clone(),
            subnet_id: inputs.get(subnet::id(self.index))?.id.clone(),
        })
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
    async fn associate(&self, ctx: &Ctx, rt_id: &str, subnet_id: &str) -> Result<String> {
        let other = self.subnet_association(ctx, subnet_id).await?.filter(|o| o.route_table_id != rt_id);
        let deadline = backoff::JUST_CREATED.min(ctx.timeouts.resource_ready);
        let what = format!("route table {rt_id} to be visible");
        let backoff = backoff::JUST_CREATED_VISIBLE;
        match other {
            Some(other) => {
                ctx.progress(
                    self.name(),
                    format!(
                        "subnet {subnet_id} is associated with route table {}: moving it to {rt_id}",
                        other.route_table_id
                    ),
                );
                let out = retry(ctx, self.name(), &what, &[ErrorKind::NotFound], deadline, backoff, || async {
                    ctx.aws
                        .ec2
                        .replace_route_table_association()
                        .association_id(&other.association_id)
                        .route_table_id(rt_id)
                        .send()
                        .await
                        .aws("EC2", "ReplaceRouteTableAssociation")
                })
                .await?;
                Ok(out.new_association_id().unwrap_or_default().to_string())
            }
            None => {
                let out = retry(ctx, self.name(), &what, &[ErrorKind::NotFound], deadline, backoff, || async {
                    ctx.aws
                        .ec2
                        .associate_route_table()
                        .route_table_id(rt_id)
                        .subnet_id(subnet_id)
                        .send()
                        .await
                        .aws("EC2", "AssociateRouteTable")
                })
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
        crate::error::gone_is_ok(req.send().await.aws("EC2", "DeleteRoute"))
    }
}

#[async_trait]
impl Resource for RouteTable {
    type Live = LiveRouteTable;
    type Change = RouteTableChange;

    fn id(&self) -> Id<LiveRouteTable> {
        id(self.index)
    }

    fn kind(&self) -> Kind {
        Kind::RouteTable
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        let changes = [
            "ec2:CreateRouteTable",
            "ec2:AssociateRouteTable",
            "ec2:DisassociateRouteTable",
            "ec2:ReplaceRouteTableAssociation",
            "ec2:DeleteRoute",
            "ec2:DeleteRouteTable",
        ];
        let reads = ["ec2:DescribeRouteTables"];
        super::ec2::grants(s, "route-table", &reads, "ec2:CreateRouteTable", &changes, &["vpc", "subnet"])
    }

    fn deps(&self) -> Vec<Dep> {
        vec![Dep::on(vpc::ID), Dep::on(subnet::id(self.index))]
    }

    fn create_rounds(&self) -> u32 {
        3 // CreateRouteTable, the subnet's current association, AssociateRouteTable
    }

    fn delete_rounds(&self) -> u32 {
        2 // DisassociateRouteTable, DeleteRouteTable
    }

    fn export(&self, ctx: &Ctx, live: &LiveRouteTable) -> Vec<CfnResource> {
        let me = id(self.index);
        // Its routes are the VPC's local route and the DynamoDB endpoint's (the endpoint's own).
        let table = CfnResource::new(
            me,
            "AWS::EC2::RouteTable",
            json!({ "VpcId": cfn::reference(vpc::ID), "Tags": cfn::tags(&ctx.tags(me.name())) }),
            cfn::identifier(&[("RouteTableId", &live.id)]),
        );
        // In sync, the table has exactly one association: with its own subnet.
        let association = live.associations.first().map(|(_, association_id)| {
            CfnResource::part(
                me.name(),
                "Association",
                "AWS::EC2::SubnetRouteTableAssociation",
                json!({ "SubnetId": cfn::reference(subnet::id(self.index)), "RouteTableId": cfn::reference(me) }),
                cfn::identifier(&[("Id", association_id)]),
            )
        });
        std::iter::once(table).chain(association).collect()
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveRouteTable>> {
        let (tables, subnets) = tokio::try_join!(stack_route_tables(ctx), stack_subnets(ctx))?;
        let Some(rt) = pick(ctx, &tables, |t| t.tags(), "route table", self.name())? else { return Ok(None) };
        let mut live = live_table(&rt);
        // Our subnet not associated with it: with which table is it, then? (drift only)
        let subnet = pick(ctx, &subnets, |s| s.tags(), "subnet", subnet::id(self.index).name())?;
        if let Some(subnet_id) = subnet.as_ref().and_then(|s| s.subnet_id())
            && live.association_with(subnet_id).is_none()
        {
            live.other_association =
                self.subnet_association(ctx, subnet_id).await?.filter(|o| o.route_table_id != live.id);
        }
        Ok(Some(live))
    }

    fn diff(&self, _ctx: &Ctx, inputs: &LiveStates, live: &LiveRouteTable) -> Result<Vec<RouteTableChange>> {
        Ok(diff(&self.desired(inputs)?, live))
    }

    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LiveRouteTable> {
        let desired = self.desired(inputs)?;
        let out = ctx
            .aws
            .ec2
            .create_route_table()
            .vpc_id(&desired.vpc_id)
            .tag_specifications(tag_spec(ctx, self.name(), ResourceType::RouteTable))
            .send()
            .await
            .aws("EC2", "CreateRouteTable")?;
        let rt = out.route_table().ok_or_else(|| Error::other("EC2 CreateRouteTable returned no route table"))?;
        let mut live = live_table(rt);
        // A fresh subnet has no explicit association, but one made by hand (or by an earlier
        // table of ours that was replaced) must be moved, not duplicated.
        let association_id = self.associate(ctx, &live.id, &desired.subnet_id).await?;
        live.associations.push((desired.subnet_id, association_id));
        Ok(live)
    }

    async fn update(
        &self,
        ctx: &Ctx,
        _inputs: &LiveStates,
        live: &LiveRouteTable,
        changes: &[RouteTableChange],
    ) -> Result<LiveRouteTable> {
        let mut live = live.clone();
        for change in changes {
            match change {
                RouteTableChange::ExtraRoute(route) => {
                    ctx.progress(self.name(), format!("removing route {} → {}", route.destination, route.target));
                    self.delete_route(ctx, &live.id, route).await?;
                    live.routes.retain(|r| r != route);
                }
                RouteTableChange::Association { subnet_id, .. } => {
                    let association_id = self.associate(ctx, &live.id, subnet_id).await?;
                    live.associations.push((subnet_id.clone(), association_id));
                    live.other_association = None;
                }
                // The executor refuses replacements before calling update.
                RouteTableChange::Vpc { .. } => {}
            }
        }
        Ok(live)
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveRouteTable) -> Result<()> {
        for (_, association_id) in &live.associations {
            let res = ctx
                .aws
                .ec2
                .disassociate_route_table()
                .association_id(association_id)
                .send()
                .await
                .aws("EC2", "DisassociateRouteTable");
            crate::error::gone_is_ok(res)?;
        }
        // A disassociation can take a moment to be seen by DeleteRouteTable (DependencyViolation).
        let res = retry(
            ctx,
            self.name(),
            "the route table's associations to go",
            &[ErrorKind::Conflict],
            ctx.timeouts.resource_ready,
            backoff::STATE,
            || async {
                ctx.aws.ec2.delete_route_table().route_table_id(&live.id).send().await.aws("EC2", "DeleteRouteTable")
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
            associations: vec![("subnet-1".into(), "rtbassoc-1".into())],
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
            let changes: Vec<FieldChange> = diff(&desired(), &l).iter().map(KindChange::show).collect();
            assert_eq!(changes.len(), 1, "{r:?}");
            assert_eq!(changes[0].field, format!("route {}", r.destination));
            assert!(!changes[0].replace);
        }
    }

    #[test]
    fn missing_association_is_an_update_and_names_the_other_table() {
        let mut l = live();
        l.associations.clear();
        let changes: Vec<FieldChange> = diff(&desired(), &l).iter().map(KindChange::show).collect();
        assert_eq!(changes, vec![FieldChange::update("association", "associated with subnet-1", "not associated")]);
        l.other_association = Some(OtherAssociation { route_table_id: "rtb-9".into(), association_id: "a-9".into() });
        assert_eq!(diff(&desired(), &l)[0].show().live, "associated with rtb-9");
        // Associated with another subnet only: still not ours.
        l.associations = vec![("subnet-2".into(), "rtbassoc-2".into())];
        assert!(matches!(diff(&desired(), &l)[0], RouteTableChange::Association { .. }));
    }

    #[test]
    fn another_vpc_is_a_replacement() {
        let mut l = live();
        l.vpc_id = "vpc-2".into();
        let changes = diff(&desired(), &l);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].show().replace);
    }
}
