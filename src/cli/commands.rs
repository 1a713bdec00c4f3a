//! The commands: each one synthesizes, plans or reads state through the engine and renders the
//! result for humans or, with `--json`, for machines. Errors become a [`Failure`] carrying the
//! exit code.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{IsTerminal, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use konstacks_core::engine::{
    ApplyOptions, ApplyReport, DataLossConsent, Engine, FailurePolicy, ImportOptions, PlanOptions, Refusal,
};
use konstacks_core::error::{Error, StateError};
use konstacks_core::model::{Stack, Stage};
use konstacks_core::parity::KnobSet;
use konstacks_core::plan::Plan;
use konstacks_core::policy::{PolicySet, Suppression};
use konstacks_core::provider::Provider;
use konstacks_core::secret::SecretError;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::state::LocalBackend;
use konstacks_core::validate::Synthesized;
use serde::Serialize;
use serde_json::{json, Value};

mod dashboard;
mod dev;
mod preview;

pub(super) use preview::parse_ttl;

use super::progress::Renderer;
use super::{
    App, BuildError, BuildOutcome, Cli, Command, Exit, GlobalArgs, GraphFormat, PlanFormat, PreviewCommand, SafetyArgs,
    StateCommand,
};

/// Name of the simulated cloud's file inside the state directory.
const SIM_FILE: &str = "sim-cloud.json";

/// A command that did not succeed: the exit code and what to tell the user.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) exit: Exit,
    pub(super) message: String,
    /// Structured details for `--json` (diagnostics, the apply report).
    details: Option<Value>,
}

impl Failure {
    fn error(message: impl Into<String>) -> Self {
        Self { exit: Exit::Error, message: message.into(), details: None }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self { exit: Exit::Invalid, message: message.into(), details: None }
    }

    fn with_details(mut self, details: impl Serialize) -> Self {
        self.details = serde_json::to_value(details).ok();
        self
    }

    /// `{"error": {"exit_code", "message", "details"?}}`, what `--json` prints on stdout.
    fn to_json(&self) -> Value {
        let mut err = json!({ "exit_code": self.exit.code(), "message": self.message });
        if let (Some(d), Some(obj)) = (&self.details, err.as_object_mut()) {
            obj.insert("details".into(), d.clone());
        }
        json!({ "error": err })
    }
}

/// With `--json`, a command line clap cannot parse (unknown option, missing value) is reported
/// on stdout like every other failure (exit code 1); clap's own text stays on stderr.
pub(super) fn json_parse_error(e: &clap::Error) -> Exit {
    let text = e.render().to_string();
    // The problem and clap's tip; the usage and the pointer to --help are for humans.
    let kept: Vec<&str> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with("Usage:") && !p.starts_with("For more information"))
        .collect();
    let message = kept.join("\n\n");
    let f = Failure::error(message.strip_prefix("error: ").unwrap_or(&message));
    Ui::new(true, true).json_line(&f.to_json());
    f.exit
}

/// Refuse a stack name that is not valid (`../x`, `a/b`, `con`, ...) before any path, key or
/// cloud call is built from it: exit code 3, with the same diagnostic synth reports.
fn check_stack_name(name: &str) -> Result<(), Failure> {
    match konstacks_core::validate::stack_name_diagnostic(name) {
        Some(d) => Err(Error::Invalid(konstacks_core::validate::Diagnostics(vec![d])).into()),
        None => Ok(()),
    }
}

/// `plan --out FILE` never writes inside the state directory (it could replace a state file or
/// the simulated cloud), nor over a file that is neither empty nor a plan. Both paths are
/// compared with every symbolic link of their existing part resolved.
fn check_plan_out(state_dir: &Path, out: &Path) -> Result<(), Failure> {
    let shown = out.display();
    if resolve_path(out).starts_with(resolve_path(state_dir)) {
        return Err(Failure::invalid(format!(
            "refusing to write the plan to {shown}: it is inside the state directory {}, where it could replace \
             state or the simulated cloud; choose a path outside it",
            state_dir.display()
        )));
    }
    match std::fs::metadata(out) {
        Ok(m) if m.is_dir() => {
            Err(Failure::invalid(format!("refusing to write the plan to {shown}: it is a directory; give a file name")))
        }
        Ok(m) if m.len() > 0 && !is_plan_file(out) => Err(Failure::invalid(format!(
            "refusing to overwrite {shown}: it is not a plan written by `plan --out`; remove it or choose another path"
        ))),
        _ => Ok(()),
    }
}

/// Whether `path` holds a plan as `plan --out` writes it.
fn is_plan_file(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else { return false };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else { return false };
    v["format_version"].is_u64() && v["stack"].is_string() && v["changes"].is_array()
}

/// `path` made absolute, its longest existing ancestor canonicalized (symbolic links resolved)
/// and the rest appended (`.` and `..` applied to the words). A symbolic link at the end is
/// followed even when what it points to does not exist yet.
fn resolve_path(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if let Ok(target) = std::fs::read_link(&abs) {
        if abs.canonicalize().is_err() {
            let base = abs.parent().map(Path::to_path_buf).unwrap_or_default();
            return resolve_path(&base.join(target));
        }
    }
    let comps: Vec<Component> = abs.components().collect();
    for i in (1..=comps.len()).rev() {
        let prefix: std::path::PathBuf = comps[..i].iter().collect();
        if let Ok(mut out) = prefix.canonicalize() {
            for c in &comps[i..] {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(n) => out.push(n),
                    _ => {}
                }
            }
            return out;
        }
    }
    abs
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match &e {
            Error::Invalid(d) => Failure::invalid(e.to_string()).with_details(json!({ "diagnostics": d })),
            Error::State(StateError::Locked { id, .. }) => {
                let id = id.clone();
                Failure { exit: Exit::Locked, message: e.to_string(), details: Some(json!({ "lock_id": id })) }
            }
            Error::Budget(_) => Failure { exit: Exit::Refused, message: e.to_string(), details: None },
            Error::State(StateError::InvalidStackName { .. }) => Failure::invalid(e.to_string()),
            Error::Refused(r) => {
                let details = serde_json::to_value(r).ok();
                Failure { exit: Exit::Refused, message: e.to_string(), details }
            }
            // A state key that is too short is a bad parameter; a lost secret the cloud cannot
            // rotate is a refusal before any change. Wrong and missing keys stay errors (1).
            Error::Secret(SecretError::KeyTooShort { .. }) => Failure::invalid(e.to_string()),
            Error::Secret(SecretError::Unrecoverable(_)) => {
                Failure { exit: Exit::Refused, message: e.to_string(), details: None }
            }
            Error::Policy(report) => {
                let details = serde_json::to_value(report).ok();
                Failure { exit: Exit::Refused, message: e.to_string(), details }
            }
            Error::Apply(report) => {
                let details = serde_json::to_value(report).ok();
                Failure { exit: Exit::Error, message: e.to_string(), details }
            }
            Error::Interrupted(report) => {
                let details = serde_json::to_value(report).ok();
                Failure { exit: Exit::Interrupted, message: e.to_string(), details }
            }
            _ => Failure::error(e.to_string()),
        }
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        Failure::from(Error::State(e))
    }
}

