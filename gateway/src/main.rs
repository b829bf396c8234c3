//! The `coda-mcp-gateway` binary: parse settings, set up logs, bind, serve until a signal.
//!
//! Exit codes: 0 after a clean shutdown, 2 for invalid settings, 1 for any other failure.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use gateway::config::{Config, Flags};
use tracing_subscriber::EnvFilter;

/// mimalloc: per-thread free lists suit the gateway's many short-lived buffers; it measured
/// 9-12 % less gateway CPU per call at C=8 and C=64 than the system allocator (BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    harden_process();
    let mut flags = Flags::parse();
    let secrets = flags.read_secret_files();
    forget_secret_env();
    init_logs(&flags);
    let config = match secrets.and_then(|()| flags.validate()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("coda-mcp-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    // The secrets now live in `config` only.
    drop(flags);
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("coda-mcp-gateway: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coda-mcp-gateway: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Other processes of our uid (children included) may not ptrace us or read our memory, and no
/// core dump holds the secrets. It also makes /proc/<pid>/ root-owned.
fn harden_process() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_DUMPABLE) only changes a flag of this process.
    unsafe {
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            eprintln!(
                "coda-mcp-gateway: warning: PR_SET_DUMPABLE failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// The secrets now live in the settings only: removed from our environment while this is still
/// the only thread, before the runtime. Unsetting alone is not enough: /proc/<pid>/environ
/// shows the environment block the kernel laid out at exec, which `unsetenv` never touches, so
/// the original `NAME=value` strings are overwritten with zeros as well.
fn forget_secret_env() {
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    let mut originals: Vec<*mut libc::c_char> = Vec::new();
    // SAFETY: single-threaded (no runtime, no logger threads yet); `environ` is the
    // NULL-terminated array of NUL-terminated strings that libc maintains.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let text = std::ffi::CStr::from_ptr(*entry).to_bytes();
            if gateway::config::GATEWAY_SECRETS.iter().any(|name| {
                text.len() > name.len()
                    && text.starts_with(name.as_bytes())
                    && text[name.len()] == b'='
            }) {
                originals.push(*entry);
            }
            entry = entry.add(1);
        }
    }
    for name in gateway::config::GATEWAY_SECRETS {
        std::env::remove_var(name);
    }
    for string in originals {
        // SAFETY: each pointer is a NUL-terminated string no longer referenced by `environ`
        // (removed above); it lies in the writable exec-time block or in memory libc gave us.
        unsafe {
            let len = libc::strlen(string);
            for i in 0..len {
                std::ptr::write_volatile(string.add(i), 0);
            }
        }
    }
}

/// The async runtime. On machines with two cores or fewer, one worker thread unless
/// TOKIO_WORKER_THREADS says otherwise: waking a second worker for every call cost more CPU
/// than it gained in throughput (BENCHMARKS.md).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() && cores <= 2 {
        builder.worker_threads(1);
    }
    builder.build()
}

async fn run(config: Config) -> anyhow::Result<()> {
    let addr = config.http.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let scope = config.children.scope;
    let hooks = gateway::Hooks::default().on_ready(move || {
        // The first stdout line names the endpoint once it is ready, so scripts and tests can
        // start us on port 0 and wait for this line instead of sleeping.
        println!("coda-mcp-gateway listening on http://{local}/mcp");
        tracing::info!(%local, ?scope, "listening");
    });
    gateway::serve(listener, config, hooks, shutdown_signal()).await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    // Both listeners exist from the start, so a second signal arriving right after the first is
    // never lost between the two waits.
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    // A second signal means "now": exit without draining.
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("coda-mcp-gateway: second signal, exiting at once");
        std::process::exit(130);
    });
}

fn init_logs(flags: &Flags) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if flags.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
