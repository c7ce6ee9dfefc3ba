//! Commands: each a thin composition of config, clients, the stack graph and the printer.

use std::sync::Arc;

use crate::aws::{AwsSettings, Clients};
use crate::cli::Global;
use crate::config::{self, Config};
use crate::ctx::Ctx;
use crate::error::{Error, ErrorKind, Result};
use crate::graph::{Found, Graph, Step};
use crate::lock::LockGuard;
use crate::pacer::{EMULATOR_QUOTA_SPEEDUP, Pacer};
use crate::resources::Name;
use crate::ui::Printer;

pub mod bootstrap;
pub mod down;
pub mod graph;
pub mod help;
pub mod iam_policy;
pub mod keys;
pub mod logs;
pub mod package;
pub mod plan;
pub mod preflight;
pub mod smoke;
pub mod status;
pub mod unlock;
pub mod up;
pub mod usage;

/// The validated config of `--env` / `--config`. No AWS call.
pub fn load_config(global: &Global) -> Result<Config> {
    let path = config::resolve_path(&global.env, global.config.as_deref())?;
    config::load(&path)
}

/// Flags (and their environment variables) > config file > AWS defaults. No AWS call.
pub fn aws_settings(global: &Global, config: &Config) -> Result<AwsSettings> {
    let src = &global.sources;
    if let Some(url) = &global.endpoint_url
        && !config::valid_url(url)
    {
        return Err(Error::input(format!("{} {url:?}: expected an http:// or https:// URL", src.endpoint_url)));
    }
    if let Some(region) = &global.region {
        crate::aws::validate_region(region).map_err(|_| {
            Error::input(format!(
                "{} {region:?}: not an AWS region name (expected something like us-east-1)",
                src.region
            ))
        })?;
    }
    if let Some(p) = &global.profile
        && p.trim().is_empty()
    {
        return Err(Error::input(format!("{}: expected a profile name, found an empty string", src.profile)));
    }
    let profile = match (&global.profile, &config.aws.profile) {
        (Some(p), _) => Some((p.clone(), src.profile.to_string())),
        (None, Some(p)) => Some((p.clone(), format!("{}: key `aws.profile`", config.path.display()))),
        (None, None) => None,
    };
    if let Some((name, source)) = &profile {
        crate::aws::check_profile_exists(name).map_err(|files| {
            Error::input(format!(
                "{source} `{name}`: no such profile in {files} (aws configure --profile {name}, or aws configure sso)"
            ))
        })?;
    }
    let endpoint_url = global.endpoint_url.clone().or_else(|| config.aws.endpoint_url.clone());
    if let Some(url) = &endpoint_url
        && config::plain_http_off_machine(url)
        && !global.allow_insecure_endpoint
    {
        let source = if global.endpoint_url.is_some() {
            src.endpoint_url.to_string()
        } else {
            format!("{}: key `aws.endpoint_url`", config.path.display())
        };
        return Err(Error::input(format!(
            "{source} {url:?}: plain http:// to another machine would send signed AWS requests (and any session \
             token) unencrypted: use https://, or pass --allow-insecure-endpoint"
        )));
    }
    if config.aws.dummy_credentials && endpoint_url.is_none() {
        return Err(Error::input(format!(
            "{}: key `aws.dummy_credentials`: dummy credentials are only for an emulator: set aws.endpoint_url, --endpoint-url or AWS_ENDPOINT_URL too",
            config.path.display()
        )));
    }
    let quota_speedup = emulator_quota_speedup(std::env::var(EMULATOR_QUOTA_SPEEDUP).ok(), endpoint_url.is_some())?;
    Ok(AwsSettings {
        profile: global.profile.clone().or_else(|| config.aws.profile.clone()),
        region: global.region.clone().or_else(|| config.aws.region.clone()),
        endpoint_url,
        dummy_credentials: config.aws.dummy_credentials,
        quota_speedup,
    })
}

