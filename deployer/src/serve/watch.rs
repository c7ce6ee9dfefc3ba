//! `serve --watch`: the handler rebuilt whenever its sources change, served without a gap.
//!
//! - What is watched, and what a change is: `crate::watch` (shared with `up --watch`).
//! - cargo's output is captured (the access log is on stdout, and our lines are the printer's):
//!   a failed build is one [`ServeEvent::RebuildFailed`] with the compiler's errors, and the
//!   previous build keeps serving.
//! - Each build is copied to a file of its own ([`Builds`]: `bootstrap-N` in a folder of this
//!   process): cargo rewrites `target/<profile>/bootstrap` (a hard link to
//!   `deps/bootstrap-<hash>`) in place while the previous build's processes still run it.
//! - The swap: a new [`Pool`] on the new copy replaces the gateway's ([`Gateway::swap_pool`]).
//!   Events are given to the pool under the gateway's read lock, so after the swap none reaches
//!   the old pool, and every event already in it is counted: the old pool is retired
//!   ([`Pool::retire`]), stopped once the requests in flight on it are answered.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::gateway::Gateway;
use super::runtime::{FunctionSpec, Pool};
use super::{BuildError, CargoOutput, PROCESS_GRACE, build_host_bootstrap};
use crate::error::{Error, Result};
use crate::events::{Event, ServeEvent};
use crate::ui::Printer;
pub use crate::watch::{WATCHED, Watcher};

/// The copies of each build the environments run, in a folder of this process (removed when
/// dropped: a running process keeps its file).
pub struct Builds {
    dir: PathBuf,
    next: u32,
}

impl Builds {
    pub fn new() -> Result<Builds> {
        let dir = std::env::temp_dir().join(format!(
            "movies-stack-serve-{}-{:08x}",
            std::process::id(),
            super::random_u64() as u32
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::other(format!("cannot create {} for the handler's builds: {e}", dir.display())))?;
        Ok(Builds { dir, next: 1 })
    }

    /// Copy `built` to `bootstrap-N` (N = 1, 2, ...): the file the environments run.
    pub fn keep(&mut self, built: &Path) -> Result<PathBuf> {
        let copy = self.dir.join(format!("bootstrap-{}", self.next));
        std::fs::copy(built, &copy).map_err(|e| {
            Error::other(format!("cannot copy the handler's build {} to {}: {e}", built.display(), copy.display()))
        })?;
        self.next += 1;
        Ok(copy)
    }
}

impl Drop for Builds {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a rebuild needs to serve its result.
pub struct Rebuilds {
    pub watcher: Watcher,
    pub builds: Builds,
    pub profile: String,
    /// The function; each build's `bootstrap` replaces its own.
    pub spec: FunctionSpec,
    /// How long a request may wait for the function: the longest a retired pool waits for its
    /// requests in flight.
    pub integration_timeout: Duration,
    pub gateway: Arc<Gateway>,
    /// Pools swapped out and not yet stopped: `serve` stops them when it stops.
    pub retiring: Arc<Mutex<Vec<Pool>>>,
    pub printer: Arc<dyn Printer>,
}

impl Rebuilds {
    /// Rebuild on every change, until the watch ends or the task is aborted (which kills a build
    /// under way).
    pub async fn run(mut self) {
        let say = |event: ServeEvent| self.printer.event(Event::Serve(event));
        let printer = self.printer.clone();
        let failed = move |error: String| printer.event(Event::Serve(ServeEvent::WatchFailed { error }));
        // A failed build is not tried again until the sources change again.
        while let Some(changed) = self.watcher.next_change(&failed).await {
            say(ServeEvent::Rebuilding { changed: shown(&changed), profile: self.profile.clone() });
            let started = Instant::now();
            let result = build_host_bootstrap(self.watcher.root(), &self.profile, CargoOutput::Captured).await;
            let copy = match result {
                Ok(exe) => self.builds.keep(&exe),
                Err(BuildError::Failed { errors, .. }) => Err(Error::other(errors)),
                Err(e) => Err(Error::other(e.to_string())),
            };
            match copy {
                Ok(bootstrap) => {
                    self.swap(bootstrap.clone());
                    say(ServeEvent::Rebuilt { took: started.elapsed(), bootstrap: bootstrap.display().to_string() });
                }
                Err(e) => say(ServeEvent::RebuildFailed { error: e.to_string() }),
            }
        }
    }

    /// New requests to a new pool running `bootstrap`; the old one retired in the background.
    fn swap(&self, bootstrap: PathBuf) {
        let spec = FunctionSpec { bootstrap, ..self.spec.clone() };
        let new = self.gateway.pool().successor(spec);
        let old = self.gateway.swap_pool(new);
        lock(&self.retiring).push(old.clone());
        let (retiring, printer, within) = (self.retiring.clone(), self.printer.clone(), self.integration_timeout);
        tokio::spawn(async move {
            old.retire(within, PROCESS_GRACE).await;
            lock(&retiring).retain(|p| !p.is(&old));
            let bootstrap = old.bootstrap().to_path_buf();
            let _ = std::fs::remove_file(&bootstrap);
            printer
                .event(Event::Serve(ServeEvent::PreviousBuildStopped { bootstrap: bootstrap.display().to_string() }));
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// At most 3 changed paths, then how many more. Pure.
fn shown(changed: &[PathBuf]) -> Vec<String> {
    let mut shown: Vec<String> = changed.iter().take(3).map(|p| p.display().to_string()).collect();
    if changed.len() > 3 {
        shown.push(format!("{} more", changed.len() - 3));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_changes_are_summed_up() {
        let few: Vec<PathBuf> = ["Cargo.lock", "handler/src/lib.rs"].into_iter().map(PathBuf::from).collect();
        assert_eq!(shown(&few), ["Cargo.lock", "handler/src/lib.rs"]);
        let many: Vec<PathBuf> = (0..5).map(|i| PathBuf::from(format!("handler/src/m{i}.rs"))).collect();
        assert_eq!(shown(&many), ["handler/src/m0.rs", "handler/src/m1.rs", "handler/src/m2.rs", "2 more"]);
    }
}
