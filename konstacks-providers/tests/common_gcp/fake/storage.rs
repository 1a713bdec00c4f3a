//! The fake's Cloud Storage JSON API v1 (buckets and their IAM policies).
//!
//! Like Google: bucket names of 3 to 63 characters (`a-z`, `0-9`, `-`, `_`, `.`), starting and
//! ending with a letter or digit, without a `goog` prefix or `google` in them (400 `invalid`);
//! a taken name is 409 `conflict`, an unknown bucket 404 `notFound`, a stale
//! `ifMetagenerationMatch` or IAM etag 412 `conditionNotMet`, and deleting a bucket that holds
//! objects 409 `conflict`. Answers carry the server's fields (`kind`, `id`, `selfLink`,
//! `projectNumber` and `metageneration` as strings, an UPPERCASE `location`, `locationType`,
//! RFC 3339 `timeCreated`/`updated`, `etag`, `softDeletePolicy`), omit `versioning` until it
//! was set, and page lists of buckets (`maxResults`, `pageToken`, `prefix`). A patch merges
//! (objects merge, `null` clears); an update replaces. Objects are not served: tests put one in
//! a bucket with [`GcpFake::put_object`].

use super::*;

/// Bucket fields kept by the fake itself, never answered.
const HIDDEN: &[&str] = &["__objects", "__iam"];
/// Fields the server owns: ignored in a request body.
const OUTPUT_ONLY: &[&str] = &[
    "projectNumber",
    "metageneration",
    "generation",
    "timeCreated",
    "updated",
    "etag",
    "locationType",
    "owner",
    "softDeleteTime",
    "hardDeleteTime",
    "satisfiesPZS",
    "satisfiesPZI",
    "__objects",
    "__iam",
];
const STORAGE: &str = "https://www.googleapis.com/storage/v1";
/// Multi-region locations (their `locationType` is `multi-region`).
const MULTI_REGIONS: &[&str] = &["US", "EU", "ASIA"];
const LIFECYCLE_ACTIONS: &[&str] = &["Delete", "SetStorageClass", "AbortIncompleteMultipartUpload"];
const STORAGE_CLASSES: &[&str] = &["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"];

impl GcpFake {
    /// Put an object named `object` into `bucket` (as an upload would); `false` when there is no
    /// such bucket.
    pub fn put_object(&self, bucket: &str, object: &str) -> bool {
        let mut s = self.lock();
        let Some(b) = s.world.buckets.get_mut(bucket) else { return false };
        let mut objects: Vec<Value> = b["__objects"].as_array().cloned().unwrap_or_default();
        objects.push(json!(object));
        b["__objects"] = Value::Array(objects);
        true
    }

    /// Remove every object of `bucket` (as emptying it would).
    pub fn empty_bucket(&self, bucket: &str) {
        if let Some(b) = self.lock().world.buckets.get_mut(bucket) {
            if let Some(o) = b.as_object_mut() {
                o.remove("__objects");
            }
        }
    }
}

/// Answer a `storage.*` method.
pub(super) fn dispatch(st: &mut St, c: &Ctx) -> Res {
    match c.method_id {
        "storage.buckets.insert" => insert(st, c),
        "storage.buckets.get" => {
            let b = bucket(st, c)?;
            check_metageneration(c, b)?;
            Ok(public(b))
        }
        "storage.buckets.list" => list_buckets(st, c),
        "storage.buckets.patch" | "storage.buckets.update" => change(st, c),
        "storage.buckets.delete" => delete(st, c),
        "storage.buckets.getIamPolicy" => {
            let b = bucket(st, c)?;
            Ok(policy_of(c, b))
        }
        "storage.buckets.setIamPolicy" => set_policy(st, c),
        other => Err(err(501, "notImplemented", format!("The GCP fake does not implement {other}"))),
    }
}

fn bucket_not_found() -> ApiErr {
    err(404, "notFound", "The specified bucket does not exist.")
}

fn bucket<'a>(st: &'a St, c: &Ctx) -> Result<&'a Value, ApiErr> {
    st.world.buckets.get(&c.p("bucket")).ok_or_else(bucket_not_found)
}

/// The bucket as Google answers it (without the fake's own fields).
fn public(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        for k in HIDDEN {
            o.remove(*k);
        }
    }
    v
}

fn check_metageneration(c: &Ctx, b: &Value) -> Result<(), ApiErr> {
    let meta = s(b, "metageneration");
    if let Some(want) = c.query.get("ifMetagenerationMatch") {
        if *want != meta {
            return Err(err(412, "conditionNotMet", "Precondition Failed"));
        }
    }
    if let Some(not) = c.query.get("ifMetagenerationNotMatch") {
        if *not == meta {
            return Err(err(304, "notModified", "Not Modified"));
        }
    }
    Ok(())
}

