//! IAM roles: the function's execution role and the VPC flow-log delivery role. Least privilege:
//! one inline policy per role, scoped to this stack's table and log groups; no AWS managed
//! policy (they grant `logs:*` on `*` and more). Any other inline or attached policy found on the
//! role is reported as a change and removed by `update`.

use async_trait::async_trait;
use aws_sdk_iam::types::Tag;
use serde_json::{Value, json};

use super::{Condition, Ctx, FieldChange, Grant, Id, Kind, KindChange, LiveStates, Resource, Scope};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::config::Config;
use crate::error::{ErrorKind, Result};
use crate::wait::{backoff, retry};

pub const FUNCTION: Id<LiveRole> = Id::new("function-role");
pub const FLOW_LOGS: Id<LiveRole> = Id::new("flow-log-role");
/// The name of the one inline policy each role carries.
pub const INLINE_POLICY: &str = "movies-stack";

/// The function's role: named after the stack.
pub fn function_role_name(c: &Config) -> String {
    format!("{}-function", c.stack)
}

/// The VPC flow logs' delivery role: named after the stack.
pub fn flow_log_role_name(c: &Config) -> String {
    format!("{}-flow-logs", c.stack)
}

/// The customer-managed policy that caps every role the stack creates (their permissions
/// boundary); an administrator creates it once (`movies-stack bootstrap`).
pub fn permissions_boundary_name(c: &Config) -> String {
    format!("{}-permissions-boundary", c.stack)
}

/// What the role is for. The policies name the stack's table and log groups by ARN, which AWS
/// defines from their names: a role needs nothing else to exist first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolePurpose {
    /// The function's execution role, writing to `table` and logging to `log_group`.
    Function { table: String, log_group: String },
    /// The role VPC Flow Logs assumes to write into `log_group`.
    FlowLogs { log_group: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// [`FUNCTION`] or [`FLOW_LOGS`].
    pub id: Id<LiveRole>,
    pub name: String,
    pub purpose: RolePurpose,
    /// The name of the customer-managed policy that caps the role (its permissions boundary),
    /// which an administrator creates once (`movies-stack bootstrap`).
    pub boundary: String,
}

/// The two policy documents of a role, as JSON, and its permissions boundary's ARN.
#[derive(Debug, Clone, PartialEq)]
pub struct RolePolicies {
    pub trust: Value,
    pub inline: Value,
    pub boundary: String,
}

/// The live role, as far as we compare it. Documents are already decoded and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRole {
    pub name: String,
    pub arn: String,
    pub trust: Value,
    /// Our inline policy ([`INLINE_POLICY`]), `None` when missing.
    pub inline: Option<Value>,
    /// Names of other inline policies.
    pub extra_inline: Vec<String>,
    /// ARNs of attached managed policies.
    pub attached: Vec<String>,
    /// The permissions boundary's ARN, `None` when it has none.
    pub boundary: Option<String>,
}

/// Trust policy of the function role.
pub fn function_trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "lambda.amazonaws.com" },
            "Action": "sts:AssumeRole"
        }]
    })
}

/// Permissions of the function role.
pub fn function_policy(table_arn: &str, log_group_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PutMovies",
                "Effect": "Allow",
                "Action": "dynamodb:PutItem",
                "Resource": table_arn
            },
            {
                // `<group arn>:*` covers the group's log streams (PutLogEvents) and is the form
                // Lambda's own generated execution roles use for CreateLogStream too.
                "Sid": "WriteOwnLogGroup",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": format!("{log_group_arn}:*")
            },
            {
                // X-Ray has no resource-level permissions for these actions: `*` is the only
                // valid resource (Service Authorization Reference, AWS X-Ray).
                "Sid": "XRayTraces",
                "Effect": "Allow",
                "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                "Resource": "*"
            },
            {
                // Exactly the ENI actions of AWSLambdaVPCAccessExecutionRole v3, which Lambda
                // uses to manage the function's Hyperplane ENIs. On `*`: Describe* calls only
                // work on `*`, and the ENIs do not exist (no id to name) before Lambda creates
                // them (Lambda developer guide, "Giving Lambda functions access to a VPC").
                "Sid": "VpcNetworkInterfaces",
                "Effect": "Allow",
                "Action": [
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSubnets",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses"
                ],
                "Resource": "*"
            }
        ]
    })
}