/// Where and how output goes.
#[derive(Debug)]
pub(super) struct Ui {
    /// `--json`.
    pub(super) json: bool,
    /// Colour on stdout.
    pub(super) colour_out: bool,
    /// Colour on stderr.
    pub(super) colour_err: bool,
    /// Live progress bar (stderr is a terminal, not `--json`).
    pub(super) progress: bool,
}

impl Ui {
    fn new(json: bool, no_color: bool) -> Self {
        let colour_ok = !no_color && !matches!(std::env::var_os("NO_COLOR"), Some(v) if !v.is_empty());
        let err_tty = std::io::stderr().is_terminal();
        Self {
            json,
            colour_out: colour_ok && std::io::stdout().is_terminal(),
            colour_err: colour_ok && err_tty,
            progress: !json && err_tty,
        }
    }

    /// Text on stdout; a closed pipe is not an error worth dying for.
    pub(super) fn out(&self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(s.as_bytes());
        if !s.ends_with('\n') {
            let _ = o.write_all(b"\n");
        }
        let _ = o.flush();
    }

    /// Text on stderr.
    pub(super) fn err(&self, s: &str) {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(s.as_bytes());
        if !s.ends_with('\n') {
            let _ = e.write_all(b"\n");
        }
    }

    /// One JSON document, pretty-printed, on stdout.
    pub(super) fn json_doc(&self, v: &impl Serialize) {
        match serde_json::to_string_pretty(v) {
            Ok(s) => self.out(&s),
            Err(e) => self.err(&format!("error: cannot serialize the output: {e}")),
        }
    }

    /// One JSON line on stdout (event streams).
    pub(super) fn json_line(&self, v: &impl Serialize) {
        match serde_json::to_string(v) {
            Ok(s) => self.out(&s),
            Err(e) => self.err(&format!("error: cannot serialize the output: {e}")),
        }
    }

    fn failure(&self, f: &Failure) {
        let head = if self.colour_err { "\x1b[31merror\x1b[0m" } else { "error" };
        self.err(&format!("{head}: {}", f.message));
        if self.json {
            self.json_line(&f.to_json());
        }
    }
}

/// Run the parsed command line; render a failure, and return the exit code.
pub(super) fn execute<A, F, R>(cli: Cli<A>, build: F) -> Exit
where
    A: Args,
    F: Fn(&mut App, &A) -> R,
    R: BuildOutcome,
{
    let ui = Ui::new(cli.global.json, cli.global.no_color);
    match dispatch(&ui, cli, build) {
        Ok(exit) => exit,
        Err(f) => {
            ui.failure(&f);
            f.exit
        }
    }
}

