//! The fake's Compute Engine load balancing pieces: health checks, instance groups, backend
//! services, URL maps, target HTTP(S) proxies, SSL policies, global addresses and global
//! forwarding rules.
//!
//! Every piece lives in `World.lb` under (collection, `global` or the zone, name); the members
//! of an unmanaged instance group under (`instanceGroups#members`, zone, name) as a list of
//! instance links. References must exist when a piece is written (404 `notFound` like Google)
//! and a piece still referenced by another cannot be deleted (400
//! `resourceInUseByAnotherResource`). Health, as `backendServices.getHealth` answers it: an
//! instance of the group that is `RUNNING` is `HEALTHY`, any other is `UNHEALTHY` (the fake
//! runs no probes; a real backend also needs the health check's healthy threshold of probes).
//! `GcpFake::set_healthy_only` makes every other instance `UNHEALTHY` (an app that never
//! answers its health check).

use super::*;

/// The collections this file answers for.
const COLLECTIONS: &[&str] = &[
    "healthChecks",
    "instanceGroups",
    "backendServices",
    "urlMaps",
    "targetHttpProxies",
    "targetHttpsProxies",
    "sslPolicies",
    "globalAddresses",
    "globalForwardingRules",
];

/// Key of the members of an instance group in `World.lb`.
const MEMBERS: &str = "instanceGroups#members";

/// Whether `method_id` (`compute.<collection>.<verb>`) is one of this file's.
pub(super) fn serves(method_id: &str) -> bool {
    method_id.strip_prefix("compute.").and_then(|r| r.split('.').next()).is_some_and(|c| COLLECTIONS.contains(&c))
}

/// (path parameter naming the resource, URL segment, resource kind, list kind) of a collection.
fn shape(coll: &str) -> (&'static str, &'static str, &'static str, &'static str) {
    match coll {
        "healthChecks" => ("healthCheck", "healthChecks", "compute#healthCheck", "compute#healthCheckList"),
        "instanceGroups" => ("instanceGroup", "instanceGroups", "compute#instanceGroup", "compute#instanceGroupList"),
        "backendServices" => {
            ("backendService", "backendServices", "compute#backendService", "compute#backendServiceList")
        }
        "urlMaps" => ("urlMap", "urlMaps", "compute#urlMap", "compute#urlMapList"),
        "targetHttpProxies" => {
            ("targetHttpProxy", "targetHttpProxies", "compute#targetHttpProxy", "compute#targetHttpProxyList")
        }
        "targetHttpsProxies" => {
            ("targetHttpsProxy", "targetHttpsProxies", "compute#targetHttpsProxy", "compute#targetHttpsProxyList")
        }
        "sslPolicies" => ("sslPolicy", "sslPolicies", "compute#sslPolicy", "compute#sslPoliciesList"),
        "globalAddresses" => ("address", "addresses", "compute#address", "compute#addressList"),
        _ => ("forwardingRule", "forwardingRules", "compute#forwardingRule", "compute#forwardingRuleList"),
    }
}

/// Which collection a link names, from its URL segment.
fn coll_of_segment(seg: &str) -> Option<&'static str> {
    COLLECTIONS.iter().copied().find(|c| shape(c).1 == seg)
}

/// `(collection, scope, name)` of a full or partial link to a piece of this file.
fn key_of_link(c: &Ctx, link: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = link.trim_end_matches('/').split('/').collect();
    let n = parts.len();
    if n < 3 {
        return None;
    }
    let coll = coll_of_segment(parts[n - 2])?;
    let scope = if parts[n - 3] == "global" { "global".to_string() } else { parts[n - 3].to_string() };
    let project_ok = seg_after(link, "projects").is_none_or(|p| p == c.opts.project);
    project_ok.then(|| (coll.to_string(), scope, parts[n - 1].to_string()))
}

