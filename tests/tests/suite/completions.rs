//! Issue 10, `movies-stack completions SHELL` and `movies-stack man`: generated from the CLI's
//! own definitions, with no config file and no AWS call (run from an empty folder).

use e2e::{Checks, Deployer, TempDir};

const COMMANDS: [&str; 20] = [
    "up",
    "plan",
    "status",
    "keys",
    "down",
    "package",
    "unlock",
    "smoke",
    "usage",
    "logs",
    "serve",
    "graph",
    "export",
    "iam-policy",
    "completions",
    "man",
    "history",
    "rollback",
    "traces",
    "top",
];

#[tokio::test]
async fn completion_scripts_and_man_pages_need_no_config() {
    let empty = TempDir::new("compl");
    let mut deployer = Deployer::new();
    deployer.cwd = empty.path().to_path_buf();
    let mut c = Checks::new();

    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = deployer.run(&["completions", shell]).await;
        c.eq(&format!("{shell}: exit code"), run.code, 0);
        c.check(run.stderr.is_empty(), format!("{shell}: nothing on stderr:\n{}", run.stderr));
        let missing: Vec<&str> = COMMANDS.iter().copied().filter(|cmd| !run.stdout.contains(cmd)).collect();
        c.check(missing.is_empty(), format!("{shell}: completes every command (missing {missing:?})"));
        c.check(
            // fish spells long flags `-l since`.
            run.stdout.contains("since") && run.stdout.contains("keep-item"),
            format!("{shell}: and their flags"),
        );
    }
    let run = deployer.run(&["completions", "tcsh"]).await;
    c.eq("unknown shell: exit code", run.code, 3);

    let run = deployer.run(&["man"]).await;
    c.eq("man: exit code", run.code, 0);
    c.check(run.stdout.contains(".TH movies-stack 1"), "man: a roff page for section 1");
    c.check(
        COMMANDS.iter().all(|cmd| run.stdout.contains(&format!("movies\\-stack\\-{}", cmd.replace('-', "\\-")))),
        format!("man: lists every command:\n{}", run.stdout),
    );
    let out = empty.path().join("man1");
    let run = deployer.run(&["man", "--out-dir", out.to_str().unwrap()]).await;
    c.eq("man --out-dir: exit code", run.code, 0);
    for page in ["movies-stack.1", "movies-stack-smoke.1", "movies-stack-usage.1", "movies-stack-logs.1"] {
        let text = std::fs::read_to_string(out.join(page)).unwrap_or_default();
        c.check(text.contains(".TH"), format!("man --out-dir: {page} written"));
    }
    c.check(!empty.path().join("config").exists(), "no config folder was needed or made");
    c.finish("completions and man");
}

/// `movies-stack graph | head`: the reader goes away before the graph is written (`graph`
/// reads the config and calls nothing). The command ends quietly with exit 0 (as a C tool ends
/// on SIGPIPE), not with `println!`'s panic and its backtrace on stderr.
#[test]
fn a_reader_that_goes_away_is_not_a_crash() {
    let mut child = std::process::Command::new(e2e::deployer_bin())
        .current_dir(e2e::repo_root())
        .args(["--env", "local", "graph"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn movies-stack graph");
    drop(child.stdout.take()); // the read end closes before the child writes
    let out = child.wait_with_output().expect("wait for movies-stack graph");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "exit code; stderr:\n{stderr}");
    assert!(stderr.is_empty(), "nothing on stderr (no panic):\n{stderr}");
}
