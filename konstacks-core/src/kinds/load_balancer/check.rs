//! Validation of a load balancer builder: every problem goes to the lowering context at once,
//! with a stable code and what to do. Also describes listeners and target groups as fields.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    CertificateId, HealthCheckSpec, HealthProtocol, LbScheme, ListenerKind, ListenerProtocol, LoadBalancer,
    TargetGroup, TargetHealthCheck, TlsPolicy,
};
use crate::kind::expr::Expr;
use crate::kind::fronts::ReleasePolicy;
use crate::kind::{FieldMap, LowerCx, StackCx};
use crate::kinds::subnet::Subnet;
use crate::kinds::vm::Vm;

/// Longest target group name (the strictest cloud's limit).
pub(crate) const MAX_GROUP_NAME: usize = 32;
/// Longest path prefix of a rule.
pub(crate) const MAX_PATH: usize = 128;
/// Longest deregistration delay, in seconds.
pub(crate) const MAX_DEREGISTRATION_DELAY: u32 = 3600;

fn port_ok(port: u32) -> bool {
    (1..=65535).contains(&port)
}

fn port16(port: u32) -> u16 {
    u16::try_from(port).unwrap_or(u16::MAX)
}

/// Subnets given, in distinct zones, and in at least two zones for a public load balancer.
pub(super) fn subnets(cx: &mut LowerCx<'_>, lb: &LoadBalancer, subnets: &[Option<usize>]) {
    if lb.subnets.is_empty() {
        cx.error(
            "missing-subnets",
            "a load balancer needs at least one subnet",
            "pass the subnets it should serve from (public ones in two zones for a public load balancer)",
        );
        return;
    }
    let unique: BTreeSet<usize> = subnets.iter().flatten().copied().collect();
    let mut by_zone: BTreeMap<u8, Vec<&str>> = BTreeMap::new();
    for i in &unique {
        if let Some(s) = cx.node::<Subnet>(*i) {
            by_zone.entry(s.zone_index()).or_default().push(cx.path_of(*i));
        }
    }
    for (zone, paths) in &by_zone {
        if paths.len() > 1 {
            cx.error(
                "subnets-share-a-zone",
                format!("subnets {} are all in zone {zone}", quoted(paths)),
                "give a load balancer one subnet per zone",
            );
        }
    }
    // Zones are counted only when every reference is valid (a bad one is reported already).
    let known = subnets.iter().all(Option::is_some) && !by_zone.is_empty();
    if lb.scheme == LbScheme::Public && known && by_zone.len() < 2 {
        cx.error(
            "public-lb-needs-two-zones",
            "a public load balancer needs subnets in at least two zones",
            "add a public subnet in a second zone (`.zone(1)`)",
        );
    }
}

fn quoted(paths: &[&str]) -> String {
    paths.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(" and ")
}

/// Valid references, each once, in the order first given: a subnet or firewall given twice is
/// one to every cloud.
pub(super) fn distinct(refs: &[Option<usize>]) -> Vec<Option<usize>> {
    let mut out: Vec<Option<usize>> = Vec::with_capacity(refs.len());
    for r in refs.iter().filter(|r| r.is_some()) {
        if !out.contains(r) {
            out.push(*r);
        }
    }
    out
}

/// What a provider whose load balancers have one pool of VMs cannot do.
pub(super) fn one_pool(cx: &mut LowerCx<'_>, lb: &LoadBalancer) {
    let Some(c) = cx.catalog().filter(|c| c.load_balancers_one_pool) else { return };
    let provider = c.provider.clone();
    if lb.target_groups.len() > 1 {
        cx.error(
            "lb-one-target-group",
            format!(
                "provider `{provider}`'s load balancers send every request to one pool of VMs; this one has {} target \
                 groups",
                lb.target_groups.len()
            ),
            "keep one target group, or use one load balancer per group",
        );
    }
    if !lb.routes.is_empty() {
        cx.error(
            "lb-rules-unsupported",
            format!("provider `{provider}`'s load balancers have no host or path rules"),
            "route inside the app (a reverse proxy on the VMs), or use one load balancer per host",
        );
    }
    for l in &lb.listeners {
        if let ListenerKind::Https { certificates } = &l.kind {
            if certificates.len() > 1 {
                cx.error(
                    "lb-one-certificate",
                    format!(
                        "provider `{provider}`'s load balancers serve one certificate per HTTPS listener; the one on \
                         port {} has {}",
                        l.port,
                        certificates.len()
                    ),
                    "use one certificate that covers every name (several domains or a wildcard)",
                );
            }
        }
    }
}

