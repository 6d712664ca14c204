//! `uturn-load`: the TURN load generator (see `uturn_bench::load`).
//!
//! stdout carries exactly `@window-start`, `@window-end` and the JSON
//! summary; logs and the progress bar go to stderr.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use uturn_bench::load::{self, config::Args, config::Config};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let json_path = args.json.clone();
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("uturn-load: {e}");
            return ExitCode::from(2);
        }
    };
    let summary = match load::run(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("uturn-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = match serde_json::to_string_pretty(&summary) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("uturn-load: cannot encode the summary: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{text}");
    if let Some(path) = json_path {
        if let Err(e) = std::fs::write(&path, format!("{text}\n")) {
            eprintln!("uturn-load: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
