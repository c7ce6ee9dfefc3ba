//! `movies-stack iam-policy`: the least-privilege IAM policy for running movies-stack on this
//! stack (see `iam_policy.rs`). Needs no permission itself: only STS GetCallerIdentity (which
//! IAM cannot deny) when `--account` is not given.

use std::sync::Arc;

use crate::aws::{AwsSettings, Clients};
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
    let account = aws.account_id(args.account.as_deref()).await?;
    let doc = policy(&Scope { config, region: &aws.region, account: &account });
    printer.out(&serde_json::to_string_pretty(&doc).expect("a JSON value serializes"));
    Ok(exit::OK)
}
