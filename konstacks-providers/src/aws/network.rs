//! VPCs, subnets and security groups on EC2.
//!
//! A VPC owns two helper resources Konstacks creates with it: an internet gateway and a route
//! table (`<vpc>-public`, tagged `konstacks:aws:role = public-route-table`) whose default route
//! goes to that gateway. Public subnets are associated with that route table; private subnets
//! stay on the VPC's main route table, which has only the local route. Deleting the VPC deletes
//! both helpers. Security-group rules are flattened to one rule per protocol, port range and
//! peer, and updated rule by rule (authorize / revoke), never by recreating the group.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, IpPermission, IpRange, ResourceType, RouteTable, SecurityGroup, UserIdGroupPair,
};
use konstacks_core::cidr::Cidr;
use konstacks_core::clock::OpContext;
use konstacks_core::error::{ErrorKind, ProviderError};
use konstacks_core::model::Protocol;
use konstacks_core::model::{Firewall, Subnet, Vpc};
use konstacks_core::provider::{Api, ProviderResult};
use konstacks_core::spec::{
    FirewallObserved, FirewallSpec, RuleSource, RuleSpec, Selector, SubnetObserved, SubnetSpec, Tags, VpcObserved,
    VpcSpec, TAG_NAME, TAG_PATH,
};

use super::error::{aws_code, invalid, sdk_error};
use super::{
    check_tags, ec2_filter, ec2_tag_map, ec2_tag_spec, follow_up, follow_up_create, id_chunks, name_of, read_chunks,
    stack_filter, sync_ec2_tags, visible_tags, AwsProvider, TAG_ROLE,
};

const ROLE_IGW: &str = "internet-gateway";
const ROLE_PUBLIC_RT: &str = "public-route-table";
const ANYWHERE: &str = "0.0.0.0/0";

fn parse_block(what: &str, s: &str) -> ProviderResult<Cidr> {
    s.parse::<Cidr>().map_err(|e| invalid(format!("{what} `{s}` is not an IPv4 block: {e}")))
}

fn missing(what: &str) -> ProviderError {
    ProviderError::new(ErrorKind::Other, format!("AWS answered without {what}; this is unexpected, retry"))
}

/// Tags of a helper resource of a VPC: the VPC's tags with its own Name and role.
fn helper_tags(vpc_tags: &BTreeMap<String, String>, suffix: &str) -> Tags {
    let mut t: Tags = vpc_tags
        .iter()
        .filter(|(k, _)| !k.starts_with("aws:") && !k.starts_with(super::INTERNAL_TAG_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let name = vpc_tags.get(TAG_NAME).cloned().unwrap_or_default();
    t.insert(TAG_NAME.to_string(), if name.is_empty() { suffix.to_string() } else { format!("{name}-{suffix}") });
    if let Some(p) = vpc_tags.get(TAG_PATH) {
        t.insert(TAG_PATH.to_string(), format!("{p}#{suffix}"));
    }
    t
}

// ---- rules ----

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
        _ => "-1",
    }
}

fn protocol_of(s: &str) -> Option<Protocol> {
    match s {
        "tcp" | "6" => Some(Protocol::Tcp),
        "udp" | "17" => Some(Protocol::Udp),
        "icmp" | "1" => Some(Protocol::Icmp),
        "-1" | "all" => Some(Protocol::All),
        _ => None,
    }
}

fn permission(r: &RuleSpec) -> IpPermission {
    let mut b = IpPermission::builder().ip_protocol(protocol_name(r.protocol));
    b = match r.protocol {
        Protocol::Tcp | Protocol::Udp => b.from_port(i32::from(r.from_port)).to_port(i32::from(r.to_port)),
        Protocol::Icmp => b.from_port(-1).to_port(-1),
        _ => b,
    };
    match &r.peer {
        RuleSource::Cidr(c) => b.ip_ranges(IpRange::builder().cidr_ip(c).build()),
        RuleSource::Firewall(g) => b.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build()),
    }
    .build()
}

/// Flatten AWS permissions into sorted rules. Peers Konstacks cannot express (IPv6 ranges,
/// prefix lists) and unknown protocols are left out.
fn rules_of(perms: &[IpPermission]) -> Vec<RuleSpec> {
    let mut out = BTreeSet::new();
    for p in perms {
        let Some(protocol) = p.ip_protocol().and_then(protocol_of) else { continue };
        let port = |v: Option<i32>| v.and_then(|v| u16::try_from(v).ok()).unwrap_or(0);
        let (from_port, to_port) = match protocol {
            Protocol::Tcp | Protocol::Udp => (port(p.from_port()), port(p.to_port())),
            _ => (0, 0),
        };
        for r in p.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                out.insert(RuleSpec { protocol, from_port, to_port, peer: RuleSource::Cidr(c.to_string()) });
            }
        }
        for g in p.user_id_group_pairs() {
            if let Some(id) = g.group_id() {
                out.insert(RuleSpec { protocol, from_port, to_port, peer: RuleSource::Firewall(id.to_string()) });
            }
        }
    }
    out.into_iter().collect()
}

