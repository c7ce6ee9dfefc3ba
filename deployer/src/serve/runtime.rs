//! The function, run as Lambda runs it: execution environments, each a `bootstrap` process with
//! the environment Lambda sets and its own Lambda Runtime API (`2018-06-01`), as in Lambda, where
//! each execution environment has its own endpoint in `AWS_LAMBDA_RUNTIME_API`.
//!
//! The Runtime API served to each process
//! (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html):
//! - `GET /runtime/invocation/next`: blocks until there is an event; answers it with
//!   `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms` (epoch ms), `-Invoked-Function-Arn` and
//!   `-Trace-Id` (the runtime library puts the last into `_X_AMZN_TRACE_ID` for the invocation);
//! - `POST /runtime/invocation/{id}/response` and `.../error`: the invocation's result (202);
//! - `POST /runtime/init/error`: the process failed to initialise (202; it then exits).
//!
//! The pool: an event goes to an idle environment (one waiting in `/next`); when none is idle, a
//! new one starts, up to `max`; beyond that, events wait in order for the next free one (Lambda
//! would throttle at the account's concurrency instead; API Gateway's integration timeout bounds
//! the wait). At most [`QUEUE_PER_ENVIRONMENT`] × `max` events wait: past that, [`Pool::invoke`]
//! refuses at once ([`QueueFull`]), so a flood costs a bounded amount of memory and the waits
//! stay short. An event is handed out once: whoever takes it first, an environment
//! ([`Job::claim`]) or its caller giving up ([`Invocation::withdraw`], or dropping the
//! [`Invocation`]: its client went away or it was answered 504), wins; a withdrawn event never
//! runs. An environment that exits is gone: its invocation in flight, if any, ends
//! [`Outcome::Crashed`]; one that dies before asking for its first event fails the oldest waiting
//! event ([`Outcome::NotRun`], as an init failure fails the invoke that started it). The
//! function's timeout is enforced from the moment the event is handed out: the process is stopped
//! (Lambda resets the environment after "Task timed out").

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::{Credentials, ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncRead};
use tokio::sync::{Notify, oneshot};

use crate::events::{Event, ServeEvent, init_failure};
use crate::ui::Printer;

/// Lambda's limit on a synchronous invocation's response payload (6 MB); above it the invoke
/// fails with `Function.ResponseSizeTooLarge`.
const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// Events that may wait for an environment, per environment allowed (`--concurrency`). 16 × 4
/// (the default) = 64 waiting: as many as 64 keep-alive clients can have in flight, so a load
/// of that size waits rather than being refused, while a flood is refused at once instead of
/// queueing for the whole integration timeout (and holding each event, up to 13 MB, meanwhile).
pub const QUEUE_PER_ENVIRONMENT: usize = 16;

/// The queue is full: the event was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    pub bound: usize,
}

/// The function as the stack configures it, and where its processes come from.
#[derive(Clone)]
pub struct FunctionSpec {
    pub bootstrap: PathBuf,
    pub name: String,
    pub arn: String,
    pub memory_mb: i32,
    pub timeout: Duration,
    pub region: String,
    /// The function's own variables (`TABLE_NAME`) and the endpoint its SDK calls go to
    /// (`AWS_ENDPOINT_URL`), added to Lambda's.
    pub variables: Vec<(String, String)>,
    /// The function's credentials: resolved when each environment starts, as Lambda hands each
    /// environment fresh credentials of the execution role.
    pub credentials: SharedCredentialsProvider,
}

/// How an invocation ended.
#[derive(Debug)]
pub enum Outcome {
    /// `POST .../response` with this payload.
    Response(Bytes),
    /// `POST .../error` (or a response Lambda refuses): the invoke fails with this error.
    FunctionError { error_type: String, message: String },
    /// The process ended while handling the event.
    Crashed { env: u32, status: String },
    /// The function's timeout passed; the process was stopped.
    TimedOut { env: u32, after: Duration },
    /// The event never ran: the process could not start, failed its initialisation, or `serve`
    /// is stopping.
    NotRun(String),
}

impl Outcome {
    /// Why the invoke failed, for the log line of a 502 (None: it succeeded).
    pub fn failure(&self) -> Option<String> {
        Some(match self {
            Outcome::Response(_) => return None,
            Outcome::FunctionError { error_type, message } => format!("the function failed: {error_type}: {message}"),
            Outcome::Crashed { env, status } => format!("env {env} exited during the invocation ({status})"),
            Outcome::TimedOut { env, after } => {
                format!("env {env}: Task timed out after {:.2} seconds", after.as_secs_f64())
            }
            Outcome::NotRun(why) => why.clone(),
        })
    }
}

