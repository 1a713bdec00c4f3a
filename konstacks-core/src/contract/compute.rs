//! The compute suite: a VM in a subnet behind a firewall.

use std::net::Ipv4Addr;

use crate::base::cidr::Cidr;
use crate::base::clock::OpContext;
use crate::contract::{
    anywhere, api, call_failed, ensure, eventually, failure, field, offer, retry, rule, same_offer, same_set,
    setup_vpc, tags, ContractFailure, ContractOptions, Run, CONTRACT_TAG, RETRY_UPDATE,
};
use crate::kind::{ResourceKind, Selector};
use crate::kinds::{Firewall, Protocol, Subnet, SubnetObserved, Vm, VmObserved, VmSpec, Vpc};
use crate::provider::Provider;

/// The compute suite: a VM in a subnet behind a firewall.
pub async fn run_compute(p: &Provider, cx: &OpContext, o: &ContractOptions) -> Result<(), ContractFailure> {
    let mut run = Run::new(p, cx, o, "compute");
    let result = compute_checks(&mut run).await;
    run.finish(result).await
}

async fn compute_checks(run: &mut Run<'_>) -> Result<(), ContractFailure> {
    let (p, cx) = (run.p, run.cx);
    let (subnets, firewalls, vms) = (api::<Subnet>(run)?, api::<Firewall>(run)?, api::<Vm>(run)?);
    let (subnets, firewalls, vms) = (&*subnets, &*firewalls, &*vms);
    let cat = p.catalog();
    let setup = run.check("setup");
    let size = cat.vm_sizes.first().ok_or_else(|| failure(&setup, "the catalogue lists no VM size"))?;
    let image = cat.images.first().ok_or_else(|| failure(&setup, "the catalogue lists no image"))?;

    let vpc = setup_vpc(run).await?;
    let sub_spec = run.subnet_spec("subnet", &vpc.id, 0, 0, true)?;
    let subnet = run.create(Subnet::KIND, &setup, || subnets.create(cx, &sub_spec)).await?;
    let fw_spec = run.firewall_spec("fw", &vpc.id, vec![rule(Protocol::Tcp, 22, anywhere())]);
    let fw = run.create(Firewall::KIND, &setup, || firewalls.create(cx, &fw_spec)).await?;

    let spec = VmSpec {
        name: run.name("vm"),
        region: run.o.region.clone(),
        image: image.slug.clone(),
        size: size.slug.clone(),
        subnet_id: subnet.id.clone(),
        firewall_ids: vec![fw.id.clone()],
        user_data: None,
        env: Default::default(),
        ssh_keys: Vec::new(),
        assign_public_ip: true,
        app: None,
        tags: run.tags("vm"),
    };
    let check = run.check("create_vm");
    let vm = run.create(Vm::KIND, &check, || vms.create(cx, &spec)).await?;
    check_vm(&check, p, &spec, &vm, &subnet)?;
    let read_vms = move |sel: Selector| async move { vms.read_many(cx, &sel).await };
    let check = run.check("read_vms");
    let got = run.check_reads(&check, &vm.id, read_vms).await?;
    check_vm(&check, p, &spec, &got, &subnet)?;

    let check = run.check("update_vm");
    let mut upd = spec.clone();
    if let Some(bigger) = cat.vm_sizes.get(1) {
        upd.size = bigger.slug.clone();
    }
    upd.tags.insert(CONTRACT_TAG.into(), "updated".into());
    let updated = retry(cx, RETRY_UPDATE, || vms.update(cx, &vm.id, &upd))
        .await
        .map_err(|e| call_failed(&check, "update_vm", &e))?;
    check_vm(&check, p, &upd, &updated, &subnet)?;
    let ids = Selector::Ids(vec![vm.id.clone()]);
    eventually(
        cx,
        &check,
        "reading the resized VM",
        || read_vms(ids.clone()),
        |v| v.iter().any(|r| r.id == vm.id && same_offer(&cat.vm_sizes, &upd.size, &r.size)),
    )
    .await?;

    run.delete(Vm::KIND, &vm.id).await?;
    run.delete(Firewall::KIND, &fw.id).await?;
    run.delete(Subnet::KIND, &subnet.id).await?;
    run.delete(Vpc::KIND, &vpc.id).await
}

fn check_vm(
    check: &str,
    p: &Provider,
    want: &VmSpec,
    got: &VmObserved,
    subnet: &SubnetObserved,
) -> Result<(), ContractFailure> {
    let cat = p.catalog();
    field(check, "name", &want.name, &got.name)?;
    field(check, "region", &want.region, &got.region)?;
    offer(check, "image", &cat.images, &want.image, &got.image)?;
    offer(check, "size", &cat.vm_sizes, &want.size, &got.size)?;
    field(check, "subnet_id", &want.subnet_id, &got.subnet_id)?;
    same_set(check, "firewall_ids", &want.firewall_ids, &got.firewall_ids)?;
    field(check, "assign_public_ip", &want.assign_public_ip, &got.assign_public_ip)?;
    let private: Option<Ipv4Addr> = got.private_ip.parse().ok();
    let block: Option<Cidr> = subnet.cidr.parse().ok();
    let inside = match (private, block) {
        (Some(ip), Some(block)) => format!("{ip}/32").parse::<Cidr>().is_ok_and(|host| block.contains(&host)),
        _ => false,
    };
    ensure(inside, check, || {
        format!("private_ip `{}` is not an address of the subnet block {}", got.private_ip, subnet.cidr)
    })?;
    if want.assign_public_ip {
        ensure(got.public_ip.parse::<Ipv4Addr>().is_ok(), check, || {
            format!("public_ip `{}` is not an IPv4 address, though one was asked for", got.public_ip)
        })?;
    }
    ensure(!got.status.is_empty(), check, || "field `status` is empty".into())?;
    tags(check, &want.tags, &got.tags)
}
