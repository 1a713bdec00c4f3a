//! `ci init --provider github`: one GitHub Actions workflow that runs the program's own
//! commands. On a pull request it validates, plans with cost and compliance and keeps one
//! Markdown comment up to date, and brings the branch's preview up (down when the pull request
//! closes); on a push to the main branch it applies to staging, then to production behind the
//! `production` environment (its required reviewers are the approval step); on a schedule it
//! checks production for drift (a failing job when something drifted) and collects expired
//! previews. Every step is a documented command that runs the same way on a laptop.
//!
//! It is parsed before the program's own options (`--provider` names the CI here, not a
//! cloud), so `konstacks ci init --provider github --template web-app --cloud aws` works for
//! the built-in templates and `my-stacks ci init --provider github` for a program of one's own.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Where the workflow runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum CiProvider {
    /// GitHub Actions.
    Github,
}

/// The cloud the stack goes to: which credentials the workflow sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum CiCloud {
    /// The embedded simulated cloud (to try the workflow; nothing persists between runs).
    Sim,
    /// AWS through OpenID Connect (a role to assume), state in S3.
    Aws,
    /// DigitalOcean with an API token secret (it has no OpenID Connect), state in Spaces.
    Digitalocean,
    /// GCP through Workload Identity Federation, state in Cloud Storage's S3-compatible API.
    Gcp,
}

impl CiCloud {
    fn name(self) -> &'static str {
        match self {
            CiCloud::Sim => "sim",
            CiCloud::Aws => "aws",
            CiCloud::Digitalocean => "digitalocean",
            CiCloud::Gcp => "gcp",
        }
    }
}

/// `ci init`'s options.
#[derive(Debug, Clone, Parser)]
#[command(name = "ci init", about = "Write a CI workflow that plans pull requests, applies merges and runs previews.")]
pub(super) struct CiInit {
    /// The CI system.
    #[arg(long, value_enum)]
    pub(super) provider: CiProvider,
    /// A built-in template to deploy with the `konstacks` binary (installed by the workflow);
    /// without it the workflow runs this repository's own program with `cargo run`.
    #[arg(long, value_name = "NAME")]
    pub(super) template: Option<String>,
    /// The cloud the stacks go to.
    #[arg(long, value_enum, default_value = "aws")]
    pub(super) cloud: CiCloud,
    /// The branch whose pushes are released to staging then production.
    #[arg(long, value_name = "BRANCH", default_value = "main")]
    pub(super) main_branch: String,
    /// No preview environments for pull requests.
    #[arg(long)]
    pub(super) no_previews: bool,
    /// Monthly budget cap of each preview, in USD.
    #[arg(long, value_name = "USD", default_value_t = 50.0)]
    pub(super) preview_budget: f64,
    /// How long a preview lives without a push before `preview gc` destroys it.
    #[arg(long, value_name = "DURATION", default_value = "72h")]
    pub(super) preview_ttl: String,
    /// A directory of parameters files, one per stage (`DIR/dev.toml`, `DIR/staging.toml`,
    /// `DIR/prod.toml`), passed with `--params` to every command.
    #[arg(long, value_name = "DIR")]
    pub(super) params_dir: Option<String>,
    /// Where to write the workflow.
    #[arg(long, value_name = "FILE", default_value = ".github/workflows/konstacks.yml")]
    pub(super) output: PathBuf,
    /// Print the workflow instead of writing it.
    #[arg(long)]
    pub(super) stdout: bool,
    /// Replace an existing workflow file.
    #[arg(long)]
    pub(super) force: bool,
}

/// What the workflow needs to know about the program it runs.
#[derive(Debug, Clone)]
pub(super) struct Program {
    /// The binary's name (`konstacks`, or the repository's own).
    pub(super) bin: String,
    /// The version of this binary (installed by the workflow for built-in templates).
    pub(super) version: String,
}

/// Everything a step needs: how to invoke the program for a stage.
struct Ctx<'a> {
    o: &'a CiInit,
    p: &'a Program,
}

