//! `serve --watch`: the handler rebuilt whenever its sources change, served without a gap.
//!
//! - Watched (inotify through `notify`, debounced [`DEBOUNCE`]): `handler/src/` and below,
//!   `handler/Cargo.toml` and `Cargo.lock`. Their folders are watched rather than the two files:
//!   an editor that saves by writing a new file and renaming it over the old one would end a
//!   watch on the file itself.
//! - A change is a change of content: the watched files are hashed ([`fingerprint`]), and events
//!   that leave the hash as the last build saw it (a save without an edit, cargo writing the same
//!   `Cargo.lock` again) build nothing.
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

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::sync::mpsc;

use super::gateway::Gateway;
use super::runtime::{FunctionSpec, Pool};
use super::{BuildError, CargoOutput, PROCESS_GRACE, build_host_bootstrap};
use crate::error::{Error, Result};
use crate::events::{Event, ServeEvent};
use crate::ui::Printer;

/// Quiet time after the last event before a rebuild starts: an editor's save (write, rename,
/// chmod) or `git checkout` of several files is one rebuild.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// What is watched, relative to the repository root: every source of the handler's build.
pub const WATCHED: [&str; 3] = ["handler/src", "handler/Cargo.toml", "Cargo.lock"];

/// Whether `relative` (a path below the repository root) is one of the [`WATCHED`]. Pure.
pub fn is_watched(relative: &Path) -> bool {
    relative.starts_with("handler/src")
        || relative == Path::new("handler/Cargo.toml")
        || relative == Path::new("Cargo.lock")
}

/// A hash of the watched files' names and contents (files that vanish meanwhile are left out:
/// an editor's save may be half-way).
pub fn fingerprint(root: &Path) -> u64 {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(&path, files),
                Ok(t) if t.is_file() => files.push(path),
                _ => {}
            }
        }
    }
    let mut files = vec![root.join("handler/Cargo.toml"), root.join("Cargo.lock")];
    walk(&root.join("handler/src"), &mut files);
    files.sort();
    let mut h = std::hash::DefaultHasher::new();
    for file in files {
        if let Ok(content) = std::fs::read(&file) {
            file.strip_prefix(root).unwrap_or(&file).hash(&mut h);
            content.hash(&mut h);
        }
    }
    h.finish()
}

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

/// The watch on the handler's sources, from before the first build (a change during it is seen).
pub struct Watcher {
    root: PathBuf,
    _debouncer: Debouncer<RecommendedWatcher>,
    changes: mpsc::UnboundedReceiver<DebounceEventResult>,
    /// The sources' fingerprint when the watch began.
    built: u64,
}

impl Watcher {
    /// Watch the [`WATCHED`] paths below `root` (the repository).
    pub fn start(root: &Path) -> Result<Watcher> {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let (tx, changes) = mpsc::unbounded_channel();
        let cannot = |what: &Path, e: notify_debouncer_mini::notify::Error| {
            Error::other(format!("--watch: cannot watch {}: {e}", what.display()))
        };
        let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
            let _ = tx.send(result);
        })
        .map_err(|e| cannot(&root, e))?;
        // Folders, not files (see the module's comment); `is_watched` keeps what matters.
        for (dir, mode) in [
            (root.join("handler/src"), RecursiveMode::Recursive),
            (root.join("handler"), RecursiveMode::NonRecursive),
            (root.clone(), RecursiveMode::NonRecursive),
        ] {
            debouncer.watcher().watch(&dir, mode).map_err(|e| cannot(&dir, e))?;
        }
        let built = fingerprint(&root);
        Ok(Watcher { root, _debouncer: debouncer, changes, built })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The next batch of changed watched files (relative, sorted); None when the watch ended.
    async fn next_changes(&mut self, printer: &dyn Printer) -> Option<BTreeSet<PathBuf>> {
        let mut changed = BTreeSet::new();
        let first = self.changes.recv().await?;
        let mut batches = vec![first];
        while let Ok(more) = self.changes.try_recv() {
            batches.push(more);
        }
        for batch in batches {
            match batch {
                Ok(events) => changed.extend(
                    events
                        .into_iter()
                        .filter_map(|e| e.path.strip_prefix(&self.root).ok().map(Path::to_path_buf))
                        .filter(|p| is_watched(p)),
                ),
                Err(e) => printer.event(Event::Serve(ServeEvent::WatchFailed { error: e.to_string() })),
            }
        }
        Some(changed)
    }
}

