//! `agency-sites`: N client sites from a list, under one roof. Each client gets its own
//! firewall (isolation), a VM and optionally a MySQL database reachable only from that client's
//! firewall; every resource carries the tag `client` so cost and ownership roll up per client.
//!
//! When any client has a `domain` (or `load_balancer = true`) the sites are served over HTTPS
//! through one shared public load balancer: one HTTPS listener carrying every client's
//! certificate (SNI), one target group per client and a host rule per domain. The client VMs
//! then live in private subnets without public IPs and admit web traffic from the load
//! balancer's firewall only. The load balancer and its network carry no `client` tag; they are
//! tagged `konstacks:shared = client`, so the bill splits their cost evenly across the clients.

use std::collections::BTreeMap;

use konstacks_core::cost::TAG_SHARED;
use konstacks_core::model::certificate::MAX_DOMAIN_LEN;
use konstacks_core::model::dns_zone::{dns_name_problem, within, NameRules};
use konstacks_core::model::{
    database, vm, Certificate, CertificateId, Database, DbSize, DnsRecord, DnsZone, Firewall, Image, Ingress,
    LoadBalancer, Ref, Route, Scope, Stack, Subnet, TargetGroup, TargetHealthCheck, Vm, VmSize, Vpc,
};
use konstacks_core::parity::Knob;

use crate::{grammar, Problems, TemplateContext, TemplateError, TypedTemplate};

/// The `agency-sites` template.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgencySites;

/// One client site.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSite {
    /// Client name: 1 to 30 characters of a-z, 0-9 and '-', not starting with '-' (nor ending
    /// with it when the sites are behind the load balancer: it names the client's target group);
    /// used in paths and the `client` tag.
    pub name: String,
    /// VM size slug.
    #[serde(default = "default_size")]
    pub size: String,
    /// Whether the site has a MySQL database.
    #[serde(default)]
    pub database: bool,
    /// The domain the site is served on over HTTPS (`www.bakery.example`): a managed
    /// certificate on the shared load balancer and a host rule routing it to this client's VM.
    /// Two clients cannot share a domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The DNS zone the stack owns for this client's domain (`bakery.example`; the domain must
    /// lie inside it): the certificate is validated in it and the domain's record points at the
    /// load balancer. Without it the outputs list the validation records to create where the
    /// domain's DNS is hosted. A zone belongs to one client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
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
    /// Put every client's VM behind one shared public load balancer, in private subnets without
    /// public IPs, even when no client has a domain yet (implied by any client's `domain`).
    pub load_balancer: bool,
    /// One load balancer per client (its own address, certificate and bill line) instead of the
    /// shared one. Unset: per client on providers whose load balancers serve one pool of VMs
    /// and one certificate per listener (DigitalOcean), shared elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer_per_client: Option<bool>,
}

impl AgencySitesParams {
    /// Whether the sites are served through a load balancer.
    pub fn serving(&self) -> bool {
        self.load_balancer || self.clients.iter().any(|c| c.domain.is_some())
    }

    /// The parameters a preview `slug` builds with: each client with a zone is served on
    /// `<slug>.<zone>` (the zone used, never owned), a client without a zone loses its domain,
    /// and the load balancer stays when the sites had one.
    fn for_preview(&self, slug: &str) -> AgencySitesParams {
        let mut p = self.clone();
        p.load_balancer = self.serving();
        for c in &mut p.clients {
            c.domain = c.zone.as_ref().map(|z| format!("{slug}.{z}"));
        }
        p
    }

    /// Whether each client gets its own load balancer on `provider`.
    pub fn per_client(&self, provider: &str) -> bool {
        self.load_balancer_per_client.unwrap_or(ONE_POOL_PROVIDERS.contains(&provider))
    }
}

/// Providers whose load balancers serve one pool of VMs with one certificate per listener (the
/// catalogue's `load_balancers_one_pool`; a test of the providers crate keeps the two in step).
pub const ONE_POOL_PROVIDERS: &[&str] = &["digitalocean"];

/// The `k`-th /26 block of 10.30.0.0/16.
fn block(k: usize) -> String {
    format!("10.30.{}.{}/26", k / 4, (k % 4) * 64)
}

/// Most clients one stack holds.
pub const MAX_CLIENTS: usize = 200;

