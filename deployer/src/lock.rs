//! The per-stack lock, held in AWS so that two machines cannot run `up`/`down` on one stack at
//! once: one item per stack in a small DynamoDB table (`movies-stack-locks`, created on first
//! use), taken with a conditional PutItem (absent, released or expired), renewed while the run
//! lasts (a lease), and released only by its holder (a conditional UpdateItem that ends the lease
//! and says when: the next holder learns whether the stack changed while it was looking).
//! `movies-stack unlock --force` removes it whoever holds it. Read-only commands take no lock.
//!
//! The lock is taken at the same time as the discovery sweep (one round trip instead of two).
//! That sweep may have looked while the previous holder was still writing: when the previous
//! hold ended less than [`SETTLED`] before the sweep began (or was taken over from a killed
//! run), [`LockGuard::may_have_changed_since`] says so and the command looks again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, Tag,
};

use crate::aws::AwsResultExt;
use crate::error::{Error, ErrorKind, Result};
use crate::resources::Ctx;
use crate::wait::{Backoff, wait_until};

pub const TABLE: &str = "movies-stack-locks";
/// The lease: a holder that stops renewing (killed, network gone) loses the lock after this.
const LEASE: Duration = Duration::from_secs(60);
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// How long before the sweep a previous hold must have ended for the sweep to be trusted: the
/// previous holder's last writes precede its release; the margin covers clocks a little apart.
const SETTLED: Duration = Duration::from_secs(10);

/// Who holds (or wants) the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub run_id: String,
    pub who: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    /// Unix seconds.
    pub started_at: u64,
    pub expires_at: u64,
}

impl Holder {
    fn me(command: &str) -> Holder {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown-host".into());
        let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
        let now = now();
        let pid = std::process::id();
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        Holder {
            run_id: format!("{host}-{pid}-{now}-{nanos}"),
            who: format!("{user}@{host}"),
            host,
            pid,
            command: command.to_string(),
            started_at: now,
            expires_at: now + LEASE.as_secs(),
        }
    }

