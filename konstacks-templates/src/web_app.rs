//! `web-app`: always-on VMs running the user's app, managed Postgres (optionally pgvector),
//! optional Redis. Only 80/443 are open to the world; SSH only from an explicit admin CIDR; the
//! database is reachable only from the app's firewall.

use konstacks_core::model::{
    Bucket, BucketEncryption, Cache, CacheSize, Database, DbSize, Firewall, Image, Ingress, Stack, Stage, Subnet, Vm,
    VmSize, Vpc,
};

use crate::cloud_config::{sh_quote, CloudConfig, WriteFile};
use crate::edge::{self, Serving};
use crate::{grammar, Problems, TemplateContext, TemplateError, TypedTemplate};

/// The `web-app` template.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebApp;

/// Parameters of `web-app`. Every field is optional; stage defaults fill the rest.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WebAppParams {
    /// VPC block.
    pub vpc_cidr: String,
    /// Container image of the app, run with Docker by cloud-init: a reference such as
    /// `ghcr.io/acme/shop:1.4.2` (`[registry/]name[:tag][@digest]`).
    pub app_image: Option<String>,
    /// Or a command line, run by `/bin/sh` from a systemd unit: one line, no control characters.
    pub start_command: Option<String>,
    /// Port the app listens on behind the reverse proxy.
    pub app_port: u16,
    /// VM size slug (default: dev `micro`, staging `small`, prod `medium`).
    pub vm_size: Option<String>,
    /// Number of app VMs (default: 1, prod 2).
    pub vm_count: Option<u32>,
    /// Postgres major version.
    pub postgres_version: String,
    /// Database size slug (default: dev `db-micro`, staging `db-small`, prod `db-medium`).
    pub db_size: Option<String>,
    /// Database storage in GiB.
    pub db_storage_gb: u32,
    /// Enable the pgvector extension at boot of the app.
    pub pgvector: bool,
    /// Add a managed Redis.
    pub redis: bool,
    /// CIDR allowed to SSH in; SSH stays closed without it.
    pub admin_cidr: Option<String>,
    /// Days of database backups (default: dev 1, staging 7, prod 14).
    pub backup_days: Option<u32>,
    /// SSH public keys for the VMs, each one line of a `.pub` file (`ssh-ed25519 AAAA... me@host`).
    pub ssh_keys: Vec<String>,
    /// The domain the app is served on over HTTPS (`shop.example.com`): a managed certificate
    /// for it on a public load balancer, HTTP redirected to HTTPS. Implies `load_balancer`.
    pub domain: Option<String>,
    /// The DNS zone the stack owns (`example.com`): the certificate is validated in it and the
    /// domain's record points at the load balancer. Without it the outputs list the validation
    /// records to create where the domain's DNS is hosted.
    pub zone: Option<String>,
    /// Put the app VMs behind a public load balancer in private subnets without public IPs,
    /// reachable only from the load balancer (on the simulated cloud today; the AWS,
    /// DigitalOcean and GCP backends for load balancers are coming).
    pub load_balancer: bool,
    /// The path the load balancer's health check requests from each VM.
    pub health_path: String,
    /// Add a private, encrypted, versioned bucket for uploads (`UPLOADS_BUCKET` in the app's env).
    pub uploads_bucket: bool,
}

impl Default for WebAppParams {
    fn default() -> Self {
        Self {
            vpc_cidr: "10.0.0.0/16".into(),
            app_image: None,
            start_command: None,
            app_port: 8080,
            vm_size: None,
            vm_count: None,
            postgres_version: "16".into(),
            db_size: None,
            db_storage_gb: 20,
            pgvector: false,
            redis: false,
            admin_cidr: None,
            backup_days: None,
            ssh_keys: Vec::new(),
            domain: None,
            zone: None,
            load_balancer: false,
            health_path: "/".into(),
            uploads_bucket: false,
        }
    }
}

impl WebAppParams {
    /// The serving parameters.
    pub(crate) fn serving(&self) -> Serving<'_> {
        Serving {
            domain: self.domain.as_ref(),
            zone: self.zone.as_ref(),
            load_balancer: self.load_balancer,
            health_path: &self.health_path,
        }
    }
}

/// Where the environment file written by the providers lives (see the VM kind's `env`).
const ENV_FILE: &str = "/etc/konstacks/app.env";
/// The systemd unit that runs `start_command`.
pub const APP_UNIT: &str = "konstacks-app.service";
/// The script holding `start_command`, run by [`APP_UNIT`].
const START_SCRIPT: &str = "/usr/local/lib/konstacks/start-app";
/// The script enabling pgvector, run once with the app's environment.
const PGVECTOR_SCRIPT: &str = "/usr/local/lib/konstacks/enable-pgvector";

