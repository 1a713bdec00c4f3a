//! Live rendering of the engine's event stream during `apply` and `destroy`: an indicatif bar
//! with a line per finished resource on a terminal, plain lines otherwise, JSON lines with
//! `--json`. Events carry no secret values, and nothing here adds any.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use konstacks_core::events::{Event, EventKind};
use konstacks_core::state::OpKind;

use super::commands::Ui;

/// How events are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One overall bar plus a line per finished resource (stderr is a terminal).
    Bar,
    /// One plain line per event, on stderr.
    Plain,
    /// One JSON object per event, on stdout.
    Json,
}

/// Renders events as they arrive.
pub(super) struct Renderer<'a> {
    ui: &'a Ui,
    mode: Mode,
    bar: Option<ProgressBar>,
    in_flight: Vec<String>,
}

fn verb(op: OpKind, done: bool) -> &'static str {
    match (op, done) {
        (OpKind::Create, false) => "creating",
        (OpKind::Update, false) => "updating",
        (OpKind::Delete, false) => "deleting",
        (OpKind::Create, true) => "created",
        (OpKind::Update, true) => "updated",
        (OpKind::Delete, true) => "deleted",
        // OpKind is non-exhaustive: describe a future kind generically.
        (_, false) => "working on",
        (_, true) => "done",
    }
}

fn symbol(op: OpKind) -> (&'static str, &'static str) {
    match op {
        OpKind::Create => ("+", "32"),
        OpKind::Update => ("~", "33"),
        OpKind::Delete => ("-", "31"),
        _ => ("*", "0"),
    }
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

impl<'a> Renderer<'a> {
    pub(super) fn new(ui: &'a Ui) -> Self {
        let mode = if ui.json {
            Mode::Json
        } else if ui.progress {
            Mode::Bar
        } else {
            Mode::Plain
        };
        Self { ui, mode, bar: None, in_flight: Vec::new() }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.ui.colour_err {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    fn line(&self, s: &str) {
        match &self.bar {
            Some(bar) => bar.println(s),
            None => self.ui.err(s),
        }
    }

    fn start_bar(&mut self, total: u64) {
        if self.mode != Mode::Bar || self.bar.is_some() {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let template = if self.ui.colour_err {
            "{spinner:.cyan} [{bar:30.cyan/blue}] {pos}/{len} {elapsed:>4} {wide_msg}"
        } else {
            "{spinner} [{bar:30}] {pos}/{len} {elapsed:>4} {wide_msg}"
        };
        let style = ProgressStyle::with_template(template)
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(100));
        self.bar = Some(bar);
    }

    fn update_message(&self) {
        if let Some(bar) = &self.bar {
            let msg = match self.in_flight.len() {
                0 => String::new(),
                1..=3 => self.in_flight.join(", "),
                n => format!("{}, ... ({n} in flight)", self.in_flight[..3].join(", ")),
            };
            bar.set_message(msg);
        }
    }

    fn done_one(&mut self, path: &str) {
        if let Some(pos) = self.in_flight.iter().position(|p| p == path) {
            self.in_flight.remove(pos);
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        self.update_message();
    }

    /// Show one event.
    pub(super) fn event(&mut self, e: &Event) {
        if self.mode == Mode::Json {
            self.ui.json_line(e);
            return;
        }
        let path = e.path.as_deref().unwrap_or(&e.stack);
        match &e.kind {
            EventKind::Planned { create, update, replace, delete } => {
                // A replacement is two operations: the new resource's create and the old one's delete.
                let total = (create + update + delete + 2 * replace) as u64;
                if total > 0 {
                    self.start_bar(total);
                }
            }
            EventKind::Started { op } => {
                self.in_flight.push(path.to_string());
                self.update_message();
                if self.mode == Mode::Plain {
                    self.line(&format!("  {} {path}...", verb(*op, false)));
                }
            }
            EventKind::Succeeded { op, id, elapsed_ms } => {
                let (sym, code) = symbol(*op);
                self.line(&format!(
                    "  {} {path} {} [{id}] in {}",
                    self.paint(code, sym),
                    verb(*op, true),
                    secs(*elapsed_ms)
                ));
                self.done_one(path);
            }
            EventKind::Failed { op, error_kind, error } => {
                self.line(&format!(
                    "  {} {path}: {} failed ({error_kind}): {error}",
                    self.paint("31", "x"),
                    verb(*op, false)
                ));
                self.done_one(path);
            }
            EventKind::Skipped { reason } => {
                self.line(&format!("  {} {path} skipped: {reason}", self.paint("90", "-")));
                self.done_one(path);
            }
            EventKind::Retrying { op, attempt, delay_ms, error_kind, .. } => {
                self.line(&format!(
                    "  {} {path}: {} hit {error_kind}, retry {attempt} in {}",
                    self.paint("33", "!"),
                    verb(*op, false),
                    secs(*delay_ms)
                ));
            }
            EventKind::Adopted { id } => {
                self.line(&format!(
                    "  {} {path}: found [{id}] from an interrupted run and adopted it",
                    self.paint("36", "=")
                ));
            }
            EventKind::Progress { message } => self.line(&format!("  {path}: {message}")),
            EventKind::Warning { message } => self.line(&format!("{} {message}", self.paint("33", "warning:"))),
            EventKind::Finished { .. } => self.finish(),
            // EventKind is non-exhaustive: a new kind still shows up, without special layout.
            other => self.line(&format!("  {path}: {other:?}")),
        }
    }

    /// Remove the bar, keeping the lines printed above it.
    pub(super) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Renderer<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}
