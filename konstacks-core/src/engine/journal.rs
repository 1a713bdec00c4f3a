//! The journal writer of a run: group commit of state records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::base::error::StateError;
use crate::state::{Record, StackState, StateBackend};

// ---------------------------------------------------------------------------------------------
// The journal writer: group commit. Many concurrent operations hand it records; it appends all
// that are waiting in one write + fsync, then acknowledges each. State persistence therefore
// costs one small append per step, shared among concurrent steps.

type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

/// How long buffered journal writes may wait for their fsync in [`Durability::Flush`].
const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// When an intent counts as written.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every intent is in the journal file before its cloud call (a killed process loses
    /// nothing); fsyncs are grouped and run in the background at most 20 ms later, so a
    /// machine crash can lose the last few intents — whose resources still carry the stack's
    /// tags.
    Flush,
    /// Every intent is fsynced before its cloud call (grouped with concurrent ones). The default.
    #[default]
    Fsync,
}

fn note_failure<E: ToString>(slot: &Mutex<Option<String>>, e: Option<E>) {
    if let Some(e) = e {
        let mut f = slot.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(e.to_string());
        }
    }
}

/// Records, whether the sender waits for durability, and its acknowledgement.
type Submission = (Vec<Record>, bool, Ack);

pub(super) struct Journal {
    tx: Option<tokio::sync::mpsc::UnboundedSender<Submission>>,
    replica: Arc<Mutex<StackState>>,
    busy_ns: Arc<AtomicU64>,
    /// Records appended so far (a run that appended none need not compact).
    appended: Arc<AtomicU64>,
    failed: Arc<Mutex<Option<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Journal {
    pub(super) fn start(
        backend: Arc<dyn StateBackend>,
        stack: &str,
        initial: StackState,
        durability: Durability,
    ) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Submission>();
        let replica = Arc::new(Mutex::new(initial));
        let busy_ns = Arc::new(AtomicU64::new(0));
        let appended = Arc::new(AtomicU64::new(0));
        let a2 = appended.clone();
        let failed: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let (r2, b2, f2, stack) = (replica.clone(), busy_ns.clone(), failed.clone(), stack.to_string());
        let task = tokio::spawn(async move {
            // Buffered writes not yet fsynced (only in `Durability::Flush`).
            let mut dirty = false;
            loop {
                let first = if dirty {
                    match tokio::time::timeout(FLUSH_EVERY, rx.recv()).await {
                        Ok(Some(x)) => x,
                        Ok(None) => break,
                        Err(_) => {
                            let t = std::time::Instant::now();
                            let res = backend.append(&stack, &[]).await;
                            b2.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                            note_failure(&f2, res.err());
                            dirty = false;
                            continue;
                        }
                    }
                } else {
                    match rx.recv().await {
                        Some(x) => x,
                        None => break,
                    }
                };
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                // A flush request (empty and awaited) or an awaited write in `Fsync` mode makes the
                // whole batch durable with one fsync, covering every buffered write before it.
                // The records are moved, not cloned: the writer is the only one that keeps them.
                let (mut awaited, mut flush) = (false, false);
                let mut records: Vec<Record> = Vec::new();
                let mut acks = Vec::with_capacity(batch.len());
                for (r, d, ack) in batch {
                    awaited |= d;
                    flush |= d && r.is_empty();
                    records.extend(r);
                    acks.push(ack);
                }
                let fsync = flush || (awaited && durability == Durability::Fsync);
                let t = std::time::Instant::now();
                let res = if fsync {
                    backend.append(&stack, &records).await
                } else if records.is_empty() {
                    Ok(())
                } else {
                    backend.append_buffered(&stack, &records).await
                };
                b2.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                if fsync {
                    dirty = false;
                } else if !records.is_empty() {
                    dirty = true;
                }
                if res.is_ok() {
                    a2.fetch_add(records.len() as u64, Ordering::Relaxed);
                    let mut st = r2.lock().unwrap_or_else(|p| p.into_inner());
                    for r in records {
                        st.apply_owned(r);
                    }
                }
                let res = res.map_err(|e| e.to_string());
                note_failure(&f2, res.clone().err());
                for ack in acks {
                    let _ = ack.send(res.clone());
                }
            }
            if dirty {
                note_failure(&f2, backend.append(&stack, &[]).await.err());
            }
        });
        Self { tx: Some(tx), replica, busy_ns, appended, failed, task: Some(task) }
    }

    /// Queue records behind everything queued before, without waiting for durability. Used for
    /// results: the intent before the call is what makes a crash recoverable, so a result may
    /// reach the disk a moment later (it is then merged into the next group commit).
    pub(super) fn write_behind(&self, records: Vec<Record>) {
        let (ack, _rx) = tokio::sync::oneshot::channel();
        if let Some(tx) = &self.tx {
            let _ = tx.send((records, false, ack));
        }
    }

    /// Wait until everything queued so far is durable; report any earlier write-behind failure.
    pub(super) async fn flush(&self) -> Result<(), StateError> {
        self.write(Vec::new()).await?;
        match self.failed.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            None => Ok(()),
            Some(m) => Err(StateError::Io { path: "journal".into(), source: std::io::Error::other(m) }),
        }
    }

    /// Append records; returns once they are durable.
    pub(super) async fn write(&self, records: Vec<Record>) -> Result<(), StateError> {
        let (ack, rx) = tokio::sync::oneshot::channel();
        let failed = |m: String| StateError::Io { path: "journal".into(), source: std::io::Error::other(m) };
        let tx = self.tx.as_ref().ok_or_else(|| failed("journal closed".into()))?;
        tx.send((records, true, ack)).map_err(|_| failed("journal writer stopped".into()))?;
        rx.await.map_err(|_| failed("journal writer stopped".into()))?.map_err(failed)
    }

    /// Look at the state as recorded so far, without copying it (a copy of a large stack's
    /// state costs more than the look).
    pub(super) fn with_replica<T>(&self, f: impl FnOnce(&StackState) -> T) -> T {
        f(&self.replica.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records appended so far.
    pub(super) fn appended(&self) -> u64 {
        self.appended.load(Ordering::Relaxed)
    }

    pub(super) fn busy_ms(&self) -> u64 {
        self.busy_ns.load(Ordering::Relaxed) / 1_000_000
    }

    pub(super) async fn close(mut self) -> StackState {
        self.tx = None;
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        // The writer task held the only other handle; once it ended, the state is moved out.
        match Arc::try_unwrap(self.replica) {
            Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
            Err(shared) => shared.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}
