//! `movies-stack serve`: the deployed API, locally. moto has no API Gateway data plane and runs
//! no Lambda code (shared notes, moto-emulator §8), and `sam local start-api` ignores API keys and
//! usage plans; this serves the stack's API with the rules read from the stack itself:
//!
//! - [`rules`]: what to enforce, read from the deployed stack (re-read on SIGHUP);
//! - [`gateway`]: the HTTP front: stage, routes, keys, usage plans ([`limits`]), the proxy event
//!   and response, the access log ([`access_log`]);
//! - [`runtime`]: the real `bootstrap`, run as Lambda runs it behind an embedded Runtime API;
//! - [`server`]: connections: header-read and idle timeouts, a connection cap, accept back-off;
//! - [`watch`]: `--watch`: the handler rebuilt on a change of its sources, and swapped in;
//! - [`xray`]: the X-Ray daemon of the function's processes, `serve`'s own segments, the traces
//!   kept; [`stats`]: the counters per minute; [`admin`]: the listener `traces --local` and
//!   `top --local` read, found through the discovery file (`crate::local`).
//!
//! Output: access log lines on stdout (or `--access-log FILE`); everything else is a
//! [`ServeEvent`] for the printer (stderr: our lines prefixed `serve:`, the function's `[env N]`,
//! or JSON lines).

pub mod access_log;
pub mod admin;
pub mod gateway;
pub mod limits;
pub mod rules;
pub mod runtime;
pub mod server;
pub mod stats;
pub mod watch;
pub mod xray;

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::SharedCredentialsProvider;
use tokio::signal::unix::{SignalKind, signal};

use crate::aws::AwsSettings;
use crate::cli::ServeArgs;
use crate::config::Config;
use crate::error::{Error, Result, exit};
use crate::events::{Event, ServeEvent};
use crate::local;
use crate::resources::Ctx;
use crate::session::{CtrlC, Session};
use crate::ui::Printer;
use access_log::AccessLog;
use admin::Admin;
use gateway::{Gateway, Recorders};
use runtime::{FunctionSpec, Pool};
use server::{Limits, Server};
use watch::{Builds, Rebuilds, Watcher};

/// How long stopped function processes get to exit before we stop waiting for them.
const PROCESS_GRACE: Duration = Duration::from_secs(5);