impl Ctx<'_> {
    /// The command line of the program, options first.
    fn cmd(&self, stage: &str) -> String {
        let mut c = match &self.o.template {
            Some(t) => format!("konstacks --template {t} --provider {}", self.o.cloud.name()),
            None => format!("cargo run --quiet --release --locked --bin {} --", self.p.bin),
        };
        let _ = write!(c, " --stage {stage}");
        if let Some(d) = &self.o.params_dir {
            let _ = write!(c, " --params {}/{stage}.toml", d.trim_end_matches('/'));
        }
        c
    }

    fn features(&self) -> &'static str {
        match self.o.cloud {
            CiCloud::Sim => "",
            CiCloud::Aws => "aws,s3-state",
            CiCloud::Digitalocean => "digitalocean,s3-state",
            CiCloud::Gcp => "gcp,s3-state",
        }
    }

    fn needs_oidc(&self) -> bool {
        matches!(self.o.cloud, CiCloud::Aws | CiCloud::Gcp)
    }

    /// Checkout, toolchain cache, the program, the cloud's credentials.
    fn setup(&self, out: &mut String) {
        out.push_str("      - uses: actions/checkout@v4\n");
        out.push_str("      - uses: Swatinem/rust-cache@v2\n");
        if self.o.template.is_some() {
            let features = self.features();
            let flags = if features.is_empty() { String::new() } else { format!(" --features {features}") };
            let _ = writeln!(
                out,
                "      - name: Install konstacks\n        run: cargo install konstacks --version {} --locked{flags}",
                self.p.version
            );
        }
        match self.o.cloud {
            CiCloud::Sim => {}
            CiCloud::Aws => out.push_str(
                "      - name: AWS credentials (OpenID Connect, no stored keys)\n\
                 \x20       uses: aws-actions/configure-aws-credentials@v4\n\
                 \x20       with:\n\
                 \x20         role-to-assume: ${{ secrets.KONSTACKS_AWS_ROLE_ARN }}\n\
                 \x20         aws-region: ${{ secrets.AWS_REGION }}\n",
            ),
            CiCloud::Gcp => out.push_str(
                "      - name: GCP credentials (Workload Identity Federation, no stored keys)\n\
                 \x20       uses: google-github-actions/auth@v2\n\
                 \x20       with:\n\
                 \x20         workload_identity_provider: ${{ secrets.GCP_WORKLOAD_IDENTITY_PROVIDER }}\n\
                 \x20         service_account: ${{ secrets.GCP_SERVICE_ACCOUNT }}\n",
            ),
            CiCloud::Digitalocean => {}
        }
    }

    /// Job-level permissions: read the code, plus what the job needs.
    fn permissions(&self, out: &mut String, extra: &[&str]) {
        out.push_str("    permissions:\n      contents: read\n");
        for e in extra {
            let _ = writeln!(out, "      {e}");
        }
        if self.needs_oidc() {
            out.push_str("      id-token: write\n");
        }
    }

    /// Environment shared by every job: the state key, the state location, cloud settings.
    fn env(&self, out: &mut String) {
        out.push_str("env:\n  CARGO_TERM_COLOR: never\n  NO_COLOR: \"1\"\n");
        out.push_str("  KONSTACKS_SECRET_KEY: ${{ secrets.KONSTACKS_SECRET_KEY }}\n");
        match self.o.cloud {
            CiCloud::Sim => {}
            CiCloud::Aws => {
                out.push_str("  KONSTACKS_STATE_URL: s3://${{ secrets.KONSTACKS_STATE_BUCKET }}/konstacks\n");
            }
            CiCloud::Digitalocean => out.push_str(
                "  DIGITALOCEAN_TOKEN: ${{ secrets.DIGITALOCEAN_TOKEN }}\n\
                 \x20 KONSTACKS_STATE_URL: s3://${{ secrets.KONSTACKS_STATE_BUCKET }}/konstacks\n\
                 \x20 AWS_ENDPOINT_URL_S3: https://${{ secrets.SPACES_REGION }}.digitaloceanspaces.com\n\
                 \x20 AWS_REGION: us-east-1\n\
                 \x20 AWS_ACCESS_KEY_ID: ${{ secrets.SPACES_ACCESS_KEY_ID }}\n\
                 \x20 AWS_SECRET_ACCESS_KEY: ${{ secrets.SPACES_SECRET_ACCESS_KEY }}\n",
            ),
            CiCloud::Gcp => out.push_str(
                "  GOOGLE_CLOUD_PROJECT: ${{ secrets.GOOGLE_CLOUD_PROJECT }}\n\
                 \x20 GOOGLE_CLOUD_REGION: ${{ secrets.GOOGLE_CLOUD_REGION }}\n\
                 \x20 KONSTACKS_STATE_URL: s3://${{ secrets.KONSTACKS_STATE_BUCKET }}/konstacks\n\
                 \x20 AWS_ENDPOINT_URL_S3: https://storage.googleapis.com\n\
                 \x20 AWS_REGION: auto\n\
                 \x20 AWS_ACCESS_KEY_ID: ${{ secrets.GCS_HMAC_ACCESS_ID }}\n\
                 \x20 AWS_SECRET_ACCESS_KEY: ${{ secrets.GCS_HMAC_SECRET }}\n",
            ),
        }
    }

    fn plan_job(&self, out: &mut String) {
        out.push_str(
            "  plan:\n    name: Plan (comment on the pull request)\n    \
             if: github.event_name == 'pull_request' && github.event.action != 'closed'\n    \
             runs-on: ubuntu-latest\n",
        );
        self.permissions(out, &["pull-requests: write"]);
        out.push_str("    steps:\n");
        self.setup(out);
        let prod = self.cmd("prod");
        let _ = write!(
            out,
            "      - name: Validate\n        run: {prod} validate\n\
             \x20     - name: Plan production with cost and compliance\n        run: |\n\
             \x20         set +e\n\
             \x20         {prod} plan --format markdown > plan.md\n\
             \x20         code=$?\n\
             \x20         set -e\n\
             \x20         cat plan.md\n\
             \x20         # 0: no changes, 2: changes; anything else is an error.\n\
             \x20         if [ \"$code\" -ne 0 ] && [ \"$code\" -ne 2 ]; then exit \"$code\"; fi\n\
             \x20     - name: Post the plan as one comment, updated on every push\n        env:\n\
             \x20         GH_TOKEN: ${{{{ github.token }}}}\n\
             \x20         PR: ${{{{ github.event.pull_request.number }}}}\n        run: |\n\
             \x20         marker=\"$(head -n 1 plan.md)\"\n\
             \x20         id=\"$(gh api \"repos/$GITHUB_REPOSITORY/issues/$PR/comments\" --paginate \\\n\
             \x20           --jq \".[] | select(.body | startswith(\\\"$marker\\\")) | .id\" | head -n 1)\"\n\
             \x20         if [ -n \"$id\" ]; then\n\
             \x20           gh api -X PATCH \"repos/$GITHUB_REPOSITORY/issues/comments/$id\" -F body=@plan.md\n\
             \x20         else\n\
             \x20           gh api -X POST \"repos/$GITHUB_REPOSITORY/issues/$PR/comments\" -F body=@plan.md\n\
             \x20         fi\n"
        );
    }

    fn preview_jobs(&self, out: &mut String) {
        let dev = self.cmd("dev");
        out.push_str(
            "\n  preview:\n    name: Preview environment of the branch\n    \
             if: github.event_name == 'pull_request' && github.event.action != 'closed'\n    \
             runs-on: ubuntu-latest\n    environment: preview\n",
        );
        self.permissions(out, &[]);
        out.push_str("    steps:\n");
        self.setup(out);
        let _ = write!(
            out,
            "      - name: Bring the preview up\n        env:\n\
             \x20         BRANCH: ${{{{ github.head_ref }}}}\n        \
             run: {dev} --budget {:.0} preview up --branch \"$BRANCH\" --ttl {}\n",
            self.o.preview_budget, self.o.preview_ttl
        );
        out.push_str(
            "\n  preview-down:\n    name: Destroy the preview when the pull request closes\n    \
             if: github.event_name == 'pull_request' && github.event.action == 'closed'\n    \
             runs-on: ubuntu-latest\n    environment: preview\n",
        );
        self.permissions(out, &[]);
        out.push_str("    steps:\n");
        self.setup(out);
        let _ = write!(
            out,
            "      - name: Destroy the preview\n        env:\n\
             \x20         BRANCH: ${{{{ github.head_ref }}}}\n        run: {dev} preview down --branch \"$BRANCH\"\n"
        );
    }

    fn release_jobs(&self, out: &mut String) {
        for (job, stage, needs, title) in [
            ("staging", "staging", None, "Release to staging"),
            ("production", "prod", Some("staging"), "Release to production (after approval)"),
        ] {
            let _ = write!(out, "\n  {job}:\n    name: {title}\n    if: github.event_name == 'push'\n");
            if let Some(n) = needs {
                let _ = writeln!(out, "    needs: {n}");
            }
            let _ = writeln!(out, "    runs-on: ubuntu-latest");
            if job == "production" {
                out.push_str("    # Required reviewers on the `production` environment are the approval step.\n");
            }
            let _ = writeln!(out, "    environment: {job}\n    concurrency: konstacks-{job}");
            self.permissions(out, &[]);
            out.push_str("    steps:\n");
            self.setup(out);
            let cmd = self.cmd(stage);
            let _ = write!(
                out,
                "      - name: Apply as a release (new instances in before old ones leave, rolled back when unhealthy)\n        \
                 run: {cmd} apply --yes\n\
                 \x20     - name: Releases so far\n        run: {cmd} releases\n"
            );
        }
    }

    fn schedule_jobs(&self, out: &mut String) {
        out.push_str(
            "\n  drift:\n    name: Drift check of production (fails when something changed outside Konstacks)\n    \
             if: github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'\n    \
             runs-on: ubuntu-latest\n",
        );
        self.permissions(out, &[]);
        out.push_str("    steps:\n");
        self.setup(out);
        let _ = writeln!(
            out,
            "      - name: Drift (exit 2 when something drifted)\n        run: {} drift",
            self.cmd("prod")
        );
        if self.o.no_previews {
            return;
        }
        out.push_str(
            "\n  preview-gc:\n    name: Destroy expired previews\n    \
             if: github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'\n    \
             runs-on: ubuntu-latest\n    environment: preview\n",
        );
        self.permissions(out, &[]);
        out.push_str("    steps:\n");
        self.setup(out);
        let _ = writeln!(out, "      - name: Collect expired previews\n        run: {} preview gc", self.cmd("dev"));
    }
}