fn project_number(project: &str) -> String {
    let h = project.bytes().fold(0u64, |h, b| mix(h ^ u64::from(b)));
    (100_000_000_000 + h % 900_000_000_000).to_string()
}

/// Google's bucket name rules (names with dots may have up to 222 characters, each dot-separated
/// part at most 63).
fn check_bucket_name(name: &str) -> Result<(), ApiErr> {
    let bad = || invalid(format!("Invalid bucket name: '{name}'"));
    let n = name.len();
    let max = if name.contains('.') { 222 } else { 63 };
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = name.as_bytes();
    if !(3..=max).contains(&n)
        || !b.iter().all(|c| alnum(*c) || matches!(c, b'-' | b'_' | b'.'))
        || !alnum(b[0])
        || !alnum(b[n - 1])
        || name.split('.').any(|p| p.is_empty() || p.len() > 63)
        || name.parse::<Ipv4Addr>().is_ok()
        || name.starts_with("goog")
        || name.contains("google")
        || name.contains("g00gle")
    {
        return Err(bad());
    }
    Ok(())
}

/// `(LOCATION, locationType)` of a requested location.
fn location_of(requested: &str) -> Result<(String, &'static str), ApiErr> {
    let upper = requested.to_ascii_uppercase();
    if MULTI_REGIONS.contains(&upper.as_str()) {
        return Ok((upper, "multi-region"));
    }
    if known_region(&requested.to_ascii_lowercase()) {
        return Ok((upper, "region"));
    }
    Err(invalid(format!("The specified location constraint is not valid: {requested}")))
}

fn is_label_key(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'))
}

fn is_label_value(v: &str) -> bool {
    v.len() <= 63 && v.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'))
}

/// Check the settable fields of a bucket (after a merge) and fill in what the server derives.
fn normalize(st: &mut St, b: &mut Value) -> Result<(), ApiErr> {
    let name = s(b, "name");
    let class = b.get("storageClass").and_then(Value::as_str).unwrap_or("STANDARD").to_ascii_uppercase();
    if !STORAGE_CLASSES.contains(&class.as_str()) {
        return Err(invalid(format!("Invalid storage class: '{class}'")));
    }
    b["storageClass"] = json!(class);
    if let Some(labels) = b.get("labels").and_then(Value::as_object) {
        if labels.len() > 64 {
            return Err(invalid("A bucket may have at most 64 labels."));
        }
        for (k, v) in labels {
            let v = v.as_str().unwrap_or_default();
            if !is_label_key(k) || !is_label_value(v) {
                return Err(invalid(format!("Invalid argument: label '{k}: {v}' is not valid.")));
            }
        }
    }
    let rules: Vec<Value> = b["lifecycle"]["rule"].as_array().cloned().unwrap_or_default();
    if rules.len() > 100 {
        return Err(invalid("A lifecycle configuration may have at most 100 rules."));
    }
    for r in &rules {
        let action = s(&r["action"], "type");
        if !LIFECYCLE_ACTIONS.contains(&action.as_str()) {
            return Err(invalid(format!("Invalid lifecycle action type: '{action}'")));
        }
        let cond = r["condition"].as_object().cloned().unwrap_or_default();
        if cond.is_empty() {
            return Err(invalid("A lifecycle rule must have at least one condition."));
        }
        if cond.get("age").is_some_and(|a| a.as_i64().is_none_or(|a| a < 0)) {
            return Err(invalid("Invalid lifecycle condition: age must be a non-negative integer."));
        }
    }
    if rules.is_empty() {
        if let Some(o) = b.as_object_mut() {
            o.remove("lifecycle");
        }
    }
    let cors: Vec<Value> = b["cors"].as_array().cloned().unwrap_or_default();
    if cors.len() > 100 {
        return Err(invalid("A CORS configuration may have at most 100 rules."));
    }
    if cors.is_empty() {
        if let Some(o) = b.as_object_mut() {
            o.remove("cors");
        }
    }
    if b.get("labels").and_then(Value::as_object).is_some_and(Map::is_empty) {
        if let Some(o) = b.as_object_mut() {
            o.remove("labels");
        }
    }
    match b["encryption"]["defaultKmsKeyName"].as_str() {
        Some(key) => {
            let parts: Vec<&str> = key.split('/').collect();
            let well_formed = parts.len() == 8
                && parts[0] == "projects"
                && parts[2] == "locations"
                && parts[4] == "keyRings"
                && parts[6] == "cryptoKeys";
            if !well_formed {
                return Err(invalid(format!("Invalid argument: Cloud KMS key name '{key}' is not valid.")));
            }
            if !parts[3].eq_ignore_ascii_case(&s(b, "location")) {
                return Err(invalid(format!(
                    "Cloud KMS key location {} does not match the bucket location {}.",
                    parts[3],
                    s(b, "location")
                )));
            }
        }
        None => {
            if let Some(o) = b.as_object_mut() {
                o.remove("encryption");
            }
        }
    }
    // IAM configuration: uniform access mirrored into the legacy `bucketPolicyOnly`, public access
    // prevention `inherited` unless enforced.
    let uniform = b["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"].as_bool().unwrap_or(false);
    let pap = match b["iamConfiguration"]["publicAccessPrevention"].as_str() {
        None | Some("inherited" | "unspecified") => "inherited",
        Some("enforced") => "enforced",
        Some(other) => return Err(invalid(format!("Invalid value for publicAccessPrevention: '{other}'"))),
    };
    let mut ubla = json!({ "enabled": uniform });
    if uniform {
        let locked = b["iamConfiguration"]["uniformBucketLevelAccess"]["lockedTime"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| in_days(st, 90));
        ubla["lockedTime"] = json!(locked);
    }
    b["iamConfiguration"] = json!({
        "bucketPolicyOnly": ubla.clone(),
        "uniformBucketLevelAccess": ubla,
        "publicAccessPrevention": pap,
    });
    b["selfLink"] = json!(format!("{STORAGE}/b/{name}"));
    b["kind"] = json!("storage#bucket");
    b["id"] = json!(name);
    Ok(())
}

