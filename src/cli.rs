//! The command line: turn any program that builds stacks into a full Konstacks CLI.
//!
//! ```no_run
//! use konstacks::cli::App;
//! use konstacks::prelude::*;
//!
//! fn main() -> std::process::ExitCode {
//!     konstacks::cli::run(|app: &mut App| {
//!         let stack = app.stack("site", Placement::within(Jurisdiction::Eu));
//!         stack.scope("network").add("vpc", Vpc::new("10.0.0.0/16"));
//!     })
//! }
//! ```
//!
//! The program then understands every command (`plan`, `apply`, `destroy`, `refresh`, `drift`,
//! `output`, `state list|show`, `force-unlock`, `graph`, `templates`, `validate`, `synth`, and
//! `dev`, which runs the stack for real on this machine through [`crate::live`]) and the
//! global options (`--state-dir`, `--json`, `--stage`, `--params`, `--stack`, `--sim-latency-ms`,
//! `--no-color`). Extra, program-specific options are a `clap::Args` type given to
//! [`run_with`]. `docs/cli.md` describes the whole surface.
//!
//! Exit codes ([`Exit`]): 0 success or no changes, 1 error, 2 `plan`/`drift`/`parity` found
//! changes, 3 invalid stack or parameters (nothing was sent to any cloud), 4 stack locked by
//! another run, 5 refused by the budget cap or compliance errors (nothing was sent).
//!
//! This module owns argument parsing, the runtime, prompts and rendering. It never changes how
//! the engine plans or applies, and never prints a secret value: everything it shows comes from
//! plans, reports and state, which carry redaction markers only.

mod ci;
mod commands;
mod history;
mod progress;
mod releases;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use konstacks_core::model::{Jurisdiction, Placement, Stack, Stage};
use konstacks_core::parity::KnobSet;
use konstacks_core::policy::PolicySet;
use konstacks_core::provider::Provider;
use serde_json::Value;

/// The exit codes of every Konstacks command line.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success; for `plan` and `drift`, nothing to change.
    Success,
    /// 1: an error (cloud failure, I/O, unusable command line, cancelled confirmation).
    Error,
    /// 2: `plan` or `drift` found changes.
    Changes,
    /// 3: the stack or its parameters are invalid; nothing was sent to any cloud.
    Invalid,
    /// 4: the stack is locked by another run (see `force-unlock`).
    Locked,
    /// 5: refused before any cloud call: over the budget cap, or compliance errors.
    Refused,
    /// 130: interrupted by Ctrl-C (SIGINT) or SIGTERM during `apply` or `destroy`: nothing new was
    /// started, the lock was released, and state records what was done.
    Interrupted,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Error => 1,
            Exit::Changes => 2,
            Exit::Invalid => 3,
            Exit::Locked => 4,
            Exit::Refused => 5,
            Exit::Interrupted => 130,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success; for plan and drift: no changes
  1  error
  2  plan or drift found changes
  3  invalid stack or parameters (nothing was sent to any cloud)
  4  the stack is locked by another run (see force-unlock)
  5  refused before any cloud call: over the budget cap, or compliance errors (see check)";

/// Why the program's build closure could not define its stacks.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The parameters are invalid (exit code 3; nothing is sent to any cloud).
    #[error("{0}")]
    Invalid(String),
    /// Anything else (exit code 1).
    #[error("{0}")]
    Failed(String),
}

impl From<konstacks_templates::TemplateError> for BuildError {
    fn from(e: konstacks_templates::TemplateError) -> Self {
        BuildError::Invalid(e.to_string())
    }
}

impl From<String> for BuildError {
    fn from(message: String) -> Self {
        BuildError::Invalid(message)
    }
}

impl From<&str> for BuildError {
    fn from(message: &str) -> Self {
        BuildError::Invalid(message.to_string())
    }
}

/// What a build closure may return: `()`, or `Result<(), E>` with `E: Into<BuildError>`.
pub trait BuildOutcome {
    /// The outcome as a result.
    fn into_result(self) -> Result<(), BuildError>;
}

impl BuildOutcome for () {
    fn into_result(self) -> Result<(), BuildError> {
        Ok(())
    }
}

impl<E: Into<BuildError>> BuildOutcome for Result<(), E> {
    fn into_result(self) -> Result<(), BuildError> {
        self.map_err(Into::into)
    }
}

