//! Self-tests of the GCP fake and its discovery-document validator, driven with raw HTTP.
//! Run with: bash scripts/test-gcp.sh
#![cfg(feature = "gcp")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common_gcp;

use common_gcp::discovery::{Api, ApiName, CheckOpts, Discovery, Side};
use common_gcp::{FakeOptions, GcpFake, Inventory, Kind};
use serde_json::{json, Value};

const REQ: CheckOpts = CheckOpts { side: Side::Request, int_enums: false };
const RESP: CheckOpts = CheckOpts { side: Side::Response, int_enums: false };

struct T {
    fake: GcpFake,
    http: reqwest::Client,
}

impl T {
    async fn new() -> T {
        T::with(FakeOptions::default()).await
    }

    async fn with(opts: FakeOptions) -> T {
        T { fake: GcpFake::start(opts).await, http: reqwest::Client::new() }
    }

    fn c(&self, rest: &str) -> String {
        format!("/compute/v1/projects/{}/{rest}", self.fake.project())
    }

    fn sql(&self, rest: &str) -> String {
        format!("/v1/projects/{}/{rest}", self.fake.project())
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.fake.base_url());
        let mut req = self.http.request(method.parse().unwrap(), url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    /// Poll a compute or SQL operation until DONE; returns the final operation.
    async fn wait(&self, op: &Value) -> Value {
        let mut op = op.clone();
        for _ in 0..10 {
            if op["status"] == "DONE" {
                return op;
            }
            let link = op["selfLink"].as_str().unwrap();
            let path = link
                .trim_start_matches("https://www.googleapis.com")
                .trim_start_matches("https://sqladmin.googleapis.com");
            op = self.ok("GET", path, None).await;
        }
        panic!("operation never finished: {op}");
    }

    async fn done(&self, method: &str, path: &str, body: Value) -> Value {
        let op = self.ok(method, path, Some(body)).await;
        let op = self.wait(&op).await;
        assert!(op.get("error").is_none(), "{method} {path} failed: {op}");
        op
    }

    async fn network(&self, name: &str) {
        self.done("POST", &self.c("global/networks"), json!({"name": name, "autoCreateSubnetworks": false})).await;
    }

    async fn subnet(&self, name: &str, net: &str, cidr: &str) {
        let body = json!({"name": name, "network": format!("global/networks/{net}"), "ipCidrRange": cidr});
        self.done("POST", &self.c("regions/europe-west1/subnetworks"), body).await;
    }

    fn instance_body(name: &str, subnet: &str, labels: Value) -> Value {
        json!({
            "name": name,
            "machineType": "zones/europe-west1-b/machineTypes/e2-small",
            "labels": labels,
            "disks": [{"boot": true, "autoDelete": true, "initializeParams": {
                "sourceImage": "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64", "diskSizeGb": "20"}}],
            "networkInterfaces": [{
                "subnetwork": format!("regions/europe-west1/subnetworks/{subnet}"),
                "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]
            }],
            "tags": {"items": ["web"]},
            "metadata": {"items": [{"key": "startup-script", "value": "echo hi"}]}
        })
    }

    fn error_reason(v: &Value) -> String {
        v["error"]["errors"][0]["reason"].as_str().unwrap_or_default().to_string()
    }
}

fn is_u64_string(v: &Value) -> bool {
    v.as_str().is_some_and(|s| !s.is_empty() && s.parse::<u64>().is_ok())
}

// ---------------------------------------------------------------------------------------------
// The validator

#[test]
fn validator_rejects_unknown_fields_wrong_types_bad_enums_and_numeric_int64() {
    let d = Discovery::from_env();
    let ok = json!({"name": "net", "autoCreateSubnetworks": false, "routingConfig": {"routingMode": "REGIONAL"}, "mtu": 1460});
    assert_eq!(d.compute.check("Network", &ok, REQ), Vec::<String>::new());

    let unknown = d.compute.check("Network", &json!({"name": "net", "colour": "blue"}), REQ);
    assert_eq!(unknown, vec!["$.colour: unknown property".to_string()]);

    let wrong_type = d.compute.check("Network", &json!({"name": 5, "autoCreateSubnetworks": "no"}), REQ);
    assert_eq!(wrong_type.len(), 2, "{wrong_type:?}");
    assert!(wrong_type.iter().any(|p| p.starts_with("$.name: expected a string")), "{wrong_type:?}");
    assert!(wrong_type.iter().any(|p| p.starts_with("$.autoCreateSubnetworks: expected a boolean")), "{wrong_type:?}");

    let bad_enum =
        d.compute.check("Network", &json!({"name": "n", "routingConfig": {"routingMode": "PLANETARY"}}), REQ);
    assert_eq!(bad_enum, vec!["$.routingConfig.routingMode: \"PLANETARY\" is not one of the enum values".to_string()]);

    let disk = |size: Value| json!({"name": "vm", "disks": [{"initializeParams": {"diskSizeGb": size}}]});
    assert_eq!(d.compute.check("Instance", &disk(json!("20")), REQ), Vec::<String>::new());
    let numeric = d.compute.check("Instance", &disk(json!(20)), REQ);
    assert_eq!(numeric.len(), 1, "{numeric:?}");
    assert!(numeric[0].starts_with("$.disks[0].initializeParams.diskSizeGb: expected int64 encoded as a JSON string"));
    // uint64 in responses too, and not a negative or a float.
    assert_eq!(d.compute.check("Operation", &json!({"id": 12}), RESP).len(), 1);
    assert_eq!(d.compute.check("Operation", &json!({"id": "-3"}), RESP).len(), 1);
    assert_eq!(d.compute.check("Operation", &json!({"id": "18446744073709551615"}), RESP), Vec::<String>::new());
    // int32 accepts numbers and numeric strings, not fractions.
    assert_eq!(d.compute.check("Operation", &json!({"progress": 50}), RESP), Vec::<String>::new());
    assert_eq!(d.compute.check("Operation", &json!({"progress": "50"}), RESP), Vec::<String>::new());
    assert_eq!(d.compute.check("Operation", &json!({"progress": 0.5}), RESP).len(), 1);
    // byte and date-time formats; null means unset.
    assert_eq!(d.compute.check("Instance", &json!({"labelFingerprint": "42WmSpB8rSM="}), RESP), Vec::<String>::new());
    assert_eq!(d.compute.check("Instance", &json!({"labelFingerprint": "not base64!"}), RESP).len(), 1);
    assert_eq!(
        d.sql.check("Operation", &json!({"insertTime": "2026-01-01T00:00:00.123Z"}), RESP),
        Vec::<String>::new()
    );
    assert_eq!(d.sql.check("Operation", &json!({"insertTime": "yesterday"}), RESP).len(), 1);
    assert_eq!(d.compute.check("Network", &json!({"description": null}), REQ), Vec::<String>::new());
    // Maps (additionalProperties) check their values.
    assert_eq!(d.compute.check("Instance", &json!({"labels": {"env": "prod"}}), REQ), Vec::<String>::new());
    assert_eq!(d.compute.check("Instance", &json!({"labels": {"env": 1}}), REQ).len(), 1);
    // Cloud SQL enums may be proto numbers when the client asked for enum-encoding=int.
    let sql = json!({"name": "db", "databaseVersion": 20});
    assert_eq!(d.sql.check("DatabaseInstance", &sql, REQ).len(), 1);
    assert_eq!(
        d.sql.check("DatabaseInstance", &sql, CheckOpts { side: Side::Request, int_enums: true }),
        Vec::<String>::new()
    );
}

#[test]
fn validator_reports_a_missing_ref_target() {
    let doc = json!({
        "revision": "test",
        "schemas": {
            "Thing": {"id": "Thing", "type": "object", "properties": {
                "name": {"type": "string"},
                "part": {"$ref": "Missing"}
            }}
        }
    });
    let api = Api::new(ApiName::Compute, &doc);
    assert_eq!(api.check("Thing", &json!({"name": "x"}), REQ), Vec::<String>::new());
    assert_eq!(
        api.check("Thing", &json!({"part": {}}), REQ),
        vec!["$.part: $ref Missing is not a schema of the document".to_string()]
    );
    assert_eq!(api.check("Nope", &json!({}), REQ).len(), 1);
}

#[test]
fn routes_follow_the_discovery_paths() {
    let d = Discovery::from_env();
    let id = |m: &str, p: &str| d.route(m, p).map(|(_, m, params)| (m.id.clone(), params));
    let (mid, params) = id("POST", "/compute/v1/projects/p/zones/europe-west1-b/instances/vm-1/setLabels").unwrap();
    assert_eq!(mid, "compute.instances.setLabels");
    assert_eq!(params["zone"], "europe-west1-b");
    assert_eq!(params["instance"], "vm-1");
    assert_eq!(
        id("POST", "/compute/v1/projects/p/global/operations/op-1/wait").unwrap().0,
        "compute.globalOperations.wait"
    );
    assert_eq!(id("PUT", "/v1/projects/p/instances/db/users").unwrap().0, "sql.users.update");
    assert_eq!(id("GET", "/v1/projects/p/operations/abc").unwrap().0, "sql.operations.get");
    assert!(id("GET", "/compute/v1/projects/p/global/nothing/x").is_none());
    assert!(id("PATCH", "/compute/v1/projects/p/zones/z/instances/i").is_none());
}

// ---------------------------------------------------------------------------------------------
// Operations, errors, lists

#[tokio::test]
async fn an_insert_returns_an_operation_that_goes_pending_running_done_over_polls() {
    let t = T::new().await;
    let op = t.ok("POST", &t.c("global/networks"), Some(json!({"name": "net", "autoCreateSubnetworks": false}))).await;
    assert_eq!(op["kind"], "compute#operation");
    assert!(is_u64_string(&op["id"]), "{op}");
    assert!(is_u64_string(&op["targetId"]), "{op}");
    assert!(op["name"].as_str().unwrap().starts_with("operation-"), "{op}");
    assert_eq!(op["operationType"], "insert");
    assert_eq!(op["status"], "PENDING");
    assert!(op["targetLink"].as_str().unwrap().ends_with("/projects/konstacks-test/global/networks/net"));
    let get = t.c(&format!("global/operations/{}", op["name"].as_str().unwrap()));
    let wait = format!("{get}/wait");
    let first = t.ok("GET", &get, None).await;
    assert_eq!(first["status"], "RUNNING");
    assert!(first.get("endTime").is_none());
    let second = t.ok("POST", &wait, Some(json!({}))).await;
    assert_eq!(second["status"], "DONE");
    assert_eq!(second["progress"], 100);
    assert!(second["endTime"].is_string());
    assert_eq!(t.ok("GET", &get, None).await["status"], "DONE");
    // The same operation is not found in another scope.
    let (status, v) =
        t.call("GET", &t.c(&format!("regions/europe-west1/operations/{}", op["name"].as_str().unwrap())), None).await;
    assert_eq!((status, T::error_reason(&v)), (404, "notFound".to_string()));
    let net = t.fake.resource(Kind::Network, "net").unwrap();
    assert_eq!(net["id"], op["targetId"]);
    assert!(net["selfLink"]
        .as_str()
        .unwrap()
        .starts_with("https://www.googleapis.com/compute/v1/projects/konstacks-test/"));
    t.fake.assert_no_violations();
}

#[tokio::test]
async fn ids_are_monotonic_decimal_uint64_strings() {
    let t = T::with(FakeOptions { polls_until_done: 0, ..FakeOptions::default() }).await;
    let mut last = 0u64;
    for i in 0..5 {
        let op = t
            .ok("POST", &t.c("global/networks"), Some(json!({"name": format!("n{i}"), "autoCreateSubnetworks": false})))
            .await;
        assert_eq!(op["status"], "DONE", "polls_until_done 0 is DONE at once");
        let id: u64 = op["targetId"].as_str().unwrap().parse().unwrap();
        assert!(id > last && id > u64::from(u32::MAX));
        last = id;
    }
    t.fake.assert_no_violations();
}

#[tokio::test]
async fn an_instance_is_provisioning_staging_then_running_with_its_insert_operation() {
    let t = T::new().await;
    t.network("net").await;
    t.subnet("web", "net", "10.0.1.0/24").await;
    let op = t
        .ok("POST", &t.c("zones/europe-west1-b/instances"), Some(T::instance_body("vm", "web", json!({"env": "prod"}))))
        .await;
    assert!(op["zone"].as_str().unwrap().ends_with("/zones/europe-west1-b"));
    let status = || t.fake.resource(Kind::Instance, "vm").unwrap()["status"].as_str().unwrap().to_string();
    assert_eq!(status(), "PROVISIONING");
    let op_path = t.c(&format!("zones/europe-west1-b/operations/{}", op["name"].as_str().unwrap()));
    t.ok("GET", &op_path, None).await;
    assert_eq!(status(), "STAGING");
    t.ok("POST", &format!("{op_path}/wait"), None).await;
    assert_eq!(status(), "RUNNING");
    let vm = t.ok("GET", &t.c("zones/europe-west1-b/instances/vm"), None).await;
    assert_eq!(vm["networkInterfaces"][0]["networkIP"], "10.0.1.2");
    assert!(vm["networkInterfaces"][0]["accessConfigs"][0]["natIP"].is_string());
    assert!(vm["machineType"].as_str().unwrap().ends_with("/zones/europe-west1-b/machineTypes/e2-small"));
    assert_eq!(vm["disks"][0]["diskSizeGb"], "20");
    assert_eq!(vm["labels"]["env"], "prod");
    t.fake.assert_no_violations();
}

#[tokio::test]
async fn errors_come_in_googles_envelope() {
    let t = T::new().await;
    let (status, v) = t.call("GET", &t.c("global/networks/missing"), None).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], 404);
    assert_eq!(v["error"]["message"], "The resource 'projects/konstacks-test/global/networks/missing' was not found");
    assert_eq!(v["error"]["errors"][0]["domain"], "global");
    assert_eq!(T::error_reason(&v), "notFound");

    t.network("net").await;
    let (status, v) = t.call("POST", &t.c("global/networks"), Some(json!({"name": "net"}))).await;
    assert_eq!((status, T::error_reason(&v)), (409, "alreadyExists".to_string()));

    let bad = json!({"name": "s", "network": "global/networks/net", "ipCidrRange": "10.0.1.7/24"});
    let (status, v) = t.call("POST", &t.c("regions/europe-west1/subnetworks"), Some(bad)).await;
    assert_eq!((status, T::error_reason(&v)), (400, "invalid".to_string()));
    t.subnet("a", "net", "10.0.0.0/16").await;
    let overlap = json!({"name": "b", "network": "global/networks/net", "ipCidrRange": "10.0.5.0/24"});
    let (status, v) = t.call("POST", &t.c("regions/europe-west1/subnetworks"), Some(overlap)).await;
    assert_eq!((status, T::error_reason(&v)), (400, "invalid".to_string()), "{v}");

    let (status, v) = t.call("DELETE", &t.c("global/networks/net"), None).await;
    assert_eq!((status, T::error_reason(&v)), (400, "resourceInUseByAnotherResource".to_string()));

    let (status, v) = t.call("GET", &t.sql("instances/nope"), None).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["message"], "The Cloud SQL instance does not exist.");
    assert_eq!(T::error_reason(&v), "instanceDoesNotExist");
    assert_eq!(v["error"]["status"], "NOT_FOUND");

    let (status, _) = t.call("GET", "/compute/v1/projects/other/global/networks/net", None).await;
    assert_eq!(status, 404);
    t.fake.assert_no_violations();
}

