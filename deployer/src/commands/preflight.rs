//! Prerequisites that `up` checks but does not create: CloudTrail.

use crate::aws::AwsResultExt;
use crate::error::{Error, Result};
use crate::resources::Ctx;

/// Is there a trail that is logging and records management events? Returns its name.
pub async fn cloudtrail_trail(ctx: &Ctx) -> Result<Option<String>> {
    let ct = &ctx.aws.cloudtrail;
    let trails = ct.describe_trails().include_shadow_trails(true).send().await.aws("CloudTrail", "DescribeTrails")?;
    for trail in trails.trail_list() {
        let Some(arn) = trail.trail_arn().or(trail.name()) else { continue };
        let status = ct.get_trail_status().name(arn).send().await.aws("CloudTrail", "GetTrailStatus")?;
        if status.is_logging() != Some(true) {
            continue;
        }
        let selectors = ct.get_event_selectors().trail_name(arn).send().await.aws("CloudTrail", "GetEventSelectors")?;
        let basic = selectors.event_selectors().iter().any(|s| s.include_management_events().unwrap_or(true));
        let advanced = selectors.advanced_event_selectors().iter().any(|s| {
            s.field_selectors()
                .iter()
                .any(|f| f.field() == "eventCategory" && f.equals().iter().any(|v| v == "Management"))
        });
        // A trail with no selectors at all logs management events by default.
        let none = selectors.event_selectors().is_empty() && selectors.advanced_event_selectors().is_empty();
        if basic || advanced || none {
            return Ok(Some(trail.name().unwrap_or(arn).to_string()));
        }
    }
    Ok(None)
}

/// Warn (or fail with `--require-cloudtrail`) when no trail logs management events.
pub async fn check_cloudtrail(ctx: &Ctx, require: bool) -> Result<()> {
    match cloudtrail_trail(ctx).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => {
            let msg = format!(
                "no CloudTrail trail is logging management events in {}: changes to this stack (and everything else) \
                 are not audited. Create a trail (aws cloudtrail create-trail ... && aws cloudtrail start-logging ...)",
                ctx.aws.region
            );
            if require {
                Err(Error::other(format!("{msg}; --require-cloudtrail was given")))
            } else {
                ctx.warn(msg);
                Ok(())
            }
        }
        Err(e) if !require => {
            ctx.warn(format!("could not check CloudTrail: {e}"));
            Ok(())
        }
        Err(e) => Err(e),
    }
}
