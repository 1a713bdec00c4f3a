//! State kept in memory only.

use std::collections::BTreeMap;

use crate::base::error::StateError;

use super::{LockInfo, Record, StackState, StateBackend};

/// State kept in memory only: for tests and for embedders that persist elsewhere.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    inner: std::sync::Mutex<BTreeMap<String, MemStack>>,
}

#[derive(Debug, Default, Clone)]
struct MemStack {
    snapshot: Option<StackState>,
    journal: Vec<Record>,
    lock: Option<LockInfo>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, stack: &str, f: impl FnOnce(&mut MemStack) -> T) -> T {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(g.entry(stack.to_string()).or_default())
    }

    /// Number of journal records not yet compacted.
    pub fn journal_len(&self, stack: &str) -> usize {
        self.with(stack, |s| s.journal.len())
    }
}

#[async_trait::async_trait]
impl StateBackend for MemoryBackend {
    async fn load(&self, stack: &str) -> Result<StackState, StateError> {
        Ok(self.with(stack, |s| {
            let mut st = s.snapshot.clone().unwrap_or_else(|| StackState::empty(stack));
            for r in &s.journal {
                st.apply(r);
            }
            st
        }))
    }
    async fn append(&self, stack: &str, records: &[Record]) -> Result<(), StateError> {
        self.with(stack, |s| s.journal.extend_from_slice(records));
        Ok(())
    }
    async fn compact(&self, stack: &str, state: &StackState) -> Result<(), StateError> {
        self.with(stack, |s| {
            s.snapshot = Some(state.clone());
            s.journal.clear();
        });
        Ok(())
    }
    async fn lock(&self, stack: &str, info: &LockInfo) -> Result<(), StateError> {
        self.with(stack, |s| match &s.lock {
            Some(h) => Err(StateError::Locked {
                stack: stack.to_string(),
                holder: format!("{} ({})", h.holder, h.operation),
                since: h.since.clone(),
                id: h.id.clone(),
            }),
            None => {
                s.lock = Some(info.clone());
                Ok(())
            }
        })
    }
    async fn unlock(&self, stack: &str, id: &str) -> Result<(), StateError> {
        self.force_unlock(stack, id).await.map(|_| ())
    }
    async fn force_unlock(&self, stack: &str, id: &str) -> Result<LockInfo, StateError> {
        self.with(stack, |s| match s.lock.take() {
            Some(h) if h.id == id => Ok(h),
            Some(h) => {
                let current = h.id.clone();
                s.lock = Some(h);
                Err(StateError::LockMismatch { stack: stack.into(), current, given: id.into() })
            }
            None => Err(StateError::LockMismatch { stack: stack.into(), current: "none".into(), given: id.into() }),
        })
    }
    async fn current_lock(&self, stack: &str) -> Result<Option<LockInfo>, StateError> {
        Ok(self.with(stack, |s| s.lock.clone()))
    }
    async fn stacks(&self) -> Result<Vec<String>, StateError> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(g.iter().filter(|(_, s)| s.snapshot.is_some() || !s.journal.is_empty()).map(|(k, _)| k.clone()).collect())
    }
}