/// `MOVIES_STACK_EMULATOR_QUOTA_SPEEDUP`: pace API Gateway calls that many times faster than
/// AWS's quotas, for an emulator whose own quotas are faster (the test suite's). Refused without
/// an endpoint override: against AWS, its quotas are the law.
fn emulator_quota_speedup(value: Option<String>, emulator: bool) -> Result<f64> {
    let Some(value) = value.filter(|v| !v.is_empty()) else { return Ok(1.0) };
    let speedup: f64 =
        value.trim().parse().ok().filter(|s: &f64| s.is_finite() && *s >= 1.0 && *s <= 1000.0).ok_or_else(|| {
            Error::input(format!("{EMULATOR_QUOTA_SPEEDUP}={value:?}: expected a number from 1 to 1000"))
        })?;
    if speedup > 1.0 && !emulator {
        return Err(Error::input(format!(
            "{EMULATOR_QUOTA_SPEEDUP}={value}: only for an emulator (set an endpoint URL); AWS's API Gateway quotas cannot be sped up"
        )));
    }
    Ok(speedup)
}

/// The clients and the context, without a call: who we are is asked in the sweep
/// ([`sweep`]), at the same time as everything else. `interruptible`: Ctrl-C stops the run
/// gracefully (`up`, `down`); otherwise it ends the process as usual (read-only commands have
/// nothing to finish).
pub async fn connect(
    settings: &AwsSettings,
    config: &Config,
    printer: Arc<dyn Printer>,
    interruptible: bool,
) -> Result<Arc<Ctx>> {
    let aws = Clients::new(settings, Some(printer.clone())).await?;
    let stop = if interruptible { up::interrupt_signal() } else { tokio::sync::watch::channel(false).1 };
    let mut ctx = Ctx::new(aws, config.stack.clone(), printer, stop);
    ctx.apigw = Pacer::with_speedup(settings.quota_speedup);
    Ok(Arc::new(ctx))
}

