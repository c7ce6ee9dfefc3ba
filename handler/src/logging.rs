//! JSON log lines on stdout (one object per line, no plain-text prefix), which CloudWatch Logs
//! stores as-is and Logs Insights can query field by field.

use std::str::FromStr;

use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// The log level from `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls), else
/// `RUST_LOG` (a plain level such as `debug`), else `info`.
pub fn level_from_env() -> LevelFilter {
    let raw = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_default();
    parse_level(&raw)
}

/// Parses a level name; `FATAL` (a Lambda level) is `error`; anything unknown is `info`.
pub fn parse_level(raw: &str) -> LevelFilter {
    let raw = raw.trim();
    if raw.is_empty() {
        return LevelFilter::INFO; // tracing would read "" as `error`
    }
    if raw.eq_ignore_ascii_case("fatal") {
        return LevelFilter::ERROR;
    }
    LevelFilter::from_str(raw).unwrap_or(LevelFilter::INFO)
}

/// The subscriber used by the function, writing to `writer`.
///
/// `level` applies to this crate. Every other crate (the Lambda runtime, the AWS SDK, hyper,
/// rustls) is capped at `info` whatever `level` says, because at `trace` the runtime logs the raw
/// event (which holds the request body and the `x-api-key` header) and the SDK logs requests.
pub fn subscriber<W>(writer: W, level: LevelFilter) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = Targets::new()
        .with_default(level.min(LevelFilter::INFO))
        .with_target("handler", level)
        .with_target("bootstrap", level);
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer)
        .with_filter(filter);
    tracing_subscriber::registry().with(layer)
}

/// Installs [`subscriber`] on stdout as the global default, at [`level_from_env`].
pub fn init() {
    tracing::subscriber::set_global_default(subscriber(std::io::stdout, level_from_env()))
        .expect("a global tracing subscriber was already installed");
}
