//! The real `DynamoStore` (AWS SDK + rustls/ring client) against a fake DynamoDB endpoint.

mod common;

use aws_lambda_events::encodings::Body;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use handler::{DynamoStore, Movie, MovieStore, StoreErrorKind, handle};
use serde_json::{Value, json};

const VALID: &str = r#"{"year": "2023", "title": "Test Movie", "id": "12"}"#;

fn store(endpoint: &str) -> DynamoStore {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "test-secret", None, None, "test"))
        .endpoint_url(endpoint)
        .http_client(handler::store::https_client())
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .build();
    DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), "movies")
}

fn status_and_message(resp: &aws_lambda_events::apigw::ApiGatewayProxyResponse) -> (i64, String) {
    let Some(Body::Text(t)) = &resp.body else { panic!("no body") };
    let v: Value = serde_json::from_str(t).unwrap();
    (resp.status_code, v["message"].as_str().unwrap().to_owned())
}

fn error_body(code: &str) -> &'static str {
    let s = format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"simulated {code}"}}"#);
    Box::leak(s.into_boxed_str())
}

#[tokio::test]
async fn handler_dynamodb_put_item_request() {
    let fake = common::start(200, "{}").await;
    let store = store(&fake.url());
    let resp = handle(&store, "movies", common::post(VALID)).await;
    assert_eq!(status_and_message(&resp), (200, "Successfully inserted data!".to_owned()));

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("x-amz-target"), Some("DynamoDB_20120810.PutItem"));
    assert!(reqs[0].header("authorization").unwrap().starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/"));
    // A plain PutItem (no condition): the same id again overwrites the item.
    let body: Value = serde_json::from_str(&reqs[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "TableName": "movies",
            "Item": {"id": {"S": "12"}, "title": {"S": "Test Movie"}, "year": {"N": "2023"}}
        })
    );
}

#[tokio::test]
async fn handler_dynamodb_error_codes_map_to_status() {
    let cases = [
        ("ProvisionedThroughputExceededException", StoreErrorKind::Throttled, 503),
        ("ThrottlingException", StoreErrorKind::Throttled, 503),
        ("RequestLimitExceeded", StoreErrorKind::Throttled, 503),
        ("ResourceNotFoundException", StoreErrorKind::Other, 500),
        ("AccessDeniedException", StoreErrorKind::Other, 500),
        ("ValidationException", StoreErrorKind::Other, 500),
    ];
    for (code, kind, status) in cases {
        let fake = common::start(400, error_body(code)).await;
        let store = store(&fake.url());
        let movie = Movie { id: "1".into(), title: "T".into(), year: 2000 };
        let err = store.put_movie(&movie).await.unwrap_err();
        assert_eq!(err.kind, kind, "{code}");
        assert_eq!(err.code.as_deref(), Some(code));
        assert!(err.detail.contains(&format!("simulated {code}")), "detail has the chain: {}", err.detail);

        let resp = handle(&store, "movies", common::post(VALID)).await;
        let (got, message) = status_and_message(&resp);
        assert_eq!(got, status, "{code}");
        assert!(!message.contains(code) && !message.contains("simulated"), "generic message: {message}");
    }
}

#[tokio::test]
async fn handler_dynamodb_unreachable_endpoint_is_500() {
    // Bind and drop: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let store = store(&format!("http://127.0.0.1:{port}"));
    let movie = Movie { id: "1".into(), title: "T".into(), year: 2000 };
    let err = store.put_movie(&movie).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Other);
    assert!(err.detail.starts_with("dispatch failure"), "{}", err.detail);
    assert!(err.detail.to_lowercase().contains("connection refused"), "{}", err.detail);
    let resp = handle(&store, "movies", common::post(VALID)).await;
    assert_eq!(status_and_message(&resp), (500, "Internal server error".to_owned()));
}
