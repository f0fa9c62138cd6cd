//! The `prizewheel` binary: parse the command line, run, report.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: the request path allocates and frees small
/// buffers on every spin, and glibc spent ~15 % of the service's CPU on them
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = prizewheel::cli::Cli::parse();
    match prizewheel::cli::run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            // One readable line; the cause chain is joined with ": ".
            eprintln!("prizewheel: error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
