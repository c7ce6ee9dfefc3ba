//! The strict AWS model against a real moto, through the SDK (no deployer): a fresh role is
//! refused, a function is Pending (updates and its reserved concurrency refused) and then Active,
//! its VPC ENIs appear in moto, block their security group and subnet after the function is gone,
//! and are released after their window. And two writes at once to one REST API's methods: one
//! is refused as a concurrent modification.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use aws_sdk_lambda::error::ProvideErrorMetadata as _;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime, VpcConfig};
use e2e::artifact::zip_with_bootstrap;
use e2e::{Aws, Behaviour, Checks, Moto, Proxy};

const LAMBDA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn code(err: &impl aws_sdk_ec2::error::ProvideErrorMetadata) -> String {
    err.code().unwrap_or_default().to_string()
}

async fn lambda_enis(aws: &Aws, sg: &str) -> Vec<(String, String)> {
    aws.network_interfaces(vec![
        Filter::builder().name("group-id").values(sg).build(),
        Filter::builder().name("description").values("AWS Lambda VPC ENI*").build(),
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_makes_aws_waits_and_lambda_enis_real() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.url());
    let aws = Aws::new(proxy.url()).await;
    let direct = Aws::new(moto.url()).await;
    let t = e2e::strict::Timings::fast();
    let mut c = Checks::new();

    let vpc = aws.ec2.create_vpc().cidr_block("10.7.0.0/16").send().await.expect("CreateVpc");
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_string();
    let subnet = aws
        .ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.7.1.0/24")
        .availability_zone("us-east-1a")
        .send()
        .await
        .expect("CreateSubnet");
    let subnet_id = subnet.subnet().and_then(|s| s.subnet_id()).unwrap().to_string();
    let sg = aws
        .ec2
        .create_security_group()
        .group_name("fn")
        .description("fn")
        .vpc_id(&vpc_id)
        .send()
        .await
        .expect("CreateSecurityGroup");
    let sg_id = sg.group_id().unwrap().to_string();
    let fresh = aws.ec2.describe_security_groups().group_ids(&sg_id).send().await;
    c.eq(
        "a security group just created is not found yet",
        fresh.err().map(|e| code(&e.into_service_error())),
        Some("InvalidGroup.NotFound".to_string()),
    );

    let role = aws
        .iam
        .create_role()
        .role_name("strict-fn")
        .assume_role_policy_document(LAMBDA_TRUST)
        .send()
        .await
        .expect("CreateRole");
    let role_arn = role.role().unwrap().arn().to_string();
    let create = || {
        aws.lambda
            .create_function()
            .function_name("strict-fn")
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(&role_arn)
            .vpc_config(VpcConfig::builder().subnet_ids(&subnet_id).security_group_ids(&sg_id).build())
            .code(FunctionCode::builder().zip_file(Blob::new(zip_with_bootstrap(b"one"))).build())
            .send()
    };
    let refused = create().await.expect_err("a role created a moment ago cannot be assumed yet");
    c.check(
        refused.as_service_error().and_then(|e| e.message()).is_some_and(|m| m.contains("cannot be assumed by Lambda")),
        format!("CreateFunction with a fresh role: {refused:?}"),
    );
    tokio::time::sleep(t.iam_propagation).await;
    let created = create().await.expect("CreateFunction after the IAM window");
    c.eq("the create answer says Pending", created.state().map(|s| s.as_str().to_string()), Some("Pending".into()));
    let update = aws.lambda.update_function_configuration().function_name("strict-fn").timeout(9).send().await;
    c.check(
        update.as_ref().err().and_then(|e| e.as_service_error()).is_some_and(|e| e.is_resource_conflict_exception()),
        format!("an update while Pending is a ResourceConflictException: {update:?}"),
    );
    // "Any invocations or other API actions that operate on the function will fail" (Lambda,
    // function states): its reserved concurrency too.
    let reserve = aws.lambda.put_function_concurrency().function_name("strict-fn").reserved_concurrent_executions(2);
    let reserve = reserve.send().await;
    let pending =
        "The operation cannot be performed at this time. The function is currently in the following state: Pending";
    c.check(
        reserve
            .as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_resource_conflict_exception() && e.message() == Some(pending)),
        format!("PutFunctionConcurrency while Pending is a ResourceConflictException: {reserve:?}"),
    );

    let enis = lambda_enis(&direct, &sg_id).await;
    c.eq("one Lambda ENI per subnet, in use", enis.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(), vec!["in-use"]);

    tokio::time::sleep(t.lambda_pending).await;
    let got = aws.lambda.get_function().function_name("strict-fn").send().await.expect("GetFunction");
    c.eq(
        "Active after the Pending window",
        got.configuration().and_then(|f| f.state()).map(|s| s.as_str().to_string()),
        Some("Active".into()),
    );
    let reserve = aws.lambda.put_function_concurrency().function_name("strict-fn").reserved_concurrent_executions(2);
    c.eq(
        "PutFunctionConcurrency once Active",
        reserve.send().await.ok().and_then(|o| o.reserved_concurrent_executions()),
        Some(2),
    );
    aws.lambda.delete_function().function_name("strict-fn").send().await.expect("DeleteFunction");
    let deleted_at = Instant::now();
    let sg_delete = aws.ec2.delete_security_group().group_id(&sg_id).send().await;
    c.eq(
        "the group of a lingering ENI cannot be deleted",
        sg_delete.err().map(|e| code(&e.into_service_error())),
        Some("DependencyViolation".to_string()),
    );
    let subnet_delete = aws.ec2.delete_subnet().subnet_id(&subnet_id).send().await;
    c.eq(
        "nor its subnet",
        subnet_delete.err().map(|e| code(&e.into_service_error())),
        Some("DependencyViolation".to_string()),
    );

    // Released after the linger window: the first call after it sees the ENI available.
    tokio::time::sleep(t.eni_linger.saturating_sub(deleted_at.elapsed()) + Duration::from_millis(100)).await;
    let enis = lambda_enis(&aws, &sg_id).await;
    c.eq(
        "the ENI is released after the window",
        enis.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        vec!["available"],
    );
    for (id, _) in &enis {
        aws.ec2.delete_network_interface().network_interface_id(id).send().await.expect("DeleteNetworkInterface");
    }
    aws.ec2.delete_security_group().group_id(&sg_id).send().await.expect("DeleteSecurityGroup after the ENI is gone");
    aws.ec2.delete_subnet().subnet_id(&subnet_id).send().await.expect("DeleteSubnet after the ENI is gone");

    let hits = proxy.model_hits();
    println!("model hits: {hits:?}");
    for b in [Behaviour::Ec2Propagation, Behaviour::IamPropagation, Behaviour::LambdaStates, Behaviour::LambdaEnis] {
        c.check(hits[&b] >= 1, format!("{b} acted: {hits:?}"));
    }
    c.check(
        proxy.model_operations().iter().all(|o| o.validated == o.calls),
        format!("every call was validated: {:?}", proxy.model_operations()),
    );
    c.finish("strict model against moto");
}

