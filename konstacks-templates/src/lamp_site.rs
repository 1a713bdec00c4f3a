//! `lamp-site`: one PHP VM (Apache + PHP from cloud-init) and a managed MySQL with automated
//! backups, for developers leaving shared hosting. With a `domain` (or `load_balancer`), the
//! site is served over HTTPS by a public load balancer (the same edge as
//! [`web-app`](crate::web_app)) and the VM moves to a private subnet without a public IP,
//! Apache reachable on port 80 from the load balancer only.

use konstacks_core::model::{Database, DbSize, Firewall, Image, Ingress, Stack, Stage, Subnet, Vm, VmSize, Vpc};

use crate::cloud_config::CloudConfig;
use crate::edge::{self, Serving};
use crate::{grammar, Problems, TemplateContext, TemplateError, TypedTemplate};

/// The `lamp-site` template.
#[derive(Debug, Clone, Copy, Default)]
pub struct LampSite;

/// Parameters of `lamp-site`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LampSiteParams {
    /// VM size slug (default `small`, `micro` in dev).
    pub vm_size: Option<String>,
    /// MySQL version.
    pub mysql_version: String,
    /// Database size slug.
    pub db_size: String,
    /// Days of automated MySQL backups (at least 1).
    pub backup_days: u32,
    /// Git repository of the PHP site, cloned into the web root at boot: an `https://` URL.
    pub site_repo: Option<String>,
    /// CIDR allowed to SSH in; closed without it.
    pub admin_cidr: Option<String>,
    /// The domain the site is served on over HTTPS (`www.example.com`): a managed certificate
    /// for it on a public load balancer, HTTP redirected to HTTPS. Implies `load_balancer`.
    pub domain: Option<String>,
    /// The DNS zone the stack owns (`example.com`): the certificate is validated in it and the
    /// domain's record points at the load balancer. Without it the outputs list the validation
    /// records to create where the domain's DNS is hosted.
    pub zone: Option<String>,
    /// Put the VM behind a public load balancer, in a private subnet without a public IP,
    /// Apache reachable only from the load balancer (on the simulated cloud and AWS; the
    /// DigitalOcean and GCP backends for load balancers are coming).
    pub load_balancer: bool,
    /// The path the load balancer's health check requests from the VM.
    pub health_path: String,
}

impl LampSiteParams {
    fn serving(&self) -> Serving<'_> {
        Serving {
            domain: self.domain.as_ref(),
            zone: self.zone.as_ref(),
            load_balancer: self.load_balancer,
            health_path: &self.health_path,
            owns_zone: true,
        }
    }
}

impl Default for LampSiteParams {
    fn default() -> Self {
        Self {
            vm_size: None,
            mysql_version: "8.0".into(),
            db_size: "db-micro".into(),
            backup_days: 7,
            site_repo: None,
            admin_cidr: None,
            domain: None,
            zone: None,
            load_balancer: false,
            health_path: "/".into(),
        }
    }
}

impl TypedTemplate for LampSite {
    type Params = LampSiteParams;
    const NAME: &'static str = "lamp-site";
    const DESCRIPTION: &'static str =
        "LAMP site: one PHP VM plus managed MySQL with automated backups, optionally over HTTPS behind a load balancer";