fn check_rules(what: &str, rules: &[RuleSpec]) -> ProviderResult<()> {
    for r in rules {
        if r.from_port > r.to_port {
            return Err(invalid(format!("{what}: port range {}-{} is reversed", r.from_port, r.to_port)));
        }
        match &r.peer {
            RuleSource::Cidr(c) => {
                parse_block(&format!("{what}: rule peer"), c)?;
            }
            RuleSource::Firewall(g) if g.is_empty() => {
                return Err(invalid(format!("{what}: a rule names an empty security group id")));
            }
            RuleSource::Firewall(_) => {}
        }
    }
    Ok(())
}

fn sorted(rules: &[RuleSpec]) -> Vec<RuleSpec> {
    rules.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
}

fn firewall_observed(region: &str, g: &SecurityGroup) -> FirewallObserved {
    let tags = ec2_tag_map(g.tags());
    FirewallObserved {
        id: g.group_id().unwrap_or_default().to_string(),
        name: g.group_name().unwrap_or_default().to_string(),
        region: region.to_string(),
        vpc_id: g.vpc_id().unwrap_or_default().to_string(),
        ingress: rules_of(g.ip_permissions()),
        egress: rules_of(g.ip_permissions_egress()),
        tags: visible_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    }
}

/// Whether a route table sends the default route to an internet gateway.
fn routes_out(rt: &RouteTable) -> bool {
    rt.routes().iter().any(|r| {
        r.destination_cidr_block() == Some(ANYWHERE)
            && r.gateway_id().is_some_and(|g| g.starts_with("igw-"))
            && r.state().is_none_or(|s| s.as_str() == "active")
    })
}

impl AwsProvider {
    // ---- VPC ----

    async fn describe_vpcs(&self, filters: Vec<Filter>) -> ProviderResult<Vec<aws_sdk_ec2::types::Vpc>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .ec2
                .describe_vpcs()
                .set_filters(Some(filters.clone()))
                .max_results(1000)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeVpcs", "reading VPCs", e))?;
            out.extend(page.vpcs().iter().cloned());
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    fn vpc_observed(&self, v: &aws_sdk_ec2::types::Vpc) -> VpcObserved {
        let tags = ec2_tag_map(v.tags());
        VpcObserved {
            id: v.vpc_id().unwrap_or_default().to_string(),
            name: name_of(&tags),
            region: self.region.clone(),
            cidr: v.cidr_block().unwrap_or_default().to_string(),
            tags: visible_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        }
    }

