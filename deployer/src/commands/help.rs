//! `movies-stack completions SHELL` and `movies-stack man`: generated from the clap definitions,
//! so they never drift from `--help`.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::error::{Error, Result, exit};

/// The completion script for one shell, on stdout.
pub fn completions(args: &CompletionsArgs) -> Result<i32> {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name, &mut out);
    crate::ui::write_stdout_bytes(&out);
    Ok(exit::OK)
}

/// The main page on stdout, or with `--out-dir` the main page and one per subcommand
/// (`movies-stack-up.1`, ...), as `man` finds them in a `man1` folder.
pub fn man(args: &ManArgs) -> Result<i32> {
    let cmd = Cli::command();
    match &args.out_dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| Error::other(format!("rendering the man page: {e}")))?;
            crate::ui::write_stdout_bytes(&out);
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::input(format!("--out-dir {}: cannot create it: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, dir)
                .map_err(|e| Error::other(format!("writing man pages into {}: {e}", dir.display())))?;
            eprintln!("man pages written to {}", dir.display());
        }
    }
    Ok(exit::OK)
}
