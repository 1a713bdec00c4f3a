//! Preview environments: the stack again, once per branch, under a name derived from the
//! branch (its own state and tags), with a budget cap and an expiry. `preview up` applies it,
//! `preview down` destroys it, `preview list` shows every preview with its age and cost, and
//! `preview gc` destroys the expired ones.
//!
//! Which previews exist is kept with their state, as labels the apply writes before its first
//! change (`konstacks:preview-*`): a preview whose apply failed half-way is still listed and
//! collected, and every job that shares the state backend (CI runners with `--state-url`) sees
//! the same previews.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use konstacks_core::model::Stack;
use konstacks_core::state::StackState;
use serde_json::{json, Value};

use super::{Ctx, Exit, Failure};
use crate::cli::SafetyArgs;

/// Monthly budget cap of a preview when `--budget` is not given, in USD.
pub(in crate::cli) const DEFAULT_BUDGET_USD: f64 = 50.0;
/// Longest preview stack name: room for the physical names derived from it.
const MAX_NAME: usize = 40;

/// One preview environment, as its state's labels describe it.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::cli) struct PreviewEntry {
    /// The preview's stack name.
    pub(in crate::cli) stack: String,
    /// The branch it was made for, as given.
    pub(in crate::cli) branch: String,
    /// The stack it previews.
    pub(in crate::cli) base: String,
    /// When it was first brought up (Unix seconds).
    pub(in crate::cli) created_at: u64,
    /// When `preview gc` may destroy it (Unix seconds).
    pub(in crate::cli) expires_at: u64,
    /// Its monthly budget cap, in USD.
    pub(in crate::cli) budget_usd: f64,
    /// Its estimated monthly cost after the last apply (from the audit trail).
    pub(in crate::cli) monthly_usd: Option<f64>,
    /// Resources in its state.
    pub(in crate::cli) resources: usize,
}

/// The preview stack name of `branch` for the stack `base`: lower case, every run of other
/// characters than a-z and 0-9 turned into one `-`, cut to fit; when the branch name had to be
/// changed, a short hash of it keeps two branches that sanitise alike apart.
pub(in crate::cli) fn stack_name(base: &str, branch: &str) -> Result<String, Failure> {
    let mut slug = String::new();
    for c in branch.trim().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-').to_string();
    if slug.is_empty() {
        return Err(Failure::invalid(format!(
            "branch name `{}` has no letter or digit to name a preview after",
            branch.escape_debug()
        )));
    }
    let room = MAX_NAME.saturating_sub(base.len() + 1);
    let exact = slug == branch && slug.len() <= room;
    let name = if exact {
        format!("{base}-{slug}")
    } else {
        let hash = format!("{:08x}", fnv(branch.as_bytes()))[..6].to_string();
        let keep = room.saturating_sub(hash.len() + 1);
        if keep == 0 {
            return Err(Failure::invalid(format!(
                "stack name `{base}` is too long to name previews after it (at most {} characters)",
                MAX_NAME - 9
            )));
        }
        let cut: String = slug.chars().take(keep).collect();
        format!("{base}-{}-{hash}", cut.trim_end_matches('-'))
    };
    super::check_stack_name(&name)?;
    Ok(name)
}

/// The slug of `branch`'s preview of `base`: its stack name without the leading `<base>-`
/// (`feature-x`), a DNS label templates name the preview's host after.
pub(in crate::cli) fn slug(base: &str, branch: &str) -> Result<String, Failure> {
    let name = stack_name(base, branch)?;
    Ok(name.strip_prefix(base).and_then(|s| s.strip_prefix('-')).unwrap_or(&name).to_string())
}

