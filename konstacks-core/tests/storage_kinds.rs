//! The `Bucket` kind end to end on the simulated cloud through the engine: apply, an empty
//! re-plan, in-place updates (versioning off suspends it), a replacement when the region
//! changes, the safety gate on deletes, buckets that hold objects, the global namespace of
//! bucket names, cost lines with their assumptions, and bad input refused before any call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use konstacks_core::cost::estimate;
use konstacks_core::engine::{ApplyOptions, DataLossConsent, Engine, PlanOptions};
use konstacks_core::error::{Error, ErrorKind};
use konstacks_core::model::*;
use konstacks_core::plan::Action;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::spec::{BucketObserved, ExpiryRule, VersioningStatus};
use konstacks_core::state::MemoryBackend;

/// What the test varies of the `assets` bucket of stack `shop`.
#[derive(Clone)]
struct Opts {
    region: &'static str,
    versioning: bool,
    public: bool,
    expire_days: Option<u32>,
}

const DEFAULT: Opts = Opts { region: "eu-central", versioning: true, public: false, expire_days: None };

fn stack(o: &Opts) -> Stack {
    let stack = Stack::new("shop", Placement::region(o.region), Stage::Prod);
    let mut b = Bucket::new().versioning(o.versioning);
    if o.public {
        b = b
            .public_read("static assets of the public website")
            .cors(CorsRule::new(["https://shop.example.com"], ["GET", "HEAD"]).max_age(3600));
    }
    if let Some(d) = o.expire_days {
        b = b.expire("tmp/", d);
    }
    let assets = stack.add("assets", b);
    stack.export("assets-endpoint", assets.endpoint());
    stack.export("assets-name", assets.name());
    stack
}

fn engine(sim: &Arc<SimCloud>) -> Engine {
    Engine::new(Arc::new(MemoryBackend::new())).with_provider(sim.provider()).with_sealer(None)
}

fn buckets(sim: &SimCloud, stack: &str) -> Vec<BucketObserved> {
    sim.resources_of_stack(stack).into_iter().filter_map(|r| r.get::<Bucket>().cloned()).collect()
}

fn only_bucket(sim: &SimCloud) -> BucketObserved {
    let b = buckets(sim, "shop");
    assert_eq!(b.len(), 1, "{b:?}");
    b.into_iter().next().unwrap()
}

