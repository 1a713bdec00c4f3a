//! The fake's Cloud DNS v1 (managed zones, record sets).
//!
//! Like Cloud DNS: a zone is created with its apex `SOA` and `NS` record sets and four
//! `ns-cloud-<x><n>.googledomains.com.` name servers; record sets are keyed by zone, name and
//! type; a duplicate is `409 alreadyExists`, a CNAME at the apex or beside another type of the
//! same name, a name outside the zone and a malformed value are `400`, and a zone that still
//! holds record sets other than its apex `SOA`/`NS` cannot be deleted (`400 containerNotEmpty`).
//! Lists paginate (`pageToken`) and filter record sets by `name` and `type`. Changes apply at
//! once; `managedZones.patch` answers an operation that is already `done`.

use std::net::Ipv6Addr;

use super::*;

/// The types the fake accepts in a record set.
const TYPES: &[&str] = &["A", "AAAA", "CAA", "CNAME", "MX", "NS", "PTR", "SOA", "SPF", "SRV", "TXT"];

/// Answer a `dns.*` method.
pub(super) fn dispatch(st: &mut St, c: &Ctx) -> Res {
    match c.method_id {
        "dns.managedZones.create" => zone_create(st, c),
        "dns.managedZones.get" => zone(st, &c.p("managedZone")).cloned(),
        "dns.managedZones.list" => zone_list(st, c),
        "dns.managedZones.patch" => zone_patch(st, c),
        "dns.managedZones.delete" => zone_delete(st, c),
        "dns.resourceRecordSets.create" => rrset_create(st, c),
        "dns.resourceRecordSets.get" => {
            let z = c.p("managedZone");
            zone(st, &z)?;
            rrset(st, &z, &c.p("name"), &c.p("type")).cloned()
        }
        "dns.resourceRecordSets.list" => rrset_list(st, c),
        "dns.resourceRecordSets.patch" => rrset_patch(st, c),
        "dns.resourceRecordSets.delete" => rrset_delete(st, c),
        other => Err(err(501, "notImplemented", format!("The GCP fake does not implement {other}"))),
    }
}

fn zone<'a>(st: &'a St, name: &str) -> Result<&'a Value, ApiErr> {
    st.world.managed_zones.get(name).ok_or_else(|| {
        err(404, "notFound", format!("The 'parameters.managedZone' resource named '{name}' does not exist."))
    })
}

fn rrset<'a>(st: &'a St, zone: &str, name: &str, t: &str) -> Result<&'a Value, ApiErr> {
    st.world.rrsets.get(&(zone.to_string(), name.to_string(), t.to_string())).ok_or_else(|| {
        err(404, "notFound", format!("The 'parameters.name' resource named '{name}' ({t}) does not exist."))
    })
}

/// Whether `name` is a DNS name with its final dot, of labels of letters, digits, '-' and '_'
/// (and a leading `*`).
fn valid_dns_name(name: &str) -> bool {
    let Some(bare) = name.strip_suffix('.') else { return false };
    !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').enumerate().all(|(i, l)| {
            (i == 0 && l == "*")
                || (!l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        })
}

/// Whether `name` is `zone` (both with final dots) or under it.
fn in_zone(name: &str, zone: &str) -> bool {
    name == zone || name.strip_suffix(zone).is_some_and(|h| h.ends_with('.'))
}

fn zone_create(st: &mut St, c: &Ctx) -> Res {
    let b = &c.body;
    let name = s(b, "name");
    if !valid_name(&name) {
        return Err(invalid(format!("Invalid value for 'entity.managedZone.name': '{name}'")));
    }
    let dns_name = s(b, "dnsName").to_ascii_lowercase();
    if !valid_dns_name(&dns_name) || dns_name.starts_with("*.") || dns_name.matches('.').count() < 2 {
        return Err(invalid(format!("Invalid value for 'entity.managedZone.dnsName': '{dns_name}'")));
    }
    if b.get("description").and_then(Value::as_str).is_none() {
        return Err(err(400, "required", "Required value 'entity.managedZone.description' is missing."));
    }
    let vis = b.get("visibility").and_then(Value::as_str).unwrap_or("public");
    if vis != "public" {
        return Err(invalid("The fake serves public managed zones only"));
    }
    if st.world.managed_zones.contains_key(&name) {
        return Err(err(
            409,
            "alreadyExists",
            format!("The resource 'entity.managedZone' named '{name}' already exists"),
        ));
    }
    if let Some((_, other)) = st.world.managed_zones.iter().find(|(_, z)| s(z, "dnsName") == dns_name) {
        // Cloud DNS allows several public zones for one domain on different name server sets;
        // the fake keeps one, as a project normally does.
        return Err(err(
            409,
            "alreadyExists",
            format!("The zone '{}' already serves '{dns_name}' in this project", s(other, "name")),
        ));
    }
    let mut m = from_body(b, &["creationTime", "nameServers", "nameServerSet"]);
    let shard = char::from(b'a' + u8::try_from(st.next() % 4).unwrap_or(0));
    let servers: Vec<String> = (1..=4).map(|n| format!("ns-cloud-{shard}{n}.googledomains.com.")).collect();
    m.insert("kind".into(), json!("dns#managedZone"));
    m.insert("name".into(), json!(name));
    m.insert("dnsName".into(), json!(dns_name));
    m.insert("id".into(), json!(st.id()));
    m.insert("creationTime".into(), json!(st.sql_time()));
    m.insert("nameServers".into(), json!(servers));
    m.insert("visibility".into(), json!("public"));
    let v = Value::Object(m);
    st.world.managed_zones.insert(name.clone(), v.clone());
    let soa = format!("{} cloud-dns-hostmaster.google.com. 1 21600 3600 259200 300", servers[0]);
    for (t, datas) in [("SOA", vec![soa]), ("NS", servers)] {
        st.world.rrsets.insert(
            (name.clone(), dns_name.clone(), t.to_string()),
            json!({"kind": "dns#resourceRecordSet", "name": dns_name, "type": t, "ttl": 21600, "rrdatas": datas}),
        );
    }
    Ok(v)
}