/// The app's user data. Parameters appear only as whole argv elements (`app_image`) or as the
/// content of a file (`start_command`), never inside YAML syntax or another command's text.
fn cloud_init(p: &WebAppParams) -> String {
    let mut c = CloudConfig::new();
    c.package_update = true;
    c.package("caddy");
    c.file(WriteFile::deferred(
        "/etc/caddy/Caddyfile",
        "0644",
        format!(":80 {{\n  reverse_proxy 127.0.0.1:{}\n}}\n", p.app_port),
    ));
    c.run(&["systemctl", "restart", "caddy"]);
    if let Some(img) = &p.app_image {
        // A constant pipeline: the only shell command line here, holding no parameter.
        c.run(&["sh", "-c", "curl -fsSL https://get.docker.com | sh"]);
        let publish = format!("127.0.0.1:{port}:{port}", port = p.app_port);
        c.run(&["docker", "run", "-d", "--restart=always", "--env-file", ENV_FILE, "-p", &publish, img]);
    } else if let Some(cmd) = &p.start_command {
        // The command is shell code by design: it gets a script of its own, which systemd runs
        // with the environment file loaded by systemd's own parser (no shell sources it).
        c.file(WriteFile::deferred(START_SCRIPT, "0755", format!("#!/bin/sh\n{cmd}\n")));
        c.file(WriteFile::deferred(
            format!("/etc/systemd/system/{APP_UNIT}"),
            "0644",
            format!(
                "[Unit]\nDescription=App started by Konstacks (start_command)\nWants=network-online.target\nAfter=network-online.target\n\n[Service]\nEnvironmentFile={ENV_FILE}\nExecStart={START_SCRIPT}\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n"
            ),
        ));
        c.run(&["systemctl", "daemon-reload"]);
        c.run(&["systemctl", "enable", "--now", APP_UNIT]);
    }
    if p.pgvector {
        c.package("postgresql-client");
        let sql = sh_quote("CREATE EXTENSION IF NOT EXISTS vector");
        c.file(WriteFile::deferred(
            PGVECTOR_SCRIPT,
            "0755",
            format!(
                "#!/bin/sh\nset -eu\nPGPASSWORD=\"$DATABASE_PASSWORD\" exec psql -h \"$DATABASE_HOST\" -p \"$DATABASE_PORT\" -U admin -d postgres -c {sql}\n"
            ),
        ));
        c.run(&[
            "systemd-run",
            "--wait",
            "--collect",
            &format!("--property=EnvironmentFile={ENV_FILE}"),
            PGVECTOR_SCRIPT,
        ]);
    }
    c.render()
}

/// Check every parameter of web-app, under `prefix` (`params.` or `params.app.`).
pub(crate) fn check_params(pr: &mut Problems, prefix: &str, p: &WebAppParams) {
    pr.check(format!("{prefix}vpc_cidr"), grammar::token(&p.vpc_cidr));
    pr.check_opt(format!("{prefix}app_image"), p.app_image.as_ref(), grammar::image_reference);
    pr.check_opt(format!("{prefix}start_command"), p.start_command.as_ref(), grammar::command_line);
    pr.check_opt(format!("{prefix}vm_size"), p.vm_size.as_ref(), grammar::token);
    match p.vm_count {
        Some(0) => pr.push(format!("{prefix}vm_count"), "vm_count = 0 would serve nothing; use at least 1"),
        Some(n) if n > MAX_VMS => pr.push(
            format!("{prefix}vm_count"),
            format!("vm_count = {n} exceeds the {MAX_VMS} VMs one stack runs; split the fleet over several stacks"),
        ),
        _ => {}
    }
    pr.check(format!("{prefix}postgres_version"), grammar::token(&p.postgres_version));
    pr.check_opt(format!("{prefix}db_size"), p.db_size.as_ref(), grammar::token);
    pr.check_opt(format!("{prefix}admin_cidr"), p.admin_cidr.as_ref(), grammar::token);
    for (i, k) in p.ssh_keys.iter().enumerate() {
        pr.check(format!("{prefix}ssh_keys[{i}]"), grammar::ssh_public_key(k));
    }
    edge::check(pr, prefix, &p.serving());
}

/// Stage-independent guarantees a template built on web-app adds (gdpr-saas uses them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Guarantees {
    /// Backups at least this many days outside prod, and in prod.
    pub(crate) min_backup_days: Option<(u32, u32)>,
    /// The uploads bucket is versioned and encrypted at rest because the template says so,
    /// not only because those are the `Bucket` builder's defaults today.
    pub(crate) protected_uploads: bool,
}

impl TypedTemplate for WebApp {
    type Params = WebAppParams;
    const NAME: &'static str = "web-app";
    const DESCRIPTION: &'static str =
        "Web app: VMs behind 80/443, managed Postgres (pgvector optional), optional Redis, private database subnets";

    fn build(&self, cx: &TemplateContext, p: &WebAppParams) -> Result<Stack, TemplateError> {
        let mut pr = Problems::new(Self::NAME);
        check_params(&mut pr, "params.", p);
        pr.finish()?;
        Ok(build_web_app(cx, p, &Guarantees::default(), cx.new_stack()))
    }
}

/// Most app VMs one web-app stack runs.
pub const MAX_VMS: u32 = 100;

