//! The fake's Memorystore for Redis v1 (instances, their auth string, long-running operations).
//!
//! Like Google: instance ids of 1 to 40 characters (`a-z`, `0-9`, `-`, starting with a letter and
//! not ending with `-`) and known regions (400 `INVALID_ARGUMENT`), a taken id 409
//! `ALREADY_EXISTS`, an unknown instance or operation 404 `NOT_FOUND`. `create`, `patch`,
//! `upgrade` and `delete` answer a `google.longrunning.Operation`
//! (`projects/{p}/locations/{l}/operations/operation-…`) that is `done` on the
//! `polls_until_done`th `operations.get`; meanwhile the instance is `CREATING` / `UPDATING` /
//! `DELETING`, then `READY` (or gone). The server fills `host`, `port` (6378 with TLS, 6379
//! without), `currentLocationId`, `locationId`, `nodes`, `reservedIpRange`, `createTime`, server
//! CA certificates when transit encryption is on, a read endpoint with read replicas, and an AUTH
//! string when `authEnabled` (kept on the instance as `authString`, answered only by
//! `getAuthString`). The tier cannot change; a patch accepts only the paths Google documents
//! (`displayName`, `labels`, `memorySizeGb`, `redisConfig(s)`, `replicaCount`) and checks
//! replica counts per tier (Basic 0; Standard 1, or 1 to 5 with read replicas, which need 5 GB
//! or more). Lists page with `pageSize` / `pageToken`; location `-` lists every region.
//!
//! The Rust client sends enums as numbers (`$alt=json;enum-encoding=int`); the fake reads both
//! and answers names, as Google does for JSON. Operations live in the fake's operation table
//! (scoped to the instance's full name, which no Cloud SQL instance can have).

use super::*;

/// Fields the fake keeps on an instance and never answers on it.
const HIDDEN: &[&str] = &["authString"];
/// Fields the server owns: ignored in a request body.
const OUTPUT_ONLY: &[&str] = &[
    "createTime",
    "currentLocationId",
    "host",
    "port",
    "state",
    "statusMessage",
    "nodes",
    "serverCaCerts",
    "persistenceIamIdentity",
    "readEndpoint",
    "readEndpointPort",
    "maintenanceSchedule",
    "satisfiesPzi",
    "satisfiesPzs",
    "authString",
];
const VERSIONS: &[&str] = &["REDIS_3_2", "REDIS_4_0", "REDIS_5_0", "REDIS_6_X", "REDIS_7_0", "REDIS_7_2"];
const METADATA_TYPE: &str = "type.googleapis.com/google.cloud.redis.v1.OperationMetadata";

/// Answer a `redis.*` method.
pub(super) fn dispatch(st: &mut St, c: &Ctx) -> Res {
    match c.method_id {
        "redis.projects.locations.instances.create" => create(st, c),
        "redis.projects.locations.instances.get" => Ok(visible(instance(st, c)?)),
        "redis.projects.locations.instances.list" => list_instances(st, c),
        "redis.projects.locations.instances.patch" => patch(st, c),
        "redis.projects.locations.instances.upgrade" => upgrade(st, c),
        "redis.projects.locations.instances.delete" => delete(st, c),
        "redis.projects.locations.instances.getAuthString" => {
            let v = instance(st, c)?;
            Ok(match v.get("authString") {
                Some(a) => json!({ "authString": a }),
                None => json!({}),
            })
        }
        "redis.projects.locations.operations.get" => poll(st, c),
        other => Err(err(501, "notImplemented", format!("The GCP fake does not implement {other}"))),
    }
}

fn redis_err(status: u16, message: impl Into<String>) -> ApiErr {
    let reason = match status {
        404 => "notFound",
        409 => "alreadyExists",
        _ => "badRequest",
    };
    err(status, reason, message)
}

