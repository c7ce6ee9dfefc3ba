//! Prerequisites that `up` checks but does not create: CloudTrail, and room in the account for
//! the function's reserved concurrency.

use crate::aws::AwsResultExt;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::resources::Ctx;

/// What the trails of the account say about auditing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TrailCheck {
    /// A trail that is logging and records management events.
    pub logging: Option<String>,
    /// An organization trail whose status cannot be read from this (member) account: it exists
    /// and covers the account, but whether it is logging is not ours to see.
    pub organization: Option<String>,
    /// Trails that could not be queried, with the reason.
    pub unreadable: Vec<String>,
}

/// Does a trail log management events? Every trail is tried: one that cannot be queried (the
/// organization trail seen from a member account answers TrailNotFoundException or AccessDenied
/// to GetTrailStatus / GetEventSelectors: cloud-custodian PR #6394, jantman/awslimitchecker#439)
/// does not stop the search.
pub async fn cloudtrail_trails(ctx: &Ctx) -> Result<TrailCheck> {
    let ct = &ctx.aws.cloudtrail;
    let trails = ct.describe_trails().include_shadow_trails(true).send().await.aws("CloudTrail", "DescribeTrails")?;
    let mut check = TrailCheck::default();
    for trail in trails.trail_list() {
        let Some(arn) = trail.trail_arn().or(trail.name()) else { continue };
        let name = trail.name().unwrap_or(arn).to_string();
        match logs_management_events(ctx, arn).await {
            Ok(true) => {
                check.logging = Some(name);
                return Ok(check);
            }
            Ok(false) => {}
            Err(e) if trail.is_organization_trail() == Some(true) => {
                check.organization.get_or_insert(name.clone());
                check.unreadable.push(format!("{name} (organization trail): {e}"));
            }
            Err(e) => check.unreadable.push(format!("{name}: {e}")),
        }
    }
    Ok(check)
}

async fn logs_management_events(ctx: &Ctx, arn: &str) -> Result<bool> {
    let ct = &ctx.aws.cloudtrail;
    let status = ct.get_trail_status().name(arn).send().await.aws("CloudTrail", "GetTrailStatus")?;
    if status.is_logging() != Some(true) {
        return Ok(false);
    }
    let selectors = ct.get_event_selectors().trail_name(arn).send().await.aws("CloudTrail", "GetEventSelectors")?;
    let basic = selectors.event_selectors().iter().any(|s| s.include_management_events().unwrap_or(true));
    let advanced = selectors.advanced_event_selectors().iter().any(|s| {
        s.field_selectors().iter().any(|f| f.field() == "eventCategory" && f.equals().iter().any(|v| v == "Management"))
    });
    // A trail with no selectors at all logs management events by default.
    let none = selectors.event_selectors().is_empty() && selectors.advanced_event_selectors().is_empty();
    Ok(basic || advanced || none)
}

