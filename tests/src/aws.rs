//! SDK clients for reading the deployed state back.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::{Builder, tls};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// An EC2 `Filter` with one value (`tag:KEY`, `vpc-id`, `group-id`, ...).
pub fn ec2_filter(name: &str, value: &str) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder().name(name).values(value).build()
}

/// An [`SdkConfig`] for `endpoint` (moto, or a proxy): region us-east-1, static `testing`
/// credentials, rustls+ring, and at most `max_attempts` attempts per call.
pub async fn sdk_config(endpoint: &str, max_attempts: u32) -> SdkConfig {
    let http = Builder::new().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "e2e"))
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
        .load()
        .await
}

/// The clients the tests read back with.
#[derive(Clone, Debug)]
pub struct Aws {
    pub config: SdkConfig,
    pub ec2: aws_sdk_ec2::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub iam: aws_sdk_iam::Client,
    /// Through [`crate::cbor::JsonBackend`]: the SDK speaks RPC v2 CBOR, moto JSON.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub wafv2: aws_sdk_wafv2::Client,
    /// The account's trails, as someone other than the deployer makes them.
    pub cloudtrail: aws_sdk_cloudtrail::Client,
}

impl Aws {
    /// Clients for `endpoint` with the SDK's standard 3 attempts.
    pub async fn new(endpoint: &str) -> Aws {
        Aws::with_attempts(endpoint, 3).await
    }

    /// The table's point-in-time-recovery status (`ENABLED`, `DISABLED`), read with
    /// DescribeContinuousBackups; panics on an SDK error.
    pub async fn pitr_status(&self, table: &str) -> Option<String> {
        let out = self
            .dynamodb
            .describe_continuous_backups()
            .table_name(table)
            .send()
            .await
            .expect("DescribeContinuousBackups");
        out.continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            .map(|s| s.as_str().to_string())
    }

    /// The network interfaces that match every filter, as (id, status); panics on an SDK error.
    pub async fn network_interfaces(&self, filters: Vec<aws_sdk_ec2::types::Filter>) -> Vec<(String, String)> {
        let out = self
            .ec2
            .describe_network_interfaces()
            .set_filters(Some(filters))
            .send()
            .await
            .expect("DescribeNetworkInterfaces");
        out.network_interfaces()
            .iter()
            .map(|e| {
                (
                    e.network_interface_id().unwrap_or_default().to_string(),
                    e.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The tags of a WAF resource, as (key, value) pairs; panics on an SDK error.
    pub async fn waf_tags(&self, arn: &str) -> Vec<(String, String)> {
        let out =
            self.wafv2.list_tags_for_resource().resource_arn(arn).send().await.expect("ListTagsForResource (wafv2)");
        out.tag_info_for_resource()
            .map(|t| t.tag_list())
            .unwrap_or_default()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect()
    }

    pub async fn with_attempts(endpoint: &str, max_attempts: u32) -> Aws {
        let c = sdk_config(endpoint, max_attempts).await;
        Aws {
            ec2: aws_sdk_ec2::Client::new(&c),
            lambda: aws_sdk_lambda::Client::new(&c),
            dynamodb: aws_sdk_dynamodb::Client::new(&c),
            apigateway: aws_sdk_apigateway::Client::new(&c),
            logs: aws_sdk_cloudwatchlogs::Client::new(&c),
            iam: aws_sdk_iam::Client::new(&c),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(&c)
                    .http_client(SharedHttpClient::new(crate::cbor::JsonBackend::new(
                        c.http_client().expect("sdk_config sets an HTTP client"),
                        "monitoring",
                    )))
                    .build(),
            ),
            wafv2: aws_sdk_wafv2::Client::new(&c),
            cloudtrail: aws_sdk_cloudtrail::Client::new(&c),
            config: c,
        }
    }
}