/// What a rebuild needs to serve its result.
pub struct Rebuilds {
    pub watcher: Watcher,
    pub builds: Builds,
    pub profile: String,
    /// The function; each build's `bootstrap` replaces its own.
    pub spec: FunctionSpec,
    pub concurrency: usize,
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
        let mut built = self.watcher.built;
        while let Some(changed) = self.watcher.next_changes(&*self.printer).await {
            if changed.is_empty() {
                continue;
            }
            let now = fingerprint(self.watcher.root());
            if now == built {
                continue;
            }
            say(ServeEvent::Rebuilding { changed: shown(&changed), profile: self.profile.clone() });
            let started = Instant::now();
            let result = build_host_bootstrap(self.watcher.root(), &self.profile, CargoOutput::Captured).await;
            // A failed build is not tried again until the sources change again.
            built = now;
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
        let old = self.gateway.swap_pool(Pool::new(spec, self.concurrency, self.printer.clone()));
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
fn shown(changed: &BTreeSet<PathBuf>) -> Vec<String> {
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
    fn only_the_handlers_build_inputs_are_watched() {
        for p in ["handler/src/lib.rs", "handler/src/store/mod.rs", "handler/Cargo.toml", "Cargo.lock"] {
            assert!(is_watched(Path::new(p)), "{p}");
        }
        for p in [
            "handler/src.rs",
            "handler/tests/x.rs",
            "deployer/src/main.rs",
            "Cargo.toml",
            "target/release/bootstrap",
            "handler",
        ] {
            assert!(!is_watched(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn the_fingerprint_follows_content_not_file_times() {
        let root = std::env::temp_dir().join(format!("serve-watch-test-{:x}", super::super::random_u64()));
        std::fs::create_dir_all(root.join("handler/src/nested")).unwrap();
        std::fs::write(root.join("handler/Cargo.toml"), "[package]").unwrap();
        std::fs::write(root.join("handler/src/lib.rs"), "fn a() {}").unwrap();
        std::fs::write(root.join("handler/src/nested/m.rs"), "fn b() {}").unwrap();
        let first = fingerprint(&root);
        std::fs::write(root.join("handler/src/lib.rs"), "fn a() {}").unwrap();
        std::fs::write(root.join("README.md"), "not watched").unwrap();
        assert_eq!(fingerprint(&root), first, "same content, new file time; an unwatched file");
        std::fs::write(root.join("handler/src/nested/m.rs"), "fn c() {}").unwrap();
        let edited = fingerprint(&root);
        assert_ne!(edited, first, "an edit below handler/src");
        std::fs::write(root.join("Cargo.lock"), "# lock").unwrap();
        assert_ne!(fingerprint(&root), edited, "Cargo.lock appeared");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn many_changes_are_summed_up() {
        let few: BTreeSet<PathBuf> = ["handler/src/lib.rs", "Cargo.lock"].into_iter().map(PathBuf::from).collect();
        assert_eq!(shown(&few), ["Cargo.lock", "handler/src/lib.rs"]);
        let many: BTreeSet<PathBuf> = (0..5).map(|i| PathBuf::from(format!("handler/src/m{i}.rs"))).collect();
        assert_eq!(shown(&many), ["handler/src/m0.rs", "handler/src/m1.rs", "handler/src/m2.rs", "2 more"]);
    }
}
