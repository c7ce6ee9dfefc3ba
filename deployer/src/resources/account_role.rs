//! The account-level API Gateway CloudWatch role: `GetAccount` / `UpdateAccount
//! /cloudwatchRoleArn`, an account+region singleton that stage access logging needs ("CloudWatch
//! Logs role ARN must be set in account settings to enable logging").
//!
//! Treated as a shared prerequisite, never as something a stack owns:
//! - a setting that is already there is never overwritten (aws/aws-cdk#10878: CDK stacks each
//!   overwrote it; the one deleted last broke logging for every API of the region);
//! - only an unset setting, or one pointing at a role that no longer exists, is (re)pointed at
//!   our shared role `movies-stack-apigateway-cloudwatch`, tagged `movies-stack:shared=true`
//!   and reused by every stack of the account;
//! - `down` never touches the setting nor the role (see [`Resource::delete`] below).

use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_iam::types::Tag;

use super::apigw::{self, SERVICE, found, replace};
use super::{Condition, Ctx, FieldChange, Grant, Id, Kind, LiveStates, Resource, Scope, iam_role};
use crate::aws::AwsResultExt;
use crate::cfn::{CfnResource, Import};
use crate::error::{Error, ErrorKind, Result};
use crate::wait::{backoff, pause, retry};
use serde_json::json;

pub const ID: Id<LiveAccount> = Id::new("apigw-account");
pub const ROLE_NAME: &str = "movies-stack-apigateway-cloudwatch";
/// Marks a resource shared by every stack of the account: reused, never deleted by `down`.
pub const TAG_SHARED: &str = "movies-stack:shared";
/// AWS's managed policy for exactly this role (API Gateway developer guide, "Permissions for
/// CloudWatch logging"). moto attaches it only when started with
/// MOTO_IAM_LOAD_MANAGED_POLICIES=true (the test fixture sets it).
pub const POLICY_NAME: &str = "service-role/AmazonAPIGatewayPushToCloudWatchLogs";

const TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"apigateway.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiGatewayAccount {
    /// `movies-stack-apigateway-cloudwatch` ([`ROLE_NAME`]).
    pub role_name: String,
    /// The permissions boundary the role is created with (a policy name of the account, see
    /// `iam_role::Role::boundary`). A role that exists already is used as it is.
    pub boundary: String,
}

/// The account setting as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveAccount {
    pub role_arn: String,
    /// Some(false): the role it points at is gone (IAM NoSuchEntity). None: not checked (a role
    /// of another account, or no iam:GetRole permission).
    pub role_exists: Option<bool>,
}

/// Pure. A set role is left alone unless it is known to be deleted.
pub fn diff(desired: &ApiGatewayAccount, live: &LiveAccount) -> Vec<FieldChange> {
    if live.role_exists == Some(false) {
        vec![FieldChange::update(
            "cloudwatch_role_arn",
            format!("role {}", desired.role_name),
            format!("{} (role deleted)", live.role_arn),
        )]
    } else {
        vec![]
    }
}

/// `arn:aws:iam::123456789012:role/some/path/name` → (`123456789012`, `name`).
fn role_of(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "iam" {
        return None;
    }
    let name = parts[5].strip_prefix("role/")?.rsplit('/').next()?;
    Some((parts[4], name))
}

fn shared_tags(ctx: &Ctx) -> Result<Vec<Tag>> {
    let mut pairs = ctx.tags(ID.name());
    pairs.push((TAG_SHARED.to_string(), "true".to_string()));
    pairs
        .into_iter()
        .map(|(k, v)| {
            Tag::builder().key(k).value(v).build().map_err(|e| Error::other(format!("internal: IAM tag: {e}")))
        })
        .collect()
}

