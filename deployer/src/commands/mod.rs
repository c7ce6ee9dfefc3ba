//! Commands: each a thin composition of the config, a session (`session.rs`), the stack graph
//! and the printer. This module only resolves the flags: the config file and the AWS settings.

use crate::aws::AwsSettings;
use crate::cli::Global;
use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::pacer::EMULATOR_QUOTA_SPEEDUP;

pub mod bootstrap;
pub mod down;
pub mod export;
pub mod graph;
pub mod help;
pub mod history;
pub mod iam_policy;
pub mod keys;
pub mod logs;
pub mod package;
pub mod plan;
pub mod preflight;
pub mod rollback;
pub mod smoke;
pub mod status;
pub mod top;
pub mod traces;
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