fn dispatch<A, F, R>(ui: &Ui, cli: Cli<A>, build: F) -> Result<Exit, Failure>
where
    A: Args,
    F: Fn(&mut App, &A) -> R,
    R: BuildOutcome,
{
    let Cli { global, extra, command } = cli;
    if let Some(name) = &global.stack {
        check_stack_name(name)?;
    }
    if let Command::Templates = command {
        return Ok(templates(ui));
    }
    let params = match &global.params {
        Some(p) => load_params(p)?,
        None => Value::Object(Default::default()),
    };
    let build_app = |stage, preview: Option<String>| -> Result<App, Failure> {
        let mut app = App::new(stage, params.clone(), global.params.clone());
        app.preview = preview;
        match build(&mut app, &extra).into_result() {
            Ok(()) => Ok(app),
            Err(BuildError::Invalid(m)) => Err(match &global.params {
                Some(p) => Failure::invalid(format!("{m} (parameters read from {})", p.display())),
                None => Failure::invalid(m),
            }),
            Err(BuildError::Failed(m)) => Err(Failure::error(m)),
        }
    };
    let build_stage = |stage| build_app(stage, None);
    let mut app = build_stage(global.stage)?;
    if let Command::Preview(PreviewCommand::Up { branch, .. } | PreviewCommand::Down { branch }) = &command {
        // The build must know it builds a preview, whose name follows from the base stack's:
        // build once for that name, then again as the preview.
        let base = select(&app.stacks, global.stack.as_deref())?.name();
        // The base name is checked first, so an invalid one is the name the error shows.
        check_stack_name(&base)?;
        app = build_app(global.stage, Some(preview::slug(&base, branch)?))?;
    }
    if let Command::Dashboard { listen } = command {
        for s in &app.stacks {
            check_stack_name(&s.name())?;
        }
        // The program's providers (the binary's `--provider`); the stacks come from state.
        return dashboard::dashboard(ui, &global, app.providers, listen);
    }
    let policy = policy_of(&global, app.policy.clone())?;
    let knobs = app.knobs.clone().unwrap_or_default();
    let App { stacks, providers, template, .. } = app;
    let stack = select(&stacks, global.stack.as_deref())?;
    check_stack_name(&stack.name())?;
    if let Some(cap) = global.budget {
        stack.budget(cap);
    }
    match command {
        Command::Validate => return validate(ui, &stack, &providers),
        Command::Synth => {
            ui.json_doc(&synth_offline(&stack, &providers)?);
            return Ok(Exit::Success);
        }
        Command::Graph { graph_format } => return graph(ui, &synth_offline(&stack, &providers)?, graph_format),
        Command::Check { report } => return check(ui, &stack, &providers, policy.as_ref(), report),
        Command::Cost { by_tag, bill, markup, csv } => {
            return cost(ui, &stack, &providers, by_tag.as_deref(), bill.as_deref(), markup, csv)
        }
        Command::Parity => {
            let mut stages = Vec::new();
            for stage in [Stage::Dev, Stage::Staging, Stage::Prod] {
                let app = build_stage(stage)?;
                let picked = select(
                    &app.stacks,
                    global.stack.as_deref().map(|n| n.replace(global.stage.as_str(), stage.as_str())).as_deref(),
                )?;
                stages.push((stage, synth_offline(&picked, &providers)?));
            }
            return parity(ui, &stages, &providers, &knobs);
        }
        _ => {}
    }
    if let Command::Dev { probe, ready_timeout } = command {
        let rebuild = || -> Result<Stack, Failure> {
            let params = match &global.params {
                Some(p) => load_params(p)?,
                None => Value::Object(Default::default()),
            };
            let mut app = App::new(global.stage, params, global.params.clone());
            match build(&mut app, &extra).into_result() {
                Ok(()) => {}
                Err(BuildError::Invalid(m) | BuildError::Failed(m)) => return Err(Failure::invalid(m)),
            }
            let stack = select(&app.stacks, global.stack.as_deref())?;
            if let Some(cap) = global.budget {
                stack.budget(cap);
            }
            Ok(stack)
        };
        let args = dev::DevArgs { probe, ready_timeout: Duration::from_secs(ready_timeout) };
        return dev::dev(ui, &global, providers, stack, policy, &args, &rebuild);
    }
    if let Command::Plan { out: Some(out), .. } = &command {
        check_plan_out(&global.state_dir, out)?;
    }
    let mut cx = Ctx::new(ui, &global, providers, stack)?;
    if let Some(p) = policy {
        cx.engine = cx.engine.with_policy(p);
    }
    let mut source = json!({ "params": params, "stage": global.stage.as_str() });
    if let Some(t) = &template {
        source["template"] = Value::String(t.clone());
    }
    cx.source = Some(source);
    if let Command::Preview(p) = &command {
        return match p {
            PreviewCommand::Up { branch, ttl } => {
                cx.preview_up(branch, *ttl, global.budget.unwrap_or(preview::DEFAULT_BUDGET_USD))
            }
            PreviewCommand::Down { branch } => cx.preview_down(branch),
            PreviewCommand::List => cx.preview_list(),
            PreviewCommand::Gc { dry_run } => cx.preview_gc(*dry_run),
        };
    }
    if let Command::Rollback { to, yes } = &command {
        let history = cx.rt.block_on(cx.engine.releases(&cx.name()))?;
        let target = super::releases::rollback_target(&history, to.as_deref()).map_err(Failure::error)?;
        let source = target.source.clone();
        let mut app = App::new(global.stage, source.get("params").cloned().unwrap_or(Value::Null), None);
        match build(&mut app, &extra).into_result() {
            Ok(()) => {}
            Err(BuildError::Invalid(m)) => {
                return Err(Failure::invalid(format!("the parameters recorded with that release are invalid now: {m}")))
            }
            Err(BuildError::Failed(m)) => return Err(Failure::error(m)),
        }
        cx.stack = select(&app.stacks, global.stack.as_deref())?;
        ui.err(&format!("Rolling back to version {} (serving as of {}).", target.version, target.at));
        return cx.apply_source(*yes, source);
    }
    match command {
        Command::Plan { refresh, out, plan_format } => cx.plan(refresh, out.as_deref(), plan_format),
        Command::Apply { yes, refresh, continue_on_error, safety } => {
            cx.apply(yes, refresh, continue_on_error, &safety)
        }
        Command::Destroy { yes, disable_deletion_protection } => cx.destroy(yes, disable_deletion_protection),
        Command::Refresh => cx.refresh(),
        Command::Drift => cx.drift(),
        Command::IamPolicy => cx.iam_policy(),
        Command::Output { output_name } => cx.output(output_name.as_deref()),
        Command::State(StateCommand::List) => cx.state_list(),
        Command::State(StateCommand::Show { resource_path }) => cx.state_show(&resource_path),
        Command::State(StateCommand::Rm { resource_path }) => cx.state_rm(&resource_path),
        Command::ForceUnlock { lock_id } => cx.force_unlock(&lock_id),
        Command::Import { resource_path, id, force } => cx.import(&resource_path, &id, force),
        Command::Releases => cx.releases(),
        Command::History => cx.history(),
        Command::Templates
        | Command::Validate
        | Command::Synth
        | Command::Graph { .. }
        | Command::Check { .. }
        | Command::Cost { .. }
        | Command::Parity
        | Command::Dev { .. }
        | Command::Dashboard { .. }
        | Command::Preview(_)
        | Command::Ci { .. }
        | Command::Rollback { .. } => Ok(Exit::Success),
    }
}

/// Read a parameters file: TOML or JSON, by extension.
fn load_params(path: &Path) -> Result<Value, Failure> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| Failure::error(format!("cannot read parameters file {shown}: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Failure::invalid(format!("invalid parameters file {shown}: it is not UTF-8 text")))?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("toml") => {
            let table: toml::Table =
                toml::from_str(&text).map_err(|e| Failure::invalid(format!("invalid parameters file {shown}: {e}")))?;
            serde_json::to_value(table).map_err(|e| Failure::invalid(format!("invalid parameters file {shown}: {e}")))
        }
        Some("json") => {
            serde_json::from_str(&text).map_err(|e| Failure::invalid(format!("invalid parameters file {shown}: {e}")))
        }
        _ => Err(Failure::invalid(format!(
            "parameters file {shown} has an unsupported extension; use a .toml or .json file"
        ))),
    }
}