    fn build(&self, cx: &TemplateContext, p: &LampSiteParams) -> Result<Stack, TemplateError> {
        let mut pr = Problems::new(Self::NAME);
        pr.check_opt("params.vm_size", p.vm_size.as_ref(), grammar::token);
        pr.check("params.mysql_version", grammar::token(&p.mysql_version));
        pr.check("params.db_size", grammar::token(&p.db_size));
        if p.backup_days == 0 {
            pr.push(
                "params.backup_days",
                "backup_days = 0 would turn off the automated backups this template promises; use at least 1",
            );
        }
        pr.check_opt("params.site_repo", p.site_repo.as_ref(), grammar::https_url);
        pr.check_opt("params.admin_cidr", p.admin_cidr.as_ref(), grammar::token);
        let serving = p.serving();
        edge::check(&mut pr, "params.", &serving);
        pr.finish()?;
        let mut preview_domain = None;
        let serving = serving.for_context(cx, &mut preview_domain);
        let stack = cx.new_stack();
        let net = stack.scope("network");
        let vpc = net.add("vpc", Vpc::new("10.20.0.0/16"));
        let web_net = net.add("public", Subnet::new(vpc, "10.20.1.0/24").public());
        let db_nets = [
            net.add("private-a", Subnet::new(vpc, "10.20.11.0/24").zone(0)),
            net.add("private-b", Subnet::new(vpc, "10.20.12.0/24").zone(1)),
        ];
        // Serving: the load balancer needs a second public subnet in another zone, and the VM
        // gets a private subnet of its own (apart from the database's).
        let front = serving.is_on().then(|| {
            let public_b = net.add("public-b", Subnet::new(vpc, "10.20.2.0/24").zone(1).public());
            let private = net.add("web-private", Subnet::new(vpc, "10.20.21.0/24").zone(0));
            (edge::start(&stack, &serving, vpc, [web_net, public_b]), private)
        });
        let mut web_fw = match &front {
            // Apache takes web traffic from the load balancer only.
            Some((e, _)) => Firewall::new(vpc).allow(e.backend_rule()),
            None => Firewall::new(vpc).allow(Ingress::tcp(80).from_anywhere()).allow(Ingress::tcp(443).from_anywhere()),
        };
        if let Some(admin) = &p.admin_cidr {
            web_fw = web_fw.allow(Ingress::tcp(22).from_cidr(admin));
        }
        let web_fw = net.add("web-fw", web_fw);
        let db_fw = net.add("db-fw", Firewall::new(vpc).allow(Ingress::tcp(3306).from(web_fw)));
        let db = stack.add(
            "mysql",
            Database::mysql(&p.mysql_version, DbSize::from_slug(&p.db_size), db_nets)
                .firewall(db_fw)
                .backups(p.backup_days),
        );
        // Parameters appear only as whole argv elements; `--` keeps the repository from being
        // read as an option of git.
        let mut init = CloudConfig::new();
        init.package_update = true;
        for pkg in ["apache2", "php", "php-mysql", "libapache2-mod-php", "git"] {
            init.package(pkg);
        }
        if let Some(repo) = &p.site_repo {
            init.run(&["rm", "-rf", "/var/www/html"]);
            init.run(&["git", "clone", "--depth", "1", "--", repo, "/var/www/html"]);
        }
        init.run(&["systemctl", "restart", "apache2"]);
        let size =
            p.vm_size.clone().unwrap_or_else(|| if cx.stage == Stage::Dev { "micro".into() } else { "small".into() });
        let vm_net = front.as_ref().map_or(web_net, |(_, private)| *private);
        let web = stack.add(
            "web",
            Vm::new(Image::UbuntuLts, VmSize::from_slug(&size), vm_net)
                .firewall(web_fw)
                .public_ip(front.is_none())
                .user_data(init.render())
                .env("DB_HOST", db.host())
                .env("DB_PASSWORD", db.password()),
        );
        match front {
            Some((e, _)) => edge::finish(&stack, &stack.root(), "web", &serving, e, vec![web]),
            None => stack.export("site-ip", web.public_ip()),
        }
        stack.export("mysql-host", db.host());
        Ok(stack)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use konstacks_core::model::Stage;
    use konstacks_core::sim::SimCloud;
    use serde_json::{json, Value};

    use crate::{Template, TemplateContext, TemplateError};

    fn synth(params: Value) -> Value {
        let stack = super::LampSite.build_json(&TemplateContext::new("site", Stage::Prod), params).unwrap();
        serde_json::to_value(stack.synth(&[&SimCloud::catalog()]).unwrap_or_else(|e| panic!("{e}"))).unwrap()
    }

    fn resource<'a>(s: &'a Value, path: &str) -> &'a Value {
        s["resources"].as_array().unwrap().iter().find(|r| r["path"] == path).unwrap_or_else(|| panic!("no {path}"))
    }

    fn paths(s: &Value) -> Vec<&str> {
        s["resources"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect()
    }

    fn exports(s: &Value) -> Vec<&str> {
        s["exports"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect()
    }

    #[test]
    fn by_default_the_site_answers_on_its_own_public_address() {
        let s = synth(json!({}));
        assert_eq!(
            paths(&s),
            [
                "network/vpc",
                "network/public",
                "network/private-a",
                "network/private-b",
                "network/web-fw",
                "network/db-fw",
                "mysql",
                "web"
            ]
        );
        let web = &resource(&s, "web")["fields"];
        assert_eq!(web["assign_public_ip"], true);
        assert_eq!(web["subnet_id"], "(known after apply: network/public.id)");
        assert_eq!(exports(&s), ["site-ip", "mysql-host"]);
    }

    #[test]
    fn with_a_domain_the_vm_sits_in_a_private_subnet_behind_the_load_balancer() {
        let s = synth(json!({ "domain": "www.example.com", "zone": "example.com", "admin_cidr": "198.51.100.7/32" }));
        for path in [
            "network/public-b",
            "network/web-private",
            "network/lb-fw",
            "edge/zone",
            "edge/certificate",
            "lb",
            "edge/record",
        ] {
            resource(&s, path);
        }
        let web = &resource(&s, "web")["fields"];
        assert_eq!(web["assign_public_ip"], false);
        assert_eq!(web["subnet_id"], "(known after apply: network/web-private.id)");
        let private = &resource(&s, "network/web-private")["fields"];
        assert_eq!(private["public"], false);
        // Apache's port 80 is open to the load balancer's firewall only (and SSH to the admin).
        let ingress = resource(&s, "network/web-fw")["fields"]["ingress"].to_string();
        assert!(ingress.contains("network/lb-fw.id") && !ingress.contains("0.0.0.0/0"), "{ingress}");
        let lb = &resource(&s, "lb")["fields"];
        assert_eq!(
            lb["subnet_ids"],
            json!(["(known after apply: network/public.id)", "(known after apply: network/public-b.id)"])
        );
        assert_eq!(lb["target_groups"][0]["name"], "web");
        assert_eq!(lb["target_groups"][0]["port"], 80);
        assert_eq!(lb["target_groups"][0]["vm_ids"], json!(["(known after apply: web.id)"]));
        let listeners = lb["listeners"].to_string();
        assert!(
            listeners.contains("\"redirect_to_port\":443") && listeners.contains("edge/certificate.id"),
            "{listeners}"
        );
        assert_eq!(exports(&s), ["certificate-status", "url", "lb-dns-name", "domain", "mysql-host"]);
    }

    #[test]
    fn a_load_balancer_without_a_domain_serves_http_on_its_own_name() {
        let s = synth(json!({ "load_balancer": true, "health_path": "/health.php" }));
        assert!(!paths(&s).iter().any(|p| p.starts_with("edge/")), "{:?}", paths(&s));
        let lb = &resource(&s, "lb")["fields"];
        assert_eq!(lb["listeners"].as_array().unwrap().len(), 1);
        assert_eq!(lb["target_groups"][0]["health_check"]["path"], "/health.php");
        assert_eq!(resource(&s, "web")["fields"]["assign_public_ip"], false);
        assert_eq!(exports(&s), ["url", "lb-dns-name", "mysql-host"]);
    }

    #[test]
    fn serving_parameters_are_checked_like_web_app_s() {
        let cx = TemplateContext::new("site", Stage::Dev);
        let params = json!({ "domain": "www.example.com", "zone": "example.org", "health_path": "health" });
        let Err(TemplateError::InvalidParams { problems, .. }) = super::LampSite.build_json(&cx, params) else {
            panic!("accepted")
        };
        let found: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(found, ["params.zone", "params.health_path"]);
        assert!(problems[0].message.contains("not inside the zone"), "{problems:?}");
        let Err(TemplateError::InvalidParams { problems, .. }) =
            super::LampSite.build_json(&cx, json!({ "zone": "example.com", "domain": "a b" }))
        else {
            panic!("accepted")
        };
        let found: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(found, ["params.domain", "params.zone"]);
        // A value is shown with its control characters escaped, in every message.
        let Err(TemplateError::InvalidParams { problems, .. }) =
            super::LampSite.build_json(&cx, json!({ "domain": "www\n.example.com", "zone": "example.org\u{1b}" }))
        else {
            panic!("accepted")
        };
        assert!(problems.iter().any(|p| p.message.contains("not inside the zone")), "{problems:?}");
        assert!(problems.iter().all(|p| !p.message.chars().any(char::is_control)), "{problems:?}");
    }
}