/// What the build closure sees: the stage and parameters chosen on the command line, and where
/// it registers its stacks and providers.
#[derive(Debug)]
pub struct App {
    stage: Stage,
    params: Value,
    params_file: Option<PathBuf>,
    stacks: Vec<Stack>,
    providers: Vec<Provider>,
    policy: Option<PolicySet>,
    knobs: Option<KnobSet>,
    template: Option<String>,
    preview: Option<String>,
}

impl App {
    fn new(stage: Stage, params: Value, params_file: Option<PathBuf>) -> Self {
        Self {
            stage,
            params,
            params_file,
            stacks: Vec::new(),
            providers: Vec::new(),
            policy: None,
            knobs: None,
            template: None,
            preview: None,
        }
    }

    /// The preview being built, for `preview up` and `preview down`: its slug, the part of the
    /// preview's stack name after the base stack's (`feature-x` of `shop-dev-feature-x`), a DNS
    /// label. `None` for every other command. A template serves a preview on `<slug>.<zone>`.
    pub fn preview(&self) -> Option<&str> {
        self.preview.as_deref()
    }

    /// Check the stacks against these compliance packs (`--pack` on the command line replaces
    /// them): `plan` shows the result, `apply` refuses on errors, `check` reports.
    pub fn policy(&mut self, policy: PolicySet) {
        self.policy = Some(policy);
    }

    /// Record which template built the stacks; kept in state's `source.template` (with the
    /// stage and parameters) by every apply that succeeds.
    pub fn template(&mut self, name: &str) {
        self.template = Some(name.to_string());
    }

    /// Which fields may differ between dev, staging and prod (for `parity`).
    pub fn parity_knobs(&mut self, knobs: KnobSet) {
        self.knobs = Some(knobs);
    }

    /// The stage chosen with `--stage` (default `dev`).
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The parameters read from `--params FILE` (TOML or JSON); an empty object without it.
    pub fn params(&self) -> &Value {
        &self.params
    }

    /// The parameters as a typed value; the error names the parameters file.
    pub fn params_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, BuildError> {
        serde_json::from_value(self.params.clone()).map_err(|e| {
            let from = self.params_file.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default();
            BuildError::Invalid(format!("invalid parameters{from}: {e}"))
        })
    }

    /// Create a stack at the CLI's stage and register it.
    pub fn stack(&mut self, name: impl Into<String>, placement: Placement) -> Stack {
        let stack = Stack::new(name, placement, self.stage);
        self.stacks.push(stack.clone());
        stack
    }

    /// Register a stack built elsewhere (for example by a template).
    pub fn add(&mut self, stack: Stack) {
        self.stacks.push(stack);
    }

    /// Register another provider; the simulated cloud `sim` is always registered.
    pub fn provider(&mut self, provider: Provider) {
        self.providers.push(provider);
    }

    /// The stacks registered so far.
    pub fn stacks(&self) -> &[Stack] {
        &self.stacks
    }
}

/// No program-specific options (what [`run`] uses).
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct NoArgs {}

/// Parse a jurisdiction name (`eu`, `uk`, `south-africa`, `south_africa`, ...).
pub fn parse_jurisdiction(s: &str) -> Result<Jurisdiction, String> {
    let norm = s.trim().to_ascii_lowercase().replace('-', "_");
    serde_json::from_value(Value::String(norm)).map_err(|_| {
        format!(
            "unknown jurisdiction `{s}` (expected one of: eu, uk, switzerland, south_africa, nigeria, kenya, israel, \
             uae, bahrain, qatar, saudi_arabia, india, singapore, japan, south_korea, indonesia, hong_kong, taiwan, \
             australia, brazil, chile, canada, mexico, us)"
        )
    })
}

fn parse_stage(s: &str) -> Result<Stage, String> {
    s.parse()
}

