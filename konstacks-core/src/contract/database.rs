//! The database suite: a managed database in two subnets behind a firewall.

use crate::base::clock::OpContext;
use crate::base::secret::Secret;
use crate::contract::{
    api, call_failed, ensure, eventually, failure, field, offer, retry, rule, same_offer, same_set, setup_vpc, tags,
    ContractFailure, ContractOptions, Run, CONTRACT_TAG, RETRY_UPDATE,
};
use crate::kind::{ResourceKind, Selector};
use crate::kinds::{Database, DatabaseObserved, DatabaseSpec, DbEngine, Firewall, Protocol, RuleSource, Subnet, Vpc};
use crate::provider::Provider;

/// The database suite: a managed database in two subnets behind a firewall.
pub async fn run_database(p: &Provider, cx: &OpContext, o: &ContractOptions) -> Result<(), ContractFailure> {
    let mut run = Run::new(p, cx, o, "database");
    let result = database_checks(&mut run).await;
    run.finish(result).await
}

async fn database_checks(run: &mut Run<'_>) -> Result<(), ContractFailure> {
    let (p, cx) = (run.p, run.cx);
    let (subnets, firewalls, dbs) = (api::<Subnet>(run)?, api::<Firewall>(run)?, api::<Database>(run)?);
    let (subnets, firewalls, dbs) = (&*subnets, &*firewalls, &*dbs);
    let cat = p.catalog();
    let setup = run.check("setup");
    let (engine, version) = [DbEngine::Postgres, DbEngine::Mysql]
        .into_iter()
        .find_map(|e| cat.engine_versions(e.as_str()).first().map(|v| (e, v)))
        .ok_or_else(|| failure(&setup, "the catalogue lists no database engine"))?;
    let size = cat.db_sizes.first().ok_or_else(|| failure(&setup, "the catalogue lists no database size"))?;

    let vpc = setup_vpc(run).await?;
    // Managed databases usually want subnets in two zones.
    let second_zone = u8::from(cat.min_zones >= 2);
    let a_spec = run.subnet_spec("db-a", &vpc.id, 0, 0, false)?;
    let a = run.create(Subnet::KIND, &setup, || subnets.create(cx, &a_spec)).await?;
    let b_spec = run.subnet_spec("db-b", &vpc.id, 1, second_zone, false)?;
    let b = run.create(Subnet::KIND, &setup, || subnets.create(cx, &b_spec)).await?;
    let port = engine.default_port();
    let fw_spec =
        run.firewall_spec("db-fw", &vpc.id, vec![rule(Protocol::Tcp, port, RuleSource::Cidr(vpc.cidr.clone()))]);
    let fw = run.create(Firewall::KIND, &setup, || firewalls.create(cx, &fw_spec)).await?;

    let spec = DatabaseSpec {
        name: run.name("db"),
        region: run.o.region.clone(),
        engine,
        version: version.clone(),
        size: size.slug.clone(),
        storage_gb: 20,
        subnet_ids: vec![a.id.clone(), b.id.clone()],
        firewall_ids: vec![fw.id.clone()],
        backup_retention_days: 1,
        encrypted: true,
        high_availability: false,
        deletion_protection: false,
        apply_immediately: true,
        password: Some(Secret::new("Contract-Passw0rd-42".into())),
        tags: run.tags("db"),
    };
    let check = run.check("create_database");
    let created = run.create(Database::KIND, &check, || dbs.create(cx, &spec)).await?;
    check_database(&check, p, &spec, &created)?;
    let read_dbs = move |sel: Selector| async move { dbs.read_many(cx, &sel).await };
    let check = run.check("read_databases");
    let got = run.check_reads(&check, &created.id, read_dbs).await?;
    check_database(&check, p, &spec, &got)?;

    let check = run.check("update_database");
    let mut upd = spec.clone();
    // The password is sent on update only when it changes.
    upd.password = None;
    upd.backup_retention_days = 3;
    if let Some(bigger) = cat.db_sizes.get(1) {
        upd.size = bigger.slug.clone();
    }
    upd.tags.insert(CONTRACT_TAG.into(), "updated".into());
    let updated = retry(cx, RETRY_UPDATE, || dbs.update(cx, &created.id, &upd))
        .await
        .map_err(|e| call_failed(&check, "update_database", &e))?;
    check_database(&check, p, &upd, &updated)?;
    let ids = Selector::Ids(vec![created.id.clone()]);
    eventually(
        cx,
        &check,
        "reading the modified database",
        || read_dbs(ids.clone()),
        |v| {
            v.iter().any(|r| {
                r.id == created.id
                    && r.backup_retention_days == upd.backup_retention_days
                    && same_offer(&cat.db_sizes, &upd.size, &r.size)
            })
        },
    )
    .await?;

    run.delete(Database::KIND, &created.id).await?;
    run.delete(Firewall::KIND, &fw.id).await?;
    run.delete(Subnet::KIND, &b.id).await?;
    run.delete(Subnet::KIND, &a.id).await?;
    run.delete(Vpc::KIND, &vpc.id).await
}

fn check_database(
    check: &str,
    p: &Provider,
    want: &DatabaseSpec,
    got: &DatabaseObserved,
) -> Result<(), ContractFailure> {
    let cat = p.catalog();
    field(check, "name", &want.name, &got.name)?;
    field(check, "region", &want.region, &got.region)?;
    field(check, "engine", &want.engine, &got.engine)?;
    field(check, "version", &want.version, &got.version)?;
    offer(check, "size", &cat.db_sizes, &want.size, &got.size)?;
    field(check, "storage_gb", &want.storage_gb, &got.storage_gb)?;
    same_set(check, "subnet_ids", &want.subnet_ids, &got.subnet_ids)?;
    same_set(check, "firewall_ids", &want.firewall_ids, &got.firewall_ids)?;
    field(check, "backup_retention_days", &want.backup_retention_days, &got.backup_retention_days)?;
    field(check, "encrypted", &want.encrypted, &got.encrypted)?;
    field(check, "high_availability", &want.high_availability, &got.high_availability)?;
    field(check, "deletion_protection", &want.deletion_protection, &got.deletion_protection)?;
    ensure(!got.host.is_empty(), check, || "field `host` is empty".into())?;
    field(check, "port", want.engine.default_port().to_string().as_str(), got.port.as_str())?;
    ensure(!got.status.is_empty(), check, || "field `status` is empty".into())?;
    tags(check, &want.tags, &got.tags)
}
