//! The cache suite: a managed cache in two subnets behind a firewall.

use crate::base::clock::OpContext;
use crate::base::secret::Secret;
use crate::contract::{
    api, call_failed, ensure, eventually, failure, field, offer, retry, rule, same_offer, same_set, setup_vpc, tags,
    ContractFailure, ContractOptions, Run, RETRY_UPDATE,
};
use crate::kind::{ResourceKind, Selector};
use crate::kinds::{Cache, CacheEngine, CacheObserved, CacheSpec, Firewall, Protocol, RuleSource, Subnet, Vpc};
use crate::provider::Provider;

/// The cache suite.
pub async fn run_cache(p: &Provider, cx: &OpContext, o: &ContractOptions) -> Result<(), ContractFailure> {
    let mut run = Run::new(p, cx, o, "cache");
    let result = cache_checks(&mut run).await;
    run.finish(result).await
}

async fn cache_checks(run: &mut Run<'_>) -> Result<(), ContractFailure> {
    let (p, cx) = (run.p, run.cx);
    let (subnets, firewalls, caches) = (api::<Subnet>(run)?, api::<Firewall>(run)?, api::<Cache>(run)?);
    let (subnets, firewalls, caches) = (&*subnets, &*firewalls, &*caches);
    let cat = p.catalog();
    let setup = run.check("setup");
    let (engine, version) = [CacheEngine::Redis, CacheEngine::Valkey]
        .into_iter()
        .find_map(|e| cat.engine_versions(e.as_str()).last().map(|v| (e, v)))
        .ok_or_else(|| failure(&setup, "the catalogue lists no cache engine"))?;
    let size = cat.cache_sizes.first().ok_or_else(|| failure(&setup, "the catalogue lists no cache size"))?;

    let vpc = setup_vpc(run).await?;
    let second_zone = u8::from(cat.min_zones >= 2);
    let a_spec = run.subnet_spec("cache-a", &vpc.id, 0, 0, false)?;
    let a = run.create(Subnet::KIND, &setup, || subnets.create(cx, &a_spec)).await?;
    let b_spec = run.subnet_spec("cache-b", &vpc.id, 1, second_zone, false)?;
    let b = run.create(Subnet::KIND, &setup, || subnets.create(cx, &b_spec)).await?;
    let fw_spec = run.firewall_spec(
        "cache-fw",
        &vpc.id,
        vec![rule(Protocol::Tcp, engine.default_port(), RuleSource::Cidr(vpc.cidr.clone()))],
    );
    let fw = run.create(Firewall::KIND, &setup, || firewalls.create(cx, &fw_spec)).await?;

    // Where the provider cannot change high availability in place (a tier chosen at creation),
    // the cache is created highly available and the update stays in that tier.
    let ha_fixed =
        cat.replaced_on_change.iter().any(|f| f.kind == Cache::KIND.as_str() && f.field == "high_availability");
    let spec = CacheSpec {
        name: run.name("cache"),
        region: run.o.region.clone(),
        engine,
        version: version.clone(),
        size: size.slug.clone(),
        subnet_ids: vec![a.id.clone(), b.id.clone()],
        firewall_ids: vec![fw.id.clone()],
        replicas: u32::from(ha_fixed),
        high_availability: ha_fixed,
        transit_encryption: true,
        auth_token: Some(Secret::new("Contract-Auth-Token-0123456789".into())),
        tags: run.tags("cache"),
    };
    let check = run.check("create_cache");
    let created = run.create(Cache::KIND, &check, || caches.create(cx, &spec)).await?;
    check_cache(&check, p, &spec, &created)?;
    let read = move |sel: Selector| async move { caches.read_many(cx, &sel).await };
    let check = run.check("read_caches");
    let got = run.check_reads(&check, &created.id, read).await?;
    check_cache(&check, p, &spec, &got)?;

    let check = run.check("update_cache");
    let mut upd = spec.clone();
    // The auth token is sent on update only when it changes.
    upd.auth_token = None;
    upd.replicas = if ha_fixed { spec.replicas } else { 1 };
    upd.high_availability = true;
    if let Some(bigger) = cat.cache_sizes.get(1) {
        upd.size = bigger.slug.clone();
    }
    // Tags are checked on create only: DigitalOcean cannot retag a cluster (the database suite
    // documents that deviation), and the network suite covers tag updates.
    let updated = retry(cx, RETRY_UPDATE, || caches.update(cx, &created.id, &upd))
        .await
        .map_err(|e| call_failed(&check, "update_cache", &e))?;
    check_cache(&check, p, &upd, &updated)?;
    let ids = Selector::Ids(vec![created.id.clone()]);
    eventually(
        cx,
        &check,
        "reading the modified cache",
        || read(ids.clone()),
        |v| {
            v.iter().any(|r| {
                r.id == created.id && r.replicas == upd.replicas && same_offer(&cat.cache_sizes, &upd.size, &r.size)
            })
        },
    )
    .await?;

    run.delete(Cache::KIND, &created.id).await?;
    run.delete(Firewall::KIND, &fw.id).await?;
    run.delete(Subnet::KIND, &b.id).await?;
    run.delete(Subnet::KIND, &a.id).await?;
    run.delete(Vpc::KIND, &vpc.id).await
}

fn check_cache(check: &str, p: &Provider, want: &CacheSpec, got: &CacheObserved) -> Result<(), ContractFailure> {
    let cat = p.catalog();
    field(check, "name", &want.name, &got.name)?;
    field(check, "region", &want.region, &got.region)?;
    field(check, "engine", &want.engine, &got.engine)?;
    field(check, "version", &want.version, &got.version)?;
    offer(check, "size", &cat.cache_sizes, &want.size, &got.size)?;
    same_set(check, "subnet_ids", &want.subnet_ids, &got.subnet_ids)?;
    same_set(check, "firewall_ids", &want.firewall_ids, &got.firewall_ids)?;
    field(check, "replicas", &want.replicas, &got.replicas)?;
    field(check, "high_availability", &want.high_availability, &got.high_availability)?;
    field(check, "transit_encryption", &want.transit_encryption, &got.transit_encryption)?;
    ensure(!got.host.is_empty(), check, || "field `host` is empty".into())?;
    // Clouds pick the port (DigitalOcean serves caches on 25061): it must be a TCP port.
    ensure(got.port.parse::<u16>().is_ok_and(|p| p > 0), check, || {
        format!("field `port` is {:?}, not a TCP port", got.port)
    })?;
    ensure(!got.status.is_empty(), check, || "field `status` is empty".into())?;
    tags(check, &want.tags, &got.tags)
}
