//! One supervised child process: spawned in its own process group, stdin fed from a bounded queue,
//! stdout read as bounded lines, stderr drained, exit observed, ended as a group.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use super::lines::{read_bounded_line, LineRead};
use super::stderr::{drain, StderrTail};
use crate::identity::Secret;

/// Messages queued for a child's stdin before senders wait.
const STDIN_QUEUE: usize = 1024;

/// How to start a child.
#[derive(Clone)]
pub struct ChildSpec {
    /// Program and arguments (or a single shell line when `shell` is set).
    pub argv: Vec<String>,
    pub shell: bool,
    /// The child's whole environment besides its credential: it inherits nothing,
    /// so the gateway's secrets and anything else in its environment stay out of the child.
    pub env: Vec<(OsString, OsString)>,
    /// The caller's token and the variable it goes in (never argv).
    pub credential: Option<(String, Secret)>,
    /// User and group the child runs as (CHILD_UID/CHILD_GID; the gateway is then root).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub max_line_bytes: usize,
    pub stderr_lines_per_sec: u32,
    pub kill_grace: Duration,
    /// A short tag for logs (a session id prefix, or `shared`).
    pub label: String,
}

/// Names only: values of passed-through variables may be secrets the operator chose to hand on,
/// and the credential shows as its fingerprint.
impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.env.iter().map(|(name, _)| name).collect();
        f.debug_struct("ChildSpec")
            .field("argv", &self.argv)
            .field("shell", &self.shell)
            .field("env_names", &names)
            .field("credential", &self.credential)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("max_line_bytes", &self.max_line_bytes)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("could not start the MCP server process: {0}")]
    Io(#[from] std::io::Error),
    #[error("the MCP server command is empty")]
    EmptyCommand,
}

/// Why and how a child ended.
#[derive(Clone, Debug)]
pub struct ExitReport {
    /// `exited with status N`, `killed by signal N`, or `stdout line too long`.
    pub reason: String,
    pub code: Option<i32>,
    pub last_stderr: Vec<String>,
}

/// A handle on a running child. Dropping it does not kill the child; call [`Child::terminate`].
pub struct Child {
    pid: u32,
    label: String,
    stdin: mpsc::Sender<Bytes>,
    exit: watch::Receiver<Option<ExitReport>>,
    kill_grace: Duration,
}

