//! Named waiters and retries: each has a deadline and reports what it waits for (typed events:
//! [`Event::Waiting`], [`Event::Retrying`]). Retries match an [`ErrorKind`], never raw strings.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::ctx::Ctx;
use crate::error::{Error, ErrorKind, Result};
use crate::events::Event;
use crate::ids::Name;

/// Exponential backoff between `initial` and `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(initial_ms: u64, max_ms: u64) -> Self {
        Backoff { initial: Duration::from_millis(initial_ms), max: Duration::from_millis(max_ms) }
    }

    /// The delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Retrying a call that names a role this run wrote moments ago, refused until IAM has propagated
/// it (CreateFunction, CreateFlowLogs): every 1-2 s. Propagation takes seconds; a doubling
/// back-off would see the role usable up to a whole delay late, on the cold `up`'s longest path.
pub const IAM_PROPAGATION: Backoff = Backoff::new(1000, 2000);

/// Every future run to its end, then the first error in their order (all the values when none
/// failed). Unlike `try_join_all`, a failure in one of them (Ctrl-C seen by its wait included)
/// never drops the others in the middle of a call: a write in flight is always answered, so what
/// it did is known before the run ends. For writes; reads may be dropped.
pub async fn settle_all<T, F>(futures: impl IntoIterator<Item = F>) -> Result<Vec<T>>
where
    F: Future<Output = Result<T>>,
{
    futures::future::join_all(futures).await.into_iter().collect()
}

/// Sleep for `delay`, or fail at once when Ctrl-C arrives (`ctx.stop`).
pub async fn pause(ctx: &Ctx, what: &str, delay: Duration) -> Result<()> {
    let mut stop = ctx.stop.clone();
    if *stop.borrow() {
        return Err(Error::Interrupted(what.to_string()));
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => Ok(()),
        // A closed channel (no Ctrl-C handling in this command) never stops the wait.
        _ = async { if stop.wait_for(|s| *s).await.is_err() { std::future::pending::<()>().await } } => {
            Err(Error::Interrupted(what.to_string()))
        }
    }
}

/// Run `op` until it succeeds, retrying errors of the given kinds until `deadline`.
/// `what` names the wait: "IAM role propagation", "the function's previous update to finish".
pub async fn retry<T, F, Fut>(
    ctx: &Ctx,
    id: impl Into<Name>,
    what: &str,
    kinds: &[ErrorKind],
    deadline: Duration,
    backoff: Backoff,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let id: Name = id.into();
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let retryable = e.kind().is_some_and(|k| kinds.contains(&k));
                if !retryable {
                    return Err(e);
                }
                let elapsed = start.elapsed();
                if elapsed >= deadline {
                    return Err(Error::Timeout { what: format!("{what} ({e})"), after: elapsed });
                }
                let delay = backoff.delay(attempt).min(deadline - elapsed);
                ctx.printer.event(Event::Retrying {
                    id,
                    what: what.to_string(),
                    code: e.aws().and_then(|a| a.code.clone()).unwrap_or_default(),
                    delay,
                    elapsed,
                    deadline,
                });
                pause(ctx, what, delay).await?;
                attempt += 1;
            }
        }
    }
}

/// Poll `check` until it returns `Some`, or fail after `deadline`.
pub async fn wait_until<T, F, Fut>(
    ctx: &Ctx,
    id: impl Into<Name>,
    what: &str,
    deadline: Duration,
    backoff: Backoff,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let id: Name = id.into();
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        let elapsed = start.elapsed();
        if elapsed >= deadline {
            return Err(Error::Timeout { what: what.to_string(), after: elapsed });
        }
        let delay = backoff.delay(attempt).min(deadline - elapsed);
        ctx.printer.event(Event::Waiting { id, what: what.to_string(), elapsed, deadline });
        pause(ctx, what, delay).await?;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff::new(500, 4000);
        let d: Vec<u64> = (0..6).map(|a| b.delay(a).as_millis() as u64).collect();
        assert_eq!(d, vec![500, 1000, 2000, 4000, 4000, 4000]);
    }
}
