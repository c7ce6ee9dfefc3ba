//! Prerequisites that `up` checks but does not create: CloudTrail.

use crate::aws::AwsResultExt;
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