/// The environment Lambda gives a `provided.al2023` function, for environment `number` talking to
/// the Runtime API at `runtime_api` (`host:port`, no scheme). Pure.
pub fn lambda_env(
    spec: &FunctionSpec,
    runtime_api: &str,
    number: u32,
    credentials: &Credentials,
    task_root: &str,
) -> Vec<(String, String)> {
    let today = time::OffsetDateTime::now_utc().date();
    let stream = format!(
        "{:04}/{:02}/{:02}/[$LATEST]{:032x}",
        today.year(),
        u8::from(today.month()),
        today.day(),
        (u128::from(super::random_u64()) << 32) | u128::from(number)
    );
    let mut env: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", spec.name.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", spec.name)),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        // The stack configures JSON logs (LoggingConfig LogFormat JSON): Lambda then sets these.
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_string()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_string()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_string()),
        ("AWS_REGION", spec.region.clone()),
        ("AWS_DEFAULT_REGION", spec.region.clone()),
        ("AWS_ACCESS_KEY_ID", credentials.access_key_id().to_string()),
        ("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key().to_string()),
        ("_HANDLER", "bootstrap".to_string()),
        ("LAMBDA_TASK_ROOT", task_root.to_string()),
        ("LAMBDA_RUNTIME_DIR", task_root.to_string()),
        ("TZ", ":UTC".to_string()),
        ("LANG", "en_US.UTF-8".to_string()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(token) = credentials.session_token() {
        env.push(("AWS_SESSION_TOKEN".into(), token.to_string()));
    }
    env.extend(spec.variables.iter().cloned());
    // Not Lambda's, but the host's TLS set-up: the function's HTTPS client reads the host's
    // certificates and honours these.
    for var in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
        if let Some(v) = std::env::var_os(var) {
            env.push((var.to_string(), v.to_string_lossy().into_owned()));
        }
    }
    env
}

/// The execution environments of the function. Cloning shares them.
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

struct Inner {
    spec: FunctionSpec,
    /// Where the environments' lines and the function's output go.
    printer: Arc<dyn Printer>,
    max: usize,
    /// At most this many events wait.
    max_queue: usize,
    state: Mutex<State>,
    /// Notified whenever an environment ends.
    ended: Notify,
    /// [`Invocation`]s alive: events given to the pool whose callers still hold them.
    invocations: AtomicUsize,
    /// Notified when `invocations` falls to 0.
    settled: Notify,
    /// The next environment's number, shared with the pool's successors ([`Pool::successor`]):
    /// `[env N]` names one process while the pools of two builds run side by side.
    numbers: Arc<AtomicU32>,
    /// Environments handling an event now, in this pool and its predecessors and successors
    /// (Lambda's `ConcurrentExecutions`, for `serve`'s counters).
    busy: Arc<AtomicUsize>,
}

/// How an event ran, for its X-Ray segments (times in seconds since the epoch, to the
/// microsecond).
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    pub env: u32,
    /// The invocation's request id (`Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// The environment's initialisation, from its process's start to its first `/next`: only
    /// on a cold start, i.e. the first event of an environment started after the event was
    /// given to the pool (the event waited for it).
    pub init: Option<(f64, f64)>,
    /// When the environment took the event (its `/next` answered).
    pub taken: f64,
}

struct Job {
    ticket: u64,
    request_id: String,
    payload: Bytes,
    trace_id: String,
    done: oneshot::Sender<Outcome>,
    /// [`WAITING`], then [`CLAIMED`] by an environment or [`WITHDRAWN`] by the caller, once.
    claim: Arc<AtomicU8>,
    /// When it was given to the pool (seconds since the epoch).
    given: f64,
    /// Filled when an environment takes it; shared with its [`Invocation`].
    ran: Arc<Mutex<Option<Ran>>>,
}

const WAITING: u8 = 0;
const CLAIMED: u8 = 1;
const WITHDRAWN: u8 = 2;

impl Job {
    /// Take the event for an environment: false when its caller gave up on it (it must not run).
    fn claim(&self) -> bool {
        !self.done.is_closed()
            && self.claim.compare_exchange(WAITING, CLAIMED, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }
}

/// An event given to the pool: its outcome, or taken back while it still waits.
pub struct Invocation {
    pool: Arc<Inner>,
    ticket: u64,
    claim: Arc<AtomicU8>,
    done: oneshot::Receiver<Outcome>,
    ran: Arc<Mutex<Option<Ran>>>,
}

impl Invocation {
    fn new(
        pool: Arc<Inner>,
        ticket: u64,
        claim: Arc<AtomicU8>,
        done: oneshot::Receiver<Outcome>,
        ran: Arc<Mutex<Option<Ran>>>,
    ) -> Invocation {
        pool.invocations.fetch_add(1, Ordering::SeqCst);
        Invocation { pool, ticket, claim, done, ran }
    }