#[tokio::test(start_paused = true)]
async fn bucket_lifecycle_on_the_simulated_cloud() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine(&sim);

    let s = engine.synth(&stack(&DEFAULT)).unwrap();
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.summary.create, 1);
    assert!(plan.render(false).contains("+ bucket assets"), "{}", plan.render(false));
    let report = engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert_eq!(report.created, ["assets"]);
    let b = only_bucket(&sim);
    assert_eq!(b.name, "shop-assets");
    assert_eq!(b.region, "eu-central");
    assert_eq!((b.versioning, b.versioning_status), (true, VersioningStatus::Enabled));
    assert_eq!(b.encryption, BucketEncryption::ProviderManaged);
    assert!(!b.public_read);
    assert_eq!(b.endpoint, "https://shop-assets.eu-central.objects.sim.internal");
    assert_eq!(report.outputs["assets-endpoint"], b.endpoint.as_str());
    assert_eq!(report.outputs["assets-name"], "shop-assets");
    assert!(engine.plan(&s, &PlanOptions::refreshing()).await.unwrap().is_empty());

    // Public read with its reason, CORS, an expiry rule and versioning off: an update in place.
    let changed = Opts { versioning: false, public: true, expire_days: Some(7), ..DEFAULT };
    let s2 = engine.synth(&stack(&changed)).unwrap();
    let plan = engine.plan(&s2, &PlanOptions::default()).await.unwrap();
    let change = plan.changes.iter().find(|c| c.path == "assets").unwrap();
    assert_eq!(change.action, Action::Update, "{}", plan.render(false));
    let rendered = plan.render(false);
    assert!(
        rendered.contains("public_read_reason") && rendered.contains("static assets of the public website"),
        "{rendered}"
    );
    engine.apply(&s2, &ApplyOptions::default()).await.unwrap();
    let b = only_bucket(&sim);
    // Versioning cannot be removed from a bucket that had it: it is suspended.
    assert_eq!((b.versioning, b.versioning_status), (false, VersioningStatus::Suspended));
    assert!(b.public_read);
    assert_eq!(b.lifecycle, [ExpiryRule { prefix: "tmp/".into(), days: 7 }]);
    assert_eq!(b.cors.len(), 1);
    assert!(engine.plan(&s2, &PlanOptions::refreshing()).await.unwrap().is_empty());

    // Versioning on again: enabled, in place.
    let s3 = engine.synth(&stack(&Opts { versioning: true, ..changed.clone() })).unwrap();
    let plan = engine.plan(&s3, &PlanOptions::default()).await.unwrap();
    assert_eq!(plan.changes.iter().find(|c| c.path == "assets").unwrap().action, Action::Update);
    engine.apply(&s3, &ApplyOptions::default()).await.unwrap();
    assert_eq!(only_bucket(&sim).versioning_status, VersioningStatus::Enabled);

    // Another region forces a replacement: the new bucket gets the next generation's name,
    // since the old one still holds `shop-assets` while both exist.
    let moved = Opts { region: "eu-west", versioning: true, ..changed };
    let s4 = engine.synth(&stack(&moved)).unwrap();
    let plan = engine.plan(&s4, &PlanOptions::default()).await.unwrap();
    let change = plan.changes.iter().find(|c| c.path == "assets").unwrap();
    assert_eq!(change.action, Action::Replace, "{}", plan.render(false));
    assert!(change.replace_reasons.contains(&"region".to_string()), "{:?}", change.replace_reasons);
    assert!(change.data_loss, "replacing a bucket loses its objects");
    let opts = ApplyOptions {
        allow_placement_change: true,
        data_loss: DataLossConsent::Paths(["assets".to_string()].into()),
        ..Default::default()
    };
    engine.apply(&s4, &opts).await.unwrap();
    let b = only_bucket(&sim);
    assert_eq!((b.name.as_str(), b.region.as_str()), ("shop-assets-1", "eu-west"));
    assert!(engine.plan(&s4, &PlanOptions::refreshing()).await.unwrap().is_empty());

    engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert!(sim.resources_of_stack("shop").is_empty());
}

#[tokio::test(start_paused = true)]
async fn deleting_a_bucket_needs_consent_and_an_empty_bucket() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine(&sim);
    engine.apply(&engine.synth(&stack(&DEFAULT)).unwrap(), &ApplyOptions::default()).await.unwrap();
    let id = only_bucket(&sim).id;
    assert!(sim.set_bucket_objects(&id, 42));
    assert!(!sim.set_bucket_objects("bucket-ffffffff", 1), "not a bucket");

    // Dropped from the stack: the safety gate refuses before any change.
    let empty = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
    let s = engine.synth(&empty).unwrap();
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    let change = plan.changes.iter().find(|c| c.path == "assets").unwrap();
    assert_eq!(change.action, Action::Delete);
    assert!(change.data_loss);
    let before = sim.mutating_calls();
    let err = engine.apply(&s, &ApplyOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err}");
    assert_eq!(sim.mutating_calls(), before, "a refused run changes nothing");

    // With consent, the cloud still refuses to delete a bucket that holds objects: Konstacks
    // never empties one.
    let consent = ApplyOptions { data_loss: DataLossConsent::All, ..Default::default() };
    let Err(Error::Apply(report)) = engine.apply(&s, &consent).await else { panic!("the delete must fail") };
    let failure = report.failures.iter().find(|f| f.path == "assets").unwrap();
    assert_eq!(failure.kind, ErrorKind::Conflict);
    assert!(
        failure.message.contains("holds 42 object(s)") && failure.message.contains("empty it first"),
        "{failure:?}"
    );
    assert_eq!(buckets(&sim, "shop").len(), 1, "the bucket is still there");

    // Emptied (behind Konstacks' back, as a user would): the delete goes through.
    assert!(sim.set_bucket_objects(&id, 0));
    engine.apply(&s, &consent).await.unwrap();
    assert!(sim.resources_of_stack("shop").is_empty());
}