fn parent(c: &Ctx) -> Result<String, ApiErr> {
    let l = c.p("locationsId");
    if !known_region(&l) {
        return Err(redis_err(400, format!("Location '{l}' is not a valid Memorystore for Redis location.")));
    }
    Ok(format!("projects/{}/locations/{l}", c.opts.project))
}

fn full_name(c: &Ctx) -> String {
    format!("projects/{}/locations/{}/instances/{}", c.opts.project, c.p("locationsId"), c.p("instancesId"))
}

fn instance<'a>(st: &'a St, c: &Ctx) -> Result<&'a Value, ApiErr> {
    let name = full_name(c);
    st.world.redis.get(&name).ok_or_else(|| redis_err(404, format!("Resource '{name}' was not found")))
}

/// The instance as Google answers it.
fn visible(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        for k in HIDDEN {
            o.remove(*k);
        }
    }
    v
}

fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 40
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !id.ends_with('-')
}

/// Enum fields sent as numbers become their names.
fn normalize_enums(body: &mut Value) {
    use google_cloud_redis_v1::model::instance as m;
    fn fix<E: From<i32>>(body: &mut Value, key: &str, name: impl Fn(&E) -> Option<&str>) {
        if let Some(v) = body.get_mut(key) {
            if let Some(n) = v.as_i64().and_then(|n| i32::try_from(n).ok()) {
                if let Some(s) = name(&E::from(n)) {
                    *v = json!(s);
                }
            }
        }
    }
    fix::<m::Tier>(body, "tier", |e| e.name());
    fix::<m::ConnectMode>(body, "connectMode", |e| e.name());
    fix::<m::TransitEncryptionMode>(body, "transitEncryptionMode", |e| e.name());
    fix::<m::ReadReplicasMode>(body, "readReplicasMode", |e| e.name());
    fix::<m::State>(body, "state", |e| e.name());
    if let Some(p) = body.get_mut("persistenceConfig") {
        use google_cloud_redis_v1::model::persistence_config as pc;
        fix::<pc::PersistenceMode>(p, "persistenceMode", |e| e.name());
        fix::<pc::SnapshotPeriod>(p, "rdbSnapshotPeriod", |e| e.name());
    }
}

fn num(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(|x| x.as_i64().or_else(|| x.as_str().and_then(|s| s.parse().ok()))).unwrap_or(0)
}

/// Tier, memory and replicas that Google accepts together.
fn check_shape(v: &Value) -> Result<(), ApiErr> {
    let tier = s(v, "tier");
    let memory = num(v, "memorySizeGb");
    let replicas = num(v, "replicaCount");
    let read_replicas = s(v, "readReplicasMode") == "READ_REPLICAS_ENABLED";
    if !(1..=300).contains(&memory) {
        return Err(redis_err(400, format!("memory_size_gb must be between 1 and 300, got {memory}")));
    }
    match tier.as_str() {
        "BASIC" => {
            if replicas != 0 {
                return Err(redis_err(400, "replica_count must be 0 for a BASIC tier instance"));
            }
            if read_replicas {
                return Err(redis_err(400, "Read replicas are not supported for BASIC tier instances"));
            }
        }
        "STANDARD_HA" if read_replicas => {
            if !(1..=5).contains(&replicas) {
                return Err(redis_err(400, "replica_count must be between 1 and 5 with read replicas enabled"));
            }
            if memory < 5 {
                return Err(redis_err(400, "Read replicas require an instance of 5 GB or more"));
            }
        }
        "STANDARD_HA" => {
            if replicas != 1 {
                return Err(redis_err(400, "replica_count must be 1 when read replicas are disabled"));
            }
        }
        other => return Err(redis_err(400, format!("tier must be BASIC or STANDARD_HA, got '{other}'"))),
    }
    Ok(())
}

