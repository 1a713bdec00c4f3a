//! `baseline`: what every stack should satisfy, whatever it holds. No SSH or RDP open to the
//! internet, databases never reachable from the internet, databases encrypted at rest,
//! automated backups on for Postgres and MySQL, no public bucket without a recorded reason;
//! public load balancers redirect HTTP to HTTPS and accept TLS 1.2 or newer only.

use konstacks_core::model::load_balancer::{self, LbScheme, ListenerProtocol, ListenerSpec, TlsPolicy};
use konstacks_core::model::{bucket, database, Bucket, Cache, Database, Firewall, LoadBalancer};
use konstacks_core::policy::ResourceView;
use konstacks_core::policy::{Direction, Pack, PolicyContext, Rule, RuleOutcome, Severity};

/// Pack name.
pub const NAME: &str = "baseline";
/// Pack description.
pub const DESCRIPTION: &str =
    "No SSH/RDP from anywhere, databases never public, encryption at rest, backups on, public buckets justified, HTTPS on public load balancers";

/// The `baseline` pack.
pub fn pack() -> Pack {
    Pack::new(NAME, DESCRIPTION)
        .rule(NoAdminPortsFromAnywhere)
        .rule(DatabaseNotPublic)
        .rule(DatabaseEncrypted)
        .rule(DatabaseBackups)
        .rule(BucketPublicReadJustified)
        .rule(LoadBalancerHttps)
}

/// Ports whose exposure to the whole internet is refused, with their service name.
const ADMIN_PORTS: [(u32, &str); 2] = [(22, "SSH"), (3389, "RDP")];

/// `baseline/no-admin-ports-from-anywhere`: no firewall lets SSH (22) or RDP (3389) in from
/// 0.0.0.0/0, whether through a single port, a TCP range covering it, or an all-traffic rule.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAdminPortsFromAnywhere;

impl Rule for NoAdminPortsFromAnywhere {
    fn id(&self) -> &str {
        "baseline/no-admin-ports-from-anywhere"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "No SSH (22) or RDP (3389) open to the internet"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        let mut out = Vec::new();
        for fw in cx.of::<Firewall>() {
            let mut failed = false;
            let mut open_to_all = Vec::new();
            for rule in cx.firewall_rules(fw) {
                if rule.direction != Direction::Ingress || !rule.is_anywhere() {
                    continue;
                }
                open_to_all.push(rule.ports_label());
                let open: Vec<String> = ADMIN_PORTS
                    .iter()
                    .filter(|(p, _)| rule.covers_tcp(*p))
                    .map(|(p, name)| format!("{name} ({p})"))
                    .collect();
                if open.is_empty() {
                    continue;
                }
                failed = true;
                out.push(RuleOutcome::fail(
                    fw,
                    format!(
                        "{} allows {} from anywhere, which opens {}",
                        rule.label(),
                        rule.ports_label(),
                        open.join(" and ")
                    ),
                    "allow administration only from a known address, e.g. \
                     `Ingress::tcp(22).from_cidr(\"203.0.113.7/32\")`, or reach the VMs through a bastion or the \
                     provider's session manager",
                ));
            }
            if !failed {
                let detail = if open_to_all.is_empty() {
                    "nothing open to anywhere".to_string()
                } else {
                    format!("open to anywhere: {}", open_to_all.join(", "))
                };
                out.push(RuleOutcome::pass(fw).with_detail(detail));
            }
        }
        out
    }
}

/// `baseline/database-not-public`: no firewall attached to a database lets anything in from
/// 0.0.0.0/0, and no subnet of a database routes to the internet.
#[derive(Debug, Clone, Copy, Default)]
pub struct DatabaseNotPublic;

impl Rule for DatabaseNotPublic {
    fn id(&self) -> &str {
        "baseline/database-not-public"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "Databases are not reachable from the internet"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        let mut out = Vec::new();
        // Caches hold data too: the same exposure rules apply to them.
        let stores: Vec<ResourceView<'_>> = cx.of::<Database>().chain(cx.of::<Cache>()).collect();
        for db in stores {
            let before = out.len();
            for fw in cx.firewalls_of(db) {
                for rule in cx.firewall_rules(fw) {
                    if rule.direction == Direction::Ingress && rule.is_anywhere() {
                        out.push(RuleOutcome::fail(
                            db,
                            format!(
                                "its firewall `{}` ({}) allows {} from anywhere",
                                fw.path,
                                rule.label(),
                                rule.ports_label()
                            ),
                            format!(
                                "allow the database port only from the app's firewall, e.g. \
                                 `Ingress::tcp(5432).from(app_fw)`, in `{}`",
                                fw.path
                            ),
                        ));
                    }
                }
            }
            for subnet in cx.subnets_of(db) {
                if cx.is_public_subnet(subnet) {
                    out.push(RuleOutcome::fail(
                        db,
                        format!("it is placed in subnet `{}`, which is public (routes to the internet)", subnet.path),
                        "place databases only in private subnets (`Subnet::new(vpc, cidr)` without `.public()`), \
                         in two zones",
                    ));
                }
            }
            if out.len() == before {
                let subnets: Vec<String> = cx.subnets_of(db).iter().map(|s| format!("`{}`", s.path)).collect();
                let fws: Vec<String> = cx.firewalls_of(db).iter().map(|f| format!("`{}`", f.path)).collect();
                out.push(RuleOutcome::pass(db).with_detail(format!(
                    "private subnets {}; firewalls {} allow nothing from anywhere",
                    subnets.join(", "),
                    if fws.is_empty() { "(none)".to_string() } else { fws.join(", ") }
                )));
            }
        }
        out
    }
}