/// Answer a method of one of [`COLLECTIONS`].
pub(super) fn dispatch(st: &mut St, c: &Ctx) -> Res {
    let rest = c.method_id.trim_start_matches("compute.");
    let (coll, verb) = rest.split_once('.').unwrap_or((rest, ""));
    let scope = if coll == "instanceGroups" { zone_ok(c)? } else { "global".to_string() };
    let (param, seg, kind, list_kind) = shape(coll);
    let name = if verb == "setLabels" { c.p("resource") } else { c.p(param) };
    let link = match coll {
        "instanceGroups" => format!("{}/instanceGroups/{name}", c.zone_link(&scope)),
        _ => c.global_link(seg, &name),
    };
    let key = (coll.to_string(), scope.clone(), name.clone());
    let op_scope = if coll == "instanceGroups" { Scope::Zone(scope.clone()) } else { Scope::Global };
    let missing = || not_found(&relative_of(&link));
    match verb {
        "insert" => insert(st, c, coll, &scope, kind, op_scope),
        "list" => {
            let items = st.world.lb.iter().filter(|((k, s, _), _)| k == coll && *s == scope).map(|(_, v)| v.clone());
            let place = if coll == "instanceGroups" { format!("zones/{scope}") } else { "global".into() };
            list(c, list_kind, &format!("projects/{}/{place}/{seg}", c.opts.project), items.collect())
        }
        "get" => st.world.lb.get(&key).cloned().ok_or_else(missing),
        "delete" => {
            let cur = st.world.lb.get(&key).cloned().ok_or_else(missing)?;
            in_use(st, &cur)?;
            st.world.lb.remove(&key);
            st.world.lb.remove(&(MEMBERS.to_string(), scope.clone(), name));
            Ok(compute_op(st, c, op_scope, "delete", &link, &s(&cur, "id"), vec![], vec![]))
        }
        "listInstances" => {
            st.world.lb.get(&key).ok_or_else(missing)?;
            let members = members(st, &key);
            let items: Vec<Value> = members
                .iter()
                .map(|m| {
                    let running = instance_at(st, m).is_some_and(|i| s(i, "status") == "RUNNING");
                    json!({"instance": m, "status": if running { "RUNNING" } else { "STOPPED" }})
                })
                .collect();
            let (a, b, next) = page_bounds(c, items.len())?;
            let mut v = json!({
                "kind": "compute#instanceGroupsListInstances",
                "id": format!("projects/{}/zones/{scope}/instanceGroups/{}/listInstances", c.opts.project, key.2),
                "selfLink": format!("{link}/listInstances"),
            });
            if a < b {
                v["items"] = json!(items[a..b]);
            }
            if let Some(n) = next {
                v["nextPageToken"] = json!(n);
            }
            Ok(v)
        }
        "getHealth" => {
            let bs = st.world.lb.get(&key).cloned().ok_or_else(missing)?;
            let group = s(&c.body, "group");
            let gkey = key_of_link(c, &group).filter(|k| k.0 == "instanceGroups" && st.world.lb.contains_key(k));
            let gkey = gkey.ok_or_else(|| not_found(&relative_of(&group)))?;
            let glink = s(&st.world.lb[&gkey], "selfLink");
            let backs = bs.get("backends").and_then(Value::as_array).cloned().unwrap_or_default();
            if !backs.iter().any(|b| s(b, "group") == glink) {
                return Err(invalid(format!(
                    "Invalid value for field 'resourceGroupReference.group': '{group}'. The instance group is not a backend of the backend service."
                )));
            }
            let statuses: Vec<Value> = members(st, &gkey)
                .iter()
                .filter_map(|m| instance_at(st, m).map(|i| (m, i)))
                .map(|(m, i)| {
                    let allowed = st.healthy_only.as_ref().is_none_or(|names| names.contains(&s(i, "name")));
                    let healthy = s(i, "status") == "RUNNING" && allowed;
                    let ip = i["networkInterfaces"][0]["networkIP"].as_str().unwrap_or_default().to_string();
                    json!({"instance": m, "ipAddress": ip, "port": named_port(&st.world.lb[&gkey]),
                        "healthState": if healthy { "HEALTHY" } else { "UNHEALTHY" }})
                })
                .collect();
            let mut v = json!({"kind": "compute#backendServiceGroupHealth"});
            if !statuses.is_empty() {
                v["healthStatus"] = json!(statuses);
            }
            Ok(v)
        }
        _ => {
            let cur = st.world.lb.get(&key).cloned().ok_or_else(missing)?;
            let mut next = change(st, c, coll, verb, &key, &cur)?;
            check_refs(st, c, coll, &mut next)?;
            st.world.lb.insert(key, next);
            Ok(compute_op(st, c, op_scope, verb, &link, &s(&cur, "id"), vec![], vec![]))
        }
    }
}