/// A long-running operation on instance `target` (full name), stored with the fake's others.
fn operation(st: &mut St, c: &Ctx, target: &str, verb: &str) -> Value {
    let loc = target.split('/').nth(3).unwrap_or_default().to_string();
    let millis = (T0 + st.clock) * 1000 + st.clock % 1000;
    let name = format!("projects/{}/locations/{loc}/operations/operation-{millis}-{}", c.opts.project, st.hex(16));
    let created = st.sql_time();
    let v = json!({
        "name": name,
        "metadata": {
            "@type": METADATA_TYPE,
            "createTime": created,
            "target": target,
            "verb": verb,
            "cancelRequested": false,
            "apiVersion": "v1",
        },
        "done": false,
    });
    st.ops.insert(
        name.clone(),
        Op { v, polls: 0, scope: Scope::Sql(target.to_string()), on_running: vec![], on_done: vec![], error: None },
    );
    if c.opts.polls_until_done == 0 {
        finish(st, &name);
    }
    st.ops.get(&name).map(|o| o.v.clone()).unwrap_or(Value::Null)
}

/// The `google.rpc.Code` of an operation error code name.
fn rpc_code(code: &str) -> i64 {
    match code {
        "CANCELLED" => 1,
        "INVALID_ARGUMENT" | "INVALID" => 3,
        "NOT_FOUND" | "RESOURCE_NOT_FOUND" => 5,
        "ALREADY_EXISTS" | "RESOURCE_ALREADY_EXISTS" => 6,
        "PERMISSION_DENIED" => 7,
        "QUOTA_EXCEEDED" | "RESOURCE_EXHAUSTED" => 8,
        "FAILED_PRECONDITION" => 9,
        "INTERNAL" => 13,
        "UNAVAILABLE" | "ZONE_RESOURCE_POOL_EXHAUSTED" => 14,
        _ => 2,
    }
}

/// End the operation `name`: apply its change to the instance, or record its error.
fn finish(st: &mut St, name: &str) {
    let end = st.sql_time();
    let Some(op) = st.ops.get_mut(name) else { return };
    if op.v["done"] == json!(true) {
        return;
    }
    op.v["done"] = json!(true);
    op.v["metadata"]["endTime"] = json!(end);
    let target = s(&op.v["metadata"], "target");
    let verb = s(&op.v["metadata"], "verb");
    if let Some((code, message)) = op.error.clone() {
        op.v["error"] = json!({"code": rpc_code(&code), "message": format!("{code}: {message}")});
        return;
    }
    let response = if verb == "delete" {
        st.world.redis.remove(&target);
        json!({"@type": "type.googleapis.com/google.protobuf.Empty"})
    } else {
        match st.world.redis.get_mut(&target) {
            Some(v) => {
                v["state"] = json!("READY");
                let mut r = visible(v);
                r["@type"] = json!("type.googleapis.com/google.cloud.redis.v1.Instance");
                r
            }
            None => json!({"@type": "type.googleapis.com/google.protobuf.Empty"}),
        }
    };
    if let Some(op) = st.ops.get_mut(name) {
        op.v["response"] = response;
    }
}

fn poll(st: &mut St, c: &Ctx) -> Res {
    let name =
        format!("projects/{}/locations/{}/operations/{}", c.opts.project, c.p("locationsId"), c.p("operationsId"));
    let Some(op) = st.ops.get_mut(&name) else {
        return Err(redis_err(404, format!("Resource '{name}' was not found")));
    };
    if op.v["done"] != json!(true) {
        op.polls += 1;
        if op.polls >= c.opts.polls_until_done.max(1) {
            finish(st, &name);
        }
    }
    st.ops.get(&name).map(|o| o.v.clone()).ok_or_else(|| redis_err(404, format!("Resource '{name}' was not found")))
}

fn busy(st: &St, target: &str) -> Result<(), ApiErr> {
    match st.world.redis.get(target).map(|v| s(v, "state")) {
        Some(state) if state == "READY" => Ok(()),
        Some(state) => {
            Err(redis_err(400, format!("Instance {target} is in {state} state; the operation is not allowed")))
        }
        None => Err(redis_err(404, format!("Resource '{target}' was not found"))),
    }
}

