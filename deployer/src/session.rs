//! A command's session with AWS, read top to bottom: [`Session::open`] (the clients and the
//! context, every setting resolved, no call yet), then the command's pass ([`Session::sweep`]:
//! who we are, the stack's lock and what the stack owns, all at once; or
//! [`Session::observe_live`] for the operating commands), then [`Session::close`] (the lock
//! released). Commands compose these; none returns to a shared hub of its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::aws::{AwsSettings, Clients};
use crate::config::Config;
use crate::ctx::{Ctx, Timeouts};
use crate::error::{Error, ErrorKind, Result, exit};
use crate::events::{Event, Phase};
use crate::graph::{Found, Graph};
use crate::ids::{Id, Name};
use crate::lock::LockGuard;
use crate::pacer::Pacer;
use crate::resources::LiveStates;
use crate::ui::Printer;

/// What Ctrl-C does during the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtrlC {
    /// Nothing new starts, calls in flight finish, waits stop (`up`, `down`); a second Ctrl-C
    /// ends the process at once.
    Graceful,
    /// It ends the process as usual: read-only commands have nothing to finish.
    Exits,
}

/// The stack's lock, for a command that changes the stack.
#[derive(Debug, Clone)]
pub struct LockRequest {
    /// The command's name, recorded in the lock.
    pub command: &'static str,
    /// How long to wait for another run's lock.
    pub wait: Duration,
    /// The lease, renewed while the run lasts.
    pub lease: Duration,
    /// The digest of the state the command converges the stack to (`up`), if any: right after a
    /// run that converged the stack to that same state, a sweep that finds it is trusted.
    pub converges_to: Option<String>,
}

pub struct Session {
    pub ctx: Arc<Ctx>,
    endpoint_url: Option<String>,
}

impl Session {
    /// The clients and the context, without a call: who we are is asked in the sweep, at the
    /// same time as everything else.
    pub async fn open(
        settings: &AwsSettings,
        config: &Config,
        printer: Arc<dyn Printer>,
        ctrl_c: CtrlC,
        timeouts: Timeouts,
    ) -> Result<Session> {
        let aws = Clients::new(settings, Some(printer.clone())).await?;
        let stop = match ctrl_c {
            CtrlC::Graceful => interrupt_signal(printer.clone()),
            CtrlC::Exits => tokio::sync::watch::channel(false).1,
        };
        let pacer = Pacer::with_speedup(settings.quota_speedup);
        let ctx = Ctx::new(aws, config.stack.clone(), printer, stop, timeouts, pacer);
        Ok(Session { ctx: Arc::new(ctx), endpoint_url: settings.endpoint_url.clone() })
    }

    /// STS GetCallerIdentity, with what a failure means: it needs no permission, so it fails for
    /// the credentials, the region or the endpoint (an input error, exit code 3).
    pub async fn who_am_i(&self) -> Result<()> {
        let ctx = &self.ctx;
        let identity = ctx.identity().await.map_err(|e| {
            let where_ = match &self.endpoint_url {
                Some(u) => format!("endpoint {u}"),
                None => format!("region {}", ctx.aws.region),
            };
            match e.aws() {
                Some(a) if a.kind == ErrorKind::Auth || a.code.is_none() => {
                    let hint = if a.message.contains("Connection refused")
                        || a.message.contains("dns error")
                        || a.message.contains("timed out")
                    {
                        " (is the endpoint URL right, and is the server running?)"
                    } else if a.message.contains("profile") {
                        " (check --profile / AWS_PROFILE / aws.profile and ~/.aws/config)"
                    } else if a.kind == ErrorKind::Auth || a.message.contains("credential") {
                        " (no valid credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws sso login`)"
                    } else {
                        ""
                    };
                    Error::input(format!("cannot reach AWS ({where_}): {}{hint}", a.message))
                }
                _ => e,
            }
        })?;
        ctx.info(format!(
            "stack {} | account {} | region {}{} | as {}",
            ctx.stack,
            identity.account,
            ctx.aws.region,
            self.endpoint_url.as_deref().map(|u| format!(" | endpoint {u}")).unwrap_or_default(),
            identity.arn
        ));
        Ok(())
    }