/// The part of a link from `projects/` on.
fn relative_of(link: &str) -> String {
    link.find("projects/").map(|i| link[i..].to_string()).unwrap_or_else(|| link.to_string())
}

fn members(st: &St, key: &(String, String, String)) -> Vec<String> {
    let k = (MEMBERS.to_string(), key.1.clone(), key.2.clone());
    st.world
        .lb
        .get(&k)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .map(str::to_string)
        .collect()
}

fn instance_at<'a>(st: &'a St, link: &str) -> Option<&'a Value> {
    let (zone, name) = (seg_after(link, "zones")?, seg_after(link, "instances")?);
    st.world.instances.get(&(zone, name))
}

fn named_port(group: &Value) -> i64 {
    group["namedPorts"][0]["port"].as_i64().unwrap_or(80)
}

/// Every string anywhere in `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(x) => out.push(x.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// 400 `resourceInUseByAnotherResource` when another piece refers to `cur` (by link, or an
/// address by its IP).
fn in_use(st: &St, cur: &Value) -> Result<(), ApiErr> {
    let link = s(cur, "selfLink");
    let ip = (s(cur, "kind") == "compute#address").then(|| s(cur, "address"));
    for ((coll, _, _), v) in &st.world.lb {
        if coll == MEMBERS || s(v, "selfLink") == link {
            continue;
        }
        let mut all = Vec::new();
        strings(v, &mut all);
        let uses_ip = ip.as_ref().is_some_and(|ip| s(v, "IPAddress") == *ip);
        if uses_ip || all.contains(&link) {
            return Err(err(
                400,
                "resourceInUseByAnotherResource",
                format!(
                    "The resource '{}' is already being used by '{}'",
                    relative_of(&link),
                    relative_of(&s(v, "selfLink"))
                ),
            ));
        }
    }
    Ok(())
}

/// The piece a reference names, or 404.
fn resolve(st: &St, c: &Ctx, link: &str, coll: &str) -> Result<String, ApiErr> {
    key_of_link(c, link)
        .filter(|k| k.0 == coll)
        .and_then(|k| st.world.lb.get(&k))
        .map(|v| s(v, "selfLink"))
        .ok_or_else(|| not_found(&relative_of(link)))
}

