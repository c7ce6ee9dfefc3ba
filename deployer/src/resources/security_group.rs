//! The function's security group: no ingress, and exactly one egress rule, TCP 443 to the
//! region's DynamoDB prefix list (through the gateway endpoint). The all-traffic egress rule EC2
//! adds to every new group is revoked.

use async_trait::async_trait;
use aws_sdk_ec2::types::{IpPermission, IpRange, PrefixListId, ResourceType, SecurityGroupRule};

use super::ec2::{filter, pick, stack_filter, tag_spec};
use super::vpc_endpoint::{dynamodb_prefix_list_id, known_prefix_list_id};
use super::{Ctx, Dep, FieldChange, Grant, Id, Kind, LiveStates, Resource, Scope, vpc};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::error::{Codes, ErrorKind, Result};
use crate::wait::{backoff, retry};
use serde_json::{Value, json};

pub const ID: Id<LiveGroup> = Id::new("function-sg");

/// Codes only the security group's calls meet: groups per VPC and rules per group (quotas), a
/// group of the same name or a rule that exists already.
const CODES: &Codes = &[
    ("SecurityGroupLimitExceeded", ErrorKind::Quota),
    ("RulesPerSecurityGroupLimitExceeded", ErrorKind::Quota),
    ("InvalidGroup.Duplicate", ErrorKind::AlreadyExists),
    ("InvalidPermission.Duplicate", ErrorKind::AlreadyExists),
];
pub const DESCRIPTION: &str = "movies-stack: Lambda function (egress 443 to DynamoDB only)";
const HTTPS: i32 = 443;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSecurityGroup;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    pub name: String,
    pub description: String,
    pub vpc_id: String,
    pub prefix_list_id: String,
}

/// One rule as DescribeSecurityGroupRules returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRule {
    pub id: String,
    pub egress: bool,
    /// `tcp`, `udp`, `icmp`, `-1` (all).
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    /// The other end: a CIDR, a prefix list or a security group.
    pub peer: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub vpc_id: String,
    pub rules: Vec<LiveRule>,
}

/// What to do to the rules: revoke these, authorize the 443 rule or not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulePlan {
    pub revoke_egress: Vec<LiveRule>,
    pub revoke_ingress: Vec<LiveRule>,
    pub authorize_https: bool,
}

impl RulePlan {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.revoke_egress.is_empty() && self.revoke_ingress.is_empty() && !self.authorize_https
    }
}

impl std::fmt::Display for LiveRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = if self.protocol == "-1" { "all" } else { &self.protocol };
        let dir = if self.egress { "to" } else { "from" };
        if self.from_port == -1 || self.protocol == "-1" {
            write!(f, "{proto} {dir} {}", self.peer)
        } else if self.from_port == self.to_port {
            write!(f, "{proto}/{} {dir} {}", self.from_port, self.peer)
        } else {
            write!(f, "{proto}/{}-{} {dir} {}", self.from_port, self.to_port, self.peer)
        }
    }
}

fn is_wanted(rule: &LiveRule, desired: &DesiredGroup) -> bool {
    rule.egress
        && rule.protocol == "tcp"
        && rule.from_port == HTTPS
        && rule.to_port == HTTPS
        && rule.peer == desired.prefix_list_id
}

/// Every ingress rule and every egress rule but ours goes; ours is added when missing.
pub fn plan_rules(desired: &DesiredGroup, rules: &[LiveRule]) -> RulePlan {
    RulePlan {
        revoke_egress: rules.iter().filter(|r| r.egress && !is_wanted(r, desired)).cloned().collect(),
        revoke_ingress: rules.iter().filter(|r| !r.egress).cloned().collect(),
        authorize_https: !rules.iter().any(|r| is_wanted(r, desired)),
    }
}