/// `baseline/database-encrypted`: every database is encrypted at rest.
#[derive(Debug, Clone, Copy, Default)]
pub struct DatabaseEncrypted;

impl Rule for DatabaseEncrypted {
    fn id(&self) -> &str {
        "baseline/database-encrypted"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "Databases are encrypted at rest"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        cx.of::<Database>()
            .map(|db| {
                if db.bool(database::field::ENCRYPTED) == Some(true) {
                    RuleOutcome::pass(db).with_detail("encrypted at rest")
                } else {
                    RuleOutcome::fail(
                        db,
                        "the database is not encrypted at rest",
                        "remove `.encrypted(false)` (encryption is the default); the change replaces the \
                         database, so restore its data from a snapshot into the encrypted one",
                    )
                }
            })
            .collect()
    }
}

/// `baseline/database-backups`: Postgres and MySQL keep automated backups for at least a day.
/// Caches (Redis, Valkey) are their own kind and not checked: they keep no backups.
#[derive(Debug, Clone, Copy, Default)]
pub struct DatabaseBackups;

impl Rule for DatabaseBackups {
    fn id(&self) -> &str {
        "baseline/database-backups"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "Postgres and MySQL keep automated backups (retention of at least 1 day)"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        cx.of::<Database>()
            .map(|db| {
                let days = db.u64(database::field::BACKUP_RETENTION_DAYS).unwrap_or(0);
                if days >= 1 {
                    RuleOutcome::pass(db).with_detail(format!("backup retention {days} days"))
                } else {
                    RuleOutcome::fail(
                        db,
                        "automated backups are off (retention 0 days)",
                        "keep backups with `.backups(7)` (1 to 35 days)",
                    )
                }
            })
            .collect()
    }
}

/// `baseline/load-balancer-https`: every load balancer accepts TLS 1.2 or newer only, and a
/// public one with a certificate redirects its HTTP listeners to HTTPS.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadBalancerHttps;

impl Rule for LoadBalancerHttps {
    fn id(&self) -> &str {
        "baseline/load-balancer-https"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "Public load balancers redirect HTTP to HTTPS; TLS 1.2 or newer"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        cx.of::<LoadBalancer>()
            .map(|lb| {
                // Certificate ids known only after apply read as text: only their number matters.
                let listeners: Vec<ListenerSpec> = lb
                    .field(load_balancer::field::LISTENERS)
                    .and_then(|e| serde_json::to_value(e).ok())
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default();
                let tls = lb.get(load_balancer::field::TLS_POLICY);
                if !matches!(tls, Some(TlsPolicy::Tls12 | TlsPolicy::Tls13)) {
                    return RuleOutcome::fail(
                        lb,
                        format!("its TLS policy {tls:?} is not TLS 1.2 or newer"),
                        "set `.tls_policy(TlsPolicy::Tls12)` or `Tls13`",
                    );
                }
                let public = lb.get(load_balancer::field::SCHEME) == Some(LbScheme::Public);
                // TLS passed through is encrypted to the VMs, which then choose its version.
                let passthrough = listeners.iter().any(|l| l.protocol == ListenerProtocol::TlsPassthrough);
                let https = passthrough
                    || listeners.iter().any(|l| l.protocol == ListenerProtocol::Https && !l.certificate_ids.is_empty());
                let plain: Vec<String> = listeners
                    .iter()
                    .filter(|l| l.protocol == ListenerProtocol::Http && l.redirect_to_port.is_none())
                    .map(|l| l.port.to_string())
                    .collect();
                if public && https && !plain.is_empty() {
                    return RuleOutcome::fail(
                        lb,
                        format!("public, with a certificate, yet serves plain HTTP on port(s) {}", plain.join(", ")),
                        "use `.http(port)`, which redirects to HTTPS, instead of `.http_without_redirect(port)`",
                    );
                }
                let detail = match (public, https) {
                    (true, true) => "HTTP redirects to HTTPS",
                    (true, false) => "public, without HTTPS listener",
                    (false, _) => "internal",
                };
                let versions = if passthrough { "TLS passed through to the VMs" } else { "TLS 1.2 or newer" };
                RuleOutcome::pass(lb).with_detail(format!("{detail}; {versions}"))
            })
            .collect()
    }
}

/// `baseline/bucket-public-read-justified`: a bucket anyone may read records why. The `Bucket`
/// builder already refuses public read access without a reason; this rule checks the spec
/// field itself, so a stack built another way is held to the same bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct BucketPublicReadJustified;

impl Rule for BucketPublicReadJustified {
    fn id(&self) -> &str {
        "baseline/bucket-public-read-justified"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "Buckets are private unless a reason for public read access is recorded"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        cx.of::<Bucket>()
            .map(|b| {
                if b.bool(bucket::field::PUBLIC_READ) != Some(true) {
                    return RuleOutcome::pass(b).with_detail("public access blocked");
                }
                let reason = b.get(bucket::field::PUBLIC_READ_REASON).flatten().unwrap_or_default();
                if reason.trim().is_empty() {
                    RuleOutcome::fail(
                        b,
                        "anyone may read the bucket's objects, and no reason is recorded",
                        "record why with `.public_read(\"static assets of the public website\")`, or drop public \
                         read access",
                    )
                } else {
                    RuleOutcome::pass(b).with_detail(format!("public read access: {}", reason.trim()))
                }
            })
            .collect()
    }
}