/// The 1,024 /26 blocks of the /16: client `i` owns blocks `3i` (its public subnet), `3i+1` and
/// `3i+2` (its database subnets, zones a and b) and, behind the load balancer,
/// `PRIVATE_BASE + i` (its private subnet); the load balancer's two public subnets take the
/// last two blocks. The private blocks are apart from the public ones so that turning serving
/// on creates the private subnet before the public one is gone.
const PRIVATE_BASE: usize = 3 * MAX_CLIENTS;
/// The load balancer's public subnets, zones a and b.
const EDGE_BLOCKS: [usize; 2] = [1022, 1023];

/// The path the load balancer's health check requests from every client VM.
pub const HEALTH_PATH: &str = "/";

/// Check every parameter; every problem with its `params.` path.
fn check_params(pr: &mut Problems, p: &AgencySitesParams) {
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
        pr.check_opt("params.db_size", p.db_size.as_ref(), grammar::token);
        return;
    }
    let serving = p.serving();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut domains: BTreeMap<&str, &str> = BTreeMap::new();
    let mut zones: BTreeMap<&str, &str> = BTreeMap::new();
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
        } else if names.insert(c.name.as_str(), i).is_some() {
            pr.push(format!("params.clients[{i}].name"), format!("client `{}` is listed twice", c.name));
        } else if serving && c.name.ends_with('-') {
            pr.push(
                format!("params.clients[{i}].name"),
                format!(
                    "client name `{}` ends with '-'; behind the load balancer it also names the client's target \
                     group, which cannot end with '-'",
                    c.name
                ),
            );
        }
        pr.check(format!("params.clients[{i}].size"), grammar::token(&c.size));
        let domain = c.domain.as_deref().filter(|d| check_dns_name(pr, &format!("params.clients[{i}].domain"), d));
        if let Some(d) = domain {
            if let Some(other) = domains.insert(d, c.name.as_str()) {
                pr.push(
                    format!("params.clients[{i}].domain"),
                    format!(
                        "the domain `{d}` is already client `{}`'s; two clients cannot share a domain",
                        grammar::shown(other)
                    ),
                );
            }
        }
        let zone = c.zone.as_deref().filter(|z| check_dns_name(pr, &format!("params.clients[{i}].zone"), z));
        match (zone, &c.domain) {
            (Some(_), None) => pr.push(
                format!("params.clients[{i}].zone"),
                "a zone without a domain serves nothing; give the client's `domain` too",
            ),
            (Some(z), Some(_)) => {
                if let Some(d) = domain.filter(|d| !within(d, z)) {
                    pr.push(
                        format!("params.clients[{i}].zone"),
                        format!("the domain `{d}` is not inside the zone `{z}`; name the zone that holds it"),
                    );
                }
                if let Some(other) = zones.insert(z, c.name.as_str()) {
                    pr.push(
                        format!("params.clients[{i}].zone"),
                        format!(
                            "the zone `{z}` is already client `{}`'s; a zone belongs to one client (leave `zone` out \
                             and create the records where the shared zone is hosted)",
                            grammar::shown(other)
                        ),
                    );
                }
            }
            (None, _) => {}
        }
    }
    pr.check_opt("params.db_size", p.db_size.as_ref(), grammar::token);
}

/// A domain or zone: the grammar's rules, then the DNS kinds' own (lower case, two labels or
/// more, short enough for a certificate's validation record), so synth refuses nothing later.
fn check_dns_name(pr: &mut Problems, path: &str, name: &str) -> bool {
    if let Err(e) = grammar::domain_name(name) {
        pr.push(path, e.to_string());
        return false;
    }
    if let Some(problem) = dns_name_problem(name, NameRules::ZONE) {
        pr.push(path, format!("`{name}` {problem}"));
        return false;
    }
    if name.len() > MAX_DOMAIN_LEN {
        pr.push(
            path,
            format!("`{name}` has {} characters; a certificate covers names of at most {MAX_DOMAIN_LEN}", name.len()),
        );
        return false;
    }
    true
}

/// The shared edge: the load balancer's two public subnets and its firewall (80/443 from
/// anywhere), in the `edge` scope tagged as shared by every client.
struct Edge {
    scope: Scope,
    subnets: [Ref<Subnet>; 2],
    firewall: Ref<Firewall>,
}