/// The web-app stack, into `stack`.
pub(crate) fn build_web_app(cx: &TemplateContext, p: &WebAppParams, g: &Guarantees, stack: Stack) -> Stack {
    let stage = cx.stage;
    let prod = stage == Stage::Prod;
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new(&p.vpc_cidr));
    // Sub-blocks of the VPC: public 1-2, private 11-12 (of the /16's third octet), whatever
    // the VPC's first two octets are.
    let prefix: String = p.vpc_cidr.split('.').take(2).collect::<Vec<_>>().join(".");
    let public = [
        net.add("public-a", Subnet::new(vpc, format!("{prefix}.1.0/24")).zone(0).public()),
        net.add("public-b", Subnet::new(vpc, format!("{prefix}.2.0/24")).zone(1).public()),
    ];
    let private = [
        net.add("private-a", Subnet::new(vpc, format!("{prefix}.11.0/24")).zone(0)),
        net.add("private-b", Subnet::new(vpc, format!("{prefix}.12.0/24")).zone(1)),
    ];
    let mut web_fw =
        Firewall::new(vpc).allow(Ingress::tcp(80).from_anywhere()).allow(Ingress::tcp(443).from_anywhere());
    if let Some(admin) = &p.admin_cidr {
        web_fw = web_fw.allow(Ingress::tcp(22).from_cidr(admin));
    }
    let serving = p.serving();
    let edge = serving.is_on().then(|| edge::start(&stack, &serving, vpc, public));
    if let Some(e) = &edge {
        // Behind the load balancer the VMs take web traffic from it only.
        web_fw = Firewall::new(vpc).allow(e.backend_rule());
        if let Some(admin) = &p.admin_cidr {
            web_fw = web_fw.allow(Ingress::tcp(22).from_cidr(admin));
        }
    }
    let web_fw = net.add("web-fw", web_fw);
    let db_fw = net.add("db-fw", Firewall::new(vpc).allow(Ingress::tcp(5432).from(web_fw)));

    let data = stack.scope("data");
    let default_db = match stage {
        Stage::Dev => "db-micro",
        Stage::Staging => "db-small",
        _ => "db-medium",
    };
    let mut backups = p.backup_days.unwrap_or(match stage {
        Stage::Dev => 1,
        Stage::Staging => 7,
        _ => 14,
    });
    if let Some((other, in_prod)) = g.min_backup_days {
        backups = backups.max(if prod { in_prod } else { other });
    }
    let db = data.add(
        "postgres",
        Database::postgres(&p.postgres_version, DbSize::from_slug(p.db_size.as_deref().unwrap_or(default_db)), private)
            .storage_gb(p.db_storage_gb)
            .firewall(db_fw)
            .backups(backups)
            .high_availability(prod)
            .deletion_protection(prod),
    );
    let redis = p.redis.then(|| {
        let cache_fw = net.add("cache-fw", Firewall::new(vpc).allow(Ingress::tcp(6379).from(web_fw)));
        data.add(
            "redis",
            Cache::redis("7", CacheSize::from_slug(if prod { "cache-small" } else { "cache-micro" }), private)
                .firewall(cache_fw)
                .replicas(u32::from(prod))
                .high_availability(prod),
        )
    });

    let app = stack.scope("app");
    let size = p.vm_size.clone().unwrap_or_else(|| {
        match stage {
            Stage::Dev => "micro",
            Stage::Staging => "small",
            _ => "medium",
        }
        .to_string()
    });
    let count = p.vm_count.unwrap_or(if prod { 2 } else { 1 });
    let user_data = cloud_init(p);
    let uploads = p.uploads_bucket.then(|| {
        let bucket = Bucket::new();
        let bucket = if g.protected_uploads {
            bucket.versioning(true).encryption(BucketEncryption::ProviderManaged)
        } else {
            bucket
        };
        data.add("uploads", bucket)
    });
    let mut vms = Vec::new();
    for i in 0..count {
        let subnets = if edge.is_some() { private } else { public };
        let mut vm = Vm::new(Image::UbuntuLts, VmSize::from_slug(&size), subnets[(i % 2) as usize])
            .firewall(web_fw)
            .public_ip(edge.is_none())
            .user_data(user_data.clone())
            .env("PORT", p.app_port.to_string())
            .env("DATABASE_HOST", db.host())
            .env("DATABASE_PORT", db.port())
            .env("DATABASE_PASSWORD", db.password());
        if let Some(r) = redis {
            // The port and the auth token too: a cache on a non-default port (live mode's local
            // Redis) or with AUTH (the default generated token) is unreachable without them.
            vm = vm.env("REDIS_HOST", r.host()).env("REDIS_PORT", r.port()).env("REDIS_PASSWORD", r.auth_token());
        }
        if let Some(b) = uploads {
            vm = vm.env("UPLOADS_BUCKET", b.name());
        }
        for k in &p.ssh_keys {
            vm = vm.ssh_key(k);
        }
        let web = app.add(&format!("web-{}", i + 1), vm);
        if edge.is_none() {
            stack.export(format!("web-{}-ip", i + 1), web.public_ip());
        }
        vms.push(web);
    }
    if let Some(e) = edge {
        edge::finish(&stack, &app, "app", &serving, e, vms);
    }
    stack.export("database-host", db.host());
    stack
}
