//! Running a job on a named thread and talking to it from the UI thread.

use std::any::Any;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{CancelToken, JobCtx, JobSink, Progress};
use crate::error::CoreError;

/// Capacity of a job's event channel. When the UI falls behind, metric points and log lines are
/// dropped rather than growing memory; the latest progress is kept separately and never lost.
const EVENT_CAPACITY: usize = 4096;

/// An event from a running job.
#[derive(Clone, Debug, PartialEq)]
pub enum JobEvent {
    /// One point of a named series.
    Metric {
        /// Series name.
        series: String,
        /// x value (step or epoch).
        step: f64,
        /// y value.
        value: f64,
    },
    /// A log line.
    Log(String),
}

/// How a job ended.
#[derive(Debug)]
pub enum JobOutcome<T> {
    /// Finished with a result.
    Done(T),
    /// Stopped by the user.
    Cancelled,
    /// Returned an error.
    Failed(CoreError),
    /// Panicked; the message is shown to the user.
    Panicked(String),
}

/// Coarse status for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Still running.
    Running,
    /// Finished with a result.
    Done,
    /// Stopped by the user.
    Cancelled,
    /// Failed with this message.
    Failed(String),
}

struct ChannelSink {
    tx: SyncSender<JobEvent>,
    latest: Arc<Mutex<Progress>>,
    waker: Arc<dyn Fn() + Send + Sync>,
}

impl ChannelSink {
    fn send(&self, ev: JobEvent) {
        match self.tx.try_send(ev) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
        (self.waker)();
    }
}

impl JobSink for ChannelSink {
    fn progress(&self, progress: &Progress) {
        *self.latest.lock() = progress.clone();
        (self.waker)();
    }

    fn metric(&self, series: &str, step: f64, value: f64) {
        self.send(JobEvent::Metric {
            series: series.to_string(),
            step,
            value,
        });
    }

    fn log(&self, msg: &str) {
        self.send(JobEvent::Log(msg.to_string()));
    }
}

/// The UI side of a running job. Dropping it cancels the job.
pub struct JobHandle<T> {
    name: String,
    cancel: CancelToken,
    rx: Receiver<JobEvent>,
    latest: Arc<Mutex<Progress>>,
    result: Arc<Mutex<Option<JobOutcome<T>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    started: Instant,
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Starts `run` on a thread named `rote-job-<name>`. `waker` is called after every event (the GUI
/// passes a closure that requests a repaint). A panic inside `run` becomes
/// [`JobOutcome::Panicked`].
pub fn spawn_job<T, F>(
    name: &str,
    waker: Arc<dyn Fn() + Send + Sync>,
    run: F,
) -> Result<JobHandle<T>, CoreError>
where
    T: Send + 'static,
    F: FnOnce(&JobCtx<'_>) -> Result<T, CoreError> + Send + 'static,
{
    let (tx, rx) = sync_channel(EVENT_CAPACITY);
    let cancel = CancelToken::new();
    let latest = Arc::new(Mutex::new(Progress {
        stage: "starting".into(),
        ..Progress::default()
    }));
    let result: Arc<Mutex<Option<JobOutcome<T>>>> = Arc::new(Mutex::new(None));
    let sink = ChannelSink {
        tx,
        latest: latest.clone(),
        waker: waker.clone(),
    };
    let thread_cancel = cancel.clone();
    let thread_result = result.clone();
    let thread = std::thread::Builder::new()
        .name(format!("rote-job-{name}"))
        .spawn(move || {
            let ctx = JobCtx::new(&thread_cancel, &sink);
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&ctx)));
            let outcome = match caught {
                Ok(Ok(v)) => JobOutcome::Done(v),
                Ok(Err(e)) if e.is_cancelled() => JobOutcome::Cancelled,
                Ok(Err(e)) => JobOutcome::Failed(e),
                Err(payload) => JobOutcome::Panicked(panic_message(payload.as_ref())),
            };
            *thread_result.lock() = Some(outcome);
            waker();
        })
        .map_err(|e| CoreError::Invalid(format!("cannot start job thread: {e}")))?;
    Ok(JobHandle {
        name: name.to_string(),
        cancel,
        rx,
        latest,
        result,
        thread: Some(thread),
        started: Instant::now(),
    })
}

impl<T> JobHandle<T> {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Requests cancellation; the job stops at its next checkpoint.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Whether cancellation was requested.
    pub fn is_cancel_requested(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The latest progress report.
    pub fn progress(&self) -> Progress {
        self.latest.lock().clone()
    }

    /// Time since the job started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Drains events for at most `budget`, never blocking.
    pub fn poll(&self, budget: Duration) -> Vec<JobEvent> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        while t0.elapsed() < budget {
            match self.rx.try_recv() {
                Ok(ev) => out.push(ev),
                Err(_) => break,
            }
        }
        out
    }

    /// Whether the job has ended (its outcome can be taken).
    pub fn is_finished(&self) -> bool {
        self.result.lock().is_some()
    }

    /// Takes the outcome once the job has ended, joining its thread.
    pub fn take_outcome(&mut self) -> Option<JobOutcome<T>> {
        let outcome = self.result.lock().take()?;
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
        Some(outcome)
    }

    /// Blocks until the job ends (CLI and tests only; never on the UI thread).
    pub fn wait(mut self) -> JobOutcome<T> {
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
        self.result
            .lock()
            .take()
            .unwrap_or(JobOutcome::Panicked("job ended without an outcome".into()))
    }
}

impl<T> Drop for JobHandle<T> {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_wake() -> Arc<dyn Fn() + Send + Sync> {
        Arc::new(|| {})
    }

    #[test]
    fn runs_reports_and_finishes() {
        let h = spawn_job("t", no_wake(), |ctx| {
            ctx.progress("work", 1, 2);
            ctx.metric("loss", 1.0, 0.5);
            Ok(42)
        })
        .unwrap();
        let progress_seen = {
            while !h.is_finished() {
                std::thread::sleep(Duration::from_millis(1));
            }
            h.progress()
        };
        assert_eq!(progress_seen.done, 1);
        let evs = h.poll(Duration::from_secs(1));
        assert_eq!(
            evs,
            vec![JobEvent::Metric {
                series: "loss".into(),
                step: 1.0,
                value: 0.5
            }]
        );
        assert!(matches!(h.wait(), JobOutcome::Done(42)));
    }

    #[test]
    fn cancel_stops_at_checkpoint_and_panics_are_caught() {
        let h = spawn_job("c", no_wake(), |ctx| {
            loop {
                ctx.checkpoint()?;
                std::thread::sleep(Duration::from_millis(1));
            }
            #[expect(unreachable_code, reason = "the loop ends only through cancellation")]
            Ok(())
        })
        .unwrap();
        h.cancel();
        assert!(matches!(h.wait(), JobOutcome::Cancelled));

        let h = spawn_job::<(), _>("p", no_wake(), |_| panic!("boom {}", 7)).unwrap();
        match h.wait() {
            JobOutcome::Panicked(msg) => assert_eq!(msg, "boom 7"),
            other => panic!("expected a panic outcome, got {other:?}"),
        }
    }
}