/// STS GetCallerIdentity, with what a failure means: it needs no permission, so it fails for
/// the credentials, the region or the endpoint (an input error, exit code 3).
pub async fn who_am_i(ctx: &Ctx, settings: &AwsSettings) -> Result<()> {
    let identity = ctx.identity().await.map_err(|e| {
        let where_ = match &settings.endpoint_url {
            Some(u) => format!("endpoint {u}"),
            None => format!("region {}", ctx.aws.region),
        };
        match e.aws() {
            Some(a) if a.kind == ErrorKind::Auth || a.code.is_none() => {
                let hint = if a.message.contains("Connection refused") || a.message.contains("dns error") || a.message.contains("timed out") {
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
        settings.endpoint_url.as_deref().map(|u| format!(" | endpoint {u}")).unwrap_or_default(),
        identity.arn
    ));
    Ok(())
}

/// The discovery sweep, all at once: who we are, the stack's lock when the command changes
/// anything (`lock`: the command's name, how long to wait, and its lease), and what the stack owns. A
/// failure to say who we are wins (it explains every other failure); a lock taken is released
/// when something else failed.
pub async fn sweep(
    ctx: &Arc<Ctx>,
    settings: &AwsSettings,
    graph: &Graph,
    lock: Option<(&str, std::time::Duration, std::time::Duration)>,
) -> Result<(Vec<Found>, Option<LockGuard>)> {
    ctx.printer.event(crate::events::Event::Phase(crate::events::Phase::Discovering));
    let began = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let take_lock = async {
        match lock {
            Some((command, wait, lease)) => crate::lock::acquire(ctx.clone(), command, wait, lease).await.map(Some),
            None => Ok(None),
        }
    };
    // Who we are fails for the credentials, the region or the endpoint, and then every read of
    // the sweep fails too, after its own retries (a minute for API Gateway's): the reads are
    // dropped as soon as it fails, and that error is the one said. The lock is let finish,
    // and released.
    let look = async { tokio::try_join!(who_am_i(ctx, settings), async { Ok(graph.observe(ctx).await) }) };
    let (looked, lock) = tokio::join!(look, take_lock);
    let found = match looked {
        Ok(((), found)) => found,
        Err(e) => {
            if let Ok(Some(lock)) = lock {
                let _ = release_lock(ctx, lock).await;
            }
            return Err(e);
        }
    };
    let lock = lock?;
    // Looked while another run may still have been writing: look again, now that we hold it.
    if lock.as_ref().is_some_and(|l| l.may_have_changed_since(began)) {
        ctx.info("lock: the previous run on this stack ended moments ago: looking at the stack again");
        ctx.forget_shared();
        return Ok((graph.observe(ctx).await, lock));
    }
    Ok((found, lock))
}

/// The function code to compare or deploy: `--artifact ZIP`, or handler/ built for the
/// configured architecture.
pub async fn artifact(
    config: &Config,
    path: Option<&std::path::Path>,
    printer: &Arc<dyn Printer>,
) -> Result<crate::package::Artifact> {
    let artifact = match path {
        Some(path) => crate::package::read_artifact(path)?,
        None => {
            printer.event(crate::events::Event::Info(format!(
                "building handler/ for {} (cargo lambda build --release)",
                config.function.architecture
            )));
            crate::package::build(&config.function.architecture).await?
        }
    };
    printer.event(crate::events::Event::Info(format!(
        "function code: {} (CodeSha256 {})",
        artifact.source, artifact.sha256_b64
    )));
    Ok(artifact)
}

/// Release the stack lock at the end of a run; a failure is only a warning (the lease expires).
/// When the run was fenced (its lease ran out unrenewed, or the lock was taken away), the error
/// the command must end with (exit 4): its work was cut short.
#[must_use]
pub async fn release_lock(ctx: &Ctx, lock: LockGuard) -> Option<Error> {
    let fenced = lock.fenced();
    if let Err(e) = lock.release().await {
        ctx.warn(format!("could not release the stack lock (its lease ends by itself): {e}"));
    }
    fenced.map(|why| {
        Error::Locked(format!(
            "stack {}: this run stopped changing the stack: {why}. Another run may hold the lock now: look with \
             `movies-stack status`, then run this command again to finish",
            ctx.stack
        ))
    })
}

/// The live stack as `smoke`, `usage` and `logs` read it: the state of the resources they
/// need, read by the same `observe` code as `status`, and the ones that could not be read.
pub struct LiveStack {
    pub state: crate::resources::Inputs,
    stack: String,
    /// Resource -> why observing it failed.
    errors: std::collections::BTreeMap<crate::resources::Name, String>,
}

impl LiveStack {
    /// Why observing `resource` failed, if it did.
    pub fn failure(&self, resource: crate::resources::Name) -> Option<&str> {
        self.errors.get(&resource).map(String::as_str)
    }

    /// The state of `id`, or an error that says whether it is missing (run `up`) or could not
    /// be read (and why).
    pub fn require<T: std::any::Any + Send + Sync>(&self, id: crate::resources::Id<T>) -> Result<&T> {
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

/// Observe the resources `names` of the stack (reads only, the same `observe` as `status`; what
/// they share is read once), with who we are: the one place where the operating commands read
/// the live stack.
pub async fn observe_live(
    ctx: &Arc<Ctx>,
    settings: &AwsSettings,
    config: &Config,
    names: &[crate::resources::Name],
) -> Result<LiveStack> {
    // The code is not compared: only what exists and its state matter here.
    let graph = crate::stack::graph(config, Arc::new(crate::package::Artifact::unknown()))?;
    // As in `sweep`: a failed identity ends the reads at once.
    let ((), found) = tokio::try_join!(who_am_i(ctx, settings), async { Ok(graph.observe_only(ctx, names).await) })?;
    let mut state = crate::resources::Inputs::lenient();
    let mut errors = std::collections::BTreeMap::new();
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

/// How a run went against what the graph allows, for `--output json` (the benchmark reads it,
/// docs/benchmarks.md): the bound (the longest chain of calls the graph forces one after another,
/// and that chain), the critical path the scheduler followed (relative to the start of its
/// phase), and the graph the bound comes from. `rounds_key` names what the bound counts
/// (`create_rounds`, `delete_rounds`).
pub fn run_shape(
    graph: &Graph,
    rounds_key: &str,
    (rounds, chain): &(u32, Vec<Name>),
    critical_path: &[Step],
) -> serde_json::Map<String, serde_json::Value> {
    let path: Vec<serde_json::Value> = critical_path
        .iter()
        .map(|s| serde_json::json!({"resource": s.name.to_string(), "start_ms": s.start.as_millis(), "end_ms": s.end.as_millis()}))
        .collect();
    let bound = serde_json::json!({rounds_key: rounds, "chain": chain.iter().map(Name::to_string).collect::<Vec<_>>()});
    serde_json::Map::from_iter([
        ("critical_path".to_string(), serde_json::Value::Array(path)),
        ("bound".to_string(), bound),
        ("graph".to_string(), graph.describe()),
    ])
}
