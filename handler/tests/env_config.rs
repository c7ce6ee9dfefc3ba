//! The start-up path of `main.rs`: `load_sdk_config()` from the environment, as in Lambda.
//! One test per process, because it sets environment variables.

mod common;

use handler::{DynamoStore, handle};

const TRACE: &str = "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1";

#[test]
fn handler_env_endpoint_and_xray_trace_header() {
    // SAFETY: this is the only test in this binary and no other thread runs yet.
    unsafe {
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_MAX_ATTEMPTS", "1"),
            // What the Lambda platform and lambda_runtime set during an invocation.
            ("AWS_LAMBDA_FUNCTION_NAME", "movies-handler"),
            ("_X_AMZN_TRACE_ID", TRACE),
        ] {
            std::env::set_var(k, v);
        }
        std::env::remove_var("AWS_ENDPOINT_URL_DYNAMODB");
        std::env::remove_var("AWS_PROFILE");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let fake = common::start(200, "{}").await;
        // SAFETY: still single-threaded (current-thread runtime).
        unsafe { std::env::set_var("AWS_ENDPOINT_URL", fake.url()) };

        let sdk = handler::store::load_sdk_config().await;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), "movies");
        let resp = handle(&store, store.table(), common::post(r#"{"id": "1", "title": "T", "year": 2000}"#)).await;
        assert_eq!(resp.status_code, 200);

        let reqs = fake.requests();
        assert_eq!(reqs.len(), 1, "AWS_ENDPOINT_URL was used");
        let auth = reqs[0].header("authorization").unwrap();
        assert!(auth.contains("AKIDENV/") && auth.contains("/eu-west-1/dynamodb/"), "{auth}");
        // The SDK forwards the invocation's X-Ray trace header to DynamoDB.
        assert_eq!(reqs[0].header("x-amzn-trace-id"), Some(TRACE));
    });
}
