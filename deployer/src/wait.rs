//! Named waiters and retries: each has a deadline and says on the progress line what it is
//! waiting for. Retries match an [`ErrorKind`], never raw strings.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::resources::Ctx;

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

    fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Sleep for `delay`, or fail at once when Ctrl-C arrives (`ctx.stop`).
async fn pause(ctx: &Ctx, what: &str, delay: Duration) -> Result<()> {
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
/// `what` names the wait on the progress line: "IAM role propagation", "API Gateway throttling".
pub async fn retry<T, F, Fut>(
    ctx: &Ctx,
    resource: &str,
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
                ctx.progress(
                    resource,
                    format!(
                        "waiting for {what}: {}; retry in {:.0?} ({}s of {}s)",
                        e.aws().map(|a| a.code.clone().unwrap_or_default()).unwrap_or_default(),
                        delay,
                        elapsed.as_secs(),
                        deadline.as_secs()
                    ),
                );
                pause(ctx, what, delay).await?;
                attempt += 1;
            }
        }
    }
}

/// Poll `check` until it returns `Some`, or fail after `deadline`. `check` returns the current
/// state for the progress line on `Err(state)`... kept simple: `Ok(None)` means "not yet".
pub async fn wait_until<T, F, Fut>(
    ctx: &Ctx,
    resource: &str,
    what: &str,
    deadline: Duration,
    backoff: Backoff,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
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
        ctx.progress(resource, format!("waiting for {what} ({}s of {}s)", elapsed.as_secs(), deadline.as_secs()));
        pause(ctx, what, delay).await?;
        attempt += 1;
    }
}

/// Retry policy for API Gateway writes: throttling (429) is retried for a long time, starting at
/// `first_delay` (the operation's documented rate: CreateDeployment 5 s, UpdateUsagePlan 20 s).
pub async fn apigw_write<T, F, Fut>(
    ctx: &Ctx,
    resource: &str,
    operation: &str,
    first_delay: Duration,
    op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let _serialized = ctx.apigw_writes.lock().await;
    let backoff = Backoff { initial: first_delay, max: Duration::from_secs(30) };
    retry(
        ctx,
        resource,
        &format!("API Gateway throttling of {operation}"),
        &[ErrorKind::Throttled],
        ctx.timeouts.throttling,
        backoff,
        op,
    )
    .await
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
