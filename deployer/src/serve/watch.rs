//! `serve --watch`: the handler rebuilt whenever its sources change, served without a gap.
//!
//! - Watched (inotify through `notify`, debounced [`DEBOUNCE`]): the Rust files below
//!   `handler/src/`, `handler/Cargo.toml` and `Cargo.lock`. Their folders are watched rather than
//!   the files: an editor that saves by writing a new file and renaming it over the old one would
//!   end a watch on the file itself. Other files there (an editor's swap and backup files, a
//!   save's temporary file) are not sources: they change nothing.
//! - A change is a change of content: each watched file is hashed ([`Sources`]), and events that
//!   leave every hash as the last build saw it (a save without an edit, cargo or the compiler
//!   opening the files: inotify reports opens too) build nothing. The files whose hash changed
//!   are the ones named.
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

use std::collections::BTreeMap;
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

/// What is watched, relative to the repository root: the sources of the handler's build.
pub const WATCHED: [&str; 3] = ["handler/src/**/*.rs", "handler/Cargo.toml", "Cargo.lock"];

/// Whether `relative` (a path below the repository root) is one of the [`WATCHED`]. Pure.
pub fn is_watched(relative: &Path) -> bool {
    (relative.starts_with("handler/src") && is_rust(relative))
        || relative == Path::new("handler/Cargo.toml")
        || relative == Path::new("Cargo.lock")
}

/// A Rust file, not a hidden one (`.lib.rs.swp` is not, `lib.rs` is).
fn is_rust(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "rs")
        && path.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.'))
}

/// The watched files' contents, hashed, by path relative to the repository root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources(BTreeMap<PathBuf, u64>);

impl Sources {
    /// Read the watched files below `root` (a file that vanishes meanwhile is left out: an
    /// editor's save may be half-way).
    pub fn read(root: &Path) -> Sources {
        fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => walk(&path, files),
                    Ok(t) if t.is_file() && is_rust(&path) => files.push(path),
                    _ => {}
                }
            }
        }
        let mut files = vec![root.join("handler/Cargo.toml"), root.join("Cargo.lock")];
        walk(&root.join("handler/src"), &mut files);
        let hashed = files.into_iter().filter_map(|file| {
            let content = std::fs::read(&file).ok()?;
            let mut h = std::hash::DefaultHasher::new();
            content.hash(&mut h);
            Some((file.strip_prefix(root).unwrap_or(&file).to_path_buf(), h.finish()))
        });
        Sources(hashed.collect())
    }

    /// The files added, changed or removed since `before`, in order. Pure.
    pub fn changed_since(&self, before: &Sources) -> Vec<PathBuf> {
        let mut paths: Vec<&PathBuf> = self.0.keys().chain(before.0.keys()).collect();
        paths.sort();
        paths.dedup();
        paths.into_iter().filter(|p| self.0.get(*p) != before.0.get(*p)).cloned().collect()
    }
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
    /// The sources when the watch began.
    built: Sources,
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
        let built = Sources::read(&root);
        Ok(Watcher { root, _debouncer: debouncer, changes, built })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Wait until a watched path saw an event (its content may not have changed); false when
    /// the watch ended.
    async fn touched(&mut self, printer: &dyn Printer) -> bool {
        loop {
            let Some(first) = self.changes.recv().await else { return false };
            let mut batches = vec![first];
            while let Ok(more) = self.changes.try_recv() {
                batches.push(more);
            }
            let mut touched = false;
            for batch in batches {
                match batch {
                    Ok(events) => {
                        touched |= events.iter().any(|e| e.path.strip_prefix(&self.root).is_ok_and(is_watched));
                    }
                    Err(e) => printer.event(Event::Serve(ServeEvent::WatchFailed { error: e.to_string() })),
                }
            }
            if touched {
                return true;
            }
        }
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
        let mut built = self.watcher.built.clone();
        while self.watcher.touched(&*self.printer).await {
            let now = Sources::read(self.watcher.root());
            let changed = now.changed_since(&built);
            if changed.is_empty() {
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
    fn only_the_handlers_build_inputs_are_watched() {
        for p in ["handler/src/lib.rs", "handler/src/store/mod.rs", "handler/Cargo.toml", "Cargo.lock"] {
            assert!(is_watched(Path::new(p)), "{p}");
        }
        for p in [
            "handler/src.rs",
            "handler/tests/x.rs",
            "handler/src/lib.rs.saving",
            "handler/src/.lib.rs.swp",
            "handler/src/lib.rs~",
            "handler/src/4913",
            "deployer/src/main.rs",
            "Cargo.toml",
            "target/release/bootstrap",
            "handler",
        ] {
            assert!(!is_watched(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn a_change_is_one_of_content_not_of_file_times() {
        let root = std::env::temp_dir().join(format!("serve-watch-test-{:x}", super::super::random_u64()));
        std::fs::create_dir_all(root.join("handler/src/nested")).unwrap();
        std::fs::write(root.join("handler/Cargo.toml"), "[package]").unwrap();
        std::fs::write(root.join("handler/src/lib.rs"), "fn a() {}").unwrap();
        std::fs::write(root.join("handler/src/nested/m.rs"), "fn b() {}").unwrap();
        let first = Sources::read(&root);
        std::fs::write(root.join("handler/src/lib.rs"), "fn a() {}").unwrap();
        std::fs::write(root.join("README.md"), "not watched").unwrap();
        std::fs::write(root.join("handler/src/.lib.rs.swp"), "an editor's").unwrap();
        let same = Sources::read(&root);
        assert_eq!(same.changed_since(&first), Vec::<PathBuf>::new(), "same content, new file time; unwatched files");
        std::fs::write(root.join("handler/src/nested/m.rs"), "fn c() {}").unwrap();
        std::fs::write(root.join("Cargo.lock"), "# lock").unwrap();
        std::fs::remove_file(root.join("handler/src/lib.rs")).unwrap();
        let edited = Sources::read(&root);
        let changed: Vec<PathBuf> =
            ["Cargo.lock", "handler/src/lib.rs", "handler/src/nested/m.rs"].into_iter().map(PathBuf::from).collect();
        assert_eq!(edited.changed_since(&first), changed, "added, removed, edited");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn many_changes_are_summed_up() {
        let few: Vec<PathBuf> = ["Cargo.lock", "handler/src/lib.rs"].into_iter().map(PathBuf::from).collect();
        assert_eq!(shown(&few), ["Cargo.lock", "handler/src/lib.rs"]);
        let many: Vec<PathBuf> = (0..5).map(|i| PathBuf::from(format!("handler/src/m{i}.rs"))).collect();
        assert_eq!(shown(&many), ["handler/src/m0.rs", "handler/src/m1.rs", "handler/src/m2.rs", "2 more"]);
    }
}