fn edge(stack: &Stack, vpc: Ref<Vpc>) -> Edge {
    let scope = stack.scope("edge").tag(TAG_SHARED, "client");
    let subnets = [
        scope.add("public-a", Subnet::new(vpc, block(EDGE_BLOCKS[0])).zone(0).public()),
        scope.add("public-b", Subnet::new(vpc, block(EDGE_BLOCKS[1])).zone(1).public()),
    ];
    let firewall = scope
        .add("fw", Firewall::new(vpc).allow(Ingress::tcp(80).from_anywhere()).allow(Ingress::tcp(443).from_anywhere()));
    Edge { scope, subnets, firewall }
}

/// What a client brings to the shared load balancer.
struct Served<'a> {
    client: &'a ClientSite,
    scope: Scope,
    vm: Ref<Vm>,
    certificate: Option<Ref<Certificate>>,
    zone: Option<Ref<DnsZone>>,
}

/// The client's certificate (validated in its zone, or by hand with the records as outputs).
/// A preview (`owns_zone` false) uses the client's zone without owning it.
fn certificate(
    stack: &Stack,
    scope: &Scope,
    c: &ClientSite,
    domain: &str,
    owns_zone: bool,
) -> (Ref<Certificate>, Option<Ref<DnsZone>>) {
    let mut cert = Certificate::new([domain.to_string()]);
    let zone = c.zone.as_ref().map(|z| {
        let z = if owns_zone { DnsZone::new(z.clone()) } else { DnsZone::existing(z.clone()) };
        scope.add("zone", z)
    });
    cert = match zone {
        Some(z) => cert.validate_in(z),
        None => cert.manual_validation(),
    };
    let cert = scope.add("certificate", cert);
    stack.export(format!("{}-certificate-status", c.name), cert.status());
    if zone.is_none() {
        stack.export(format!("{}-certificate-validation-records", c.name), cert.validation_records());
    }
    (cert, zone)
}