fn fnv(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// `90s`, `30m`, `72h`, `7d`, or a number of seconds.
pub(in crate::cli) fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("invalid duration `{s}`: use a number with s, m, h or d (72h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("invalid duration `{s}`: use a number with s, m, h or d (72h)")),
    };
    Ok(Duration::from_secs(secs))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

const BRANCH: &str = "konstacks:preview-branch";
const BASE: &str = "konstacks:preview-base";
const CREATED: &str = "konstacks:preview-created";
const EXPIRES: &str = "konstacks:preview-expires";
const BUDGET: &str = "konstacks:preview-budget";

impl PreviewEntry {
    /// The labels that record it.
    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (BRANCH.to_string(), self.branch.clone()),
            (BASE.to_string(), self.base.clone()),
            (CREATED.to_string(), self.created_at.to_string()),
            (EXPIRES.to_string(), self.expires_at.to_string()),
            (BUDGET.to_string(), format!("{:.2}", self.budget_usd)),
        ])
    }

    /// The labels that forget it.
    fn cleared() -> BTreeMap<String, String> {
        [BRANCH, BASE, CREATED, EXPIRES, BUDGET].iter().map(|k| (k.to_string(), String::new())).collect()
    }

    /// The preview a stack's state describes, if it is one.
    fn of(state: &StackState) -> Option<Self> {
        let l = &state.labels;
        let num = |k: &str| l.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Some(Self {
            stack: state.stack.clone(),
            branch: l.get(BRANCH)?.clone(),
            base: l.get(BASE).cloned().unwrap_or_default(),
            created_at: num(CREATED),
            expires_at: num(EXPIRES),
            budget_usd: l.get(BUDGET).and_then(|v| v.parse().ok()).unwrap_or(0.0),
            monthly_usd: state.audit.iter().rev().find_map(|e| e.cost_after_usd),
            resources: state.resources.len(),
        })
    }
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn rfc3339(unix: u64) -> String {
    konstacks_core::base::rfc3339(unix)
}

