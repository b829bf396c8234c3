//! `mcp-harness`: certify an MCP Streamable HTTP deployment.
//!
//! Exit codes: 0 every required check passed, 1 failures, 2 usage or configuration errors.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = <cli::Cli as clap::Parser>::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mcp-harness: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::execute(args)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("mcp-harness: {err:#}");
            ExitCode::from(2)
        }
    }
}
