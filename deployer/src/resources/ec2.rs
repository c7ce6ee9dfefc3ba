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

/// Delete the Lambda Hyperplane ENIs (description `AWS Lambda VPC ENI*`) attached to a security
/// group or subnet once Lambda has released them (status `available`). Returns how many are
/// still in use. After the function is detached from the VPC and deleted, AWS releases them in
/// minutes to ~45 minutes (terraform-provider-aws `deleteLingeringLambdaENIs`, P99 ~35 min); until
/// then the group and subnets cannot be deleted (DependencyViolation).
pub async fn release_lambda_enis(ctx: &Ctx, resource: &str, filter_name: &str, filter_value: &str) -> Result<usize> {
    use crate::aws::AwsResultExt;
    let out = ctx
        .aws
        .ec2
        .describe_network_interfaces()
        .filters(filter(filter_name, filter_value))
        .filters(filter("description", "AWS Lambda VPC ENI*"))
        .send()
        .await
        .aws("EC2", "DescribeNetworkInterfaces")?;
    let mut in_use = 0;
    for eni in out.network_interfaces() {
        let id = eni.network_interface_id().unwrap_or_default();
        let available = eni.status().is_some_and(|s| s.as_str() == "available");
        if !available {
            in_use += 1;
            continue;
        }
        ctx.progress(resource, format!("deleting released Lambda network interface {id}"));
        match ctx
            .aws
            .ec2
            .delete_network_interface()
            .network_interface_id(id)
            .send()
            .await
            .aws("EC2", "DeleteNetworkInterface")
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            // Still being released by Lambda: the next round retries.
            Err(e) if e.kind() == Some(crate::error::ErrorKind::Conflict) => in_use += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(in_use)
}