    /// How the event ran: None while no environment has taken it (or never will).
    pub fn ran(&self) -> Option<Ran> {
        lock(&self.ran).clone()
    }

    /// The outcome (Err: the pool dropped the event without one).
    pub async fn outcome(&mut self) -> Result<Outcome, oneshot::error::RecvError> {
        (&mut self.done).await
    }

    /// Give up on the event: true when no environment took it (it never runs; its place in the
    /// queue is freed), false when one did (it runs, or ran).
    pub fn withdraw(&self) -> bool {
        if self.claim.compare_exchange(WAITING, WITHDRAWN, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            return self.claim.load(Ordering::SeqCst) == WITHDRAWN;
        }
        let mut st = lock(&self.pool.state);
        if let Some(at) = st.queue.iter().position(|j| j.ticket == self.ticket) {
            st.queue.remove(at);
        }
        true
    }
}

impl Drop for Invocation {
    /// A caller that no longer waits (its client went away, or it answered 504) withdraws its
    /// event if no environment took it yet.
    fn drop(&mut self) {
        self.withdraw();
        if self.pool.invocations.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.pool.settled.notify_waiters();
        }
    }
}

#[derive(Default)]
struct State {
    /// Events waiting for an environment, oldest first.
    queue: VecDeque<Job>,
    /// Environments waiting in `/next`, by number.
    idle: VecDeque<(u32, oneshot::Sender<Job>)>,
    envs: HashMap<u32, Arc<Env>>,
    /// Environments started or starting (at most `max`).
    live: usize,
    /// Of those, the ones that have not asked for their first event yet.
    starting: usize,
    /// Of those, the ones that have just answered an event and are on their way back to
    /// `/next` (a runtime polls again at once): like starting ones, each will take an event
    /// soon, so none is started for it.
    returning: usize,
    next_ticket: u64,
    stopping: bool,
}

struct Env {
    number: u32,
    started: Instant,
    /// When its process was started, and when it first asked for an event (seconds since the
    /// epoch): its initialisation, for the X-Ray segment of its first event.
    started_at: f64,
    ready_at: Mutex<Option<f64>>,
    /// Whether it has taken an event yet.
    took_one: AtomicBool,
    /// Whether it has asked for its first event (its initialisation is over). Changed under the
    /// pool's state lock.
    polled: AtomicBool,
    /// Its process has ended. Set under the `in_flight` lock, so an event is never handed to a
    /// dead environment.
    dead: AtomicBool,
    /// Counted in [`State::returning`]. Changed under the pool's state lock.
    returning: AtomicBool,
    in_flight: Mutex<Option<InFlight>>,
    init_error: Mutex<Option<String>>,
    kill: Notify,
}

struct InFlight {
    request_id: String,
    done: oneshot::Sender<Outcome>,
    timer: tokio::task::JoinHandle<()>,
}

/// The oldest waiting event an environment may take; events given up on are dropped on the way.
fn next_claimed(queue: &mut VecDeque<Job>) -> Option<Job> {
    while let Some(job) = queue.pop_front() {
        if job.claim() {
            return Some(job);
        }
    }
    None
}

