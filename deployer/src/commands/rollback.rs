//! `movies-stack rollback [--to VERSION]`: point the alias `live` back, in one UpdateAlias, under
//! the stack's lock (an `up` in flight is not raced). Without `--to`: the newest version before
//! the live one that was not rolled back itself.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Output, RollbackArgs};
use crate::config::Config;
use crate::ctx::Timeouts;
use crate::error::{Error, Result, exit};
use crate::resources::function_alias;
use crate::session::{CtrlC, Session};
use crate::ui::Printer;

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &RollbackArgs,
    output: Output,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let session = Session::open(settings, config, printer.clone(), CtrlC::Exits, Timeouts::default()).await?;
    let ctx = session.ctx.clone();
    session.who_am_i().await?;
    let lock = crate::lock::acquire(
        ctx.clone(),
        "rollback",
        Duration::from_secs(args.lock_timeout),
        // The lease `up` takes by default: one UpdateAlias needs far less.
        Duration::from_secs(60),
    )
    .await?;
    let alias = crate::stack::deployed_alias(config);
    let done = async {
        let (live, _) = alias.read(&ctx).await?;
        let live = live.ok_or_else(|| {
            Error::other(format!(
                "function {} has no alias `{}`: nothing is deployed yet (`movies-stack up`)",
                config.function.name,
                function_alias::ALIAS
            ))
        })?;
        alias.rollback(&ctx, &live, args.to).await
    }
    .await;
    let fenced = session.close(lock).await;
    let (from, to) = done.map_err(|e| match e {
        Error::Input(_) => e,
        e => e.for_resource(function_alias::ID),
    })?;
    if let Some(e) = fenced {
        return Err(e);
    }
    match output {
        Output::Json => printer.out(
            &serde_json::json!({"stack": config.stack, "alias": function_alias::ALIAS, "from": from, "live": to})
                .to_string(),
        ),
        Output::Human => printer.out(&format!(
            "rolled back: version {to} of {} is live (was {from}); `movies-stack history` lists the deploys",
            config.function.name
        )),
    }
    Ok(exit::OK)
}