/// Check the references of a piece and write them as full links, as Google does.
fn check_refs(st: &St, c: &Ctx, coll: &str, v: &mut Value) -> Result<(), ApiErr> {
    let fix = |slot: &mut Value, coll: &str| -> Result<(), ApiErr> {
        let link = resolve(st, c, slot.as_str().unwrap_or_default(), coll)?;
        *slot = json!(link);
        Ok(())
    };
    let arr =
        |v: &mut Value, k: &str| -> Vec<Value> { v.get(k).and_then(Value::as_array).cloned().unwrap_or_default() };
    match coll {
        "backendServices" => {
            let mut hcs = arr(v, "healthChecks");
            for h in hcs.iter_mut() {
                fix(h, "healthChecks")?;
            }
            let mut backs = arr(v, "backends");
            for b in backs.iter_mut() {
                fix(&mut b["group"], "instanceGroups")?;
            }
            if !hcs.is_empty() {
                v["healthChecks"] = json!(hcs);
            }
            if !backs.is_empty() {
                v["backends"] = json!(backs);
            }
        }
        "urlMaps" => {
            match (v.get("defaultService").is_some(), v.get("defaultUrlRedirect").is_some()) {
                (true, false) => fix(&mut v["defaultService"], "backendServices")?,
                (false, true) => {}
                _ => {
                    return Err(invalid(
                        "Invalid value for field 'resource': exactly one of 'defaultService' or 'defaultUrlRedirect' must be set",
                    ))
                }
            }
            let mut matchers = arr(v, "pathMatchers");
            for m in matchers.iter_mut() {
                fix(&mut m["defaultService"], "backendServices")?;
                let mut rules = arr(m, "routeRules");
                for r in rules.iter_mut() {
                    fix(&mut r["service"], "backendServices")?;
                }
                if !rules.is_empty() {
                    m["routeRules"] = json!(rules);
                }
            }
            let names: Vec<String> = matchers.iter().map(|m| s(m, "name")).collect();
            for h in arr(v, "hostRules") {
                let pm = s(&h, "pathMatcher");
                if !names.contains(&pm) {
                    return Err(invalid(format!(
                        "Invalid value for field 'resource.hostRules[].pathMatcher': '{pm}'. No path matcher of that name."
                    )));
                }
            }
            if !matchers.is_empty() {
                v["pathMatchers"] = json!(matchers);
            }
        }
        "targetHttpProxies" | "targetHttpsProxies" => {
            fix(&mut v["urlMap"], "urlMaps")?;
            if coll == "targetHttpsProxies" {
                let certs = arr(v, "sslCertificates");
                if certs.is_empty() {
                    return Err(invalid(
                        "Invalid value for field 'resource.sslCertificates': at least one is required",
                    ));
                }
                for cert in &certs {
                    let link = cert.as_str().unwrap_or_default();
                    let name = seg_after(link, "sslCertificates").unwrap_or_default();
                    if !st.world.ssl_certificates.contains_key(&name) {
                        return Err(not_found(&relative_of(link)));
                    }
                }
                if v.get("sslPolicy").is_some() {
                    fix(&mut v["sslPolicy"], "sslPolicies")?;
                }
            }
        }
        "globalForwardingRules" => {
            let target = s(v, "target");
            let found =
                ["targetHttpProxies", "targetHttpsProxies"].iter().find_map(|k| resolve(st, c, &target, k).ok());
            v["target"] = json!(found.ok_or_else(|| not_found(&relative_of(&target)))?);
        }
        _ => {}
    }
    Ok(())
}

