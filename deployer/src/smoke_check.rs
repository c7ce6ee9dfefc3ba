//! `movies-stack smoke`: proves the deployed API works, end to end, with the seed's requests:
//! no key (403 `{"message":"Forbidden"}`), a wrong key (403), the Standard key (200 and the item
//! in the table, `year` a number), a malformed body (400) and `GET /` (405). The test item has a
//! unique id and is deleted afterwards unless `--keep-item`. Key values never appear in the
//! output. Exit 0 only when every step matched; 5 otherwise.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_http_client::{Connector, tls};
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result, exit};
use crate::resources::{Ctx, LiveStates, api_key, stage, table};

/// The seed's sample body; `id` is replaced by the run's unique id.
const SAMPLE_TITLE: &str = "Test Movie";
const SAMPLE_YEAR: &str = "2023";
/// API Gateway's answer to a request without a valid key on a key-required method.
const FORBIDDEN: &str = "Forbidden";
const INSERTED: &str = "Successfully inserted data!";

/// What to test and where.
#[derive(Debug, Clone)]
pub struct Target {
    /// The base URL (the stage's invoke URL unless overridden), ending with `/`.
    pub url: String,
    /// The Standard API key's id (its value is read with GetApiKey, never shown).
    pub standard_key_id: String,
    pub table: String,
    pub keep_item: bool,
    pub timeout: Duration,
}

impl Target {
    /// From a stack's outputs; `url` overrides the stage's invoke URL.
    pub fn from_outputs(
        config: &Config,
        outputs: &LiveStates,
        url: Option<&str>,
        keep_item: bool,
        timeout: Duration,
    ) -> Result<Target> {
        let missing =
            |what: &str| Error::other(format!("stack {} has no {what}: run `movies-stack up` first", config.stack));
        let url = match url {
            Some(u) => u.to_string(),
            None => outputs.get(stage::ID).map_err(|_| missing("stage"))?.url.clone(),
        };
        Ok(Target {
            url: if url.ends_with('/') { url } else { format!("{url}/") },
            standard_key_id: outputs.get(api_key::STANDARD).map_err(|_| missing("Standard API key"))?.id.clone(),
            table: outputs.get(table::ID).map(|t| t.name.clone()).unwrap_or_else(|_| config.table.name.clone()),
            keep_item,
            timeout,
        })
    }
}

/// One step: what was sent, what was expected, what came back.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: &'static str,
    /// `POST /`, `GET /`, `GetItem`, `DeleteItem`.
    pub request: &'static str,
    pub expected: String,
    /// The HTTP status (API steps only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub ok: bool,
    /// Why it did not match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    pub item_id: String,
    pub table: String,
    pub passed: bool,
    pub steps: Vec<Step>,
}

impl Report {
    pub fn exit_code(&self) -> i32 {
        if self.passed { exit::OK } else { exit::SMOKE_FAILED }
    }

