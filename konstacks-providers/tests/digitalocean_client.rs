//! The DigitalOcean client against the fake: pagination, throttling and pacing on the injected
//! clock, error mapping with request ids, contract violations surfacing, the token never shown.
#![cfg(feature = "digitalocean")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common_do;

use std::time::Duration;

use common_do::{assert_no_violations, backend, cx, harness, provider, VirtualClock};
use konstacks_core::error::ErrorKind;
use konstacks_core::model::Vpc;
use konstacks_core::spec::{Selector, VpcSpec};
use konstacks_providers::digitalocean::types::{Tag, TagEnvelope, TagList};
use reqwest::Method;

fn vpc(name: &str, cidr: &str) -> VpcSpec {
    VpcSpec { name: name.into(), region: "fra1".into(), cidr: cidr.into(), tags: Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_follows_next_links() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    h.fake.set_max_per_page(3);
    let b = backend();
    let clock = VirtualClock::shared();
    let cx = cx(&clock, "client-tests");
    let names: Vec<String> = (0..7).map(|i| format!("pagination-{i}")).collect();
    for n in &names {
        let _: TagEnvelope =
            b.client().send(&cx, Method::POST, "/v2/tags", &Tag { name: n.clone(), resources: None }).await.unwrap();
    }
    let all = b.client().list::<TagList>(&cx, "/v2/tags", &[]).await.unwrap();
    for n in &names {
        assert!(all.iter().any(|t| &t.name == n), "{n} missing from {all:?}");
        b.client().send_empty::<()>(&cx, Method::DELETE, &format!("/v2/tags/{n}"), None).await.unwrap();
    }
    let log = h.fake.log();
    assert!(log.iter().any(|l| l.starts_with("GET /v2/tags?page=3&per_page=200")), "{log:#?}");
    assert_no_violations(&b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_on_the_clock_and_reported_when_it_persists() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    let b = backend();
    let p = provider(&b);
    let clock = VirtualClock::shared();
    let cx = cx(&clock, "client-tests");

    h.fake.throttle_next(2);
    let before = h.fake.log().len();
    p.typed::<Vpc>().unwrap().read_many(&cx, &Selector::Stack("client-tests".into())).await.unwrap();
    let log = h.fake.log();
    assert_eq!(log[before..].iter().filter(|l| l.ends_with("-> 429")).count(), 2, "{:#?}", &log[before..]);
    assert!(clock.elapsed() >= Duration::from_secs(1), "429s must be waited out on the injected clock");

    h.fake.throttle_next(100);
    let e = p.typed::<Vpc>().unwrap().read_many(&cx, &Selector::Stack("client-tests".into())).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled, "{}", e.full_chain());
    assert!(e.full_chain().contains("fake-req-"), "the request id is kept: {}", e.full_chain());
    h.fake.throttle_next(0);

    // Few calls left in the window: the client spreads them until the reset.
    h.fake.set_rate(3, 30);
    let start = clock.elapsed();
    p.typed::<Vpc>().unwrap().read_many(&cx, &Selector::Stack("client-tests".into())).await.unwrap();
    p.typed::<Vpc>().unwrap().read_many(&cx, &Selector::Stack("client-tests".into())).await.unwrap();
    assert!(clock.elapsed() - start >= Duration::from_secs(5), "no slow-down before the limit");
    h.fake.set_rate(5000, 60);
    assert_no_violations(&b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_map_to_kinds() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    let b = backend();
    let p = provider(&b);
    let clock = VirtualClock::shared();
    let cx = cx(&clock, "client-tests");

    let missing = "00000000-0000-4000-8000-00000000dead";
    let e = p.typed::<Vpc>().unwrap().update(&cx, missing, &vpc("x", "10.60.0.0/16")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.full_chain().contains("fake-req-"), "{}", e.full_chain());
    assert_eq!(p.typed::<Vpc>().unwrap().delete(&cx, missing).await.unwrap_err().kind(), ErrorKind::NotFound);

    let a = p.typed::<Vpc>().unwrap().create(&cx, &vpc("client-a", "10.61.0.0/16")).await.unwrap();
    let dup = p.typed::<Vpc>().unwrap().create(&cx, &vpc("client-a", "10.62.0.0/16")).await.unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::AlreadyExists, "{}", dup.full_chain());
    let overlap = p.typed::<Vpc>().unwrap().create(&cx, &vpc("client-b", "10.61.128.0/17")).await.unwrap_err();
    assert_eq!(overlap.kind(), ErrorKind::InvalidSpec, "{}", overlap.full_chain());
    let too_big = p.typed::<Vpc>().unwrap().create(&cx, &vpc("client-c", "10.0.0.0/8")).await.unwrap_err();
    assert_eq!(too_big.kind(), ErrorKind::InvalidSpec);
    p.typed::<Vpc>().unwrap().delete(&cx, &a.id).await.unwrap();
    assert!(h.fake.snapshot().vpcs.is_empty());

    let zones = p.region().zones(&cx, "fra1").await.unwrap();
    assert_eq!(zones, ["fra1-a", "fra1-b"]);
    assert_eq!(p.region().zones(&cx, "za-jnb1").await.unwrap_err().kind(), ErrorKind::NotFound);
    assert!(!format!("{b:?} {p:?}").contains("fake-token-not-a-secret"), "the token must never be printed");
    assert_no_violations(&b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_violations_surface_as_errors() {
    let _serial = common_do::exclusive().await;
    let h = harness();
    let b = backend();
    let p = provider(&b);
    let clock = VirtualClock::shared();
    let cx = cx(&clock, "client-tests");
    h.fake.corrupt_next_vpc_list();
    let e = p.typed::<Vpc>().unwrap().read_many(&cx, &Selector::Stack("client-tests".into())).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other, "{}", e.full_chain());
    if h.through_prism {
        assert!(e.full_chain().contains("breaks the API contract"), "{}", e.full_chain());
        assert!(!b.client().contract_violations().is_empty());
    }
}
