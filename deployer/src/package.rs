//! The function's code: build the handler crate for the configured architecture with
//! cargo-lambda, package `bootstrap` into a deterministic zip (fixed timestamp and permissions,
//! so the same source gives the same bytes), and compute Lambda's `CodeSha256`
//! (base64 of the SHA-256 of the zip).

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The zip to deploy.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub zip: Vec<u8>,
    /// base64(SHA-256(zip)): what Lambda reports as `CodeSha256`.
    pub sha256_b64: String,
    /// Where it came from, for people.
    pub source: String,
}

impl Artifact {
    /// For commands that compare configuration only (`status`, `keys`, `down`): the function's
    /// code is not compared. Its `sha256_b64` is empty.
    pub fn unknown() -> Artifact {
        Artifact { zip: Vec::new(), sha256_b64: String::new(), source: "not built".into() }
    }

    pub fn from_zip(zip: Vec<u8>, source: String) -> Artifact {
        let sha256_b64 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&zip));
        Artifact { zip, sha256_b64, source }
    }
}

/// Hex SHA-256 of `bytes`: the digests the stack compares (an API definition, a converged state).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Read a prebuilt zip (`--artifact`); it must contain an executable `bootstrap`.
pub fn read_artifact(path: &Path) -> Result<Artifact> {
    let zip =
        std::fs::read(path).map_err(|e| Error::input(format!("--artifact {}: cannot read: {e}", path.display())))?;
    let mut archive = zip::ZipArchive::new(Cursor::new(&zip))
        .map_err(|e| Error::input(format!("--artifact {}: not a zip file: {e}", path.display())))?;
    if archive.by_name("bootstrap").is_err() {
        return Err(Error::input(format!(
            "--artifact {}: the zip has no `bootstrap` entry at its root (the provided.al2023 runtime runs ./bootstrap)",
            path.display()
        )));
    }
    Ok(Artifact::from_zip(zip, path.display().to_string()))
}

/// The function code to compare or deploy: `--artifact ZIP`, or handler/ built for the
/// configured architecture.
pub async fn artifact(
    config: &crate::config::Config,
    path: Option<&Path>,
    printer: &std::sync::Arc<dyn crate::ui::Printer>,
) -> Result<Artifact> {
    let artifact = match path {
        Some(path) => read_artifact(path)?,
        None => {
            printer.event(crate::events::Event::Info(format!(
                "building handler/ for {} (cargo lambda build --release)",
                config.function.architecture
            )));
            build(&config.function.architecture).await?
        }
    };
    printer.event(crate::events::Event::Info(format!(
        "function code: {} (CodeSha256 {})",
        artifact.source, artifact.sha256_b64
    )));
    Ok(artifact)
}

/// A zip with one entry `bootstrap`, mode 0755, timestamp 1980-01-01 00:00: the same bytes in
/// give the same zip out.
pub fn deterministic_zip(bootstrap: &[u8]) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(9))
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o755);
        w.start_file("bootstrap", options).map_err(|e| Error::other(format!("zip: {e}")))?;
        w.write_all(bootstrap).map_err(|e| Error::other(format!("zip: {e}")))?;
        w.finish().map_err(|e| Error::other(format!("zip: {e}")))?;
    }
    Ok(out.into_inner())
}

/// The git commit of the working directory's repository (12 hex digits, `+dirty` when files
/// differ from it), for a deploy's record; `None` outside a repository or without git.
pub fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).filter(|c| !c.is_empty())?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{commit}+dirty") } else { commit })
}

/// The repository root: the nearest ancestor of the current directory holding
/// `handler/Cargo.toml`, else the checkout this binary was built from.
pub fn repo_root() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    let found = cwd.ancestors().find(|d| d.join("handler/Cargo.toml").is_file()).map(Path::to_path_buf);
    found.or_else(|| {
        let built = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.to_path_buf();
        built.join("handler/Cargo.toml").is_file().then_some(built)
    })
}

