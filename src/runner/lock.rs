//! One run per job and output at a time: `<output>/_state/lock`, created exclusively
//! (`create_new` locally; on S3 a conditional PUT with `If-None-Match: *`, which S3 and
//! compatible servers refuse when the object exists).
//!
//! A second run fails fast with the holder's run id and pid. A lock whose holder is dead
//! (same host, pid gone) or older than [`LOCK_TTL_SECS`] is taken over, so a run killed
//! with `kill -9` never blocks cron forever. On S3 the pid check applies only when the
//! holder ran on this host; a holder elsewhere is trusted until the TTL.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::state::STATE_DIR;
use crate::storage::{Root, StorageError};

/// The lock file below the output root.
const LOCK_KEY: &str = "_state/lock";

/// A lock older than this is presumed abandoned even if its holder cannot be checked.
pub const LOCK_TTL_SECS: i64 = 6 * 3600;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    run_id: String,
    pid: u32,
    host: String,
    started_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another run of this job is in progress (run {run_id}, pid {pid} on {host}, started {started}); \
         if it is dead, remove `{path}`"
    )]
    Held {
        run_id: String,
        pid: u32,
        host: String,
        started: String,
        path: String,
    },
    #[error("cannot take the run lock `{}`: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot take the run lock: {0}")]
    Storage(#[from] StorageError),
}

/// The held lock; released on drop.
pub struct Lock {
    root: Root,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

fn alive(pid: u32) -> bool {
    // Linux: /proc/<pid> exists while the process does. Elsewhere assume alive and
    // rely on the TTL.
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

impl Holder {
    fn me(run_id: &str) -> Holder {
        Holder {
            run_id: run_id.to_string(),
            pid: std::process::id(),
            host: host(),
            started_at: chrono::Utc::now().timestamp(),
        }
    }

    /// Whether `self` (the current holder) may be taken over by `me`.
    fn is_stale(&self, me: &Holder) -> bool {
        (self.host == me.host && !alive(self.pid)) || me.started_at - self.started_at > LOCK_TTL_SECS
    }

    fn held(self, path: String) -> LockError {
        LockError::Held {
            run_id: self.run_id,
            pid: self.pid,
            host: self.host,
            started: chrono::DateTime::from_timestamp(self.started_at, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            path,
        }
    }
}

impl Lock {
    pub fn acquire(root: &Root, run_id: &str) -> Result<Lock, LockError> {
        match root {
            Root::Local(output) => Lock::acquire_local(output, run_id).map(|()| Lock { root: root.clone() }),
            Root::S3(_) => Lock::acquire_s3(root, run_id).map(|()| Lock { root: root.clone() }),
        }
    }

    fn acquire_s3(root: &Root, run_id: &str) -> Result<(), LockError> {
        let me = Holder::me(run_id);
        let body = serde_json::to_vec(&me).expect("holder serialises");
        for _ in 0..2 {
            if root.create_new(LOCK_KEY, &body)? {
                return Ok(());
            }
            let holder: Option<Holder> = root.read(LOCK_KEY)?.and_then(|b| serde_json::from_slice(&b).ok());
            // Unreadable or gone: a holder died mid-write, or released it meanwhile.
            match holder {
                Some(h) if !h.is_stale(&me) => return Err(h.held(root.display(LOCK_KEY))),
                _ => {
                    // Not a warning: the run's first stderr line is its error, if it fails.
                    tracing::info!(lock = %root.display(LOCK_KEY), "taking over a stale run lock");
                    root.delete(LOCK_KEY)?;
                }
            }
        }
        Err(StorageError::Message(format!("the run lock `{}` kept reappearing", root.display(LOCK_KEY))).into())
    }

    fn acquire_local(output: &Path, run_id: &str) -> Result<(), LockError> {
        let dir = output.join(STATE_DIR);
        let path = dir.join("lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let me = Holder::me(run_id);
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(&serde_json::to_vec(&me).expect("holder serialises"))
                        .map_err(io)?;
                    f.sync_all().map_err(io)?;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder: Option<Holder> =
                        std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
                    let stale = match &holder {
                        // Unreadable: a holder died mid-write.
                        None => true,
                        Some(h) => h.is_stale(&me),
                    };
                    if stale {
                        tracing::info!(lock = %path.display(), "taking over a stale run lock");
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    let h = holder.expect("checked above");
                    return Err(h.held(path.display().to_string()));
                }
                Err(e) => return Err(io(e)),
            }
        }
        Err(io(std::io::Error::other("lock kept reappearing")))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Err(e) = self.root.delete(LOCK_KEY) {
            tracing::warn!(lock = %self.root.display(LOCK_KEY), error = %e, "cannot release the run lock");
        }
    }
}
