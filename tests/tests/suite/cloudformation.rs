//! Issue 2 / design rule: before `up` creates (or refuses) a resource with a fixed name, it asks
//! CloudFormation whether a stack (a CDK deployment of the same sample, say) owns that name, and
//! names that stack. A same-named resource is never adopted or modified.
//!
//! moto gap: moto 5.2.5 does not implement `DescribeStackResources` by `PhysicalResourceId` (it
//! answers "Stack with id None does not exist" even for a resource its own stack created), so
//! the proxy answers that one call with the response AWS documents. Everything else is moto.

use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use e2e::proxy::Rule;
use e2e::{Account, Checks};

/// DescribeStackResources' answer for `physical_id`, owned by the CloudFormation stack `stack` as
/// its `logical_id` of type `type_name`.
pub fn describe_stack_resources_xml(stack: &str, logical_id: &str, type_name: &str, physical_id: &str) -> String {
    format!(
        r#"<DescribeStackResourcesResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">
  <DescribeStackResourcesResult>
    <StackResources>
      <member>
        <StackName>{stack}</StackName>
        <StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/{stack}/0f1e2d3c</StackId>
        <LogicalResourceId>{logical_id}</LogicalResourceId>
        <PhysicalResourceId>{physical_id}</PhysicalResourceId>
        <ResourceType>{type_name}</ResourceType>
        <Timestamp>2026-11-01T10:00:00Z</Timestamp>
        <ResourceStatus>CREATE_COMPLETE</ResourceStatus>
      </member>
    </StackResources>
  </DescribeStackResourcesResult>
  <ResponseMetadata><RequestId>e2e-canned</RequestId></ResponseMetadata>
</DescribeStackResourcesResponse>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_owned_by_a_cloudformation_stack_is_reported_and_left_alone() {
    let account = Account::start().await;
    let stack = account.stack("cfn");
    let (aws, proxy, n) = (&account.aws, &account.proxy, &stack.names);
    let mut c = Checks::new();

    // The table a CDK deployment made: our name, no tags of ours.
    aws.dynamodb
        .create_table()
        .table_name(&n.table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("id").attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap())
        .send()
        .await
        .expect("create the CDK-owned table");
    proxy.add_rule(Rule::new().service("cloudformation").operation("DescribeStackResources").reply(
        200,
        "text/xml",
        &describe_stack_resources_xml("CdkMoviesStack", "demotable8A1B2C3D", "AWS::DynamoDB::Table", &n.table),
    ));

    let out = stack.deployer.run(&["up", "--artifact", &stack.artifact]).await;
    c.eq("exit code", out.code, 1);
    c.check(out.stderr.contains("owned by CloudFormation stack `CdkMoviesStack`"), format!("names the stack:\n{out}"));
    c.check(out.stderr.contains("demotable8A1B2C3D"), "names the logical id");
    c.check(out.stderr.contains(&n.table), "names the table");
    c.check(
        proxy.calls().iter().any(|call| call.name() == "cloudformation DescribeStackResources"),
        "asked CloudFormation",
    );

    // Left alone: no write of any kind on that table, and it still has no tags of ours.
    let touched: Vec<String> = proxy
        .mutating_calls()
        .iter()
        .filter(|call| call.service == "dynamodb" && call.table.as_deref() == Some(n.table.as_str()))
        .map(|call| call.name())
        .collect();
    c.check(touched.is_empty(), format!("no mutating DynamoDB call on the CDK table: {touched:?}"));
    let arn = aws.dynamodb.describe_table().table_name(&n.table).send().await.unwrap();
    let arn = arn.table().and_then(|t| t.table_arn()).unwrap_or_default().to_string();
    let tags = aws.dynamodb.list_tags_of_resource().resource_arn(&arn).send().await.unwrap();
    c.check(
        tags.tags().iter().all(|t| !t.key().starts_with("movies-stack:")),
        format!("no movies-stack tags: {tags:?}"),
    );
    c.finish("CloudFormation ownership");
}
