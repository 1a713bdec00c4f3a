//! Secrets of a run: generated ones live in memory for the run and are sealed into state only when
//! a key is configured; sealed ones from earlier runs are opened on demand.

use crate::base::secret::SecretSource;
use crate::kind::expr::Expr;
use crate::state::StackState;
use crate::synth::Synthesized;
use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::base::secret::{Sealer, Secret};
use crate::kind::Kind;
use crate::plan::SecretLookup;

pub(super) struct RunSecrets {
    pub(super) stack: String,
    pub(super) mem: Mutex<BTreeMap<(String, String), Secret<String>>>,
    pub(super) sealed: BTreeMap<(String, String), String>,
    pub(super) sealer: Option<Sealer>,
}

impl RunSecrets {
    /// The secrets of a run: those provided in the stack, and those sealed in state.
    pub(super) fn for_run(stack: &str, s: Option<&Synthesized>, state: &StackState, sealer: Option<Sealer>) -> Self {
        let mut mem = BTreeMap::new();
        let mut sealed = BTreeMap::new();
        if let Some(s) = s {
            for r in &s.resources {
                for attr in r.kind.secrets() {
                    if let Some(Expr::Secret(SecretSource::Provided(v))) = r.fields.get(*attr) {
                        mem.insert((r.path.clone(), attr.to_string()), v.clone());
                    }
                }
            }
        }
        for (path, r) in &state.resources {
            for (attr, v) in &r.sealed {
                sealed.insert((path.clone(), attr.clone()), v.clone());
            }
        }
        Self { stack: stack.to_string(), mem: Mutex::new(mem), sealed, sealer }
    }

    pub(super) fn context(&self, path: &str, attr: &str) -> String {
        format!("{}/{path}.{attr}", self.stack)
    }

    pub(super) fn put(&self, path: &str, attr: &str, v: Secret<String>) {
        self.mem.lock().unwrap_or_else(|p| p.into_inner()).insert((path.into(), attr.into()), v);
    }

    pub(super) fn seal_all(&self, kind: Kind, path: &str) -> BTreeMap<String, String> {
        kind.secrets().iter().filter_map(|a| Some((a.to_string(), self.seal(path, a)?))).collect()
    }

    pub(super) fn seal(&self, path: &str, attr: &str) -> Option<String> {
        let v =
            self.mem.lock().unwrap_or_else(|p| p.into_inner()).get(&(path.to_string(), attr.to_string())).cloned()?;
        self.sealer.as_ref()?.seal(&self.context(path, attr), &v)
    }
}

impl SecretLookup for RunSecrets {
    fn secret(&self, path: &str, attr: &str) -> Option<Secret<String>> {
        let key = (path.to_string(), attr.to_string());
        if let Some(v) = self.mem.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Some(v.clone());
        }
        let sealed = self.sealed.get(&key)?;
        self.sealer.as_ref()?.open(&self.context(path, attr), sealed)
    }
}