/// Build `handler/` in release mode for `architecture` ("arm64" | "x86_64") with cargo-lambda
/// (which cross-compiles with zig), then zip it.
pub async fn build(architecture: &str) -> Result<Artifact> {
    let root = repo_root().ok_or_else(|| {
        Error::input("cannot find the handler crate (handler/Cargo.toml) above the current directory; run from the repository, or pass --artifact ZIP")
    })?;
    let arch_flag = if architecture == "x86_64" { "--x86-64" } else { "--arm64" };
    let lambda_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("lambda-out")
        .join(architecture);
    let path = toolchain_path(&root)?;
    let mut cmd = tokio::process::Command::new("cargo");
    cmd.current_dir(&root)
        .env("PATH", path)
        .args(["lambda", "build", "--release", arch_flag, "--bin", "bootstrap", "--lambda-dir"])
        .arg(&lambda_dir)
        // cargo-lambda's output is for people: keep stdout clean for our result (JSON).
        .stdout(stderr_stdio())
        .stderr(Stdio::inherit());
    let status = cmd.status().await.map_err(|e| Error::other(format!("cannot run `cargo`: {e}")))?;
    if !status.success() {
        return Err(Error::other(format!(
            "building the handler for {architecture} failed (cargo lambda build {arch_flag}: {status}). \
             The build needs cargo-lambda and zig (PyPI: cargo-lambda, ziglang; scripts/setup.sh installs both into .venv, \
             then put .venv/bin on PATH) and the Rust target {} (rustup target add). If `no such command: lambda` is shown above, \
             cargo-lambda is not on PATH. Or deploy a prebuilt zip with --artifact",
            if architecture == "x86_64" { "x86_64-unknown-linux-gnu" } else { "aarch64-unknown-linux-gnu" }
        )));
    }
    let binary = lambda_dir.join("bootstrap").join("bootstrap");
    let mut bytes = Vec::new();
    std::fs::File::open(&binary)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| Error::other(format!("cargo lambda did not produce {}: {e}", binary.display())))?;
    let zip = deterministic_zip(&bytes)?;
    Ok(Artifact::from_zip(zip, format!("handler/ built for {architecture}")))
}

/// PATH for the build: cargo-lambda (and the `python -m ziglang` it finds zig through) from PATH,
/// else from the repository's `.venv/bin` (what `scripts/setup.sh` installs).
fn toolchain_path(root: &Path) -> Result<std::ffi::OsString> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path).any(|d| d.join("cargo-lambda").is_file());
    if on_path {
        return Ok(path);
    }
    let venv =
        std::env::var_os("MOVIES_STACK_VENV").map(PathBuf::from).unwrap_or_else(|| root.join(".venv")).join("bin");
    if venv.join("cargo-lambda").is_file() {
        let dirs = std::iter::once(venv).chain(std::env::split_paths(&path));
        return std::env::join_paths(dirs).map_err(|e| Error::other(format!("PATH: {e}")));
    }
    Err(Error::input(format!(
        "cannot build the handler: cargo-lambda is not on PATH nor in {}. It needs the PyPI packages \
         cargo-lambda and ziglang (scripts/setup.sh installs both into .venv) and the Rust target \
         aarch64-unknown-linux-gnu (arm64) or x86_64-unknown-linux-gnu; or deploy a prebuilt zip with --artifact",
        venv.display()
    )))
}

fn stderr_stdio() -> Stdio {
    use std::os::fd::AsFd;
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::null(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_binary_gives_the_same_zip_and_sha() {
        let a = Artifact::from_zip(deterministic_zip(b"\x7fELF fake binary").unwrap(), "a".into());
        std::thread::sleep(std::time::Duration::from_millis(1100)); // a different wall clock second
        let b = Artifact::from_zip(deterministic_zip(b"\x7fELF fake binary").unwrap(), "b".into());
        assert_eq!(a.zip, b.zip);
        assert_eq!(a.sha256_b64, b.sha256_b64);
        let c = Artifact::from_zip(deterministic_zip(b"\x7fELF other binary").unwrap(), "c".into());
        assert_ne!(a.sha256_b64, c.sha256_b64);
    }

    #[test]
    fn the_zip_holds_an_executable_bootstrap() {
        let zip = deterministic_zip(b"hello").unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
        assert_eq!(archive.len(), 1);
        let entry = archive.by_name("bootstrap").unwrap();
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
    }

    #[test]
    fn sha_is_base64_of_sha256() {
        // echo -n "" | sha256sum | xxd -r -p | base64
        assert_eq!(
            Artifact::from_zip(Vec::new(), String::new()).sha256_b64,
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn artifact_must_be_a_zip_with_bootstrap() {
        let dir = std::env::temp_dir().join(format!("ms-art-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_zip = dir.join("x.zip");
        std::fs::write(&not_zip, b"nope").unwrap();
        assert!(read_artifact(&not_zip).unwrap_err().to_string().contains("not a zip"));
        let good = dir.join("good.zip");
        std::fs::write(&good, deterministic_zip(b"bin").unwrap()).unwrap();
        read_artifact(&good).unwrap();
    }
}