/// An RFC 3339 time `days` days after the fake's clock.
fn in_days(st: &St, days: u64) -> String {
    let (y, mo, d, h, mi, se) = civil(T0 + st.clock + days * 86_400);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}.000Z")
}

fn bump(st: &mut St, b: &mut Value) {
    let meta = s(b, "metageneration").parse::<u64>().unwrap_or(0) + 1;
    b["metageneration"] = json!(meta.to_string());
    b["updated"] = json!(st.sql_time());
    b["etag"] = json!(etag(meta));
}

fn etag(meta: u64) -> String {
    // Google's bucket etags are the base64 of a small varint-like record (`CAE=` for the first).
    b64(&[0x08, u8::try_from(meta.min(127)).unwrap_or(127)])
}

fn insert(st: &mut St, c: &Ctx) -> Res {
    if !c.query.contains_key("project") {
        return Err(err(400, "required", "Required parameter: project"));
    }
    let name = s(&c.body, "name");
    check_bucket_name(&name)?;
    if st.world.buckets.contains_key(&name) {
        return Err(err(
            409,
            "conflict",
            "Your previous request to create the named bucket succeeded and you already own it.",
        ));
    }
    let mut m = from_body(&c.body, OUTPUT_ONLY);
    let requested = c.body.get("location").and_then(Value::as_str).unwrap_or("US").to_string();
    let (location, location_type) = location_of(&requested)?;
    let now = st.sql_time();
    m.insert("name".into(), json!(name));
    m.insert("location".into(), json!(location));
    m.insert("locationType".into(), json!(location_type));
    m.insert("projectNumber".into(), json!(project_number(&c.opts.project)));
    m.insert("metageneration".into(), json!("1"));
    m.insert("generation".into(), json!(st.id()));
    m.insert("timeCreated".into(), json!(now));
    m.insert("updated".into(), json!(now));
    m.insert("etag".into(), json!(etag(1)));
    m.insert("rpo".into(), json!("DEFAULT"));
    m.insert("softDeletePolicy".into(), json!({ "retentionDurationSeconds": "604800", "effectiveTime": now }));
    let mut b = Value::Object(m);
    normalize(st, &mut b)?;
    st.world.buckets.insert(name, b.clone());
    Ok(public(&b))
}

fn list_buckets(st: &mut St, c: &Ctx) -> Res {
    if !c.query.contains_key("project") {
        return Err(err(400, "required", "Required parameter: project"));
    }
    let prefix = c.query.get("prefix").cloned().unwrap_or_default();
    let items: Vec<Value> =
        st.world.buckets.iter().filter(|(n, _)| n.starts_with(&prefix)).map(|(_, v)| public(v)).collect();
    let (a, b, next) = page_bounds(c, items.len())?;
    let mut v = json!({ "kind": "storage#buckets" });
    if a < b {
        v["items"] = json!(items[a..b]);
    }
    if let Some(n) = next {
        v["nextPageToken"] = json!(n);
    }
    Ok(v)
}