impl Ctx<'_> {
    /// Every preview among the stacks of the state backend, by stack name.
    fn previews(&self) -> Result<Vec<PreviewEntry>, Failure> {
        let names = self.rt.block_on(self.engine.state_backend().stacks())?;
        let mut out = Vec::new();
        for name in names {
            let state = self.rt.block_on(self.engine.state(&name))?;
            out.extend(PreviewEntry::of(&state));
        }
        out.sort_by(|a, b| a.stack.cmp(&b.stack));
        Ok(out)
    }

    /// `preview up`: apply the stack under its preview name with the budget cap, its labels
    /// written before the first change (an over-budget plan is refused before any cloud call
    /// and recorded nowhere).
    pub(super) fn preview_up(&mut self, branch: &str, ttl: Duration, budget: f64) -> Result<Exit, Failure> {
        let base = self.stack.name();
        let name = stack_name(&base, branch)?;
        self.stack.rename(&name);
        self.stack.budget(budget);
        let at = now();
        let known = PreviewEntry::of(&self.rt.block_on(self.engine.state(&name))?);
        let entry = PreviewEntry {
            stack: name.clone(),
            branch: branch.to_string(),
            base,
            created_at: known.as_ref().map_or(at, |e| e.created_at),
            expires_at: at.saturating_add(ttl.as_secs()),
            budget_usd: budget,
            monthly_usd: None,
            resources: 0,
        };
        self.labels = entry.labels();
        if let Some(src) = self.source.as_mut().and_then(Value::as_object_mut) {
            src.insert("preview".into(), json!({ "branch": branch, "base": entry.base }));
        }
        let exit = self.apply(true, false, false, &SafetyArgs::default())?;
        self.ui.err(&format!(
            "Preview {name} of branch {branch} is up; it expires {} (`preview gc` destroys it then).",
            rfc3339(entry.expires_at)
        ));
        Ok(exit)
    }

    /// `preview down`: destroy the branch's preview and forget it.
    pub(super) fn preview_down(&mut self, branch: &str) -> Result<Exit, Failure> {
        let name = stack_name(&self.stack.name(), branch)?;
        self.destroy_preview(&name)
    }

    /// Destroy a preview (deletion protection turned off: previews are disposable), then clear
    /// its labels: one that could not be destroyed completely stays listed.
    fn destroy_preview(&mut self, name: &str) -> Result<Exit, Failure> {
        // Destroy needs only the name: state says what exists.
        let placement = konstacks_core::model::Placement::within(konstacks_core::model::Jurisdiction::Eu);
        self.stack = Stack::new(name, placement, self.stack.stage());
        let exit = self.destroy(true, true)?;
        self.rt.block_on(self.engine.label(name, PreviewEntry::cleared()))?;
        Ok(exit)
    }

    /// `preview list`.
    pub(super) fn preview_list(&self) -> Result<Exit, Failure> {
        let now = now();
        let rows = self.previews()?;
        if self.ui.json {
            let list: Vec<Value> = rows
                .iter()
                .map(|e| {
                    json!({
                        "stack": e.stack, "branch": e.branch, "base": e.base,
                        "created_at": rfc3339(e.created_at), "expires_at": rfc3339(e.expires_at),
                        "age_seconds": now.saturating_sub(e.created_at), "expired": e.expires_at <= now,
                        "budget_usd": e.budget_usd, "monthly_usd": e.monthly_usd, "resources": e.resources,
                    })
                })
                .collect();
            self.ui.json_doc(&list);
            return Ok(Exit::Success);
        }
        if rows.is_empty() {
            self.ui.err("No previews. `preview up --branch NAME` creates one.");
            return Ok(Exit::Success);
        }
        let mut out = format!(
            "{:<40} {:<30} {:>6} {:>10} {:>9} {:>9}  {}\n",
            "STACK", "BRANCH", "AGE", "COST/MO", "BUDGET", "RESOURCES", "EXPIRES"
        );
        for e in &rows {
            let cost = e.monthly_usd.map(|c| format!("${c:.2}")).unwrap_or_else(|| "-".into());
            let expires = if e.expires_at <= now { "expired".to_string() } else { rfc3339(e.expires_at) };
            let branch: String = e.branch.chars().map(|c| if c.is_control() { '?' } else { c }).take(30).collect();
            out.push_str(&format!(
                "{:<40} {:<30} {:>6} {:>10} {:>9} {:>9}  {expires}\n",
                e.stack,
                branch,
                age(now.saturating_sub(e.created_at)),
                cost,
                format!("${:.0}", e.budget_usd),
                e.resources
            ));
        }
        self.ui.out(&out);
        Ok(Exit::Success)
    }

    /// `preview gc`: destroy every expired preview (or only list them with `--dry-run`).
    pub(super) fn preview_gc(&mut self, dry_run: bool) -> Result<Exit, Failure> {
        let now = now();
        let expired: Vec<PreviewEntry> = self.previews()?.into_iter().filter(|e| e.expires_at <= now).collect();
        if expired.is_empty() {
            self.ui.err("No expired previews.");
            return Ok(Exit::Success);
        }
        for e in &expired {
            self.ui.err(&format!("Expired: {} (branch {}, expired {})", e.stack, e.branch, rfc3339(e.expires_at)));
        }
        if dry_run {
            return Ok(Exit::Success);
        }
        for e in &expired {
            self.destroy_preview(&e.stack)?;
        }
        self.ui.err(&format!("Destroyed {} expired preview(s).", expired.len()));
        Ok(Exit::Success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_are_sanitised_cut_and_kept_apart() {
        assert_eq!(stack_name("web-app-dev", "login").ok(), Some("web-app-dev-login".to_string()));
        let a = stack_name("web-app-dev", "Feature/Login").map_err(|f| f.message).unwrap_or_default();
        let b = stack_name("web-app-dev", "feature-login").map_err(|f| f.message).unwrap_or_default();
        assert!(a.starts_with("web-app-dev-feature-login-"), "{a}");
        assert_eq!(b, "web-app-dev-feature-login");
        assert_ne!(a, b);
        let long = "x".repeat(100);
        let n = stack_name("web-app-dev", &long).map_err(|f| f.message).unwrap_or_default();
        assert!(n.len() <= MAX_NAME && n.starts_with("web-app-dev-xxx"), "{n}");
        assert!(stack_name("web-app-dev", "///").is_err());
        let s = slug("web-app-dev", "feature/x").map_err(|f| f.message).unwrap_or_default();
        assert!(s.starts_with("feature-x-") && s.len() == "feature-x-".len() + 6, "{s}");
        assert_eq!(slug("web-app-dev", "login").ok(), Some("login".to_string()));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_ttl("72h"), Ok(Duration::from_secs(72 * 3600)));
        assert_eq!(parse_ttl("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_ttl("soon").is_err());
    }
}