    /// The report as people read it.
    pub fn human(&self) -> String {
        let mut lines = vec![format!("Smoke test of {} (item {} in table {}):", self.url, self.item_id, self.table)];
        for s in &self.steps {
            let status = s.status.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
            lines.push(format!(
                "  {:<4} {:<24} {:<10} {:>3} {:>6} ms  expected {}",
                if s.ok { "ok" } else { "FAIL" },
                s.step,
                s.request,
                status,
                s.latency_ms,
                s.expected
            ));
            if let Some(p) = &s.problem {
                lines.push(format!("       {p}"));
            }
        }
        let failed: Vec<&Step> = self.steps.iter().filter(|s| !s.ok).collect();
        if failed.is_empty() {
            lines.push(format!("smoke: all {} steps matched.", self.steps.len()));
        } else {
            lines.push(format!(
                "smoke: {} of {} steps failed: {}",
                failed.len(),
                self.steps.len(),
                failed
                    .iter()
                    .map(|s| format!("{} ({})", s.step, s.problem.as_deref().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        lines.join("\n")
    }
}

/// A URL the smoke test may send the Standard key to: http(s), and plain http:// only to this
/// machine (the key would cross the network unencrypted).
pub fn check_url(flag: &str, u: &str) -> Result<()> {
    if !crate::config::valid_url(u) {
        return Err(Error::input(format!("{flag} {u:?}: expected an http:// or https:// URL")));
    }
    if crate::config::plain_http_off_machine(u) {
        return Err(Error::input(format!(
            "{flag} {u:?}: plain http:// to another machine would send the Standard API key unencrypted: use https:// \
             (plain http:// is for localhost only)"
        )));
    }
    Ok(())
}

/// An answer with every key value this test sent replaced by a placeholder: a server that echoes
/// the request must not put a key on stdout.
fn redacted(answer: Answer, keys: &[&str]) -> Answer {
    answer.map(|(status, body, latency)| {
        let body = keys.iter().filter(|k| !k.is_empty()).fold(body, |b, k| b.replace(k, "<the API key sent>"));
        (status, body, latency)
    })
}

/// Run every step against `target`. `Err` only when the test cannot start (the key's value
/// cannot be read); a step that fails is recorded in the report.
pub async fn smoke(ctx: &Ctx, target: &Target) -> Result<Report> {
    let key = api_key::key_value(ctx, &target.standard_key_id).await.map_err(|e| e.for_resource("api-key-standard"))?;
    let http = Http::new(target.timeout);
    let item_id = format!("smoke-{}-{}", crate::clock::now_ms() / 1000, random_hex(6));
    let body = serde_json::json!({"year": SAMPLE_YEAR, "title": SAMPLE_TITLE, "id": item_id}).to_string();
    let wrong_key = format!("movies-stack-smoke-wrong-key-{}", random_hex(12));
    let mut steps = Vec::new();

    let sent = [key.as_str(), wrong_key.as_str()];
    let send = |method: &'static str, key: Option<&str>, body: &str| {
        let (http, url, body, key) = (&http, &target.url, body.to_string(), key.map(str::to_string));
        async move { redacted(http.send(url, method, key.as_deref(), &body).await, &sent) }
    };
    let r = send("POST", None, &body).await;
    steps.push(expect(r, "no key", "POST /", 403, Some(FORBIDDEN)));
    let r = send("POST", Some(&wrong_key), &body).await;
    steps.push(expect(r, "wrong key", "POST /", 403, None));
    let r = send("POST", Some(&key), &body).await;
    steps.push(expect(r, "Standard key", "POST /", 200, Some(INSERTED)));

    let started = Instant::now();
    let item = table::get_item(ctx, &target.table, &item_id).await;
    steps.push(read_back(item, started.elapsed()));

    // Truncated JSON: refused by the request validator or by the function, either way a 400.
    let malformed = format!(r#"{{"year": {SAMPLE_YEAR}, "title": "{SAMPLE_TITLE}", "id": "{item_id}""#);
    let r = send("POST", Some(&key), &malformed).await;
    steps.push(expect(r, "malformed body", "POST /", 400, None));
    let r = send("GET", Some(&key), "").await;
    steps.push(expect(r, "GET", "GET /", 405, None));

    if !target.keep_item {
        let started = Instant::now();
        let res = table::delete_item(ctx, &target.table, &item_id).await;
        steps.push(Step {
            step: "delete the test item",
            request: "DeleteItem",
            expected: "deleted".into(),
            status: None,
            latency_ms: millis(started.elapsed()),
            ok: res.is_ok(),
            problem: res.err().map(|e| e.to_string()),
        });
    }
    let passed = steps.iter().all(|s| s.ok);
    Ok(Report { url: target.url.clone(), item_id, table: target.table.clone(), passed, steps })
}

/// An HTTP answer: status, body, latency.
type Answer = std::result::Result<(u16, String, Duration), (String, Duration)>;

/// Compare an answer with the expected status and, when given, the `message` of a JSON body.
fn expect(answer: Answer, step: &'static str, request: &'static str, status: u16, message: Option<&str>) -> Step {
    let expected = match message {
        Some(m) => format!("{status} {}", serde_json::json!({ "message": m })),
        None => status.to_string(),
    };
    let (got, latency, problem) = match answer {
        Err((e, latency)) => (None, latency, Some(format!("no answer: {e}"))),
        Ok((got, body, latency)) => {
            let problem = if got != status {
                Some(format!("answered {got} instead of {status}: {}", clip(&body)))
            } else {
                message.and_then(|m| {
                    let actual = serde_json::from_str::<serde_json::Value>(&body).ok();
                    let matches = actual
                        .as_ref()
                        .and_then(|v| v.as_object())
                        .is_some_and(|o| o.len() == 1 && o.get("message").and_then(|x| x.as_str()) == Some(m));
                    (!matches)
                        .then(|| format!("body {} instead of {}", clip(&body), serde_json::json!({ "message": m })))
                })
            };
            (Some(got), latency, problem)
        }
    };
    Step { step, request, expected, status: got, latency_ms: millis(latency), ok: problem.is_none(), problem }
}

/// The item the Standard-key request wrote: present, `year` stored as a number, the title as
/// sent.
fn read_back(item: Result<Option<std::collections::HashMap<String, AttributeValue>>>, took: Duration) -> Step {
    let problem = match item {
        Err(e) => Some(format!("cannot read the table: {e}")),
        Ok(None) => Some("the item is not in the table".to_string()),
        Ok(Some(item)) => match (item.get("year"), item.get("title")) {
            (Some(AttributeValue::N(n)), _) if n != SAMPLE_YEAR => {
                Some(format!("`year` is the number {n}, expected {SAMPLE_YEAR}"))
            }
            (Some(AttributeValue::N(_)), Some(AttributeValue::S(t))) if t == SAMPLE_TITLE => None,
            (Some(AttributeValue::N(_)), title) => Some(format!("`title` is {title:?}, expected {SAMPLE_TITLE:?}")),
            (Some(other), _) => Some(format!("`year` is {other:?}, expected a number (N)")),
            (None, _) => Some("the item has no `year`".to_string()),
        },
    };
    Step {
        step: "item read back",
        request: "GetItem",
        expected: format!("year N {SAMPLE_YEAR}"),
        status: None,
        latency_ms: millis(took),
        ok: problem.is_none(),
        problem,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// At most 200 characters of a body, for a message.
fn clip(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None if body.is_empty() => "(empty body)".to_string(),
        None => body.to_string(),
    }
}

/// `n` random hex digits: std's `RandomState` is seeded from the OS's randomness, which is all a
/// unique test id and a wrong key need.
fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    while out.len() < n {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(n);
    out
}

/// The SDK's own HTTP stack (hyper 1 + rustls with ring, the system's roots), used directly: no
/// second HTTP client in the binary.
struct Http {
    connector: Connector,
    timeout: Duration,
}

impl Http {
    fn new(timeout: Duration) -> Http {
        let connector =
            Connector::builder().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)).build();
        Http { connector, timeout }
    }

    /// One request; the key (if any) goes in `x-api-key` and nowhere else.
    async fn send(&self, url: &str, method: &str, key: Option<&str>, body: &str) -> Answer {
        let started = Instant::now();
        let fail = |e: String| Err((e, started.elapsed()));
        let mut req = HttpRequest::new(SdkBody::from(body.to_string()));
        if let Err(e) = req.set_method(method) {
            return fail(e.to_string());
        }
        if let Err(e) = req.set_uri(url) {
            return fail(format!("bad URL {url}: {e}"));
        }
        let h = req.headers_mut();
        h.insert("content-type", "application/json");
        h.insert("user-agent", concat!("movies-stack-smoke/", env!("CARGO_PKG_VERSION")));
        if !body.is_empty() {
            h.insert("content-length", body.len().to_string());
        }
        if let Some(k) = key {
            h.insert("x-api-key", k.to_string());
        }
        let exchange = async {
            let resp = self.connector.call(req).await.map_err(|e| crate::error::chain(&e))?;
            let status = resp.status().as_u16();
            let bytes = ByteStream::new(resp.into_body()).collect().await.map_err(|e| crate::error::chain(&e))?;
            Ok::<_, String>((status, String::from_utf8_lossy(&bytes.into_bytes()).into_owned()))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok((status, body))) => Ok((status, body, started.elapsed())),
            Ok(Err(e)) => fail(e),
            Err(_) => fail(format!("timed out after {}s", self.timeout.as_secs())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_sent_is_never_quoted_back() {
        let echoed = answer(500, r#"{"headers": {"x-api-key": "k3y-VALUE-123"}, "also": "k3y-VALUE-123"}"#);
        let step = expect(redacted(echoed, &["k3y-VALUE-123", ""]), "k", "POST /", 200, Some(INSERTED));
        let problem = step.problem.expect("a 500 is a problem");
        assert!(!problem.contains("k3y-VALUE-123"), "{problem}");
        assert!(problem.contains("<the API key sent>"), "{problem}");
    }

    #[test]
    fn the_key_goes_over_plain_http_to_this_machine_only() {
        check_url("--url", "http://127.0.0.1:8080/").unwrap();
        check_url("--url", "https://abc.execute-api.us-east-1.amazonaws.com/prod/").unwrap();
        let e = check_url("--url", "http://api.example.com/").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::INPUT);
        assert!(e.to_string().contains("--url") && e.to_string().contains("https://"), "{e}");
    }

    fn answer(status: u16, body: &str) -> Answer {
        Ok((status, body.to_string(), Duration::from_millis(12)))
    }

    #[test]
    fn status_and_message_must_both_match() {
        let ok = expect(answer(403, r#"{"message":"Forbidden"}"#), "no key", "POST /", 403, Some(FORBIDDEN));
        assert!(ok.ok && ok.problem.is_none() && ok.latency_ms == 12, "{ok:?}");
        let spaced =
            expect(answer(200, r#"{"message": "Successfully inserted data!"}"#), "k", "POST /", 200, Some(INSERTED));
        assert!(spaced.ok, "{spaced:?}");
        let wrong_status = expect(answer(200, r#"{"message":"Forbidden"}"#), "no key", "POST /", 403, Some(FORBIDDEN));
        assert_eq!(wrong_status.problem.as_deref(), Some(r#"answered 200 instead of 403: {"message":"Forbidden"}"#));
        let wrong_body = expect(answer(403, r#"{"message":"Nope"}"#), "no key", "POST /", 403, Some(FORBIDDEN));
        assert!(!wrong_body.ok && wrong_body.problem.unwrap().starts_with("body {\"message\":\"Nope\"}"));
        let extra_field = expect(answer(403, r#"{"message":"Forbidden","x":1}"#), "s", "POST /", 403, Some(FORBIDDEN));
        assert!(!extra_field.ok);
        let status_only = expect(answer(400, "not json at all"), "malformed", "POST /", 400, None);
        assert!(status_only.ok);
        let down = expect(Err(("connection refused".into(), Duration::ZERO)), "GET", "GET /", 405, None);
        assert_eq!((down.ok, down.status), (false, None));
        assert_eq!(down.problem.as_deref(), Some("no answer: connection refused"));
    }

    #[test]
    fn the_item_must_hold_a_numeric_year() {
        let item = |year: AttributeValue| {
            Ok(Some(std::collections::HashMap::from([
                ("id".to_string(), AttributeValue::S("smoke-1".into())),
                ("title".to_string(), AttributeValue::S(SAMPLE_TITLE.into())),
                ("year".to_string(), year),
            ])))
        };
        assert!(read_back(item(AttributeValue::N("2023".into())), Duration::ZERO).ok);
        let s = read_back(item(AttributeValue::S("2023".into())), Duration::ZERO);
        assert_eq!(s.problem.as_deref(), Some(r#"`year` is S("2023"), expected a number (N)"#));
        let other = read_back(item(AttributeValue::N("1999".into())), Duration::ZERO);
        assert_eq!(other.problem.as_deref(), Some("`year` is the number 1999, expected 2023"));
        let missing = read_back(Ok(None), Duration::ZERO);
        assert_eq!(missing.problem.as_deref(), Some("the item is not in the table"));
    }

    #[test]
    fn ids_are_random_hex() {
        let (a, b) = (random_hex(6), random_hex(6));
        assert_eq!(a.len(), 6);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(random_hex(40).len(), 40);
    }
}