#[tokio::test(start_paused = true)]
async fn destroy_of_a_bucket_holding_objects_fails_until_it_is_emptied() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine(&sim);
    engine.apply(&engine.synth(&stack(&DEFAULT)).unwrap(), &ApplyOptions::default()).await.unwrap();
    let id = only_bucket(&sim).id;
    sim.set_bucket_objects(&id, 3);
    let Err(Error::Apply(report)) = engine.destroy("shop", &ApplyOptions::default()).await else {
        panic!("destroy must fail on a bucket holding objects")
    };
    assert!(report.failures.iter().any(|f| f.message.contains("BucketNotEmpty")), "{report:?}");
    sim.set_bucket_objects(&id, 0);
    engine.destroy("shop", &ApplyOptions::default()).await.unwrap();
    assert!(sim.resources_of_stack("shop").is_empty());
}

#[tokio::test(start_paused = true)]
async fn bucket_names_are_global_across_stacks_and_regions() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    // `shop` + `media/assets` and `shop-media` + `assets` derive the same bucket name.
    let first = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
    first.scope("media").add("assets", Bucket::new());
    let second = Stack::new("shop-media", Placement::region("us-east"), Stage::Prod);
    second.add("assets", Bucket::new());

    let a = engine(&sim);
    a.apply(&a.synth(&first).unwrap(), &ApplyOptions::default()).await.unwrap();
    let b = engine(&sim);
    let Err(Error::Apply(report)) = b.apply(&b.synth(&second).unwrap(), &ApplyOptions::default()).await else {
        panic!("a second bucket of the same name must be refused")
    };
    let failure = report.failures.iter().find(|f| f.path == "assets").unwrap();
    assert_eq!(failure.kind, ErrorKind::AlreadyExists, "{failure:?}");
    assert!(failure.message.contains("`shop-media-assets` is taken"), "{failure:?}");
    assert!(buckets(&sim, "shop-media").is_empty());
    assert_eq!(buckets(&sim, "shop").len(), 1, "the first stack's bucket is untouched");
}

#[test]
fn cost_lines_show_their_assumptions() {
    let cat = SimCloud::catalog();
    let stack = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
    stack.add("default", Bucket::new());
    stack.add("big", Bucket::new().assume_gb_stored(1000.0).assume_requests(1_000_000, 0));
    let report = estimate(&stack.synth(&[&cat]).unwrap(), &[&cat]);
    let of = |p: &str| report.resources.iter().find(|r| r.path == p).unwrap();
    // 10 GB x 0.023 + 100,000 reads x 0.0004/1000 + 10,000 writes x 0.005/1000 = 0.23 + 0.04 + 0.05
    let d = of("default");
    assert_eq!(d.monthly_usd, Some(0.32), "{d:?}");
    let storage = d.lines.iter().find(|l| l.item == "storage").unwrap();
    assert!(storage.detail.contains("10 GB stored (assumed"), "{storage:?}");
    let requests = d.lines.iter().find(|l| l.item == "requests").unwrap();
    assert!(requests.detail.contains("100000 reads and 10000 writes a month (assumed"), "{requests:?}");
    // 1000 GB x 0.023 + 1,000,000 reads x 0.0004/1000 = 23 + 0.4
    assert_eq!(of("big").monthly_usd, Some(23.4));

    // A catalogue without bucket prices leaves the bucket unpriced, never free.
    let mut bare = SimCloud::catalog();
    bare.bucket_pricing = None;
    let report = estimate(&stack.synth(&[&bare]).unwrap(), &[&bare]);
    assert!(report.resources.iter().all(|r| r.monthly_usd.is_none() && r.unpriced.is_some()), "{report:?}");
}