/// The stack the command is about: `--stack NAME`, or the only one.
fn select(stacks: &[Stack], wanted: Option<&str>) -> Result<Stack, Failure> {
    let names: Vec<String> = stacks.iter().map(Stack::name).collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(Failure::invalid(format!("two stacks are named `{n}`; give every stack a unique name")));
        }
    }
    match (wanted, stacks) {
        (_, []) => Err(Failure::error(
            "the program defines no stack: call `app.stack(..)` or `app.add(..)` in its build closure",
        )),
        (None, [only]) => Ok(only.clone()),
        (None, _) => Err(Failure::error(format!(
            "the program defines several stacks ({}); choose one with --stack NAME",
            names.join(", ")
        ))),
        (Some(w), _) => {
            stacks.iter().zip(&names).find(|(_, n)| *n == w).map(|(s, _)| s.clone()).ok_or_else(|| {
                Failure::error(format!("no stack named `{w}`; the program defines: {}", names.join(", ")))
            })
        }
    }
}

/// Synthesize against the catalogues only: no state, no cloud.
fn synth_offline(stack: &Stack, providers: &[Provider]) -> Result<Synthesized, Failure> {
    let sim = SimCloud::catalog();
    let mut catalogs: Vec<_> = providers.iter().map(Provider::catalog).collect();
    catalogs.push(&sim);
    Ok(stack.synth(&catalogs)?)
}

/// The policy: `--pack` names (replacing the program's), plus `--suppressions`.
fn policy_of(global: &GlobalArgs, from_app: Option<PolicySet>) -> Result<Option<PolicySet>, Failure> {
    let mut policy = if global.packs.is_empty() {
        from_app
    } else {
        let mut set = PolicySet::new();
        for name in &global.packs {
            let pack = konstacks_templates::packs::by_name(name).ok_or_else(|| {
                let known: Vec<String> =
                    konstacks_templates::packs::all().into_iter().map(|p| p.name.to_string()).collect();
                Failure::invalid(format!("unknown compliance pack `{name}`; available: {}", known.join(", ")))
            })?;
            set = set.pack(pack);
        }
        Some(set)
    };
    if let Some(path) = &global.suppressions {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::error(format!("cannot read suppressions file {shown}: {e}")))?;
        let list: Vec<Suppression> = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text)
                .map_err(|e| Failure::invalid(format!("invalid suppressions file {shown}: {e}")))?
        } else {
            #[derive(serde::Deserialize)]
            struct File {
                #[serde(default)]
                suppress: Vec<Suppression>,
            }
            toml::from_str::<File>(&text)
                .map_err(|e| Failure::invalid(format!("invalid suppressions file {shown}: {e}")))?
                .suppress
        };
        let set = policy.take().ok_or_else(|| {
            Failure::invalid(format!("suppressions file {shown} given, but no compliance pack is checked; add --pack"))
        })?;
        policy = Some(set.suppressions(list));
    }
    Ok(policy)
}

fn catalogs_of(providers: &[Provider]) -> Vec<konstacks_core::provider::Catalog> {
    let mut v: Vec<konstacks_core::provider::Catalog> = providers.iter().map(|p| p.catalog().clone()).collect();
    v.push(SimCloud::catalog());
    v
}

fn check(
    ui: &Ui,
    stack: &Stack,
    providers: &[Provider],
    policy: Option<&PolicySet>,
    evidence: bool,
) -> Result<Exit, Failure> {
    let s = synth_offline(stack, providers)?;
    let policy = policy
        .ok_or_else(|| Failure::invalid("no compliance pack to check; pass --pack (for example --pack baseline)"))?;
    let catalogs = catalogs_of(providers);
    let refs: Vec<&konstacks_core::provider::Catalog> = catalogs.iter().collect();
    let report = policy.check(&s, &refs).with_date(konstacks_core::now_rfc3339().get(..10).unwrap_or_default());
    if evidence {
        if ui.json {
            ui.out(&report.to_json());
        } else {
            ui.out(&report.to_markdown());
        }
    } else if ui.json {
        ui.json_doc(&report);
    } else {
        ui.out(&report.render_human(ui.colour_out));
    }
    Ok(if report.has_errors() { Exit::Refused } else { Exit::Success })
}

fn cost(
    ui: &Ui,
    stack: &Stack,
    providers: &[Provider],
    by_tag: Option<&str>,
    bill: Option<&str>,
    markup: f64,
    csv: bool,
) -> Result<Exit, Failure> {
    let s = synth_offline(stack, providers)?;
    let catalogs = catalogs_of(providers);
    let refs: Vec<&konstacks_core::provider::Catalog> = catalogs.iter().collect();
    let report = konstacks_core::cost::estimate(&s, &refs);
    if let Some(tag) = bill {
        let bill = konstacks_core::cost::billing_by_tag(std::slice::from_ref(&report), tag, markup);
        if csv {
            ui.out(&bill.to_csv());
        } else if ui.json {
            ui.out(&bill.to_json());
        } else {
            ui.out(&bill.to_string());
        }
    } else if let Some(tag) = by_tag {
        let rows = report.by_tag(tag);
        if ui.json {
            ui.json_doc(&rows);
        } else {
            let mut out = format!("Monthly cost of stack {} by `{tag}` (USD):\n", s.name);
            for r in &rows {
                let mut notes = Vec::new();
                if !r.shared.is_empty() {
                    notes.push(format!("incl. {:.2} shared", r.shared_usd));
                }
                if !r.unpriced.is_empty() {
                    notes.push(format!("unpriced: {}", r.unpriced.join(", ")));
                }
                let note = if notes.is_empty() { String::new() } else { format!("  ({})", notes.join("; ")) };
                out.push_str(&format!(
                    "  {:<30} {:>10.2}{note}\n",
                    r.value.as_deref().unwrap_or("(untagged)"),
                    r.monthly_usd
                ));
            }
            ui.out(&out);
        }
    } else if ui.json {
        ui.out(&report.to_json());
    } else {
        ui.out(&report.render());
    }
    Ok(Exit::Success)
}