/// Trust policy of the flow-log role. `aws:SourceAccount` and `aws:SourceArn` keep another
/// account's flow logs (or another region's) from using this role: the confused deputy (VPC
/// Flow Logs user guide, "IAM role for publishing flow logs to CloudWatch Logs", whose example
/// has both).
pub fn flow_logs_trust_policy(flow_logs_arn: &str, account_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "vpc-flow-logs.amazonaws.com" },
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": { "aws:SourceAccount": account_id },
                "ArnLike": { "aws:SourceArn": flow_logs_arn }
            }
        }]
    })
}

/// Permissions of the flow-log role: AWS's documented policy (VPC user guide, "IAM role for
/// publishing flow logs to CloudWatch Logs") without `logs:CreateLogGroup` (the group is
/// pre-created with its retention and tags), writing into its own group only.
pub fn flow_logs_policy(log_group_arn: &str) -> Value {
    // `arn:...:log-group:NAME` → `arn:...:log-group:*`: DescribeLogGroups lists groups, so it
    // cannot be narrowed to one group's ARN; this keeps it to the account and region.
    let any_group = match log_group_arn.split_once(":log-group:") {
        Some((prefix, _)) => format!("{prefix}:log-group:*"),
        None => "*".to_string(),
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DeliverFlowLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                "Resource": [log_group_arn, format!("{log_group_arn}:*")]
            },
            {
                "Sid": "FindFlowLogGroup",
                "Effect": "Allow",
                "Action": "logs:DescribeLogGroups",
                "Resource": any_group
            }
        ]
    })
}

impl Role {
    /// The trust and inline policy documents this role must have in `region` of `account_id`.
    pub fn policy_json(&self, region: &str, account_id: &str) -> RolePolicies {
        let arn = |service: &str, resource: String| {
            format!("arn:{}:{service}:{region}:{account_id}:{resource}", crate::aws::partition(region))
        };
        let boundary = boundary_arn(crate::aws::partition(region), account_id, &self.boundary);
        match &self.purpose {
            RolePurpose::Function { table, log_group } => RolePolicies {
                trust: function_trust_policy(),
                inline: function_policy(
                    &arn("dynamodb", format!("table/{table}")),
                    &arn("logs", format!("log-group:{log_group}")),
                ),
                boundary,
            },
            RolePurpose::FlowLogs { log_group } => RolePolicies {
                trust: flow_logs_trust_policy(&arn("ec2", "vpc-flow-log/*".to_string()), account_id),
                inline: flow_logs_policy(&arn("logs", format!("log-group:{log_group}"))),
                boundary,
            },
        }
    }
}

/// The ARN of a customer-managed policy of the account (the roles' permissions boundary).
pub fn boundary_arn(partition: &str, account_id: &str, name: &str) -> String {
    format!("arn:{partition}:iam::{account_id}:policy/{name}")
}

/// Decode `%XX` escapes (RFC 3986). Invalid escapes are kept as they are; `+` stays `+` (IAM
/// encodes a space as `%20`).
pub fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped =
            if bytes[i] == b'%' && i + 2 < bytes.len() { hex(bytes[i + 1]).zip(hex(bytes[i + 2])) } else { None };
        match escaped {
            Some((high, low)) => {
                out.push(high * 16 + low);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse a policy document as IAM returns it: URL-encoded JSON (GetRole, GetRolePolicy). A
/// document that is not JSON is kept as a string, so it compares unequal and gets rewritten.
pub fn parse_policy_document(raw: &str) -> Value {
    serde_json::from_str(raw)
        .or_else(|_| serde_json::from_str(&percent_decode(raw)))
        .unwrap_or_else(|_| Value::String(percent_decode(raw)))
}

/// A canonical form for comparing policies: IAM accepts `"x"` and `["x"]` alike and ignores the
/// order of actions, resources and statements, so arrays are sorted, deduplicated, and a
/// one-element array becomes its element.
pub fn normalize_policy(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalize_policy).collect();
            items.sort_by_cached_key(|i| i.to_string());
            items.dedup();
            if items.len() == 1 { items.swap_remove(0) } else { Value::Array(items) }
        }
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), normalize_policy(v))).collect()),
        other => other.clone(),
    }
}

