//! Access log lines in the stage's format: its `$context.*` variables replaced by this request's
//! values (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-variables-for-access-logging.html).
//! A variable without a value is `-`, as in API Gateway's logs. Values are JSON-escaped, so a
//! JSON format (the one `up` configures) stays valid JSON whatever a client sends.

use std::io::Write;
use std::sync::Mutex;

/// Where the lines go: stdout (the command's result, as every command's), or a file
/// (`--access-log FILE`, appended to).
pub enum AccessLog {
    Stdout,
    File(Mutex<std::fs::File>),
}

impl AccessLog {
    pub fn file(path: &std::path::Path) -> std::io::Result<AccessLog> {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AccessLog::File(Mutex::new(f)))
    }

    /// Write one line, whole and flushed: the line is complete when the response goes out. An
    /// error is the caller's to report (it must not fail the request, nor end `serve`).
    pub fn write(&self, line: &str) -> std::io::Result<()> {
        let line = format!("{line}\n");
        match self {
            AccessLog::Stdout => crate::ui::try_write_stdout_bytes(line.as_bytes()),
            AccessLog::File(f) => {
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                f.write_all(line.as_bytes()).and_then(|()| f.flush())
            }
        }
    }
}

/// `format` with each `$context.NAME` replaced by `value(NAME)` (JSON-escaped), or `-`.
pub fn render(format: &str, value: impl Fn(&str) -> Option<String>) -> String {
    const MARK: &str = "$context.";
    let mut out = String::with_capacity(format.len() + 64);
    let mut rest = format;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        let len = after.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.').count();
        // A trailing dot ends a sentence, not the name.
        let name = after[..len].trim_end_matches('.');
        if name.is_empty() {
            out.push_str(MARK);
            rest = after;
            continue;
        }
        match value(name).filter(|v| !v.is_empty()) {
            Some(v) => out.push_str(&escape(&v)),
            None => out.push('-'),
        }
        rest = &after[name.len()..];
    }
    out.push_str(rest);
    out
}

/// The inside of a JSON string for `s`.
fn escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_replaced_escaped_or_dashed() {
        let value = |name: &str| match name {
            "requestId" => Some("r-1".to_string()),
            "identity.userAgent" => Some("evil\"agent\\".to_string()),
            "identity.apiKeyId" => Some(String::new()),
            _ => None,
        };
        let line = render(
            r#"{"id":"$context.requestId","ua":"$context.identity.userAgent","key":"$context.identity.apiKeyId","x":"$context.nope"} done: $context.requestId. $context."#,
            value,
        );
        assert_eq!(line, r#"{"id":"r-1","ua":"evil\"agent\\","key":"-","x":"-"} done: r-1. $context."#);
    }

    #[test]
    fn the_format_up_configures_renders_to_json() {
        let line = render(crate::resources::stage_access_logs::ACCESS_LOG_FORMAT, |n| Some(format!("v:{n}")));
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["status"], "v:status");
        assert_eq!(v["apiKeyId"], "v:identity.apiKeyId");
        assert_eq!(v["xrayTraceId"], "v:xrayTraceId");
    }
}
