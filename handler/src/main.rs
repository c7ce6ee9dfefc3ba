//! `bootstrap`: the Lambda entry point (custom runtime `provided.al2023`). Logic lives in the lib.

use std::sync::Arc;

use handler::RawEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    handler::logging::init();

    let table = match std::env::var("TABLE_NAME") {
        Ok(t) if !t.trim().is_empty() => t,
        _ => {
            tracing::error!(event = "init_failed", reason = "TABLE_NAME is not set", "init failed");
            return Err("environment variable TABLE_NAME is not set".into());
        }
    };

    // Built once per execution environment, reused by every invocation.
    let sdk = handler::store::load_sdk_config().await;
    let store = Arc::new(handler::DynamoStore::new(handler::store::dynamodb_client(&sdk), table));
    tracing::info!(event = "init", table = store.table(), "handler ready");

    // The event is taken raw and decoded by the handler, so that an API Gateway event the typed
    // decoder refuses is still answered (400) instead of failing the invocation (a 502).
    lambda_runtime::run(service_fn(move |event: LambdaEvent<RawEvent>| {
        let store = Arc::clone(&store);
        async move { handler::handle_raw(&*store, store.table(), event).await }
    }))
    .await
}