pub fn same_policy(a: &Value, b: &Value) -> bool {
    normalize_policy(a) == normalize_policy(b)
}

/// One difference of a role, with the part of the role it is about.
#[derive(Debug, Clone, PartialEq)]
pub enum RoleChange {
    /// The permissions boundary is missing or another: set to ours (first: IAM authorizes the
    /// other changes by the role's boundary, `iam:PermissionsBoundary`).
    Boundary(FieldChange),
    Trust(FieldChange),
    Inline(FieldChange),
    /// Inline policies that are not ours, by name: removed (least privilege).
    ExtraInline(Vec<String>),
    /// Attached managed policies, by ARN: detached (least privilege).
    Attached(Vec<String>),
}

impl KindChange for RoleChange {
    fn show(&self) -> FieldChange {
        match self {
            RoleChange::Boundary(c) | RoleChange::Trust(c) | RoleChange::Inline(c) => c.clone(),
            RoleChange::ExtraInline(names) => FieldChange::update("extra_inline_policies", "none", names.join(", ")),
            RoleChange::Attached(arns) => FieldChange::update("attached_managed_policies", "none", arns.join(", ")),
        }
    }
}

pub fn diff(desired: &RolePolicies, live: &LiveRole) -> Vec<RoleChange> {
    let mut changes = Vec::new();
    if live.boundary.as_deref() != Some(desired.boundary.as_str()) {
        changes.push(RoleChange::Boundary(FieldChange::update(
            "permissions_boundary",
            desired.boundary.clone(),
            live.boundary.clone().unwrap_or_else(|| "none".into()),
        )));
    }
    if !same_policy(&desired.trust, &live.trust) {
        changes.push(RoleChange::Trust(FieldChange::update(
            "trust_policy",
            normalize_policy(&desired.trust),
            normalize_policy(&live.trust),
        )));
    }
    match &live.inline {
        None => changes.push(RoleChange::Inline(FieldChange::update(
            "inline_policy",
            normalize_policy(&desired.inline),
            "inline policy missing",
        ))),
        Some(inline) if !same_policy(&desired.inline, inline) => changes.push(RoleChange::Inline(FieldChange::update(
            "inline_policy",
            normalize_policy(&desired.inline),
            normalize_policy(inline),
        ))),
        Some(_) => {}
    }
    if !live.extra_inline.is_empty() {
        changes.push(RoleChange::ExtraInline(live.extra_inline.clone()));
    }
    if !live.attached.is_empty() {
        changes.push(RoleChange::Attached(live.attached.clone()));
    }
    changes
}

/// IAM answers NoSuchEntity to a role created or bounded with a boundary policy that does not
/// exist: an administrator has not run `movies-stack bootstrap` for this stack yet. Waiting will
/// not change it. On CreateRole, the boundary is the only entity the request references that can be missing;
/// on PutRolePermissionsBoundary the role can be too, so there the message must name the policy.
pub fn boundary_missing(e: crate::error::Error, boundary: &str) -> crate::error::Error {
    let creating = e.aws().is_some_and(|a| a.operation == "CreateRole");
    if e.is_not_found() && (creating || e.to_string().contains(boundary)) {
        return crate::error::Error::input(format!(
            "the permissions boundary {boundary} does not exist: an administrator runs `movies-stack bootstrap --apply` \
             once for this stack (README, \"Running against real AWS\"); {e}"
        ));
    }
    e
}

