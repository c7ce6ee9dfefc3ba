//! `movies-stack unlock --force`: remove the stack's lock, e.g. after a run on another machine
//! died (a run on this machine that died is detected and its lock taken over automatically).

use std::sync::Arc;

use crate::cli::UnlockArgs;
use crate::config::Config;
use crate::error::{Error, Result, exit};
use crate::ui::Printer;

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &UnlockArgs,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let ctx = super::connect(settings, config, printer.clone(), false).await?;
    super::who_am_i(&ctx, settings).await?;
    if !args.force {
        let holder = crate::lock::read(&ctx).await.unwrap_or(None);
        return Err(Error::input(match holder {
            Some(h) => format!("stack {} is locked by {}; pass --force to remove the lock", config.stack, h.describe()),
            None => format!("stack {} is not locked; nothing to do (unlock needs --force)", config.stack),
        }));
    }
    let holder = crate::lock::force_unlock(&ctx).await?;
    match holder {
        Some(h) => ctx.info(format!("unlock: removed the lock of stack {} held by {}", config.stack, h.describe())),
        None => ctx.info(format!("unlock: stack {} was not locked", config.stack)),
    }
    Ok(exit::OK)
}
