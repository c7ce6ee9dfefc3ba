//! `movies-stack iam-policy`: the least-privilege IAM policy for running movies-stack on this
//! stack (see `iam_policy.rs`). Needs no permission itself: only STS GetCallerIdentity (which
//! IAM cannot deny) when `--account` is not given.

use std::sync::Arc;

use crate::aws::{AwsResultExt, AwsSettings, Clients};
use crate::cli::IamPolicyArgs;
use crate::config::Config;
use crate::error::{Result, exit};
use crate::iam_policy::{Scope, policy};
use crate::ui::Printer;

pub async fn run(
    config: &Config,
    settings: &AwsSettings,
    args: &IamPolicyArgs,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let aws = Clients::new(settings, Some(printer.clone())).await?;
    let account = account_id(&aws, args.account.as_deref()).await?;
    let doc = policy(&Scope { config, region: &aws.region, account: &account });
    printer.out(&serde_json::to_string_pretty(&doc).expect("a JSON value serializes"));
    Ok(exit::OK)
}

/// The account a policy is printed for: `--account`, else the caller's (STS GetCallerIdentity).
pub async fn account_id(aws: &Clients, given: Option<&str>) -> Result<String> {
    Ok(match given {
        Some(a) => a.to_string(),
        None => {
            let id = aws.sts.get_caller_identity().send().await.aws("STS", "GetCallerIdentity")?;
            id.account().unwrap_or_default().to_string()
        }
    })
}
