//! The handler zip the suite deploys, and variants of it.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

/// `$MOVIES_STACK_ARTIFACT`: the real handler zip, built once by `scripts/test.sh` with
/// `movies-stack package --out ...`. Panics (never skips) when unset or missing.
pub fn artifact_path() -> PathBuf {
    let p = std::env::var_os("MOVIES_STACK_ARTIFACT").filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!(
            "MOVIES_STACK_ARTIFACT is not set. Run the suite with scripts/test.sh, or build the handler zip with \
             `target/debug/movies-stack --env local package --out <zip>` and export MOVIES_STACK_ARTIFACT=<zip>"
        )
    });
    let p = PathBuf::from(p);
    assert!(p.is_file(), "MOVIES_STACK_ARTIFACT={} does not exist", p.display());
    p
}

/// Lambda's `CodeSha256`: base64(sha256(zip bytes)).
pub fn code_sha256(zip: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(zip))
}

/// A zip holding one executable `bootstrap` entry with `contents`, fixed timestamp.
pub fn zip_with_bootstrap(contents: &[u8]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o755);
    w.start_file("bootstrap", opts).expect("zip start_file");
    w.write_all(contents).expect("zip write");
    w.finish().expect("zip finish").into_inner()
}

/// The `bootstrap` entry of a zip.
pub fn read_bootstrap(zip_path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(zip_path).unwrap_or_else(|e| panic!("read {}: {e}", zip_path.display()));
    let mut archive =
        ZipArchive::new(Cursor::new(bytes)).unwrap_or_else(|e| panic!("{} is not a zip: {e}", zip_path.display()));
    let mut entry =
        archive.by_name("bootstrap").unwrap_or_else(|e| panic!("{} has no `bootstrap` entry: {e}", zip_path.display()));
    let mut out = Vec::new();
    entry.read_to_end(&mut out).expect("read bootstrap entry");
    out
}

/// Write a copy of `original` whose `bootstrap` differs (a marker appended), to `out`.
/// Returns the new zip's bytes.
pub fn write_modified(original: &Path, out: &Path, marker: &str) -> Vec<u8> {
    let mut bootstrap = read_bootstrap(original);
    bootstrap.extend_from_slice(format!("\n# e2e modification: {marker}\n").as_bytes());
    let bytes = zip_with_bootstrap(&bootstrap);
    std::fs::write(out, &bytes).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    bytes
}

/// A small, valid but fake handler zip (a shell script), for runs that must not deploy anything.
pub fn write_fake(out: &Path) -> PathBuf {
    let bytes = zip_with_bootstrap(b"#!/bin/sh\necho 'not a real handler'\nexit 1\n");
    std::fs::write(out, bytes).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    out.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zips_are_deterministic_and_modifiable() {
        let a = zip_with_bootstrap(b"hello");
        assert_eq!(a, zip_with_bootstrap(b"hello"));
        assert_eq!(code_sha256(&a), code_sha256(&zip_with_bootstrap(b"hello")));
        let dir = crate::TempDir::new("zip");
        let orig = dir.path().join("a.zip");
        std::fs::write(&orig, &a).unwrap();
        let modified = write_modified(&orig, &dir.path().join("b.zip"), "x");
        assert_ne!(code_sha256(&a), code_sha256(&modified));
        assert!(read_bootstrap(&dir.path().join("b.zip")).starts_with(b"hello"));
        // sha256("") in base64, as Lambda would print it for an empty file.
        assert_eq!(code_sha256(b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }
}