fn parity(ui: &Ui, stages: &[(Stage, Synthesized)], providers: &[Provider], knobs: &KnobSet) -> Result<Exit, Failure> {
    let catalogs = catalogs_of(providers);
    let refs: Vec<&konstacks_core::provider::Catalog> = catalogs.iter().collect();
    let pairs: Vec<(Stage, &Synthesized)> = stages.iter().map(|(st, s)| (*st, s)).collect();
    let report = konstacks_core::parity::parity(&pairs, knobs, &refs);
    if ui.json {
        ui.out(&report.to_json());
    } else {
        ui.out(&report.render());
    }
    Ok(if report.is_ok() { Exit::Success } else { Exit::Changes })
}

fn validate(ui: &Ui, stack: &Stack, providers: &[Provider]) -> Result<Exit, Failure> {
    let s = synth_offline(stack, providers)?;
    if ui.json {
        ui.json_doc(&json!({ "valid": true, "stack": s.name, "region": s.region, "resources": s.resources.len() }));
    } else {
        ui.out(&format!("valid: stack {} ({} resources, region {})", s.name, s.resources.len(), s.region));
    }
    Ok(Exit::Success)
}

fn graph(ui: &Ui, s: &Synthesized, format: GraphFormat) -> Result<Exit, Failure> {
    if ui.json {
        let nodes: Vec<Value> = s
            .resources
            .iter()
            .map(|r| json!({ "path": r.path, "kind": r.kind, "provider": r.provider, "depends_on": r.depends_on }))
            .collect();
        ui.json_doc(&json!({ "stack": s.name, "nodes": nodes }));
    } else {
        ui.out(&match format {
            GraphFormat::Dot => konstacks_core::graph::to_dot(s),
            GraphFormat::Mermaid => konstacks_core::graph::to_mermaid(s),
        });
    }
    Ok(Exit::Success)
}

fn templates(ui: &Ui) -> Exit {
    let all = konstacks_templates::builtin();
    if ui.json {
        let list: Vec<Value> = all
            .iter()
            .map(|t| json!({ "name": t.name(), "description": t.description(), "default_params": t.default_params() }))
            .collect();
        ui.json_doc(&list);
    } else {
        let width = all.iter().map(|t| t.name().len()).max().unwrap_or(0);
        let mut out = String::new();
        for t in &all {
            out.push_str(&format!("{:<width$}  {}\n", t.name(), t.description()));
        }
        ui.out(&out);
    }
    Exit::Success
}

/// Ask on the terminal; refuse when there is none.
pub(super) fn confirm(ui: &Ui, question: &str, what: &str) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::error(format!(
            "refusing to {what} without confirmation: stdin is not a terminal; pass --yes to {what} non-interactively"
        )));
    }
    ui.err(&format!("\n{question}"));
    {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(b"  Type `yes` to confirm: ");
        let _ = e.flush();
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| Failure::error(format!("cannot read the answer: {e}")))?;
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::error(format!("{what} cancelled; nothing was changed")))
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// What every command needing state or the cloud works with.
pub(super) struct Ctx<'a> {
    pub(super) ui: &'a Ui,
    // Declared before the runtime so it is dropped first.
    pub(super) engine: Engine,
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) stack: Stack,
    /// What the stack was built from (parameters, stage), recorded with each release.
    pub(super) source: Option<Value>,
    /// Labels an apply sets on the stack's state (a preview's branch and expiry).
    pub(super) labels: BTreeMap<String, String>,
}

impl<'a> Ctx<'a> {
    fn new(ui: &'a Ui, global: &GlobalArgs, providers: Vec<Provider>, stack: Stack) -> Result<Self, Failure> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::error(format!("cannot start the async runtime: {e}")))?;
        let config = SimConfig { latency: Duration::from_millis(global.sim_latency_ms), ..Default::default() };
        let sim = Arc::new(SimCloud::open(global.state_dir.join(SIM_FILE), config)?);
        let state: Arc<dyn konstacks_core::state::StateBackend> = match &global.state_url {
            None => Arc::new(LocalBackend::new(&global.state_dir)),
            Some(url) => remote_state(&rt, url)?,
        };
        let mut engine = Engine::new(state).with_provider(sim.provider());
        for p in providers {
            engine = engine.with_provider(p);
        }
        Ok(Self { ui, engine, rt, stack, source: None, labels: BTreeMap::new() })
    }

    pub(super) fn name(&self) -> String {
        self.stack.name()
    }

    /// Fail early with the holder's details when another run holds the lock, so nobody
    /// confirms a plan that cannot be applied.
    pub(super) fn check_lock(&self, stack: &str) -> Result<(), Failure> {
        let lock = self.rt.block_on(self.engine.state_backend().current_lock(stack))?;
        match lock {
            Some(l) => {
                Err(StateError::Locked { stack: stack.to_string(), holder: l.holder, since: l.since, id: l.id }.into())
            }
            None => Ok(()),
        }
    }

    /// Run `fut` while rendering the engine's events.
    pub(super) fn drive<T>(&self, fut: impl Future<Output = T>) -> T {
        let mut rx = self.engine.subscribe();
        let mut renderer = Renderer::new(self.ui);
        let cancel = self.engine.canceller();
        let out = self.rt.block_on(async {
            tokio::pin!(fut);
            let interrupted = interrupt();
            tokio::pin!(interrupted);
            let mut asked = false;
            loop {
                tokio::select! {
                    biased;
                    () = &mut interrupted, if !asked => {
                        // Stop starting work; what is in flight finishes, then the lock is released.
                        asked = true;
                        cancel.cancel();
                        self.ui.err("Interrupted: starting nothing new; waiting for the operations in flight (their intents are journaled)...");
                    }
                    Some(e) = rx.recv() => renderer.event(&e),
                    out = &mut fut => {
                        // Events are sent before the future completes: show the last ones.
                        while let Ok(e) = rx.try_recv() {
                            renderer.event(&e);
                        }
                        break out;
                    }
                }
            }
        });
        renderer.finish();
        out
    }

    pub(super) fn show_plan(&self, plan: &Plan) {
        if self.ui.json {
            self.ui.json_line(&json!({ "event": "plan", "plan": plan }));
        } else {
            self.ui.out(&plan.render(self.ui.colour_out));
        }
    }

