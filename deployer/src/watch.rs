//! Watching the handler's sources (`serve --watch`, `up --watch`).
//!
//! - Watched (inotify through `notify`, debounced [`DEBOUNCE`]): the Rust files below
//!   `handler/src/`, `handler/Cargo.toml` and `Cargo.lock`. Their folders are watched rather than
//!   the files: an editor that saves by writing a new file and renaming it over the old one would
//!   end a watch on the file itself. Other files there (an editor's swap and backup files, a
//!   save's temporary file) are not sources: they change nothing.
//! - A change is a change of content: each watched file is hashed ([`Sources`]), and events that
//!   leave every hash as the last change saw it (a save without an edit, cargo or the compiler
//!   opening the files: inotify reports opens too) are no change. The files whose hash changed
//!   are the ones named.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::sync::mpsc;

use crate::error::{Error, Result};

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

    /// The next change of content: the files added, changed or removed since the last change
    /// returned (or since the watch began); `None` when the watch ended. A failure of the watch
    /// itself is told to `failed`, and the watch goes on.
    pub async fn next_change(&mut self, failed: &(dyn Fn(String) + Sync)) -> Option<Vec<PathBuf>> {
        loop {
            if !self.touched(failed).await {
                return None;
            }
            let now = Sources::read(&self.root);
            let changed = now.changed_since(&self.built);
            self.built = now;
            if !changed.is_empty() {
                return Some(changed);
            }
        }
    }

    /// Wait until a watched path saw an event (its content may not have changed); false when
    /// the watch ended.
    async fn touched(&mut self, failed: &(dyn Fn(String) + Sync)) -> bool {
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
                    Err(e) => failed(e.to_string()),
                }
            }
            if touched {
                return true;
            }
        }
    }
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
        let root = std::env::temp_dir().join(format!("serve-watch-test-{:x}", std::process::id()));
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
}