fn create(st: &mut St, c: &Ctx) -> Res {
    let parent = parent(c)?;
    let region = c.p("locationsId");
    let id = c.query.get("instanceId").cloned().unwrap_or_default();
    if !valid_id(&id) {
        return Err(redis_err(
            400,
            format!("instance_id '{id}' must be 1 to 40 lowercase letters, digits or hyphens, starting with a letter"),
        ));
    }
    let name = format!("{parent}/instances/{id}");
    if st.world.redis.contains_key(&name) {
        return Err(redis_err(409, format!("Resource '{name}' already exists")));
    }
    let mut body = c.body.clone();
    normalize_enums(&mut body);
    let mut m = from_body(&body, OUTPUT_ONLY);
    let tier = m.get("tier").and_then(Value::as_str).unwrap_or_default().to_string();
    let standard = tier == "STANDARD_HA";
    let read_replicas = m.get("readReplicasMode").and_then(Value::as_str) == Some("READ_REPLICAS_ENABLED");
    if !m.contains_key("replicaCount") {
        let default = match (standard, read_replicas) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        };
        m.insert("replicaCount".into(), json!(default));
    }
    let network = match m.get("authorizedNetwork").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => format!("projects/{}/global/networks/default", c.opts.project),
    };
    let net_name = seg_after(&network, "networks").unwrap_or_default();
    let net_project = seg_after(&network, "projects").unwrap_or_default();
    if net_project != c.opts.project || !st.world.networks.contains_key(&net_name) {
        return Err(redis_err(400, format!("Invalid authorized network '{network}': the network does not exist")));
    }
    m.insert("authorizedNetwork".into(), json!(network));
    let zones = zones_of(&region);
    let location = match m.get("locationId").and_then(Value::as_str) {
        Some(z) if !z.is_empty() => z.to_string(),
        _ => zones.first().cloned().unwrap_or_default(),
    };
    if !zones.contains(&location) {
        return Err(redis_err(400, format!("location_id '{location}' is not a zone of {region}")));
    }
    m.insert("locationId".into(), json!(location));
    if standard {
        let alternative = match m.get("alternativeLocationId").and_then(Value::as_str) {
            Some(z) if !z.is_empty() => z.to_string(),
            _ => zones.iter().find(|z| **z != location).cloned().unwrap_or_default(),
        };
        if alternative == location || !zones.contains(&alternative) {
            return Err(redis_err(
                400,
                format!("alternative_location_id '{alternative}' must be another zone of {region}"),
            ));
        }
        m.insert("alternativeLocationId".into(), json!(alternative));
    } else if m.get("alternativeLocationId").and_then(Value::as_str).is_some_and(|z| !z.is_empty()) {
        return Err(redis_err(400, "alternative_location_id is only valid for STANDARD_HA instances"));
    }
    let version = m.get("redisVersion").and_then(Value::as_str).filter(|v| !v.is_empty()).unwrap_or("REDIS_7_0");
    if !VERSIONS.contains(&version) {
        return Err(redis_err(400, format!("redis_version '{version}' is not supported")));
    }
    let version = version.to_string();
    m.insert("redisVersion".into(), json!(version));
    if m.get("connectMode").and_then(Value::as_str).is_none_or(|v| v == "CONNECT_MODE_UNSPECIFIED") {
        m.insert("connectMode".into(), json!("DIRECT_PEERING"));
    }
    let tls = m.get("transitEncryptionMode").and_then(Value::as_str) == Some("SERVER_AUTHENTICATION");
    if !tls {
        m.insert("transitEncryptionMode".into(), json!("DISABLED"));
    }
    if !read_replicas {
        m.insert("readReplicasMode".into(), json!("READ_REPLICAS_DISABLED"));
    }
    if let Some(labels) = m.get("labels") {
        check_labels(labels)?;
    }
    let mut v = Value::Object(m);
    check_shape(&v)?;
    let n = st.next();
    let ip = |k: u64| format!("10.{}.{}.{}", 100 + n % 100, (n * 8) % 250, 3 + k);
    v["name"] = json!(name);
    v["createTime"] = json!(st.sql_time());
    v["state"] = json!("CREATING");
    v["host"] = json!(ip(0));
    v["port"] = json!(if tls { 6378 } else { 6379 });
    v["currentLocationId"] = json!(location);
    v["reservedIpRange"] = json!(format!("10.{}.{}.0/29", 100 + n % 100, (n * 8) % 250));
    v["persistenceIamIdentity"] = json!(format!("serviceAccount:service-{n}@cloud-redis.iam.gserviceaccount.com"));
    let mut nodes = vec![json!({"id": "node-0", "zone": location})];
    if standard {
        let alt = s(&v, "alternativeLocationId");
        for i in 1..=num(&v, "replicaCount") {
            nodes.push(json!({"id": format!("node-{i}"), "zone": if i == 1 { alt.clone() } else { location.clone() }}));
        }
    }
    v["nodes"] = json!(nodes);
    if read_replicas {
        v["readEndpoint"] = json!(ip(1));
        v["readEndpointPort"] = json!(if tls { 6378 } else { 6379 });
    }
    if tls {
        let created = st.sql_time();
        let serial = st.hex(16);
        let fp = st.hex(32);
        v["serverCaCerts"] = json!([{
            "serialNumber": serial,
            "cert": format!("-----BEGIN CERTIFICATE-----\nMIIfake{serial}\n-----END CERTIFICATE-----\n"),
            "createTime": created,
            "expireTime": "2036-01-01T00:00:00Z",
            "sha1Fingerprint": fp,
        }]);
    }
    if v.get("authEnabled").and_then(Value::as_bool) == Some(true) {
        v["authString"] = json!(format!("{}-{}-{}-{}", st.hex(8), st.hex(4), st.hex(4), st.hex(12)));
    }
    st.world.redis.insert(name.clone(), v);
    Ok(operation(st, c, &name, "create"))
}