impl ApiGatewayAccount {
    /// Best effort: is the role the account points at still there?
    async fn role_exists(&self, ctx: &Ctx, arn: &str) -> Option<bool> {
        let (account, name) = role_of(arn)?;
        if account != ctx.identity().await.ok()?.account {
            return None; // another account's role: we cannot look
        }
        match ctx.aws.iam.get_role().role_name(name).send().await.aws("IAM", "GetRole") {
            Ok(_) => Some(true),
            Err(e) if e.is_not_found() => Some(false),
            Err(e) => {
                ctx.warn(format!("could not check the API Gateway CloudWatch role {arn}: {e}"));
                None
            }
        }
    }

    /// Our shared role, created if missing (or reused), with the managed policy attached; and
    /// when this run wrote it (created it, or attached the policy), the time of that last write.
    async fn ensure_role(&self, ctx: &Ctx) -> Result<(String, Option<Instant>)> {
        let name = self.role_name.as_str();
        // Two passes at most: if another stack creates the role between our GetRole and our
        // CreateRole, the second pass finds it and applies the same checks.
        let mut attempts = 0;
        let mut written = None;
        let arn = loop {
            attempts += 1;
            let existing = found(ctx.aws.iam.get_role().role_name(name).send().await.aws("IAM", "GetRole"))?;
            if let Some(role) = existing.as_ref().and_then(|o| o.role()) {
                let tags = ctx.aws.iam.list_role_tags().role_name(name).send().await.aws("IAM", "ListRoleTags")?;
                if !tags.tags().iter().any(|t| t.key() == TAG_SHARED && t.value() == "true") {
                    return Err(Error::other(format!(
                        "IAM role `{name}` already exists but is not tagged {TAG_SHARED}=true: it belongs to something else. \
                         Point API Gateway's CloudWatch role at a role of your own (UpdateAccount /cloudwatchRoleArn), \
                         or delete that role"
                    )));
                }
                break role.arn().to_string();
            }
            ctx.check_cloudformation_owner("IAM role", name).await?;
            ctx.progress(ID, format!("creating the shared IAM role {name}"));
            let boundary =
                iam_role::boundary_arn(crate::aws::partition(&ctx.aws.region), ctx.account_id(), &self.boundary);
            let res = ctx
                .aws
                .iam
                .create_role()
                .role_name(name)
                .assume_role_policy_document(TRUST_POLICY)
                .description(
                    "Lets API Gateway write access and execution logs to CloudWatch Logs; shared by every \
                     movies-stack stack of the account, never deleted by `down`",
                )
                .permissions_boundary(&boundary)
                .set_tags(Some(shared_tags(ctx)?))
                .send()
                .await
                .aws("IAM", "CreateRole")
                .map_err(|e| iam_role::boundary_missing(e, &boundary));
            match res {
                Ok(out) => {
                    written = Some(Instant::now());
                    break out.role().map(|r| r.arn().to_string()).unwrap_or_default();
                }
                Err(e) if e.kind() == Some(ErrorKind::AlreadyExists) && attempts < 2 => continue,
                Err(e) => return Err(e),
            }
        };
        let policy_arn = format!("arn:{}:iam::aws:policy/{POLICY_NAME}", apigw::partition_of(&arn));
        // A role this run created has no policy attached yet: nothing to list.
        let attached = if written.is_some() {
            Vec::new()
        } else {
            ctx.aws
                .iam
                .list_attached_role_policies()
                .role_name(name)
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await
                .aws("IAM", "ListAttachedRolePolicies")?
        };
        if !attached.iter().any(|p| p.policy_arn() == Some(policy_arn.as_str())) {
            // Right after CreateRole, IAM's eventual consistency can answer NoSuchEntity for the
            // new role (as for PutRolePolicy in iam_role.rs). NoSuchEntity for the *policy* is
            // not going to change by waiting: said at once.
            retry(
                ctx,
                ID,
                "the new IAM role to be visible",
                &[ErrorKind::NotFound],
                ctx.timeouts.iam_propagation,
                backoff::STATE,
                || async {
                    ctx.aws
                        .iam
                        .attach_role_policy()
                        .role_name(name)
                        .policy_arn(&policy_arn)
                        .send()
                        .await
                        .aws("IAM", "AttachRolePolicy")
                        .map_err(policy_missing_is_final)
                },
            )
            .await?;
            written = Some(Instant::now());
        }
        Ok((arn, written))
    }