    async fn vpc_by_id(&self, id: &str) -> ProviderResult<aws_sdk_ec2::types::Vpc> {
        self.describe_vpcs(vec![ec2_filter("vpc-id", [id])])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::not_found(format!("VPC `{id}` does not exist in `{}`", self.region)))
    }

    /// The VPC's internet gateway and public route table, created when missing. Returns the
    /// route table id.
    async fn ensure_public_route_table(&self, cx: &OpContext, vpc_id: &str) -> ProviderResult<String> {
        let lock = self.vpc_lock(vpc_id);
        let _guard = lock.lock().await;
        let patience = self.settings.timeouts.follow_up;
        let vpc = follow_up(cx, patience, || self.vpc_by_id(vpc_id)).await?;
        let vpc_tags = ec2_tag_map(vpc.tags());

        let rts = follow_up(cx, patience, || self.public_route_tables(vpc_id)).await?;
        if let Some(rt) = rts.iter().find(|rt| routes_out(rt)) {
            return rt.route_table_id().map(str::to_string).ok_or_else(|| missing("a route table id"));
        }

        let gateways = follow_up(cx, patience, || async {
            self.ec2
                .describe_internet_gateways()
                .filters(ec2_filter("attachment.vpc-id", [vpc_id]))
                .send()
                .await
                .map_err(|e| {
                    sdk_error("DescribeInternetGateways", &format!("finding the internet gateway of `{vpc_id}`"), e)
                })
        })
        .await?;
        let igw = match gateways.internet_gateways().iter().find_map(|g| g.internet_gateway_id()) {
            Some(id) => id.to_string(),
            None => {
                let tags = helper_tags(&vpc_tags, "igw");
                let created = follow_up_create(cx, patience, || async {
                    self.ec2
                        .create_internet_gateway()
                        .tag_specifications(ec2_tag_spec(ResourceType::InternetGateway, &tags, &[(TAG_ROLE, ROLE_IGW)]))
                        .send()
                        .await
                        .map_err(|e| {
                            sdk_error(
                                "CreateInternetGateway",
                                &format!("creating the internet gateway of `{vpc_id}`"),
                                e,
                            )
                        })
                })
                .await?;
                let id = created
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .ok_or_else(|| missing("an internet gateway id"))?
                    .to_string();
                follow_up(cx, patience, || async {
                    self.ec2
                        .attach_internet_gateway()
                        .internet_gateway_id(&id)
                        .vpc_id(vpc_id)
                        .send()
                        .await
                        .map_err(|e| sdk_error("AttachInternetGateway", &format!("attaching `{id}` to `{vpc_id}`"), e))
                })
                .await?;
                id
            }
        };

        let rt_id = match rts.first().and_then(|rt| rt.route_table_id()) {
            Some(id) => id.to_string(),
            None => {
                let tags = helper_tags(&vpc_tags, "public");
                let created = follow_up_create(cx, patience, || async {
                    self.ec2
                        .create_route_table()
                        .vpc_id(vpc_id)
                        .tag_specifications(ec2_tag_spec(
                            ResourceType::RouteTable,
                            &tags,
                            &[(TAG_ROLE, ROLE_PUBLIC_RT)],
                        ))
                        .send()
                        .await
                        .map_err(|e| {
                            sdk_error("CreateRouteTable", &format!("creating the public route table of `{vpc_id}`"), e)
                        })
                })
                .await?;
                created
                    .route_table()
                    .and_then(|r| r.route_table_id())
                    .ok_or_else(|| missing("a route table id"))?
                    .to_string()
            }
        };
        let routed = follow_up(cx, patience, || async {
            self.ec2
                .create_route()
                .route_table_id(&rt_id)
                .destination_cidr_block(ANYWHERE)
                .gateway_id(&igw)
                .send()
                .await
                .map_err(|e| sdk_error("CreateRoute", &format!("routing `{rt_id}` to `{igw}`"), e))
        })
        .await;
        match routed {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        Ok(rt_id)
    }

    async fn public_route_tables(&self, vpc_id: &str) -> ProviderResult<Vec<RouteTable>> {
        let out = self
            .ec2
            .describe_route_tables()
            .filters(ec2_filter("vpc-id", [vpc_id]))
            .filters(ec2_filter(&format!("tag:{TAG_ROLE}"), [ROLE_PUBLIC_RT]))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeRouteTables", &format!("reading the route tables of `{vpc_id}`"), e))?;
        let mut rts: Vec<RouteTable> = out.route_tables().to_vec();
        rts.sort_by(|a, b| a.route_table_id().cmp(&b.route_table_id()));
        Ok(rts)
    }

    /// Delete the VPC's public route tables and internet gateways (only those Konstacks made).
    async fn delete_vpc_helpers(&self, cx: &OpContext, vpc_id: &str) -> ProviderResult<()> {
        let patience = self.settings.timeouts.follow_up;
        for rt in self.public_route_tables(vpc_id).await? {
            let Some(id) = rt.route_table_id() else { continue };
            for a in rt.associations() {
                if let Some(assoc) = a.route_table_association_id().filter(|_| a.main() != Some(true)) {
                    let r = self.ec2.disassociate_route_table().association_id(assoc).send().await;
                    if let Err(e) = r.map_err(|e| sdk_error("DisassociateRouteTable", "detaching a route table", e)) {
                        if e.kind() != ErrorKind::NotFound {
                            return Err(e);
                        }
                    }
                }
            }
            let r = follow_up(cx, patience, || async {
                self.ec2
                    .delete_route_table()
                    .route_table_id(id)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DeleteRouteTable", &format!("deleting route table `{id}`"), e))
            })
            .await;
            match r {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let gateways = self
            .ec2
            .describe_internet_gateways()
            .filters(ec2_filter("attachment.vpc-id", [vpc_id]))
            .filters(ec2_filter(&format!("tag:{TAG_ROLE}"), [ROLE_IGW]))
            .send()
            .await
            .map_err(|e| {
                sdk_error("DescribeInternetGateways", &format!("finding the internet gateway of `{vpc_id}`"), e)
            })?;
        for g in gateways.internet_gateways() {
            let Some(id) = g.internet_gateway_id() else { continue };
            let detached = self.ec2.detach_internet_gateway().internet_gateway_id(id).vpc_id(vpc_id).send().await;
            if let Err(e) = detached.map_err(|e| sdk_error("DetachInternetGateway", &format!("detaching `{id}`"), e)) {
                if !matches!(e.kind(), ErrorKind::NotFound) && aws_code(&e) != Some("Gateway.NotAttached") {
                    return Err(e);
                }
            }
            let deleted = self.ec2.delete_internet_gateway().internet_gateway_id(id).send().await;
            if let Err(e) = deleted.map_err(|e| sdk_error("DeleteInternetGateway", &format!("deleting `{id}`"), e)) {
                if e.kind() != ErrorKind::NotFound {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn finish_vpc(&self, cx: &OpContext, vpc_id: &str) -> ProviderResult<()> {
        let patience = self.settings.timeouts.follow_up;
        for hostnames in [false, true] {
            follow_up(cx, patience, || async {
                let on = Some(AttributeBooleanValue::builder().value(true).build());
                let req = self.ec2.modify_vpc_attribute().vpc_id(vpc_id);
                let req = if hostnames { req.set_enable_dns_hostnames(on) } else { req.set_enable_dns_support(on) };
                req.send()
                    .await
                    .map_err(|e| sdk_error("ModifyVpcAttribute", &format!("turning DNS on in `{vpc_id}`"), e))
            })
            .await?;
        }
        self.ensure_public_route_table(cx, vpc_id).await?;
        Ok(())
    }

    // ---- subnets ----

    async fn describe_subnets(&self, filters: Vec<Filter>) -> ProviderResult<Vec<aws_sdk_ec2::types::Subnet>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .ec2
                .describe_subnets()
                .set_filters(Some(filters.clone()))
                .max_results(1000)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeSubnets", "reading subnets", e))?;
            out.extend(page.subnets().iter().cloned());
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// Route tables of these VPCs (to tell public subnets from private ones).
    async fn route_tables_of(&self, vpc_ids: &[String]) -> ProviderResult<Vec<RouteTable>> {
        let mut out = Vec::new();
        for chunk in id_chunks(vpc_ids) {
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .ec2
                    .describe_route_tables()
                    .filters(ec2_filter("vpc-id", chunk.clone()))
                    .max_results(100)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeRouteTables", "reading route tables", e))?;
                out.extend(page.route_tables().iter().cloned());
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    async fn subnets_observed(&self, subnets: Vec<aws_sdk_ec2::types::Subnet>) -> ProviderResult<Vec<SubnetObserved>> {
        if subnets.is_empty() {
            return Ok(Vec::new());
        }
        let zones = self.zone_names(&self.region).await?;
        let vpcs: Vec<String> = subnets.iter().filter_map(|s| s.vpc_id().map(str::to_string)).collect();
        let rts = self.route_tables_of(&vpcs).await?;
        let explicit: BTreeMap<&str, bool> = rts
            .iter()
            .flat_map(|rt| rt.associations().iter().filter_map(move |a| a.subnet_id().map(|s| (s, routes_out(rt)))))
            .collect();
        let main: BTreeMap<&str, bool> = rts
            .iter()
            .filter(|rt| rt.associations().iter().any(|a| a.main() == Some(true)))
            .filter_map(|rt| rt.vpc_id().map(|v| (v, routes_out(rt))))
            .collect();
        let mut out: Vec<SubnetObserved> = subnets
            .iter()
            .map(|s| {
                let tags = ec2_tag_map(s.tags());
                let id = s.subnet_id().unwrap_or_default();
                let vpc_id = s.vpc_id().unwrap_or_default();
                let zone_name = s.availability_zone().unwrap_or_default().to_string();
                let public = explicit.get(id).or_else(|| main.get(vpc_id)).copied().unwrap_or(false);
                SubnetObserved {
                    id: id.to_string(),
                    name: name_of(&tags),
                    region: self.region.clone(),
                    vpc_id: vpc_id.to_string(),
                    cidr: s.cidr_block().unwrap_or_default().to_string(),
                    zone: zones
                        .iter()
                        .position(|z| *z == zone_name)
                        .and_then(|i| u8::try_from(i).ok())
                        .unwrap_or(u8::MAX),
                    zone_name,
                    public,
                    tags: visible_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                }
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Route a subnet through the VPC's public route table, or back to the main route table.
    async fn set_subnet_public(
        &self,
        cx: &OpContext,
        subnet_id: &str,
        vpc_id: &str,
        public: bool,
    ) -> ProviderResult<()> {
        let patience = self.settings.timeouts.follow_up;
        let current = follow_up(cx, patience, || async {
            self.ec2
                .describe_route_tables()
                .filters(ec2_filter("association.subnet-id", [subnet_id]))
                .send()
                .await
                .map_err(|e| sdk_error("DescribeRouteTables", &format!("reading the routing of `{subnet_id}`"), e))
        })
        .await?;
        let association = current.route_tables().iter().find_map(|rt| {
            rt.associations()
                .iter()
                .find(|a| a.subnet_id() == Some(subnet_id))
                .and_then(|a| Some((rt.route_table_id()?.to_string(), a.route_table_association_id()?.to_string())))
        });
        if public {
            let rt = self.ensure_public_route_table(cx, vpc_id).await?;
            match association {
                Some((cur, _)) if cur == rt => Ok(()),
                Some((_, assoc)) => follow_up(cx, patience, || async {
                    self.ec2
                        .replace_route_table_association()
                        .association_id(&assoc)
                        .route_table_id(&rt)
                        .send()
                        .await
                        .map_err(|e| {
                            sdk_error("ReplaceRouteTableAssociation", &format!("routing `{subnet_id}` out"), e)
                        })
                })
                .await
                .map(|_| ()),
                None => follow_up(cx, patience, || async {
                    self.ec2
                        .associate_route_table()
                        .route_table_id(&rt)
                        .subnet_id(subnet_id)
                        .send()
                        .await
                        .map_err(|e| sdk_error("AssociateRouteTable", &format!("routing `{subnet_id}` out"), e))
                })
                .await
                .map(|_| ()),
            }
        } else {
            match association {
                Some((_, assoc)) => {
                    follow_up(cx, patience, || async {
                        self.ec2.disassociate_route_table().association_id(&assoc).send().await.map_err(|e| {
                            sdk_error("DisassociateRouteTable", &format!("making `{subnet_id}` private"), e)
                        })
                    })
                    .await
                    .map(|_| ())
                }
                None => Ok(()),
            }
        }
    }

    // ---- security groups ----

    /// Groups by id list (fast path), falling back to a filter when one id is unknown.
    async fn groups_by_ids(&self, ids: Vec<String>) -> ProviderResult<Vec<SecurityGroup>> {
        match self.describe_security_groups_with(Some(ids.clone()), Vec::new()).await {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.describe_security_groups(vec![ec2_filter("group-id", ids)]).await
            }
            other => other,
        }
    }

    pub(super) async fn describe_security_groups(&self, filters: Vec<Filter>) -> ProviderResult<Vec<SecurityGroup>> {
        self.describe_security_groups_with(None, filters).await
    }

    async fn describe_security_groups_with(
        &self,
        ids: Option<Vec<String>>,
        filters: Vec<Filter>,
    ) -> ProviderResult<Vec<SecurityGroup>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .ec2
                .describe_security_groups()
                .set_filters(if filters.is_empty() { None } else { Some(filters.clone()) })
                .set_max_results(if ids.is_some() { None } else { Some(1000) })
                .set_group_ids(ids.clone())
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeSecurityGroups", "reading security groups", e))?;
            out.extend(page.security_groups().iter().cloned());
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    async fn group_by_id(&self, id: &str) -> ProviderResult<SecurityGroup> {
        self.describe_security_groups(vec![ec2_filter("group-id", [id])]).await?.into_iter().next().ok_or_else(|| {
            ProviderError::not_found(format!("security group `{id}` does not exist in `{}`", self.region))
        })
    }

    /// Bring the rules of a group from what it has to what is wanted: authorize what is
    /// missing first (no window without access), then revoke what is no longer wanted.
    async fn apply_rules(
        &self,
        cx: &OpContext,
        group_id: &str,
        have: (&[RuleSpec], &[RuleSpec]),
        want: (&[RuleSpec], &[RuleSpec]),
    ) -> ProviderResult<()> {
        let set = |r: &[RuleSpec]| r.iter().cloned().collect::<BTreeSet<_>>();
        let (have_in, have_eg, want_in, want_eg) = (set(have.0), set(have.1), set(want.0), set(want.1));
        let add_in: Vec<RuleSpec> = want_in.difference(&have_in).cloned().collect();
        let add_eg: Vec<RuleSpec> = want_eg.difference(&have_eg).cloned().collect();
        let rm_in: Vec<RuleSpec> = have_in.difference(&want_in).cloned().collect();
        let rm_eg: Vec<RuleSpec> = have_eg.difference(&want_eg).cloned().collect();
        for (rules, ingress, add) in
            [(&add_in, true, true), (&add_eg, false, true), (&rm_in, true, false), (&rm_eg, false, false)]
        {
            if rules.is_empty() {
                continue;
            }
            let perms: Vec<IpPermission> = rules.iter().map(permission).collect();
            let r = self.change_rules(cx, group_id, ingress, add, perms.clone()).await;
            match r {
                Ok(()) => {}
                // One rule of the batch is already there / already gone: apply them one by one.
                Err(e)
                    if matches!(aws_code(&e), Some("InvalidPermission.Duplicate" | "InvalidPermission.NotFound")) =>
                {
                    for p in perms {
                        match self.change_rules(cx, group_id, ingress, add, vec![p]).await {
                            Ok(()) => {}
                            Err(e)
                                if matches!(
                                    aws_code(&e),
                                    Some("InvalidPermission.Duplicate" | "InvalidPermission.NotFound")
                                ) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn change_rules(
        &self,
        cx: &OpContext,
        group_id: &str,
        ingress: bool,
        add: bool,
        perms: Vec<IpPermission>,
    ) -> ProviderResult<()> {
        let what = format!(
            "{} {} rules of `{group_id}`",
            if add { "authorizing" } else { "revoking" },
            if ingress { "ingress" } else { "egress" }
        );
        let patience = self.settings.timeouts.follow_up;
        follow_up(cx, patience, || async {
            let p = Some(perms.clone());
            match (ingress, add) {
                (true, true) => self
                    .ec2
                    .authorize_security_group_ingress()
                    .group_id(group_id)
                    .set_ip_permissions(p)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| sdk_error("AuthorizeSecurityGroupIngress", &what, e)),
                (false, true) => self
                    .ec2
                    .authorize_security_group_egress()
                    .group_id(group_id)
                    .set_ip_permissions(p)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| sdk_error("AuthorizeSecurityGroupEgress", &what, e)),
                (true, false) => self
                    .ec2
                    .revoke_security_group_ingress()
                    .group_id(group_id)
                    .set_ip_permissions(p)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| sdk_error("RevokeSecurityGroupIngress", &what, e)),
                (false, false) => self
                    .ec2
                    .revoke_security_group_egress()
                    .group_id(group_id)
                    .set_ip_permissions(p)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| sdk_error("RevokeSecurityGroupEgress", &what, e)),
            }
        })
        .await
    }
}

#[async_trait::async_trait]
impl Api<Vpc> for AwsProvider {
    async fn create(&self, cx: &OpContext, spec: &VpcSpec) -> ProviderResult<VpcObserved> {
        let what = format!("VPC `{}`", spec.name);
        self.check_region(&what, &spec.region)?;
        self.check_name("VPC", &spec.name)?;
        check_tags(&what, &spec.tags, 0)?;
        let block = parse_block("VPC block", &spec.cidr)?;
        if !(16..=28).contains(&block.prefix()) {
            return Err(invalid(format!(
                "{what}: AWS VPC blocks must be between /16 and /28, not /{}",
                block.prefix()
            )));
        }
        let out = self
            .ec2
            .create_vpc()
            .cidr_block(&spec.cidr)
            .tag_specifications(ec2_tag_spec(ResourceType::Vpc, &spec.tags, &[]))
            .send()
            .await
            .map_err(|e| sdk_error("CreateVpc", &format!("creating {what}"), e))?;
        let vpc = out.vpc().ok_or_else(|| missing("the new VPC"))?;
        let id = vpc.vpc_id().ok_or_else(|| missing("a VPC id"))?.to_string();
        if let Err(e) = self.finish_vpc(cx, &id).await {
            // A failed create creates nothing: take the half-built VPC down again.
            let _ = self.delete_vpc_helpers(cx, &id).await;
            let _ = self.ec2.delete_vpc().vpc_id(&id).send().await;
            return Err(e);
        }
        Ok(VpcObserved {
            id,
            name: spec.name.clone(),
            region: self.region.clone(),
            cidr: vpc.cidr_block().unwrap_or(&spec.cidr).to_string(),
            tags: spec.tags.clone(),
        })
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<VpcObserved>> {
        let vpcs = match sel {
            Selector::Ids(ids) => {
                read_chunks(id_chunks(ids), |chunk| self.describe_vpcs(vec![ec2_filter("vpc-id", chunk)])).await?
            }
            Selector::Stack(stack) => self.describe_vpcs(vec![stack_filter(stack)]).await?,
            _ => return Err(invalid("this selector is not supported by the AWS backend")),
        };
        let mut out: Vec<VpcObserved> = vpcs.iter().map(|v| self.vpc_observed(v)).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, _cx: &OpContext, id: &str, spec: &VpcSpec) -> ProviderResult<VpcObserved> {
        let what = format!("VPC `{id}`");
        self.check_region(&what, &spec.region)?;
        self.check_name("VPC", &spec.name)?;
        check_tags(&what, &spec.tags, 0)?;
        let vpc = self.vpc_by_id(id).await?;
        if vpc.cidr_block() != Some(spec.cidr.as_str()) {
            return Err(invalid(format!("{what}: the block cannot change in place; replace the VPC")));
        }
        sync_ec2_tags(&self.ec2, "VPC", id, &ec2_tag_map(vpc.tags()), &spec.tags).await?;
        Ok(VpcObserved {
            id: id.to_string(),
            name: spec.name.clone(),
            region: self.region.clone(),
            cidr: spec.cidr.clone(),
            tags: spec.tags.clone(),
        })
    }

    async fn delete(&self, cx: &OpContext, id: &str) -> ProviderResult<()> {
        let what = format!("VPC `{id}`");
        self.vpc_by_id(id).await?;
        // Refuse before touching the gateway: a VPC that keeps its subnets must keep its route out.
        let subnets = self.describe_subnets(vec![ec2_filter("vpc-id", [id])]).await?;
        let groups: Vec<SecurityGroup> = self
            .describe_security_groups(vec![ec2_filter("vpc-id", [id])])
            .await?
            .into_iter()
            .filter(|g| g.group_name() != Some("default"))
            .collect();
        if !subnets.is_empty() || !groups.is_empty() {
            let mut deps: Vec<String> =
                subnets.iter().filter_map(|s| s.subnet_id()).map(|s| format!("subnet {s}")).collect();
            deps.extend(groups.iter().filter_map(|g| g.group_id()).map(|g| format!("security group {g}")));
            return Err(ProviderError::new(
                ErrorKind::Conflict,
                format!("{what} still has dependencies and cannot be deleted: {}; delete them first", deps.join(", ")),
            ));
        }
        self.delete_vpc_helpers(cx, id).await?;
        self.ec2
            .delete_vpc()
            .vpc_id(id)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteVpc", &format!("deleting {what}"), e))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Api<Subnet> for AwsProvider {
    async fn create(&self, cx: &OpContext, spec: &SubnetSpec) -> ProviderResult<SubnetObserved> {
        let what = format!("subnet `{}`", spec.name);
        self.check_region(&what, &spec.region)?;
        self.check_name("subnet", &spec.name)?;
        check_tags(&what, &spec.tags, 0)?;
        parse_block("subnet block", &spec.cidr)?;
        let zones = self.zone_names(&self.region).await?;
        let zone_name = zones.get(usize::from(spec.zone)).cloned().ok_or_else(|| {
            invalid(format!(
                "{what}: zone index {} does not exist; region `{}` has {} zones ({})",
                spec.zone,
                self.region,
                zones.len(),
                zones.join(", ")
            ))
        })?;
        let out = self
            .ec2
            .create_subnet()
            .vpc_id(&spec.vpc_id)
            .cidr_block(&spec.cidr)
            .availability_zone(&zone_name)
            .tag_specifications(ec2_tag_spec(ResourceType::Subnet, &spec.tags, &[]))
            .send()
            .await
            .map_err(|e| sdk_error("CreateSubnet", &format!("creating {what}"), e))?;
        let subnet = out.subnet().ok_or_else(|| missing("the new subnet"))?;
        let id = subnet.subnet_id().ok_or_else(|| missing("a subnet id"))?.to_string();
        if spec.public {
            if let Err(e) = self.set_subnet_public(cx, &id, &spec.vpc_id, true).await {
                let _ = self.ec2.delete_subnet().subnet_id(&id).send().await;
                return Err(e);
            }
        }
        Ok(SubnetObserved {
            id,
            name: spec.name.clone(),
            region: self.region.clone(),
            vpc_id: spec.vpc_id.clone(),
            cidr: subnet.cidr_block().unwrap_or(&spec.cidr).to_string(),
            zone: spec.zone,
            zone_name,
            public: spec.public,
            tags: spec.tags.clone(),
        })
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<SubnetObserved>> {
        let subnets = match sel {
            Selector::Ids(ids) => {
                read_chunks(id_chunks(ids), |chunk| self.describe_subnets(vec![ec2_filter("subnet-id", chunk)])).await?
            }
            Selector::Stack(stack) => self.describe_subnets(vec![stack_filter(stack)]).await?,
            _ => return Err(invalid("this selector is not supported by the AWS backend")),
        };
        self.subnets_observed(subnets).await
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &SubnetSpec) -> ProviderResult<SubnetObserved> {
        let what = format!("subnet `{id}`");
        self.check_region(&what, &spec.region)?;
        self.check_name("subnet", &spec.name)?;
        check_tags(&what, &spec.tags, 0)?;
        let current = self
            .subnets_observed(self.describe_subnets(vec![ec2_filter("subnet-id", [id])]).await?)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::not_found(format!("{what} does not exist in `{}`", self.region)))?;
        for (field, same) in [
            ("vpc_id", current.vpc_id == spec.vpc_id),
            ("cidr", current.cidr == spec.cidr),
            ("zone", current.zone == spec.zone),
        ] {
            if !same {
                return Err(invalid(format!("{what}: `{field}` cannot change in place; replace the subnet")));
            }
        }
        if current.public != spec.public {
            self.set_subnet_public(cx, id, &spec.vpc_id, spec.public).await?;
        }
        let raw = self.describe_subnets(vec![ec2_filter("subnet-id", [id])]).await?;
        let tags = raw.first().map(|s| ec2_tag_map(s.tags())).unwrap_or_default();
        sync_ec2_tags(&self.ec2, "subnet", id, &tags, &spec.tags).await?;
        Ok(SubnetObserved { name: spec.name.clone(), public: spec.public, tags: spec.tags.clone(), ..current })
    }

    async fn delete(&self, _cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.ec2
            .delete_subnet()
            .subnet_id(id)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteSubnet", &format!("deleting subnet `{id}`"), e))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Api<Firewall> for AwsProvider {
    async fn create(&self, cx: &OpContext, spec: &FirewallSpec) -> ProviderResult<FirewallObserved> {
        let what = format!("security group `{}`", spec.name);
        self.check_region(&what, &spec.region)?;
        self.check_name("security group", &spec.name)?;
        check_tags(&what, &spec.tags, 0)?;
        if spec.name.starts_with("sg-") {
            return Err(invalid(format!("{what}: AWS refuses group names starting with `sg-`")));
        }
        check_rules(&what, &spec.ingress)?;
        check_rules(&what, &spec.egress)?;
        let path = spec.tags.get(TAG_PATH).cloned().unwrap_or_else(|| spec.name.clone());
        let out = self
            .ec2
            .create_security_group()
            .group_name(&spec.name)
            .description(format!("Konstacks firewall {path}"))
            .vpc_id(&spec.vpc_id)
            .tag_specifications(ec2_tag_spec(ResourceType::SecurityGroup, &spec.tags, &[]))
            .send()
            .await
            .map_err(|e| sdk_error("CreateSecurityGroup", &format!("creating {what}"), e))?;
        let id = out.group_id().ok_or_else(|| missing("a security group id"))?.to_string();
        let patience = self.settings.timeouts.follow_up;
        let rules = async {
            let g = follow_up(cx, patience, || self.group_by_id(&id)).await?;
            let have = (rules_of(g.ip_permissions()), rules_of(g.ip_permissions_egress()));
            self.apply_rules(cx, &id, (&have.0, &have.1), (&spec.ingress, &spec.egress)).await
        }
        .await;
        if let Err(e) = rules {
            let _ = self.ec2.delete_security_group().group_id(&id).send().await;
            return Err(e);
        }
        Ok(FirewallObserved {
            id,
            name: spec.name.clone(),
            region: self.region.clone(),
            vpc_id: spec.vpc_id.clone(),
            ingress: sorted(&spec.ingress),
            egress: sorted(&spec.egress),
            tags: spec.tags.clone(),
        })
    }

    async fn read_many(&self, _cx: &OpContext, sel: &Selector) -> ProviderResult<Vec<FirewallObserved>> {
        let groups = match sel {
            Selector::Ids(ids) => read_chunks(id_chunks(ids), |chunk| self.groups_by_ids(chunk)).await?,
            Selector::Stack(stack) => self.describe_security_groups(vec![stack_filter(stack)]).await?,
            _ => return Err(invalid("this selector is not supported by the AWS backend")),
        };
        let mut out: Vec<FirewallObserved> = groups.iter().map(|g| firewall_observed(&self.region, g)).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn update(&self, cx: &OpContext, id: &str, spec: &FirewallSpec) -> ProviderResult<FirewallObserved> {
        let what = format!("security group `{id}`");
        self.check_region(&what, &spec.region)?;
        check_tags(&what, &spec.tags, 0)?;
        check_rules(&what, &spec.ingress)?;
        check_rules(&what, &spec.egress)?;
        let g = self.group_by_id(id).await?;
        let current = firewall_observed(&self.region, &g);
        if current.name != spec.name || current.vpc_id != spec.vpc_id {
            return Err(invalid(format!("{what}: name and VPC cannot change in place; replace the security group")));
        }
        self.apply_rules(cx, id, (&current.ingress, &current.egress), (&spec.ingress, &spec.egress)).await?;
        sync_ec2_tags(&self.ec2, "security group", id, &ec2_tag_map(g.tags()), &spec.tags).await?;
        Ok(FirewallObserved {
            ingress: sorted(&spec.ingress),
            egress: sorted(&spec.egress),
            tags: spec.tags.clone(),
            ..current
        })
    }

    async fn delete(&self, _cx: &OpContext, id: &str) -> ProviderResult<()> {
        self.ec2
            .delete_security_group()
            .group_id(id)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteSecurityGroup", &format!("deleting security group `{id}`"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: Protocol, from: u16, to: u16, peer: RuleSource) -> RuleSpec {
        RuleSpec { protocol, from_port: from, to_port: to, peer }
    }

    #[test]
    fn rules_round_trip_through_permissions() {
        let rules = vec![
            rule(Protocol::Tcp, 443, 443, RuleSource::Cidr("0.0.0.0/0".into())),
            rule(Protocol::Tcp, 5432, 5432, RuleSource::Firewall("sg-1".into())),
            rule(Protocol::Udp, 1000, 2000, RuleSource::Cidr("10.0.0.0/8".into())),
            rule(Protocol::Icmp, 0, 0, RuleSource::Cidr("10.0.0.0/8".into())),
            rule(Protocol::All, 0, 0, RuleSource::Cidr("0.0.0.0/0".into())),
        ];
        let perms: Vec<IpPermission> = rules.iter().map(permission).collect();
        assert_eq!(perms[3].from_port(), Some(-1));
        assert_eq!(perms[4].ip_protocol(), Some("-1"));
        assert_eq!(rules_of(&perms), sorted(&rules));
    }

    #[test]
    fn aws_permissions_with_several_peers_flatten() {
        let p = IpPermission::builder()
            .ip_protocol("6")
            .from_port(22)
            .to_port(22)
            .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
            .ip_ranges(IpRange::builder().cidr_ip("192.168.0.0/16").build())
            .build();
        assert_eq!(rules_of(&[p]).len(), 2);
    }

    #[test]
    fn helper_tags_keep_stack_and_rename() {
        let vpc = BTreeMap::from([
            (TAG_NAME.to_string(), "s-network-vpc".to_string()),
            (TAG_PATH.to_string(), "network/vpc".to_string()),
            ("konstacks:stack".to_string(), "s".to_string()),
        ]);
        let t = helper_tags(&vpc, "igw");
        assert_eq!(t.get(TAG_NAME).map(String::as_str), Some("s-network-vpc-igw"));
        assert_eq!(t.get(TAG_PATH).map(String::as_str), Some("network/vpc#igw"));
        assert_eq!(t.get("konstacks:stack").map(String::as_str), Some("s"));
    }
}