/// A page of `items` under `key`.
fn page(c: &Ctx, kind: &str, key: &str, items: Vec<Value>) -> Res {
    let (a, b, next) = page_bounds(c, items.len())?;
    let mut v = json!({ "kind": kind, key: items[a..b] });
    if let Some(n) = next {
        v["nextPageToken"] = json!(n);
    }
    Ok(v)
}

fn zone_list(st: &mut St, c: &Ctx) -> Res {
    let want = c.query.get("dnsName").map(|d| d.to_ascii_lowercase());
    let items = st
        .world
        .managed_zones
        .values()
        .filter(|z| want.as_ref().is_none_or(|d| &s(z, "dnsName") == d))
        .cloned()
        .collect();
    page(c, "dns#managedZonesListResponse", "managedZones", items)
}

fn zone_patch(st: &mut St, c: &Ctx) -> Res {
    let name = c.p("managedZone");
    let cur = zone(st, &name)?.clone();
    for k in ["name", "dnsName", "visibility"] {
        if let Some(v) = c.body.get(k) {
            if cur.get(k) != Some(v) {
                return Err(invalid(format!(
                    "Invalid value for 'entity.managedZone.{k}': the field cannot be changed"
                )));
            }
        }
    }
    let mut next = cur.clone();
    // A patch replaces each field it names (maps such as `labels` whole).
    for (k, v) in from_body(&c.body, &["creationTime", "nameServers", "nameServerSet"]) {
        next[k.as_str()] = v;
    }
    st.world.managed_zones.insert(name, next.clone());
    Ok(json!({
        "kind": "dns#operation",
        "id": st.next().to_string(),
        "startTime": st.sql_time(),
        "status": "done",
        "type": "UPDATE",
        "user": "konstacks@konstacks-test.iam.gserviceaccount.com",
        "zoneContext": {"oldValue": cur, "newValue": next},
    }))
}

fn zone_delete(st: &mut St, c: &Ctx) -> Res {
    let name = c.p("managedZone");
    let dns_name = s(zone(st, &name)?, "dnsName");
    let held = st.world.rrsets.keys().any(|(z, n, t)| *z == name && !(*n == dns_name && (t == "SOA" || t == "NS")));
    if held {
        return Err(err(
            400,
            "containerNotEmpty",
            format!("The resource named '{name}' cannot be deleted because it is not empty"),
        ));
    }
    st.world.rrsets.retain(|(z, _, _), _| *z != name);
    st.world.managed_zones.remove(&name);
    // Cloud DNS answers 204 with no body; the client reads `{}` the same way.
    Ok(json!({}))
}

/// The problem with an rrdata of type `t`, if any.
fn rrdata_problem(t: &str, d: &str) -> Option<String> {
    let host = |h: &str| valid_dns_name(h) && !h.starts_with("*.");
    let ok = match t {
        "A" => d.parse::<Ipv4Addr>().is_ok(),
        "AAAA" => d.parse::<Ipv6Addr>().is_ok(),
        "CNAME" | "NS" | "PTR" => host(d),
        "MX" => d.split_once(' ').is_some_and(|(p, h)| p.parse::<u16>().is_ok() && host(h)),
        "TXT" | "SPF" => !d.is_empty() && d.len() <= 4000 && (!d.starts_with('"') || d.ends_with('"')),
        "CAA" => {
            let mut it = d.splitn(3, ' ');
            matches!(it.next(), Some("0" | "128"))
                && it.next().is_some_and(|t| !t.is_empty())
                && it.next().is_some_and(|v| v.len() >= 2 && v.starts_with('"') && v.ends_with('"'))
        }
        _ => !d.is_empty(),
    };
    (!ok).then(|| format!("Invalid value for 'entity.change.additions[0].rrdata[0]': '{d}'"))
}

