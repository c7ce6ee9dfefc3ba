//! The fixtures themselves: moto starts, the proxy forwards and records every protocol
//! correctly, and injected faults reach the SDK as the intended error codes.

use std::time::{Duration, Instant};

use aws_sdk_apigateway::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use e2e::artifact::zip_with_bootstrap;
use e2e::proxy::count_by_name;
use e2e::{Account, Aws, Behaviour, Moto, Proxy, Rule, http_request};

const LAMBDA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn names(calls: &[e2e::Call]) -> Vec<String> {
    calls.iter().map(|c| c.name()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_records_every_protocol() {
    let moto = Moto::start();
    // This test is about the recording of each protocol: the SDK sends each call once, back to
    // back, with no waiting or retrying, so AWS's waits (a fresh role, a Pending function) would
    // only stand in the way. The deployer meets them in every other test.
    let proxy = Proxy::builder(moto.url())
        .without(Behaviour::IamPropagation, "calls sent back to back: this test checks the recording")
        .without(Behaviour::LambdaStates, "calls sent back to back: this test checks the recording")
        .start();
    let aws = Aws::new(proxy.url()).await;

    // EC2 (ec2 query protocol)
    let vpc = aws.ec2.create_vpc().cidr_block("10.9.0.0/16").send().await.expect("CreateVpc via proxy");
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).expect("vpc id").to_string();
    aws.ec2.describe_vpcs().vpc_ids(&vpc_id).send().await.expect("DescribeVpcs");
    let calls = proxy.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!((calls[0].service.as_str(), calls[0].operation.as_str(), calls[0].mutating), ("ec2", "CreateVpc", true));
    assert_eq!(
        (calls[1].service.as_str(), calls[1].operation.as_str(), calls[1].mutating),
        ("ec2", "DescribeVpcs", false)
    );
    assert_eq!(calls[0].status, Some(200));
    assert!(!calls[0].injected);

    // IAM (awsQuery), DynamoDB + Logs (awsJson), Lambda + API Gateway (restJson)
    let role = aws
        .iam
        .create_role()
        .role_name("fixture-fn")
        .assume_role_policy_document(LAMBDA_TRUST)
        .send()
        .await
        .expect("CreateRole");
    let role_arn = role.role().map(|r| r.arn().to_string()).expect("role arn");
    aws.iam.get_role().role_name("fixture-fn").send().await.expect("GetRole");
    aws.dynamodb.list_tables().send().await.expect("ListTables");
    aws.logs.create_log_group().log_group_name("/fixture/lg").send().await.expect("CreateLogGroup");
    aws.logs.describe_log_groups().log_group_name_prefix("/fixture").send().await.expect("DescribeLogGroups");
    aws.lambda
        .create_function()
        .function_name("fixture-fn")
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(&role_arn)
        .code(aws_sdk_lambda::types::FunctionCode::builder().zip_file(Blob::new(zip_with_bootstrap(b"one"))).build())
        .send()
        .await
        .expect("CreateFunction");
    aws.lambda
        .update_function_code()
        .function_name("fixture-fn")
        .zip_file(Blob::new(zip_with_bootstrap(b"two")))
        .send()
        .await
        .expect("UpdateFunctionCode");
    aws.lambda
        .update_function_configuration()
        .function_name("fixture-fn")
        .timeout(9)
        .send()
        .await
        .expect("UpdateFunctionConfiguration");
    aws.lambda.get_function().function_name("fixture-fn").send().await.expect("GetFunction");
    aws.lambda.list_functions().send().await.expect("ListFunctions");
    aws.apigateway.create_rest_api().name("fixture-api").send().await.expect("CreateRestApi");
    aws.apigateway.get_rest_apis().send().await.expect("GetRestApis");

    // /moto-api/ passes through unrecorded.
    let (status, _) = http_request(proxy.url(), "GET", "/moto-api/", None).expect("GET /moto-api/ via proxy");
    assert_eq!(status, 200);

    let got: Vec<(String, bool)> = proxy.calls()[2..].iter().map(|c| (c.name(), c.mutating)).collect();
    let want: Vec<(String, bool)> = [
        ("iam CreateRole", true),
        ("iam GetRole", false),
        ("dynamodb ListTables", false),
        ("logs CreateLogGroup", true),
        ("logs DescribeLogGroups", false),
        ("lambda CreateFunction", true),
        ("lambda UpdateFunctionCode", true),
        ("lambda UpdateFunctionConfiguration", true),
        ("lambda GetFunction", false),
        ("lambda ListFunctions", false),
        ("apigateway CreateRestApi", true),
        ("apigateway GetRestApis", false),
    ]
    .iter()
    .map(|(n, m)| (n.to_string(), *m))
    .collect();
    assert_eq!(got, want);
    assert!(proxy.calls().iter().all(|c| c.status == Some(200) || c.status == Some(201)), "{:?}", proxy.calls());
    assert_eq!(proxy.mutating_calls().len(), 7);
    println!("recorded: {:?}", count_by_name(&proxy.calls()));

    // Lambda was created in the Docker-less backend that Moto::start switched on.
    let direct = Aws::new(moto.url()).await;
    let f = direct.lambda.get_function().function_name("fixture-fn").send().await.expect("GetFunction direct");
    assert_eq!(f.configuration().and_then(|c| c.timeout()), Some(9));

    proxy.reset();
    assert!(proxy.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_injects_faults_in_each_protocol() {
    let account = Account::start().await;
    let proxy = &account.proxy;
    // One attempt: the SDK would otherwise retry throttling and 5xx answers.
    let aws = Aws::with_attempts(proxy.url(), 1).await;

    // EC2 query: the first DescribeVpcs fails, the second goes through.
    proxy.add_rule(
        Rule::new()
            .service("ec2")
            .operation("DescribeVpcs")
            .fail(400, "DependencyViolation", "injected <ec2>")
            .times(1),
    );
    let err = aws.ec2.describe_vpcs().send().await.expect_err("injected fault");
    assert_eq!(err.code(), Some("DependencyViolation"), "{err:?}");
    assert_eq!(err.message(), Some("injected <ec2>"));
    aws.ec2.describe_vpcs().send().await.expect("second DescribeVpcs reaches moto");

    // awsQuery (IAM), awsJson (DynamoDB, Logs), restJson (Lambda, API Gateway)
    proxy.add_rule(Rule::new().service("iam").fail(400, "Throttling", "Rate exceeded"));
    proxy.add_rule(Rule::new().service("dynamodb").fail(400, "ThrottlingException", "slow down"));
    proxy.add_rule(Rule::new().service("logs").operation("CreateLogGroup").fail(
        400,
        "LimitExceededException",
        "quota",
    ));
    proxy.add_rule(Rule::new().service("lambda").operation("CreateFunction").fail(
        400,
        "InvalidParameterValueException",
        "The role defined for the function cannot be assumed by Lambda.",
    ));
    proxy.add_rule(Rule::new().service("apigateway").mutating(false).fail(
        429,
        "TooManyRequestsException",
        "Too Many Requests",
    ));

    let e = aws.iam.list_roles().send().await.expect_err("iam fault");
    assert_eq!(e.code(), Some("Throttling"), "{e:?}");
    let e = aws.dynamodb.list_tables().send().await.expect_err("dynamodb fault");
    assert_eq!(e.code(), Some("ThrottlingException"), "{e:?}");
    let e = aws.logs.create_log_group().log_group_name("/x").send().await.expect_err("logs fault");
    assert_eq!(e.code(), Some("LimitExceededException"), "{e:?}");
    aws.logs.describe_log_groups().send().await.expect("other logs operations pass");
    let e = aws
        .lambda
        .create_function()
        .function_name("f")
        .role("arn:aws:iam::123456789012:role/nope")
        .code(aws_sdk_lambda::types::FunctionCode::builder().zip_file(Blob::new(zip_with_bootstrap(b"x"))).build())
        .send()
        .await
        .expect_err("lambda fault");
    assert_eq!(e.code(), Some("InvalidParameterValueException"), "{e:?}");
    assert_eq!(e.message(), Some("The role defined for the function cannot be assumed by Lambda."));
    let e = aws.apigateway.get_rest_apis().send().await.expect_err("apigateway fault");
    assert_eq!(e.code(), Some("TooManyRequestsException"), "{e:?}");
    aws.apigateway.create_rest_api().name("not-faulted").send().await.expect("mutating API Gateway calls pass");

    let injected: Vec<String> = proxy.calls().iter().filter(|c| c.injected).map(|c| c.to_string()).collect();
    assert_eq!(injected.len(), 6, "{injected:?}");
    assert!(injected.contains(&"lambda CreateFunction (mutating) -> 400 [injected]".to_string()), "{injected:?}");
    assert_eq!(proxy.rule_hits(), vec![1, 1, 1, 1, 1, 1]);

    // Latency, and a time window.
    proxy.clear_rules();
    proxy.add_rule(Rule::new().service("sts").delay(Duration::from_secs(60))); // never matches
    proxy.add_rule(Rule::new().service("dynamodb").delay(Duration::from_millis(300)));
    let t = Instant::now();
    aws.dynamodb.list_tables().send().await.expect("delayed call succeeds");
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());

    proxy.clear_rules();
    proxy.add_rule(
        Rule::new()
            .service("ec2")
            .fail(503, "Unavailable", "window")
            .during(Duration::ZERO, Duration::from_millis(400)),
    );
    let e = aws.ec2.describe_vpcs().send().await.expect_err("inside the window");
    assert_eq!(e.code(), Some("Unavailable"));
    tokio::time::sleep(Duration::from_millis(450)).await;
    aws.ec2.describe_vpcs().send().await.expect("after the window");
    println!("calls: {}", names(&proxy.calls()).join(", "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_answers_502_when_upstream_is_down() {
    let dead = format!("http://127.0.0.1:{}", e2e::free_port());
    let proxy = Proxy::start(&dead);
    let aws = Aws::with_attempts(proxy.url(), 1).await;
    let e = aws.dynamodb.list_tables().send().await.expect_err("upstream is down");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(502), "{e:?}");
    let calls = proxy.calls();
    assert_eq!(names(&calls), ["dynamodb ListTables"]);
    assert_eq!(calls[0].status, Some(502));
}