/// Fill the fields the server owns or defaults on insert.
fn defaults(st: &mut St, c: &Ctx, coll: &str, m: &mut Map<String, Value>) -> Result<(), ApiErr> {
    match coll {
        "healthChecks" => {
            for (k, d) in
                [("checkIntervalSec", 5), ("timeoutSec", 5), ("healthyThreshold", 2), ("unhealthyThreshold", 2)]
            {
                m.entry(k).or_insert(json!(d));
            }
            let t = m.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
            let sub = match t.as_str() {
                "HTTP" => "httpHealthCheck",
                "HTTPS" => "httpsHealthCheck",
                "TCP" => "tcpHealthCheck",
                other => return Err(invalid(format!("Invalid value for field 'resource.type': '{other}'"))),
            };
            if !m.contains_key(sub) {
                return Err(invalid(format!("Invalid value for field 'resource.{sub}': required for type {t}")));
            }
            let timeout = m["timeoutSec"].as_i64().unwrap_or(0);
            if timeout > m["checkIntervalSec"].as_i64().unwrap_or(0) {
                return Err(invalid("Invalid value for field 'resource.timeoutSec': must not exceed checkIntervalSec"));
            }
        }
        "instanceGroups" => {
            m.entry("size").or_insert(json!(0));
            m.insert("fingerprint".into(), json!(st.fingerprint()));
        }
        "backendServices" => {
            m.entry("protocol").or_insert(json!("HTTP"));
            m.entry("portName").or_insert(json!("http"));
            m.entry("port").or_insert(json!(80));
            m.entry("timeoutSec").or_insert(json!(30));
            m.entry("loadBalancingScheme").or_insert(json!("EXTERNAL"));
            m.entry("connectionDraining").or_insert(json!({"drainingTimeoutSec": 300}));
            m.insert("fingerprint".into(), json!(st.fingerprint()));
        }
        "urlMaps" | "targetHttpProxies" | "targetHttpsProxies" => {
            m.insert("fingerprint".into(), json!(st.fingerprint()));
        }
        "sslPolicies" => {
            m.entry("profile").or_insert(json!("COMPATIBLE"));
            m.entry("minTlsVersion").or_insert(json!("TLS_1_0"));
            m.insert("fingerprint".into(), json!(st.fingerprint()));
        }
        "globalAddresses" => {
            let n = st.next();
            m.insert("address".into(), json!(format!("34.{}.{}.{}", 100 + n % 100, (n * 7) % 256, 1 + n % 250)));
            m.entry("addressType").or_insert(json!("EXTERNAL"));
            m.entry("ipVersion").or_insert(json!("IPV4"));
            m.entry("networkTier").or_insert(json!("PREMIUM"));
            m.insert("status".into(), json!("RESERVED"));
            m.insert("labelFingerprint".into(), json!(st.fingerprint()));
        }
        _ => {
            let ip = m.get("IPAddress").and_then(Value::as_str).unwrap_or_default().to_string();
            let ip = if ip.is_empty() || ip.parse::<Ipv4Addr>().is_ok() {
                ip
            } else {
                let k = key_of_link(c, &ip).filter(|k| k.0 == "globalAddresses");
                let a = k.and_then(|k| st.world.lb.get(&k)).ok_or_else(|| not_found(&relative_of(&ip)))?;
                s(a, "address")
            };
            let ip = if ip.is_empty() { format!("34.120.0.{}", 1 + st.next() % 250) } else { ip };
            m.insert("IPAddress".into(), json!(ip));
            m.entry("IPProtocol").or_insert(json!("TCP"));
            m.entry("loadBalancingScheme").or_insert(json!("EXTERNAL"));
            m.entry("networkTier").or_insert(json!("PREMIUM"));
            m.entry("ipVersion").or_insert(json!("IPV4"));
            m.insert("fingerprint".into(), json!(st.fingerprint()));
            m.insert("labelFingerprint".into(), json!(st.fingerprint()));
            let pr = m.get("portRange").and_then(Value::as_str).unwrap_or_default().to_string();
            let port = pr.split('-').next().and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0);
            let Some(port) = port else {
                return Err(invalid(format!("Invalid value for field 'resource.portRange': '{pr}'")));
            };
            m.insert("portRange".into(), json!(format!("{port}-{port}")));
        }
    }
    Ok(())
}

fn insert(st: &mut St, c: &Ctx, coll: &str, scope: &str, kind: &str, op_scope: Scope) -> Res {
    let name = s(&c.body, "name");
    check_name("resource.name", &name)?;
    let key = (coll.to_string(), scope.to_string(), name.clone());
    let seg = shape(coll).1;
    let link = if coll == "instanceGroups" {
        format!("{}/instanceGroups/{name}", c.zone_link(scope))
    } else {
        c.global_link(seg, &name)
    };
    if st.world.lb.contains_key(&key) {
        return Err(err(409, "alreadyExists", format!("The resource '{}' already exists", relative_of(&link))));
    }
    let mut m = from_body(&c.body, &["fingerprint", "labelFingerprint", "status", "size", "users"]);
    defaults(st, c, coll, &mut m)?;
    let id = st.id();
    m.insert("kind".into(), json!(kind));
    m.insert("id".into(), json!(id));
    m.insert("creationTimestamp".into(), json!(st.compute_time()));
    m.insert("selfLink".into(), json!(link));
    if coll == "instanceGroups" {
        m.insert("zone".into(), json!(c.zone_link(scope)));
    }
    let mut v = Value::Object(m);
    check_refs(st, c, coll, &mut v)?;
    st.world.lb.insert(key, v);
    Ok(compute_op(st, c, op_scope, "insert", &link, &id, vec![], vec![]))
}

/// A fingerprint the request carries must be the current one (412 otherwise).
fn same_fingerprint(body: &Value, cur: &Value, field: &str) -> Result<(), ApiErr> {
    match body.get(field) {
        Some(f) if Some(f) != cur.get(field) => Err(precondition("resource")),
        _ => Ok(()),
    }
}