    fn show_outputs(&self, outputs: &BTreeMap<String, Value>) {
        if outputs.is_empty() {
            return;
        }
        let width = outputs.keys().map(String::len).max().unwrap_or(0);
        let mut out = String::from("\nOutputs:\n");
        for (k, v) in outputs {
            out.push_str(&format!("  {k:<width$} = {}\n", render_value(v)));
        }
        self.ui.out(&out);
    }

    fn show_report(&self, report: &ApplyReport, what: &str) {
        if self.ui.json {
            self.ui.json_line(&json!({ "event": "report", "report": report }));
            return;
        }
        for r in &report.recovered {
            self.ui.out(&format!("  ! recovered interrupted {:?} of {}: {}", r.interrupted, r.path, r.outcome));
        }
        let mut line = if what == "Destroy" {
            format!("\nDestroy complete: {} deleted", report.deleted.len())
        } else {
            format!(
                "\nApply complete: {} created, {} updated, {} replaced, {} deleted",
                report.created.len(),
                report.updated.len(),
                report.replaced.len(),
                report.deleted.len()
            )
        };
        if !report.adopted.is_empty() {
            line.push_str(&format!(", {} adopted", report.adopted.len()));
        }
        if report.retries > 0 {
            line.push_str(&format!(" ({} retries)", report.retries));
        }
        line.push_str(&format!(" in {:.1}s.", report.elapsed_ms as f64 / 1000.0));
        self.ui.out(&line);
        self.show_outputs(&report.outputs);
    }

    /// Turn the outcome of an apply or destroy into an exit code.
    pub(super) fn finish_run(&self, result: Result<ApplyReport, Error>, what: &str) -> Result<Exit, Failure> {
        match result {
            Ok(report) => {
                self.show_report(&report, what);
                Ok(Exit::Success)
            }
            Err(Error::Apply(report)) => {
                let mut msg = format!("{what} failed: {} operation(s) failed", report.failures.len());
                for f in &report.failures {
                    msg.push_str(&format!("\n  {} ({:?}, {}): {}", f.path, f.op, f.kind, f.message));
                }
                if !report.skipped.is_empty() {
                    msg.push_str(&format!("\n  not started: {}", report.skipped.join(", ")));
                }
                msg.push_str("\nState records everything that was done; run `plan` to see what is left.");
                Err(Failure { exit: Exit::Error, message: msg, details: serde_json::to_value(&report).ok() })
            }
            Err(e) => Err(e.into()),
        }
    }

    fn plan(&self, refresh: bool, out: Option<&Path>, format: PlanFormat) -> Result<Exit, Failure> {
        let s = self.engine.synth(&self.stack)?;
        let plan = self.rt.block_on(self.engine.plan(&s, &PlanOptions { refresh, ..Default::default() }))?;
        if let Some(path) = out {
            let text = serde_json::to_string_pretty(&plan)
                .map_err(|e| Failure::error(format!("cannot serialize the plan: {e}")))?;
            std::fs::write(path, text + "\n")
                .map_err(|e| Failure::error(format!("cannot write the plan to {}: {e}", path.display())))?;
            self.ui.err(&format!("Plan written to {}", path.display()));
        }
        if self.ui.json {
            self.ui.json_doc(&plan);
        } else if format == PlanFormat::Markdown {
            self.ui.out(&plan.render_markdown());
        } else {
            self.ui.out(&plan.render(self.ui.colour_out));
        }
        Ok(if plan.is_empty() { Exit::Success } else { Exit::Changes })
    }

    pub(crate) fn import(&self, path: &str, id: &str, force: bool) -> Result<Exit, Failure> {
        let s = self.engine.synth(&self.stack)?;
        self.check_lock(&s.name)?;
        let plan = self.rt.block_on(self.engine.import(&s, path, id, &ImportOptions { force }))?;
        if self.ui.json {
            self.ui.json_doc(&plan);
        } else {
            self.ui.out(&format!("Imported {id} as {path}. The next apply would make these changes:\n"));
            self.ui.out(&plan.render(self.ui.colour_out));
        }
        Ok(Exit::Success)
    }

    fn apply(&self, yes: bool, refresh: bool, continue_on_error: bool, safety: &SafetyArgs) -> Result<Exit, Failure> {
        let s = self.engine.synth(&self.stack)?;
        self.check_lock(&s.name)?;
        let plan = self.rt.block_on(self.engine.plan(&s, &PlanOptions { refresh, ..Default::default() }))?;
        let unknown: Vec<&str> = safety
            .allow_data_loss
            .iter()
            .map(String::as_str)
            .filter(|p| !plan.changes.iter().any(|c| c.path == *p))
            .collect();
        if !unknown.is_empty() {
            return Err(Failure::invalid(format!(
                "--allow-data-loss names no resource of stack {} or its state: {}; give the logical paths the plan shows",
                s.name,
                unknown.join(", ")
            )));
        }
        self.show_plan(&plan);
        let on_failure =
            if continue_on_error { FailurePolicy::ContinueIndependent } else { FailurePolicy::FinishInFlight };
        let data_loss = if safety.allow_all_data_loss {
            DataLossConsent::All
        } else if safety.allow_data_loss.is_empty() {
            DataLossConsent::Refuse
        } else {
            DataLossConsent::Paths(safety.allow_data_loss.iter().cloned().collect())
        };
        let mut opts = ApplyOptions {
            refresh,
            on_failure,
            data_loss,
            disable_deletion_protection: safety.disable_deletion_protection,
            allow_placement_change: safety.allow_placement_change,
            ignore_untracked: safety.ignore_untracked,
            source: self.source.clone(),
            labels: self.labels.clone(),
            ..Default::default()
        };
        // Refuse before asking: a question whose yes would be refused anyway helps no one.
        let hazards = konstacks_core::engine::guard::hazards(&plan, None, &opts, true);
        if !hazards.is_empty() {
            return Err(Error::Refused(Box::new(Refusal { stack: s.name.clone(), hazards })).into());
        }
        if !plan.is_empty() && !yes {
            confirm(self.ui, &format!("Do you want to apply these changes to stack {}?", s.name), "apply")?;
        }
        opts.expected = Some(plan);
        let result = self.drive(self.engine.apply(&s, &opts));
        self.finish_run(result, "Apply")
    }