    /// The discovery sweep, all at once: who we are, the stack's lock when the command changes
    /// anything, and what the stack owns. A failure to say who we are wins (it explains every
    /// other failure); a lock taken is released when something else failed.
    pub async fn sweep(&self, graph: &Graph, lock: Option<LockRequest>) -> Result<(Vec<Found>, Option<LockGuard>)> {
        let ctx = &self.ctx;
        ctx.printer.event(Event::Phase(Phase::Discovering));
        let began = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let converges_to = lock.as_ref().and_then(|l| l.converges_to.clone());
        let take_lock = async {
            match lock {
                Some(l) => crate::lock::acquire(ctx.clone(), l.command, l.wait, l.lease).await.map(Some),
                None => Ok(None),
            }
        };
        // Who we are fails for the credentials, the region or the endpoint, and then every read of
        // the sweep fails too, after its own retries (a minute for API Gateway's): the reads are
        // dropped as soon as it fails, and that error is the one said. The lock is let finish,
        // and released.
        let look = async { tokio::try_join!(self.who_am_i(), async { Ok(graph.observe(ctx).await) }) };
        let (looked, lock) = tokio::join!(look, take_lock);
        let found = match looked {
            Ok(((), found)) => found,
            Err(e) => {
                if let Ok(Some(lock)) = lock {
                    let _ = self.close(lock).await;
                }
                return Err(e);
            }
        };
        let lock = lock?;
        // Looked while another run may still have been writing: look again, now that we hold it,
        // unless that run converged the stack to the state this one wants and the sweep found it.
        let Some(l) = lock.as_ref().filter(|l| l.may_have_changed_since(began)) else { return Ok((found, lock)) };
        if converges_to.as_deref().is_some_and(|d| l.previous_converged_to(d))
            && graph.compare(ctx, &found).iter().all(|(_, c)| c.in_sync())
        {
            ctx.info("lock: the previous run on this stack ended moments ago, converged to this config and code: the stack is as it left it");
            return Ok((found, lock));
        }
        ctx.info("lock: the previous run on this stack ended moments ago: looking at the stack again");
        ctx.forget_shared();
        Ok((graph.observe(ctx).await, lock))
    }

    /// Release the stack lock at the end of a run; a failure is only a warning (the lease
    /// expires). When the run was fenced (its lease ran out unrenewed, or the lock was taken
    /// away), the error the command must end with (exit 4): its work was cut short.
    #[must_use]
    pub async fn close(&self, lock: LockGuard) -> Option<Error> {
        let fenced = lock.fenced();
        if let Err(e) = lock.release().await {
            self.ctx.warn(format!("could not release the stack lock (its lease ends by itself): {e}"));
        }
        fenced.map(|why| {
            Error::Locked(format!(
                "stack {}: this run stopped changing the stack: {why}. Another run may hold the lock now: look with \
                 `movies-stack status`, then run this command again to finish",
                self.ctx.stack
            ))
        })
    }

    /// Observe the resources `names` of the stack (reads only, the same `observe` as `status`;
    /// what they share is read once), with who we are: the one place where the operating
    /// commands (`smoke`, `usage`, `logs`, `serve`) read the live stack.
    pub async fn observe_live(&self, config: &Config, names: &[Name]) -> Result<LiveStack> {
        // The code is not compared: only what exists and its state matter here.
        let graph = crate::stack::graph(config, Arc::new(crate::package::Artifact::unknown()))?;
        // As in `sweep`: a failed identity ends the reads at once.
        let ((), found) = tokio::try_join!(self.who_am_i(), async { Ok(graph.observe_only(&self.ctx, names).await) })?;
        let mut state = LiveStates::lenient();
        let mut errors = BTreeMap::new();
        for (name, f) in found {
            match f {
                Ok(Some(live)) => state.insert_any(name, live),
                Ok(None) => {}
                Err(e) => {
                    errors.insert(name, e);
                }
            }
        }
        Ok(LiveStack { state, stack: config.stack.clone(), errors })
    }
}

/// The live stack as `smoke`, `usage`, `logs` and `serve` read it: the state of the resources
/// they need, read by the same `observe` code as `status`, and the ones that could not be read.
pub struct LiveStack {
    pub state: LiveStates,
    stack: String,
    /// Resource -> why observing it failed.
    errors: BTreeMap<Name, String>,
}

impl LiveStack {
    /// Why observing `resource` failed, if it did.
    pub fn failure(&self, resource: Name) -> Option<&str> {
        self.errors.get(&resource).map(String::as_str)
    }

    /// The state of `id`, or an error that says whether it is missing (run `up`) or could not
    /// be read (and why).
    pub fn require<T: std::any::Any + Send + Sync>(&self, id: Id<T>) -> Result<&T> {
        if let Ok(v) = self.state.get(id) {
            return Ok(v);
        }
        Err(match self.errors.get(&id.name()) {
            Some(e) => Error::other(format!("cannot read `{id}` of stack {}: {e}", self.stack)),
            None => Error::other(format!(
                "stack {} has no `{id}` (not deployed, or deleted): run `movies-stack up`",
                self.stack
            )),
        })
    }
}

/// Turns true on the first Ctrl-C (SIGINT) or SIGTERM.
fn interrupt_signal(printer: Arc<dyn Printer>) -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
        // The flag first, the line while readers wait: a resource that sees the flag unset (and
        // starts) was decided before the "stopping" line, never after it.
        tx.send_modify(|stopped| {
            *stopped = true;
            printer.event(Event::Interrupted);
        });
        // A second Ctrl-C aborts immediately.
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(exit::INTERRUPTED);
        }
    });
    rx
}