    fn item(&self, stack: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("stack".to_string(), AttributeValue::S(stack.to_string())),
            ("run_id".to_string(), AttributeValue::S(self.run_id.clone())),
            ("who".to_string(), AttributeValue::S(self.who.clone())),
            ("host".to_string(), AttributeValue::S(self.host.clone())),
            ("pid".to_string(), AttributeValue::N(self.pid.to_string())),
            ("command".to_string(), AttributeValue::S(self.command.clone())),
            ("started_at".to_string(), AttributeValue::N(self.started_at.to_string())),
            ("expires_at".to_string(), AttributeValue::N(self.expires_at.to_string())),
        ])
    }

    fn from_item(item: &HashMap<String, AttributeValue>) -> Holder {
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let n = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0u64);
        Holder {
            run_id: s("run_id"),
            who: s("who"),
            host: s("host"),
            pid: n("pid") as u32,
            command: s("command"),
            started_at: n("started_at"),
            expires_at: n("expires_at"),
        }
    }

    /// "alice@laptop (pid 123, `up`, started 2026-11-25 19:00:00 UTC, 42 s ago)"
    pub fn describe(&self) -> String {
        let ago = now().saturating_sub(self.started_at);
        format!(
            "{} (pid {}, `{}`, started {} UTC, {ago} s ago)",
            self.who,
            self.pid,
            self.command,
            crate::clock::utc(self.started_at)
        )
    }

    /// The holder is a process on this machine that no longer exists: its lock is stale.
    fn is_dead_local_process(&self, my_host: &str) -> bool {
        self.host == my_host && self.pid != 0 && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A held lock. Renewed in the background; released by [`LockGuard::release`].
pub struct LockGuard {
    ctx: Arc<Ctx>,
    me: Holder,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
    /// When the previous hold ended (released, or its lease ran out), Unix seconds; `None` when
    /// nobody held it before.
    previous_end: Option<u64>,
    /// Taken over from a killed run of this machine: it stopped writing at an unknown moment.
    took_over: bool,
}

impl LockGuard {
    /// Whether another run may have changed the stack after `since` (Unix seconds): what was
    /// observed before taking the lock must then be observed again.
    pub fn may_have_changed_since(&self, since: u64) -> bool {
        self.took_over || self.previous_end.is_some_and(|end| end + SETTLED.as_secs() >= since)
    }

    /// Whether a renewal found the lock taken by someone else (`unlock --force`).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// End the lease now, and say when (the next holder reads it).
    pub async fn release(self) -> Result<()> {
        self.renewer.abort();
        let res = self
            .ctx
            .aws
            .lock_dynamodb
            .update_item()
            .table_name(TABLE)
            .key("stack", AttributeValue::S(self.ctx.stack.clone()))
            .update_expression("SET expires_at = :zero, released_at = :now")
            .condition_expression("run_id = :me")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":now", AttributeValue::N(now().to_string()))
            .expression_attribute_values(":me", AttributeValue::S(self.me.run_id.clone()))
            .send()
            .await
            .aws("DynamoDB", "UpdateItem");
        match res {
            Ok(_) => Ok(()),
            // Someone forced it away: nothing of ours to release.
            Err(e) if is_condition_failed(&e) || e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn is_condition_failed(e: &Error) -> bool {
    e.aws().is_some_and(|a| a.code.as_deref() == Some("ConditionalCheckFailedException"))
}

/// Create the lock table if needed (once per account and region), and wait until it is ACTIVE.
async fn ensure_table(ctx: &Ctx) -> Result<()> {
    let ddb = &ctx.aws.lock_dynamodb;
    match ddb.describe_table().table_name(TABLE).send().await.aws("DynamoDB", "DescribeTable") {
        Ok(out) if out.table().and_then(|t| t.table_status()).is_some_and(|s| s.as_str() == "ACTIVE") => {
            return Ok(());
        }
        Ok(_) => {}
        Err(e) if e.is_not_found() => {
            ctx.progress("lock", format!("creating the lock table {TABLE} (first use in this account and region)"));
            let created = ddb
                .create_table()
                .table_name(TABLE)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("stack")
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .map_err(|e| Error::other(e.to_string()))?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("stack")
                        .key_type(KeyType::Hash)
                        .build()
                        .map_err(|e| Error::other(e.to_string()))?,
                )
                // No stack tag: the table belongs to every stack of the account and region. (Tag
                // values allow only letters, digits, whitespace and `_ . : / = + - @`: DynamoDB
                // refuses anything else with "The Tag Value provided is invalid".)
                .tags(
                    Tag::builder()
                        .key("movies-stack:shared")
                        .value("lock-table")
                        .build()
                        .map_err(|e| Error::other(e.to_string()))?,
                )
                .send()
                .await
                .aws("DynamoDB", "CreateTable");
            match created {
                Ok(_) => {}
                // Another run created it at the same moment.
                Err(e) if e.kind() == Some(ErrorKind::Conflict) || e.kind() == Some(ErrorKind::AlreadyExists) => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    wait_until(
        ctx,
        "lock",
        "the lock table to be ACTIVE",
        ctx.timeouts.resource_ready,
        Backoff::new(500, 5000),
        || async {
            let out = ddb.describe_table().table_name(TABLE).send().await.aws("DynamoDB", "DescribeTable")?;
            Ok(out.table().and_then(|t| t.table_status()).filter(|s| s.as_str() == "ACTIVE").map(|_| ()))
        },
    )
    .await?;
    Ok(())
}

/// Take the stack's lock, waiting up to `wait` for another holder to finish. Usually one call
/// (a conditional PutItem): the table is created only when that call says it does not exist, and
/// the holder is read only when it says the lock is taken.
pub async fn acquire(ctx: Arc<Ctx>, command: &str, wait: Duration) -> Result<LockGuard> {
    let mut noted = false;
    let started = Instant::now();
    let mut me = Holder::me(command);
    // Set when the holder is a killed run of this machine: take over exactly that run's lock.
    let mut stale_run: Option<Holder> = None;
    loop {
        me.expires_at = now() + LEASE.as_secs();
        let mut put = ctx
            .aws
            .lock_dynamodb
            .put_item()
            .table_name(TABLE)
            .set_item(Some(me.item(&ctx.stack)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld);
        put = match &stale_run {
            Some(h) => put
                .condition_expression("run_id = :stale")
                .expression_attribute_values(":stale", AttributeValue::S(h.run_id.clone())),
            None => put
                .condition_expression("attribute_not_exists(#s) OR expires_at < :now")
                .expression_attribute_names("#s", "stack")
                .expression_attribute_values(":now", AttributeValue::N(now().to_string())),
        };
        match put.send().await.aws("DynamoDB", "PutItem") {
            Ok(out) => {
                let took_over = stale_run.is_some();
                if let Some(h) = stale_run {
                    ctx.warn(format!("took over the lock of a run that is no longer running: {}", h.describe()));
                }
                // The previous hold ended when it was released, else when its lease ran out.
                let previous_end = out.attributes().map(|old| {
                    let n = |k: &str| old.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
                    n("released_at").unwrap_or_else(|| n("expires_at").unwrap_or(0))
                });
                if noted {
                    ctx.progress("lock", "acquired");
                }
                let lost = Arc::new(AtomicBool::new(false));
                let renewer = tokio::spawn(renew(ctx.clone(), me.run_id.clone(), lost.clone()));
                return Ok(LockGuard { ctx, me, lost, renewer, previous_end, took_over });
            }
            // No lock table in this account and region yet (or still being created).
            Err(e) if e.is_not_found() => {
                ensure_table(&ctx).await?;
                noted = true;
            }
            Err(e) if is_condition_failed(&e) => {
                let holder = read(&ctx).await?;
                if let Some(h) = holder.as_ref().filter(|h| h.is_dead_local_process(&me.host)) {
                    stale_run = Some(h.clone());
                    continue;
                }
                stale_run = None;
                let desc = holder.as_ref().map(Holder::describe).unwrap_or_else(|| "another run".into());
                if started.elapsed() >= wait {
                    let expires = holder.map(|h| h.expires_at.saturating_sub(now())).unwrap_or(0);
                    return Err(Error::Locked(format!(
                        "stack {} is locked by {desc}; its lease expires in {expires} s unless renewed. \
                         Wait for it (--lock-timeout SECONDS), or if that run is gone: movies-stack unlock --force",
                        ctx.stack
                    )));
                }
                ctx.progress("lock", format!("waiting for the lock held by {desc}"));
                noted = true;
                tokio::time::sleep(
                    Duration::from_secs(2).min(wait.saturating_sub(started.elapsed()).max(Duration::from_millis(100))),
                )
                .await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn renew(ctx: Arc<Ctx>, run_id: String, lost: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let res = ctx
            .aws
            .lock_dynamodb
            .update_item()
            .table_name(TABLE)
            .key("stack", AttributeValue::S(ctx.stack.clone()))
            .update_expression("SET expires_at = :exp")
            .condition_expression("run_id = :me")
            .expression_attribute_values(":exp", AttributeValue::N((now() + LEASE.as_secs()).to_string()))
            .expression_attribute_values(":me", AttributeValue::S(run_id.clone()))
            .send()
            .await
            .aws("DynamoDB", "UpdateItem");
        match res {
            Ok(_) => {}
            Err(e) if is_condition_failed(&e) => {
                lost.store(true, Ordering::SeqCst);
                ctx.warn("the stack lock was taken away from this run (unlock --force?); finish or stop this run now");
                return;
            }
            // A transient failure: the lease still has 40 s; try again next round.
            Err(e) => ctx.warn(format!("could not renew the stack lock: {e}")),
        }
    }
}

/// The current holder, if any (a released or expired lease holds nothing).
pub async fn read(ctx: &Ctx) -> Result<Option<Holder>> {
    let res = ctx
        .aws
        .dynamodb
        .get_item()
        .table_name(TABLE)
        .key("stack", AttributeValue::S(ctx.stack.clone()))
        .consistent_read(true)
        .send()
        .await
        .aws("DynamoDB", "GetItem");
    match res {
        Ok(out) => Ok(out.item().map(Holder::from_item).filter(|h| h.expires_at > now())),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// `unlock --force`: remove the lock whoever holds it. Returns who held it.
pub async fn force_unlock(ctx: &Ctx) -> Result<Option<Holder>> {
    let holder = read(ctx).await?;
    if holder.is_some() {
        ctx.aws
            .dynamodb
            .delete_item()
            .table_name(TABLE)
            .key("stack", AttributeValue::S(ctx.stack.clone()))
            .send()
            .await
            .aws("DynamoDB", "DeleteItem")?;
    }
    Ok(holder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_round_trips_through_an_item() {
        let me = Holder::me("up");
        assert_eq!(Holder::from_item(&me.item("s")), me);
        assert!(me.describe().contains("`up`"));
    }

    #[test]
    fn a_live_local_process_is_not_stale_but_a_gone_one_is() {
        let me = Holder::me("up");
        assert!(!me.is_dead_local_process(&me.host), "this process is alive");
        let gone = Holder { pid: u32::MAX - 1, ..me.clone() };
        assert!(gone.is_dead_local_process(&me.host));
        assert!(!gone.is_dead_local_process("another-host"), "other machines' processes are not checked");
    }
}
