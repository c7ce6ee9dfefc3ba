//! `movies-stack smoke`: the deployed API, end to end (the check itself: `smoke_check.rs`,
//! shared with `up --smoke`).

use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Output, SmokeArgs};
use crate::config::Config;
use crate::ctx::Timeouts;
use crate::error::Result;
use crate::resources::{api_key, stage, table};
use crate::session::{CtrlC, Session};
use crate::smoke_check::{Target, check_url, smoke};
use crate::ui::Printer;

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &SmokeArgs,
    output: Output,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    if let Some(u) = &args.url {
        check_url("--url", u)?;
    }
    let session = Session::open(settings, config, printer.clone(), CtrlC::Exits, Timeouts::default()).await?;
    let ctx = session.ctx.clone();
    let live = session.observe_live(config, &[stage::ID.name(), api_key::STANDARD.name(), table::ID.name()]).await?;
    // Name what is missing precisely (missing vs unreadable) before testing anything.
    if args.url.is_none() {
        live.require(stage::ID)?;
    }
    live.require(api_key::STANDARD)?;
    let target = Target::from_outputs(
        config,
        &live.state,
        args.url.as_deref(),
        args.keep_item,
        Duration::from_secs(args.timeout),
    )?;
    let report = smoke(&ctx, &target).await?;
    match output {
        Output::Json => printer.out(&serde_json::to_string(&report).expect("report serializes")),
        Output::Human => printer.out(&report.human()),
    }
    Ok(report.exit_code())
}
