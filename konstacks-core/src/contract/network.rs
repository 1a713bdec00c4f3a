//! The network suite: VPCs, subnets and firewalls.

use crate::base::clock::OpContext;
use crate::base::error::ErrorKind;
use crate::contract::{
    anywhere, api, call_failed, check_firewall, check_subnet, check_vpc, eventually, failure, has_tags, retry, rule,
    unknown_id, ContractFailure, ContractOptions, Run, CONTRACT_TAG, RETRY_PUSHBACK, RETRY_UPDATE,
};
use crate::kind::{ResourceKind, Selector};
use crate::kinds::{Firewall, Protocol, RuleSource, Subnet, Vpc};
use crate::provider::Provider;

/// The network suite: VPCs, subnets and firewalls.
pub async fn run_network(p: &Provider, cx: &OpContext, o: &ContractOptions) -> Result<(), ContractFailure> {
    let mut run = Run::new(p, cx, o, "network");
    let result = network_checks(&mut run).await;
    run.finish(result).await
}

async fn network_checks(run: &mut Run<'_>) -> Result<(), ContractFailure> {
    let cx = run.cx;
    let (vpcs, subnets, firewalls) = (api::<Vpc>(run)?, api::<Subnet>(run)?, api::<Firewall>(run)?);
    let (vpcs, subnets, firewalls) = (&*vpcs, &*subnets, &*firewalls);

    // VPC: create, read, update.
    let vpc_spec = run.vpc_spec();
    let check = run.check("create_vpc");
    let vpc = run.create(Vpc::KIND, &check, || vpcs.create(cx, &vpc_spec)).await?;
    check_vpc(&check, &vpc_spec, &vpc)?;
    let read_vpcs = move |sel: Selector| async move { vpcs.read_many(cx, &sel).await };
    let check = run.check("read_vpcs");
    let got = run.check_reads(&check, &vpc.id, read_vpcs).await?;
    check_vpc(&check, &vpc_spec, &got)?;

    let check = run.check("update_vpc");
    let mut vpc_upd = vpc_spec.clone();
    vpc_upd.tags.insert(CONTRACT_TAG.into(), "updated".into());
    let updated = retry(cx, RETRY_UPDATE, || vpcs.update(cx, &vpc.id, &vpc_upd))
        .await
        .map_err(|e| call_failed(&check, "update_vpc", &e))?;
    check_vpc(&check, &vpc_upd, &updated)?;
    let ids = Selector::Ids(vec![vpc.id.clone()]);
    eventually(
        cx,
        &check,
        "reading the updated VPC",
        || read_vpcs(ids.clone()),
        |v| v.iter().any(|r| r.id == vpc.id && has_tags(&vpc_upd.tags, &r.tags)),
    )
    .await?;

    // Subnet: create, read, update.
    let sub_spec = run.subnet_spec("subnet", &vpc.id, 0, 0, false)?;
    let check = run.check("create_subnet");
    let subnet = run.create(Subnet::KIND, &check, || subnets.create(cx, &sub_spec)).await?;
    check_subnet(&check, &sub_spec, &subnet)?;
    let read_subnets = move |sel: Selector| async move { subnets.read_many(cx, &sel).await };
    let check = run.check("read_subnets");
    let got = run.check_reads(&check, &subnet.id, read_subnets).await?;
    check_subnet(&check, &sub_spec, &got)?;

    let check = run.check("update_subnet");
    let mut sub_upd = sub_spec.clone();
    sub_upd.public = true;
    sub_upd.tags.insert(CONTRACT_TAG.into(), "updated".into());
    let updated = retry(cx, RETRY_UPDATE, || subnets.update(cx, &subnet.id, &sub_upd))
        .await
        .map_err(|e| call_failed(&check, "update_subnet", &e))?;
    check_subnet(&check, &sub_upd, &updated)?;
    let ids = Selector::Ids(vec![subnet.id.clone()]);
    eventually(
        cx,
        &check,
        "reading the updated subnet",
        || read_subnets(ids.clone()),
        |v| v.iter().any(|r| r.id == subnet.id && r.public && has_tags(&sub_upd.tags, &r.tags)),
    )
    .await?;

    // Firewalls: one open to the world, one open to members of the first.
    let web_spec = run.firewall_spec("web", &vpc.id, vec![rule(Protocol::Tcp, 443, anywhere())]);
    let check = run.check("create_firewall");
    let web = run.create(Firewall::KIND, &check, || firewalls.create(cx, &web_spec)).await?;
    check_firewall(&check, &web_spec, &web)?;
    let db_spec =
        run.firewall_spec("db", &vpc.id, vec![rule(Protocol::Tcp, 5432, RuleSource::Firewall(web.id.clone()))]);
    let dbfw = run.create(Firewall::KIND, &check, || firewalls.create(cx, &db_spec)).await?;
    check_firewall(&check, &db_spec, &dbfw)?;
    let read_firewalls = move |sel: Selector| async move { firewalls.read_many(cx, &sel).await };
    let check = run.check("read_firewalls");
    let got = run.check_reads(&check, &web.id, read_firewalls).await?;
    check_firewall(&check, &web_spec, &got)?;
    let both = Selector::Ids(vec![web.id.clone(), dbfw.id.clone()]);
    let got =
        eventually(cx, &check, "reading both firewalls in one call", || read_firewalls(both.clone()), |v| v.len() == 2)
            .await?;
    if let Some(d) = got.iter().find(|r| r.id == dbfw.id) {
        check_firewall(&check, &db_spec, d)?;
    }

    let check = run.check("update_firewall.add_rule");
    let mut web_upd = web_spec.clone();
    web_upd.ingress.push(rule(Protocol::Tcp, 80, anywhere()));
    web_upd.ingress.sort();
    let updated = retry(cx, RETRY_UPDATE, || firewalls.update(cx, &web.id, &web_upd))
        .await
        .map_err(|e| call_failed(&check, "update_firewall", &e))?;
    check_firewall(&check, &web_upd, &updated)?;
    let ids = Selector::Ids(vec![web.id.clone()]);
    eventually(
        cx,
        &check,
        "reading the updated firewall",
        || read_firewalls(ids.clone()),
        |v| v.iter().any(|r| r.id == web.id && r.ingress.len() == 2),
    )
    .await?;

    let check = run.check("update_firewall.remove_rule");
    web_upd.ingress.retain(|r| r.from_port != 443);
    let updated = retry(cx, RETRY_UPDATE, || firewalls.update(cx, &web.id, &web_upd))
        .await
        .map_err(|e| call_failed(&check, "update_firewall", &e))?;
    check_firewall(&check, &web_upd, &updated)?;
    eventually(
        cx,
        &check,
        "reading the updated firewall",
        || read_firewalls(ids.clone()),
        |v| v.iter().any(|r| r.id == web.id && r.ingress == web_upd.ingress),
    )
    .await?;

    // A VPC that still has a subnet cannot be deleted.
    let check = run.check("delete_vpc_with_dependents");
    match retry(cx, RETRY_PUSHBACK, || vpcs.delete(cx, &vpc.id)).await {
        Err(e) if e.kind() == ErrorKind::Conflict => {}
        Err(e) => return Err(failure(&check, format!("expected a conflict, got {}: {}", e.kind(), e.full_chain()))),
        Ok(()) => return Err(failure(&check, "deleting a VPC that still has a subnet and firewalls succeeded")),
    }

    // Deleting what does not exist is NotFound or nothing.
    let check = run.check("delete_unknown");
    for (kind, id) in
        [(Vpc::KIND, &vpc.id), (Subnet::KIND, &subnet.id), (Firewall::KIND, &web.id)].map(|(k, id)| (k, unknown_id(id)))
    {
        match retry(cx, RETRY_PUSHBACK, || run.delete_raw(kind, &id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(failure(
                    &check,
                    format!(
                        "deleting the unknown {} `{id}` failed with {}: {}",
                        kind.as_str(),
                        e.kind(),
                        e.full_chain()
                    ),
                ))
            }
        }
    }

    run.delete(Firewall::KIND, &dbfw.id).await?;
    run.delete(Firewall::KIND, &web.id).await?;
    run.delete(Subnet::KIND, &subnet.id).await?;
    run.delete(Vpc::KIND, &vpc.id).await
}