/// Options every command understands; they may be given before or after the command.
#[derive(Debug, Clone, Args)]
struct GlobalArgs {
    /// Directory holding state, locks and the simulated cloud.
    #[arg(long, value_name = "DIR", default_value = ".konstacks")]
    state_dir: PathBuf,
    /// Machine-readable JSON output.
    #[arg(long)]
    json: bool,
    /// Keep state in S3, DigitalOcean Spaces or another S3-compatible store instead of the state
    /// directory: `s3://bucket/prefix` (needs a binary built with `--features s3-state`; an
    /// endpoint other than AWS comes from AWS_ENDPOINT_URL_S3). Also read from KONSTACKS_STATE_URL.
    #[arg(long, value_name = "URL", env = "KONSTACKS_STATE_URL")]
    state_url: Option<String>,
    /// Latency of every simulated cloud call, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 150)]
    sim_latency_ms: u64,
    /// Never colour the output (also honoured: the NO_COLOR environment variable).
    #[arg(long)]
    no_color: bool,
    /// Stage: dev, staging or prod.
    #[arg(long, value_name = "STAGE", default_value = "dev", value_parser = parse_stage)]
    stage: Stage,
    /// Parameters file, TOML or JSON (by extension).
    #[arg(long, value_name = "FILE")]
    params: Option<PathBuf>,
    /// Which stack, when the program defines several.
    #[arg(long, value_name = "NAME")]
    stack: Option<String>,
    /// Compliance pack to check (repeatable; replaces the program's own): baseline, gdpr, popia,
    /// pdpa, dpdp, lgpd, hardened.
    #[arg(long = "pack", value_name = "PACK")]
    packs: Vec<String>,
    /// Suppressions file (TOML `[[suppress]]` tables or a JSON list) with rule_id, path, reason.
    #[arg(long, value_name = "FILE")]
    suppressions: Option<PathBuf>,
    /// Monthly budget cap in USD: a plan over it is refused before any cloud call.
    #[arg(long, value_name = "USD")]
    budget: Option<f64>,
}

/// Format of `graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// Format of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlanFormat {
    /// Like Terraform's plan, for a terminal.
    Text,
    /// A compact Markdown summary for a pull-request comment.
    Markdown,
}

/// What an apply refuses unless told it may (each refusal names the option that allows it).
#[derive(Debug, Clone, Default, clap::Args)]
struct SafetyArgs {
    /// Let the apply delete or replace the database or cache at PATH, losing its data
    /// (repeatable).
    #[arg(long = "allow-data-loss", value_name = "PATH")]
    allow_data_loss: Vec<String>,
    /// Let the apply delete or replace any database or cache, losing its data.
    #[arg(long)]
    allow_all_data_loss: bool,
    /// Turn deletion protection off right before deleting or replacing a protected resource.
    #[arg(long)]
    disable_deletion_protection: bool,
    /// Let the apply move an applied stack to another region or jurisdiction.
    #[arg(long)]
    allow_placement_change: bool,
    /// Go on although the cloud holds resources tagged for the stack that state does not know.
    #[arg(long)]
    ignore_untracked: bool,
}