#[tokio::test]
async fn unknown_routes_and_bad_bodies_are_violations_but_still_answered() {
    let t = T::new().await;
    let (status, v) = t.call("GET", &t.c("global/gadgets/x"), None).await;
    assert_eq!(status, 404);
    assert_eq!(T::error_reason(&v), "notFound");
    let (status, _) = t
        .call("POST", &t.c("global/networks"), Some(json!({"name": "n", "autoCreateSubnetworks": false, "colour": 1})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = t.call("GET", &format!("{}?bogus=1", t.c("global/networks")), None).await;
    assert_eq!(status, 200);
    let v = t.fake.violations();
    // The fake stores what it was sent, so the unknown field also comes back in the next list.
    assert_eq!(v.len(), 4, "{v:#?}");
    assert!(v[0].contains("no such method"), "{v:#?}");
    assert_eq!(v[1], "POST compute.networks.insert request: $.colour: unknown property");
    assert!(v[2].starts_with("GET compute.networks.list request: query parameter \"bogus\""), "{v:#?}");
    assert_eq!(v[3], "GET compute.networks.list response: $.items[0].colour: unknown property");
    let logged = t.fake.requests();
    assert_eq!(logged.len(), 3);
    assert_eq!(logged[1].method_id, "compute.networks.insert");
    assert_eq!(logged[0].status, 404);
    t.fake.clear_requests();
    assert!(t.fake.requests().is_empty());
}

#[tokio::test]
async fn lists_page_with_page_tokens() {
    let t = T::with(FakeOptions { polls_until_done: 0, ..FakeOptions::default() }).await;
    for i in 0..7 {
        t.network(&format!("net-{i}")).await;
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = token.as_ref().map(|t| format!("?pageToken={t}")).unwrap_or_default();
        let page = t.ok("GET", &format!("{}{q}", t.c("global/networks")), None).await;
        pages += 1;
        assert!(page["items"].as_array().unwrap().len() <= 3);
        names.extend(page["items"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_string()));
        match page["nextPageToken"].as_str() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("net-{i}")).collect::<Vec<_>>());
    let small = t.ok("GET", &format!("{}?maxResults=2", t.c("global/networks")), None).await;
    assert_eq!(small["items"].as_array().unwrap().len(), 2);
    let (status, _) = t.call("GET", &format!("{}?pageToken=garbage", t.c("global/networks")), None).await;
    assert_eq!(status, 400);
    let zones = t.ok("GET", &format!("{}?maxResults=500", t.c("zones")), None).await;
    assert_eq!(zones["items"].as_array().unwrap().len(), 3, "page_size caps the page");
    t.fake.assert_no_violations();
}

#[tokio::test]
async fn compute_filters_match_names_labels_and_regexes() {
    let t = T::with(FakeOptions { polls_until_done: 0, ..FakeOptions::default() }).await;
    t.network("net").await;
    t.subnet("web", "net", "10.0.1.0/24").await;
    for (name, env) in [("web-1", "prod"), ("web-2", "dev"), ("db-1", "prod")] {
        t.done(
            "POST",
            &t.c("zones/europe-west1-b/instances"),
            T::instance_body(name, "web", json!({"env": env, "app": "shop"})),
        )
        .await;
    }
    let names = |v: &Value| -> Vec<String> {
        let mut out: Vec<String> = v["items"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .flat_map(|scope| scope["instances"].as_array().cloned().unwrap_or_default())
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect();
        out.sort();
        out
    };
    let q = |f: &str| {
        let enc: String = f
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        format!("{}?filter={enc}&maxResults=500", t.c("aggregated/instances"))
    };
    let cases: &[(&str, &[&str])] = &[
        ("name = \"web-1\"", &["web-1"]),
        ("name eq web-.*", &["web-1", "web-2"]),
        ("name ne web-.*", &["db-1"]),
        ("name != \"web-1\"", &["db-1", "web-2"]),
        ("labels.env = \"prod\"", &["db-1", "web-1"]),
        ("(labels.env = \"prod\") (name eq web-.*)", &["web-1"]),
        ("labels.env = prod AND labels.app = shop", &["db-1", "web-1"]),
        ("labels.missing = \"x\"", &[]),
    ];
    // maxResults=500 is capped by the page size (3): exactly the 3 instances fit.
    for (f, want) in cases {
        let got = names(&t.ok("GET", &q(f), None).await);
        assert_eq!(got, want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "filter {f}");
    }
    let all = t.ok("GET", &t.c("aggregated/instances"), None).await;
    assert!(all["items"]["zones/europe-west1-b"]["instances"].is_array());
    let nets = t.ok("GET", &format!("{}?filter=name%20%3D%20%22net%22", t.c("global/networks")), None).await;
    assert_eq!(nets["items"].as_array().unwrap().len(), 1);
    let (status, _) = t.call("GET", &format!("{}?filter=name%20eq%20(", t.c("global/networks")), None).await;
    assert_eq!(status, 400);
    let subs = t.ok("GET", &t.c("aggregated/subnetworks"), None).await;
    assert_eq!(subs["items"]["regions/europe-west1"]["subnetworks"][0]["name"], "web");
    t.fake.assert_no_violations();
}

#[tokio::test]
async fn request_ids_make_inserts_idempotent() {
    let t = T::new().await;
    let path = format!("{}?requestId=5b7f0c7e-1111-4a2b-9c3d-000000000001", t.c("global/networks"));
    let a = t.ok("POST", &path, Some(json!({"name": "net", "autoCreateSubnetworks": false}))).await;
    let b = t.ok("POST", &path, Some(json!({"name": "net", "autoCreateSubnetworks": false}))).await;
    assert_eq!(a["name"], b["name"]);
    assert_eq!(t.fake.inventory().networks, 1);
    t.fake.assert_no_violations();
}

#[tokio::test]
async fn injected_failures_answer_errors_and_failed_operations_change_nothing() {
    let t = T::new().await;
    t.fake.fail_next("compute.networks.insert", 429, "rateLimitExceeded", "Rate Limit Exceeded");
    let (status, v) = t.call("POST", &t.c("global/networks"), Some(json!({"name": "net"}))).await;
    assert_eq!((status, T::error_reason(&v)), (429, "rateLimitExceeded".to_string()));
    assert_eq!(t.fake.inventory().networks, 0);

    t.fake.fail_operation_next(
        "compute.networks.insert",
        "QUOTA_EXCEEDED",
        "Quota 'NETWORKS' exceeded. Limit: 15.0 globally.",
    );
    let op = t.ok("POST", &t.c("global/networks"), Some(json!({"name": "net"}))).await;
    assert_eq!(t.fake.inventory().networks, 0);
    let op = t.wait(&op).await;
    assert_eq!(op["error"]["errors"][0]["code"], "QUOTA_EXCEEDED");
    assert_eq!(op["httpErrorStatusCode"], 403);
    assert_eq!(t.fake.inventory(), Inventory::default());
    t.network("net").await;
    assert_eq!(t.fake.inventory().networks, 1);

    t.fake.fail_operation_next("sql.instances.insert", "INTERNAL_ERROR", "boom");
    let op = t
        .ok(
            "POST",
            &t.sql("instances"),
            Some(json!({"name": "db", "databaseVersion": "POSTGRES_15", "settings": {"tier": "db-f1-micro"}})),
        )
        .await;
    let op = t.wait(&op).await;
    assert_eq!(op["error"]["errors"][0]["code"], "INTERNAL_ERROR");
    assert_eq!(t.fake.inventory().sql_instances, 0);
    t.fake.assert_no_violations();
}

#[tokio::test]
async fn fingerprints_guard_labels_tags_and_metadata() {
    let t = T::with(FakeOptions { polls_until_done: 1, ..FakeOptions::default() }).await;
    t.network("net").await;
    t.subnet("web", "net", "10.0.1.0/24").await;
    let vm_path = t.c("zones/europe-west1-b/instances/vm");
    t.done("POST", &t.c("zones/europe-west1-b/instances"), T::instance_body("vm", "web", json!({}))).await;
    let vm = t.ok("GET", &vm_path, None).await;
    assert!(vm.get("labels").is_none());
    let stale = json!({"labels": {"a": "b"}, "labelFingerprint": "AAAAAAAAAAA="});
    let (status, v) = t.call("POST", &format!("{vm_path}/setLabels"), Some(stale)).await;
    assert_eq!((status, T::error_reason(&v)), (412, "conditionNotMet".to_string()));
    let fresh = json!({"labels": {"a": "b"}, "labelFingerprint": vm["labelFingerprint"]});
    t.done("POST", &format!("{vm_path}/setLabels"), fresh).await;
    let tags = json!({"items": ["web", "ssh"], "fingerprint": vm["tags"]["fingerprint"]});
    t.done("POST", &format!("{vm_path}/setTags"), tags).await;
    let md = json!({"items": [{"key": "k", "value": "v"}], "fingerprint": vm["metadata"]["fingerprint"]});
    t.done("POST", &format!("{vm_path}/setMetadata"), md).await;
    let after = t.ok("GET", &vm_path, None).await;
    assert_eq!(after["labels"], json!({"a": "b"}));
    assert_ne!(after["labelFingerprint"], vm["labelFingerprint"]);
    assert_eq!(after["tags"]["items"], json!(["web", "ssh"]));
    assert_ne!(after["tags"]["fingerprint"], vm["tags"]["fingerprint"]);
    assert_eq!(after["metadata"]["items"][0]["key"], "k");
    // Drift changes fingerprints as Google would.
    t.fake.mutate(Kind::Instance, "vm", |v| v["labels"]["a"] = json!("drifted"));
    let drifted = t.fake.resource(Kind::Instance, "vm").unwrap();
    assert_ne!(drifted["labelFingerprint"], after["labelFingerprint"]);
    t.fake.assert_no_violations();
}

// ---------------------------------------------------------------------------------------------
// A scripted sequence across every endpoint: every request and answer validates.

#[tokio::test]
async fn a_scripted_sequence_validates_end_to_end_and_destroy_leaves_nothing() {
    let t = T::new().await;
    let zones = t.ok("GET", &t.c("zones"), None).await;
    assert_eq!(zones["items"][0]["status"], "UP");
    let zone = t.ok("GET", &t.c("zones/africa-south1-a"), None).await;
    assert!(zone["region"].as_str().unwrap().ends_with("/regions/africa-south1"));

    t.network("shop").await;
    t.done("PATCH", &t.c("global/networks/shop"), json!({"routingConfig": {"routingMode": "GLOBAL"}})).await;
    assert_eq!(t.ok("GET", &t.c("global/networks/shop"), None).await["routingConfig"]["routingMode"], "GLOBAL");
    t.subnet("web", "shop", "10.0.1.0/24").await;
    t.subnet("db", "shop", "10.0.2.0/24").await;
    let sub_path = t.c("regions/europe-west1/subnetworks/web");
    let sub = t.ok("GET", &sub_path, None).await;
    assert_eq!(sub["gatewayAddress"], "10.0.1.1");
    let (status, _) =
        t.call("PATCH", &sub_path, Some(json!({"description": "x", "fingerprint": sub["fingerprint"]}))).await;
    assert_eq!(status, 400, "description is set only at creation");
    t.done("PATCH", &sub_path, json!({"enableFlowLogs": true, "fingerprint": sub["fingerprint"]})).await;
    t.done("POST", &format!("{sub_path}/setPrivateIpGoogleAccess"), json!({"privateIpGoogleAccess": true})).await;
    let sub = t.ok("GET", &sub_path, None).await;
    assert_eq!(sub["privateIpGoogleAccess"], true);
    assert_eq!(t.ok("GET", &t.c("regions/europe-west1/subnetworks"), None).await["items"].as_array().unwrap().len(), 2);

    let fw = json!({"name": "web-in", "network": "global/networks/shop", "allowed": [{"IPProtocol": "tcp", "ports": ["443"]}],
        "targetTags": ["web"], "sourceRanges": ["0.0.0.0/0"]});
    t.done("POST", &t.c("global/firewalls"), fw.clone()).await;
    t.done(
        "PATCH",
        &t.c("global/firewalls/web-in"),
        json!({"allowed": [{"IPProtocol": "tcp", "ports": ["443", "80"]}]}),
    )
    .await;
    let mut replaced = fw.clone();
    replaced["priority"] = json!(900);
    t.done("PUT", &t.c("global/firewalls/web-in"), replaced).await;
    let got = t.ok("GET", &t.c("global/firewalls/web-in"), None).await;
    assert_eq!((got["priority"].clone(), got["allowed"][0]["ports"].clone()), (json!(900), json!(["443"])));
    assert_eq!(t.ok("GET", &t.c("global/firewalls"), None).await["items"].as_array().unwrap().len(), 1);

    t.done("POST", &t.c("zones/europe-west1-b/instances"), T::instance_body("web-1", "web", json!({"env": "prod"})))
        .await;
    let vm_path = t.c("zones/europe-west1-b/instances/web-1");
    let (status, _) = t
        .call(
            "POST",
            &format!("{vm_path}/setMachineType"),
            Some(json!({"machineType": "zones/europe-west1-b/machineTypes/e2-medium"})),
        )
        .await;
    assert_eq!(status, 400, "a running instance cannot change machine type");
    t.done("POST", &format!("{vm_path}/stop"), json!({})).await;
    assert_eq!(t.ok("GET", &vm_path, None).await["status"], "TERMINATED");
    t.done(
        "POST",
        &format!("{vm_path}/setMachineType"),
        json!({"machineType": "zones/europe-west1-b/machineTypes/e2-medium"}),
    )
    .await;
    t.done("POST", &format!("{vm_path}/start"), json!({})).await;
    let vm = t.ok("GET", &vm_path, None).await;
    assert_eq!(vm["status"], "RUNNING");
    assert!(vm["machineType"].as_str().unwrap().ends_with("e2-medium"));
    t.ok("GET", &t.c("zones/europe-west1-b/instances"), None).await;
    let (status, v) = t.call("DELETE", &t.c("regions/europe-west1/subnetworks/web"), None).await;
    assert_eq!((status, T::error_reason(&v)), (400, "resourceInUseByAnotherResource".to_string()));

    // Cloud SQL.
    let db = json!({
        "name": "shop-db", "region": "europe-west1", "databaseVersion": "POSTGRES_16",
        "settings": {
            "tier": "db-custom-1-3840", "edition": "ENTERPRISE", "dataDiskSizeGb": "20", "availabilityType": "REGIONAL",
            "deletionProtectionEnabled": true, "userLabels": {"konstacks-stack": "shop"},
            "backupConfiguration": {"enabled": true, "startTime": "03:00", "pointInTimeRecoveryEnabled": true},
            "ipConfiguration": {"ipv4Enabled": false, "privateNetwork": "projects/konstacks-test/global/networks/shop", "sslMode": "ENCRYPTED_ONLY"},
            "locationPreference": {"zone": "europe-west1-c"}
        }
    });
    let op = t.ok("POST", &t.sql("instances"), Some(db.clone())).await;
    assert_eq!(
        (op["kind"].clone(), op["operationType"].clone(), op["status"].clone()),
        (json!("sql#operation"), json!("CREATE"), json!("PENDING"))
    );
    let (status, v) =
        t.call("POST", &t.sql("instances/shop-db/users"), Some(json!({"name": "app", "password": "s3cret"}))).await;
    assert_eq!((status, T::error_reason(&v)), (409, "operationInProgress".to_string()));
    assert_eq!(t.ok("GET", &t.sql("instances/shop-db"), None).await["state"], "PENDING_CREATE");
    t.wait(&op).await;
    let inst = t.ok("GET", &t.sql("instances/shop-db"), None).await;
    assert_eq!(inst["state"], "RUNNABLE");
    assert_eq!(inst["connectionName"], "konstacks-test:europe-west1:shop-db");
    assert_eq!(inst["gceZone"], "europe-west1-c");
    assert!(inst["secondaryGceZone"].is_string());
    assert_eq!(inst["ipAddresses"][0]["type"], "PRIVATE");
    assert_eq!(inst["settings"]["settingsVersion"], "1");
    assert!(inst["databaseInstalledVersion"].as_str().unwrap().starts_with("POSTGRES_16_"));
    let (status, v) = t.call("POST", &t.sql("instances"), Some(db)).await;
    assert_eq!((status, T::error_reason(&v)), (409, "instanceAlreadyExists".to_string()));
    let bad_tier = json!({"name": "plus", "databaseVersion": "POSTGRES_16", "settings": {"tier": "db-custom-1-3840"}});
    let (status, _) = t.call("POST", &t.sql("instances"), Some(bad_tier)).await;
    assert_eq!(status, 400, "POSTGRES_16 defaults to ENTERPRISE_PLUS, which needs a db-perf-optimized tier");

    t.done("POST", &t.sql("instances/shop-db/users"), json!({"name": "app", "password": "s3cret"})).await;
    let users = t.ok("GET", &t.sql("instances/shop-db/users"), None).await;
    assert!(!users.to_string().contains("s3cret"), "passwords are never echoed");
    let mut names: Vec<&str> = users["items"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["app", "postgres"]);
    t.done("PUT", &format!("{}?name=app", t.sql("instances/shop-db/users")), json!({"name": "app", "password": "n3w"}))
        .await;
    t.done(
        "PATCH",
        &t.sql("instances/shop-db"),
        json!({"settings": {"dataDiskSizeGb": "30", "userLabels": {"tier": "gold"}}}),
    )
    .await;
    let inst = t.ok("GET", &t.sql("instances/shop-db"), None).await;
    assert_eq!(inst["settings"]["settingsVersion"], "2");
    assert_eq!(inst["settings"]["dataDiskSizeGb"], "30");
    assert_eq!(inst["settings"]["backupConfiguration"]["startTime"], "03:00", "patch merges settings");
    let filtered =
        t.ok("GET", &format!("{}?filter=settings.userLabels.konstacks-stack%3Ashop", t.sql("instances")), None).await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    let none =
        t.ok("GET", &format!("{}?filter=settings.userLabels.konstacks-stack%3Aother", t.sql("instances")), None).await;
    assert!(none.get("items").is_none());

    assert_eq!(
        t.fake.inventory(),
        Inventory {
            networks: 1,
            subnetworks: 2,
            firewalls: 1,
            instances: 1,
            sql_instances: 1,
            sql_users: 2,
            ..Inventory::default()
        }
    );

    // Destroy, in dependency order.
    let (status, v) = t.call("DELETE", &t.sql("instances/shop-db"), None).await;
    assert_eq!((status, T::error_reason(&v)), (400, "invalid".to_string()), "deletion protection");
    t.done("PATCH", &t.sql("instances/shop-db"), json!({"settings": {"deletionProtectionEnabled": false}})).await;
    t.done("DELETE", &format!("{}?name=app", t.sql("instances/shop-db/users")), json!(null)).await;
    let (status, v) = t.call("DELETE", &t.c("global/networks/shop"), None).await;
    assert_eq!((status, T::error_reason(&v)), (400, "resourceInUseByAnotherResource".to_string()));
    t.done("DELETE", &t.sql("instances/shop-db"), json!(null)).await;
    t.done("DELETE", &vm_path, json!(null)).await;
    t.done("DELETE", &t.c("global/firewalls/web-in"), json!(null)).await;
    t.done("DELETE", &t.c("regions/europe-west1/subnetworks/web"), json!(null)).await;
    t.done("DELETE", &t.c("regions/europe-west1/subnetworks/db"), json!(null)).await;
    t.done("DELETE", &t.c("global/networks/shop"), json!(null)).await;
    assert_eq!(t.fake.inventory(), Inventory::default());
    let (status, _) = t.call("GET", &t.sql("instances/shop-db"), None).await;
    assert_eq!(status, 404);
    assert!(t.fake.requests().iter().all(|r| !r.method_id.is_empty()));
    t.fake.assert_no_violations();
}

#[tokio::test]
async fn sql_accepts_proto_enum_numbers_when_asked_for_int_encoding() {
    let t = T::with(FakeOptions { polls_until_done: 1, ..FakeOptions::default() }).await;
    // 20 = MYSQL_8_0, 2 = ENTERPRISE (the Cloud SQL client's `$alt=json;enum-encoding=int`).
    let body = json!({"name": "my", "region": "us-central1", "databaseVersion": 20, "settings": {"tier": "db-g1-small", "edition": 2}});
    let path = format!("{}?%24alt=json%3Benum-encoding%3Dint", t.sql("instances"));
    let op = t.ok("POST", &path, Some(body)).await;
    t.wait(&op).await;
    let inst = t.fake.resource(Kind::SqlInstance, "my").unwrap();
    assert_eq!(inst["databaseVersion"], "MYSQL_8_0");
    assert_eq!(inst["settings"]["edition"], "ENTERPRISE");
    let users = t.ok("GET", &t.sql("instances/my/users"), None).await;
    assert_eq!(users["items"][0]["host"], "%");
    t.fake.assert_no_violations();
}

#[test]
fn a_blocking_fake_outlives_test_runtimes() {
    let fake = GcpFake::start_blocking(FakeOptions::default());
    for _ in 0..2 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let url = format!("{}/compute/v1/projects/{}/zones/europe-west3-a", fake.base_url(), fake.project());
        let status = rt.block_on(async { reqwest::get(url).await.unwrap().status().as_u16() });
        assert_eq!(status, 200);
    }
    let (compute, sql) = fake.discovery_revisions();
    assert!(!compute.is_empty() && !sql.is_empty());
    fake.assert_no_violations();
}