/// Check a record set (of zone `zone`, whose apex is `apex`) as Cloud DNS does on creation.
fn check_rrset(st: &St, zone: &str, apex: &str, v: &Value) -> Result<(String, String), ApiErr> {
    let name = s(v, "name").to_ascii_lowercase();
    let t = s(v, "type");
    if !valid_dns_name(&name) {
        return Err(invalid(format!("Invalid value for 'entity.change.additions[0].name': '{name}'")));
    }
    if !in_zone(&name, apex) {
        return Err(err(
            400,
            "invalid",
            format!(
                "The resource record set 'entity.change.additions[0]' has a name '{name}' outside the zone '{apex}'"
            ),
        ));
    }
    if !TYPES.contains(&t.as_str()) {
        return Err(invalid(format!("Invalid value for 'entity.change.additions[0].type': '{t}'")));
    }
    let datas: Vec<&str> = v["rrdatas"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if datas.is_empty() {
        return Err(err(400, "required", "Required value 'entity.change.additions[0].rrdata' is missing."));
    }
    if let Some(p) = datas.iter().find_map(|d| rrdata_problem(&t, d)) {
        return Err(invalid(p));
    }
    if t == "CNAME" && datas.len() > 1 {
        return Err(invalid("A CNAME resource record set may hold one rrdata only"));
    }
    if v.get("ttl").and_then(Value::as_i64).is_some_and(|ttl| ttl < 0) {
        return Err(invalid("Invalid value for 'entity.change.additions[0].ttl'"));
    }
    if t == "CNAME" && name == apex {
        return Err(err(
            400,
            "cnameResourceRecordSetConflict",
            format!("The resource record set 'entity.change.additions[0]' is a CNAME at the apex '{name}' of the zone"),
        ));
    }
    let beside: Vec<&String> =
        st.world.rrsets.keys().filter(|(z, n, tt)| z == zone && *n == name && *tt != t).map(|(_, _, tt)| tt).collect();
    if (t == "CNAME" && !beside.is_empty()) || beside.iter().any(|tt| *tt == "CNAME") {
        return Err(err(
            400,
            "cnameResourceRecordSetConflict",
            format!("The resource record set 'entity.change.additions[0]' named '{name}' conflicts with a CNAME rule"),
        ));
    }
    Ok((name, t))
}

fn rrset_create(st: &mut St, c: &Ctx) -> Res {
    let z = c.p("managedZone");
    let apex = s(zone(st, &z)?, "dnsName");
    let (name, t) = check_rrset(st, &z, &apex, &c.body)?;
    let key = (z.clone(), name.clone(), t.clone());
    if st.world.rrsets.contains_key(&key) {
        return Err(err(
            409,
            "alreadyExists",
            format!("The resource 'entity.change.additions[0]' named '{name} ({t})' already exists"),
        ));
    }
    let mut m = from_body(&c.body, &[]);
    m.insert("kind".into(), json!("dns#resourceRecordSet"));
    m.insert("name".into(), json!(name));
    m.entry("ttl").or_insert(json!(300));
    let v = Value::Object(m);
    st.world.rrsets.insert(key, v.clone());
    Ok(v)
}

fn rrset_list(st: &mut St, c: &Ctx) -> Res {
    let z = c.p("managedZone");
    zone(st, &z)?;
    let name = c.query.get("name").map(|n| n.to_ascii_lowercase());
    let t = c.query.get("type");
    if t.is_some() && name.is_none() {
        return Err(invalid("The 'type' parameter may only be given with the 'name' parameter"));
    }
    let items = st
        .world
        .rrsets
        .iter()
        .filter(|((zz, n, tt), _)| *zz == z && name.as_ref().is_none_or(|x| x == n) && t.is_none_or(|x| x == tt))
        .map(|(_, v)| v.clone())
        .collect();
    page(c, "dns#resourceRecordSetsListResponse", "rrsets", items)
}

fn rrset_patch(st: &mut St, c: &Ctx) -> Res {
    let z = c.p("managedZone");
    let apex = s(zone(st, &z)?, "dnsName");
    let (name, t) = (c.p("name").to_ascii_lowercase(), c.p("type"));
    let cur = rrset(st, &z, &name, &t)?.clone();
    for k in ["name", "type"] {
        if let Some(v) = c.body.get(k).and_then(Value::as_str) {
            if !v.eq_ignore_ascii_case(&s(&cur, k)) {
                return Err(invalid(format!("Invalid value for 'entity.{k}': '{v}' differs from the path")));
            }
        }
    }
    let mut next = cur.clone();
    for (k, v) in from_body(&c.body, &[]) {
        next[k.as_str()] = v;
    }
    next["name"] = json!(name);
    next["type"] = json!(t);
    // Checked as a new set beside the others of the name (its own type excluded).
    check_rrset(st, &z, &apex, &next)?;
    st.world.rrsets.insert((z, name, t), next.clone());
    Ok(next)
}

fn rrset_delete(st: &mut St, c: &Ctx) -> Res {
    let z = c.p("managedZone");
    let apex = s(zone(st, &z)?, "dnsName");
    let (name, t) = (c.p("name").to_ascii_lowercase(), c.p("type"));
    rrset(st, &z, &name, &t)?;
    if name == apex && (t == "SOA" || t == "NS") {
        return Err(invalid(format!("The {t} resource record set at the apex of the zone cannot be deleted")));
    }
    st.world.rrsets.remove(&(z, name, t));
    Ok(json!({}))
}
