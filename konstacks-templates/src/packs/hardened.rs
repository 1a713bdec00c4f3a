//! `hardened`: for health and finance workloads, on top of [`baseline`](super::baseline).
//!
//! - Backups: Postgres and MySQL keep at least 30 days in prod and at least 7 days in dev and
//!   staging (prod holds the data an incident or an audit reaches back for; 30 days covers a
//!   monthly review cycle, and providers cap automated retention at 35).
//! - Deletion protection and high availability on every database: errors in prod, warnings in
//!   dev and staging (a non-prod copy may reasonably go without a standby).
//! - No public IP on the private tiers: a VM with a public IP must sit in a public subnet that no
//!   database uses, and share no firewall with a database.
//! - Database firewalls should not allow all outbound traffic (a warning: it is the firewall
//!   default, and closing it is defence in depth against exfiltration).

use konstacks_core::model::{cache, database, vm, Cache, Database, Firewall, Stage, Vm};
use konstacks_core::policy::{Direction, Pack, PolicyContext, Rule, RuleOutcome, Severity};

/// Pack name.
pub const NAME: &str = "hardened";
/// Pack description.
pub const DESCRIPTION: &str = "Health and finance: backups of 30 days in prod (7 otherwise), deletion protection, \
                               high availability, no public IPs on database tiers, restricted database egress, \
                               plus baseline";

/// The `hardened` pack (includes `baseline`).
pub fn pack() -> Pack {
    Pack::new(NAME, DESCRIPTION)
        .rule(LongBackups)
        .rule(DeletionProtection)
        .rule(HighAvailability)
        .rule(NoPublicIpOnPrivateTiers)
        .rule(DatabaseEgressRestricted)
        .include(super::baseline::pack())
}

/// Minimum backup retention (days) required by [`LongBackups`] for a stage.
pub fn min_backup_days(stage: Stage) -> u64 {
    match stage {
        Stage::Prod => 30,
        _ => 7,
    }
}

/// `hardened/backup-retention`: Postgres and MySQL keep backups for at least
/// [`min_backup_days`] (30 in prod, 7 otherwise).
#[derive(Debug, Clone, Copy, Default)]
pub struct LongBackups;

impl Rule for LongBackups {
    fn id(&self) -> &str {
        "hardened/backup-retention"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "Postgres and MySQL keep backups for at least 30 days in prod, 7 days otherwise"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        let min = min_backup_days(cx.stage());
        cx.of::<Database>()
            .map(|db| {
                let days = db.u64(database::field::BACKUP_RETENTION_DAYS).unwrap_or(0);
                if days >= min {
                    RuleOutcome::pass(db).with_detail(format!("backup retention {days} days (at least {min})"))
                } else {
                    RuleOutcome::fail(
                        db,
                        format!(
                            "backups are kept for {days} days; a {} stack under `hardened` needs at least {min}",
                            cx.stage().as_str()
                        ),
                        format!("set `.backups({min})` or more (at most 35)"),
                    )
                }
            })
            .collect()
    }
}

/// `hardened/database-deletion-protection`: databases refuse deletion until protection is
/// turned off (error in prod, warning otherwise).
#[derive(Debug, Clone, Copy, Default)]
pub struct DeletionProtection;

impl Rule for DeletionProtection {
    fn id(&self) -> &str {
        "hardened/database-deletion-protection"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "Databases have deletion protection (required in prod)"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        let severity = if cx.stage() == Stage::Prod { Severity::Error } else { Severity::Warning };
        cx.of::<Database>()
            .map(|db| {
                if db.bool(database::field::DELETION_PROTECTION) == Some(true) {
                    RuleOutcome::pass(db).with_detail("deletion protection on")
                } else {
                    RuleOutcome::fail(
                        db,
                        "deletion protection is off: one mistaken destroy deletes the data",
                        "set `.deletion_protection(true)`",
                    )
                    .with_severity(severity)
                }
            })
            .collect()
    }
}

/// `hardened/database-high-availability`: databases run with a standby in a second zone (error
/// in prod, warning otherwise).
#[derive(Debug, Clone, Copy, Default)]
pub struct HighAvailability;