/// The GitHub Actions workflow.
pub(super) fn github_workflow(o: &CiInit, p: &Program) -> String {
    let cx = Ctx { o, p };
    let what = match &o.template {
        Some(t) => format!("template {t} on {}", o.cloud.name()),
        None => format!("the program `{}` on {}", p.bin, o.cloud.name()),
    };
    let mut out = format!(
        "# Written by `{} ci init --provider github` ({what}).\n\
         # Pull requests: validate, plan with cost and compliance as one comment{}.\n\
         # Pushes to {}: apply to staging, then to production after approval.\n\
         # Daily: drift check of production{}.\n\
         # Repository secrets it reads: KONSTACKS_SECRET_KEY (state encryption key){}.\n",
        p.bin,
        if o.no_previews { "" } else { ", preview environment per branch" },
        o.main_branch,
        if o.no_previews { "" } else { ", expired previews destroyed" },
        match o.cloud {
            CiCloud::Sim => "",
            CiCloud::Aws => ", KONSTACKS_AWS_ROLE_ARN, AWS_REGION, KONSTACKS_STATE_BUCKET",
            CiCloud::Digitalocean => {
                ", DIGITALOCEAN_TOKEN, SPACES_ACCESS_KEY_ID, SPACES_SECRET_ACCESS_KEY, SPACES_REGION, \
                 KONSTACKS_STATE_BUCKET"
            }
            CiCloud::Gcp => {
                ", GCP_WORKLOAD_IDENTITY_PROVIDER, GCP_SERVICE_ACCOUNT, GOOGLE_CLOUD_PROJECT, GOOGLE_CLOUD_REGION, \
                 KONSTACKS_STATE_BUCKET, GCS_HMAC_ACCESS_ID, GCS_HMAC_SECRET"
            }
        }
    );
    let _ = write!(
        out,
        "name: konstacks\n\non:\n  pull_request:\n    types: [opened, synchronize, reopened, closed]\n  \
         push:\n    branches: [{}]\n  schedule:\n    - cron: \"17 6 * * *\"\n  workflow_dispatch:\n\n\
         permissions:\n  contents: read\n\n",
        yaml_scalar(&o.main_branch)
    );
    cx.env(&mut out);
    out.push_str("\njobs:\n");
    cx.plan_job(&mut out);
    if !o.no_previews {
        cx.preview_jobs(&mut out);
    }
    cx.release_jobs(&mut out);
    cx.schedule_jobs(&mut out);
    out
}