/// TLS passthrough listeners: offered by the provider, and the default group's health check
/// must not speak plain HTTP to targets that speak TLS on their traffic port.
pub(super) fn passthrough(cx: &mut LowerCx<'_>, lb: &LoadBalancer, default_group: &str) {
    let Some(port) = lb.listeners.iter().find(|l| matches!(l.kind, ListenerKind::TlsPassthrough)).map(|l| l.port)
    else {
        return;
    };
    if let Some(c) = cx.catalog().filter(|c| !c.load_balancers_pass_tls_through) {
        let provider = c.provider.clone();
        cx.error(
            "tls-passthrough-unsupported",
            format!(
                "provider `{provider}`'s load balancers terminate TLS themselves; the listener on port {port} \
                 cannot pass it through to the VMs"
            ),
            "use `.https(port, cert.id())` with a certificate of the stack, or a provider that passes TLS \
             through (DigitalOcean)",
        );
    }
    let Some(group) = lb.target_groups.iter().find(|g| g.name == default_group) else { return };
    if group.health.protocol == HealthProtocol::Http && group.health.port.is_none() {
        cx.error(
            "passthrough-health-check",
            format!(
                "the VMs of target group `{}` speak TLS on port {} behind the TLS passthrough listener on port \
                 {port}, but their health check sends plain HTTP there",
                group.name, group.port
            ),
            "probe with `TargetHealthCheck::https(\"/health\")` or `TargetHealthCheck::tcp()`, or on another port \
             with `.port(..)`",
        );
    }
}

/// The TLS policy HTTPS listeners get: the builder's, or the oldest version the named security
/// policy accepts. The name must be in the provider's catalogue, agree with an explicit TLS 1.3
/// floor, and serve an HTTPS listener.
pub(super) fn security_policy(cx: &mut LowerCx<'_>, lb: &LoadBalancer) -> TlsPolicy {
    let Some(name) = lb.security_policy.as_deref() else { return lb.tls_policy };
    if !lb.listeners.iter().any(|l| matches!(l.kind, ListenerKind::Https { .. })) {
        cx.error(
            "security-policy-without-https",
            format!("security policy `{name}` is set but the load balancer has no HTTPS listener"),
            "add `.https(443, cert.id())` or remove `.security_policy(..)`",
        );
    }
    let Some(c) = cx.catalog() else { return lb.tls_policy };
    let Some(offer) = c.tls_policy(name) else {
        let offered: Vec<&str> = c.tls_policies.iter().map(|p| p.name.as_str()).collect();
        cx.error(
            "unknown-security-policy",
            format!("provider `{}` offers no load balancer security policy `{name}`", c.provider),
            if offered.is_empty() {
                format!("provider `{}` has no named policies; use `.tls_policy(..)` alone", c.provider)
            } else {
                format!("use one of: {}", offered.join(", "))
            },
        );
        return lb.tls_policy;
    };
    let floor = if offer.min_tls_version == "1.3" { TlsPolicy::Tls13 } else { TlsPolicy::Tls12 };
    // Only TLS 1.3 can be asked for explicitly: TLS 1.2 is the default, which a policy overrides.
    if lb.tls_policy == TlsPolicy::Tls13 && floor != TlsPolicy::Tls13 {
        cx.error(
            "security-policy-conflict",
            format!(
                "security policy `{name}` accepts TLS {} and up, but `.tls_policy(TlsPolicy::Tls13)` asks for \
                 TLS 1.3 only",
                offer.min_tls_version
            ),
            "drop `.tls_policy(..)` (the security policy decides) or choose a policy with that floor",
        );
    }
    floor
}

