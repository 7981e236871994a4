//! Progress on a terminal, silence elsewhere: a byte-count bar over the input files when
//! stderr is a TTY (and `--no-progress` was not given); cron and CI logs get the
//! structured log lines only.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar that may be hidden; cheap to clone and share across threads.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar that draws only when `enabled` and stderr is a terminal.
    pub fn new(enabled: bool) -> Progress {
        let bar = if enabled && std::io::stderr().is_terminal() {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b
        } else {
            ProgressBar::hidden()
        };
        Progress { bar }
    }

    pub fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
        }
    }

    /// Starts a phase over `total` bytes.
    pub fn start(&self, what: &str, total: u64) {
        self.bar.set_message(what.to_string());
        self.bar.set_length(total);
        self.bar.set_position(0);
    }

    pub fn inc(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
