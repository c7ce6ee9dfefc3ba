//! `movies-stack package --out PATH`: build the handler and write the deterministic zip.

use crate::cli::{Output, PackageArgs};
use crate::config::Config;
use crate::error::{Error, Result};

pub async fn run(config: &Config, args: &PackageArgs, output: Output) -> Result<i32> {
    let artifact = crate::package::build(&config.function.architecture).await?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::other(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(&args.out, &artifact.zip).map_err(|e| Error::other(format!("{}: {e}", args.out.display())))?;
    match output {
        Output::Json => crate::ui::write_stdout(
            &serde_json::json!({"path": args.out, "architecture": config.function.architecture, "bytes": artifact.zip.len(), "code_sha256": artifact.sha256_b64})
            .to_string(),
        ),
        Output::Human => crate::ui::write_stdout(&format!(
            "{} ({}, {} bytes, CodeSha256 {})",
            args.out.display(),
            config.function.architecture,
            artifact.zip.len(),
            artifact.sha256_b64
        )),
    }
    Ok(crate::error::exit::OK)
}