    fn destroy(&self, yes: bool, disable_deletion_protection: bool) -> Result<Exit, Failure> {
        let name = self.name();
        self.check_lock(&name)?;
        let plan = self.rt.block_on(self.engine.plan_destroy(&name))?;
        // Interrupted operations found in state still need the run that records their outcome.
        if plan.is_empty() && plan.recovered.is_empty() {
            if self.ui.json {
                self.ui.json_line(&json!({ "event": "plan", "plan": plan }));
            } else {
                self.ui.out(&format!("Nothing to destroy: stack {name} has no resources in state."));
            }
            return Ok(Exit::Success);
        }
        self.show_plan(&plan);
        if !yes {
            confirm(self.ui, &format!("Do you really want to destroy every resource of stack {name}?"), "destroy")?;
        }
        let mut opts = ApplyOptions { disable_deletion_protection, ..Default::default() };
        // Refuse before asking, and before anything is deleted.
        let hazards = konstacks_core::engine::guard::hazards(&plan, None, &opts, false);
        if !hazards.is_empty() {
            return Err(Error::Refused(Box::new(Refusal { stack: name, hazards })).into());
        }
        opts.expected = Some(plan);
        let result = self.drive(self.engine.destroy(&name, &opts));
        self.finish_run(result, "Destroy")
    }

    fn refresh(&self) -> Result<Exit, Failure> {
        let name = self.name();
        let report = self.rt.block_on(self.engine.refresh(&name))?;
        if self.ui.json {
            self.ui.json_doc(&report);
        } else {
            self.ui.out(&report.render());
            if !report.is_clean() {
                self.ui.out(&format!(
                    "Accepted {} drifted resource(s) into the state of {name}; `plan` shows what it takes to restore the stack.",
                    report.items.len()
                ));
            }
        }
        Ok(Exit::Success)
    }

    fn drift(&self) -> Result<Exit, Failure> {
        let report = self.rt.block_on(self.engine.drift(&self.name()))?;
        if self.ui.json {
            self.ui.json_doc(&report);
        } else {
            self.ui.out(&report.render());
        }
        Ok(if report.is_clean() { Exit::Success } else { Exit::Changes })
    }

    #[cfg(feature = "aws")]
    fn iam_policy(&self) -> Result<Exit, Failure> {
        let s = self.engine.synth(&self.stack)?;
        // The policy is often made before any credentials exist: no cloud read it can do without.
        let opts = PlanOptions { offline: true, ..Default::default() };
        let plan = self.rt.block_on(self.engine.plan(&s, &opts))?;
        self.ui.json_doc(&konstacks_providers::aws::iam::iam_policy(&plan));
        Ok(Exit::Success)
    }

    #[cfg(not(feature = "aws"))]
    fn iam_policy(&self) -> Result<Exit, Failure> {
        Err(Failure::error(
            "`iam-policy` needs the AWS backend: rebuild with `cargo build --features aws --bin konstacks`",
        ))
    }

    fn output(&self, wanted: Option<&str>) -> Result<Exit, Failure> {
        let name = self.name();
        let state = self.rt.block_on(self.engine.state(&name))?;
        match wanted {
            Some(w) => {
                let v = state.outputs.get(w).ok_or_else(|| {
                    let known: Vec<&str> = state.outputs.keys().map(String::as_str).collect();
                    if known.is_empty() {
                        Failure::error(format!("stack {name} has no outputs yet; run `apply` first"))
                    } else {
                        Failure::error(format!("stack {name} has no output `{w}`; it has: {}", known.join(", ")))
                    }
                })?;
                match (self.ui.json, v) {
                    (true, v) => self.ui.json_doc(v),
                    (false, Value::String(s)) => self.ui.out(s),
                    (false, v) => self.ui.out(&v.to_string()),
                }
            }
            None if self.ui.json => self.ui.json_doc(&state.outputs),
            None if state.outputs.is_empty() => {
                self.ui.err(&format!("Stack {name} has no outputs yet; run `apply` first."))
            }
            None => {
                let width = state.outputs.keys().map(String::len).max().unwrap_or(0);
                let lines: String =
                    state.outputs.iter().map(|(k, v)| format!("{k:<width$} = {}\n", render_value(v))).collect();
                self.ui.out(&lines);
            }
        }
        Ok(Exit::Success)
    }

    fn state_list(&self) -> Result<Exit, Failure> {
        let state = self.rt.block_on(self.engine.state(&self.name()))?;
        if self.ui.json {
            let list: Vec<Value> =
                state.resources.iter().map(|(p, r)| json!({ "path": p, "kind": r.kind, "id": r.id })).collect();
            self.ui.json_doc(&list);
        } else if !state.resources.is_empty() {
            let lines: String = state.resources.keys().map(|p| format!("{p}\n")).collect();
            self.ui.out(&lines);
        }
        Ok(Exit::Success)
    }

    fn state_show(&self, path: &str) -> Result<Exit, Failure> {
        let name = self.name();
        let state = self.rt.block_on(self.engine.state(&name))?;
        let r = state.resources.get(path).ok_or_else(|| {
            Failure::error(format!(
                "no resource at `{path}` in the state of stack {name}; `state list` shows what there is"
            ))
        })?;
        // `sealed` holds encrypted secrets: not clear text, but nothing a reader needs either.
        self.ui.json_doc(&json!({
            "path": path,
            "kind": r.kind,
            "provider": r.provider,
            "id": r.id,
            "generation": r.generation,
            "inputs": r.inputs,
            "attrs": r.attrs(),
            "depends_on": r.deps,
        }));
        Ok(Exit::Success)
    }

    fn state_rm(&self, path: &str) -> Result<Exit, Failure> {
        let name = self.name();
        let r = self.rt.block_on(self.engine.forget(&name, path))?;
        if self.ui.json {
            self.ui.json_doc(&json!({ "forgotten": { "path": path, "kind": r.kind, "id": r.id } }));
        } else {
            self.ui.out(&format!(
                "Removed {path} ({} {}) from the state of stack {name}; it still exists in the cloud.",
                r.kind, r.id
            ));
        }
        Ok(Exit::Success)
    }

