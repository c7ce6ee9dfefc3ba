//! Handler benchmarks (not tests): artifact size, start-up time and per-request overhead of the
//! real `bootstrap` binary. Run through `scripts/bench.sh`, which builds what is needed.
//!
//! ```text
//! bench_handler --bootstrap PATH [--artifact ZIP] [--invocations N] [--startup-runs N]
//! ```
//!
//! - **Artifact size:** the zip's size on disk and its `bootstrap` entry's uncompressed size.
//! - **Start-up:** process spawn → first `GET /runtime/invocation/next` reaching the Runtime API
//!   server ([`RuntimeApi`]), over `--startup-runs` fresh processes.
//! - **Per-request overhead:** the event handed out by `/next` → the result arriving at
//!   `/response` (both timestamped in the server), over `--invocations` sequential invocations of
//!   one warm process, with DynamoDB replaced by a fake endpoint that answers `PutItem` with `{}`
//!   at once. Compared with a rejected request (no DynamoDB call) and with a minimal runtime
//!   client written here on std sockets (the harness's own floor: the Runtime API server is a
//!   debug build of hyper).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::Function;
use e2e::bench::{Stats, fixture_event as event, ms, row, us};
use e2e::runtime_api::{Outcome, RuntimeApi};

const FUNCTION: &str = "movies-handler-bench";
const WARMUP: usize = 50;

/// Start-up and per-request overhead of the handler's `bootstrap`, run as Lambda runs it.
#[derive(clap::Parser)]
#[command(name = "bench_handler")]
struct Args {
    /// The host build of the handler's `bootstrap`.
    #[arg(long)]
    bootstrap: PathBuf,
    /// The arm64 zip, for its size.
    #[arg(long)]
    artifact: Option<PathBuf>,
    /// Invocations measured after the warm-up.
    #[arg(long, default_value_t = 2000)]
    invocations: usize,
    /// Cold starts measured.
    #[arg(long, default_value_t = 30)]
    startup_runs: usize,
}

fn parse_args() -> Args {
    <Args as clap::Parser>::parse()
}

/// A fake DynamoDB on 127.0.0.1: std threads, HTTP/1.1 keep-alive, every request answered
/// `200 {}` as soon as its body is read. Returns its URL and a request counter.
fn fake_dynamodb() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake DynamoDB");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let seen = seen.clone();
            std::thread::spawn(move || serve_dynamodb(stream, &seen));
        }
    });
    (url, count)
}

fn serve_dynamodb(stream: TcpStream, seen: &AtomicUsize) {
    let _ = stream.set_nodelay(true);
    let mut out = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
        x-amzn-requestid: BENCH0REQUEST0ID\r\ncontent-length: 2\r\n\r\n{}";
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        // Request line, then headers up to the blank line.
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            match line.split_once(':') {
                Some((k, v)) if k.eq_ignore_ascii_case("content-length") => len = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seen.fetch_add(1, Ordering::Relaxed);
        if out.write_all(ANSWER).is_err() {
            return;
        }
    }
}

/// `n` sequential invocations of `payload`; server-side service times. Panics unless every answer
/// has `status`.
async fn run_invocations(api: &RuntimeApi, payload: &str, n: usize, status: u64) -> Stats {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let done = api.invoke(payload.to_string(), Duration::from_secs(30)).await.expect("an answer within 30 s");
        let Outcome::Response(_) = &done.outcome else { panic!("invocation {i} failed: {:?}", done.outcome) };
        let got = done.response_json()["statusCode"].as_u64();
        assert_eq!(got, Some(status), "invocation {i}");
        times.push(done.service_time());
    }
    Stats::new(times)
}

