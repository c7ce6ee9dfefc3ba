//! Commands: each a thin composition of config, clients, the stack graph and the reporter.

use std::sync::Arc;

use crate::aws::{AwsResultExt, AwsSettings, Clients};
use crate::cli::Global;
use crate::config::{self, Config};
use crate::error::{Error, ErrorKind, Result};
use crate::resources::{Ctx, Inputs, Timeouts};
use crate::ui::Reporter;

pub mod down;
pub mod help;
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
    if config.aws.dummy_credentials && endpoint_url.is_none() {
        return Err(Error::input(format!(
            "{}: key `aws.dummy_credentials`: dummy credentials are only for an emulator: set aws.endpoint_url, --endpoint-url or AWS_ENDPOINT_URL too",
            config.path.display()
        )));
    }
    Ok(AwsSettings {
        profile: global.profile.clone().or_else(|| config.aws.profile.clone()),
        region: global.region.clone().or_else(|| config.aws.region.clone()),
        endpoint_url,
        dummy_credentials: config.aws.dummy_credentials,
    })
}

/// Clients + who we are. The first AWS call of every command is STS GetCallerIdentity: it
/// proves the credentials, region and endpoint before anything else is attempted.
/// `interruptible`: Ctrl-C stops the run gracefully (`up`, `down`); otherwise it ends the process
/// as usual (read-only commands have nothing to finish).
pub async fn connect(
    settings: &AwsSettings,
    config: &Config,
    reporter: Arc<dyn Reporter>,
    interruptible: bool,
) -> Result<Arc<Ctx>> {
    let aws = Clients::new(settings, Some(reporter.clone())).await?;
    let identity = aws.sts.get_caller_identity().send().await.aws("STS", "GetCallerIdentity").map_err(|e| {
        let aws_err = e.aws();
        let where_ = match &settings.endpoint_url {
            Some(u) => format!("endpoint {u}"),
            None => format!("region {}", aws.region),
        };
        match aws_err {
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
    let account_id = identity.account().unwrap_or_default().to_string();
    reporter.event(crate::ui::Event::Info(format!(
        "stack {} | account {} | region {}{} | as {}",
        config.stack,
        account_id,
        aws.region,
        settings.endpoint_url.as_deref().map(|u| format!(" | endpoint {u}")).unwrap_or_default(),
        identity.arn().unwrap_or("?")
    )));
    Ok(Arc::new(Ctx {
        aws,
        stack: config.stack.clone(),
        account_id,
        reporter,
        apigw_writes: tokio::sync::Mutex::new(()),
        timeouts: Timeouts::default(),
        stop: if interruptible { up::interrupt_signal() } else { tokio::sync::watch::channel(false).1 },
    }))
}

/// The function code to compare or deploy: `--artifact ZIP`, or handler/ built for the
/// configured architecture.
pub async fn artifact(
    config: &Config,
    path: Option<&std::path::Path>,
    reporter: &Arc<dyn Reporter>,
) -> Result<crate::package::Artifact> {
    let artifact = match path {
        Some(path) => crate::package::read_artifact(path)?,
        None => {
            reporter.event(crate::ui::Event::Info(format!(
                "building handler/ for {} (cargo lambda build --release)",
                config.function.architecture
            )));
            crate::package::build(&config.function.architecture).await?
        }
    };
    reporter.event(crate::ui::Event::Info(format!(
        "function code: {} (CodeSha256 {})",
        artifact.source, artifact.sha256_b64
    )));
    Ok(artifact)
}

/// Release the stack lock at the end of a run; a failure is only a warning (the lease expires).
pub async fn release_lock(ctx: &Ctx, lock: crate::lock::LockGuard) {
    if lock.lost() {
        ctx.warn("this run lost the stack lock while it ran (unlock --force?): check `movies-stack status`");
    }
    if let Err(e) = lock.release().await {
        ctx.warn(format!("could not release the stack lock (it expires by itself within a minute): {e}"));
    }
}

/// The live stack as `smoke`, `usage` and `logs` read it: the outputs of every present resource,
/// and the resources that could not be read.
pub struct LiveStack {
    pub inputs: Inputs,
    stack: String,
    /// Resource id -> why observing it failed.
    errors: std::collections::BTreeMap<String, String>,
}

impl LiveStack {
    /// Why observing `resource` failed, if it did.
    pub fn failure(&self, resource: &str) -> Option<&str> {
        self.errors.get(resource).map(String::as_str)
    }

    /// Output `key` of `resource`, or an error that says whether the resource is missing (run
    /// `up`) or could not be read (and why).
    pub fn require(&self, resource: &str, key: &str) -> Result<&str> {
        if let Some(v) = self.inputs.try_get(resource, key) {
            return Ok(v);
        }
        Err(match self.errors.get(resource) {
            Some(e) => Error::other(format!("cannot read `{resource}` of stack {}: {e}", self.stack)),
            None => Error::other(format!(
                "stack {} has no `{resource}` (not deployed, or deleted): run `movies-stack up`",
                self.stack
            )),
        })
    }
}

/// Observe the whole stack once (reads only) and keep the outputs: the one place where the
/// operating commands read the live stack.
pub async fn observe_outputs(ctx: Arc<Ctx>, config: &Config) -> Result<LiveStack> {
    // The code is not compared: only what exists and its outputs matter here.
    let graph = crate::stack::graph(config, Arc::new(crate::package::Artifact::unknown()))?;
    let (observed, inputs) = graph.observe_all(ctx.clone(), 8).await;
    ctx.reporter.finish();
    let errors = observed.into_iter().filter_map(|(id, res)| res.err().map(|e| (id, e.to_string()))).collect();
    Ok(LiveStack { inputs, stack: config.stack.clone(), errors })
}