pub fn diff(desired: &DesiredGroup, live: &LiveGroup) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    // Name, description and VPC of a security group cannot be changed.
    if desired.vpc_id != live.vpc_id {
        changes.push(FieldChange::replace("vpc", &desired.vpc_id, &live.vpc_id));
    }
    if desired.name != live.name {
        changes.push(FieldChange::replace("name", &desired.name, &live.name));
    }
    if desired.description != live.description {
        changes.push(FieldChange::replace("description", &desired.description, &live.description));
    }
    let plan = plan_rules(desired, &live.rules);
    for r in plan.revoke_egress.iter().chain(&plan.revoke_ingress) {
        let kind = if r.egress { "egress" } else { "ingress" };
        changes.push(FieldChange::update(format!("{kind} rule {}", r.id), "absent", r));
    }
    if plan.authorize_https {
        changes.push(FieldChange::update(
            "egress rule tcp/443",
            format!("tcp/443 to {}", desired.prefix_list_id),
            "absent",
        ));
    }
    changes
}

fn live_rule(r: &SecurityGroupRule) -> LiveRule {
    let peer = r
        .cidr_ipv4()
        .or(r.cidr_ipv6())
        .or(r.prefix_list_id())
        .or(r.referenced_group_info().and_then(|g| g.group_id()))
        .unwrap_or("?")
        .to_string();
    LiveRule {
        id: r.security_group_rule_id().unwrap_or_default().to_string(),
        egress: r.is_egress().unwrap_or(false),
        protocol: r.ip_protocol().unwrap_or_default().to_string(),
        from_port: r.from_port().unwrap_or(-1),
        to_port: r.to_port().unwrap_or(-1),
        peer,
    }
}

/// The stack's security groups (one read per run).
async fn stack_groups(ctx: &Ctx) -> Result<std::sync::Arc<Vec<aws_sdk_ec2::types::SecurityGroup>>> {
    ctx.once("ec2:DescribeSecurityGroups", || async {
        let out = ctx.aws.ec2.describe_security_groups().filters(stack_filter(ctx)).send().await.aws_with(
            "EC2",
            "DescribeSecurityGroups",
            CODES,
        )?;
        Ok(out.security_groups().to_vec())
    })
    .await
}

impl FunctionSecurityGroup {
    fn desired(&self, ctx: &Ctx, inputs: &LiveStates, prefix_list_id: &str) -> Result<DesiredGroup> {
        Ok(DesiredGroup {
            name: format!("{}-function", ctx.stack),
            description: DESCRIPTION.to_string(),
            vpc_id: inputs.get(vpc::ID)?.id.clone(),
            prefix_list_id: prefix_list_id.to_string(),
        })
    }

    /// Make the rules exactly ours: authorize first (so the function never loses its way to
    /// DynamoDB), then revoke the rest by rule id.
    async fn apply_rules(&self, ctx: &Ctx, group_id: &str, desired: &DesiredGroup, plan: &RulePlan) -> Result<()> {
        if plan.authorize_https {
            let permission = IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(HTTPS)
                .to_port(HTTPS)
                .prefix_list_ids(
                    PrefixListId::builder()
                        .prefix_list_id(&desired.prefix_list_id)
                        .description("HTTPS to DynamoDB through the gateway endpoint")
                        .build(),
                )
                .build();
            let res = ctx
                .aws
                .ec2
                .authorize_security_group_egress()
                .group_id(group_id)
                .ip_permissions(permission)
                .send()
                .await
                .aws_with("EC2", "AuthorizeSecurityGroupEgress", CODES);
            match res {
                Ok(_) => {}
                // InvalidPermission.Duplicate: a concurrent or earlier call already added it.
                Err(e) if e.kind() == Some(ErrorKind::AlreadyExists) => {}
                Err(e) => return Err(e),
            }
        }
        if !plan.revoke_egress.is_empty() {
            for r in &plan.revoke_egress {
                ctx.progress(ID, format!("revoking egress rule {} ({r})", r.id));
            }
            let ids = plan.revoke_egress.iter().map(|r| r.id.clone()).collect();
            ctx.aws
                .ec2
                .revoke_security_group_egress()
                .group_id(group_id)
                .set_security_group_rule_ids(Some(ids))
                .send()
                .await
                .aws_with("EC2", "RevokeSecurityGroupEgress", CODES)?;
        }
        if !plan.revoke_ingress.is_empty() {
            for r in &plan.revoke_ingress {
                ctx.progress(ID, format!("revoking ingress rule {} ({r})", r.id));
            }
            let ids = plan.revoke_ingress.iter().map(|r| r.id.clone()).collect();
            ctx.aws
                .ec2
                .revoke_security_group_ingress()
                .group_id(group_id)
                .set_security_group_rule_ids(Some(ids))
                .send()
                .await
                .aws_with("EC2", "RevokeSecurityGroupIngress", CODES)?;
        }
        Ok(())
    }
}