fn check_labels(labels: &Value) -> Result<(), ApiErr> {
    let Some(o) = labels.as_object() else { return Err(redis_err(400, "labels must be a map")) };
    if o.len() > 64 {
        return Err(redis_err(400, "an instance may have at most 64 labels"));
    }
    for (k, v) in o {
        let ok = |t: &str| {
            t.len() <= 63 && t.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        };
        if k.is_empty() || !k.starts_with(|c: char| c.is_ascii_lowercase()) || !ok(k) || !v.as_str().is_some_and(ok) {
            return Err(redis_err(400, format!("invalid label {k}={v}")));
        }
    }
    Ok(())
}

fn list_instances(st: &mut St, c: &Ctx) -> Res {
    let l = c.p("locationsId");
    let prefix = if l == "-" { format!("projects/{}/locations/", c.opts.project) } else { format!("{}/", parent(c)?) };
    let items: Vec<Value> =
        st.world.redis.iter().filter(|(n, _)| n.starts_with(&prefix)).map(|(_, v)| visible(v)).collect();
    let mut size = c.opts.page_size.max(1);
    if let Some(p) = c.query.get("pageSize") {
        let p: usize = p.parse().map_err(|_| redis_err(400, format!("Invalid page_size '{p}'")))?;
        if p > 0 {
            size = size.min(p);
        }
    }
    let start = match c.query.get("pageToken").filter(|t| !t.is_empty()) {
        Some(t) => parse_page_token(t).ok_or_else(|| redis_err(400, format!("Invalid page_token '{t}'")))?,
        None => 0,
    };
    let start = start.min(items.len());
    let end = (start + size).min(items.len());
    let mut v = json!({ "instances": items[start..end] });
    if end < items.len() {
        v["nextPageToken"] = json!(page_token(end));
    }
    Ok(v)
}

