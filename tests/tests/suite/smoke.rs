//! Issue 10, `movies-stack smoke` (and `up --smoke`) against a local HTTP server playing API
//! Gateway in front of the deployed stack in moto (moto's stage URL does not serve requests).
//!
//! The gateway answers as API Gateway and the function do: 403 `{"message":"Forbidden"}` without
//! a key or with a key that is not one of the stack's (the values read back with the SDK), 405
//! for GET, 400 for a body that is not JSON, and for a good POST it writes the item into the
//! stack's table in moto (`year` a number) and answers 200 `{"message": "Successfully inserted
//! data!"}`. Each [`Fault`] breaks one of those answers; `smoke` must then exit 5 and name that
//! step and what was wrong, and only that step.
//!
//! Also: the item is deleted afterwards (kept with `--keep-item`), key values never appear in
//! the output, an unreachable URL fails every request step, a stack that is not deployed is a
//! clear error, and `up --smoke` runs the same test after the deploy.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use e2e::{Account, Aws, Checks, Deployer, Output, Stack, StackNames, free_port};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// One way for the API to be wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// A wrong key is let through.
    AcceptsAnyKey,
    /// No key: 403, but not API Gateway's body.
    OtherForbiddenBody,
    /// The Standard-key POST answers 500.
    ServerError,
    /// The Standard-key POST answers 200 without writing.
    DropsWrites,
    /// The item is written with `year` as a string.
    YearAsString,
    /// A malformed body is answered 200.
    AcceptsMalformed,
    /// GET answers 200.
    AllowsGet,
}

/// What the gateway saw: (method, key sent: none / one of the stack's / another).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    None,
    Stack(&'static str),
    Other,
}