/// A branch name as a YAML flow scalar.
fn yaml_scalar(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Check what a workflow cannot be written from: an unknown template, a bad duration, a
/// branch name GitHub would not accept.
pub(super) fn check(o: &CiInit) -> Result<(), String> {
    let mut problems = Vec::new();
    if let Some(t) = &o.template {
        if konstacks_templates::find(t).is_err() {
            let names: Vec<&str> = konstacks_templates::builtin().iter().map(|t| t.name()).collect();
            problems.push(format!("--template: no built-in template `{t}`; there are: {}", names.join(", ")));
        }
    }
    if super::commands::parse_ttl(&o.preview_ttl).is_err() {
        problems.push(format!("--preview-ttl: `{}` is not a duration such as 72h", o.preview_ttl));
    }
    if o.main_branch.is_empty() || o.main_branch.chars().any(|c| c.is_control() || c == ' ' || c == ':') {
        problems.push(format!("--main-branch: `{}` is not a branch name", o.main_branch.escape_debug()));
    }
    if let Some(d) = &o.params_dir {
        let safe = |c: char| c.is_ascii_alphanumeric() || "/._-".contains(c);
        if d.is_empty() || !d.chars().all(safe) {
            problems.push(format!(
                "--params-dir: `{}` must be a relative path of a-z, 0-9, '/', '.', '_' and '-'",
                d.escape_debug()
            ));
        }
    }
    if !(o.preview_budget.is_finite() && o.preview_budget > 0.0) {
        problems.push("--preview-budget: give a positive amount of USD".to_string());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