impl Rule for HighAvailability {
    fn id(&self) -> &str {
        "hardened/database-high-availability"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "Databases run highly available, with a standby in a second zone (required in prod)"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        let severity = if cx.stage() == Stage::Prod { Severity::Error } else { Severity::Warning };
        let stores = cx.of::<Database>().chain(cx.of::<Cache>());
        stores
            .map(|db| {
                let ha = db.bool(database::field::HIGH_AVAILABILITY).or(db.bool(cache::field::HIGH_AVAILABILITY));
                if ha == Some(true) {
                    RuleOutcome::pass(db).with_detail("standby in a second zone")
                } else {
                    RuleOutcome::fail(
                        db,
                        "high availability is off: a zone failure takes the database down",
                        "set `.high_availability(true)` and give the database subnets in two zones",
                    )
                    .with_severity(severity)
                }
            })
            .collect()
    }
}

/// `hardened/no-public-ip-on-private-tiers`: a VM with a public IP must be in a public subnet,
/// in no subnet a database uses, and share no firewall with a database.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPublicIpOnPrivateTiers;

impl Rule for NoPublicIpOnPrivateTiers {
    fn id(&self) -> &str {
        "hardened/no-public-ip-on-private-tiers"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "No public IP on VMs in private subnets or on the database tier"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        let db_subnets: Vec<usize> = cx.of::<Database>().flat_map(|db| cx.subnets_of(db)).map(|s| s.index).collect();
        let fix = "remove `.public_ip(true)` and reach the VM through a load balancer or a bastion in a public \
                   subnet, or move it to a public subnet of its own web tier";
        let mut out = Vec::new();
        for vm in cx.of::<Vm>() {
            if vm.bool(vm::field::ASSIGN_PUBLIC_IP) != Some(true) {
                out.push(RuleOutcome::pass(vm).with_detail("no public IP"));
                continue;
            }
            let before = out.len();
            for subnet in cx.subnets_of(vm) {
                if !cx.is_public_subnet(subnet) {
                    out.push(RuleOutcome::fail(
                        vm,
                        format!("the VM has a public IP but sits in private subnet `{}`", subnet.path),
                        fix,
                    ));
                }
                if db_subnets.contains(&subnet.index) {
                    out.push(RuleOutcome::fail(
                        vm,
                        format!("the VM has a public IP in subnet `{}`, which a database uses", subnet.path),
                        fix,
                    ));
                }
            }
            for fw in cx.firewalls_of(vm) {
                if cx.guards_database(fw) {
                    out.push(RuleOutcome::fail(
                        vm,
                        format!(
                            "the VM has a public IP and shares firewall `{}` with a database (database tier)",
                            fw.path
                        ),
                        fix,
                    ));
                }
            }
            if out.len() == before {
                let subnets: Vec<String> = cx.subnets_of(vm).iter().map(|s| format!("`{}`", s.path)).collect();
                out.push(
                    RuleOutcome::pass(vm).with_detail(format!(
                        "public IP in public subnet {}, off the database tier",
                        subnets.join(", ")
                    )),
                );
            }
        }
        out
    }
}

/// `hardened/database-egress-restricted` (warning): firewalls attached to databases do not
/// allow outbound traffic to the whole internet.
#[derive(Debug, Clone, Copy, Default)]
pub struct DatabaseEgressRestricted;

impl Rule for DatabaseEgressRestricted {
    fn id(&self) -> &str {
        "hardened/database-egress-restricted"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn title(&self) -> &str {
        "Database firewalls do not allow outbound traffic to the whole internet"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        let mut out = Vec::new();
        for fw in cx.of::<Firewall>().filter(|fw| cx.guards_database(*fw)) {
            let open: Vec<_> = cx
                .firewall_rules(fw)
                .into_iter()
                .filter(|r| r.direction == Direction::Egress && r.is_anywhere())
                .collect();
            if open.is_empty() {
                out.push(RuleOutcome::pass(fw).with_detail("no egress to anywhere"));
            }
            for rule in open {
                out.push(RuleOutcome::fail(
                    fw,
                    format!("{} of this database firewall allows {} to anywhere", rule.label(), rule.ports_label()),
                    "call `.restrict_egress()` on the firewall and allow only the destinations the database needs",
                ));
            }
        }
        out
    }
}
