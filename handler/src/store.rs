//! The real [`MovieStore`]: one DynamoDB `PutItem` per request, through a client built once at
//! start-up.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_http_client::{Builder, tls};

use crate::{Movie, MovieStore, StoreError, StoreErrorKind, THROTTLING_CODES};

/// The HTTPS client for the AWS SDK: hyper 1 + rustls 0.23 with the `ring` provider (no aws-lc,
/// nothing to cross-compile but `ring`). Plain `http://` endpoints (a local moto server through
/// `AWS_ENDPOINT_URL`) work through it too.
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    Builder::new().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)).build_https()
}

/// The shared SDK configuration from the environment Lambda gives a function, with
/// [`https_client`]. See [`sdk_config_from`] for what is read.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    sdk_config_from(|name| std::env::var(name).ok())
}

/// The SDK configuration from environment variables (`var` looks one up):
///
/// - region: `AWS_REGION`, else `AWS_DEFAULT_REGION`;
/// - credentials: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (what Lambda
///   sets), read by the SDK's environment credentials provider;
/// - endpoint: `AWS_ENDPOINT_URL_DYNAMODB`, else `AWS_ENDPOINT_URL` (e.g. a local moto server);
/// - retries: the standard mode with `AWS_MAX_ATTEMPTS` attempts (default 3);
/// - timeouts: 3.1 s to connect (what `aws-config` sets), the Lambda deadline for the rest (see
///   `handle`).
///
/// Deliberately not `aws_config::defaults(...).load()`: its default chains (profile files, SSO,
/// `credential_process`, web identity through STS, ECS, IMDS) never apply in Lambda, where the
/// credentials are in the environment, but they put their code (the STS and SSO clients among it)
/// into the binary and read `~/.aws/config` at start-up.
pub fn sdk_config_from(var: impl Fn(&str) -> Option<String>) -> aws_config::SdkConfig {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    use aws_sdk_dynamodb::config::{Region, SharedCredentialsProvider};

    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let attempts = set("AWS_MAX_ATTEMPTS").and_then(|v| v.trim().parse::<u32>().ok()).filter(|n| *n > 0).unwrap_or(3);
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()))
        .retry_config(RetryConfig::standard().with_max_attempts(attempts))
        .timeout_config(TimeoutConfig::builder().connect_timeout(std::time::Duration::from_millis(3100)).build());
    if let Some(region) = set("AWS_REGION").or_else(|| set("AWS_DEFAULT_REGION")) {
        builder = builder.region(Region::new(region));
    }
    if let Some(url) = set("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| set("AWS_ENDPOINT_URL")) {
        builder = builder.endpoint_url(url);
    }
    builder.build()
}

/// The DynamoDB client of the function: `sdk` plus the [`crate::xray::XRay`] interceptor, which
/// sends a subsegment per call of a sampled invocation to the X-Ray daemon (when Lambda runs one,
/// i.e. `AWS_XRAY_DAEMON_ADDRESS` is set).
pub fn dynamodb_client(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(crate::xray::XRay::from_env()).build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Writes movies to one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

impl MovieStore for DynamoStore {
    async fn put_movie(&self, movie: &Movie) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(movie.id.clone()))
            .item("title", AttributeValue::S(movie.title.clone()))
            .item("year", AttributeValue::N(movie.year.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }
}

/// Maps an AWS error code to a [`StoreErrorKind`].
pub fn classify_code(code: Option<&str>) -> StoreErrorKind {
    match code {
        Some(c) if THROTTLING_CODES.contains(&c) => StoreErrorKind::Throttled,
        _ => StoreErrorKind::Other,
    }
}

fn store_error(err: &SdkError<PutItemError>) -> StoreError {
    let code = err.code().map(str::to_owned);
    let kind = match err {
        SdkError::TimeoutError(_) => StoreErrorKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => StoreErrorKind::Timeout,
        _ => classify_code(code.as_deref()),
    };
    StoreError { kind, code, detail: error_chain(err) }
}

/// `Display` of the error and of each `source()`, joined with `": "`. The SDK's top-level
/// `Display` alone is just `service error` / `dispatch failure`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
