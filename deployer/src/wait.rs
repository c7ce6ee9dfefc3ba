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

/// The back-offs of the waits and retries, named by what they wait for, in one place.
pub mod backoff {
    use std::time::Duration;

    use super::Backoff;

    /// API Gateway accepting a role this run made (UpdateAccount): IAM propagation, at
    /// UpdateAccount's quota of 1 per 20 s.
    pub const API_GATEWAY_ROLE: Backoff = Backoff::new(5000, 20000);
    /// Another write to the same REST API finishing (API Gateway's concurrent modification):
    /// a fraction of a second.
    pub const CONCURRENT_MODIFICATION: Backoff = Backoff::new(200, 5000);
    /// A VPC's dependencies going (its subnets, groups and endpoint, deleted at the same
    /// time): seconds, or minutes when Lambda's ENIs hold a subnet.
    pub const DEPENDENCIES_GOING: Backoff = Backoff::new(2000, 30000);
    /// Lambda releasing a function's VPC network interfaces before a security group or a
    /// subnet can go: minutes on AWS (down).
    pub const ENI_RELEASE: Backoff = Backoff::new(5000, 30000);
    /// An EC2 resource created moments ago by this run becoming visible to the next call
    /// (eventual consistency), for at most [`JUST_CREATED`].
    pub const JUST_CREATED_VISIBLE: Backoff = Backoff::new(1000, 5000);
    /// A transition that takes tens of seconds: a function `Active`, a table's PITR or
    /// stream, a deletion that waits for another one.
    pub const LONG_STATE: Backoff = Backoff::new(2000, 20000);
    /// A change or a state that settles in a second or two: EC2's eventual consistency, a VPC
    /// `available`, the lock table `ACTIVE`, an endpoint's route tables.
    pub const SETTLING: Backoff = Backoff::new(500, 5000);
    /// A resource's state that settles within seconds to a minute: a function's
    /// `LastUpdateStatus`, a role or an endpoint changing, a WAF association.
    pub const STATE: Backoff = Backoff::new(1000, 10000);
    /// Twice a second, no back-off: a cheap read that ends the longest wait of a cold `up`
    /// (a table `ACTIVE`, about 10 s on AWS); a back-off would see it seconds late.
    pub const TWICE_A_SECOND: Backoff = Backoff::new(500, 500);
    /// WAF's optimistic lock refused, or an entity not yet visible: read again soon, then
    /// back off.
    pub const WAF_CONFLICT: Backoff = Backoff::new(500, 10000);
    /// How long an EC2 resource this run created moments ago is waited for to become visible to
    /// the next call: EC2's eventual consistency is seconds; longer means it is really gone.
    pub const JUST_CREATED: Duration = Duration::from_secs(60);
    /// Retrying a call that names a role this run wrote moments ago, refused until IAM has propagated
    /// it (CreateFunction, CreateFlowLogs): every 1-2 s. Propagation takes seconds; a doubling
    /// back-off would see the role usable up to a whole delay late, on the cold `up`'s longest path.
    pub const IAM_PROPAGATION: Backoff = Backoff::new(1000, 2000);
}

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
