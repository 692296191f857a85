//! Progress bars for the long commands (`verify`, `import`, `export`, `backup`, `checkpoint`).
//!
//! A bar appears on stderr only when stderr is a terminal and the work has already taken
//! [`SHOW_AFTER`]: short commands, pipelines and scripts stay silent. Invariant: nothing in this
//! module writes anywhere unless both conditions hold.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How long work must already have taken before a bar is worth showing.
pub(crate) const SHOW_AFTER: Duration = Duration::from_millis(500);

/// A progress bar that may never appear. Dropping it clears it.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    show_after: Duration,
    len: Option<u64>,
    pos: u64,
    what: &'static str,
    terminal: bool,
}

impl Progress {
    /// A bar for `len` units of work (`None`: a spinner with a count) described by `what`.
    pub(crate) fn new(len: Option<u64>, what: &'static str) -> Self {
        Progress::with(len, what, std::io::stderr().is_terminal(), SHOW_AFTER)
    }

    fn with(len: Option<u64>, what: &'static str, terminal: bool, show_after: Duration) -> Self {
        Progress {
            bar: None,
            started: Instant::now(),
            show_after,
            len,
            pos: 0,
            what,
            terminal,
        }
    }

    /// Records `pos` units done; shows the bar if it is now due.
    pub(crate) fn set(&mut self, pos: u64) {
        self.pos = pos;
        match &self.bar {
            Some(bar) => bar.set_position(pos),
            None if self.terminal && self.started.elapsed() >= self.show_after => {
                self.bar = Some(self.make_bar());
            }
            None => {}
        }
    }

    /// Records `n` more units done.
    pub(crate) fn inc(&mut self, n: u64) {
        self.set(self.pos.saturating_add(n));
    }

    /// Whether the bar is showing.
    #[cfg(test)]
    fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    fn make_bar(&self) -> ProgressBar {
        let (bar, template) = match self.len {
            Some(n) => (ProgressBar::new(n), "{msg} [{bar:40}] {pos}/{len} ({eta})"),
            None => (
                ProgressBar::new_spinner(),
                "{spinner} {msg} {pos} ({elapsed})",
            ),
        };
        if cfg!(test) {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(self.what);
        bar.set_position(self.pos);
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_bar_when_stderr_is_not_a_terminal_however_long_the_work() {
        let mut p = Progress::with(Some(10), "testing", false, Duration::ZERO);
        p.set(5);
        p.inc(5);
        assert!(!p.is_visible());
    }

    #[test]
    fn no_bar_on_a_terminal_until_the_work_is_long() {
        let mut p = Progress::with(Some(10), "testing", true, Duration::from_secs(3600));
        p.set(5);
        assert!(!p.is_visible());
        let mut p = Progress::with(None, "testing", true, Duration::ZERO);
        p.inc(1);
        assert!(p.is_visible());
    }
}