/// Revoke the egress rule EC2 gives a new group (all traffic to 0.0.0.0/0), named by its
/// permission. Already gone (InvalidPermission.NotFound) is fine.
async fn revoke_default_egress(ctx: &Ctx, group_id: &str) -> Result<()> {
    let everything =
        IpPermission::builder().ip_protocol("-1").ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build()).build();
    let res =
        ctx.aws.ec2.revoke_security_group_egress().group_id(group_id).ip_permissions(everything).send().await.aws_with(
            "EC2",
            "RevokeSecurityGroupEgress",
            CODES,
        );
    match res {
        Err(e) if e.aws().is_some_and(|a| a.code.as_deref() == Some("InvalidPermission.NotFound")) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// All rules of the group (ingress and egress), following pagination.
async fn rules(ctx: &Ctx, group_id: &str) -> Result<Vec<LiveRule>> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = ctx
            .aws
            .ec2
            .describe_security_group_rules()
            .filters(filter("group-id", group_id))
            .set_next_token(token)
            .send()
            .await
            .aws_with("EC2", "DescribeSecurityGroupRules", CODES)?;
        // The filter is on the rule's own group; a rule of another group that merely
        // references ours is not ours to revoke.
        all.extend(out.security_group_rules().iter().filter(|r| r.group_id() == Some(group_id)).map(live_rule));
        token = out.next_token().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() {
            return Ok(all);
        }
    }
}

#[async_trait]
impl Resource for FunctionSecurityGroup {
    type Live = LiveGroup;
    type Change = FieldChange;

    fn id(&self) -> Id<LiveGroup> {
        ID
    }

    fn kind(&self) -> Kind {
        Kind::SecurityGroup
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        let reads = ["ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules"];
        let rules =
            ["ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress"];
        let changes = [&["ec2:CreateSecurityGroup"], &rules[..], &["ec2:DeleteSecurityGroup"]].concat();
        let mut grants = super::ec2::grants(s, "security-group", &reads, "ec2:CreateSecurityGroup", &changes, &["vpc"]);
        // A rule of the (tag-scoped) group, to DynamoDB's prefix list, which AWS owns (its ARN's
        // account may be `aws`).
        grants.push(Grant::new(
            "Ec2RulesOfTheStacksGroup",
            &rules,
            [s.ec2("security-group-rule"), format!("arn:{}:ec2:{}:*:prefix-list/*", s.partition(), s.region)],
        ));
        grants.extend(super::ec2::released_enis_grants(s));
        grants
    }

    fn deps(&self) -> Vec<Dep> {
        vec![Dep::on(vpc::ID)]
    }

    fn create_rounds(&self) -> u32 {
        2 // CreateSecurityGroup, then ours authorized and EC2's default egress revoked at once
    }

    fn delete_rounds(&self) -> u32 {
        3 // the released Lambda ENIs: DescribeNetworkInterfaces, DeleteNetworkInterface; DeleteSecurityGroup
    }