/// `None` for IAM's NoSuchEntity: the role does not exist (or is being created).
fn unless_missing<T>(res: Result<T>) -> Result<Option<T>> {
    match res {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

impl Role {
    async fn check_ours(&self, ctx: &Ctx, role: &aws_sdk_iam::types::Role) -> Result<()> {
        if ctx.owns(self.id.name(), role.tags().iter().map(|t| (t.key(), t.value()))) {
            return Ok(());
        }
        // GetRole documents Tags, but do not rely on every implementation filling them in.
        let tags = ctx
            .aws
            .iam
            .list_role_tags()
            .role_name(&self.name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("IAM", "ListRoleTags")?;
        if ctx.owns(self.id.name(), tags.iter().map(|t| (t.key(), t.value()))) {
            Ok(())
        } else {
            Err(ctx.foreign("IAM role", &self.name).await)
        }
    }

    async fn inline_policy_names(&self, ctx: &Ctx, role_name: &str) -> Result<Vec<String>> {
        ctx.aws
            .iam
            .list_role_policies()
            .role_name(role_name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("IAM", "ListRolePolicies")
    }

    async fn attached_policy_arns(&self, ctx: &Ctx, role_name: &str) -> Result<Vec<String>> {
        let attached = ctx
            .aws
            .iam
            .list_attached_role_policies()
            .role_name(role_name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("IAM", "ListAttachedRolePolicies")?;
        Ok(attached.iter().filter_map(|p| p.policy_arn().map(str::to_string)).collect())
    }

    async fn our_inline_policy(&self, ctx: &Ctx) -> Result<Option<Value>> {
        let res = ctx
            .aws
            .iam
            .get_role_policy()
            .role_name(&self.name)
            .policy_name(INLINE_POLICY)
            .send()
            .await
            .aws("IAM", "GetRolePolicy");
        Ok(unless_missing(res)?.map(|out| parse_policy_document(out.policy_document())))
    }

    async fn put_inline_policy(&self, ctx: &Ctx, policy: &Value) -> Result<()> {
        let document = policy.to_string();
        // Right after CreateRole, IAM's eventual consistency can briefly answer NoSuchEntity
        // for the new role.
        retry(
            ctx,
            self.id,
            "the new IAM role to be visible",
            &[ErrorKind::NotFound],
            ctx.timeouts.iam_propagation,
            backoff::STATE,
            || async {
                ctx.aws
                    .iam
                    .put_role_policy()
                    .role_name(&self.name)
                    .policy_name(INLINE_POLICY)
                    .policy_document(&document)
                    .send()
                    .await
                    .aws("IAM", "PutRolePolicy")
            },
        )
        .await?;
        Ok(())
    }

    fn description(&self, ctx: &Ctx) -> String {
        let what = match self.purpose {
            RolePurpose::Function { .. } => "execution role of the function",
            RolePurpose::FlowLogs { .. } => "role VPC Flow Logs assumes to write the flow-log group",
        };
        format!("movies-stack {}: {what}", ctx.stack)
    }

    fn policies(&self, ctx: &Ctx) -> RolePolicies {
        self.policy_json(&ctx.aws.region, ctx.account_id())
    }
}

#[async_trait]
impl Resource for Role {
    type Live = LiveRole;
    type Change = RoleChange;

    fn id(&self) -> Id<LiveRole> {
        self.id
    }

    fn kind(&self) -> Kind {
        Kind::IamRole
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        let role = || [s.role(&self.name)];
        let boundary =
            Condition::equals("iam:PermissionsBoundary", boundary_arn(s.partition(), s.account, &self.boundary));
        let (pass, service) = match self.purpose {
            RolePurpose::Function { .. } => ("PassTheFunctionRoleToLambda", "lambda.amazonaws.com"),
            RolePurpose::FlowLogs { .. } => ("PassTheFlowLogRoleToVpcFlowLogs", "vpc-flow-logs.amazonaws.com"),
        };
        let read = [
            "iam:GetRole",
            "iam:GetRolePolicy",
            "iam:ListRolePolicies",
            "iam:ListAttachedRolePolicies",
            "iam:ListRoleTags",
        ];
        let grant =
            ["iam:CreateRole", "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:PutRolePermissionsBoundary"];
        vec![
            // ListRoleTags: a same-named role that is not ours is said to be someone else's.
            Grant::new("ReadTheStacksRoles", &read, role()),
            // What can grant a permission (a new role, an inline policy, a trust policy) only on
            // a role capped by the stack's permissions boundary, which the tool's policy can never
            // change or remove: whatever is written, the role can do no more than the boundary
            // allows ("Permissions boundaries for IAM entities", IAM User Guide).
            Grant::new("ChangeTheStacksRolesWithinTheBoundary", &grant, role()).when(boundary),
            // Taking permissions away, and the tags of CreateRole.
            Grant::new(
                "TagAndEmptyTheStacksRoles",
                &["iam:TagRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:DeleteRole"],
                role(),
            ),
            // Handed to the service that assumes it (CreateFunction, CreateFlowLogs), and only to it.
            Grant::new(pass, &["iam:PassRole"], role()).when(Condition::equals("iam:PassedToService", service)),
        ]
    }
    fn aws_name(&self) -> Option<String> {
        Some(self.name.clone())
    }

    fn create_rounds(&self) -> u32 {
        2 // CreateRole, PutRolePolicy
    }

    fn delete_rounds(&self) -> u32 {
        2 // its policies (DeleteRolePolicy, DetachRolePolicy), DeleteRole
    }

    fn export(&self, ctx: &Ctx, live: &LiveRole) -> Vec<CfnResource> {
        let properties = json!({
            "RoleName": live.name,
            "AssumeRolePolicyDocument": live.trust,
            "Policies": [{ "PolicyName": INLINE_POLICY, "PolicyDocument": live.inline }],
            "PermissionsBoundary": live.boundary,
            "Tags": cfn::tags(&ctx.tags(self.id.name())),
        });
        vec![CfnResource::new(self.id, "AWS::IAM::Role", properties, cfn::identifier(&[("RoleName", &live.name)]))]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveRole>> {
        // Everything about the role is read by its name, all at once.
        let (role, names, inline, attached) = tokio::try_join!(
            async { unless_missing(ctx.aws.iam.get_role().role_name(&self.name).send().await.aws("IAM", "GetRole")) },
            async { unless_missing(self.inline_policy_names(ctx, &self.name).await) },
            self.our_inline_policy(ctx),
            async { unless_missing(self.attached_policy_arns(ctx, &self.name).await) },
        )?;
        let Some(role) = role.and_then(|out| out.role().cloned()) else {
            // A name a CloudFormation (e.g. CDK) stack owns would be fought over.
            ctx.check_cloudformation_owner("IAM role", &self.name).await?;
            return Ok(None);
        };
        self.check_ours(ctx, &role).await?;
        Ok(Some(LiveRole {
            name: self.name.clone(),
            arn: role.arn().to_string(),
            trust: parse_policy_document(role.assume_role_policy_document().unwrap_or_default()),
            inline,
            extra_inline: names.unwrap_or_default().into_iter().filter(|n| n != INLINE_POLICY).collect(),
            attached: attached.unwrap_or_default(),
            boundary: role.permissions_boundary().and_then(|b| b.permissions_boundary_arn()).map(str::to_string),
        }))
    }

    fn diff(&self, ctx: &Ctx, _inputs: &LiveStates, live: &LiveRole) -> Result<Vec<RoleChange>> {
        Ok(diff(&self.policies(ctx), live))
    }

    async fn create(&self, ctx: &Ctx, _inputs: &LiveStates) -> Result<LiveRole> {
        let policies = self.policies(ctx);
        let tags = ctx
            .tags(self.id.name())
            .into_iter()
            .map(|(k, v)| {
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| crate::error::Error::other(format!("internal: IAM tag: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let out = ctx
            .aws
            .iam
            .create_role()
            .role_name(&self.name)
            .assume_role_policy_document(policies.trust.to_string())
            .description(self.description(ctx))
            .permissions_boundary(&policies.boundary)
            .set_tags(Some(tags))
            .send()
            .await
            .aws("IAM", "CreateRole")
            .map_err(|e| boundary_missing(e, &policies.boundary))?;
        let arn = out.role().map(|r| r.arn().to_string()).unwrap_or_default();
        // A crash here leaves the role without its policy: `diff` reports it, `update` puts it.
        self.put_inline_policy(ctx, &policies.inline).await?;
        Ok(LiveRole {
            name: self.name.clone(),
            arn,
            trust: policies.trust,
            inline: Some(policies.inline),
            extra_inline: Vec::new(),
            attached: Vec::new(),
            boundary: Some(policies.boundary),
        })
    }

    async fn update(
        &self,
        ctx: &Ctx,
        _inputs: &LiveStates,
        live: &LiveRole,
        changes: &[RoleChange],
    ) -> Result<LiveRole> {
        let policies = self.policies(ctx);
        // The boundary first: IAM authorizes the other changes by the role's boundary.
        let ordered = changes.iter().filter(|c| matches!(c, RoleChange::Boundary(_)));
        for change in ordered.chain(changes.iter().filter(|c| !matches!(c, RoleChange::Boundary(_)))) {
            match change {
                RoleChange::Boundary(_) => {
                    ctx.aws
                        .iam
                        .put_role_permissions_boundary()
                        .role_name(&self.name)
                        .permissions_boundary(&policies.boundary)
                        .send()
                        .await
                        .aws("IAM", "PutRolePermissionsBoundary")
                        .map_err(|e| boundary_missing(e, &policies.boundary))?;
                }
                RoleChange::Trust(_) => {
                    ctx.aws
                        .iam
                        .update_assume_role_policy()
                        .role_name(&self.name)
                        .policy_document(policies.trust.to_string())
                        .send()
                        .await
                        .aws("IAM", "UpdateAssumeRolePolicy")?;
                }
                RoleChange::Inline(_) => self.put_inline_policy(ctx, &policies.inline).await?,
                RoleChange::ExtraInline(names) => {
                    for name in names {
                        ctx.progress(
                            self.id,
                            format!("removing inline policy `{name}` (not part of the stack: least privilege)"),
                        );
                        let res = ctx
                            .aws
                            .iam
                            .delete_role_policy()
                            .role_name(&self.name)
                            .policy_name(name)
                            .send()
                            .await
                            .aws("IAM", "DeleteRolePolicy");
                        crate::error::gone_is_ok(res)?;
                    }
                }
                RoleChange::Attached(arns) => {
                    for arn in arns {
                        ctx.progress(
                            self.id,
                            format!("detaching managed policy `{arn}` (not part of the stack: least privilege)"),
                        );
                        let res = ctx
                            .aws
                            .iam
                            .detach_role_policy()
                            .role_name(&self.name)
                            .policy_arn(arn)
                            .send()
                            .await
                            .aws("IAM", "DetachRolePolicy");
                        crate::error::gone_is_ok(res)?;
                    }
                }
            }
        }
        Ok(LiveRole {
            trust: policies.trust,
            inline: Some(policies.inline),
            extra_inline: Vec::new(),
            attached: Vec::new(),
            boundary: Some(policies.boundary),
            ..live.clone()
        })
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveRole) -> Result<()> {
        // DeleteRole fails with DeleteConflict while policies are attached or inline: the
        // observed ones go first (ours included).
        let inline = live.inline.iter().map(|_| INLINE_POLICY.to_string()).chain(live.extra_inline.iter().cloned());
        for policy in inline {
            let res = ctx
                .aws
                .iam
                .delete_role_policy()
                .role_name(&live.name)
                .policy_name(&policy)
                .send()
                .await
                .aws("IAM", "DeleteRolePolicy");
            crate::error::gone_is_ok(res)?;
        }
        for arn in &live.attached {
            let res = ctx
                .aws
                .iam
                .detach_role_policy()
                .role_name(&live.name)
                .policy_arn(arn)
                .send()
                .await
                .aws("IAM", "DetachRolePolicy");
            crate::error::gone_is_ok(res)?;
        }
        crate::error::gone_is_ok(ctx.aws.iam.delete_role().role_name(&live.name).send().await.aws("IAM", "DeleteRole"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE_ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/demo_table";
    const FN_LOGS: &str = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/apigw_handler";
    const FLOW_LOGS_GROUP: &str = "arn:aws:logs:us-east-1:123456789012:log-group:/movies/flow";

    fn function_role() -> Role {
        Role {
            id: FUNCTION,
            name: "movies-fn".into(),
            purpose: RolePurpose::Function {
                table: "demo_table".into(),
                log_group: "/aws/lambda/apigw_handler".into(),
            },
            boundary: "movies-boundary".into(),
        }
    }

    fn flow_role() -> Role {
        Role {
            id: FLOW_LOGS,
            name: "movies-flow".into(),
            purpose: RolePurpose::FlowLogs { log_group: "/movies/flow".into() },
            boundary: "movies-boundary".into(),
        }
    }

    fn policies(role: &Role) -> RolePolicies {
        role.policy_json("us-east-1", "123456789012")
    }

    fn in_sync(p: &RolePolicies) -> LiveRole {
        LiveRole {
            name: "movies-fn".into(),
            arn: "arn:aws:iam::123456789012:role/movies-fn".into(),
            trust: p.trust.clone(),
            inline: Some(p.inline.clone()),
            extra_inline: vec![],
            attached: vec![],
            boundary: Some(p.boundary.clone()),
        }
    }

    /// Every (action, resource) pair a policy allows.
    fn grants(policy: &Value) -> Vec<(String, String)> {
        let as_list = |v: &Value| match v {
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect::<Vec<_>>(),
            Value::String(s) => vec![s.clone()],
            other => panic!("unexpected {other}"),
        };
        let mut out = Vec::new();
        for st in policy["Statement"].as_array().unwrap() {
            assert_eq!(st["Effect"], "Allow");
            for a in as_list(&st["Action"]) {
                for r in as_list(&st["Resource"]) {
                    out.push((a.clone(), r));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn roles_need_nothing_to_exist_first() {
        // The policies name the table and log groups by ARN, which follows from their names.
        assert!(Resource::deps(&function_role()).is_empty());
        assert!(Resource::deps(&flow_role()).is_empty());
    }

    #[test]
    fn function_policy_is_least_privilege() {
        let p = policies(&function_role());
        let logs = format!("{FN_LOGS}:*");
        let mut want: Vec<(String, String)> = vec![
            ("dynamodb:PutItem".into(), TABLE_ARN.into()),
            ("logs:CreateLogStream".into(), logs.clone()),
            ("logs:PutLogEvents".into(), logs),
            ("xray:PutTraceSegments".into(), "*".into()),
            ("xray:PutTelemetryRecords".into(), "*".into()),
        ];
        for a in [
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSubnets",
            "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses",
        ] {
            want.push((a.into(), "*".into()));
        }
        want.sort();
        assert_eq!(grants(&p.inline), want);
        assert_eq!(p.trust["Statement"][0]["Principal"]["Service"], "lambda.amazonaws.com");
        assert_eq!(p.trust["Statement"][0]["Action"], "sts:AssumeRole");
    }

    #[test]
    fn flow_log_policy_is_scoped_to_its_group_and_account() {
        let p = policies(&flow_role());
        let mut want = Vec::new();
        for a in ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"] {
            want.push((a.to_string(), FLOW_LOGS_GROUP.to_string()));
            want.push((a.to_string(), format!("{FLOW_LOGS_GROUP}:*")));
        }
        // AWS's documented flow-log role policy lists DescribeLogGroups too (any group of the
        // account and region: it lists groups).
        want.push((
            "logs:DescribeLogGroups".to_string(),
            "arn:aws:logs:us-east-1:123456789012:log-group:*".to_string(),
        ));
        want.sort();
        assert_eq!(grants(&p.inline), want);
        let st = &p.trust["Statement"][0];
        assert_eq!(st["Principal"]["Service"], "vpc-flow-logs.amazonaws.com");
        assert_eq!(st["Condition"]["StringEquals"]["aws:SourceAccount"], "123456789012");
    }

    #[test]
    fn percent_decoding() {
        let cases = [
            ("%7B%22Version%22%3A%222012-10-17%22%7D", "{\"Version\":\"2012-10-17\"}"),
            ("a%20b", "a b"),
            ("a+b", "a+b"),
            ("%2a%2A", "**"),
            ("100%", "100%"),
            ("%4", "%4"),
            ("%zz", "%zz"),
            ("%C3%A9", "é"),
            ("plain", "plain"),
        ];
        for (input, want) in cases {
            assert_eq!(percent_decode(input), want, "{input}");
        }
    }

    #[test]
    fn url_encoded_documents_compare_equal() {
        let p = policies(&flow_role());
        // What IAM returns: the document we sent, pretty-printed by someone, URL-encoded.
        let pretty = serde_json::to_string_pretty(&p.trust).unwrap();
        let encoded: String = pretty
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let mut live = in_sync(&p);
        live.trust = parse_policy_document(&encoded);
        assert!(diff(&p, &live).is_empty());
        // Plain JSON (as some emulators return it) parses too.
        live.trust = parse_policy_document(&p.trust.to_string());
        assert!(diff(&p, &live).is_empty());
    }

    #[test]
    fn policies_compare_semantically() {
        let a = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["b", "a"], "Resource": ["r"]}]});
        let b = json!({"Statement": {"Resource": "r", "Action": ["a", "b", "a"], "Effect": "Allow"}, "Version": "2012-10-17"});
        let c = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["a"], "Resource": "r"}]});
        assert!(same_policy(&a, &b));
        assert!(!same_policy(&a, &c));
    }

    #[test]
    fn drift_is_reported_per_part() {
        let p = policies(&function_role());
        assert!(diff(&p, &in_sync(&p)).is_empty());

        let mut live = in_sync(&p);
        live.inline = None;
        live.trust = parse_policy_document("%7Bnot%20json");
        live.extra_inline = vec!["admin".into()];
        live.attached = vec!["arn:aws:iam::aws:policy/AdministratorAccess".into()];
        let changes: Vec<FieldChange> = diff(&p, &live).iter().map(KindChange::show).collect();
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["trust_policy", "inline_policy", "extra_inline_policies", "attached_managed_policies"]);
        assert!(changes.iter().all(|c| !c.replace));
        assert_eq!(changes[1].live, "inline policy missing");
        assert_eq!(changes[3].live, "arn:aws:iam::aws:policy/AdministratorAccess");

        let mut live = in_sync(&p);
        live.inline = Some(function_policy("arn:aws:dynamodb:us-east-1:123456789012:table/other", FN_LOGS));
        let changes = diff(&p, &live);
        assert_eq!(changes.len(), 1);
        assert!(matches!(changes[0], RoleChange::Inline(_)));
    }

    #[test]
    fn a_role_without_the_stacks_boundary_is_drifted_and_the_boundary_goes_first() {
        let p = policies(&function_role());
        assert_eq!(p.boundary, "arn:aws:iam::123456789012:policy/movies-boundary");
        let mut live = in_sync(&p);
        live.boundary = None;
        live.inline = None;
        let changes = diff(&p, &live);
        assert!(matches!(changes[0], RoleChange::Boundary(_)), "{changes:?}");
        let shown = changes[0].show();
        assert_eq!((shown.field.as_str(), shown.live.as_str()), ("permissions_boundary", "none"));
        live.boundary = Some("arn:aws:iam::aws:policy/AdministratorAccess".into());
        assert!(matches!(diff(&p, &live)[0], RoleChange::Boundary(_)), "another boundary is drift too");
    }
}