pub async fn run(config: &Config, settings: &AwsSettings, args: &ServeArgs, printer: Arc<dyn Printer>) -> Result<i32> {
    // LiveStates first: a bad flag or a busy port costs no AWS call.
    if args.bootstrap.is_some() && (args.watch || args.cargo_profile.is_some()) {
        let flag = if args.watch { "--watch" } else { "--cargo-profile" };
        return Err(Error::input(format!(
            "{flag} and --bootstrap PATH cannot be used together: {flag} builds handler/ itself, --bootstrap runs a build you made"
        )));
    }
    let profile = args.cargo_profile.clone().unwrap_or_else(|| "release".to_string());
    // Before the first build: a change made while it runs is seen.
    let mut watching = if args.watch {
        let root = crate::package::repo_root().ok_or_else(|| {
            Error::input("--watch: cannot find the handler crate (handler/Cargo.toml) above the current directory; run from the repository")
        })?;
        Some((Watcher::start(&root)?, Builds::new()?))
    } else {
        None
    };
    if let Some(path) = &args.bootstrap {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
            Ok(_) => return Err(Error::input(format!("--bootstrap {}: not an executable file", path.display()))),
            Err(e) => return Err(Error::input(format!("--bootstrap {}: {e}", path.display()))),
        }
    }
    let log = match &args.access_log {
        Some(path) => AccessLog::file(path)
            .map_err(|e| Error::input(format!("--access-log {}: cannot open for appending: {e}", path.display())))?,
        None => AccessLog::Stdout,
    };
    let listener = tokio::net::TcpListener::bind((args.bind, args.port))
        .await
        .map_err(|e| Error::input(format!("--bind {} --port {}: cannot listen there: {e}", args.bind, args.port)))?;
    let local = listener.local_addr().map_err(|e| Error::other(format!("cannot read the listening address: {e}")))?;
    let mut server = Server::new(listener, Limits::for_this_process(), printer.clone());
    // On loopback, ephemeral ports: nothing to choose, so nothing a flag can make busy.
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::other(format!("cannot listen on 127.0.0.1 for traces and counters: {e}")))?;
    let admin_local =
        admin_listener.local_addr().map_err(|e| Error::other(format!("cannot read the listening address: {e}")))?;
    let daemon = xray::Daemon::bind()
        .await
        .map_err(|e| Error::other(format!("cannot bind a UDP socket on 127.0.0.1 for the X-Ray daemon: {e}")))?;
    let daemon_address = daemon.address();

    let say = {
        let printer = printer.clone();
        move |event: ServeEvent| printer.event(Event::Serve(event))
    };
    let session =
        Session::open(settings, config, printer.clone(), CtrlC::Exits, crate::ctx::Timeouts::default()).await?;
    let ctx = session.ctx.clone();
    // Who we are first: bad credentials or region get their one-line cause, not a failed read.
    session.who_am_i().await?;
    let rules = rules::load(&ctx, config).await?;
    let bootstrap = match &args.bootstrap {
        Some(path) => path.clone(),
        None => {
            let root = match &watching {
                Some((watcher, _)) => watcher.root().to_path_buf(),
                None => crate::package::repo_root().ok_or_else(|| {
                    Error::input("cannot find the handler crate (handler/Cargo.toml) above the current directory; run from the repository, or pass --bootstrap PATH")
                })?,
            };
            printer.event(Event::Serve(ServeEvent::BuildingHandler { profile: profile.clone() }));
            let built =
                build_host_bootstrap(&root, &profile, CargoOutput::Inherit).await.map_err(BuildError::into_error)?;
            match &mut watching {
                // The environments run a copy: cargo rewrites its own file in place on the next build.
                Some((_, builds)) => builds.keep(&built)?,
                None => built,
            }
        }
    };
    let mut spec = function_spec(&ctx, config, settings, bootstrap)?;
    spec.variables.extend(xray_variables(daemon_address));

    say(ServeEvent::Stack {
        stack: rules.stack.clone(),
        api_id: rules.api_id.clone(),
        stage: rules.stage.clone(),
        invoke_url: rules.invoke_url(),
    });
    say(ServeEvent::Rules { rules: rules.describe() });
    let integration_timeout = Duration::from_secs(args.integration_timeout);
    say(ServeEvent::Function {
        name: spec.name.clone(),
        bootstrap: spec.bootstrap.display().to_string(),
        memory_mb: spec.memory_mb,
        timeout: spec.timeout,
        table: rules.table.clone(),
        environments: args.concurrency,
        integration_timeout,
    });
    let url = format!("http://{local}/{}/", rules.stage);
    let pool = Pool::new(spec.clone(), usize::from(args.concurrency), printer.clone());
    let limits = server.limits();
    say(ServeEvent::Limits {
        connections: limits.connections,
        header_read: limits.header_read,
        queue: pool.queue_bound(),
        body_bytes: gateway::MAX_REQUEST_BYTES,
    });
    let recorders = Recorders::default();
    let stack = rules.stack.clone();
    let stage = rules.stage.clone();
    let gateway = Arc::new(Gateway::new(
        rules,
        pool.clone(),
        log,
        integration_timeout,
        local.port(),
        printer.clone(),
        recorders.clone(),
    ));
    let daemon_task = tokio::spawn(daemon.run(recorders.traces.clone(), recorders.stats.clone(), printer.clone()));
    let admin = Admin { gateway: gateway.clone(), recorders, stack: stack.clone(), started: epoch_secs() };
    let admin_task = tokio::spawn(admin.run(admin_listener, Admin::limits(limits), printer.clone()));
    let retiring: Arc<Mutex<Vec<Pool>>> = Arc::default();
    let rebuilding = watching.map(|(watcher, builds)| {
        say(ServeEvent::Watching { paths: watch::WATCHED.iter().map(|p| p.to_string()).collect() });
        let rebuilds = Rebuilds {
            watcher,
            builds,
            profile,
            spec,
            integration_timeout,
            gateway: gateway.clone(),
            retiring: retiring.clone(),
            printer: printer.clone(),
        };
        tokio::spawn(rebuilds.run())
    });
    let signal_err = |e: std::io::Error| Error::other(format!("cannot install a signal handler: {e}"));
    let mut hangup = signal(SignalKind::hangup()).map_err(signal_err)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_err)?;
    let admin_url = format!("http://{admin_local}");
    let discovery = local::Discovery {
        stack,
        pid: std::process::id(),
        admin: admin_url.clone(),
        api: format!("http://{}/{stage}", reachable(local)),
    };
    // Removed when dropped: when `serve` stops, and on any way out of this function.
    let written = DiscoveryFile::write(discovery);
    say(ServeEvent::Admin {
        url: admin_url,
        xray_daemon: daemon_address.to_string(),
        discovery: written.as_ref().ok().map(|f| f.path.display().to_string()),
        discovery_error: written.as_ref().err().map(|e| e.to_string()),
    });
    say(ServeEvent::Listening { url });
    let reloading = Arc::new(tokio::sync::Mutex::new(()));
    loop {
        tokio::select! {
            (stream, peer, permit) = server.accept() => {
                let gateway = gateway.clone();
                server::serve_connection(stream, permit, limits, move |req| {
                    let gateway = gateway.clone();
                    async move { gateway.handle(req, peer).await }
                });
            }
            _ = hangup.recv() => reload(ctx.clone(), config.clone(), gateway.clone(), reloading.clone(), printer.clone()),
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    drop(server);
    // No new build is swapped in while stopping (a build under way is killed).
    if let Some(task) = rebuilding {
        task.abort();
        let _ = task.await;
    }
    say(ServeEvent::Stopping);
    tokio::select! {
        _ = gateway.drained(Duration::from_secs(args.integration_timeout)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let mut pools = vec![gateway.pool()];
    pools.extend(retiring.lock().unwrap_or_else(|p| p.into_inner()).drain(..));
    futures::future::join_all(pools.iter().map(|p| p.shutdown(PROCESS_GRACE))).await;
    drop(written);
    admin_task.abort();
    daemon_task.abort();
    say(ServeEvent::Stopped);
    Ok(exit::OK)
}

/// What Lambda sets for a function with Active tracing, pointing at `serve`'s daemon (Lambda's
/// daemon is at 169.254.79.129:2000).
fn xray_variables(daemon: std::net::SocketAddr) -> Vec<(String, String)> {
    vec![
        ("AWS_XRAY_DAEMON_ADDRESS".to_string(), daemon.to_string()),
        ("_AWS_XRAY_DAEMON_ADDRESS".to_string(), daemon.ip().to_string()),
        ("_AWS_XRAY_DAEMON_PORT".to_string(), daemon.port().to_string()),
        ("AWS_XRAY_CONTEXT_MISSING".to_string(), "LOG_ERROR".to_string()),
    ]
}

/// `addr` as a client on this machine reaches it (a wildcard bind through loopback).
fn reachable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

fn epoch_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The discovery file this `serve` wrote: removed when dropped, unless another `serve` of the
/// same stack has replaced it since.
struct DiscoveryFile {
    path: PathBuf,
    pid: u32,
}

impl DiscoveryFile {
    fn write(discovery: local::Discovery) -> std::io::Result<DiscoveryFile> {
        let pid = discovery.pid;
        discovery.write().map(|path| DiscoveryFile { path, pid })
    }
}

impl Drop for DiscoveryFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|text| serde_json::from_str::<local::Discovery>(&text).ok())
            .is_some_and(|d| d.pid == self.pid);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// SIGHUP: read the rules again; on failure keep serving with the old ones. One at a time.
fn reload(
    ctx: Arc<Ctx>,
    config: Config,
    gateway: Arc<Gateway>,
    reloading: Arc<tokio::sync::Mutex<()>>,
    printer: Arc<dyn Printer>,
) {
    let say = move |event: ServeEvent| printer.event(Event::Serve(event));
    tokio::spawn(async move {
        let _one = reloading.lock().await;
        say(ServeEvent::Reloading);
        match rules::load(&ctx, &config).await {
            Ok(rules) => {
                let described = rules.describe();
                gateway.set_rules(rules);
                say(ServeEvent::Rules { rules: described });
                say(ServeEvent::Reloaded);
            }
            Err(e) => say(ServeEvent::ReloadFailed { error: e.to_string() }),
        }
    });
}

/// The function as the stack configures it, run from `bootstrap`, with the credentials, region
/// and endpoint this command uses.
fn function_spec(ctx: &Ctx, config: &Config, settings: &AwsSettings, bootstrap: PathBuf) -> Result<FunctionSpec> {
    let credentials: SharedCredentialsProvider = ctx.aws.credentials.clone().ok_or_else(|| {
        Error::input("no AWS credentials to give the function (set AWS_PROFILE or AWS_ACCESS_KEY_ID)")
    })?;
    let region = ctx.aws.region.clone();
    let partition = crate::aws::partition(&region);
    let mut variables = vec![("TABLE_NAME".to_string(), config.table.name.clone())];
    if let Some(url) = &settings.endpoint_url {
        variables.push(("AWS_ENDPOINT_URL".to_string(), url.clone()));
    }
    let bootstrap = std::fs::canonicalize(&bootstrap).unwrap_or(bootstrap);
    Ok(FunctionSpec {
        arn: format!("arn:{partition}:lambda:{region}:{}:function:{}", ctx.account_id(), config.function.name),
        name: config.function.name.clone(),
        memory_mb: config.function.memory_mb,
        timeout: Duration::from_secs(u64::try_from(config.function.timeout_seconds).unwrap_or(1)),
        region,
        variables,
        credentials,
        bootstrap,
    })
}

/// Where cargo's own output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CargoOutput {
    /// To our stderr, as it comes (the build before serving).
    Inherit,
    /// Kept, for the errors of a failed build (a rebuild while serving: the access log is on
    /// stdout and the printer owns stderr).
    Captured,
}

/// Why the handler could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot run `cargo` to build the handler: {0}")]
    CannotRun(std::io::Error),
    /// `errors`: the compiler's errors (captured output), or empty (they went to stderr).
    #[error("building the handler failed (cargo build --profile {profile} -p handler: {status}){}", if errors.is_empty() { String::new() } else { format!(":\n{errors}") })]
    Failed { profile: String, status: std::process::ExitStatus, errors: String },
    #[error("cargo built the handler but reported no `bootstrap` executable")]
    NoExecutable,
}