    async fn set_account_role(&self, ctx: &Ctx) -> Result<LiveAccount> {
        let (arn, written) = self.ensure_role(ctx).await?;
        if let Some(written) = written {
            // A role this run has just written is refused by UpdateAccount for a few seconds
            // (IAM propagation), and a refused call may still spend the operation's 1-per-20-s
            // quota: the retry would then wait a whole interval. Holding the first call for half
            // an interval from the role's last write costs less than losing one.
            let hold = ctx.apigw.interval("UpdateAccount") / 2;
            let left = hold.saturating_sub(written.elapsed());
            if !left.is_zero() {
                ctx.progress(ID, format!("waiting {left:.0?} for IAM to propagate the new role before UpdateAccount"));
                pause(ctx, "IAM propagation of the new role", left).await?;
            }
        }
        // Right after CreateRole / AttachRolePolicy, UpdateAccount answers "The role ARN does
        // not have required permissions set to API Gateway" for a while (terraform's
        // aws_api_gateway_account retries it for 2 minutes). UpdateAccount itself is limited to
        // 1 request / 20 s.
        retry(
            ctx,
            ID,
            "the new role to be usable by API Gateway (IAM propagation)",
            &[ErrorKind::Propagating],
            ctx.timeouts.iam_propagation,
            backoff::API_GATEWAY_ROLE,
            || async {
                apigw::call(ctx, ID, "UpdateAccount", || async {
                    ctx.aws
                        .apigateway
                        .update_account()
                        .patch_operations(replace("/cloudwatchRoleArn", &arn))
                        .send()
                        .await
                        .aws(SERVICE, "UpdateAccount")
                })
                .await
            },
        )
        .await?;
        Ok(LiveAccount { role_arn: arn, role_exists: Some(true) })
    }
}

#[async_trait]
impl Resource for ApiGatewayAccount {
    type Live = LiveAccount;
    type Change = FieldChange;

    fn id(&self) -> Id<LiveAccount> {
        ID
    }

    fn kind(&self) -> Kind {
        Kind::ApiGatewayAccount
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        let role = || [s.role(&self.role_name)];
        let boundary = || {
            let arn = iam_role::boundary_arn(s.partition(), s.account, &self.boundary);
            Condition::equals("iam:PermissionsBoundary", arn)
        };
        let policy = format!("arn:{}:iam::aws:policy/{POLICY_NAME}", s.partition());
        vec![
            // The account's role: created if the account has none, never changed or deleted
            // afterwards.
            Grant::new(
                "ApiGatewayCloudWatchRole",
                &["iam:GetRole", "iam:TagRole", "iam:ListRoleTags", "iam:ListAttachedRolePolicies"],
                role(),
            ),
            Grant::new("CreateApiGatewayCloudWatchRoleWithinTheBoundary", &["iam:CreateRole"], role()).when(boundary()),
            // API Gateway may point at any role of the account: `up` checks it still exists
            // (read only).
            Grant::new("CheckTheAccountsCloudWatchRole", &["iam:GetRole"], [s.role("*")]),
            Grant::new("ApiGatewayCloudWatchRolePolicy", &["iam:AttachRolePolicy"], role())
                .when(Condition::one("ArnEquals", "iam:PolicyARN", policy))
                .when(boundary()),
            Grant::new("PassTheCloudWatchRoleToApiGateway", &["iam:PassRole"], role())
                .when(Condition::equals("iam:PassedToService", "apigateway.amazonaws.com")),
            Grant::new(
                "ApiGatewayAccountSettings",
                &["apigateway:GET", "apigateway:PATCH"],
                [s.apigateway("/account")],
            ),
        ]
    }

    fn create_rounds(&self) -> u32 {
        4 // GetRole, CreateRole, AttachRolePolicy, UpdateAccount
    }

    fn delete_rounds(&self) -> u32 {
        0 // never deleted: shared by the account
    }

