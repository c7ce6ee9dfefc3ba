//! Helpers shared by the EC2 resources (VPC, subnets, route tables, endpoint, security group,
//! flow log): tag specifications for create calls and tag filters for finding ours again.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use std::sync::Arc;

use super::{Condition, Ctx, Grant, Name, Scope, TAG_STACK, at_most_one, request_tagged, resource_tagged};
use crate::aws::AwsResultExt;
use crate::error::Result;

/// Tags for a create call: ours plus a `Name` for the console.
pub fn tag_spec(ctx: &Ctx, resource: Name, kind: ResourceType) -> TagSpecification {
    let mut tags: Vec<Tag> =
        ctx.tags(resource).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    tags.push(Tag::builder().key("Name").value(format!("{}-{resource}", ctx.stack)).build());
    TagSpecification::builder().resource_type(kind).set_tags(Some(tags)).build()
}

/// What an EC2 kind needs of the tool's policy, in the statements every EC2 kind shares:
/// - `reads`: EC2's describes, which support no resource-level permissions (Service
///   Authorization Reference): on `*`;
/// - `create` on its own type (`resource_type`), only with the stack's tag in the request, and
///   `ec2:CreateTags` only as part of that create (the tags ride on the create call and nowhere
///   else);
/// - `changes` on the stack's own EC2 resources (by tag) of the types they act on (`acts_on`):
///   creating a subnet, route table, group, endpoint or flow log also acts on the VPC (an
///   endpoint on the route tables, an association on the subnet).
pub fn grants(
    s: &Scope,
    resource_type: &str,
    reads: &[&'static str],
    create: &'static str,
    changes: &[&'static str],
    acts_on: &[&str],
) -> Vec<Grant> {
    let own = || [s.ec2(resource_type)];
    vec![
        Grant::new("ReadWithoutResourceScope", reads, ["*".to_string()]),
        Grant::new("Ec2CreateTaggedAsTheStack", &[create], own()).when(request_tagged(s)),
        Grant::new("Ec2TagOnCreateOnly", &["ec2:CreateTags"], own()).when(Condition::any_of(
            "StringEquals",
            "ec2:CreateAction",
            [create.trim_start_matches("ec2:")],
        )),
        Grant::new("Ec2ChangeTheStacksOwn", changes, own().into_iter().chain(acts_on.iter().map(|t| s.ec2(t))))
            .when(resource_tagged(s)),
    ]
}

/// `down` deletes the function's Hyperplane ENIs once Lambda releases them ([`release_lambda_enis`]).
/// Lambda owns and names them: they carry no tag of ours and no id known in advance.
pub fn released_enis_grants(s: &Scope) -> Vec<Grant> {
    vec![
        Grant::new("ReadWithoutResourceScope", &["ec2:DescribeNetworkInterfaces"], ["*".to_string()]),
        Grant::new("Ec2ReleasedLambdaNetworkInterfaces", &["ec2:DeleteNetworkInterface"], [s.ec2("network-interface")]),
    ]
}

/// The filter that finds everything of this stack: one describe per EC2 type finds them all (the
/// discovery sweep), and each resource picks its own by its resource tag ([`pick`]).
pub fn stack_filter(ctx: &Ctx) -> Filter {
    filter(&format!("tag:{TAG_STACK}"), ctx.stack.clone())
}

pub fn filter(name: &str, value: impl Into<String>) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Of the stack's `items` of one EC2 type, the one tagged as `resource` (at most one).
pub fn pick<T: Clone>(
    ctx: &Ctx,
    items: &[T],
    tags: impl Fn(&T) -> &[Tag],
    what: &str,
    resource: Name,
) -> Result<Option<T>> {
    let ours: Vec<T> = items
        .iter()
        .filter(|item| {
            ctx.owns(resource, tags(item).iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())))
        })
        .cloned()
        .collect();
    at_most_one(ours, what, resource)
}

/// Delete the Lambda Hyperplane ENIs (description `AWS Lambda VPC ENI*`) attached to a security
/// group or subnet once Lambda has released them (status `available`). Returns how many are
/// still in use. After the function is detached from the VPC and deleted, AWS releases them in
/// minutes to ~45 minutes (terraform-provider-aws `deleteLingeringLambdaENIs`, P99 ~35 min); until
/// then the group and subnets cannot be deleted (DependencyViolation).
pub async fn release_lambda_enis(ctx: &Ctx, resource: Name, filter_name: &str, filter_value: &str) -> Result<usize> {
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
    let interfaces = out.network_interfaces();
    let available: Vec<&str> = interfaces
        .iter()
        .filter(|eni| eni.status().is_some_and(|s| s.as_str() == "available"))
        .filter_map(|eni| eni.network_interface_id())
        .collect();
    // All at once, and each once in the run: the security group and the subnets hold the same
    // interfaces.
    let deleted = futures::future::join_all(available.iter().map(|&id| {
        ctx.once(format!("DeleteNetworkInterface {id}"), move || async move {
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
                Ok(_) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(e),
            }
        })
    }))
    .await;
    let mut in_use = interfaces.len() - available.len();
    for res in deleted {
        match res {
            Ok(_) => {}
            // Still being released by Lambda: the next round retries.
            Err(e) if e.kind() == Some(crate::error::ErrorKind::Conflict) => in_use += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(in_use)
}
/// The stack's subnets (one read per run, shared by the subnets, their zones and the route
/// tables).
pub async fn stack_subnets(ctx: &Ctx) -> Result<Arc<Vec<aws_sdk_ec2::types::Subnet>>> {
    ctx.once("ec2:DescribeSubnets", || async {
        let out =
            ctx.aws.ec2.describe_subnets().filters(stack_filter(ctx)).send().await.aws("EC2", "DescribeSubnets")?;
        Ok(out.subnets().to_vec())
    })
    .await
}
