//! `web-app`: always-on VMs running the user's app, managed Postgres (optionally pgvector),
//! optional Redis. Only 80/443 are open to the world; SSH only from an explicit admin CIDR; the
//! database is reachable only from the app's firewall.

use konstacks_core::model::{
    App, Bucket, BucketEncryption, Cache, CacheSize, Database, DbSize, Firewall, Image, Ingress, Stack, Stage, Subnet,
    Vm, VmSize, Vpc,
};

pub use crate::app_boot::APP_UNIT;
use crate::app_boot::{self, ENV_FILE};
use crate::cloud_config::{sh_quote, CloudConfig, WriteFile};
use crate::edge::{self, Serving, BACKEND_PORT};
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
    /// Container image of the app, run by Docker (the OS package) as the systemd unit
    /// `konstacks-app.service` with the app's environment file: a reference such as
    /// `ghcr.io/acme/shop:1.4.2` (`[registry/]name[:tag][@digest]`).
    pub app_image: Option<String>,
    /// Or a command line, run by `/bin/sh` from the same systemd unit: one line, no control
    /// characters. `app_image` wins when both are given.
    pub start_command: Option<String>,
    /// The version of the app (`1.4.2`; default: the image's tag, or `1` for a command): 1 to
    /// 128 ASCII letters, digits, `.`, `_`, `-` and `+`. The app gets it as `APP_VERSION`;
    /// changing it replaces the app VMs (behind a load balancer, one release).
    pub app_version: Option<String>,
    /// Port the app listens on behind the reverse proxy (the app gets it as `PORT`).
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
    /// reachable only from the load balancer (on the simulated cloud and AWS; the
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
            app_version: None,
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
            owns_zone: true,
        }
    }

    /// The app the VMs run, from `app_image` (which wins) or `start_command`, with the port,
    /// health path and version; `None` when neither is given (the VMs then only proxy).
    pub fn app(&self) -> Option<App> {
        let app = match (&self.app_image, &self.start_command) {
            (Some(image), _) => App::image(image.clone(), self.app_port),
            (None, Some(command)) => App::command(command.clone(), self.app_port),
            (None, None) => return None,
        };
        let app = app.health_path(self.health_path.clone());
        Some(match &self.app_version {
            Some(v) => app.version(v.clone()),
            None => app,
        })
    }
}

/// The script enabling pgvector, run once with the app's environment.
const PGVECTOR_SCRIPT: &str = "/usr/local/lib/konstacks/enable-pgvector";
/// Attempts of the pgvector script to reach the database, [`PGVECTOR_PAUSE_S`] apart.
const PGVECTOR_ATTEMPTS: u32 = 60;
/// Seconds between two attempts of the pgvector script.
const PGVECTOR_PAUSE_S: u32 = 10;

/// The app VMs' user data: Caddy on the load balancer's backend port in front of the app, the
/// pgvector step, then the app itself (see [`app_boot`]). Parameters appear only as whole argv
/// elements, quoted unit words or the content of a file, never inside YAML syntax or another
/// command's text.
fn cloud_init(p: &WebAppParams) -> String {
    let mut c = CloudConfig::new();
    c.package_update = true;
    app_boot::reverse_proxy(&mut c, BACKEND_PORT, p.app_port);
    if p.pgvector {
        // Before the app starts, so its first start finds the extension. The database may still
        // be coming up (or its name not yet resolvable): the script retries, for a bounded time.
        c.package("postgresql-client");
        let sql = sh_quote("CREATE EXTENSION IF NOT EXISTS vector");
        let script = [
            "#!/bin/sh".to_string(),
            "# Enable pgvector as the database's admin user, with the app's environment.".into(),
            "set -u".into(),
            "export PGPASSWORD=\"$DATABASE_PASSWORD\" PGCONNECT_TIMEOUT=10".into(),
            "n=1".into(),
            format!(
                "until psql -v ON_ERROR_STOP=1 -h \"$DATABASE_HOST\" -p \"$DATABASE_PORT\" -U \"$DATABASE_USER\" -d postgres -c {sql}; do"
            ),
            format!("  if [ \"$n\" -ge {PGVECTOR_ATTEMPTS} ]; then"),
            "    echo \"enable-pgvector: no success after $n attempts; giving up\" >&2".into(),
            "    exit 1".into(),
            "  fi".into(),
            "  n=$((n + 1))".into(),
            format!("  sleep {PGVECTOR_PAUSE_S}"),
            "done".into(),
            String::new(),
        ];
        c.file(WriteFile::deferred(PGVECTOR_SCRIPT, "0755", script.join("\n")));
        c.run(&[
            "systemd-run",
            "--wait",
            "--collect",
            &format!("--property=EnvironmentFile={ENV_FILE}"),
            PGVECTOR_SCRIPT,
        ]);
    }
    if let Some(app) = p.app() {
        app_boot::start(&mut c, &app);
    }
    c.render()
}

