//! Helpers shared by the EC2 resources (VPC, subnets, route tables, endpoint, security group,
//! flow log): tag specifications for create calls and tag filters for finding ours again.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use super::{Ctx, TAG_RESOURCE, TAG_STACK};
use crate::error::{Error, Result};

/// Tags for a create call: ours plus a `Name` for the console.
pub fn tag_spec(ctx: &Ctx, resource: &str, kind: ResourceType) -> TagSpecification {
    let mut tags: Vec<Tag> =
        ctx.tags(resource).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    tags.push(Tag::builder().key("Name").value(format!("{}-{resource}", ctx.stack)).build());
    TagSpecification::builder().resource_type(kind).set_tags(Some(tags)).build()
}

/// Filters that find exactly the resource `resource` of this stack.
pub fn ours(ctx: &Ctx, resource: &str) -> Vec<Filter> {
    vec![
        Filter::builder().name(format!("tag:{TAG_STACK}")).values(&ctx.stack).build(),
        Filter::builder().name(format!("tag:{TAG_RESOURCE}")).values(resource).build(),
    ]
}

pub fn filter(name: &str, value: impl Into<String>) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// At most one live resource may carry a resource tag; more is a leftover of something we did
/// not do (a copy made by hand?) and is reported, never guessed at.
pub fn at_most_one<T>(mut found: Vec<T>, what: &str, resource: &str) -> Result<Option<T>> {
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => Err(Error::other(format!(
            "found {n} {what}s tagged {TAG_RESOURCE}={resource} in this stack; expected one. Delete the extra ones"
        ))),
    }
}