/// A new REST API: its id and its root resource's id.
async fn rest_api_with_root(aws: &Aws, name: &str) -> (String, String) {
    let api = aws.apigateway.create_rest_api().name(name).send().await.expect("CreateRestApi");
    let api_id = api.id().expect("an API id").to_string();
    let root = match api.root_resource_id() {
        Some(r) => r.to_string(),
        None => {
            let resources = aws.apigateway.get_resources().rest_api_id(&api_id).send().await.expect("GetResources");
            resources.items().first().and_then(|r| r.id()).expect("the root resource").to_string()
        }
    };
    (api_id, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_write_at_a_time_to_a_rest_apis_methods() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.url());
    let aws = Aws::new(proxy.url()).await;
    let mut c = Checks::new();

    let (api_id, root) = rest_api_with_root(&aws, "strict-api").await;
    let put = |verb: &'static str| {
        aws.apigateway
            .put_method()
            .rest_api_id(&api_id)
            .resource_id(&root)
            .http_method(verb)
            .authorization_type("NONE")
            .send()
    };
    // Sent at once: API Gateway applies one at a time and refuses the other.
    let (get, post) = tokio::join!(put("GET"), put("POST"));
    let conflicts: Vec<String> = [get.as_ref().err(), post.as_ref().err()]
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_service_error())
        .filter(|e| e.is_conflict_exception())
        .filter_map(|e| e.message().map(str::to_string))
        .collect();
    c.eq(
        "two PutMethod at once: one refused as a concurrent modification",
        conflicts,
        vec!["Unable to complete operation due to concurrent modification. Please try again later.".to_string()],
    );
    c.eq("two PutMethod at once: the other applied", usize::from(get.is_ok()) + usize::from(post.is_ok()), 1);
    // One after the other: both applied.
    let (first, second) = if get.is_ok() { ("POST", "DELETE") } else { ("GET", "DELETE") };
    c.check(put(first).await.is_ok(), format!("PutMethod {first} once the other write is done"));
    c.check(put(second).await.is_ok(), format!("PutMethod {second} after it"));
    c.check(
        proxy.model_hits()[&Behaviour::ApiGatewayConcurrentModification] == 1,
        format!("the model refused once: {:?}", proxy.model_hits()),
    );
    c.finish("REST API writes one at a time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_wait_for_the_accounts_cloudwatch_role() {
    use aws_sdk_apigateway::types::{IntegrationType, Op, PatchOperation};
    let moto = Moto::start();
    let proxy = Proxy::start(moto.url());
    let aws = Aws::new(proxy.url()).await;
    let mut c = Checks::new();

    let (api_id, root) = rest_api_with_root(&aws, "strict-logs").await;
    let method = aws.apigateway.put_method().rest_api_id(&api_id).resource_id(&root).http_method("GET");
    method.authorization_type("NONE").send().await.expect("PutMethod");
    let integration = aws.apigateway.put_integration().rest_api_id(&api_id).resource_id(&root).http_method("GET");
    integration.r#type(IntegrationType::Mock).send().await.expect("PutIntegration");
    let deployment = aws.apigateway.create_deployment().rest_api_id(&api_id).send().await.expect("CreateDeployment");
    let stage = aws.apigateway.create_stage().rest_api_id(&api_id).stage_name("prod");
    stage.deployment_id(deployment.id().unwrap_or_default()).send().await.expect("CreateStage");
    let logs = "arn:aws:logs:us-east-1:123456789012:log-group:strict-access";
    let set_logs = || {
        let op = PatchOperation::builder().op(Op::Replace).path("/accessLogSettings/destinationArn").value(logs);
        aws.apigateway.update_stage().rest_api_id(&api_id).stage_name("prod").patch_operations(op.build()).send()
    };

    let refused = set_logs().await.expect_err("access logs in an account without a CloudWatch role");
    let e = refused.as_service_error();
    c.eq(
        "without the account's role: AWS's refusal",
        (e.and_then(|e| e.code()), e.and_then(|e| e.message())),
        (
            Some("BadRequestException"),
            Some("CloudWatch Logs role ARN must be set in account settings to enable logging"),
        ),
    );
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"apigateway.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let role = aws.iam.create_role().role_name("strict-apigw-logs").assume_role_policy_document(trust).send().await;
    let role_arn = role.expect("CreateRole").role().map(|r| r.arn().to_string()).expect("a role");
    // One UpdateAccount, after the role has propagated (the quota is 1 per 20 s, refusals included).
    tokio::time::sleep(e2e::strict::Timings::default().iam_propagation + Duration::from_millis(500)).await;
    let op = PatchOperation::builder().op(Op::Replace).path("/cloudwatchRoleArn").value(&role_arn).build();
    aws.apigateway.update_account().patch_operations(op).send().await.expect("UpdateAccount");
    c.check(set_logs().await.is_ok(), "with the account's role: the access logs are set");
    let stage = aws.apigateway.get_stage().rest_api_id(&api_id).stage_name("prod").send().await.expect("GetStage");
    c.eq("the stage logs to the group", stage.access_log_settings().and_then(|l| l.destination_arn()), Some(logs));
    c.eq("the model refused once", proxy.model_hits()[&Behaviour::AccessLogsAccountRole], 1);
    c.finish("access logs need the account's CloudWatch role");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_versions_and_code_storage_are_refused_as_aws_refuses_them() {
    use aws_sdk_lambda::types::AliasRoutingConfiguration;
    let moto = Moto::start();
    // Room for the function's code and one version of it, not two.
    let zip = zip_with_bootstrap(b"#!/bin/sh\n# one\n");
    let size = zip.len() as u64;
    let proxy = Proxy::builder(moto.url())
        .without(Behaviour::IamPropagation, "a role made by the test, not what is tested")
        .lambda_code_storage_bytes(size * 5 / 2)
        .start();
    let aws = Aws::new(proxy.url()).await;
    let mut c = Checks::new();
    let role =
        aws.iam.create_role().role_name("strict-versions").assume_role_policy_document(LAMBDA_TRUST).send().await;
    let role_arn = role.expect("CreateRole").role().map(|r| r.arn().to_string()).expect("a role");
    let f = "strict-versions";
    aws.lambda
        .create_function()
        .function_name(f)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .role(&role_arn)
        .code(FunctionCode::builder().zip_file(Blob::new(zip.clone())).build())
        .send()
        .await
        .expect("CreateFunction");
    tokio::time::sleep(e2e::strict::Timings::fast().lambda_pending + Duration::from_millis(200)).await;
    let sha = aws.lambda.get_function().function_name(f).send().await.expect("GetFunction");
    let sha = sha.configuration().and_then(|c| c.code_sha256()).unwrap_or_default().to_string();

    let wrong = aws.lambda.publish_version().function_name(f).code_sha256("not-the-code").send().await;
    c.eq(
        "PublishVersion of other code",
        wrong.map_err(|e| code(&e)).err(),
        Some("InvalidParameterValueException".into()),
    );
    let v1 = aws.lambda.publish_version().function_name(f).code_sha256(&sha).send().await.expect("PublishVersion 1");
    c.eq("version 1", v1.version(), Some("1"));
    // A second version needs a second copy of the code: past the account's storage.
    let second = zip_with_bootstrap(b"#!/bin/sh\n# two\n");
    aws.lambda
        .update_function_code()
        .function_name(f)
        .zip_file(Blob::new(second))
        .send()
        .await
        .expect("UpdateFunctionCode");
    tokio::time::sleep(e2e::strict::Timings::fast().lambda_update + Duration::from_millis(200)).await;
    let full = aws.lambda.publish_version().function_name(f).send().await;
    c.eq(
        "a version past the code storage",
        full.map_err(|e| code(&e)).err(),
        Some("CodeStorageExceededException".into()),
    );

    let weights = |w: &[(&str, f64)]| {
        AliasRoutingConfiguration::builder()
            .set_additional_version_weights(Some(w.iter().map(|(k, v)| (k.to_string(), *v)).collect()))
            .build()
    };
    let create = |version: &str, w: &[(&str, f64)]| {
        aws.lambda
            .create_alias()
            .function_name(f)
            .name("live")
            .function_version(version)
            .routing_config(weights(w))
            .send()
    };
    // The first two break the service model's own constraints (weight 0.0-1.0, a version key of
    // digits): AWS's front end answers ValidationException, as the model's validation does.
    for (what, version, w, refusal) in [
        ("a weight above 1", "1", vec![("1", 1.5)], "ValidationException"),
        ("routing to $LATEST", "1", vec![("$LATEST", 0.1)], "ValidationException"),
        ("routing from $LATEST", "$LATEST", vec![("1", 0.1)], "InvalidParameterValueException"),
        ("a version never published", "1", vec![("7", 0.1)], "InvalidParameterValueException"),
        ("two other versions", "1", vec![("2", 0.1), ("3", 0.1)], "InvalidParameterValueException"),
    ] {
        let refused = create(version, &w).await;
        c.eq(what, refused.map_err(|e| code(&e)).err(), Some(refusal.to_string()));
    }
    create("1", &[]).await.expect("CreateAlias live -> 1");
    let held = aws.lambda.delete_function().function_name(f).qualifier("1").send().await;
    c.eq(
        "deleting the version the alias holds",
        held.map_err(|e| code(&e)).err(),
        Some("ResourceConflictException".into()),
    );
    // Other code, the storage, from $LATEST, never published, two others, the held version.
    c.eq("the versions model refused", proxy.model_hits()[&Behaviour::LambdaVersions], 6);
    c.finish("aliases, versions and code storage");
}