/// Hand `job` to an idle environment; it comes back when none is idle.
fn to_idle(st: &mut State, mut job: Job) -> Option<Job> {
    while let Some((_, waiter)) = st.idle.pop_front() {
        if waiter.is_closed() {
            continue;
        }
        match waiter.send(job) {
            Ok(()) => return None,
            // That environment's poll is gone (its process ended): try the next.
            Err(back) => job = back,
        }
    }
    Some(job)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pool {
    pub fn new(spec: FunctionSpec, max: usize, printer: Arc<dyn Printer>) -> Pool {
        Pool::numbered(spec, max, printer, Arc::new(AtomicU32::new(1)), Arc::default())
    }

    /// A pool that replaces this one (the next build of `serve --watch`): its environments'
    /// numbers follow this one's.
    pub fn successor(&self, spec: FunctionSpec) -> Pool {
        Pool::numbered(spec, self.0.max, self.0.printer.clone(), self.0.numbers.clone(), self.0.busy.clone())
    }

    fn numbered(
        spec: FunctionSpec,
        max: usize,
        printer: Arc<dyn Printer>,
        numbers: Arc<AtomicU32>,
        busy: Arc<AtomicUsize>,
    ) -> Pool {
        let max = max.max(1);
        Pool(Arc::new(Inner {
            spec,
            printer,
            max,
            max_queue: max * QUEUE_PER_ENVIRONMENT,
            state: Mutex::new(State::default()),
            ended: Notify::new(),
            invocations: AtomicUsize::new(0),
            settled: Notify::new(),
            numbers,
            busy,
        }))
    }

    /// The function its environments run.
    pub fn spec(&self) -> &FunctionSpec {
        &self.0.spec
    }

    /// The `bootstrap` its environments run.
    pub fn bootstrap(&self) -> &std::path::Path {
        &self.0.spec.bootstrap
    }

    /// Whether `other` is this pool (a clone of it).
    pub fn is(&self, other: &Pool) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Stop a pool no new event goes to (the previous build of `serve --watch`) once every event
    /// given to it has its outcome and its callers are done with it, or after `within` (the
    /// integration timeout: no caller waits longer); then [`Pool::shutdown`] with `grace`.
    pub async fn retire(&self, within: Duration, grace: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let settled = self.0.settled.notified();
            if self.0.invocations.load(Ordering::SeqCst) == 0 {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, settled).await.is_err() {
                break;
            }
        }
        self.shutdown(grace).await;
    }

    /// How many events may wait for an environment.
    pub fn queue_bound(&self) -> usize {
        self.0.max_queue
    }

    /// Environments handling an event now, this pool's and those of the builds before and
    /// after it.
    pub fn busy(&self) -> usize {
        self.0.busy.load(Ordering::SeqCst)
    }

    /// The most environments that run at once (`--concurrency`).
    pub fn max(&self) -> usize {
        self.0.max
    }

    /// Give the function an event: to an idle environment, else into the queue, unless the queue
    /// is full. `trace_id` is the X-Ray trace header handed to the function.
    pub fn invoke(&self, payload: Bytes, trace_id: String) -> Result<Invocation, QueueFull> {
        let (done, rx) = oneshot::channel();
        let claim = Arc::new(AtomicU8::new(WAITING));
        let spawn = {
            let mut st = lock(&self.0.state);
            let ticket = st.next_ticket;
            st.next_ticket += 1;
            let ran: Arc<Mutex<Option<Ran>>> = Arc::default();
            let invocation = Invocation::new(self.0.clone(), ticket, claim.clone(), rx, ran.clone());
            let given = epoch_seconds();
            let job = Job { ticket, request_id: super::request_id(), payload, trace_id, done, claim, given, ran };
            if st.stopping {
                let _ = job.done.send(Outcome::NotRun("serve is stopping".into()));
                return Ok(invocation);
            }
            let Some(job) = to_idle(&mut st, job) else { return Ok(invocation) };
            if st.queue.len() >= self.0.max_queue {
                // Not queued: the caller's withdraw finds nothing to remove.
                job.claim.store(WITHDRAWN, Ordering::SeqCst);
                return Err(QueueFull { bound: self.0.max_queue });
            }
            st.queue.push_back(job);
            (invocation, self.0.reserve(&mut st))
        };
        let (invocation, spawn) = spawn;
        if let Some(number) = spawn {
            self.0.clone().spawn_env(number);
        }
        Ok(invocation)
    }

    /// Stop: events still waiting end [`Outcome::NotRun`], every process is stopped; waits up to
    /// `grace` for them to end.
    pub async fn shutdown(&self, grace: Duration) {
        let (jobs, envs) = {
            let mut st = lock(&self.0.state);
            st.stopping = true;
            st.idle.clear();
            (st.queue.drain(..).collect::<Vec<_>>(), st.envs.values().cloned().collect::<Vec<_>>())
        };
        for job in jobs {
            let _ = job.done.send(Outcome::NotRun("serve is stopping".into()));
        }
        for env in envs {
            env.kill.notify_one();
        }
        let deadline = Instant::now() + grace;
        loop {
            let ended = self.0.ended.notified();
            if lock(&self.0.state).live == 0 {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, ended).await.is_err() {
                return;
            }
        }
    }
}

impl Inner {
    fn say(&self, event: ServeEvent) {
        self.printer.event(Event::Serve(event));
    }

    /// Reserve a new environment's number when events wait that the starting environments will
    /// not take, and there is room.
    fn reserve(&self, st: &mut State) -> Option<u32> {
        if st.stopping || st.queue.len() <= st.starting + st.returning || st.live >= self.max {
            return None;
        }
        st.live += 1;
        st.starting += 1;
        let number = self.numbers.fetch_add(1, Ordering::SeqCst);
        Some(number)
    }