/// The cost assumption is a finite, non-negative number.
pub(super) fn assumption(cx: &mut LowerCx<'_>, gb: f64) {
    if !(gb.is_finite() && gb >= 0.0) {
        cx.error(
            "invalid-assumption",
            format!("{gb} GB processed per month is not an amount of data"),
            "pass a finite, non-negative number of GB to `.assume_gb_processed_per_month`",
        );
    }
}

/// Listeners as fields (sorted by port): ports valid and unique, HTTPS with certificates, HTTP
/// redirected to the HTTPS port when there is one.
pub(super) fn listeners(cx: &mut LowerCx<'_>, lb: &LoadBalancer) -> Vec<Expr> {
    if lb.listeners.is_empty() {
        cx.error(
            "missing-listener",
            "a load balancer needs at least one listener",
            "add `.http(80)` or `.https(443, cert.id())`",
        );
    }
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    for (n, l) in lb.listeners.iter().enumerate() {
        if !port_ok(l.port) {
            cx.error(
                "port-out-of-range",
                format!("listener #{n}: port {} is outside 1..=65535", l.port),
                "use a port from 1 to 65535",
            );
        } else if let Some(first) = seen.insert(l.port, n) {
            cx.error(
                "listener-port-in-use",
                format!("listeners #{first} and #{n} both listen on port {}", l.port),
                "give every listener its own port; to serve several certificates on one port use \
                 `.https_certificates(port, [..])`",
            );
        }
        if let ListenerKind::Https { certificates } = &l.kind {
            if certificates.is_empty() {
                cx.error(
                    "missing-certificate",
                    format!("HTTPS listener on port {} has no certificate", l.port),
                    "pass at least one certificate id (`cert.id()`)",
                );
            }
        }
    }
    // HTTP redirects to the HTTPS listener (443 first), or to the TLS passthrough one.
    let https_port = lb
        .listeners
        .iter()
        .filter(|l| match &l.kind {
            ListenerKind::Https { certificates } => !certificates.is_empty(),
            ListenerKind::TlsPassthrough => true,
            ListenerKind::Http { .. } => false,
        })
        .map(|l| l.port)
        .filter(|p| port_ok(*p))
        .min_by_key(|p| (*p != 443, *p));
    let mut out: Vec<(u32, Expr)> = Vec::with_capacity(lb.listeners.len());
    for (n, l) in lb.listeners.iter().enumerate() {
        let (protocol, certs, redirect) = match &l.kind {
            ListenerKind::Http { redirect } => {
                (ListenerProtocol::Http, Vec::new(), https_port.filter(|_| *redirect).map(port16))
            }
            ListenerKind::Https { certificates } => {
                (ListenerProtocol::Https, certificate_ids(cx, n, certificates), None)
            }
            ListenerKind::TlsPassthrough => (ListenerProtocol::TlsPassthrough, Vec::new(), None),
        };
        out.push((
            l.port,
            Expr::Map(FieldMap::from([
                ("certificate_ids", Expr::List(certs)),
                ("port", Expr::lit(port16(l.port))),
                ("protocol", Expr::lit(protocol)),
                ("redirect_to_port", Expr::lit(redirect)),
            ])),
        ));
    }
    out.sort_by_key(|(port, _)| *port);
    out.into_iter().map(|(_, e)| e).collect()
}