fn change(st: &mut St, c: &Ctx) -> Res {
    let name = c.p("bucket");
    let cur = bucket(st, c)?.clone();
    check_metageneration(c, &cur)?;
    if let Some(n) = c.body.get("name").and_then(Value::as_str) {
        if n != name {
            return Err(invalid("The bucket name cannot be changed."));
        }
    }
    if let Some(l) = c.body.get("location").and_then(Value::as_str) {
        if !l.eq_ignore_ascii_case(&s(&cur, "location")) {
            return Err(invalid("The location of a bucket cannot be changed."));
        }
    }
    let patch = Value::Object(from_body(&c.body, OUTPUT_ONLY));
    let mut next = if c.method_id == "storage.buckets.patch" {
        let mut v = cur.clone();
        merge(&mut v, &patch);
        v
    } else {
        // An update replaces every settable field.
        let mut v = patch;
        for k in OUTPUT_ONLY.iter().chain(&["name", "location", "rpo", "softDeletePolicy"]) {
            if let Some(x) = cur.get(*k) {
                v[*k] = x.clone();
            }
        }
        v
    };
    normalize(st, &mut next)?;
    // A locked-in uniform access cannot be turned off (the fake never locks it; Google does after
    // 90 days).
    bump(st, &mut next);
    st.world.buckets.insert(name, next.clone());
    Ok(public(&next))
}

fn delete(st: &mut St, c: &Ctx) -> Res {
    let name = c.p("bucket");
    let cur = bucket(st, c)?;
    check_metageneration(c, cur)?;
    if cur["__objects"].as_array().is_some_and(|o| !o.is_empty()) {
        return Err(err(409, "conflict", "The bucket you tried to delete is not empty."));
    }
    st.world.buckets.remove(&name);
    Ok(Value::Null)
}

/// The bucket's IAM policy: the one set, or the default of a new bucket.
fn policy_of(c: &Ctx, b: &Value) -> Value {
    if let Some(p) = b.get("__iam").filter(|p| p.is_object()) {
        return p.clone();
    }
    let p = &c.opts.project;
    let name = s(b, "name");
    json!({
        "kind": "storage#policy",
        "resourceId": format!("projects/_/buckets/{name}"),
        "version": 1,
        "etag": "CAE=",
        "bindings": [
            {"role": "roles/storage.legacyBucketOwner", "members": [format!("projectEditor:{p}"), format!("projectOwner:{p}")]},
            {"role": "roles/storage.legacyBucketReader", "members": [format!("projectViewer:{p}")]},
            {"role": "roles/storage.legacyObjectOwner", "members": [format!("projectEditor:{p}"), format!("projectOwner:{p}")]},
            {"role": "roles/storage.legacyObjectReader", "members": [format!("projectViewer:{p}")]},
        ],
    })
}

fn set_policy(st: &mut St, c: &Ctx) -> Res {
    let name = c.p("bucket");
    let cur = bucket(st, c)?.clone();
    let old = policy_of(c, &cur);
    if let Some(e) = c.body.get("etag").and_then(Value::as_str) {
        if e != s(&old, "etag") {
            return Err(err(412, "conditionNotMet", "Precondition Failed"));
        }
    }
    let bindings = c.body.get("bindings").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut public = false;
    for bnd in &bindings {
        let role = s(bnd, "role");
        let members = bnd.get("members").and_then(Value::as_array).cloned().unwrap_or_default();
        if !role.starts_with("roles/") || members.is_empty() {
            return Err(invalid(format!("Invalid argument: binding for role '{role}' is not valid.")));
        }
        for m in &members {
            let m = m.as_str().unwrap_or_default();
            let known = matches!(m, "allUsers" | "allAuthenticatedUsers")
                || [
                    "user:",
                    "serviceAccount:",
                    "group:",
                    "domain:",
                    "projectOwner:",
                    "projectEditor:",
                    "projectViewer:",
                ]
                .iter()
                .any(|p| m.starts_with(p));
            if !known {
                return Err(invalid(format!("Invalid argument: member '{m}' is not valid.")));
            }
            public |= matches!(m, "allUsers" | "allAuthenticatedUsers");
        }
    }
    if public && cur["iamConfiguration"]["publicAccessPrevention"].as_str() == Some("enforced") {
        return Err(err(
            412,
            "conditionNotMet",
            "Request violates constraint 'constraints/storage.publicAccessPrevention'",
        ));
    }
    let etag = st.fingerprint();
    let policy = json!({
        "kind": "storage#policy",
        "resourceId": format!("projects/_/buckets/{name}"),
        "version": 1,
        "etag": etag,
        "bindings": bindings,
    });
    if let Some(b) = st.world.buckets.get_mut(&name) {
        b["__iam"] = policy.clone();
    }
    Ok(policy)
}