/// The shared load balancer: HTTP redirected to HTTPS, one HTTPS listener with every client's
/// certificate, a target group per client, a host rule per domain, the first client's group as
/// the default; then each client's alias record in its own zone.
fn finish_edge(stack: &Stack, e: Edge, served: &[Served<'_>]) {
    let mut lb = LoadBalancer::public(e.subnets).firewall(e.firewall).http(80);
    let certificates: Vec<CertificateId> = served.iter().filter_map(|s| s.certificate.map(|c| c.id().into())).collect();
    if !certificates.is_empty() {
        lb = lb.https_certificates(443, certificates);
    }
    for s in served {
        lb = lb.target_group(
            TargetGroup::new(s.client.name.clone(), 80).vm(s.vm).health_check(TargetHealthCheck::http(HEALTH_PATH)),
        );
    }
    for s in served {
        if let Some(d) = &s.client.domain {
            lb = lb.route(Route::host(d.clone()).to(s.client.name.clone()));
        }
    }
    if let Some(first) = served.first() {
        lb = lb.default_to(first.client.name.clone());
    }
    let lb = e.scope.add("lb", lb);
    stack.export("url", lb.url());
    stack.export("lb-dns-name", lb.dns_name());
    for s in served {
        if let (Some(zone), Some(domain)) = (s.zone, &s.client.domain) {
            let record = s.scope.add("record", DnsRecord::alias(zone, domain.clone(), lb.dns_name()));
            stack.export(format!("{}-domain", s.client.name), record.fqdn());
        }
    }
}

/// A load balancer per client (`clients/<name>/lb`, in the shared public subnets behind the
/// shared firewall): HTTP redirected to HTTPS on the client's certificate, its VM the one target;
/// outputs `<client>-url` and `<client>-lb-dns-name`, and the client's record in its zone.
fn per_client_edge(stack: &Stack, e: &Edge, served: &[Served<'_>]) {
    for s in served {
        let mut lb = LoadBalancer::public(e.subnets).firewall(e.firewall).http(80);
        if let Some(c) = s.certificate {
            lb = lb.https(443, c.id());
        }
        let group =
            TargetGroup::new(s.client.name.clone(), 80).vm(s.vm).health_check(TargetHealthCheck::http(HEALTH_PATH));
        let lb = s.scope.add("lb", lb.target_group(group));
        let name = &s.client.name;
        match &s.client.domain {
            Some(d) => stack.export_value(format!("{name}-url"), format!("https://{d}")),
            None => stack.export(format!("{name}-url"), lb.url()),
        }
        stack.export(format!("{name}-lb-dns-name"), lb.dns_name());
        if let (Some(zone), Some(domain)) = (s.zone, &s.client.domain) {
            let record = s.scope.add("record", DnsRecord::alias(zone, domain.clone(), lb.dns_name()));
            stack.export(format!("{name}-domain"), record.fqdn());
        }
    }
}

impl TypedTemplate for AgencySites {
    type Params = AgencySitesParams;
    const NAME: &'static str = "agency-sites";
    const DESCRIPTION: &'static str = "Agency: one isolated site per client (own firewall, VM, optional MySQL), \
         optionally served over HTTPS through one shared load balancer, costs rolled up per client";
    const PARITY_KNOBS: &'static [Knob] = &[
        Knob::field(vm::field::SIZE),
        Knob::field(database::field::SIZE),
        Knob::field(database::field::HIGH_AVAILABILITY),
        Knob::field(database::field::BACKUP_RETENTION_DAYS),
    ];

    fn build(&self, cx: &TemplateContext, p: &AgencySitesParams) -> Result<Stack, TemplateError> {
        let mut pr = Problems::new(Self::NAME);
        check_params(&mut pr, p);
        pr.finish()?;
        let previewed;
        let p = match cx.preview.as_deref() {
            Some(slug) => {
                previewed = p.for_preview(slug);
                &previewed
            }
            None => p,
        };
        let owns_zones = cx.preview.is_none();
        let stack = cx.new_stack();
        let net = stack.scope("network");
        let vpc = net.add("vpc", Vpc::new("10.30.0.0/16"));
        let db_size = p.db_size.clone().unwrap_or_else(|| "db-micro".into());
        let edge = p.serving().then(|| edge(&stack, vpc));
        let mut served = Vec::new();
        for (i, c) in p.clients.iter().enumerate() {
            let scope = stack.scope("clients").scope(&c.name).tag("client", c.name.clone());
            let (subnet, fw) = match &edge {
                // Behind the load balancer: a private subnet of the client's own, web traffic
                // from the load balancer's firewall only.
                Some(e) => (
                    scope.add("private", Subnet::new(vpc, block(PRIVATE_BASE + i))),
                    Firewall::new(vpc).allow(Ingress::tcp(80).from(e.firewall)),
                ),
                None => (
                    scope.add("public", Subnet::new(vpc, block(3 * i)).public()),
                    Firewall::new(vpc).allow(Ingress::tcp(80).from_anywhere()).allow(Ingress::tcp(443).from_anywhere()),
                ),
            };
            let fw = scope.add("fw", fw);
            let mut vm =
                Vm::new(Image::UbuntuLts, VmSize::from_slug(&c.size), subnet).firewall(fw).public_ip(edge.is_none());
            if c.database {
                let a = scope.add("db-a", Subnet::new(vpc, block(3 * i + 1)).zone(0));
                let b = scope.add("db-b", Subnet::new(vpc, block(3 * i + 2)).zone(1));
                let db_fw = scope.add("db-fw", Firewall::new(vpc).allow(Ingress::tcp(3306).from(fw)));
                let db = scope
                    .add("db", Database::mysql("8.0", DbSize::from_slug(&db_size), [a, b]).firewall(db_fw).backups(7));
                vm = vm.env("DB_HOST", db.host()).env("DB_PASSWORD", db.password());
            }
            let web = scope.add("web", vm);
            if edge.is_none() {
                stack.export(format!("{}-ip", c.name), web.public_ip());
                continue;
            }
            let (certificate, zone) = match &c.domain {
                Some(d) => {
                    let (cert, zone) = certificate(&stack, &scope, c, d, owns_zones);
                    (Some(cert), zone)
                }
                None => (None, None),
            };
            served.push(Served { client: c, scope, vm: web, certificate, zone });
        }
        match edge {
            Some(e) if p.per_client(&cx.provider) => per_client_edge(&stack, &e, &served),
            Some(e) => finish_edge(&stack, e, &served),
            None => {}
        }
        Ok(stack)
    }
}