fn certificate_ids(cx: &mut LowerCx<'_>, n: usize, certs: &[CertificateId]) -> Vec<Expr> {
    let mut out: Vec<Expr> = Vec::with_capacity(certs.len());
    for c in certs {
        let e = match c {
            CertificateId::Existing(id) if id.trim().is_empty() => {
                cx.error(
                    "missing-certificate",
                    format!("listener #{n}: a certificate id is empty"),
                    "pass the certificate's provider id, or `cert.id()` of a certificate of the stack",
                );
                continue;
            }
            CertificateId::Existing(id) => Expr::lit(id),
            CertificateId::Output(o) => match cx.target_any(o.source, &format!("listener #{n}'s certificate")) {
                Some(t) => cx.attr_of(t, o.attr, o.secret),
                None => continue,
            },
        };
        // The same certificate twice is one certificate to every cloud.
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

/// Target groups as fields (sorted by name): names valid and unique, ports, health checks.
pub(super) fn target_groups(cx: &mut LowerCx<'_>, lb: &LoadBalancer) -> Vec<Expr> {
    if lb.target_groups.is_empty() {
        cx.error(
            "missing-target-group",
            "a load balancer needs at least one target group",
            "add `.target_group(TargetGroup::new(\"app\", 8080).vms([web]))`",
        );
    }
    let mut names = BTreeSet::new();
    let mut out: Vec<(String, Expr)> = Vec::with_capacity(lb.target_groups.len());
    for g in &lb.target_groups {
        if let Some(why) = group_name_problem(&g.name) {
            cx.error(
                "invalid-target-group-name",
                format!("target group name `{}` {why}", g.name.escape_debug()),
                format!("use 1 to {MAX_GROUP_NAME} lowercase letters, digits and '-', not starting or ending with '-'"),
            );
        }
        if !names.insert(g.name.as_str()) {
            cx.error(
                "duplicate-target-group",
                format!("two target groups are named `{}`", g.name.escape_debug()),
                "give every target group of a load balancer its own name",
            );
            continue;
        }
        if !port_ok(g.port) {
            cx.error(
                "port-out-of-range",
                format!("target group `{}`: port {} is outside 1..=65535", g.name, g.port),
                "use a port from 1 to 65535",
            );
        }
        if g.deregistration_delay_s > MAX_DEREGISTRATION_DELAY {
            cx.error(
                "invalid-deregistration-delay",
                format!(
                    "target group `{}`: a deregistration delay of {} s is too long",
                    g.name, g.deregistration_delay_s
                ),
                format!("use 0 to {MAX_DEREGISTRATION_DELAY} seconds"),
            );
        }
        let health = health_check(cx, g);
        out.push((g.name.clone(), group_expr(cx, g, health)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, e)| e).collect()
}

fn group_expr(cx: &mut LowerCx<'_>, g: &TargetGroup, health: HealthCheckSpec) -> Expr {
    let what = format!("a target of group `{}`", g.name);
    let vms: Vec<Option<usize>> = g.vms.iter().map(|v| cx.target(*v, &what)).collect();
    let unique = distinct(&vms);
    let r = g.release;
    if r.max_surge + r.max_unavailable == 0 {
        cx.error(
            "invalid-release-policy",
            format!("target group `{}`: a release with no surge and no unavailability can never start", g.name),
            "allow at least one new target at a time: `.rolling(1, 0)`",
        );
    }
    if !(10..=3600).contains(&r.healthy_within_s) {
        cx.error(
            "invalid-release-policy",
            format!("target group `{}`: new targets given {} s to become healthy", g.name, r.healthy_within_s),
            "use 10 to 3600 seconds",
        );
    }
    let mut m = FieldMap::from([
        ("deregistration_delay_s", Expr::lit(g.deregistration_delay_s.min(MAX_DEREGISTRATION_DELAY))),
        ("health_check", Expr::lit(health)),
        ("name", Expr::lit(&g.name)),
        ("port", Expr::lit(port16(g.port))),
        ("vm_ids", cx.ids_of(&unique)),
    ]);
    // Only a policy other than the default is recorded, so existing stacks do not change.
    if r != ReleasePolicy::default() {
        m.insert("release".into(), Expr::lit(r));
    }
    Expr::Map(m)
}

fn group_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_GROUP_NAME {
        Some("is too long")
    } else if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        Some("contains characters other than lowercase letters, digits and '-'")
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("starts or ends with '-'")
    } else {
        None
    }
}

/// A health check in range, as its spec.
fn health_check(cx: &mut LowerCx<'_>, g: &TargetGroup) -> HealthCheckSpec {
    let h: &TargetHealthCheck = &g.health;
    let mut problems: Vec<String> = Vec::new();
    if !(5..=300).contains(&h.interval_s) {
        problems.push(format!("interval {} s is outside 5..=300", h.interval_s));
    }
    if h.timeout_s < 2 || h.timeout_s >= h.interval_s {
        problems.push(format!(
            "timeout {} s must be at least 2 s and below the interval ({} s)",
            h.timeout_s, h.interval_s
        ));
    }
    for (what, n) in [("healthy", h.healthy_threshold), ("unhealthy", h.unhealthy_threshold)] {
        if !(2..=10).contains(&n) {
            problems.push(format!("{what} threshold {n} is outside 2..=10"));
        }
    }
    if let Some(p) = h.port.filter(|p| !port_ok(*p)) {
        problems.push(format!("port {p} is outside 1..=65535"));
    }
    let http = h.protocol != HealthProtocol::Tcp;
    if http {
        if !h.path.starts_with('/') || h.path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            problems.push(format!("path `{}` must start with '/' and contain no space", h.path.escape_debug()));
        }
        if let Some(why) = status_problem(&h.expected_status) {
            problems.push(format!("expected status `{}` {why}", h.expected_status.escape_debug()));
        }
    }
    for p in problems {
        cx.error(
            "invalid-health-check",
            format!("target group `{}`: health check {p}", g.name),
            "use an interval of 5 to 300 s, a timeout of at least 2 s below it, thresholds of 2 to 10, a path \
             starting with '/' and status codes such as `200-399`",
        );
    }
    HealthCheckSpec {
        protocol: h.protocol,
        port: h.port.map(port16),
        path: http.then(|| h.path.clone()),
        interval_s: h.interval_s,
        timeout_s: h.timeout_s,
        healthy_threshold: h.healthy_threshold,
        unhealthy_threshold: h.unhealthy_threshold,
        expected_status: http.then(|| h.expected_status.clone()),
    }
}

