//! movies-stack: deploy, inspect and tear down the serverless movies API on AWS, directly
//! through the AWS SDK for Rust.

mod aws;
mod cfn;
mod cli;
mod clock;
mod commands;
mod config;
mod ctx;
mod dashboard;
mod error;
mod events;
mod grant;
mod graph;
mod iam_policy;
mod ids;
#[cfg(test)]
mod layers;
mod local;
mod lock;
mod pacer;
mod package;
mod resources;
mod serve;
mod session;
mod smoke_check;
mod stack;
mod ui;
mod wait;
mod watch;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};
use crate::error::{Error, exit};

fn main() {
    let parsed = Cli::command().try_get_matches().and_then(|m| {
        let mut cli = Cli::from_arg_matches(&m)?;
        cli.global.sources = cli::Sources::from_matches(&m);
        Ok(cli)
    });
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as K;
            let code = match e.kind() {
                K::DisplayHelp | K::DisplayVersion => exit::OK,
                // `movies-stack` alone: the help, but as a usage error.
                _ => exit::INPUT,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let output = cli.global.output;
    init_logging(cli.global.verbose, output);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            ui::print_error(output, &e.to_string(), e.exit_code());
            e.exit_code()
        }
    };
    // Don't wait for background tasks (the signal listener).
    runtime.shutdown_background();
    std::process::exit(code);
}

async fn run(cli: Cli) -> Result<i32, Error> {
    let global = &cli.global;
    // No config and no AWS: these only describe the CLI itself.
    match &cli.command {
        Command::Completions(args) => return commands::help::completions(args),
        Command::Man(args) => return commands::help::man(args),
        _ => {}
    }
    let config = commands::load_config(global)?;
    let settings = commands::aws_settings(global, &config)?;
    let printer = ui::printer(global.output, global.verbose, global.quiet);
    match &cli.command {
        Command::Up(args) => commands::up::run(&config, &settings, args, global.output, global.verbose, printer).await,
        Command::Plan(args) => commands::plan::run(&config, &settings, args, global.output, printer).await,
        Command::Status => commands::status::run(&config, &settings, global.output, printer).await,
        Command::Keys(args) => commands::keys::run(&config, &settings, args, global.output, printer).await,
        Command::Down(args) => commands::down::run(&config, &settings, args, global.output, printer).await,
        Command::Package(args) => commands::package::run(&config, args, global.output).await,
        Command::Unlock(args) => commands::unlock::run(&config, &settings, args, printer).await,
        Command::Graph(args) => commands::graph::run(&config, args, global.output, printer),
        Command::Export(args) => commands::export::run(&config, &settings, args, global.output, printer).await,
        Command::IamPolicy(args) => commands::iam_policy::run(&config, &settings, args, printer).await,
        Command::Bootstrap(args) => commands::bootstrap::run(&config, &settings, args, printer).await,
        Command::Smoke(args) => commands::smoke::run(&config, &settings, args, global.output, printer).await,
        Command::Usage(args) => commands::usage::run(&config, &settings, args, global.output, printer).await,
        Command::History => commands::history::run(&config, &settings, global.output, printer).await,
        Command::Rollback(args) => commands::rollback::run(&config, &settings, args, global.output, printer).await,
        Command::Logs(args) => commands::logs::run(&config, &settings, args, global.output, printer).await,
        Command::Traces(args) => commands::traces::run(&config, &settings, args, global.output, printer).await,
        Command::Top(args) => commands::top::run(&config, &settings, args, global.output, printer).await,
        Command::Serve(args) => {
            serve::run(&config, &settings, args, ui::plain_printer(global.output, global.verbose, global.quiet)).await
        }
        Command::Completions(_) | Command::Man(_) => unreachable!("answered before the config is read"),
    }
}

/// Logs go to stderr (one JSON object per line with `--output json`, like the progress). `-v`:
/// our debug lines; `-vv`: also the SDK at info. Never the SDK's debug/trace levels: they can
/// contain request and response bodies (API key values).
fn init_logging(verbose: u8, output: ui::Output) {
    let filter = match verbose {
        // aws-config warns (with its whole error chain) each time a region or credential source
        // it tries is absent, e.g. IMDS off an EC2 instance: our own message says what to do.
        0 => "warn,aws_config=error",
        1 => "warn,movies_stack=debug",
        _ => "info,movies_stack=trace,aws_smithy_runtime=info,aws_smithy_http_client=info,hyper=info",
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match output {
        ui::Output::Json => logs.json().try_init(),
        ui::Output::Human => logs.try_init(),
    };
}