impl BuildError {
    /// For the build before serving: the input error of a missing cargo, else a failure.
    fn into_error(self) -> Error {
        match self {
            BuildError::CannotRun(_) => Error::input(format!("{self} (or pass --bootstrap PATH)")),
            BuildError::Failed { .. } => Error::other(format!("{self}; see above, or pass --bootstrap PATH")),
            BuildError::NoExecutable => Error::other(self.to_string()),
        }
    }
}

/// `cargo build --profile PROFILE -p handler --bin bootstrap` in `root` for this machine; the
/// binary's path from cargo's own report (whatever the target directory is).
pub async fn build_host_bootstrap(
    root: &Path,
    profile: &str,
    output: CargoOutput,
) -> std::result::Result<PathBuf, BuildError> {
    let mut cmd = tokio::process::Command::new("cargo");
    cmd.current_dir(root)
        .args([
            "build",
            "--profile",
            profile,
            "-p",
            "handler",
            "--bin",
            "bootstrap",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match output {
        CargoOutput::Inherit => cmd.stderr(std::process::Stdio::inherit()),
        CargoOutput::Captured => cmd.arg("--color=never").stderr(std::process::Stdio::piped()),
    };
    let out = cmd.output().await.map_err(BuildError::CannotRun)?;
    if !out.status.success() {
        return Err(BuildError::Failed {
            profile: profile.to_string(),
            status: out.status,
            errors: compiler_errors(&String::from_utf8_lossy(&out.stderr)),
        });
    }
    executable_from_cargo(&String::from_utf8_lossy(&out.stdout), "bootstrap").ok_or(BuildError::NoExecutable)
}

/// The errors in cargo's rendered output: from the first line that starts with `error` (earlier
/// lines are progress and warnings), else all of it. Pure.
fn compiler_errors(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let first = lines.iter().position(|l| l.starts_with("error")).unwrap_or(0);
    lines[first..].join("\n").trim().to_string()
}

/// The path of the executable `name` in cargo's `--message-format=json` output. Pure.
fn executable_from_cargo(messages: &str, name: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
        .filter(|p| Path::new(p).is_file())
}

/// 64 random bits (std's per-process random hash keys mixed with a counter and the clock): ids,
/// not secrets.
pub fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

pub fn random_u128() -> u128 {
    (u128::from(random_u64()) << 64) | u128::from(random_u64())
}

/// A request id shaped like AWS's (a version-4 UUID).
pub fn request_id() -> String {
    let x = random_u128();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        (x >> 96) as u32,
        (x >> 80) as u16,
        (x >> 64) as u16 & 0xfff,
        8 | ((x >> 60) as u8 & 0x3),
        (x >> 48) as u16 & 0xfff,
        x as u64 & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_uuids_and_differ() {
        let a = request_id();
        assert_eq!(a.split('-').map(str::len).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{a}");
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert_ne!(a, request_id());
    }

    #[test]
    fn a_failed_builds_report_is_the_compilers_errors() {
        let stderr = "   Compiling handler v0.1.0 (/r/handler)\nwarning: unused variable: `x`\n --> handler/src/lib.rs:1:5\n\n\
                      error: expected `;`, found `}`\n --> handler/src/lib.rs:9:14\n\n\
                      error: could not compile `handler` (lib) due to 1 previous error\n";
        let errors = compiler_errors(stderr);
        assert!(errors.starts_with("error: expected `;`") && errors.ends_with("due to 1 previous error"), "{errors}");
        assert!(!errors.contains("Compiling") && !errors.contains("warning"), "{errors}");
        assert_eq!(compiler_errors("error: failed to parse manifest\n"), "error: failed to parse manifest");
        assert_eq!(compiler_errors("  something else\n"), "something else");
    }

    #[test]
    fn the_bootstrap_path_comes_from_cargo() {
        let exe = std::env::current_exe().unwrap();
        let messages = format!(
            "{{\"reason\":\"compiler-artifact\",\"target\":{{\"name\":\"handler\"}},\"executable\":null}}\nnot json\n\
             {{\"reason\":\"compiler-artifact\",\"target\":{{\"name\":\"bootstrap\"}},\"executable\":{}}}\n\
             {{\"reason\":\"build-finished\",\"success\":true}}",
            serde_json::Value::String(exe.display().to_string())
        );
        assert_eq!(executable_from_cargo(&messages, "bootstrap"), Some(exe));
        assert_eq!(executable_from_cargo(&messages, "other"), None);
    }
}