    fn spawn_env(self: Arc<Self>, number: u32) {
        tokio::spawn(async move {
            if let Err(why) = self.clone().start_env(number).await {
                self.say(ServeEvent::EnvCouldNotStart { env: number, error: why.clone() });
                self.ended(number, None, why);
            }
        });
    }

    async fn start_env(self: Arc<Self>, number: u32) -> Result<(), String> {
        let credentials = self
            .spec
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("no credentials for the function: {}", crate::error::chain(&e)))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1 for its Runtime API: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let env = Arc::new(Env {
            number,
            started: Instant::now(),
            started_at: epoch_seconds(),
            ready_at: Mutex::new(None),
            took_one: AtomicBool::new(false),
            polled: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            returning: AtomicBool::new(false),
            in_flight: Mutex::new(None),
            init_error: Mutex::new(None),
            kill: Notify::new(),
        });
        let server = tokio::spawn(runtime_api(listener, env.clone(), self.clone()));
        let bootstrap = &self.spec.bootstrap;
        let task_root = bootstrap.parent().map(|p| p.display().to_string()).unwrap_or_else(|| ".".into());
        let mut cmd = tokio::process::Command::new(bootstrap);
        cmd.env_clear()
            .envs(lambda_env(&self.spec, &addr.to_string(), number, &credentials, &task_root))
            .current_dir(&task_root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C in the terminal reaches `serve` alone, which answers
            // the requests in flight before it stops the processes itself.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                server.abort();
                return Err(format!("cannot run {}: {e}", bootstrap.display()));
            }
        };
        self.say(ServeEvent::EnvStarted { env: number, pid: child.id().unwrap_or(0) });
        if let Some(out) = child.stdout.take() {
            forward_lines(out, number, self.printer.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward_lines(err, number, self.printer.clone());
        }
        let stopping = {
            let mut st = lock(&self.state);
            st.envs.insert(number, env.clone());
            st.stopping
        };
        if stopping {
            env.kill.notify_one();
        }
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = env.kill.notified() => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            server.abort();
            let status = match status {
                Ok(s) => s.to_string(),
                Err(e) => format!("cannot tell how it ended: {e}"),
            };
            self.ended(number, Some(&env), status);
        });
        Ok(())
    }

    /// Environment `number` is gone (`env`: None if its process never started).
    fn ended(self: &Arc<Self>, number: u32, env: Option<&Arc<Env>>, status: String) {
        let in_flight = env.and_then(|e| {
            let mut slot = lock(&e.in_flight);
            e.dead.store(true, Ordering::SeqCst);
            slot.take()
        });
        let (initialised, init_failed, respawn) = {
            let mut st = lock(&self.state);
            // Marked as polled: a `/next` still running on another thread must not count it again.
            let initialised = env.is_some_and(|e| e.polled.swap(true, Ordering::SeqCst));
            if env.is_some_and(|e| e.returning.swap(false, Ordering::SeqCst)) {
                st.returning -= 1;
            }
            st.envs.remove(&number);
            st.live -= 1;
            st.idle.retain(|(n, _)| *n != number);
            let init_failed = if initialised {
                None
            } else {
                st.starting -= 1;
                next_claimed(&mut st.queue)
            };
            (initialised, init_failed, self.reserve(&mut st))
        };
        if let Some(f) = in_flight {
            self.busy.fetch_sub(1, Ordering::SeqCst);
            f.timer.abort();
            self.say(ServeEvent::EnvCrashed { env: number, status: status.clone(), request_id: f.request_id });
            let _ = f.done.send(Outcome::Crashed { env: number, status });
        } else if !initialised {
            let init_error = env.and_then(|e| lock(&e.init_error).clone());
            let why = init_failure(number, init_error.as_deref(), &status);
            self.say(ServeEvent::EnvInitFailed { env: number, init_error, status });
            if let Some(job) = init_failed {
                let _ = job.done.send(Outcome::NotRun(why));
            }
        } else {
            self.say(ServeEvent::EnvExited { env: number, status });
        }
        // After the line above: `shutdown` returns on this, and the process may end right after.
        self.ended.notify_waiters();
        if let Some(n) = respawn {
            self.clone().spawn_env(n);
        }
    }

    /// `GET /next` of environment `env`: the next event for it, once there is one.
    async fn next(self: &Arc<Self>, env: &Arc<Env>) -> Response<Full<Bytes>> {
        let job = loop {
            let (first, waiting) = {
                let mut st = lock(&self.state);
                let first = !env.polled.swap(true, Ordering::SeqCst);
                if first {
                    st.starting -= 1;
                    *lock(&env.ready_at) = Some(epoch_seconds());
                }
                if env.returning.swap(false, Ordering::SeqCst) {
                    st.returning -= 1;
                }
                let waiting = match next_claimed(&mut st.queue) {
                    Some(job) => Ok(job),
                    None => {
                        let (tx, rx) = oneshot::channel();
                        st.idle.push_back((env.number, tx));
                        Err(rx)
                    }
                };
                (first, waiting)
            };
            if first {
                self.say(ServeEvent::EnvReady { env: env.number, init: env.started.elapsed() });
            }
            match waiting {
                Ok(job) => break job,
                Err(rx) => match rx.await {
                    Ok(job) if job.claim() => break job,
                    // Given up on while it was on its way here: wait for another.
                    Ok(_) => continue,
                    // `serve` is stopping and this process is about to be stopped: an answer
                    // would only make the runtime report an error first.
                    Err(_) => std::future::pending().await,
                },
            }
        };
        let timeout = self.spec.timeout;
        let deadline_ms = epoch_ms() + u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut response = Response::new(Full::new(job.payload.clone()));
        let h = response.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        for (name, value) in [
            ("lambda-runtime-aws-request-id", job.request_id.as_str()),
            ("lambda-runtime-invoked-function-arn", self.spec.arn.as_str()),
            ("lambda-runtime-trace-id", job.trace_id.as_str()),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        }
        h.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline_ms));
        let mut slot = lock(&env.in_flight);
        if env.dead.load(Ordering::SeqCst) {
            // Its process ended while this poll was answered: the event goes back to the front.
            drop(slot);
            self.requeue(job);
            return json(StatusCode::INTERNAL_SERVER_ERROR, r#"{"errorMessage":"environment ended"}"#);
        }
        let timer = {
            let (pool, env, id) = (self.clone(), env.clone(), job.request_id.clone());
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                pool.timed_out(&env, &id);
            })
        };
        let taken = epoch_seconds();
        let cold = !env.took_one.swap(true, Ordering::SeqCst) && env.started_at >= job.given;
        let init = lock(&env.ready_at).filter(|_| cold).map(|ready| (env.started_at, ready));
        *lock(&job.ran) = Some(Ran { env: env.number, request_id: job.request_id.clone(), init, taken });
        self.busy.fetch_add(1, Ordering::SeqCst);
        *slot = Some(InFlight { request_id: job.request_id, done: job.done, timer });
        response
    }

    /// An event taken by an environment that ended before running it: first in line again.
    fn requeue(self: &Arc<Self>, job: Job) {
        // Claimed by an environment that never ran it: it may be taken (or withdrawn) again.
        job.claim.store(WAITING, Ordering::SeqCst);
        let spawn = {
            let mut st = lock(&self.state);
            if st.stopping {
                let _ = job.done.send(Outcome::NotRun("serve is stopping".into()));
                return;
            }
            let Some(job) = to_idle(&mut st, job) else { return };
            st.queue.push_front(job);
            self.reserve(&mut st)
        };
        if let Some(n) = spawn {
            self.clone().spawn_env(n);
        }
    }

    fn timed_out(&self, env: &Env, request_id: &str) {
        let f = {
            let mut slot = lock(&env.in_flight);
            if slot.as_ref().is_some_and(|f| f.request_id == request_id) { slot.take() } else { None }
        };
        if let Some(f) = f {
            self.busy.fetch_sub(1, Ordering::SeqCst);
            let after = self.spec.timeout;
            self.say(ServeEvent::TaskTimedOut { env: env.number, request_id: request_id.to_string(), after });
            let _ = f.done.send(Outcome::TimedOut { env: env.number, after });
            env.kill.notify_one();
        }
    }

    /// `POST /invocation/{id}/response` or `/error`.
    fn finish(&self, env: &Env, request_id: &str, outcome: Outcome) -> Response<Full<Bytes>> {
        let f = {
            let mut slot = lock(&env.in_flight);
            if slot.as_ref().is_some_and(|f| f.request_id == request_id) { slot.take() } else { None }
        };
        match f {
            Some(f) => {
                self.busy.fetch_sub(1, Ordering::SeqCst);
                {
                    let mut st = lock(&self.state);
                    if !env.dead.load(Ordering::SeqCst) && !env.returning.swap(true, Ordering::SeqCst) {
                        st.returning += 1;
                    }
                }
                f.timer.abort();
                let _ = f.done.send(outcome);
                json(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            }
            None => {
                json(StatusCode::BAD_REQUEST, r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#)
            }
        }
    }
}

const PREFIX: &str = "/2018-06-01/runtime/";

/// One environment's Runtime API. Aborting the task closes every connection with it.
async fn runtime_api(listener: tokio::net::TcpListener, env: Arc<Env>, pool: Arc<Inner>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let (env, pool) = (env.clone(), pool.clone());
        connections.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let (env, pool) = (env.clone(), pool.clone());
                async move { Ok::<_, Infallible>(handle(&pool, &env, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(pool: &Arc<Inner>, env: &Arc<Env>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let rest = parts.uri.path().strip_prefix(PREFIX).unwrap_or_default().to_string();
    if parts.method == Method::GET && rest == "invocation/next" {
        return pool.next(env).await;
    }
    if parts.method != Method::POST {
        return json(StatusCode::NOT_FOUND, r#"{"errorMessage":"Unknown resource","errorType":"NotFound"}"#);
    }
    let error_type =
        parts.headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = match Limited::new(body, MAX_RESPONSE_BYTES).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(e),
    };
    if rest == "init/error" {
        let text = body.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        pool.say(ServeEvent::EnvInitError { env: env.number, error: text.clone() });
        *lock(&env.init_error) = Some(text);
        return json(StatusCode::ACCEPTED, r#"{"status":"OK"}"#);
    }
    let Some((id, kind)) = rest.strip_prefix("invocation/").and_then(|r| r.split_once('/')) else {
        return json(StatusCode::NOT_FOUND, r#"{"errorMessage":"Unknown resource","errorType":"NotFound"}"#);
    };
    let outcome = match (kind, body) {
        ("response", Ok(bytes)) => Outcome::Response(bytes),
        ("response", Err(_)) => Outcome::FunctionError {
            error_type: "Function.ResponseSizeTooLarge".into(),
            message: format!("the response is larger than {MAX_RESPONSE_BYTES} bytes"),
        },
        ("error", body) => {
            let text = body.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            Outcome::FunctionError {
                error_type: error_type
                    .or_else(|| parsed["errorType"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "Unhandled".into()),
                message: parsed["errorMessage"].as_str().map(str::to_string).unwrap_or(text),
            }
        }
        _ => return json(StatusCode::NOT_FOUND, r#"{"errorMessage":"Unknown resource","errorType":"NotFound"}"#),
    };
    pool.finish(env, id, outcome)
}

fn json(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// The process's output lines to the printer, tagged with its environment's number (in Lambda
/// they go to the function's log group).
fn forward_lines(pipe: impl AsyncRead + Unpin + Send + 'static, number: u32, printer: Arc<dyn Printer>) {
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(pipe).split(b'\n');
        while let Ok(Some(line)) = lines.next_segment().await {
            let line = String::from_utf8_lossy(&line).into_owned();
            printer.event(Event::Serve(ServeEvent::FunctionOutput { env: number, line }));
        }
    });
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Now, in seconds since the epoch to the microsecond (X-Ray's times).
fn epoch_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as f64 / 1e6).unwrap_or(0.0)
}

/// A function whose bootstrap is `/opt/fn/bootstrap` (which does not exist), for the other
/// modules' tests.
#[cfg(test)]
pub fn sample_spec() -> FunctionSpec {
    FunctionSpec {
        bootstrap: PathBuf::from("/opt/fn/bootstrap"),
        name: "apigw_handler".into(),
        arn: "arn:aws:lambda:eu-west-1:123456789012:function:apigw_handler".into(),
        memory_mb: 512,
        timeout: Duration::from_secs(10),
        region: "eu-west-1".into(),
        variables: vec![("TABLE_NAME".into(), "demo_table".into())],
        credentials: SharedCredentialsProvider::new(Credentials::new("AKID", "SECRET", None, None, "test")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FunctionSpec {
        sample_spec()
    }

    #[test]
    fn the_environment_is_lambdas() {
        let creds = Credentials::new("AKID", "SECRET", Some("TOKEN".into()), None, "test");
        let env: HashMap<String, String> =
            lambda_env(&spec(), "127.0.0.1:9001", 3, &creds, "/opt/fn").into_iter().collect();
        for (k, v) in [
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_LAMBDA_FUNCTION_NAME", "apigw_handler"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ("AWS_SESSION_TOKEN", "TOKEN"),
            ("TABLE_NAME", "demo_table"),
            ("LAMBDA_TASK_ROOT", "/opt/fn"),
            ("_HANDLER", "bootstrap"),
        ] {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
        let stream = &env["AWS_LAMBDA_LOG_STREAM_NAME"];
        assert!(stream.contains("/[$LATEST]") && stream.len() == "2026/11/27/[$LATEST]".len() + 32, "{stream}");
        // Per invocation, from the Runtime API's trace header, never per process.
        assert!(!env.contains_key("_X_AMZN_TRACE_ID"));
    }

    #[test]
    fn failures_name_their_cause() {
        assert_eq!(Outcome::Response(Bytes::new()).failure(), None);
        let t = Outcome::TimedOut { env: 2, after: Duration::from_secs(3) }.failure().unwrap();
        assert_eq!(t, "env 2: Task timed out after 3.00 seconds");
        let c = Outcome::Crashed { env: 1, status: "signal: 9 (SIGKILL)".into() }.failure().unwrap();
        assert!(c.contains("env 1 exited") && c.contains("SIGKILL"), "{c}");
    }

    fn pool(max: usize) -> Pool {
        Pool::new(spec(), max, Arc::new(crate::ui::Recorder::default()))
    }

    fn queued(pool: &Pool) -> usize {
        lock(&pool.0.state).queue.len()
    }

    /// On a current-thread runtime without an await, no environment starts: every event waits.
    #[tokio::test(flavor = "current_thread")]
    async fn the_queue_is_bounded_and_refuses_past_it() {
        let pool = pool(2);
        assert_eq!(pool.queue_bound(), 2 * QUEUE_PER_ENVIRONMENT);
        let mut waiting: Vec<Invocation> = (0..pool.queue_bound())
            .map(|i| pool.invoke(Bytes::from_static(b"{}"), format!("t{i}")).expect("room in the queue"))
            .collect();
        assert_eq!(queued(&pool), pool.queue_bound());
        let full = pool.invoke(Bytes::from_static(b"{}"), "t".into()).err();
        assert_eq!(full, Some(QueueFull { bound: 2 * QUEUE_PER_ENVIRONMENT }));
        assert_eq!(queued(&pool), pool.queue_bound(), "a refused event is not queued");
        // A caller that stops waiting (dropped: its client went away) frees its place.
        waiting.remove(3);
        assert_eq!(queued(&pool), pool.queue_bound() - 1);
        waiting.push(pool.invoke(Bytes::from_static(b"{}"), "t".into()).expect("the freed place"));
        // One answered 504 while waiting: withdrawn, it never reaches an environment.
        assert!(waiting[0].withdraw(), "it never ran");
        assert!(waiting[0].withdraw(), "withdrawing twice says the same");
        assert_eq!(queued(&pool), pool.queue_bound() - 1);
    }

    /// `serve --watch`'s previous build: stopped only once the callers of its events let go.
    #[tokio::test]
    async fn a_retired_pool_stops_once_its_callers_are_done() {
        let pool = pool(1);
        let invocation = pool.invoke(Bytes::from_static(b"{}"), "t".into()).expect("room in the queue");
        let retiring = tokio::spawn({
            let pool = pool.clone();
            async move { pool.retire(Duration::from_secs(30), Duration::from_secs(1)).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!retiring.is_finished() && !lock(&pool.0.state).stopping, "a caller still holds its event");
        drop(invocation);
        tokio::time::timeout(Duration::from_secs(5), retiring).await.expect("retired once the caller let go").unwrap();
        assert!(lock(&pool.0.state).stopping);
        // Nothing given to it: retired at once.
        let idle = super::tests::pool(1);
        tokio::time::timeout(Duration::from_secs(5), idle.retire(Duration::from_secs(30), Duration::from_secs(1)))
            .await
            .expect("an idle pool retires at once");
    }

    fn job(ticket: u64) -> (Job, oneshot::Receiver<Outcome>) {
        let (done, rx) = oneshot::channel();
        let job = Job {
            ticket,
            request_id: format!("r{ticket}"),
            payload: Bytes::new(),
            trace_id: String::new(),
            done,
            claim: Arc::new(AtomicU8::new(WAITING)),
            given: 0.0,
            ran: Arc::default(),
        };
        (job, rx)
    }

    #[test]
    fn an_environment_never_takes_an_event_given_up_on() {
        let (gone, gone_rx) = job(1);
        drop(gone_rx);
        let (withdrawn, _withdrawn_rx) = job(2);
        withdrawn.claim.store(WITHDRAWN, Ordering::SeqCst);
        let (live, _live_rx) = job(3);
        let claim = live.claim.clone();
        let mut queue = VecDeque::from([gone, withdrawn, live]);
        let taken = next_claimed(&mut queue).expect("the live event");
        assert_eq!(taken.ticket, 3);
        assert!(queue.is_empty(), "the dead events are dropped on the way");
        assert_eq!(claim.load(Ordering::SeqCst), CLAIMED);
        // Claimed first: its caller's withdraw loses (it runs).
        assert!(!taken.claim(), "claimed once");
        assert_eq!(claim.compare_exchange(WAITING, WITHDRAWN, Ordering::SeqCst, Ordering::SeqCst), Err(CLAIMED));
    }
}
