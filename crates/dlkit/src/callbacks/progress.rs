//! Progress while training: a line per epoch, and a line updated in place during the epoch
//! (epoch, step/total, samples/s, time left) in a terminal or a Jupyter notebook.

use super::{BatchLogs, Callback, Context};
use crate::error::Result;
use crate::history::EpochRecord;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// How much the loop prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// Nothing.
    Quiet,
    /// One line per epoch.
    Epochs,
    /// One line per epoch, and a line updated in place during the epoch where it can be
    /// (a terminal, or a notebook on the evcxr kernel).
    #[default]
    Bar,
}

/// Where the in-place line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Live {
    /// Not shown (a log file or a pipe would fill with lines).
    Off,
    /// A terminal: stderr, redrawn ~10 times a second.
    Terminal,
    /// A notebook cell on the evcxr kernel. evcxr 0.22 forwards the kernel's output to
    /// JupyterLab a whole line at a time, so a line redrawn with `\r` would only appear when the
    /// epoch ends; instead a long epoch prints a progress line every 30 seconds (none in a
    /// short one), before its epoch line.
    Notebook,
}

/// Prints training progress (added by the trainer according to [`Progress`]).
#[derive(Debug)]
pub struct ProgressLogger {
    label: String,
    live: Live,
    epoch_lines: bool,
    last_draw: Option<Instant>,
    drawn: bool,
}

impl ProgressLogger {
    /// Progress lines prefixed with `label` (the run's name).
    pub fn new(label: &str, progress: Progress) -> Self {
        let live = match progress {
            Progress::Bar if std::env::var_os("EVCXR_IS_RUNTIME").is_some() => Live::Notebook,
            Progress::Bar if std::io::stderr().is_terminal() => Live::Terminal,
            _ => Live::Off,
        };
        ProgressLogger {
            label: if label.is_empty() { String::new() } else { format!("{label}  ") },
            live,
            epoch_lines: progress != Progress::Quiet,
            last_draw: None,
            drawn: false,
        }
    }

    fn draw(&mut self, b: &BatchLogs, epochs: usize) {
        let (every, first) = if self.live == Live::Notebook { (30.0, 30.0) } else { (0.1, 0.0) };
        let due = match self.last_draw {
            None => b.seconds >= first,
            Some(t) => t.elapsed().as_secs_f64() >= every,
        };
        if !due || b.step == b.steps {
            return;
        }
        self.last_draw = Some(Instant::now());
        let width = 24;
        let filled = width * b.step / b.steps.max(1);
        let rate = b.samples as f64 / b.seconds.max(1e-9);
        let eta = b.seconds / b.step as f64 * (b.steps - b.step) as f64;
        let line = format!(
            "\r{}epoch {}/{epochs} [{}{}] {}/{} · loss {:.4} · {rate:.0} samples/s · {eta:.0} s left ",
            self.label,
            b.epoch + 1,
            "=".repeat(filled),
            " ".repeat(width - filled),
            b.step,
            b.steps,
            b.loss
        );
        self.write(&line);
        self.drawn = true;
    }

    fn write(&self, text: &str) {
        if self.live == Live::Notebook {
            println!("{}", text.trim_start_matches('\r').trim_end());
        } else {
            eprint!("{text}");
            let _ = std::io::stderr().flush();
        }
    }

    /// The one-line summary of an epoch.
    pub fn epoch_line(label: &str, epochs: usize, r: &EpochRecord) -> String {
        let val = match (r.val_loss, r.val_acc) {
            (Some(l), Some(a)) => format!("  val_loss {l:.4}  val_acc {a:.4}"),
            _ => String::new(),
        };
        format!(
            "{label}epoch {}/{epochs}  loss {:.4}  acc {:.4}{val}  lr {:.3e}  {:.1}s",
            r.epoch, r.train_loss, r.train_acc, r.lr, r.seconds + r.eval_seconds
        )
    }
}

impl Callback for ProgressLogger {
    fn name(&self) -> &str {
        "progress"
    }

    fn on_batch_end(&mut self, batch: &BatchLogs, ctx: &mut Context) -> Result<()> {
        if self.live != Live::Off {
            self.draw(batch, ctx.epochs);
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, record: &mut EpochRecord, ctx: &mut Context) -> Result<()> {
        if self.drawn && self.live == Live::Terminal {
            // Blank the live line, then print the epoch's line in its place.
            self.write(&format!("\r{}\r", " ".repeat(self.label.len() + 100)));
        }
        self.drawn = false;
        self.last_draw = None;
        if self.epoch_lines {
            println!("{}", Self::epoch_line(&self.label, ctx.epochs, record));
        }
        Ok(())
    }
}
