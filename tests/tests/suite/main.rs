//! The end-to-end suite, one test binary (the AWS SDK is linked once, and the tests of every
//! area run side by side on the harness's threads): the real `movies-stack` binary against moto
//! started as a real server, each test with its own proxy and strict AWS model
//! (`e2e::strict`). One module per area; `cargo test --workspace --test suite <area>::` runs one.

mod alarms;
mod cloudformation;
mod cloudtrail;
mod completions;
mod crash;
mod deploys;
mod down;
mod down_eni;
mod export;
mod faults;
mod fixtures;
mod fresh_account;
mod handler;
mod idempotence;
mod input_errors;
mod keys;
mod lifecycle;
mod lock;
mod logs;
mod output;
mod security;
mod serve;
mod serve_hostile;
mod serve_traces;
mod serve_watch;
mod smoke;
mod strict_model;
mod top;
mod traces;
mod up;
mod usage;
mod waf;
