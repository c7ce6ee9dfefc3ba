//! `movies-stack unlock --force`: remove the stack's lock, e.g. after a run on another machine
//! died (a run on this machine that died is detected and its lock taken over automatically).
//! Only the run it names is removed: a lock that changed hands since it was read is left alone.

use std::sync::Arc;

use crate::cli::UnlockArgs;
use crate::config::Config;
use crate::ctx::Timeouts;
use crate::error::{Error, Result, exit};
use crate::session::{CtrlC, Session};
use crate::ui::Printer;

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &UnlockArgs,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let session = Session::open(settings, config, printer.clone(), CtrlC::Exits, Timeouts::default()).await?;
    let ctx = session.ctx.clone();
    session.who_am_i().await?;
    let holder = crate::lock::read(&ctx).await?;
    let Some(holder) = holder else {
        if !args.force {
            return Err(Error::input(format!(
                "stack {} is not locked; nothing to do (unlock needs --force)",
                config.stack
            )));
        }
        ctx.info(format!("unlock: stack {} was not locked", config.stack));
        return Ok(exit::OK);
    };
    if !args.force {
        return Err(Error::input(format!(
            "stack {} is locked by {}; pass --force to remove the lock",
            config.stack,
            holder.describe()
        )));
    }
    crate::lock::force_unlock(&ctx, &holder).await?;
    ctx.info(format!("unlock: removed the lock of stack {} held by {}", config.stack, holder.describe()));
    Ok(exit::OK)
}