/// The harness floor: a minimal runtime client on std sockets (one keep-alive connection) that
/// fetches each event and posts a fixed response at once.
fn null_runtime(host_port: String, n: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let stream = TcpStream::connect(&host_port).expect("connect to the Runtime API");
        stream.set_nodelay(true).unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let read_response = |reader: &mut BufReader<TcpStream>| -> (Option<String>, usize) {
            let mut line = String::new();
            let mut id = None;
            let mut len = 0;
            loop {
                line.clear();
                reader.read_line(&mut line).expect("read");
                if line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("lambda-runtime-aws-request-id") {
                        id = Some(v.trim().to_string());
                    } else if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            (id, len)
        };
        let answer = br#"{"statusCode":200,"headers":{},"multiValueHeaders":{},"body":"{}","isBase64Encoded":false}"#;
        for _ in 0..n {
            out.write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: rt\r\n\r\n").unwrap();
            let (id, _) = read_response(&mut reader);
            let id = id.expect("request id header");
            let head = format!(
                "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nhost: rt\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                answer.len()
            );
            out.write_all(head.as_bytes()).unwrap();
            out.write_all(answer).unwrap();
            read_response(&mut reader);
        }
    })
}

fn artifact_sizes(zip_path: &std::path::Path) -> (u64, u64) {
    let bytes = std::fs::read(zip_path).unwrap_or_else(|e| panic!("read {}: {e}", zip_path.display()));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).expect("a zip");
    let entry = archive.by_name("bootstrap").expect("a bootstrap entry");
    (bytes.len() as u64, entry.size())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    let bin = args.bootstrap.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", args.bootstrap.display()));
    let bin_size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    println!("bootstrap under test: {} ({bin_size} bytes)", bin.display());
    let (dynamo_url, dynamo_calls) = fake_dynamodb();
    // Lambda sets AWS_XRAY_DAEMON_ADDRESS for a function with Active tracing, and the Runtime API
    // fixture hands out Sampled=1 trace headers: every request then also sends its DynamoDB
    // subsegment (to a loopback port where nothing listens; a UDP send does not wait for it).
    let env = [
        ("TABLE_NAME", "movies-bench"),
        ("AWS_ENDPOINT_URL", dynamo_url.as_str()),
        ("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:2000"),
    ];

    // ------------------------------------------------------------ artifact size
    if let Some(zip) = &args.artifact {
        let (zipped, unzipped) = artifact_sizes(zip);
        println!("\n### Artifact\n");
        row(&["artifact".into(), "zip bytes".into(), "MiB".into(), "bootstrap bytes (unzipped)".into(), "goal".into()]);
        row(&["---".into(), "---:".into(), "---:".into(), "---:".into(), "---".into()]);
        row(&[
            zip.display().to_string(),
            zipped.to_string(),
            format!("{:.2}", zipped as f64 / 1_048_576.0),
            unzipped.to_string(),
            format!("≤ 2 MB (2,000,000 bytes): {}", if zipped <= 2_000_000 { "met" } else { "NOT met" }),
        ]);
    }

    // ------------------------------------------------------------ start-up
    // The HTTPS client loads the native root certificates at start-up (rustls-native-certs): on
    // Debian that is the bundle file plus every file in /etc/ssl/certs; with SSL_CERT_FILE set
    // only that file is read (close to what al2023 has: one bundle in /etc/pki/tls/certs).
    let bundle = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file());
    let mut variants: Vec<(String, Vec<(&str, &str)>)> =
        vec![("Lambda's variables only (native roots: bundle file + /etc/ssl/certs)".into(), env.to_vec())];
    if let Some(b) = bundle {
        let mut e = env.to_vec();
        e.push(("SSL_CERT_FILE", b));
        variants.push((format!("SSL_CERT_FILE={b} (bundle file only)"), e));
    }
    println!("\n### Start-up: process spawn → first poll of the Runtime API ({} runs each)\n", args.startup_runs);
    row(&[
        "environment".into(),
        "median ms".into(),
        "p90 ms".into(),
        "min ms".into(),
        "max ms".into(),
        "goal ≤ 10 ms (median)".into(),
    ]);
    row(&["---".into(), "---:".into(), "---:".into(), "---:".into(), "---:".into(), "---".into()]);
    for (name, env) in &variants {
        let mut startup = Vec::with_capacity(args.startup_runs);
        for run in 0..args.startup_runs {
            let api = RuntimeApi::start(FUNCTION);
            let mut func = Function::spawn(&bin, &api, env);
            let Some(first) = api.wait_for_poll(1, Duration::from_secs(10)).await else {
                panic!(
                    "run {run}: no poll within 10 s; stdout {:?} stderr {:?}",
                    func.stdout_lines(),
                    func.stderr_lines()
                );
            };
            startup.push(first.duration_since(func.started));
            func.stop();
        }
        let startup = Stats::new(startup);
        row(&[
            name.clone(),
            ms(startup.median()),
            ms(startup.pct(90)),
            ms(startup.min()),
            ms(startup.max()),
            (if startup.median() <= Duration::from_millis(10) { "met" } else { "NOT met" }).into(),
        ]);
    }

    // ------------------------------------------------------------ per request
    let n = args.invocations;
    let api = RuntimeApi::start(FUNCTION);
    let mut func = Function::spawn(&bin, &api, &env);
    api.wait_for_poll(1, Duration::from_secs(10)).await.expect("first poll");
    let valid = event("POST", r#"{"year": "2023", "title": "Test Movie", "id": "12"}"#);
    let rejected = event("POST", r#"{"year": "2023", "title": "Test Movie", "id": "12""#);
    let wrong_method = event("GET", "");
    run_invocations(&api, &valid, WARMUP, 200).await;
    let calls_before = dynamo_calls.load(Ordering::Relaxed);
    let put = run_invocations(&api, &valid, n, 200).await;
    let puts = dynamo_calls.load(Ordering::Relaxed) - calls_before;
    assert_eq!(puts, n, "one PutItem per valid invocation");
    let bad = run_invocations(&api, &rejected, n, 400).await;
    let get = run_invocations(&api, &wrong_method, n, 405).await;
    func.stop();
    let log_lines = func.stdout_lines().len();

    // The harness's own floor: the same server, a client that does nothing.
    let api = RuntimeApi::start(FUNCTION);
    let client = null_runtime(api.host_port(), n + WARMUP);
    for _ in 0..WARMUP {
        api.invoke(valid.clone(), Duration::from_secs(30)).await.expect("null runtime answer");
    }
    let mut floor = Vec::with_capacity(n);
    for _ in 0..n {
        floor.push(
            api.invoke(valid.clone(), Duration::from_secs(30)).await.expect("null runtime answer").service_time(),
        );
    }
    client.join().expect("null runtime");
    let floor = Stats::new(floor);

    println!(
        "\n### Per-request overhead: event handed out by /next → result at /response ({n} sequential invocations each, after {WARMUP} warm-up; µs)\n"
    );
    row(&["request".into(), "median µs".into(), "p90 µs".into(), "p99 µs".into(), "max µs".into()]);
    row(&["---".into(), "---:".into(), "---:".into(), "---:".into(), "---:".into()]);
    for (name, s) in [
        ("POST / valid → PutItem to a fake DynamoDB answering `{}` at once → 200", &put),
        ("POST / malformed JSON → 400 (no DynamoDB call)", &bad),
        ("GET / → 405 (no DynamoDB call)", &get),
        ("harness floor: minimal std-socket runtime client, no handler", &floor),
    ] {
        row(&[name.into(), us(s.median()), us(s.pct(90)), us(s.pct(99)), us(s.max())]);
    }
    println!(
        "\nPutItem calls seen by the fake DynamoDB: {puts} for {n} valid invocations; the function wrote {log_lines} log lines."
    );
    println!(
        "Ratios of medians: valid/rejected {:.2}, valid/floor {:.2}; the DynamoDB call itself (valid − rejected) ≈ {} µs.",
        put.median().as_secs_f64() / bad.median().as_secs_f64(),
        put.median().as_secs_f64() / floor.median().as_secs_f64(),
        us(put.median().saturating_sub(bad.median()))
    );
}