/// Check every parameter of web-app, under `prefix` (`params.` or `params.app.`).
pub(crate) fn check_params(pr: &mut Problems, prefix: &str, p: &WebAppParams) {
    pr.check(format!("{prefix}vpc_cidr"), grammar::token(&p.vpc_cidr));
    pr.check_opt(format!("{prefix}app_image"), p.app_image.as_ref(), grammar::image_reference);
    pr.check_opt(format!("{prefix}start_command"), p.start_command.as_ref(), grammar::command_line);
    pr.check_opt(format!("{prefix}app_version"), p.app_version.as_ref(), grammar::app_version);
    if p.app_version.is_some() && p.app_image.is_none() && p.start_command.is_none() {
        pr.push(
            format!("{prefix}app_version"),
            "app_version names the version of the app, but there is none; give app_image or start_command too",
        );
    }
    if p.app_port == 0 {
        pr.push(format!("{prefix}app_port"), "app_port = 0 is not a port the app can listen on; use 1 to 65535");
    }
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
    let mut preview_domain = None;
    let serving = p.serving().for_context(cx, &mut preview_domain);
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
    let workload = p.app();
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
            .env("DATABASE_USER", db.admin_user())
            .env("DATABASE_PASSWORD", db.password());
        if let Some(a) = &workload {
            vm = vm.app(a.clone());
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use konstacks_core::model::Stage;
    use konstacks_core::sim::SimCloud;
    use serde_json::{json, Value};

    use crate::{Template, TemplateContext, TemplateError};

    fn synth(params: Value) -> Value {
        let stack = super::WebApp.build_json(&TemplateContext::new("shop", Stage::Prod), params).unwrap();
        serde_json::to_value(stack.synth(&[&SimCloud::catalog()]).unwrap_or_else(|e| panic!("{e}"))).unwrap()
    }

    fn vms(s: &Value) -> Vec<&Value> {
        s["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["path"].as_str().unwrap().starts_with("app/web-"))
            .collect()
    }

    fn export<'a>(s: &'a Value, name: &str) -> &'a Value {
        s["exports"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("no {name}"))
    }

    fn problem_paths(params: Value) -> Vec<String> {
        match super::WebApp.build_json(&TemplateContext::new("shop", Stage::Dev), params) {
            Err(TemplateError::InvalidParams { problems, .. }) => problems.into_iter().map(|p| p.path).collect(),
            Err(other) => panic!("{other}"),
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn every_app_vm_runs_the_typed_app_with_its_version_and_the_database_user() {
        let s = synth(json!({
            "app_image": "ghcr.io/acme/shop:1.4.2", "app_version": "1.4.2-build.7", "app_port": 3000,
            "health_path": "/healthz", "domain": "shop.example.com"
        }));
        let vms = vms(&s);
        assert_eq!(vms.len(), 2, "prod runs two");
        for vm in vms {
            let f = &vm["fields"];
            assert_eq!(
                f["app"],
                json!({ "run": { "image": "ghcr.io/acme/shop:1.4.2" }, "port": 3000, "health_path": "/healthz",
                        "version": "1.4.2-build.7" })
            );
            assert_eq!(f["env"]["APP_VERSION"], "1.4.2-build.7");
            assert_eq!(f["env"]["PORT"], "3000");
            assert_eq!(f["env"]["DATABASE_USER"], "(known after apply: data/postgres.admin_user)");
            let ud = f["user_data"].as_str().unwrap();
            assert!(ud.contains("docker.io") && !ud.contains("get.docker.com"), "{ud}");
            assert!(ud.contains("reverse_proxy 127.0.0.1:3000"), "{ud}");
        }
        // With a domain the url is the domain over HTTPS; the load balancer keeps its own name.
        assert_eq!(export(&s, "url"), &json!({ "name": "url", "value": "https://shop.example.com", "secret": false }));
        assert_eq!(export(&s, "lb-dns-name")["from"], "app/lb");
    }

    #[test]
    fn a_command_app_defaults_its_version_and_no_app_means_no_app_field() {
        let s = synth(json!({ "start_command": "exec ./server", "pgvector": true }));
        let f = &vms(&s)[0]["fields"];
        assert_eq!(f["app"]["run"], json!({ "command": "exec ./server" }));
        assert_eq!(f["env"]["APP_VERSION"], "1");
        let ud = f["user_data"].as_str().unwrap();
        assert!(ud.contains("-U \\\"$DATABASE_USER\\\"") && !ud.contains("-U admin"), "{ud}");
        assert!(ud.contains("postgresql-client"), "{ud}");
        // The pgvector step runs before the app starts, so its first start finds the extension.
        let pgvector = ud.find("\"systemd-run\"").unwrap();
        assert!(pgvector < ud.find("\"enable\", \"--now\"").unwrap(), "{ud}");

        let bare = synth(json!({}));
        let f = &vms(&bare)[0]["fields"];
        assert_eq!(f["app"], Value::Null);
        assert!(f["env"].get("APP_VERSION").is_none());
        assert_eq!(f["env"]["DATABASE_USER"], "(known after apply: data/postgres.admin_user)");
        // Without a load balancer there is no url (each VM's address is an output); with one
        // but no domain, the url is the load balancer's own.
        assert!(bare["exports"].as_array().unwrap().iter().all(|e| e["name"] != "url"));
        let lb = synth(json!({ "load_balancer": true }));
        assert_eq!(export(&lb, "url")["from"], "app/lb");
    }

    #[test]
    fn a_preview_serves_on_its_slug_in_a_zone_it_does_not_own() {
        let cx = TemplateContext::new("shop-dev-feature-x", Stage::Dev).preview("feature-x");
        let build = |p: Value| {
            let stack = super::WebApp.build_json(&cx, p).unwrap();
            serde_json::to_value(stack.synth(&[&SimCloud::catalog()]).unwrap_or_else(|e| panic!("{e}"))).unwrap()
        };
        let s = build(json!({ "domain": "shop.example.com", "zone": "example.com" }));
        let at = |path: &str| s["resources"].as_array().unwrap().iter().find(|r| r["path"] == path).unwrap().clone();
        assert_eq!(at("edge/zone")["fields"]["managed"], false, "the base stack owns the zone");
        assert_eq!(at("edge/record")["fields"]["fqdn"], "feature-x.example.com");
        assert!(at("edge/certificate")["fields"].to_string().contains("\"feature-x.example.com\""));
        assert!(!s.to_string().contains("shop.example.com"), "the base stack's name stays the base's");
        assert_eq!(export(&s, "url")["value"], "https://feature-x.example.com");
        // Without a zone a preview has no name of its own: the load balancer's address serves.
        let s = build(json!({ "domain": "shop.example.com" }));
        assert!(s["resources"].as_array().unwrap().iter().all(|r| !r["path"].as_str().unwrap().starts_with("edge/")));
        assert_eq!(export(&s, "url")["from"], "app/lb");
    }

    #[test]
    fn the_version_and_port_are_checked() {
        assert_eq!(
            problem_paths(json!({ "app_image": "acme/shop:1", "app_version": "1 2", "app_port": 0 })),
            ["params.app_version", "params.app_port"]
        );
        assert_eq!(problem_paths(json!({ "app_version": "1.0" })), ["params.app_version"]);
        assert!(problem_paths(json!({ "start_command": "./run", "app_version": "2026.12.05-rc1" })).is_empty());
    }
}
