//! The fake's Compute Engine SSL certificates (`compute.sslCertificates.*`, global).
//!
//! Like Compute Engine: inserts and deletes answer global operations; a `MANAGED` certificate
//! covers 1 to 100 domains, none of them a wildcard (Google-managed certificates "support up to
//! 100 non-wildcard domains", cloud.google.com/kubernetes-engine/docs/how-to/managed-certs), is
//! `PROVISIONING` with each domain `PROVISIONING`, and turns `ACTIVE` (with its
//! `expireTime`, 90 days on) after a few reads of it: Google provisions it once the domains
//! resolve to a load balancer, which the fake takes for granted. Certificates cannot be changed.

use super::*;

/// Reads of a managed certificate after which it is `ACTIVE`.
const READS_UNTIL_ACTIVE: u64 = 3;
/// Field the fake keeps on a stored certificate and never answers: reads of it so far.
const READS: &str = "__fakeReads";

/// Answer a `compute.sslCertificates.*` method.
pub(super) fn dispatch(st: &mut St, c: &Ctx) -> Res {
    match c.method_id {
        "compute.sslCertificates.insert" => insert(st, c),
        "compute.sslCertificates.get" => {
            let name = c.p("sslCertificate");
            read(st, c, &name)?;
            Ok(shown(cert(st, c, &name)?))
        }
        "compute.sslCertificates.list" => {
            let names: Vec<String> = st.world.ssl_certificates.keys().cloned().collect();
            for n in &names {
                read(st, c, n)?;
            }
            let items = st.world.ssl_certificates.values().map(shown).collect();
            list(c, "compute#sslCertificateList", &format!("projects/{}/global/sslCertificates", c.opts.project), items)
        }
        "compute.sslCertificates.delete" => {
            let name = c.p("sslCertificate");
            let v = cert(st, c, &name)?.clone();
            let link = s(&v, "selfLink");
            let user = st.world.lb.iter().find(|(_, p)| {
                p["sslCertificates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|u| u.as_str().is_some_and(|u| u.ends_with(&format!("/sslCertificates/{name}"))))
            });
            if let Some(((coll, _, n), _)) = user {
                return Err(err(
                    400,
                    "resourceInUseByAnotherResource",
                    format!(
                        "The ssl_certificate resource 'projects/{p}/global/sslCertificates/{name}' is already being \
                         used by 'projects/{p}/global/{coll}/{n}'",
                        p = c.opts.project
                    ),
                ));
            }
            st.world.ssl_certificates.remove(&name);
            Ok(compute_op(st, c, Scope::Global, "delete", &link, &s(&v, "id"), vec![], vec![]))
        }
        other => Err(err(501, "notImplemented", format!("The GCP fake does not implement {other}"))),
    }
}

fn cert<'a>(st: &'a St, c: &Ctx, name: &str) -> Result<&'a Value, ApiErr> {
    st.world
        .ssl_certificates
        .get(name)
        .ok_or_else(|| not_found(&format!("projects/{}/global/sslCertificates/{name}", c.opts.project)))
}

/// The certificate as answered (without the fake's own field).
fn shown(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove(READS);
    }
    v
}

/// Count a read; a managed certificate read often enough is provisioned.
fn read(st: &mut St, c: &Ctx, name: &str) -> Result<(), ApiErr> {
    cert(st, c, name)?;
    let expire = {
        let t = T0 + st.clock + 90 * 86_400;
        let (y, mo, d, h, mi, se) = civil(t);
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}.000-08:00")
    };
    let Some(v) = st.world.ssl_certificates.get_mut(name) else { return Ok(()) };
    if s(v, "type") != "MANAGED" || v["managed"]["status"] == "ACTIVE" {
        return Ok(());
    }
    let reads = v.get(READS).and_then(Value::as_u64).unwrap_or(0) + 1;
    v[READS] = json!(reads);
    if reads >= READS_UNTIL_ACTIVE {
        let domains: Vec<String> = v["managed"]["domains"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        v["managed"]["status"] = json!("ACTIVE");
        v["managed"]["domainStatus"] = Value::Object(domains.iter().map(|d| (d.clone(), json!("ACTIVE"))).collect());
        v["subjectAlternativeNames"] = json!(domains);
        v["expireTime"] = json!(expire);
        v["certificate"] = json!("-----BEGIN CERTIFICATE-----\nMIIFakeKonstacks\n-----END CERTIFICATE-----\n");
    }
    Ok(())
}

fn insert(st: &mut St, c: &Ctx) -> Res {
    let b = &c.body;
    let name = s(b, "name");
    check_name("resource.name", &name)?;
    if st.world.ssl_certificates.contains_key(&name) {
        return Err(err(
            409,
            "alreadyExists",
            format!("The resource 'projects/{}/global/sslCertificates/{name}' already exists", c.opts.project),
        ));
    }
    let t = b.get("type").and_then(Value::as_str).unwrap_or("SELF_MANAGED");
    let mut m = from_body(b, &["expireTime", "subjectAlternativeNames", "region"]);
    match t {
        "MANAGED" => {
            let domains: Vec<&str> =
                b["managed"]["domains"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            if domains.is_empty() || domains.len() > 100 {
                return Err(invalid(format!(
                    "Invalid value for field 'resource.managed.domains': a managed certificate covers 1 to 100 \
                     domains, not {}",
                    domains.len()
                )));
            }
            for d in &domains {
                let ok = d.len() <= 253
                    && d.split('.').count() >= 2
                    && d.split('.').all(|l| {
                        !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    });
                if d.contains('*') {
                    return Err(invalid(format!(
                        "Invalid value for field 'resource.managed.domains[]': '{d}'. Wildcard domains are not \
                         supported for Google-managed certificates."
                    )));
                }
                if !ok {
                    return Err(invalid(format!("Invalid value for field 'resource.managed.domains[]': '{d}'")));
                }
            }
            let status: Map<String, Value> = domains.iter().map(|d| (d.to_string(), json!("PROVISIONING"))).collect();
            m.insert(
                "managed".into(),
                json!({"domains": domains, "status": "PROVISIONING", "domainStatus": Value::Object(status)}),
            );
        }
        "SELF_MANAGED" => {
            if s(b, "certificate").is_empty() && s(&b["selfManaged"], "certificate").is_empty() {
                return Err(err(400, "required", "Required field 'resource.certificate' not specified"));
            }
        }
        other => return Err(invalid(format!("Invalid value for field 'resource.type': '{other}'"))),
    }
    let id = st.id();
    let link = c.global_link("sslCertificates", &name);
    m.insert("kind".into(), json!("compute#sslCertificate"));
    m.insert("type".into(), json!(t));
    m.insert("id".into(), json!(id));
    m.insert("creationTimestamp".into(), json!(st.compute_time()));
    m.insert("selfLink".into(), json!(link));
    st.world.ssl_certificates.insert(name, Value::Object(m));
    Ok(compute_op(st, c, Scope::Global, "insert", &link, &id, vec![], vec![]))
}