/// The piece after a patch, update or set* call (not yet written).
fn change(st: &mut St, c: &Ctx, coll: &str, verb: &str, key: &(String, String, String), cur: &Value) -> Res {
    let b = &c.body;
    let mut next = cur.clone();
    match verb {
        "patch" | "update" => {
            same_fingerprint(b, cur, "fingerprint")?;
            if let Some(n) = b.get("name").and_then(Value::as_str) {
                if n != key.2 {
                    return Err(invalid(format!(
                        "Invalid value for field 'resource.name': '{n}'. The name cannot be changed"
                    )));
                }
            }
            let patch = Value::Object(from_body(b, &["fingerprint", "labelFingerprint"]));
            if verb == "update" {
                let mut m = patch.as_object().cloned().unwrap_or_default();
                for k in ["kind", "id", "creationTimestamp", "selfLink", "name", "zone"] {
                    if let Some(v) = cur.get(k) {
                        m.insert(k.into(), v.clone());
                    }
                }
                next = Value::Object(m);
            } else {
                // Arrays and scalars replace; objects merge (PATCH semantics of Compute Engine).
                merge(&mut next, &patch);
            }
            if cur.get("fingerprint").is_some() {
                next["fingerprint"] = json!(st.fingerprint());
            }
        }
        "setUrlMap" => next["urlMap"] = json!(resolve(st, c, &s(b, "urlMap"), "urlMaps")?),
        "setSslCertificates" => next["sslCertificates"] = b.get("sslCertificates").cloned().unwrap_or(json!([])),
        "setSslPolicy" => match b.get("sslPolicy").and_then(Value::as_str) {
            Some(p) => next["sslPolicy"] = json!(resolve(st, c, p, "sslPolicies")?),
            None => {
                next.as_object_mut().map(|o| o.remove("sslPolicy"));
            }
        },
        "setTarget" => next["target"] = json!(s(b, "target")),
        "setLabels" => {
            same_fingerprint(b, cur, "labelFingerprint")?;
            if b.get("labelFingerprint").is_none() {
                return Err(invalid("Invalid value for field 'labelFingerprint': required"));
            }
            match b.get("labels").and_then(Value::as_object).filter(|l| !l.is_empty()) {
                Some(l) => next["labels"] = json!(l),
                None => {
                    next.as_object_mut().map(|o| o.remove("labels"));
                }
            }
            next["labelFingerprint"] = json!(st.fingerprint());
        }
        "setNamedPorts" => {
            same_fingerprint(b, cur, "fingerprint")?;
            next["namedPorts"] = b.get("namedPorts").cloned().unwrap_or(json!([]));
            next["fingerprint"] = json!(st.fingerprint());
        }
        "addInstances" | "removeInstances" => {
            let mut have = members(st, key);
            for i in b.get("instances").and_then(Value::as_array).into_iter().flatten() {
                let link = s(i, "instance");
                let inst = instance_at(st, &link).ok_or_else(|| not_found(&relative_of(&link)))?;
                let full = s(inst, "selfLink");
                if seg_after(&full, "zones").as_deref() != Some(key.1.as_str()) {
                    return Err(invalid(format!(
                        "Invalid value for field 'instances': '{link}'. The instance is not in the zone of the instance group."
                    )));
                }
                if verb == "addInstances" {
                    if have.contains(&full) {
                        return Err(err(
                            400,
                            "memberAlreadyExists",
                            format!("The instance '{}' is already a member of the group", relative_of(&full)),
                        ));
                    }
                    have.push(full);
                } else {
                    have.retain(|h| *h != full);
                }
            }
            have.sort();
            next["size"] = json!(have.len());
            st.world.lb.insert((MEMBERS.to_string(), key.1.clone(), key.2.clone()), json!(have));
        }
        other => return Err(err(501, "notImplemented", format!("The GCP fake does not implement {coll}.{other}"))),
    }
    Ok(next)
}