    fn export(&self, ctx: &Ctx, live: &LiveGroup) -> Vec<CfnResource> {
        // In sync: one egress rule, HTTPS to DynamoDB's prefix list, and no ingress.
        let egress: Vec<Value> = live
            .rules
            .iter()
            .filter(|r| r.egress)
            .map(|r| {
                let peer = if r.peer.starts_with("pl-") { "DestinationPrefixListId" } else { "CidrIp" };
                json!({ "IpProtocol": r.protocol, "FromPort": r.from_port, "ToPort": r.to_port, peer: r.peer })
            })
            .collect();
        let properties = json!({
            "GroupName": live.name,
            "GroupDescription": live.description,
            "VpcId": cfn::reference(vpc::ID),
            "SecurityGroupEgress": egress,
            "Tags": cfn::tags(&ctx.tags(ID.name())),
        });
        vec![CfnResource::new(ID, "AWS::EC2::SecurityGroup", properties, cfn::identifier(&[("Id", &live.id)]))]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveGroup>> {
        // The prefix list is read now too, in the sweep: `diff` needs it.
        let (groups, _) = tokio::try_join!(stack_groups(ctx), dynamodb_prefix_list_id(ctx))?;
        let Some(g) = pick(ctx, &groups, |g| g.tags(), "security group", ID.name())? else { return Ok(None) };
        let id = g.group_id().unwrap_or_default().to_string();
        Ok(Some(LiveGroup {
            rules: rules(ctx, &id).await?,
            id,
            name: g.group_name().unwrap_or_default().to_string(),
            description: g.description().unwrap_or_default().to_string(),
            vpc_id: g.vpc_id().unwrap_or_default().to_string(),
        }))
    }

    fn diff(&self, ctx: &Ctx, inputs: &LiveStates, live: &LiveGroup) -> Result<Vec<FieldChange>> {
        Ok(diff(&self.desired(ctx, inputs, &known_prefix_list_id(ctx)?)?, live))
    }

    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LiveGroup> {
        let desired = self.desired(ctx, inputs, &dynamodb_prefix_list_id(ctx).await?)?;
        let res = ctx
            .aws
            .ec2
            .create_security_group()
            .group_name(&desired.name)
            .description(&desired.description)
            .vpc_id(&desired.vpc_id)
            .tag_specifications(tag_spec(ctx, ID.name(), ResourceType::SecurityGroup))
            .send()
            .await
            .aws_with("EC2", "CreateSecurityGroup", CODES);
        let out = match res {
            Ok(out) => out,
            // Names are unique per VPC, and observe found no group with our tags in ours: a group
            // with our name (InvalidGroup.Duplicate) is someone else's. Never adopted.
            Err(e) if e.kind() == Some(ErrorKind::AlreadyExists) => {
                return Err(ctx.not_ours("security group", &desired.name));
            }
            Err(e) => return Err(e),
        };
        let group_id = out.group_id().unwrap_or_default().to_string();
        // EC2 gives every new group an all-traffic egress rule (-1 to 0.0.0.0/0): ours is
        // authorized and that one revoked (by its permission: no need to read its id) at once;
        // the function does not exist yet. A run killed before this point leaves that rule;
        // observe shows it as drift.
        let deadline = backoff::JUST_CREATED.min(ctx.timeouts.resource_ready);
        let ours = RulePlan { revoke_egress: Vec::new(), revoke_ingress: Vec::new(), authorize_https: true };
        retry(
            ctx,
            ID,
            "the new security group to be visible",
            &[ErrorKind::NotFound],
            deadline,
            backoff::JUST_CREATED_VISIBLE,
            || async {
                let (authorized, revoked) = tokio::join!(
                    self.apply_rules(ctx, &group_id, &desired, &ours),
                    revoke_default_egress(ctx, &group_id)
                );
                authorized.and(revoked)
            },
        )
        .await?;
        Ok(LiveGroup {
            id: group_id,
            name: desired.name,
            description: desired.description,
            vpc_id: desired.vpc_id,
            rules: Vec::new(),
        })
    }

    async fn update(
        &self,
        ctx: &Ctx,
        inputs: &LiveStates,
        live: &LiveGroup,
        _changes: &[FieldChange],
    ) -> Result<LiveGroup> {
        // The rules to revoke and to add follow from the live rules, by rule id.
        let desired = self.desired(ctx, inputs, &known_prefix_list_id(ctx)?)?;
        self.apply_rules(ctx, &live.id, &desired, &plan_rules(&desired, &live.rules)).await?;
        Ok(live.clone())
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveGroup) -> Result<()> {
        let group_id = &live.id;
        // The function's Hyperplane ENIs keep using the group long after DeleteFunction (P99
        // ~35 min, 40-60 min reported: hashicorp/terraform-provider-aws#10329, #32130); until
        // they are released DeleteSecurityGroup answers DependencyViolation.
        let what =
            format!("Lambda network interfaces using security group {group_id} to be released (can take ~45 min)");
        let res =
            retry(ctx, ID, &what, &[ErrorKind::Conflict], ctx.timeouts.eni_release, backoff::ENI_RELEASE, || async {
                // Delete the ENIs Lambda has released, then try the group.
                super::ec2::release_lambda_enis(ctx, ID.name(), "group-id", group_id).await?;
                ctx.aws.ec2.delete_security_group().group_id(group_id).send().await.aws_with(
                    "EC2",
                    "DeleteSecurityGroup",
                    CODES,
                )
            })
            .await;
        crate::error::gone_is_ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> DesiredGroup {
        DesiredGroup {
            name: "dev-function".into(),
            description: DESCRIPTION.into(),
            vpc_id: "vpc-1".into(),
            prefix_list_id: "pl-1".into(),
        }
    }

    fn rule(id: &str, egress: bool, protocol: &str, from: i32, to: i32, peer: &str) -> LiveRule {
        LiveRule { id: id.into(), egress, protocol: protocol.into(), from_port: from, to_port: to, peer: peer.into() }
    }

    fn https() -> LiveRule {
        rule("sgr-443", true, "tcp", 443, 443, "pl-1")
    }

    fn live(rules: Vec<LiveRule>) -> LiveGroup {
        LiveGroup {
            id: "sg-1".into(),
            name: "dev-function".into(),
            description: DESCRIPTION.into(),
            vpc_id: "vpc-1".into(),
            rules,
        }
    }

    #[test]
    fn only_the_https_rule_is_in_sync() {
        assert_eq!(diff(&desired(), &live(vec![https()])), vec![]);
    }

    #[test]
    fn extra_and_missing_rules_are_updates() {
        let default = rule("sgr-all", true, "-1", -1, -1, "0.0.0.0/0");
        let ssh = rule("sgr-ssh", false, "tcp", 22, 22, "1.2.3.4/32");
        let cases: Vec<(Vec<LiveRule>, Vec<&str>)> = vec![
            // A run killed after CreateSecurityGroup: only EC2's default rule.
            (vec![default.clone()], vec!["egress rule sgr-all", "egress rule tcp/443"]),
            (vec![default.clone(), https()], vec!["egress rule sgr-all"]),
            (vec![https(), ssh.clone()], vec!["ingress rule sgr-ssh"]),
            // 443 to another prefix list (the S3 one, say) is not ours.
            (vec![rule("sgr-s3", true, "tcp", 443, 443, "pl-9")], vec!["egress rule sgr-s3", "egress rule tcp/443"]),
            (vec![https(), rule("sgr-range", true, "tcp", 443, 444, "pl-1")], vec!["egress rule sgr-range"]),
            (vec![], vec!["egress rule tcp/443"]),
        ];
        for (rules, want) in cases {
            let changes = diff(&desired(), &live(rules.clone()));
            let fields: Vec<_> = changes.iter().map(|c| c.field.as_str()).collect();
            assert_eq!(fields, want, "{rules:?}");
            assert!(changes.iter().all(|c| !c.replace));
        }
    }

    #[test]
    fn rule_plan_revokes_by_direction() {
        let rules = vec![rule("e", true, "-1", -1, -1, "::/0"), rule("i", false, "tcp", 443, 443, "sg-2"), https()];
        let plan = plan_rules(&desired(), &rules);
        assert_eq!(plan.revoke_egress.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["e"]);
        assert_eq!(plan.revoke_ingress.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["i"]);
        assert!(!plan.authorize_https);
        assert!(plan_rules(&desired(), &[https()]).is_empty());
    }

    #[test]
    fn immutable_fields_are_replacements() {
        let mut l = live(vec![https()]);
        l.vpc_id = "vpc-2".into();
        l.description = "old".into();
        let changes = diff(&desired(), &l);
        assert_eq!(
            changes.iter().map(|c| (c.field.as_str(), c.replace)).collect::<Vec<_>>(),
            [("vpc", true), ("description", true)]
        );
    }

    #[test]
    fn rules_read_well() {
        assert_eq!(rule("a", true, "-1", -1, -1, "0.0.0.0/0").to_string(), "all to 0.0.0.0/0");
        assert_eq!(rule("b", false, "tcp", 22, 22, "1.2.3.4/32").to_string(), "tcp/22 from 1.2.3.4/32");
        assert_eq!(rule("c", true, "tcp", 1, 2, "pl-1").to_string(), "tcp/1-2 to pl-1");
    }
}