#[derive(Debug, Clone, Subcommand)]
enum Command {
    /// Show what apply would change (exit 2 when there are changes).
    Plan {
        /// Read the cloud first so the plan also reverts drift.
        #[arg(long)]
        refresh: bool,
        /// Also write the plan as JSON to this file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// How to print the plan: `text`, or `markdown` for a pull-request comment (counts, cost
        /// delta, compliance verdict, data-loss warnings; never a secret). `--json` prints JSON.
        #[arg(long = "format", value_name = "FORMAT", value_enum, default_value = "text")]
        plan_format: PlanFormat,
    },
    /// Make the cloud match the stack, after confirmation.
    Apply {
        /// Apply without asking.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Read the cloud first so drift is reverted too.
        #[arg(long)]
        refresh: bool,
        /// Keep starting operations that do not depend on a failed one.
        #[arg(long)]
        continue_on_error: bool,
        #[command(flatten)]
        safety: SafetyArgs,
    },
    /// Delete every resource of the stack, after confirmation.
    Destroy {
        /// Destroy without asking.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Turn deletion protection off right before deleting each protected resource
        /// (refused otherwise, before anything is deleted).
        #[arg(long)]
        disable_deletion_protection: bool,
    },
    /// Accept the cloud's current values into state.
    Refresh,
    /// Show what changed in the cloud outside Konstacks (exit 2 when something did).
    Drift,
    /// Print the minimal AWS IAM policy this stack's plan needs.
    IamPolicy,
    /// Print the stack's outputs, or one of them.
    Output {
        /// Print only this output, unquoted.
        #[arg(value_name = "NAME")]
        output_name: Option<String>,
    },
    /// Inspect state.
    #[command(subcommand)]
    State(StateCommand),
    /// Break a lock left by a run that is gone.
    ForceUnlock {
        /// The lock id (printed by the run that found the stack locked).
        #[arg(value_name = "ID")]
        lock_id: String,
    },
    /// Adopt an existing cloud resource into the stack by its provider id, then show what the
    /// next apply would change.
    Import {
        /// The logical path the stack declares for it (`network/vpc`).
        #[arg(value_name = "PATH")]
        resource_path: String,
        /// The provider's id of the existing resource.
        #[arg(value_name = "ID")]
        id: String,
        /// Take the resource over even if its tags say it belongs to another stack.
        #[arg(long)]
        force: bool,
    },
    /// Preview environments: the stack once more per branch, under a name made from the branch,
    /// with a budget cap (`--budget`, default 50 USD a month) and an expiry.
    #[command(subcommand)]
    Preview(PreviewCommand),
    /// `ci init --provider github`: write a workflow that plans pull requests, releases merges
    /// to staging then production, runs previews and checks drift (`ci init --help`).
    Ci {
        /// `init` and its options.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
    /// List the stack's releases: when, who, version from and to, result, duration.
    Releases,
    /// The stack's audit trail, oldest first: every apply, destroy, import, refresh,
    /// force-unlock, release and drift check with who ran it, the result, the duration and the
    /// monthly cost before and after (`--json`: the entries as a JSON array).
    History,
    /// Roll back: apply, as a new release, the parameters recorded with an earlier succeeded
    /// release (the one before the version serving now, or `--to VERSION`).
    Rollback {
        /// The version to go back to.
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Roll back without asking.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Print the dependency graph.
    Graph {
        /// Output format.
        #[arg(long = "format", value_name = "FORMAT", value_enum, default_value = "dot")]
        graph_format: GraphFormat,
    },
    /// Check the stack against its compliance packs (exit 5 on errors); `--report` prints the
    /// evidence report (Markdown, or JSON with --json).
    Check {
        /// Print the evidence report for auditors.
        #[arg(long)]
        report: bool,
    },
    /// Estimated monthly cost per resource and in total.
    Cost {
        /// Roll up by the value of this tag (for example `client`).
        #[arg(long, value_name = "TAG")]
        by_tag: Option<String>,
        /// A bill per value of this tag, with --markup.
        #[arg(long, value_name = "TAG")]
        bill: Option<String>,
        /// Markup percentage on the bill.
        #[arg(long, value_name = "PERCENT", default_value_t = 0.0)]
        markup: f64,
        /// The bill as CSV.
        #[arg(long)]
        csv: bool,
    },
    /// Compare dev, staging and prod of the stack side by side (exit 2 on parity drift).
    Parity,
    /// List the built-in templates.
    Templates,
    /// Validate the stack only (exit 3 when invalid); nothing is sent to any cloud.
    Validate,
    /// Print the synthesized stack as JSON.
    Synth,
    /// Serve the web dashboard over every stack of the state directory (docs/dashboard.md).
    /// Prints `dashboard: URL` once: the login URL with a generated token, or the address when
    /// KONSTACKS_DASHBOARD_TOKEN is set (required to listen beyond 127.0.0.1; label it with
    /// KONSTACKS_DASHBOARD_TOKEN_LABEL). Ctrl-C stops it (exit 0).
    Dashboard {
        /// Address to listen on (port 0 picks a free one, printed).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
        listen: std::net::SocketAddr,
    },
    /// Run the stack for real on this machine until stopped: apps as processes, load balancers
    /// as loopback reverse proxies, local PostgreSQL/Redis where installed (docs/live.md).
    /// Prints `serving: URL`; a changed parameters file is applied as a release; Ctrl-C stops
    /// every process and listener it started (exit 0).
    Dev {
        /// Apply, request the URL once through the live load balancer, print the status and
        /// body, stop everything: exit 0 on a 2xx answer, 1 otherwise.
        #[arg(long)]
        probe: bool,
        /// Seconds to wait for the load balancers' targets to become healthy after the first apply.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        ready_timeout: u64,
    },
}

#[derive(Debug, Clone, Subcommand)]
enum PreviewCommand {
    /// Create or update the branch's preview (applied without asking).
    Up {
        /// The branch (any text: it is sanitised into the stack name).
        #[arg(long, value_name = "NAME")]
        branch: String,
        /// How long until `preview gc` may destroy it: `90s`, `30m`, `72h`, `7d`.
        #[arg(long, value_name = "DURATION", default_value = "72h", value_parser = commands::parse_ttl)]
        ttl: std::time::Duration,
    },
    /// Destroy the branch's preview (without asking) and forget it.
    Down {
        /// The branch.
        #[arg(long, value_name = "NAME")]
        branch: String,
    },
    /// List the previews with their branch, age, cost, budget and expiry.
    List,
    /// Destroy every expired preview.
    Gc {
        /// Only list the expired previews.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
enum StateCommand {
    /// List the logical paths of the resources in state.
    List,
    /// Show one resource of state as JSON.
    Show {
        /// Logical path (`network/vpc`).
        #[arg(value_name = "PATH")]
        resource_path: String,
    },
    /// Drop one resource from state, leaving it in the cloud untouched.
    Rm {
        /// Logical path (`network/vpc`).
        #[arg(value_name = "PATH")]
        resource_path: String,
    },
}

#[derive(Debug, Parser)]
#[command(about = "Plan and apply Konstacks stacks.", after_help = EXIT_CODES_HELP, version)]
struct Cli<A: Args> {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    extra: A,
    #[command(subcommand)]
    command: Command,
}

/// Run the command line of a program whose stacks `build` defines. Builds its own multi-thread
/// runtime: call it from a plain `fn main`.
pub fn run<F, R>(build: F) -> ExitCode
where
    F: Fn(&mut App) -> R,
    R: BuildOutcome,
{
    run_with::<NoArgs, _, _>(|app, _| build(app))
}

/// Like [`run`], with program-specific options `A` (a `clap::Args` type) added to every
/// command; `build` receives them parsed. Its options are accepted before or after the
/// command; their long names must not repeat the CLI's own (`--json`, `--stage`, `--params`,
/// `--stack`, `--state-dir`, `--sim-latency-ms`, `--no-color`, `--yes`, `--refresh`, `--out`,
/// `--continue-on-error`, `--format`).
pub fn run_with<A, F, R>(build: F) -> ExitCode
where
    A: Args,
    F: Fn(&mut App, &A) -> R,
    R: BuildOutcome,
{
    run_from(std::env::args_os(), build)
}

/// Like [`run_with`], over explicit arguments (the first one is the program name).
pub fn run_from<A, I, T, F, R>(args: I, build: F) -> ExitCode
where
    A: Args,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
    F: Fn(&mut App, &A) -> R,
    R: BuildOutcome,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let bin = args
        .first()
        .and_then(|a| Path::new(a).file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "konstacks".to_string());
    // `--json` anywhere among the options (not after `--`) asks for JSON errors, parse errors too.
    let json = args.iter().skip(1).take_while(|a| a.as_os_str() != "--").any(|a| a.as_os_str() == "--json");
    // Every option is accepted before or after the command.
    let cmd =
        Cli::<A>::command().bin_name(bin.clone()).mut_args(|a| if a.is_positional() { a } else { a.global(true) });
    let parsed = cmd.try_get_matches_from(args).and_then(|m| Cli::<A>::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => Exit::Success.into(),
                _ if json => commands::json_parse_error(&e).into(),
                _ => Exit::Error.into(),
            };
        }
    };
    if let Command::Ci { args } = &cli.command {
        return ci_command(&bin, args).into();
    }
    commands::execute(cli, build).into()
}

/// `ci init ...`: write (or print) the CI workflow.
fn ci_command(bin: &str, args: &[OsString]) -> Exit {
    if args.first().is_none_or(|a| a != "init") {
        eprintln!("error: the only `ci` command is `ci init --provider github`; see `{bin} ci init --help`");
        return Exit::Error;
    }
    let parsed = match <ci::CiInit as Parser>::try_parse_from(args) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => Exit::Success,
                _ => Exit::Error,
            };
        }
    };
    if let Err(problems) = ci::check(&parsed) {
        eprintln!("error: cannot write the workflow:\n{problems}");
        return Exit::Invalid;
    }
    let program = ci::Program { bin: bin.to_string(), version: env!("CARGO_PKG_VERSION").to_string() };
    let text = ci::github_workflow(&parsed, &program);
    if parsed.stdout {
        print!("{text}");
        return Exit::Success;
    }
    let out = &parsed.output;
    if out.exists() && !parsed.force {
        eprintln!("error: {} exists; give --force to replace it, or --stdout to see the new one", out.display());
        return Exit::Error;
    }
    let written = out.parent().filter(|p| !p.as_os_str().is_empty()).map_or(Ok(()), std::fs::create_dir_all);
    match written.and_then(|()| std::fs::write(out, &text)) {
        Ok(()) => {
            eprintln!(
                "Wrote {}. Set the secrets and variables its first lines name, protect the `production` \
                 environment with required reviewers, and push.",
                out.display()
            );
            Exit::Success
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", out.display());
            Exit::Error
        }
    }
}