struct Gateway {
    url: String,
    fault: Arc<Mutex<Fault>>,
    seen: Arc<Mutex<Vec<(String, Key)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gateway {
    /// Serves on a free loopback port; `keys` are the stack's (tier, value).
    async fn start(aws: Aws, table: String, keys: Vec<(&'static str, String)>) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the gateway");
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let fault = Arc::new(Mutex::new(Fault::None));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new((aws, table, keys, fault.clone(), seen.clone()));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move {
                            let (aws, table, keys, fault, seen) = &*state;
                            let fault = *fault.lock().unwrap();
                            Ok::<_, Infallible>(answer(aws, table, keys, fault, seen, req).await)
                        }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Gateway { url, fault, seen, task }
    }

    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
        self.seen.lock().unwrap().clear();
    }
}

fn reply(status: u16, message: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(json!({ "message": message }).to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    r
}

async fn answer(
    aws: &Aws,
    table: &str,
    keys: &[(&'static str, String)],
    fault: Fault,
    seen: &Mutex<Vec<(String, Key)>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let key = match req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
        None => Key::None,
        Some(v) => keys.iter().find(|(_, k)| k == v).map_or(Key::Other, |(tier, _)| Key::Stack(tier)),
    };
    seen.lock().unwrap().push((method.to_string(), key.clone()));
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    match (&key, fault) {
        (Key::None, Fault::OtherForbiddenBody) => return reply(403, "Missing Authentication Token"),
        (Key::None, _) => return reply(403, "Forbidden"),
        (Key::Other, f) if f != Fault::AcceptsAnyKey => return reply(403, "Forbidden"),
        _ => {}
    }
    if method == Method::GET {
        return if fault == Fault::AllowsGet { reply(200, "ok") } else { reply(405, "Method not allowed; use POST") };
    }
    let Ok(movie) = serde_json::from_slice::<Value>(&body) else {
        // API Gateway's request validator.
        return if fault == Fault::AcceptsMalformed { reply(200, "ok") } else { reply(400, "Invalid request body") };
    };
    match fault {
        Fault::ServerError if key == Key::Stack("standard") => return reply(500, "Internal server error"),
        Fault::DropsWrites => return reply(200, "Successfully inserted data!"),
        _ => {}
    }
    let text = |k: &str| movie[k].as_str().unwrap_or_default().to_string();
    let year =
        if fault == Fault::YearAsString { AttributeValue::S(text("year")) } else { AttributeValue::N(text("year")) };
    aws.dynamodb
        .put_item()
        .table_name(table)
        .item("id", AttributeValue::S(text("id")))
        .item("title", AttributeValue::S(text("title")))
        .item("year", year)
        .send()
        .await
        .expect("the gateway's PutItem");
    reply(200, "Successfully inserted data!")
}

/// The steps of a JSON report, by name.
fn steps(report: &Value) -> HashMap<String, Value> {
    report["steps"]
        .as_array()
        .map(|a| a.iter().map(|s| (s["step"].as_str().unwrap_or_default().to_string(), s.clone())).collect())
        .unwrap_or_default()
}

fn leaks(run: &Output, secrets: &[String]) -> usize {
    secrets.iter().filter(|s| run.stdout.contains(s.as_str()) || run.stderr.contains(s.as_str())).count()
}

struct Setup {
    /// Moto and the proxy; another stack of the same account.
    account: Account,
    names: StackNames,
    artifact: String,
    deployer: Deployer,
    aws: Aws,
    gateway: Gateway,
    /// The stack's two key values.
    secrets: Vec<String>,
}

/// A deployed stack in moto behind the local gateway.
async fn setup() -> Setup {
    let account = Account::start().await;
    let Stack { names, deployer, artifact, .. } = account.stack("smoke");
    let aws = account.aws.clone();
    let (_, up) = deployer.up_json(&["--artifact", &artifact]).await;
    let mut keys = Vec::new();
    for (tier, output) in [("standard", "StandardApiKeyId"), ("premium", "PremiumApiKeyId")] {
        let id = up["outputs"][output].as_str().expect("key id output");
        let k = aws.apigateway.get_api_key().api_key(id).include_value(true).send().await.expect("GetApiKey");
        keys.push((tier, k.value().unwrap_or_default().to_string()));
    }
    let secrets = keys.iter().map(|(_, v)| v.clone()).collect();
    let gateway = Gateway::start(aws.clone(), names.table.clone(), keys).await;
    Setup { account, names, artifact, deployer, aws, gateway, secrets }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_passes_against_a_working_api_and_names_each_way_of_failing() {
    let s = setup().await;
    let mut c = Checks::new();
    let url = s.gateway.url.clone();

    // ------------------------------------------------------------------ everything answers right
    let run = s.deployer.run(&["--output", "json", "smoke", "--url", &url]).await;
    c.eq("passing: exit code", run.code, 0);
    let report: Value = serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null);
    c.eq("passing: passed", report["passed"].as_bool(), Some(true));
    c.eq("passing: url", report["url"].as_str(), Some(url.as_str()));
    let item_id = report["item_id"].as_str().unwrap_or_default().to_string();
    let parts: Vec<&str> = item_id.split('-').collect();
    c.check(
        parts.len() == 3
            && parts[0] == "smoke"
            && parts[1].parse::<u64>().is_ok()
            && parts[2].len() == 6
            && parts[2].bytes().all(|b| b.is_ascii_hexdigit()),
        format!("item id smoke-<timestamp>-<random>: {item_id:?}"),
    );
    let got = steps(&report);
    for (step, status) in [
        ("no key", Some(403)),
        ("wrong key", Some(403)),
        ("Standard key", Some(200)),
        ("malformed body", Some(400)),
        ("GET", Some(405)),
    ] {
        c.eq(&format!("passing: {step}: status"), got.get(step).and_then(|x| x["status"].as_u64()), status);
        c.eq(&format!("passing: {step}: ok"), got.get(step).and_then(|x| x["ok"].as_bool()), Some(true));
        c.check(got.get(step).is_some_and(|x| x["latency_ms"].is_u64()), format!("passing: {step}: a latency"));
    }
    for step in ["item read back", "delete the test item"] {
        c.eq(&format!("passing: {step}: ok"), got.get(step).and_then(|x| x["ok"].as_bool()), Some(true));
    }
    c.eq("passing: 7 steps", got.len(), 7);
    c.eq(
        "passing: what the gateway saw",
        s.gateway.seen.lock().unwrap().clone(),
        vec![
            ("POST".to_string(), Key::None),
            ("POST".to_string(), Key::Other),
            ("POST".to_string(), Key::Stack("standard")),
            ("POST".to_string(), Key::Stack("standard")),
            ("GET".to_string(), Key::Stack("standard")),
        ],
    );
    let left = s.aws.dynamodb.get_item().table_name(&s.names.table).key("id", AttributeValue::S(item_id.clone()));
    c.check(left.send().await.expect("GetItem").item.is_none(), "passing: the test item was deleted");
    c.eq("passing: key values in the output", leaks(&run, &s.secrets), 0);

    // ------------------------------------------------------------------ --keep-item, human output
    s.gateway.set(Fault::None);
    let run = s.deployer.run(&["smoke", "--url", &url, "--keep-item"]).await;
    c.eq("--keep-item: exit code", run.code, 0);
    c.check(run.stdout.contains("smoke: all 6 steps matched."), format!("--keep-item: summary line:\n{run}"));
    let kept = run.stdout.split_whitespace().find(|w| w.starts_with("smoke-")).unwrap_or_default().to_string();
    let item = s.aws.dynamodb.get_item().table_name(&s.names.table).key("id", AttributeValue::S(kept.clone()));
    let item = item.send().await.expect("GetItem").item;
    c.eq(
        "--keep-item: the item stays, year a number",
        item.as_ref().and_then(|i| i.get("year").cloned()),
        Some(AttributeValue::N("2023".into())),
    );
    c.eq("human: key values in the output", leaks(&run, &s.secrets), 0);

    // ------------------------------------------------------------------ each way of failing
    // (fault, every failed step with its problem, sorted by step name)
    let cases: [(Fault, &[(&str, &str)]); 7] = [
        (
            Fault::AcceptsAnyKey,
            &[("wrong key", r#"answered 200 instead of 403: {"message":"Successfully inserted data!"}"#)],
        ),
        (
            Fault::OtherForbiddenBody,
            &[("no key", r#"body {"message":"Missing Authentication Token"} instead of {"message":"Forbidden"}"#)],
        ),
        (
            Fault::ServerError,
            &[
                ("Standard key", r#"answered 500 instead of 200: {"message":"Internal server error"}"#),
                ("item read back", "the item is not in the table"),
            ],
        ),
        (Fault::DropsWrites, &[("item read back", "the item is not in the table")]),
        (Fault::YearAsString, &[("item read back", r#"`year` is S("2023"), expected a number (N)"#)]),
        (Fault::AcceptsMalformed, &[("malformed body", r#"answered 200 instead of 400: {"message":"ok"}"#)]),
        (Fault::AllowsGet, &[("GET", r#"answered 200 instead of 405: {"message":"ok"}"#)]),
    ];
    for (fault, expected) in cases {
        s.gateway.set(fault);
        let run = s.deployer.run(&["--output", "json", "smoke", "--url", &url]).await;
        let what = format!("{fault:?}");
        c.eq(&format!("{what}: exit code"), run.code, 5);
        let report: Value = serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null);
        c.eq(&format!("{what}: passed"), report["passed"].as_bool(), Some(false));
        let mut failed: Vec<(String, String)> = steps(&report)
            .into_iter()
            .filter(|(_, v)| v["ok"] == false)
            .map(|(k, v)| (k, v["problem"].as_str().unwrap_or_default().to_string()))
            .collect();
        failed.sort();
        let expected: Vec<(String, String)> = expected.iter().map(|(k, p)| (k.to_string(), p.to_string())).collect();
        c.eq(&format!("{what}: the failed steps and why"), failed, expected);
        c.eq(&format!("{what}: key values in the output"), leaks(&run, &s.secrets), 0);
    }
    // The human report says which step failed and how.
    s.gateway.set(Fault::YearAsString);
    let run = s.deployer.run(&["smoke", "--url", &url]).await;
    c.eq("human failure: exit code", run.code, 5);
    c.check(
        run.stdout
            .contains(r#"smoke: 1 of 7 steps failed: item read back (`year` is S("2023"), expected a number (N))"#),
        format!("human failure: the summary names the step:\n{run}"),
    );

    // ------------------------------------------------------------------ nothing listening
    let closed = format!("http://127.0.0.1:{}/", free_port());
    let run = s.deployer.run(&["--output", "json", "smoke", "--url", &closed, "--timeout", "5"]).await;
    c.eq("unreachable: exit code", run.code, 5);
    let got = steps(&serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null));
    for step in ["no key", "wrong key", "Standard key", "malformed body", "GET"] {
        c.check(
            got.get(step).and_then(|x| x["problem"].as_str()).is_some_and(|p| p.starts_with("no answer: ")),
            format!("unreachable: {step} has no answer: {:?}", got.get(step)),
        );
    }

    // ------------------------------------------------------------------ bad input, no stack
    let run = s.deployer.run(&["smoke", "--url", "ftp://x"]).await;
    c.eq("--url ftp://x: exit code", run.code, 3);
    let nothing = s.account.stack("smokenone");
    let other = &nothing.names;
    let run = nothing.deployer.run(&["smoke"]).await;
    c.eq("no stack: exit code", run.code, 1);
    c.check(
        run.stderr.contains(&format!("stack {} has no `stage`", other.stack)) && run.stderr.contains("movies-stack up"),
        format!("no stack: a clear message:\n{run}"),
    );
    c.finish("smoke");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_smoke_tests_the_api_after_the_deploy() {
    let s = setup().await;
    let mut c = Checks::new();
    let art = s.artifact.as_str();
    let url = s.gateway.url.clone();

    let run = s.deployer.run(&["--output", "json", "up", "--artifact", art, "--smoke", "--smoke-url", &url]).await;
    c.eq("up --smoke: exit code", run.code, 0);
    let json: Value = serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null);
    c.eq("up --smoke: no changes", json["changes"].as_u64(), Some(0));
    c.eq("up --smoke: smoke passed", json["smoke"]["passed"].as_bool(), Some(true));
    c.eq("up --smoke: smoke url", json["smoke"]["url"].as_str(), Some(url.as_str()));
    c.eq("up --smoke: 7 steps", json["smoke"]["steps"].as_array().map(Vec::len), Some(7));

    s.gateway.set(Fault::DropsWrites);
    let run = s.deployer.run(&["up", "--artifact", art, "--smoke", "--smoke-url", &url]).await;
    c.eq("up --smoke, broken API: exit code", run.code, 5);
    c.check(
        run.stdout.contains("Outputs of stack") && run.stdout.contains("item read back (the item is not in the table)"),
        format!("up --smoke, broken API: outputs, then the failed step:\n{run}"),
    );
    c.eq("up --smoke: key values in the output", leaks(&run, &s.secrets), 0);

    let run = s.deployer.run(&["up", "--artifact", art, "--smoke-url", &url]).await;
    c.eq("--smoke-url without --smoke: exit code", run.code, 3);
    c.finish("up --smoke");
}