    fn export(&self, _ctx: &Ctx, live: &LiveAccount) -> Vec<CfnResource> {
        let import = Import::Not {
            why: format!(
                "API Gateway's CloudWatch role is a setting of the whole account and region, shared by every API in it, \
                 and its role `{}` by every movies-stack stack of the account: not this stack's to own",
                self.role_name
            ),
            instead: "nothing: leave it out of the stack. It stays set when the stack goes. If CloudFormation is to \
                      manage it, declare it in one stack of the account only (each stack that declares it overwrites \
                      it, and the last one deleted breaks logging for every API: aws/aws-cdk#10878)"
                .to_string(),
            later: false,
        };
        vec![CfnResource::new(ID, "AWS::ApiGateway::Account", json!({ "CloudWatchRoleArn": live.role_arn }), import)]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveAccount>> {
        let account = apigw::call(ctx, ID, "GetAccount", || async {
            ctx.aws.apigateway.get_account().send().await.aws(SERVICE, "GetAccount")
        })
        .await?;
        let Some(arn) = account.cloudwatch_role_arn().filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        Ok(Some(LiveAccount { role_arn: arn.to_string(), role_exists: self.role_exists(ctx, arn).await }))
    }

    fn diff(&self, _ctx: &Ctx, _inputs: &LiveStates, live: &LiveAccount) -> Result<Vec<FieldChange>> {
        Ok(diff(self, live))
    }

    async fn create(&self, ctx: &Ctx, _inputs: &LiveStates) -> Result<LiveAccount> {
        self.set_account_role(ctx).await
    }

    /// Only reached when the account points at a deleted role: repoint it at ours.
    async fn update(
        &self,
        ctx: &Ctx,
        _inputs: &LiveStates,
        _live: &LiveAccount,
        _changes: &[FieldChange],
    ) -> Result<LiveAccount> {
        self.set_account_role(ctx).await
    }

    /// Does NOTHING, on purpose: the account setting and the shared role serve every API of the
    /// account and region (other stacks, other tools). Resetting or deleting them on `down`
    /// would break their access logging (aws/aws-cdk#10878, #6194).
    async fn delete(&self, _ctx: &Ctx, _live: &LiveAccount) -> Result<()> {
        Ok(())
    }
}

/// AttachRolePolicy answers NoSuchEntity both for a role IAM does not show yet (worth waiting for)
/// and for a policy that does not exist ("Policy arn:... does not exist or is not attachable.",
/// e.g. a partition without it, or an emulator started without AWS's managed policies): the
/// latter is final.
fn policy_missing_is_final(e: Error) -> Error {
    match e {
        Error::Aws(aws) if aws.message.contains("does not exist or is not attachable") => {
            Error::Aws(crate::error::AwsError { kind: ErrorKind::Fatal, ..aws })
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> ApiGatewayAccount {
        ApiGatewayAccount { role_name: ROLE_NAME.into(), boundary: "b".into() }
    }

    #[test]
    fn a_set_role_is_never_changed_unless_deleted() {
        let arn = "arn:aws:iam::123456789012:role/someone-elses-role".to_string();
        for (exists, changes) in [(Some(true), 0), (None, 0), (Some(false), 1)] {
            let live = LiveAccount { role_arn: arn.clone(), role_exists: exists };
            assert_eq!(diff(&desired(), &live).len(), changes, "{exists:?}");
        }
    }

    #[test]
    fn role_arns_are_parsed() {
        assert_eq!(role_of("arn:aws:iam::123456789012:role/r"), Some(("123456789012", "r")));
        assert_eq!(role_of("arn:aws:iam::123456789012:role/service-role/x/r"), Some(("123456789012", "r")));
        assert_eq!(role_of("arn:aws:iam::123456789012:user/u"), None);
        assert_eq!(role_of("not an arn"), None);
    }

    #[test]
    fn trust_policy_is_for_api_gateway() {
        let v: serde_json::Value = serde_json::from_str(TRUST_POLICY).unwrap();
        assert_eq!(v["Statement"][0]["Principal"]["Service"], "apigateway.amazonaws.com");
    }
}