/// The camelCase form of an update mask path (`memory_size_gb` -> `memorySizeGb`).
fn camel(path: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for ch in path.trim().chars() {
        if ch == '_' {
            up = true;
        } else if up {
            out.push(ch.to_ascii_uppercase());
            up = false;
        } else {
            out.push(ch);
        }
    }
    out
}

fn patch(st: &mut St, c: &Ctx) -> Res {
    let name = full_name(c);
    instance(st, c)?;
    let mask = c.query.get("updateMask").cloned().unwrap_or_default();
    let paths: Vec<String> = mask.split(',').filter(|p| !p.trim().is_empty()).map(camel).collect();
    if paths.is_empty() {
        return Err(redis_err(400, "update_mask must name at least one field"));
    }
    if let Some(bad) = paths.iter().find(|p| {
        !["displayName", "labels", "memorySizeGb", "redisConfig", "redisConfigs", "replicaCount"].contains(&p.as_str())
    }) {
        return Err(redis_err(400, format!("Invalid update_mask path '{bad}': the field cannot be updated")));
    }
    busy(st, &name)?;
    let mut body = c.body.clone();
    normalize_enums(&mut body);
    let Some(current) = st.world.redis.get(&name) else { return Err(not_found(&name)) };
    let mut next = current.clone();
    for p in &paths {
        let key = if p == "redisConfig" { "redisConfigs" } else { p.as_str() };
        match body.get(key) {
            Some(v) => next[key] = v.clone(),
            None => {
                if let Some(o) = next.as_object_mut() {
                    o.remove(key);
                }
            }
        }
    }
    if let Some(labels) = next.get("labels") {
        check_labels(labels)?;
    }
    check_shape(&next)?;
    if paths.iter().any(|p| p == "replicaCount") {
        let location = s(&next, "locationId");
        let alt = s(&next, "alternativeLocationId");
        let mut nodes = vec![json!({"id": "node-0", "zone": location})];
        for i in 1..=num(&next, "replicaCount") {
            nodes.push(json!({"id": format!("node-{i}"), "zone": if i == 1 { alt.clone() } else { location.clone() }}));
        }
        next["nodes"] = json!(nodes);
    }
    next["state"] = json!("UPDATING");
    st.world.redis.insert(name.clone(), next);
    Ok(operation(st, c, &name, "update"))
}

fn upgrade(st: &mut St, c: &Ctx) -> Res {
    let name = full_name(c);
    let current = instance(st, c)?.clone();
    busy(st, &name)?;
    let version = s(&c.body, "redisVersion");
    if !VERSIONS.contains(&version.as_str()) {
        return Err(redis_err(400, format!("redis_version '{version}' is not supported")));
    }
    let have = s(&current, "redisVersion");
    let rank = |v: &str| VERSIONS.iter().position(|x| *x == v).unwrap_or(0);
    if rank(&version) <= rank(&have) {
        return Err(redis_err(400, format!("Cannot upgrade from {have} to {version}: the version must be newer")));
    }
    if let Some(v) = st.world.redis.get_mut(&name) {
        v["redisVersion"] = json!(version);
        v["state"] = json!("UPDATING");
    }
    Ok(operation(st, c, &name, "upgrade"))
}

fn delete(st: &mut St, c: &Ctx) -> Res {
    let name = full_name(c);
    let state = s(instance(st, c)?, "state");
    if state == "CREATING" || state == "DELETING" {
        return Err(redis_err(400, format!("Instance {name} is in {state} state; it cannot be deleted now")));
    }
    if let Some(v) = st.world.redis.get_mut(&name) {
        v["state"] = json!("DELETING");
    }
    Ok(operation(st, c, &name, "delete"))
}
