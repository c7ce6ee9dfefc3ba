//! `movies-stack bootstrap`: the permissions boundary that caps every role the stack creates
//! (`iam_policy::boundary`), set up once per stack by an administrator, as `cdk bootstrap`
//! prepares an account, but holding nothing beyond what the stack's roles need.
//!
//! Without `--apply` it prints the boundary document (stdout) and changes nothing. With
//! `--apply` (administrator credentials) it creates the customer-managed policy, or, when its
//! default version differs, adds a version as the default (deleting the oldest other version
//! when the policy has IAM's maximum of five), or says it is up to date. The policy that
//! `iam-policy` prints can neither change nor remove it.

use std::sync::Arc;

use aws_sdk_iam::types::Tag;

use crate::aws::{AwsResultExt, AwsSettings, Clients};
use crate::cli::BootstrapArgs;
use crate::config::Config;
use crate::error::{Error, Result, exit};
use crate::events::Event;
use crate::iam_policy::{Scope, boundary, boundary_arn};
use crate::resources::TAG_STACK;
use crate::resources::iam_role::{self, parse_policy_document, same_policy};
use crate::ui::Printer;

/// IAM keeps at most five versions of a managed policy (IAM quotas).
const MAX_VERSIONS: usize = 5;

pub async fn run(
    config: &Config,
    settings: &AwsSettings,
    args: &BootstrapArgs,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let aws = Clients::new(settings, Some(printer.clone())).await?;
    let account = aws.account_id(args.account.as_deref()).await?;
    let scope = Scope { config, region: &aws.region, account: &account };
    let doc = boundary(&scope);
    let arn = boundary_arn(&scope);
    if !args.apply {
        printer.out(&serde_json::to_string_pretty(&doc).expect("a JSON value serializes"));
        printer.event(Event::Info(format!(
            "an administrator creates it as {arn}: `movies-stack --env ... bootstrap --apply`, or \
             `aws iam create-policy --policy-name {} --policy-document file://boundary.json`",
            iam_role::permissions_boundary_name(config)
        )));
        return Ok(exit::OK);
    }
    let said = apply(&aws, config, &arn, &doc).await?;
    printer.out(&said);
    Ok(exit::OK)
}

async fn apply(aws: &Clients, config: &Config, arn: &str, doc: &serde_json::Value) -> Result<String> {
    let name = iam_role::permissions_boundary_name(config);
    let existing = aws.iam.get_policy().policy_arn(arn).send().await.aws("IAM", "GetPolicy");
    let policy = match existing {
        Ok(out) => out.policy().cloned(),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    let Some(policy) = policy else {
        let tag = Tag::builder()
            .key(TAG_STACK)
            .value(&config.stack)
            .build()
            .map_err(|e| Error::other(format!("internal: IAM tag: {e}")))?;
        aws.iam
            .create_policy()
            .policy_name(&name)
            .policy_document(doc.to_string())
            .description(format!("movies-stack {}: permissions boundary of the roles the stack creates", config.stack))
            .tags(tag)
            .send()
            .await
            .aws("IAM", "CreatePolicy")?;
        return Ok(format!("created the permissions boundary {arn}"));
    };
    // A same-named policy that is not this stack's is never taken over.
    if !policy.tags().iter().any(|t| t.key() == TAG_STACK && t.value() == config.stack) {
        return Err(Error::other(format!(
            "IAM policy {arn} exists but is not tagged {TAG_STACK}={}: it belongs to something else. Delete or \
             rename it, or choose another stack name",
            config.stack
        )));
    }
    let default = policy.default_version_id().unwrap_or_default().to_string();
    let live = aws
        .iam
        .get_policy_version()
        .policy_arn(arn)
        .version_id(&default)
        .send()
        .await
        .aws("IAM", "GetPolicyVersion")?;
    let live_doc = parse_policy_document(live.policy_version().and_then(|v| v.document()).unwrap_or_default());
    if same_policy(doc, &live_doc) {
        return Ok(format!("the permissions boundary {arn} is up to date ({default})"));
    }
    let versions = aws.iam.list_policy_versions().policy_arn(arn).send().await.aws("IAM", "ListPolicyVersions")?;
    let mut others: Vec<_> = versions.versions().iter().filter(|v| !v.is_default_version()).collect();
    if versions.versions().len() >= MAX_VERSIONS {
        others.sort_by_key(|v| v.create_date().map(|d| d.secs()).unwrap_or_default());
        if let Some(oldest) = others.first().and_then(|v| v.version_id()) {
            aws.iam
                .delete_policy_version()
                .policy_arn(arn)
                .version_id(oldest)
                .send()
                .await
                .aws("IAM", "DeletePolicyVersion")?;
        }
    }
    let out = aws
        .iam
        .create_policy_version()
        .policy_arn(arn)
        .policy_document(doc.to_string())
        .set_as_default(true)
        .send()
        .await
        .aws("IAM", "CreatePolicyVersion")?;
    let version = out.policy_version().and_then(|v| v.version_id()).unwrap_or_default();
    Ok(format!("updated the permissions boundary {arn} (default version now {version}, was {default})"))
}