/// `200`, `200-399` or `200,204`: codes from 200 to 499, ranges in order.
pub(crate) fn status_problem(s: &str) -> Option<&'static str> {
    let code = |c: &str| c.trim().parse::<u16>().ok().filter(|c| (200..=499).contains(c));
    if s.trim().is_empty() {
        return Some("is empty");
    }
    for part in s.split(',') {
        match part.split_once('-') {
            Some((lo, hi)) => match (code(lo), code(hi)) {
                (Some(lo), Some(hi)) if lo <= hi => {}
                (Some(_), Some(_)) => return Some("has a range whose end is before its start"),
                _ => return Some("must list HTTP codes from 200 to 499"),
            },
            None if code(part).is_some() => {}
            None => return Some("must list HTTP codes from 200 to 499"),
        }
    }
    None
}

/// Why a host name of a rule is not valid, if it is not: DNS labels of letters, digits and
/// '-', optionally a leading `*.` wildcard followed by at least two labels.
pub(crate) fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("is empty".into());
    }
    if host.len() > 253 {
        return Some(format!("is {} characters long; at most 253 are allowed", host.len()));
    }
    let (wildcard, rest) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    let labels: Vec<&str> = rest.split('.').collect();
    if wildcard && labels.len() < 2 {
        return Some("is a wildcard over a top-level domain; use `*.example.com`".into());
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Some(format!("has a label `{}` that is empty or longer than 63 characters", label.escape_debug()));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Some(format!(
                "has a label `{}` with characters other than letters, digits and '-' (a wildcard may only be a \
                 leading `*.`)",
                label.escape_debug()
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("has a label `{label}` that starts or ends with '-'"));
        }
    }
    None
}

/// Why a path prefix is not valid, if it is not.
pub(crate) fn path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some("does not start with '/'".into());
    }
    if path.len() > MAX_PATH {
        return Some(format!("is {} characters long; at most {MAX_PATH} are allowed", path.len()));
    }
    if let Some(c) = path.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '*')) {
        return Some(format!("contains {c:?}; a prefix is a plain path, without query, fragment or wildcard"));
    }
    None
}

/// What makes two rules match the same requests: the host (lowercase) and the path prefix.
type RuleKey<'a> = (Option<String>, Option<&'a str>);