/// Bad input: each refused with its diagnostic, before a single cloud call.
#[tokio::test(start_paused = true)]
async fn bad_buckets_are_refused_before_any_call() {
    let cases: Vec<(&str, &str, Stack)> = vec![
        ("reserved prefix", "invalid-bucket-name", {
            let s = Stack::new("xn--shop", Placement::region("eu-central"), Stage::Prod);
            s.add("assets", Bucket::new());
            s
        }),
        ("trailing hyphen", "invalid-bucket-name", {
            let s = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
            s.add("assets-", Bucket::new());
            s
        }),
        ("reserved suffix", "invalid-bucket-name", {
            let s = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
            s.add("logs-s3alias", Bucket::new());
            s
        }),
        ("google", "invalid-bucket-name", {
            let s = Stack::new("google-shop", Placement::region("eu-central"), Stage::Prod);
            s.add("assets", Bucket::new());
            s
        }),
        ("no room for a replacement suffix", "invalid-bucket-name", {
            let s = Stack::new("s".repeat(50), Placement::region("eu-central"), Stage::Prod);
            s.add("assets-1234", Bucket::new());
            s
        }),
        ("public without a reason", "missing-public-reason", {
            let s = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
            s.add("assets", Bucket::new().public_read(""));
            s
        }),
        ("http origin", "invalid-cors-origin", {
            let s = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
            s.add("assets", Bucket::new().cors(CorsRule::new(["http://shop.example.com"], ["GET"])));
            s
        }),
        ("origin with a path", "invalid-cors-origin", {
            let s = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
            s.add("assets", Bucket::new().cors(CorsRule::new(["https://shop.example.com/app"], ["GET"])));
            s
        }),
        ("PATCH", "invalid-cors-method", {
            let s = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
            s.add("assets", Bucket::new().cors(CorsRule::new(["*"], ["PATCH"])));
            s
        }),
        ("rule without methods", "invalid-cors-rule", {
            let s = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
            let rule = CorsRule { origins: vec!["*".into()], methods: vec![], headers: vec![], max_age: 0 };
            s.add("assets", Bucket::new().cors(rule));
            s
        }),
        ("expiry after 0 days", "invalid-expiry", {
            let s = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
            s.add("assets", Bucket::new().expire_after_days(0));
            s
        }),
        ("two rules for one prefix", "duplicate-expiry", {
            let s = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
            s.add("assets", Bucket::new().expire("logs/", 30).expire("logs/", 90));
            s
        }),
        ("empty KMS key", "invalid-kms-key", {
            let s = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
            s.add("assets", Bucket::new().encryption(BucketEncryption::kms("")));
            s
        }),
        ("negative assumption", "invalid-assumption", {
            let s = Stack::new("shop", Placement::region("eu-central"), Stage::Prod);
            s.add("assets", Bucket::new().assume_gb_stored(-1.0));
            s
        }),
    ];
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = engine(&sim);
    for (what, code, stack) in cases {
        let err = match engine.synth(&stack) {
            Err(Error::Invalid(d)) => d,
            Ok(s) => panic!("{what}: accepted; plan: {:?}", engine.plan(&s, &PlanOptions::default()).await),
            Err(e) => panic!("{what}: {e}"),
        };
        let found = err.iter().find(|d| d.code == code).unwrap_or_else(|| panic!("{what}: no `{code}` in {err}"));
        assert!(found.path.contains('/'), "{what}: the diagnostic names the bucket: {found}");
        assert!(!found.message.is_empty() && !found.help.is_empty(), "{what}: {found}");
    }
    assert_eq!(sim.calls(), 0, "validation never calls the cloud");
}
