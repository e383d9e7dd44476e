//! The store's progress, drawn on a terminal: a bar for `image load`, a line when a command
//! waits for the store lock.

use crate::store::progress::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

/// Draws bars on stderr when it is a terminal (no bars in pipes and logs).
#[derive(Default)]
pub struct Terminal {
    bar: Mutex<Option<ProgressBar>>,
}

impl Terminal {
    fn with_bar(&self, f: impl FnOnce(&mut Option<ProgressBar>)) {
        // A bar is decoration: one a panicked thread left locked is drawn no more.
        if let Ok(mut g) = self.bar.lock() {
            f(&mut g);
        }
    }
}

impl Progress for Terminal {
    fn start(&self, what: &str, total: Option<u64>) {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let b = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::no_length(),
        };
        if let Ok(st) =
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
        {
            b.set_style(st.progress_chars("=> "));
        }
        b.set_message(what.to_string());
        self.with_bar(|g| *g = Some(b));
    }

    fn advance(&self, n: u64) {
        self.with_bar(|g| {
            if let Some(b) = g {
                b.inc(n);
            }
        });
    }

    fn finish(&self) {
        self.with_bar(|g| {
            if let Some(b) = g.take() {
                b.finish_and_clear();
            }
        });
    }

    fn waiting(&self, what: &str) {
        eprintln!("layerfs: waiting for {what}");
    }
}
