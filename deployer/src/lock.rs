//! The per-stack lock, held in AWS so that two machines cannot run `up`/`down` on one stack at
//! once: one item per stack in a small DynamoDB table (`movies-stack-locks`, created on first
//! use), taken with a conditional PutItem (absent or released), renewed while the run lasts (a
//! lease: each renewal bumps the item's `version`), and released only by its holder (a
//! conditional UpdateItem that ends the lease and says when: the next holder learns whether the
//! stack changed while it was looking). Read-only commands take no lock.
//!
//! No decision compares two machines' clocks:
//! - **The holder fences itself.** Its changes stop (the [`Fence`] on every stack client) once
//!   its last successful renewal, timed on its own monotonic clock from before the request was
//!   sent, is older than the lease minus a margin; and at once when a renewal finds the lock
//!   taken. The command then exits 4 saying so.
//! - **The taker judges expiry on its own monotonic clock.** A lock whose item (its run and
//!   `version`) stayed the same for the holder's whole lease, as the taker watched it, is expired;
//!   it is taken with a condition on exactly that run and version. The holder stopped changing the
//!   stack a margin before.
//! - **A dead local holder** is taken over at once, but only when it is certainly dead: same boot
//!   (`/proc/sys/kernel/random/boot_id`), same PID namespace, and its PID gone or reused (another
//!   process start time). Where that cannot be known (no `/proc`: macOS), a live lease is never
//!   taken early.
//! - **`unlock --force`** deletes only the run it showed (a conditional DeleteItem).
//!
//! The lock is taken at the same time as the discovery sweep (one round trip instead of two).
//! That sweep may have looked while the previous holder was still writing: when the previous
//! hold ended less than [`SETTLED`] before the sweep began (or was taken over),
//! [`LockGuard::may_have_changed_since`] says so and the command looks again, unless the previous
//! run vouches for what the sweep saw: it released the lock having converged the stack to the very
//! state this run wants (the same digest, [`LockGuard::converged`]) and the sweep found the stack
//! in that state. Its last writes only moved the stack toward that state, so a sweep that finds
//! it there saw nothing to be overtaken; a difference is looked at again (it may be a read that
//! came before a write, or an eventually consistent read).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, Tag,
};

use crate::aws::AwsResultExt;
use crate::ctx::Ctx;
use crate::error::{Error, ErrorKind, Result};
use crate::grant::{Condition, Grant, Scope};
use crate::ids::Name;
use crate::wait::{backoff, wait_until};

pub const TABLE: &str = "movies-stack-locks";
/// What the lock's progress lines are about.
const PROGRESS: Name = Name::of("lock");
/// The lease when none is given: a holder that stops renewing (killed, network gone) loses the
/// lock after this.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// The shortest lease `--lock-lease` accepts: renewals every third of it, the fence a sixth of
/// it before its end.
pub const MIN_LEASE: Duration = Duration::from_secs(6);
/// How long before the sweep a previous hold must have ended for the sweep to be trusted: the
/// previous holder's last writes precede its release; the margin covers clocks a little apart.
const SETTLED: Duration = Duration::from_secs(10);

/// How often the holder renews a lease.
fn renew_every(lease: Duration) -> Duration {
    lease / 3
}

/// How long after a successful renewal (timed from before it was sent) the holder may go on
/// changing the stack: the lease minus a sixth of it, for calls in flight when the fence shuts.
/// What the lock needs of the tool's policy. One table per account and region, shared by every
/// stack of it, and one item per stack: this stack's only (its partition key is the stack's name).
pub fn grants(s: &Scope) -> Vec<Grant> {
    let table = || [s.arn("dynamodb", &format!("table/{TABLE}"))];
    let item = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"];
    vec![
        Grant::new(
            "TheLockTable",
            &["dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:TagResource"],
            table(),
        ),
        Grant::new("TheStacksLockItem", &item, table()).when(Condition::any_of(
            "ForAllValues:StringEquals",
            "dynamodb:LeadingKeys",
            [s.config.stack.clone()],
        )),
    ]
}

pub fn safe_for(lease: Duration) -> Duration {
    lease - lease / 6
}