/// Routing rules: valid hosts and paths, existing target groups, no two rules matching the same
/// requests. Returns the default target group.
pub(super) fn routing(cx: &mut LowerCx<'_>, lb: &LoadBalancer) -> String {
    let groups: BTreeSet<&str> = lb.target_groups.iter().map(|g| g.name.as_str()).collect();
    let known = |name: &str| groups.contains(name);
    let listed = || groups.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(", ");
    // (lowercase host, path prefix) -> the first rule matching them, and its description.
    let mut seen: BTreeMap<RuleKey<'_>, (usize, String)> = BTreeMap::new();
    for (n, r) in lb.routes.iter().enumerate() {
        let label = describe(r.host.as_deref(), r.path_prefix.as_deref());
        if r.host.is_none() && r.path_prefix.is_none() {
            cx.error(
                "empty-rule",
                format!("rule #{n} matches every request"),
                "give the rule a host or a path prefix; requests no rule matches go to `.default_to(..)`",
            );
        }
        if let Some(why) = r.host.as_deref().and_then(host_problem) {
            cx.error(
                "invalid-host",
                format!("rule #{n}: host `{}` {why}", r.host.as_deref().unwrap_or_default().escape_debug()),
                "use a DNS name such as `shop.example.com` or a wildcard such as `*.example.com`",
            );
        }
        if let Some(why) = r.path_prefix.as_deref().and_then(path_problem) {
            cx.error(
                "invalid-path",
                format!(
                    "rule #{n}: path prefix `{}` {why}",
                    r.path_prefix.as_deref().unwrap_or_default().escape_debug()
                ),
                "use a path such as `/api`",
            );
        }
        if r.target.is_empty() {
            cx.error(
                "unknown-target-group",
                format!("rule #{n} ({label}) sends requests nowhere"),
                "end the rule with `.to(\"group\")`",
            );
        } else if !known(&r.target) {
            cx.error(
                "unknown-target-group",
                format!("rule #{n} ({label}) sends requests to target group `{}`, which does not exist", r.target),
                format!("name one of the load balancer's target groups: {}", listed()),
            );
        }
        let key = (r.host.as_ref().map(|h| h.to_ascii_lowercase()), r.path_prefix.as_deref());
        if let Some((first, first_label)) = seen.get(&key) {
            cx.error(
                "overlapping-rules",
                format!("rules #{first} ({first_label}) and #{n} ({label}) match the same requests"),
                "merge them into one rule, or make their hosts or path prefixes differ",
            );
        } else {
            seen.insert(key, (n, label));
        }
    }
    match &lb.default_to {
        Some(d) if known(d) => d.clone(),
        Some(d) => {
            cx.error(
                "unknown-target-group",
                format!("the default target group `{d}` does not exist"),
                format!("name one of the load balancer's target groups: {}", listed()),
            );
            d.clone()
        }
        None if lb.target_groups.len() == 1 => lb.target_groups[0].name.clone(),
        None => {
            if lb.target_groups.len() > 1 {
                cx.error(
                    "missing-default-target-group",
                    "a load balancer with several target groups needs a default one",
                    format!("add `.default_to(..)` with one of: {}", listed()),
                );
            }
            String::new()
        }
    }
}

fn describe(host: Option<&str>, path: Option<&str>) -> String {
    match (host, path) {
        (Some(h), Some(p)) => format!("host `{h}`, path `{p}`"),
        (Some(h), None) => format!("host `{h}`, any path"),
        (None, Some(p)) => format!("any host, path `{p}`"),
        (None, None) => "every request".into(),
    }
}

/// Target VMs in subnets of the load balancer's VPC.
pub(super) fn target_vpcs(cx: &mut StackCx<'_>, i: usize, lb: &LoadBalancer) {
    let vpc_of_subnet = |cx: &StackCx<'_>, s| cx.index_of(s).and_then(|s| cx.node::<Subnet>(s)).map(Subnet::vpc);
    let Some(vpc) = lb.subnets.iter().find_map(|s| vpc_of_subnet(cx, *s)) else { return };
    let mut problems = Vec::new();
    for g in &lb.target_groups {
        for v in &g.vms {
            let Some(vm) = cx.index_of(*v).and_then(|x| cx.node::<Vm>(x)) else { continue };
            if vpc_of_subnet(cx, vm.subnet()).is_some_and(|vv| vv != vpc) {
                problems.push((g.name.clone(), cx.path(v.index as usize)));
            }
        }
    }
    for (group, vm) in problems {
        cx.error(
            i,
            "vpc-mismatch",
            format!("VM `{vm}` of target group `{group}` runs in another VPC than the load balancer's subnets"),
            "target VMs of the load balancer's VPC",
        );
    }
}
