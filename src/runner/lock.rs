//! One run per job and output at a time: `<output>/_state/lock`, created exclusively.
//!
//! A second run fails fast with the holder's run id and pid. A lock whose holder is dead
//! (same host, pid gone) or older than [`LOCK_TTL_SECS`] is taken over, so a run killed
//! with `kill -9` never blocks cron forever.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::state::STATE_DIR;

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
         if it is dead, remove `{}`",
        path.display()
    )]
    Held {
        run_id: String,
        pid: u32,
        host: String,
        started: String,
        path: PathBuf,
    },
    #[error("cannot take the run lock `{}`: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// The held lock; released on drop.
pub struct Lock {
    path: PathBuf,
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

impl Lock {
    pub fn acquire(output: &Path, run_id: &str) -> Result<Lock, LockError> {
        let dir = output.join(STATE_DIR);
        let path = dir.join("lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let me = Holder {
            run_id: run_id.to_string(),
            pid: std::process::id(),
            host: host(),
            started_at: chrono::Utc::now().timestamp(),
        };
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(&serde_json::to_vec(&me).expect("holder serialises"))
                        .map_err(io)?;
                    f.sync_all().map_err(io)?;
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder: Option<Holder> =
                        std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
                    let stale = match &holder {
                        // Unreadable: a holder died mid-write.
                        None => true,
                        Some(h) => (h.host == me.host && !alive(h.pid)) || me.started_at - h.started_at > LOCK_TTL_SECS,
                    };
                    if stale {
                        tracing::warn!(lock = %path.display(), "taking over a stale run lock");
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    let h = holder.expect("checked above");
                    return Err(LockError::Held {
                        run_id: h.run_id,
                        pid: h.pid,
                        host: h.host,
                        started: chrono::DateTime::from_timestamp(h.started_at, 0)
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_default(),
                        path: path.clone(),
                    });
                }
                Err(e) => return Err(io(e)),
            }
        }
        Err(io(std::io::Error::other("lock kept reappearing")))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