/// What tells a process of this machine from any other: the kernel's boot, the PID namespace,
/// and the process's start time (PIDs are reused). Linux only (`/proc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub boot_id: String,
    pub pid_ns: String,
    /// Clock ticks after boot (`/proc/PID/stat`, field 22).
    pub start: u64,
}

impl ProcessIdentity {
    /// The identity of `pid` (`self` for this process) as the `proc` file system tells it.
    fn read(proc: &Path, pid: &str) -> Option<ProcessIdentity> {
        let boot_id = std::fs::read_to_string(proc.join("sys/kernel/random/boot_id")).ok()?.trim().to_string();
        let pid_ns = std::fs::read_link(proc.join(pid).join("ns/pid")).ok()?.to_string_lossy().into_owned();
        let start = start_time(proc, pid)?;
        (!boot_id.is_empty()).then_some(ProcessIdentity { boot_id, pid_ns, start })
    }
}

/// A process's start time, from `/proc/PID/stat` (the command name may hold spaces and
/// parentheses: the fields are counted after its last `)`).
fn start_time(proc: &Path, pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(proc.join(pid).join("stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name; field 22 (starttime) the 20th.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Who holds (or wants) the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub run_id: String,
    pub who: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    /// Unix seconds, on the holder's clock (said, never compared).
    pub started_at: u64,
    pub expires_at: u64,
    /// Bumped by every renewal: what a taker watches.
    pub version: u64,
    /// The holder's lease: how long its item must stay unchanged before another run takes it.
    pub lease: Duration,
    /// `None`: not known (no `/proc`), or written by an older version of the tool.
    pub identity: Option<ProcessIdentity>,
}

impl Holder {
    fn me(command: &str, lease: Duration) -> Holder {
        Holder::me_in(Path::new("/proc"), command, lease)
    }

    fn me_in(proc: &Path, command: &str, lease: Duration) -> Holder {
        let host = std::fs::read_to_string(proc.join("sys/kernel/hostname"))
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
            expires_at: now + lease.as_secs(),
            version: 1,
            lease,
            identity: ProcessIdentity::read(proc, "self"),
        }
    }

    fn item(&self, stack: &str) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([
            ("stack".to_string(), AttributeValue::S(stack.to_string())),
            ("run_id".to_string(), AttributeValue::S(self.run_id.clone())),
            ("who".to_string(), AttributeValue::S(self.who.clone())),
            ("host".to_string(), AttributeValue::S(self.host.clone())),
            ("pid".to_string(), AttributeValue::N(self.pid.to_string())),
            ("command".to_string(), AttributeValue::S(self.command.clone())),
            ("started_at".to_string(), AttributeValue::N(self.started_at.to_string())),
            ("expires_at".to_string(), AttributeValue::N(self.expires_at.to_string())),
            ("version".to_string(), AttributeValue::N(self.version.to_string())),
            ("lease_ms".to_string(), AttributeValue::N(self.lease.as_millis().to_string())),
        ]);
        if let Some(id) = &self.identity {
            item.insert("boot_id".into(), AttributeValue::S(id.boot_id.clone()));
            item.insert("pid_ns".into(), AttributeValue::S(id.pid_ns.clone()));
            item.insert("proc_start".into(), AttributeValue::N(id.start.to_string()));
        }
        item
    }

    fn from_item(item: &HashMap<String, AttributeValue>) -> Holder {
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let n = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u64>().ok());
        let identity = match (s("boot_id"), s("pid_ns"), n("proc_start")) {
            (Some(boot_id), Some(pid_ns), Some(start)) => Some(ProcessIdentity { boot_id, pid_ns, start }),
            _ => None,
        };
        Holder {
            run_id: s("run_id").unwrap_or_default(),
            who: s("who").unwrap_or_default(),
            host: s("host").unwrap_or_default(),
            pid: n("pid").unwrap_or(0) as u32,
            command: s("command").unwrap_or_default(),
            started_at: n("started_at").unwrap_or(0),
            expires_at: n("expires_at").unwrap_or(0),
            version: n("version").unwrap_or(0),
            lease: n("lease_ms").map(Duration::from_millis).unwrap_or(DEFAULT_LEASE),
            identity,
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

    /// The holder is certainly a process of this machine that no longer runs: same boot, same
    /// PID namespace, and its PID gone or now another process. Unknown identities (no `/proc`
    /// here or there) are never dead.
    fn is_dead_local_process(&self, mine: Option<&ProcessIdentity>, proc: &Path) -> bool {
        let (Some(theirs), Some(mine)) = (&self.identity, mine) else { return false };
        if theirs.boot_id != mine.boot_id || theirs.pid_ns != mine.pid_ns || self.pid == 0 {
            return false;
        }
        start_time(proc, &self.pid.to_string()) != Some(theirs.start)
    }

    /// The condition that matches exactly this holder's item, as it was read (`#v`: `version`,
    /// which DynamoDB may reserve).
    fn is_still(&self) -> (&'static str, Vec<(&'static str, AttributeValue)>) {
        let run = (":run", AttributeValue::S(self.run_id.clone()));
        if self.version == 0 {
            ("run_id = :run AND attribute_not_exists(#v)", vec![run])
        } else {
            ("run_id = :run AND #v = :version", vec![run, (":version", AttributeValue::N(self.version.to_string()))])
        }
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A held lock. Renewed in the background; released by [`LockGuard::release`].
pub struct LockGuard {
    ctx: Arc<Ctx>,
    me: Holder,
    renewer: tokio::task::JoinHandle<()>,
    /// When the previous hold ended (released, or its lease ran out), Unix seconds; `None` when
    /// nobody held it before.
    previous_end: Option<u64>,
    /// Taken over from a dead or expired run: it stopped writing at an unknown moment.
    took_over: bool,
    /// The digest of the state the previous holder converged the stack to, when it released the
    /// lock having converged it.
    previous_converged: Option<String>,
    /// The digest of the state this run converged the stack to, written at release.
    converged: Option<String>,
}

impl LockGuard {
    /// Whether another run may have changed the stack after `since` (Unix seconds): what was
    /// observed before taking the lock must then be observed again.
    pub fn may_have_changed_since(&self, since: u64) -> bool {
        self.took_over || self.previous_end.is_some_and(|end| end + SETTLED.as_secs() >= since)
    }

    /// Whether the previous holder released the lock having converged the stack to `digest`.
    pub fn previous_converged_to(&self, digest: &str) -> bool {
        !self.took_over && self.previous_converged.as_deref() == Some(digest)
    }

    /// This run converged the stack to the state `digest` names: the next holder may trust a
    /// sweep that finds that state ([`LockGuard::previous_converged_to`]).
    pub fn converged(&mut self, digest: String) {
        self.converged = Some(digest);
    }

    /// Why this run stopped changing the stack (its lease ran out unrenewed, or the lock was
    /// taken away), if it did.
    pub fn fenced(&self) -> Option<String> {
        self.ctx.aws.fence.closed()
    }

    /// End the lease now, and say when (the next holder reads it).
    pub async fn release(self) -> Result<()> {
        self.renewer.abort();
        let update = self
            .ctx
            .aws
            .lock_dynamodb
            .update_item()
            .table_name(TABLE)
            .key("stack", AttributeValue::S(self.ctx.stack.clone()))
            .condition_expression("run_id = :me")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":now", AttributeValue::N(now().to_string()))
            .expression_attribute_values(":me", AttributeValue::S(self.me.run_id.clone()));
        // What this run converged the stack to, for the next holder's sweep.
        let update = match &self.converged {
            Some(digest) => update
                .update_expression("SET expires_at = :zero, released_at = :now, converged = :digest")
                .expression_attribute_values(":digest", AttributeValue::S(digest.clone())),
            None => update.update_expression("SET expires_at = :zero, released_at = :now"),
        };
        let res = update.send().await.aws("DynamoDB", "UpdateItem");
        // The lease is over: the fence no longer times it (a lock taken away stays lost).
        self.ctx.aws.fence.release();
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
            ctx.progress(PROGRESS, format!("creating the lock table {TABLE} (first use in this account and region)"));
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
        PROGRESS,
        "the lock table to be ACTIVE",
        ctx.timeouts.resource_ready,
        backoff::SETTLING,
        || async {
            let out = ddb.describe_table().table_name(TABLE).send().await.aws("DynamoDB", "DescribeTable")?;
            Ok(out.table().and_then(|t| t.table_status()).filter(|s| s.as_str() == "ACTIVE").map(|_| ()))
        },
    )
    .await?;
    Ok(())
}

/// Take the stack's lock, waiting up to `wait` for another holder to finish; this run's lease is
/// `lease`. Usually one call (a conditional PutItem): the table is created only when that call
/// says it does not exist, and the holder is read only when it says the lock is taken.
pub async fn acquire(ctx: Arc<Ctx>, command: &str, wait: Duration, lease: Duration) -> Result<LockGuard> {
    let mut noted = false;
    let started = Instant::now();
    let mut me = Holder::me(command, lease);
    let proc = Path::new("/proc");
    // The holder being watched, and since when (this run's clock) its item has not changed.
    let mut watched: Option<(Holder, Instant)> = None;
    // Set when the holder is dead or expired: take over exactly that holder's item.
    let mut take_over: Option<(Holder, &'static str)> = None;
    loop {
        me.expires_at = now() + lease.as_secs();
        let mut put = ctx
            .aws
            .lock_dynamodb
            .put_item()
            .table_name(TABLE)
            .set_item(Some(me.item(&ctx.stack)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld);
        put = match &take_over {
            Some((h, _)) => {
                let (condition, values) = h.is_still();
                let put = put.condition_expression(condition).expression_attribute_names("#v", "version");
                values.into_iter().fold(put, |p, (k, v)| p.expression_attribute_values(k, v))
            }
            None => put
                .condition_expression("attribute_not_exists(#s) OR attribute_exists(released_at)")
                .expression_attribute_names("#s", "stack"),
        };
        let sent = Instant::now();
        match put.send().await.aws("DynamoDB", "PutItem") {
            Ok(out) => {
                ctx.aws.fence.hold(sent, safe_for(lease));
                let took_over = take_over.is_some();
                if let Some((h, why)) = take_over {
                    ctx.warn(format!("took over the lock of a run that {why}: {}", h.describe()));
                }
                // The previous hold ended when it was released, else when its lease ran out.
                let previous_end = out.attributes().map(|old| {
                    let n = |k: &str| old.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
                    n("released_at").unwrap_or_else(|| n("expires_at").unwrap_or(0))
                });
                if noted {
                    ctx.progress(PROGRESS, "acquired");
                }
                let previous_converged =
                    out.attributes().and_then(|old| old.get("converged")).and_then(|v| v.as_s().ok()).cloned();
                let renewer = tokio::spawn(renew(ctx.clone(), me.run_id.clone(), lease));
                return Ok(LockGuard {
                    ctx,
                    me,
                    renewer,
                    previous_end,
                    took_over,
                    previous_converged,
                    converged: None,
                });
            }
            // No lock table in this account and region yet (or still being created).
            Err(e) if e.is_not_found() => {
                ensure_table(&ctx).await?;
                noted = true;
            }
            Err(e) if is_condition_failed(&e) => {
                take_over = None;
                // Released or deleted in between: try again at once.
                let Some(holder) = read(&ctx).await? else { continue };
                if holder.is_dead_local_process(me.identity.as_ref(), proc) {
                    take_over = Some((holder, "is no longer running"));
                    continue;
                }
                let since = match watched.take() {
                    Some((w, since)) if w.run_id == holder.run_id && w.version == holder.version => since,
                    _ => Instant::now(),
                };
                let unchanged = since.elapsed();
                if unchanged >= holder.lease {
                    take_over = Some((
                        holder.clone(),
                        "stopped renewing its lease (its lock did not change for its whole lease, on this machine's clock)",
                    ));
                    watched = Some((holder, since));
                    continue;
                }
                let desc = holder.describe();
                let lease_s = holder.lease.as_secs();
                watched = Some((holder, since));
                if started.elapsed() >= wait {
                    return Err(Error::Locked(format!(
                        "stack {} is locked by {desc}; a run that stops renewing its lock loses it once the lock stays \
                         unchanged for its {lease_s} s lease. Wait for it (--lock-timeout {}), or if that run is gone: \
                         movies-stack unlock --force",
                        ctx.stack,
                        lease_s + 10
                    )));
                }
                ctx.progress(PROGRESS, format!("waiting for the lock held by {desc}"));
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

/// Renew the lease every third of it, each renewal bumping the item's version; a renewal that
/// succeeds moves the fence on (timed from before it was sent), one that finds the lock taken
/// shuts it for good.
async fn renew(ctx: Arc<Ctx>, run_id: String, lease: Duration) {
    loop {
        tokio::time::sleep(renew_every(lease)).await;
        let sent = Instant::now();
        let res = ctx
            .aws
            .lock_dynamodb
            .update_item()
            .table_name(TABLE)
            .key("stack", AttributeValue::S(ctx.stack.clone()))
            .update_expression("SET expires_at = :exp ADD #v :one")
            .expression_attribute_names("#v", "version")
            .condition_expression("run_id = :me")
            .expression_attribute_values(":exp", AttributeValue::N((now() + lease.as_secs()).to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":me", AttributeValue::S(run_id.clone()))
            .send()
            .await
            .aws("DynamoDB", "UpdateItem");
        match res {
            Ok(_) => ctx.aws.fence.hold(sent, safe_for(lease)),
            Err(e) if is_condition_failed(&e) => {
                ctx.aws.fence.lose("another run took its lock (unlock --force, or its lease ran out unrenewed)");
                ctx.warn("the stack lock was taken away from this run: it makes no further change");
                return;
            }
            // A transient failure: try again next round; the fence says when to stop.
            Err(e) => ctx.warn(format!(
                "could not renew the stack lock ({e}); this run stops changing the stack if that lasts {} s",
                safe_for(lease).as_secs()
            )),
        }
    }
}

/// The current holder, if any: an item whose lease was not released (however old: only its
/// holder, a taker that watched it for a whole lease, or `unlock --force` ends it).
pub async fn read(ctx: &Ctx) -> Result<Option<Holder>> {
    let res = ctx
        .aws
        .lock_dynamodb
        .get_item()
        .table_name(TABLE)
        .key("stack", AttributeValue::S(ctx.stack.clone()))
        .consistent_read(true)
        .send()
        .await
        .aws("DynamoDB", "GetItem");
    match res {
        Ok(out) => Ok(out.item().filter(|item| !item.contains_key("released_at")).map(Holder::from_item)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// `unlock --force`: remove the lock of the holder `shown` (what the user was told), and only
/// if it is still that run's: a lock that changed hands meanwhile is left, with an error.
pub async fn force_unlock(ctx: &Ctx, shown: &Holder) -> Result<()> {
    let res = ctx
        .aws
        .lock_dynamodb
        .delete_item()
        .table_name(TABLE)
        .key("stack", AttributeValue::S(ctx.stack.clone()))
        .condition_expression("run_id = :run AND attribute_not_exists(released_at)")
        .expression_attribute_values(":run", AttributeValue::S(shown.run_id.clone()))
        .send()
        .await
        .aws("DynamoDB", "DeleteItem");
    match res {
        Ok(_) => Ok(()),
        Err(e) if is_condition_failed(&e) => {
            let now = read(ctx).await.ok().flatten();
            Err(Error::Locked(format!(
                "the lock of stack {} changed since it was read (it was held by {}; now {}): nothing was removed. \
                 Look again and run unlock --force again if that run is gone",
                ctx.stack,
                shown.describe(),
                now.map(|h| format!("held by {}", h.describe())).unwrap_or_else(|| "released".into())
            )))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty directory of this test's own, removed at the end.
    struct Dir(std::path::PathBuf);
    impl Dir {
        fn new(name: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("movies-stack-lock-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A `proc` tree with one process `pid` started at `start`, booted as `boot`.
    fn fake_proc(dir: &Path, boot: &str, pids: &[(u32, u64)]) {
        std::fs::create_dir_all(dir.join("sys/kernel/random")).unwrap();
        std::fs::write(dir.join("sys/kernel/random/boot_id"), format!("{boot}\n")).unwrap();
        for (pid, start) in pids {
            let p = dir.join(pid.to_string());
            std::fs::create_dir_all(p.join("ns")).unwrap();
            let fields: Vec<String> = (3..=21).map(|i| i.to_string()).collect();
            std::fs::write(p.join("stat"), format!("{pid} (a (b) c) {} {start} 0 0\n", fields.join(" "))).unwrap();
        }
    }

    #[test]
    fn holder_round_trips_through_an_item() {
        let me = Holder::me("up", DEFAULT_LEASE);
        assert_eq!(Holder::from_item(&me.item("s")), me);
        assert!(me.describe().contains("`up`"));
        assert!(me.identity.is_some(), "Linux: this process has an identity");
    }

    #[test]
    fn the_start_time_is_field_22_whatever_the_command_name() {
        let dir = Dir::new("stat");
        fake_proc(dir.path(), "b1", &[(42, 987654)]);
        assert_eq!(start_time(dir.path(), "42"), Some(987654));
        assert_eq!(start_time(dir.path(), "43"), None);
        let real = start_time(Path::new("/proc"), "self").expect("this process's start time");
        assert_eq!(Some(real), ProcessIdentity::read(Path::new("/proc"), "self").map(|i| i.start));
    }

    #[test]
    fn a_live_local_process_is_not_dead_but_a_gone_or_reused_pid_is() {
        let proc = Path::new("/proc");
        let me = Holder::me("up", DEFAULT_LEASE);
        let mine = me.identity.clone();
        assert!(!me.is_dead_local_process(mine.as_ref(), proc), "this process is alive");
        let gone = Holder { pid: u32::MAX - 1, ..me.clone() };
        assert!(gone.is_dead_local_process(mine.as_ref(), proc), "no such PID");
        let id = mine.clone().unwrap();
        let reused = Holder { identity: Some(ProcessIdentity { start: id.start + 1, ..id.clone() }), ..me.clone() };
        assert!(reused.is_dead_local_process(mine.as_ref(), proc), "the PID is another process now");
        let other_boot =
            Holder { identity: Some(ProcessIdentity { boot_id: "x".into(), ..id.clone() }), ..gone.clone() };
        assert!(!other_boot.is_dead_local_process(mine.as_ref(), proc), "another machine (or boot) is never judged");
        let other_ns =
            Holder { identity: Some(ProcessIdentity { pid_ns: "pid:[1]".into(), ..id.clone() }), ..gone.clone() };
        assert!(!other_ns.is_dead_local_process(mine.as_ref(), proc), "another container's PIDs are not ours to read");
    }

    #[test]
    fn without_proc_a_live_lease_is_never_taken_early() {
        // macOS: no /proc, and zsh sets no HOSTNAME: every Mac is `unknown-host`.
        let nothing = Dir::new("empty");
        let mac = Holder::me_in(nothing.path(), "up", DEFAULT_LEASE);
        assert_eq!(mac.identity, None);
        let gone = Holder { pid: u32::MAX - 1, ..mac.clone() };
        assert!(!gone.is_dead_local_process(None, nothing.path()));
        assert!(!gone.is_dead_local_process(Holder::me("up", DEFAULT_LEASE).identity.as_ref(), Path::new("/proc")));
        // A record an older version wrote (host and PID only) is not judged either.
        let old = Holder::from_item(&HashMap::from([
            ("run_id".to_string(), AttributeValue::S("r".into())),
            ("host".to_string(), AttributeValue::S(mac.host.clone())),
            ("pid".to_string(), AttributeValue::N((u32::MAX - 1).to_string())),
        ]));
        assert_eq!((old.identity.clone(), old.version, old.lease), (None, 0, DEFAULT_LEASE));
        assert!(!old.is_dead_local_process(Holder::me("up", DEFAULT_LEASE).identity.as_ref(), Path::new("/proc")));
        assert_eq!(old.is_still().0, "run_id = :run AND attribute_not_exists(#v)");
    }

    #[test]
    fn the_fence_shuts_a_sixth_of_the_lease_before_its_end() {
        assert_eq!(safe_for(DEFAULT_LEASE), Duration::from_secs(50));
        assert_eq!(renew_every(DEFAULT_LEASE), Duration::from_secs(20));
        assert!(safe_for(MIN_LEASE) > renew_every(MIN_LEASE) * 2, "two renewals may fail before the fence shuts");
    }
}