/// Warn (or fail with `--require-cloudtrail`) when no trail logs management events.
pub async fn check_cloudtrail(ctx: &Ctx, require: bool) -> Result<()> {
    let check = match cloudtrail_trails(ctx).await {
        Ok(check) => check,
        Err(e) if !require => {
            ctx.warn(format!("could not check CloudTrail: {e}"));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if check.logging.is_some() {
        return Ok(());
    }
    if let Some(org) = &check.organization {
        // Member accounts cannot read the organization trail, which by design records every
        // account of the organization.
        ctx.warn(format!(
            "CloudTrail: the organization trail {org} covers this account, but its status cannot be read from it; \
             assuming it logs management events"
        ));
        return Ok(());
    }
    let unreadable = if check.unreadable.is_empty() {
        String::new()
    } else {
        format!(" (could not query: {})", check.unreadable.join("; "))
    };
    let msg = format!(
        "no CloudTrail trail is logging management events in {}{unreadable}: changes to this stack (and everything \
         else) are not audited. Create a trail (aws cloudtrail create-trail ... && aws cloudtrail start-logging ...)",
        ctx.aws.region
    );
    if require {
        Err(Error::other(format!("{msg}; --require-cloudtrail was given")))
    } else {
        ctx.warn(msg);
        Ok(())
    }
}

/// The account's Lambda concurrency, from GetAccountSettings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountConcurrency {
    /// `AccountLimit.ConcurrentExecutions`: the account's limit in the region.
    pub limit: i32,
    /// `AccountLimit.UnreservedConcurrentExecutions`: the limit minus every reservation.
    pub unreserved: i32,
}

impl AccountConcurrency {
    /// What Lambda keeps unreserved: "at least 100 simultaneous executions unreserved for
    /// functions that aren't configured with a per-function limit" (PutFunctionConcurrency API
    /// reference); an account whose limit is below 100 (new accounts start at 10 or 50) can
    /// reserve nothing: the minimum is then the whole limit ("...below its minimum value of
    /// [10]", aws-samples/alarm-context-tool#2; "[50]", milliHQ/terraform-aws-next-js#251).
    pub fn minimum_unreserved(&self) -> i32 {
        self.limit.min(100)
    }
}

/// GetAccountSettings, when the config reserves concurrency for the function (else no call).
/// Asked during the sweep; [`check_reserved_concurrency`] judges once the function is observed.
pub async fn account_concurrency(ctx: &Ctx, config: &Config) -> Result<Option<AccountConcurrency>> {
    if config.function.reserved_concurrency.is_none() {
        return Ok(None);
    }
    let out = ctx.aws.lambda.get_account_settings().send().await.aws("Lambda", "GetAccountSettings")?;
    let limit = out.account_limit();
    Ok(Some(AccountConcurrency {
        limit: limit.map(|l| l.concurrent_executions()).unwrap_or_default(),
        unreserved: limit.and_then(|l| l.unreserved_concurrent_executions()).unwrap_or_default(),
    }))
}

/// Refuse, before any change, a reservation Lambda would refuse: `live` is what the function
/// reserves now (none when it does not exist yet), which goes back to the pool when replaced.
pub fn check_reserved_concurrency(config: &Config, account: &AccountConcurrency, live: Option<i32>) -> Result<()> {
    let Some(wanted) = config.function.reserved_concurrency else { return Ok(()) };
    let minimum = account.minimum_unreserved();
    let left = account.unreserved + live.unwrap_or(0) - wanted;
    if left >= minimum {
        return Ok(());
    }
    Err(Error::input(format!(
        "{}: key `function.reserved_concurrency`: reserving {wanted} concurrent executions for the function would \
         leave the account {left} unreserved, below Lambda's minimum of {minimum} (account limit {}, unreserved now \
         {}), and Lambda would refuse it (\"Specified ReservedConcurrentExecutions for function decreases account's \
         UnreservedConcurrentExecution below its minimum value of [{minimum}]\"). Nothing was changed. Lower the \
         value or remove the key (no reservation), or raise the account's Lambda \"Concurrent executions\" quota \
         (Service Quotas) first",
        config.path.display(),
        account.limit,
        account.unreserved,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(reserved: Option<i32>) -> Config {
        let mut c = crate::config::parse("stack = \"s\"").unwrap();
        c.function.reserved_concurrency = reserved;
        c.path = "config/dev.toml".into();
        c
    }

    #[test]
    fn reservations_keep_the_minimum_unreserved() {
        let standard = AccountConcurrency { limit: 1000, unreserved: 1000 };
        let new_account = AccountConcurrency { limit: 10, unreserved: 10 };
        let partly_reserved = AccountConcurrency { limit: 1000, unreserved: 150 };
        // (account, wanted, what the function reserves now, refused)
        let cases = [
            (standard, Some(900), None, false),
            (standard, Some(901), None, true),
            (new_account, Some(1), None, true),
            (partly_reserved, Some(50), None, false),
            (partly_reserved, Some(51), None, true),
            // Its own reservation goes back to the pool first.
            (partly_reserved, Some(80), Some(30), false),
            (new_account, None, None, false),
        ];
        for (account, wanted, live, refused) in cases {
            let r = check_reserved_concurrency(&config(wanted), &account, live);
            assert_eq!(r.is_err(), refused, "{account:?} {wanted:?} {live:?}: {r:?}");
        }
        assert_eq!(new_account.minimum_unreserved(), 10);
        assert_eq!(standard.minimum_unreserved(), 100);
        let e = check_reserved_concurrency(&config(Some(5)), &new_account, None).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::INPUT);
        let msg = e.to_string();
        for needle in [
            "config/dev.toml: key `function.reserved_concurrency`",
            "leave the account 5 unreserved, below Lambda's minimum of 10",
            "(account limit 10, unreserved now 10)",
            "below its minimum value of [10]",
            "Nothing was changed",
        ] {
            assert!(msg.contains(needle), "{needle:?} in {msg}");
        }
    }
}