    fn force_unlock(&self, id: &str) -> Result<Exit, Failure> {
        let name = self.name();
        let lock = self.rt.block_on(self.engine.force_unlock(&name, id))?;
        if self.ui.json {
            self.ui.json_doc(&json!({ "unlocked": lock }));
        } else {
            self.ui.out(&format!(
                "Released lock {} of stack {name} (held by {} for {} since {}).",
                lock.id, lock.holder, lock.operation, lock.since
            ));
        }
        Ok(Exit::Success)
    }
}

/// The state backend a `--state-url` names.
#[cfg(feature = "s3-state")]
fn remote_state(
    rt: &tokio::runtime::Runtime,
    url: &str,
) -> Result<Arc<dyn konstacks_core::state::StateBackend>, Failure> {
    let backend = rt.block_on(konstacks_providers::s3_state::S3Backend::from_url(url)).map_err(Failure::invalid)?;
    Ok(Arc::new(backend))
}

#[cfg(not(feature = "s3-state"))]
fn remote_state(
    _rt: &tokio::runtime::Runtime,
    _url: &str,
) -> Result<Arc<dyn konstacks_core::state::StateBackend>, Failure> {
    Err(Failure::invalid(
        "--state-url (or KONSTACKS_STATE_URL) needs the S3 state backend: rebuild with `--features s3-state`",
    ))
}

/// Resolves on the first Ctrl-C (SIGINT) or, on Unix, SIGTERM. A handler that cannot be
/// installed never resolves (the run then cannot be interrupted gracefully, only killed).
async fn interrupt() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::process::ExitCode;

    use konstacks_core::model::{Jurisdiction, Placement, Stage, Vpc};

    use super::*;
    use crate::cli::{parse_jurisdiction, run_from, NoArgs};

    fn stack(name: &str) -> Stack {
        Stack::new(name, Placement::within(Jurisdiction::Eu), Stage::Dev)
    }

    #[test]
    fn the_only_stack_is_the_default_and_several_need_a_choice() {
        assert_eq!(select(&[stack("a")], None).unwrap().name(), "a");
        let two = [stack("a"), stack("b")];
        assert!(select(&two, None).unwrap_err().message.contains("--stack"));
        assert_eq!(select(&two, Some("b")).unwrap().name(), "b");
        assert!(select(&two, Some("c")).unwrap_err().message.contains("a, b"));
        assert_eq!(select(&[stack("a"), stack("a")], None).unwrap_err().exit, Exit::Invalid);
        assert_eq!(select(&[], None).unwrap_err().exit, Exit::Error);
    }

    #[test]
    fn params_files_are_read_by_extension_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("p.toml");
        std::fs::write(&toml, "vm_size = \"large\"\n[nested]\nn = 2\n").unwrap();
        assert_eq!(load_params(&toml).unwrap(), json!({ "vm_size": "large", "nested": { "n": 2 } }));
        let js = dir.path().join("p.JSON");
        std::fs::write(&js, "{\"vm_count\": 3}").unwrap();
        assert_eq!(load_params(&js).unwrap(), json!({ "vm_count": 3 }));
        let yaml = dir.path().join("p.yaml");
        std::fs::write(&yaml, "a: 1").unwrap();
        let e = load_params(&yaml).unwrap_err();
        assert_eq!(e.exit, Exit::Invalid);
        assert!(e.message.contains("p.yaml") && e.message.contains(".toml"));
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "= 1").unwrap();
        let e = load_params(&bad).unwrap_err();
        assert_eq!(e.exit, Exit::Invalid);
        assert!(e.message.contains("bad.toml"), "{}", e.message);
        assert_eq!(load_params(&dir.path().join("missing.toml")).unwrap_err().exit, Exit::Error);
    }

    #[test]
    fn jurisdictions_parse_with_either_separator() {
        assert_eq!(parse_jurisdiction("eu").unwrap(), Jurisdiction::Eu);
        assert_eq!(parse_jurisdiction("South-Africa").unwrap(), Jurisdiction::SouthAfrica);
        assert_eq!(parse_jurisdiction("hong_kong").unwrap(), Jurisdiction::HongKong);
        assert_eq!(parse_jurisdiction("saudi-arabia").unwrap(), Jurisdiction::SaudiArabia);
        assert_eq!(parse_jurisdiction("Taiwan").unwrap(), Jurisdiction::Taiwan);
        assert!(parse_jurisdiction("atlantis").unwrap_err().contains("eu, uk"));
    }

    #[test]
    fn a_program_with_several_stacks_selects_one_with_dash_dash_stack() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".konstacks");
        let run = |extra: &[&str]| {
            let mut args = vec!["prog", "--state-dir", state.to_str().unwrap(), "--json"];
            args.extend_from_slice(extra);
            run_from::<NoArgs, _, _, _, _>(args, |app: &mut App, _: &NoArgs| {
                for name in ["front", "back"] {
                    app.stack(name, Placement::within(Jurisdiction::Eu))
                        .scope("network")
                        .add("vpc", Vpc::new("10.0.0.0/16"));
                }
            })
        };
        assert_eq!(run(&["validate"]), ExitCode::from(1));
        assert_eq!(run(&["validate", "--stack", "back"]), ExitCode::from(0));
        assert_eq!(run(&["--stack", "front", "validate"]), ExitCode::from(0));
        assert_eq!(run(&["validate", "--stack", "nope"]), ExitCode::from(1));
        assert_eq!(run(&["no-such-command"]), ExitCode::from(1));
    }

    #[test]
    fn build_errors_map_to_exit_codes() {
        let run = |r: fn() -> Result<(), BuildError>| {
            run_from::<NoArgs, _, _, _, _>(["prog", "--json", "validate"], move |_: &mut App, _: &NoArgs| r())
        };
        assert_eq!(run(|| Err(BuildError::Invalid("bad".into()))), ExitCode::from(3));
        assert_eq!(run(|| Err(BuildError::Failed("broken".into()))), ExitCode::from(1));
        // No stack registered.
        assert_eq!(run(|| Ok(())), ExitCode::from(1));
    }
}
