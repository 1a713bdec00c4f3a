//! The public edge of the templates that serve traffic (`web-app`, and so `gdpr-saas`, and
//! `lamp-site`): the `domain`, `zone`, `load_balancer` and `health_path` parameters, their
//! checks, and the resources they add — a public load balancer in two public subnets with its
//! own firewall, HTTPS with a managed certificate when a domain is given (HTTP redirected to
//! it), and the DNS zone, certificate validation and record when the stack owns the zone.
//!
//! A preview environment ([`crate::TemplateContext::preview`]) serves on `<slug>.<zone>` with a
//! record in the base stack's zone, which it uses and never owns ([`DnsZone::existing`]); a
//! preview without a zone drops the domain and serves on the load balancer's own address.
//!
//! The template owns its network and VMs: it gives the edge the public subnets, lets only the
//! edge's firewall reach its VMs on [`BACKEND_PORT`], and hands the VMs to [`finish`].

use konstacks_core::model::{
    Certificate, DnsRecord, DnsZone, Firewall, FirewallRule, Ingress, LoadBalancer, Ref, Scope, Stack, Subnet,
    TargetGroup, TargetHealthCheck, Vm, Vpc,
};

use crate::{grammar, Problems};

/// The port the load balancer sends requests to on every VM (a reverse proxy or Apache).
pub(crate) const BACKEND_PORT: u32 = 80;

/// The serving parameters of a template, borrowed from its own parameter type (each template
/// keeps them as top-level fields, so its JSON Schema lists them like any other).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Serving<'a> {
    /// The domain served over HTTPS.
    pub(crate) domain: Option<&'a String>,
    /// The DNS zone the stack owns.
    pub(crate) zone: Option<&'a String>,
    /// A load balancer even without a domain.
    pub(crate) load_balancer: bool,
    /// The path of the load balancer's health check.
    pub(crate) health_path: &'a str,
    /// Whether the stack owns the zone (creates and deletes it); a preview only uses it.
    pub(crate) owns_zone: bool,
}

impl<'a> Serving<'a> {
    /// Whether the VMs go behind a load balancer: a domain implies one.
    pub(crate) fn is_on(&self) -> bool {
        self.load_balancer || self.domain.is_some()
    }

    /// The serving of a preview `cx` names, if any: `<slug>.<zone>` in the zone it does not own
    /// (the name kept in `name`), or no domain without a zone; the load balancer stays either way.
    /// Checks run on the parameters as given, before this.
    pub(crate) fn for_context(self, cx: &crate::TemplateContext, name: &'a mut Option<String>) -> Serving<'a> {
        let Some(slug) = cx.preview.as_deref() else { return self };
        let load_balancer = self.is_on();
        match self.zone {
            Some(zone) => {
                let domain: &'a String = name.insert(format!("{slug}.{zone}"));
                Serving { domain: Some(domain), load_balancer, owns_zone: false, ..self }
            }
            None => Serving { domain: None, load_balancer, ..self },
        }
    }
}

/// Check the serving parameters, under `prefix` (`params.` or `params.app.`).
pub(crate) fn check(pr: &mut Problems, prefix: &str, s: &Serving<'_>) {
    pr.check_opt(format!("{prefix}domain"), s.domain, grammar::domain_name);
    pr.check_opt(format!("{prefix}zone"), s.zone, grammar::domain_name);
    if let (Some(d), Some(z)) = (s.domain, s.zone) {
        if d != z && !d.ends_with(&format!(".{z}")) {
            pr.push(
                format!("{prefix}zone"),
                format!(
                    "the domain `{}` is not inside the zone `{}`; name the zone that holds it",
                    grammar::shown(d),
                    grammar::shown(z)
                ),
            );
        }
    }
    if s.zone.is_some() && s.domain.is_none() {
        pr.push(format!("{prefix}zone"), "a zone without a domain serves nothing; give `domain` too");
    }
    if !s.health_path.starts_with('/') || s.health_path.chars().any(|c| c.is_control() || c.is_whitespace()) {
        pr.push(format!("{prefix}health_path"), "a URL path starting with `/`, without spaces or control characters");
    }
}

/// The edge while the template builds its VMs: the load balancer still to be given its target
/// group, its firewall, and the DNS zone when the stack owns it.
pub(crate) struct Edge {
    lb: LoadBalancer,
    firewall: Ref<Firewall>,
    zone: Option<Ref<DnsZone>>,
}

impl Edge {
    /// The one web rule of the VMs' firewall behind the load balancer: [`BACKEND_PORT`] from
    /// the load balancer's firewall.
    pub(crate) fn backend_rule(&self) -> FirewallRule {
        Ingress::tcp(BACKEND_PORT).from(self.firewall)
    }
}

/// Start the edge: the load balancer's firewall (`network/lb-fw`, 80 and 443 from anywhere), the
/// load balancer in `public` with HTTP on 80, and with a domain the certificate
/// (`edge/certificate`, validated in `edge/zone` when a zone is given, else by hand with the
/// records to create as the `certificate-validation-records` output) on an HTTPS listener.
pub(crate) fn start(stack: &Stack, s: &Serving<'_>, vpc: Ref<Vpc>, public: [Ref<Subnet>; 2]) -> Edge {
    let net = stack.scope("network");
    let firewall = net.add(
        "lb-fw",
        Firewall::new(vpc).allow(Ingress::tcp(80).from_anywhere()).allow(Ingress::tcp(443).from_anywhere()),
    );
    let mut lb = LoadBalancer::public(public).firewall(firewall).http(80);
    let mut zone = None;
    if let Some(domain) = s.domain {
        let edge = stack.scope("edge");
        let mut cert = Certificate::new([domain.clone()]);
        if let Some(z) = s.zone {
            let z = if s.owns_zone { DnsZone::new(z.clone()) } else { DnsZone::existing(z.clone()) };
            let z = edge.add("zone", z);
            cert = cert.validate_in(z);
            zone = Some(z);
        } else {
            cert = cert.manual_validation();
        }
        let cert = edge.add("certificate", cert);
        lb = lb.https(443, cert.id());
        stack.export("certificate-status", cert.status());
        if zone.is_none() {
            stack.export("certificate-validation-records", cert.validation_records());
        }
    }
    Edge { lb, firewall, zone }
}

/// Finish the edge: the target group `group` of `vms` on [`BACKEND_PORT`] with the health
/// check, the load balancer at `at/lb`, the domain's record in the zone, and the outputs: `url`
/// (`https://<domain>` with a domain, else the load balancer's URL), `lb-dns-name` and `domain`.
pub(crate) fn finish(stack: &Stack, at: &Scope, group: &str, s: &Serving<'_>, e: Edge, vms: Vec<Ref<Vm>>) {
    let group =
        TargetGroup::new(group, BACKEND_PORT).vms(vms).health_check(TargetHealthCheck::http(s.health_path.to_string()));
    let lb = at.add("lb", e.lb.target_group(group));
    // With a domain the site's address is the domain over HTTPS, known before anything exists;
    // the load balancer's own name stays in `lb-dns-name`.
    match s.domain {
        Some(domain) => stack.export_value("url", format!("https://{domain}")),
        None => stack.export("url", lb.url()),
    }
    stack.export("lb-dns-name", lb.dns_name());
    if let (Some(zone), Some(domain)) = (e.zone, s.domain) {
        let record = stack.scope("edge").add("record", DnsRecord::alias(zone, domain.clone(), lb.dns_name()));
        stack.export("domain", record.fqdn());
    }
}
