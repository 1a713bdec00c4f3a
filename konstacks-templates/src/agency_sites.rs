//! `agency-sites`: N client sites from a list, under one roof. Each client gets its own
//! firewall (isolation), a VM and optionally a MySQL database reachable only from that client's
//! firewall; every resource carries the tag `client` so cost and ownership roll up per client.

use std::collections::BTreeSet;

use konstacks_core::model::{database, vm, Database, DbSize, Firewall, Image, Ingress, Stack, Subnet, Vm, VmSize, Vpc};
use konstacks_core::parity::Knob;

use crate::{grammar, Problems, TemplateContext, TemplateError, TypedTemplate};

/// The `agency-sites` template.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgencySites;

/// One client site.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSite {
    /// Client name: 1 to 30 characters of a-z, 0-9 and '-', not starting with '-'; used in paths
    /// and the `client` tag.
    pub name: String,
    /// VM size slug.
    #[serde(default = "default_size")]
    pub size: String,
    /// Whether the site has a MySQL database.
    #[serde(default)]
    pub database: bool,
}

fn default_size() -> String {
    "micro".into()
}

/// Parameters of `agency-sites`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AgencySitesParams {
    /// The client sites.
    pub clients: Vec<ClientSite>,
    /// Database size slug for clients with a database.
    pub db_size: Option<String>,
}

/// The `k`-th /26 block of 10.30.0.0/16.
fn block(k: usize) -> String {
    format!("10.30.{}.{}/26", k / 4, (k % 4) * 64)
}

/// Most clients one stack holds (each gets three /26 blocks of a /16).
pub const MAX_CLIENTS: usize = 200;

impl TypedTemplate for AgencySites {
    type Params = AgencySitesParams;
    const NAME: &'static str = "agency-sites";
    const DESCRIPTION: &'static str =
        "Agency: one isolated site per client (own firewall, VM, optional MySQL), costs rolled up per client";
    const PARITY_KNOBS: &'static [Knob] = &[
        Knob::field(vm::field::SIZE),
        Knob::field(database::field::SIZE),
        Knob::field(database::field::HIGH_AVAILABILITY),
        Knob::field(database::field::BACKUP_RETENTION_DAYS),
    ];

    fn build(&self, cx: &TemplateContext, p: &AgencySitesParams) -> Result<Stack, TemplateError> {
        let mut pr = Problems::new(Self::NAME);
        if p.clients.is_empty() {
            pr.push("params.clients", "no clients: list at least one under [[clients]]");
        }
        if p.clients.len() > MAX_CLIENTS {
            pr.push(
                "params.clients",
                format!(
                    "{} clients exceed the {MAX_CLIENTS} one stack holds; split them over several stacks",
                    p.clients.len()
                ),
            );
        } else {
            let mut seen = BTreeSet::new();
            for (i, c) in p.clients.iter().enumerate() {
                let ok = !c.name.is_empty()
                    && c.name.len() <= 30
                    && c.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !c.name.starts_with('-');
                if !ok {
                    pr.push(
                        format!("params.clients[{i}].name"),
                        format!(
                            "client name `{}` must be 1 to 30 characters of a-z, 0-9 and '-', not starting with '-'",
                            grammar::shown(&c.name)
                        ),
                    );
                } else if !seen.insert(c.name.as_str()) {
                    pr.push(format!("params.clients[{i}].name"), format!("client `{}` is listed twice", c.name));
                }
                pr.check(format!("params.clients[{i}].size"), grammar::token(&c.size));
            }
        }
        pr.check_opt("params.db_size", p.db_size.as_ref(), grammar::token);
        pr.finish()?;
        let stack = cx.new_stack();
        let net = stack.scope("network");
        let vpc = net.add("vpc", Vpc::new("10.30.0.0/16"));
        let db_size = p.db_size.clone().unwrap_or_else(|| "db-micro".into());
        for (i, c) in p.clients.iter().enumerate() {
            let scope = stack.scope("clients").scope(&c.name).tag("client", c.name.clone());
            // Client i owns three /26 blocks of the /16 (public, database zone a, zone b):
            // 1,024 blocks hold MAX_CLIENTS with room to spare.
            let public = scope.add("public", Subnet::new(vpc, block(3 * i)).public());
            let fw = scope.add(
                "fw",
                Firewall::new(vpc).allow(Ingress::tcp(80).from_anywhere()).allow(Ingress::tcp(443).from_anywhere()),
            );
            let mut vm = Vm::new(Image::UbuntuLts, VmSize::from_slug(&c.size), public).firewall(fw).public_ip(true);
            if c.database {
                let a = scope.add("db-a", Subnet::new(vpc, block(3 * i + 1)).zone(0));
                let b = scope.add("db-b", Subnet::new(vpc, block(3 * i + 2)).zone(1));
                let db_fw = scope.add("db-fw", Firewall::new(vpc).allow(Ingress::tcp(3306).from(fw)));
                let db = scope
                    .add("db", Database::mysql("8.0", DbSize::from_slug(&db_size), [a, b]).firewall(db_fw).backups(7));
                vm = vm.env("DB_HOST", db.host()).env("DB_PASSWORD", db.password());
            }
            let web = scope.add("web", vm);
            stack.export(format!("{}-ip", c.name), web.public_ip());
        }
        Ok(stack)
    }
}