/// Starts the child and returns its handle and its stdout, read line by line by the caller.
/// The lines end when stdout ends or a line is too long (the child is then killed).
pub fn spawn(spec: ChildSpec) -> Result<(Child, Lines), SpawnError> {
    let mut command = if spec.shell {
        let line = spec.argv.join(" ");
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(line);
        command
    } else {
        let (program, args) = spec.argv.split_first().ok_or(SpawnError::EmptyCommand)?;
        let mut command = Command::new(program);
        command.args(args);
        command
    };
    command
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some((name, secret)) = &spec.credential {
        command.env(name, secret.expose());
    }
    // Group first: once the uid is dropped the group can no longer be changed. With a uid set,
    // std also drops root's supplementary groups before exec.
    if let Some(gid) = spec.gid {
        command.gid(gid);
    }
    if let Some(uid) = spec.uid {
        command.uid(uid);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGKILL the child if we die,
    // so no child outlives the gateway even when the gateway itself is killed.
    unsafe {
        command.pre_exec(|| {
            #[cfg(target_os = "linux")]
            {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut process = command.spawn()?;
    let pid = process.id().unwrap_or(0);
    let stdin = process.stdin.take().expect("stdin is piped");
    let stdout = process.stdout.take().expect("stdout is piped");
    let stderr = process.stderr.take().expect("stderr is piped");

    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(STDIN_QUEUE);
    tokio::spawn(write_stdin(stdin, stdin_rx));

    let (exit_tx, exit_rx) = watch::channel(None);
    let too_long = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lines = Lines {
        reader: BufReader::with_capacity(64 * 1024, stdout),
        buf: Vec::with_capacity(4096),
        max: spec.max_line_bytes,
        pid,
        label: spec.label.clone(),
        too_long: too_long.clone(),
        ended: false,
    };

    let tail = StderrTail::default();
    let stderr_task = tokio::spawn(drain(
        stderr,
        spec.label.clone(),
        pid,
        spec.stderr_lines_per_sec,
        spec.credential.as_ref().map(|(_, secret)| secret.clone()),
        tail.clone(),
    ));

    let label = spec.label.clone();
    tokio::spawn(async move {
        let status = process.wait().await;
        // Give stderr a moment to reach EOF so the report holds the child's last words.
        let _ = tokio::time::timeout(Duration::from_millis(200), stderr_task).await;
        let (reason, code) = match status {
            Ok(status) => describe(status),
            Err(e) => (format!("wait failed: {e}"), None),
        };
        let reason = if too_long.load(std::sync::atomic::Ordering::Relaxed) {
            format!("stdout line too long; {reason}")
        } else {
            reason
        };
        let report = ExitReport {
            reason,
            code,
            last_stderr: tail.lines(),
        };
        tracing::info!(session = %label, pid, reason = %report.reason, last_stderr = ?report.last_stderr, "child exited");
        // Reap any stragglers the child left in its group.
        signal_group(pid, libc::SIGKILL);
        let _ = exit_tx.send(Some(report));
    });

    tracing::debug!(session = %spec.label, pid, "child started");
    Ok((
        Child {
            pid,
            label: spec.label,
            stdin: stdin_tx,
            exit: exit_rx,
            kill_grace: spec.kill_grace,
        },
        lines,
    ))
}

#[cfg(unix)]
fn describe(status: std::process::ExitStatus) -> (String, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => (format!("exited with status {code}"), Some(code)),
        (None, Some(signal)) => (format!("killed by signal {signal}"), None),
        _ => ("ended".to_string(), None),
    }
}

fn signal_group(pid: u32, signal: i32) {
    if pid == 0 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals the process group we created for this child.
    unsafe {
        libc::kill(-(pid as i32), signal);
    }
}

async fn write_stdin(stdin: tokio::process::ChildStdin, mut rx: mpsc::Receiver<Bytes>) {
    let mut writer = BufWriter::new(stdin);
    while let Some(line) = rx.recv().await {
        if writer.write_all(&line).await.is_err() || writer.write_all(b"\n").await.is_err() {
            return;
        }
        // Batch whatever is already queued into one flush.
        while let Ok(line) = rx.try_recv() {
            if writer.write_all(&line).await.is_err() || writer.write_all(b"\n").await.is_err() {
                return;
            }
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
}

/// A child's stdout as bounded lines, read in the task that routes them (no queue, no copy).
pub struct Lines {
    reader: BufReader<tokio::process::ChildStdout>,
    buf: Vec<u8>,
    max: usize,
    pid: u32,
    label: String,
    too_long: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ended: bool,
}

impl Lines {
    /// The next non-blank line (without its newline); `None` once stdout ended, a read failed,
    /// or a line was longer than the bound (the child's group is then killed).
    pub async fn next(&mut self) -> Option<&[u8]> {
        if self.ended {
            return None;
        }
        loop {
            match read_bounded_line(&mut self.reader, &mut self.buf, self.max).await {
                Ok(LineRead::Line) => {
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(&self.buf);
                }
                Ok(LineRead::Eof) => {}
                Ok(LineRead::TooLong) => {
                    tracing::error!(session = %self.label, pid = self.pid, max = self.max, "child wrote a stdout line longer than MAX_LINE_BYTES; ending it");
                    self.too_long
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    signal_group(self.pid, libc::SIGKILL);
                }
                Err(e) => {
                    tracing::warn!(session = %self.label, pid = self.pid, error = %e, "reading child stdout failed");
                }
            }
            self.ended = true;
            return None;
        }
    }
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Queues one message (without newline) for the child's stdin; fails when the child is gone.
    pub async fn send(&self, line: Bytes) -> Result<(), ChildGone> {
        self.stdin.send(line).await.map_err(|_| ChildGone)
    }

    /// Queues a message without waiting; dropped (with a log line) when the queue is full.
    pub fn try_send(&self, line: Bytes) {
        if self.stdin.try_send(line).is_err() {
            tracing::warn!(session = %self.label, pid = self.pid, "child stdin queue full or closed; message dropped");
        }
    }

    pub fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Resolves when the child has exited, with its report.
    pub async fn exited(&self) -> ExitReport {
        let mut exit = self.exit.clone();
        loop {
            if let Some(report) = exit.borrow().clone() {
                return report;
            }
            if exit.changed().await.is_err() {
                return ExitReport {
                    reason: "supervisor gone".into(),
                    code: None,
                    last_stderr: Vec::new(),
                };
            }
        }
    }

    /// Ends the child's whole process group: SIGTERM, then SIGKILL after the grace period.
    pub async fn terminate(&self) {
        if self.has_exited() {
            return;
        }
        tracing::debug!(session = %self.label, pid = self.pid, "ending child");
        signal_group(self.pid, libc::SIGTERM);
        if tokio::time::timeout(self.kill_grace, self.exited())
            .await
            .is_err()
        {
            signal_group(self.pid, libc::SIGKILL);
            self.exited().await;
        }
    }
}

/// The child's stdin is closed: it exited or is exiting.
#[derive(Debug, thiserror::Error)]
#[error("the MCP server process is gone")]
pub struct ChildGone;
