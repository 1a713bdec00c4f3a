//! `lamp-site`: one PHP VM (Apache + PHP from cloud-init) and a managed MySQL with automated
//! backups, for developers leaving shared hosting.

use konstacks_core::model::{Database, DbSize, Firewall, Image, Ingress, Stack, Stage, Subnet, Vm, VmSize, Vpc};

use crate::cloud_config::CloudConfig;
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
        }
    }
}

impl TypedTemplate for LampSite {
    type Params = LampSiteParams;
    const NAME: &'static str = "lamp-site";
    const DESCRIPTION: &'static str = "LAMP site: one PHP VM plus managed MySQL with automated backups";

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
        pr.finish()?;
        let stack = cx.new_stack();
        let net = stack.scope("network");
        let vpc = net.add("vpc", Vpc::new("10.20.0.0/16"));
        let web_net = net.add("public", Subnet::new(vpc, "10.20.1.0/24").public());
        let db_nets = [
            net.add("private-a", Subnet::new(vpc, "10.20.11.0/24").zone(0)),
            net.add("private-b", Subnet::new(vpc, "10.20.12.0/24").zone(1)),
        ];
        let mut web_fw =
            Firewall::new(vpc).allow(Ingress::tcp(80).from_anywhere()).allow(Ingress::tcp(443).from_anywhere());
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
        let web = stack.add(
            "web",
            Vm::new(Image::UbuntuLts, VmSize::from_slug(&size), web_net)
                .firewall(web_fw)
                .public_ip(true)
                .user_data(init.render())
                .env("DB_HOST", db.host())
                .env("DB_PASSWORD", db.password()),
        );
        stack.export("site-ip", web.public_ip());
        stack.export("mysql-host", db.host());
        Ok(stack)
    }
}
