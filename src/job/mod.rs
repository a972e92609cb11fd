//! Background jobs: a cancel token checked between batches, progress with stage and ETA, metrics
//! and log lines sent over a bounded channel, a waker that tells the UI to repaint, and panics
//! caught and reported as a failed job.
//!
//! The same job body runs three ways: on a named thread for the GUI ([`spawn_job`]), on the main
//! thread for the CLI (with [`JobCtx::new`] and a printing sink), and in tests (with a recording
//! sink).

mod handle;
mod progress;

pub use handle::{JobEvent, JobHandle, JobOutcome, JobStatus, spawn_job};
pub use progress::{Progress, ProgressClock};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{CoreError, CoreResult};

/// A cheap, clonable cancellation flag.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, uncancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Where a job reports to. Implementations must be cheap: they are called from hot loops
/// (rate-limit at the source where it matters).
pub trait JobSink: Send + Sync {
    /// Progress of the current stage.
    fn progress(&self, progress: &Progress);
    /// One point of a named series (e.g. "train loss" at step 120).
    fn metric(&self, series: &str, step: f64, value: f64);
    /// A human-readable log line.
    fn log(&self, msg: &str);
    /// Whether [`JobSink::frame`] is wanted (jobs skip building frames otherwise).
    fn wants_frames(&self) -> bool {
        false
    }
    /// An intermediate image of a running job (e.g. the current iterate of an inversion).
    fn frame(&self, _frame: &Frame<'_>) {}
}

/// An intermediate image published by a job (see [`JobSink::frame`]).
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// What the image belongs to (e.g. the class being inverted).
    pub key: usize,
    /// Step of the job's loop.
    pub step: usize,
    /// A value to plot against the step (e.g. the cost).
    pub value: f64,
    /// C x H x W in [0, 1].
    pub pixels: &'a [f32],
}

/// A sink that drops everything.
pub struct NullSink;

impl JobSink for NullSink {
    fn progress(&self, _: &Progress) {}
    fn metric(&self, _: &str, _: f64, _: f64) {}
    fn log(&self, _: &str) {}
}

/// What a job body receives: the cancel token and the sink.
pub struct JobCtx<'a> {
    /// Checked by [`JobCtx::checkpoint`].
    pub cancel: &'a CancelToken,
    /// Receives progress, metrics and logs.
    pub sink: &'a dyn JobSink,
    clock: ProgressClock,
}

impl<'a> JobCtx<'a> {
    /// A context over a token and a sink.
    pub fn new(cancel: &'a CancelToken, sink: &'a dyn JobSink) -> Self {
        Self {
            cancel,
            sink,
            clock: ProgressClock::start(),
        }
    }

    /// Returns `Err(CoreError::Cancelled)` once cancellation was requested. Call between batches.
    pub fn checkpoint(&self) -> CoreResult<()> {
        if self.cancel.is_cancelled() {
            Err(CoreError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Reports `done` of `total` units of `stage`, with an ETA from the elapsed time of the stage.
    pub fn progress(&self, stage: &str, done: u64, total: u64) {
        let p = self.clock.progress(stage, done, total);
        self.sink.progress(&p);
    }

    /// Reports a metric point.
    pub fn metric(&self, series: &str, step: f64, value: f64) {
        self.sink.metric(series, step, value);
    }

    /// Logs a line.
    pub fn log(&self, msg: &str) {
        self.sink.log(msg);
    }

    /// Whether the sink wants intermediate images.
    pub fn wants_frames(&self) -> bool {
        self.sink.wants_frames()
    }

    /// Publishes an intermediate image.
    pub fn frame(&self, frame: &Frame<'_>) {
        self.sink.frame(frame);
    }
}
