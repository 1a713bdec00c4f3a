//! Bad input corpus, through the library: malformed stacks built with the DSL and damaged state
//! files. Every case must end in a clear error (the diagnostic code, the resource path and what is
//! wrong), make zero cloud calls and leave the state directory byte for byte as it was.
//!
//! A stack that validation wrongly accepts is driven on through `plan` and `apply`, like a user
//! would, so a gap in validation shows up as a failed case *and* as cloud calls.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks_core::error::{Error, StateError};
use konstacks_core::model::*;
use konstacks_core::provider::Catalog;
use konstacks_core::secret::Secret;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::state::{LocalBackend, OpKind, Record, StateBackend};

/// Name of the stack most cases build (its state exists in the baseline directory).
const NAME: &str = "bad";

// ---------------------------------------------------------------------------------------------
// Helpers

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

/// Every file and directory under `root`, with the bytes of the files.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                out.insert(rel, None);
                todo.push(p);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// The simulated cloud kept beside the state (as the CLI keeps it), so that state and cloud agree.
fn sim_in(dir: &Path) -> SimCloud {
    SimCloud::open(dir.join("sim-cloud.json"), SimConfig::default()).unwrap()
}

fn stack() -> Stack {
    Stack::new(NAME, Placement::region("eu-central"), Stage::Dev)
}

/// The valid network most cases start from.
struct Net {
    vpc: Ref<Vpc>,
    public: Ref<Subnet>,
    private_a: Ref<Subnet>,
    private_b: Ref<Subnet>,
    web_fw: Ref<Firewall>,
}

fn net(s: &Stack) -> Net {
    let n = s.scope("network");
    let vpc = n.add("vpc", Vpc::new("10.0.0.0/16"));
    let public = n.add("public", Subnet::new(vpc, "10.0.1.0/24").public());
    let private_a = n.add("private-a", Subnet::new(vpc, "10.0.11.0/24").zone(0));
    let private_b = n.add("private-b", Subnet::new(vpc, "10.0.12.0/24").zone(1));
    let web_fw = n.add("web-fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
    Net { vpc, public, private_a, private_b, web_fw }
}

fn vm(n: &Net) -> Vm {
    Vm::new(Image::UbuntuLts, VmSize::Small, n.public).firewall(n.web_fw)
}

fn pg(n: &Net) -> Database {
    Database::postgres("16", DbSize::Small, [n.private_a, n.private_b])
}

/// A valid stack: the baseline state is this stack, applied.
fn good() -> Stack {
    let s = stack();
    let n = net(&s);
    let db = s.add("db", pg(&n).password(Secret::new("baseline-password-0123".into())));
    let web = s.add("web", vm(&n).public_ip(true).env("DB_HOST", db.host()));
    s.export("ip", web.public_ip());
    s
}

/// A state directory holding the applied baseline stack (snapshot only, no journal).
fn baseline() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let sim = Arc::new(sim_in(dir.path()));
        let engine =
            Engine::new(Arc::new(LocalBackend::new(dir.path()))).with_provider(sim.provider()).with_sealer(None);
        let s = engine.synth(&good()).unwrap();
        engine.apply(&s, &ApplyOptions::default()).await.unwrap();
        assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());
    });
    assert!(dir.path().join("stacks").join(NAME).join("state.json").exists());
    dir
}

// ---------------------------------------------------------------------------------------------
// Malformed stacks

/// One expected diagnostic: its code, the full resource path, and a fragment of its message.
#[derive(Debug, Clone)]
struct Expect {
    code: &'static str,
    path: String,
    fragment: String,
}

struct Case {
    name: &'static str,
    build: Box<dyn Fn() -> Stack>,
    /// Validate against this catalogue instead of the simulated cloud's.
    catalog: Option<Catalog>,
    expect: Vec<Expect>,
}

impl Case {
    fn new(
        name: &'static str,
        code: &'static str,
        path: &str,
        fragment: &str,
        build: impl Fn() -> Stack + 'static,
    ) -> Self {
        Self {
            name,
            build: Box::new(build),
            catalog: None,
            expect: vec![Expect { code, path: path.to_string(), fragment: fragment.to_string() }],
        }
    }

    /// Another diagnostic the same stack must also produce.
    fn and(mut self, code: &'static str, path: &str, fragment: &str) -> Self {
        self.expect.push(Expect { code, path: path.to_string(), fragment: fragment.to_string() });
        self
    }

    fn catalog(mut self, c: Catalog) -> Self {
        self.catalog = Some(c);
        self
    }
}

fn p(path: &str) -> String {
    format!("{NAME}/{path}")
}

fn without_jurisdiction(j: Jurisdiction) -> Catalog {
    let mut c = SimCloud::catalog();
    c.regions.retain(|r| r.jurisdiction != j);
    c
}

/// The corpus of malformed stacks validation must reject.
fn stack_cases() -> Vec<Case> {
    vec![
        // ---- CIDRs
        Case::new(
            "overlapping subnets",
            "overlapping-subnets",
            &p("network/b"),
            "10.0.1.0/25 overlaps 10.0.1.0/24",
            || {
                let s = stack();
                let v = s.scope("network").add("vpc", Vpc::new("10.0.0.0/16"));
                s.scope("network").add("a", Subnet::new(v, "10.0.1.0/24"));
                s.scope("network").add("b", Subnet::new(v, "10.0.1.0/25"));
                s
            },
        ),
        Case::new("identical subnets", "overlapping-subnets", &p("b"), "overlaps 10.0.1.0/24 of `a`", || {
            let s = stack();
            let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
            s.add("a", Subnet::new(v, "10.0.1.0/24"));
            s.add("b", Subnet::new(v, "10.0.1.0/24").zone(1));
            s
        }),
        Case::new("subnet containing another", "overlapping-subnets", &p("b"), "10.0.0.0/20", || {
            let s = stack();
            let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
            s.add("a", Subnet::new(v, "10.0.3.0/24"));
            s.add("b", Subnet::new(v, "10.0.0.0/20"));
            s
        }),
        Case::new(
            "subnet outside the VPC",
            "cidr-outside-vpc",
            &p("sn"),
            "10.1.0.0/24 is outside its VPC's block 10.0.0.0/16",
            || {
                let s = stack();
                let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
                s.add("sn", Subnet::new(v, "10.1.0.0/24"));
                s
            },
        ),
        Case::new("subnet larger than the VPC", "cidr-outside-vpc", &p("sn"), "10.0.0.0/8", || {
            let s = stack();
            let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
            s.add("sn", Subnet::new(v, "10.0.0.0/8"));
            s
        }),
        Case::new(
            "subnet added before its VPC is checked against it",
            "cidr-outside-vpc",
            &p("sn"),
            "192.168.0.0/24",
            || {
                // Order of declaration must not matter: the VPC is looked up by reference.
                let s = stack();
                let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
                let sn = s.add("sn", Subnet::new(v, "192.168.0.0/24"));
                s.add("vm", Vm::new(Image::UbuntuLts, VmSize::Nano, sn));
                s
            },
        ),
        Case::new("VPC block /4", "cidr-size", &p("vpc"), "0.0.0.0/4 must have a prefix between /8 and /28", || {
            let s = stack();
            s.add("vpc", Vpc::new("0.0.0.0/4"));
            s
        }),
        Case::new("VPC block /30", "cidr-size", &p("vpc"), "10.0.0.0/30", || {
            let s = stack();
            s.add("vpc", Vpc::new("10.0.0.0/30"));
            s
        }),
        Case::new("VPC block /0", "cidr-size", &p("vpc"), "0.0.0.0/0", || {
            let s = stack();
            s.add("vpc", Vpc::new("0.0.0.0/0"));
            s
        }),
        Case::new("VPC prefix /33", "malformed-cidr", &p("vpc"), "prefix length outside 0..=32", || {
            let s = stack();
            s.add("vpc", Vpc::new("10.0.0.0/33"));
            s
        }),
        Case::new(
            "VPC with host bits",
            "malformed-cidr",
            &p("vpc"),
            "host bits set; the network is 10.0.0.0/16",
            || {
                let s = stack();
                s.add("vpc", Vpc::new("10.0.0.1/16"));
                s
            },
        ),
        Case::new(
            "VPC CIDR that is a word",
            "malformed-cidr",
            &p("vpc"),
            "`not-a-cidr` is not in CIDR notation",
            || {
                let s = stack();
                s.add("vpc", Vpc::new("not-a-cidr"));
                s
            },
        ),
        Case::new("VPC CIDR empty", "malformed-cidr", &p("vpc"), "VPC CIDR", || {
            let s = stack();
            s.add("vpc", Vpc::new(""));
            s
        }),
        Case::new("subnet without prefix", "malformed-cidr", &p("sn"), "`10.0.1.0` is not in CIDR notation", || {
            let s = stack();
            let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
            s.add("sn", Subnet::new(v, "10.0.1.0"));
            s
        }),
        Case::new("subnet address octet 300", "malformed-cidr", &p("sn"), "300.0.1.0/24", || {
            let s = stack();
            let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
            s.add("sn", Subnet::new(v, "300.0.1.0/24"));
            s
        }),
        Case::new("IPv6 subnet", "malformed-cidr", &p("sn"), "fd00::/64", || {
            let s = stack();
            let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
            s.add("sn", Subnet::new(v, "fd00::/64"));
            s
        }),
        Case::new("zone index 7", "zone-out-of-range", &p("sn"), "zone index 7 does not exist", || {
            let s = stack();
            let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
            s.add("sn", Subnet::new(v, "10.0.1.0/24").zone(7));
            s
        }),
        Case::new("zone index 255", "zone-out-of-range", &p("sn"), "zone index 255", || {
            let s = stack();
            let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
            s.add("sn", Subnet::new(v, "10.0.1.0/24").zone(255));
            s
        }),
        Case::new(
            "firewall rule from a malformed CIDR",
            "malformed-cidr",
            &p("network/fw"),
            "ingress rule #0: `nope`",
            || {
                let s = stack();
                let n = net(&s);
                s.scope("network").add("fw", Firewall::new(n.vpc).allow(Ingress::tcp(22).from_cidr("nope")));
                s
            },
        ),
        Case::new("egress rule to a CIDR with host bits", "malformed-cidr", &p("network/fw"), "egress rule #0", || {
            let s = stack();
            let n = net(&s);
            s.scope("network").add("fw", Firewall::new(n.vpc).allow(Egress::tcp(443).to_cidr("192.168.1.1/24")));
            s
        }),
        // ---- Ports
        Case::new("port 0", "port-out-of-range", &p("network/fw"), "port 0 is outside 1..=65535", || {
            let s = stack();
            let n = net(&s);
            s.scope("network").add("fw", Firewall::new(n.vpc).allow(Ingress::tcp(0).from_anywhere()));
            s
        }),
        Case::new("port 70000", "port-out-of-range", &p("network/fw"), "port 70000 is outside 1..=65535", || {
            let s = stack();
            let n = net(&s);
            s.scope("network").add("fw", Firewall::new(n.vpc).allow(Ingress::tcp(70000).from_anywhere()));
            s
        }),
        Case::new("port 65536", "port-out-of-range", &p("network/fw"), "port 65536", || {
            let s = stack();
            let n = net(&s);
            s.scope("network").add("fw", Firewall::new(n.vpc).allow(Egress::tcp(65536).to_anywhere()));
            s
        }),
        Case::new("UDP port 0", "port-out-of-range", &p("network/fw"), "ingress rule #0: port 0", || {
            let s = stack();
            let n = net(&s);
            s.scope("network").add("fw", Firewall::new(n.vpc).allow(Ingress::udp(0).from_anywhere()));
            s
        }),
        Case::new("reversed port range", "port-out-of-range", &p("network/fw"), "range 443-80 is reversed", || {
            let s = stack();
            let n = net(&s);
            s.scope("network").add("fw", Firewall::new(n.vpc).allow(Ingress::tcp_range(443, 80).from_anywhere()));
            s
        }),
        Case::new("range starting at 0", "port-out-of-range", &p("network/fw"), "port 0", || {
            let s = stack();
            let n = net(&s);
            s.scope("network").add("fw", Firewall::new(n.vpc).allow(Ingress::tcp_range(0, 65535).from_anywhere()));
            s
        }),
        Case::new(
            "port u32::MAX in a second rule",
            "port-out-of-range",
            &p("network/fw"),
            "ingress rule #1: port 4294967295",
            || {
                let s = stack();
                let n = net(&s);
                s.scope("network").add(
                    "fw",
                    Firewall::new(n.vpc)
                        .allow(Ingress::tcp(80).from_anywhere())
                        .allow(Ingress::tcp(u32::MAX).from(n.web_fw)),
                );
                s
            },
        ),
        // ---- Catalogue: sizes, images, engine versions
        Case::new("unknown VM size", "unknown-size", &p("web"), "offers no VM size `huge`", || {
            let s = stack();
            let n = net(&s);
            s.add("web", Vm::new(Image::UbuntuLts, VmSize::Custom("huge".into()), n.public));
            s
        }),
        Case::new("empty VM size", "unknown-size", &p("web"), "offers no VM size ``", || {
            let s = stack();
            let n = net(&s);
            s.add("web", Vm::new(Image::UbuntuLts, VmSize::from_slug(""), n.public));
            s
        }),
        Case::new("another cloud's VM size", "unknown-size", &p("web"), "`t3.micro`", || {
            let s = stack();
            let n = net(&s);
            s.add("web", Vm::new(Image::UbuntuLts, VmSize::from_slug("t3.micro"), n.public));
            s
        }),
        Case::new("unknown database size", "unknown-size", &p("db"), "offers no database size `db-huge`", || {
            let s = stack();
            let n = net(&s);
            s.add("db", Database::postgres("16", DbSize::Custom("db-huge".into()), [n.private_a]));
            s
        }),
        Case::new("VM size used as a database size", "unknown-size", &p("db"), "database size `medium-ish`", || {
            let s = stack();
            let n = net(&s);
            s.add("db", Database::mysql("8.0", DbSize::from_slug("medium-ish"), [n.private_a]));
            s
        }),
        Case::new("unknown image", "unknown-image", &p("web"), "offers no image `windows-95`", || {
            let s = stack();
            let n = net(&s);
            s.add("web", Vm::new(Image::Custom("windows-95".into()), VmSize::Small, n.public));
            s
        }),
        Case::new("postgres 9.6", "unknown-engine-version", &p("db"), "offers no postgres version `9.6`", || {
            let s = stack();
            let n = net(&s);
            s.add("db", Database::postgres("9.6", DbSize::Small, [n.private_a]));
            s
        }),
        Case::new("mysql 5.7", "unknown-engine-version", &p("db"), "offers no mysql version `5.7`", || {
            let s = stack();
            let n = net(&s);
            s.add("db", Database::mysql("5.7", DbSize::Small, [n.private_a]));
            s
        }),
        Case::new("redis 8", "unknown-engine-version", &p("cache"), "offers no redis version `8`", || {
            let s = stack();
            let n = net(&s);
            s.add("cache", Cache::redis("8", CacheSize::Micro, [n.private_a]));
            s
        }),
        Case::new("empty engine version", "unknown-engine-version", &p("db"), "postgres version ``", || {
            let s = stack();
            let n = net(&s);
            s.add("db", Database::postgres("", DbSize::Small, [n.private_a]));
            s
        }),
        // ---- Regions and providers
        Case::new(
            "region outside the jurisdiction",
            "region-outside-jurisdiction",
            NAME,
            "region `us-east` (Virginia, us) is outside the placement's jurisdiction `eu`",
            || {
                let s = Stack::new(NAME, Placement::region_within("us-east", Jurisdiction::Eu), Stage::Dev);
                net(&s);
                s
            },
        ),
        Case::new(
            "unknown region",
            "region-outside-jurisdiction",
            NAME,
            "provider `sim` has no region `mars-1`",
            || {
                let s = Stack::new(NAME, Placement::region("mars-1"), Stage::Dev);
                net(&s);
                s
            },
        ),
        Case::new(
            "unknown region within a jurisdiction",
            "region-outside-jurisdiction",
            NAME,
            "no region `mars-1`",
            || {
                let s = Stack::new(NAME, Placement::region_within("mars-1", Jurisdiction::Eu), Stage::Dev);
                net(&s);
                s
            },
        ),
        Case::new(
            "jurisdiction the simulated cloud lacks",
            "region-outside-jurisdiction",
            NAME,
            "no region within jurisdiction `israel`",
            || {
                let s = Stack::new(NAME, Placement::within(Jurisdiction::Israel), Stage::Dev);
                net(&s);
                s
            },
        ),
        Case::new(
            "catalogue without EU regions",
            "region-outside-jurisdiction",
            NAME,
            "no region within jurisdiction `eu`",
            || {
                let s = Stack::new(NAME, Placement::within(Jurisdiction::Eu), Stage::Dev);
                net(&s);
                s
            },
        )
        .catalog(without_jurisdiction(Jurisdiction::Eu)),
        Case::new(
            "catalogue without EU regions, region named",
            "region-outside-jurisdiction",
            NAME,
            "no region `eu-west`",
            || {
                let s = Stack::new(NAME, Placement::region_within("eu-west", Jurisdiction::Eu), Stage::Dev);
                net(&s);
                s
            },
        )
        .catalog(without_jurisdiction(Jurisdiction::Eu)),
        Case::new(
            "UK region for a Swiss placement",
            "region-outside-jurisdiction",
            NAME,
            "region `uk-south` (London, uk) is outside the placement's jurisdiction `switzerland`",
            || {
                let s = Stack::new(NAME, Placement::region_within("uk-south", Jurisdiction::Switzerland), Stage::Dev);
                net(&s);
                s
            },
        ),
        Case::new("unconfigured provider", "unknown-provider", NAME, "provider `aws`, which is not configured", || {
            let s = stack();
            s.provider("aws");
            net(&s);
            s
        }),
        Case::new(
            "resource placed on an unconfigured provider",
            "unknown-provider",
            &p("web"),
            "placed on provider `gcp`",
            || {
                let s = stack();
                let n = net(&s);
                let web = s.add("web", vm(&n));
                s.place_on(web, "gcp");
                s
            },
        ),
        // ---- Dependency cycles
        Case::new("cycle through depends_on", "cycle", &p("a"), "dependency cycle: a -> b -> a", || {
            let s = stack();
            let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
            let a = s.add("a", Firewall::new(v));
            let b = s.add("b", Firewall::new(v).allow(Ingress::tcp(22).from(a)));
            s.depends_on(a, b);
            s
        }),
        Case::new("three-step cycle", "cycle", &p("a"), "a -> c -> b -> a", || {
            let s = stack();
            let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
            let a = s.add("a", Firewall::new(v));
            let b = s.add("b", Firewall::new(v).allow(Ingress::tcp(22).from(a)));
            let c = s.add("c", Firewall::new(v).allow(Ingress::tcp(22).from(b)));
            s.depends_on(a, c);
            s
        }),
        Case::new("cycle through VM outputs", "cycle", &p("one"), "one -> two -> one", || {
            let s = stack();
            let n = net(&s);
            let one = s.add("one", vm(&n));
            let two = s.add("two", vm(&n).env("PEER", one.private_ip()));
            s.depends_on(one, two);
            s
        }),
        Case::new(
            "VPC depending on its own subnet",
            "cycle",
            &p("network/vpc"),
            "network/vpc -> network/public -> network/vpc",
            || {
                let s = stack();
                let n = net(&s);
                s.depends_on(n.vpc, n.public);
                s
            },
        ),
        // ---- Ids and names
        Case::new("duplicate ids", "duplicate-id", &p("web"), "two resources share the path `web`", || {
            let s = stack();
            let n = net(&s);
            s.add("web", vm(&n));
            s.add("web", vm(&n));
            s
        }),
        Case::new(
            "duplicate ids of different kinds in a scope",
            "duplicate-id",
            &p("network/vpc"),
            "`network/vpc`",
            || {
                let s = stack();
                let n = net(&s);
                s.scope("network").add("vpc", Firewall::new(n.vpc));
                s
            },
        ),
        Case::new(
            "id with a slash colliding with a scope",
            "invalid-name",
            &p("network/vpc"),
            "id `network/vpc` contains characters",
            || {
                let s = stack();
                net(&s);
                s.add("network/vpc", Vpc::new("10.9.0.0/16"));
                s
            },
        )
        .and("duplicate-id", &p("network/vpc"), "two resources share the path `network/vpc`"),
        Case::new("empty resource id", "empty-name", &p(""), "a resource id is empty", || {
            let s = stack();
            s.add("", Vpc::new("10.0.0.0/16"));
            s
        }),
        Case::new("empty stack name", "empty-name", "(stack)", "stack name `` is not a valid name", || {
            let s = Stack::new("", Placement::region("eu-central"), Stage::Dev);
            s.add("vpc", Vpc::new("10.0.0.0/16"));
            s
        }),
        Case::new("stack name with uppercase", "invalid-name", "Shop", "stack name `Shop`", || {
            let s = Stack::new("Shop", Placement::region("eu-central"), Stage::Dev);
            s.add("vpc", Vpc::new("10.0.0.0/16"));
            s
        }),
        Case::new("stack name with a slash", "invalid-name", "shop/prod", "stack name `shop/prod`", || {
            let s = Stack::new("shop/prod", Placement::region("eu-central"), Stage::Dev);
            s.add("vpc", Vpc::new("10.0.0.0/16"));
            s
        }),
        Case::new("resource id with uppercase", "invalid-name", &p("Web"), "id `Web` contains characters", || {
            let s = stack();
            let n = net(&s);
            s.add("Web", vm(&n));
            s
        }),
        Case::new("resource id with a slash", "invalid-name", &p("web/1"), "id `web/1`", || {
            let s = stack();
            let n = net(&s);
            s.add("web/1", vm(&n));
            s
        }),
        Case::new("resource id with a space", "invalid-name", &p("my vm"), "id `my vm`", || {
            let s = stack();
            let n = net(&s);
            s.add("my vm", vm(&n));
            s
        }),
        Case::new("resource id with an underscore", "invalid-name", &p("my_vm"), "id `my_vm`", || {
            let s = stack();
            let n = net(&s);
            s.add("my_vm", vm(&n));
            s
        }),
        Case::new("resource id starting with a dash", "invalid-name", &p("-web"), "id `-web`", || {
            let s = stack();
            let n = net(&s);
            s.add("-web", vm(&n));
            s
        }),
        Case::new("resource id with non-ASCII letters", "invalid-name", &p("café"), "id `café`", || {
            let s = stack();
            let n = net(&s);
            s.add("café", vm(&n));
            s
        }),
        Case::new(
            "resource id of 64 characters",
            "name-too-long",
            &p(&"x".repeat(64)),
            "has 64 characters, at most 63",
            || {
                let s = stack();
                s.add(&"x".repeat(64), Vpc::new("10.0.0.0/16"));
                s
            },
        ),
        Case::new(
            "physical name too long",
            "name-too-long",
            &p(&format!("{}/{}", "a".repeat(30), "b".repeat(30))),
            "physical name `bad-aaaa",
            || {
                let s = stack();
                s.scope(&"a".repeat(30)).add(&"b".repeat(30), Vpc::new("10.0.0.0/16"));
                s
            },
        ),
        Case::new("scope id with uppercase", "invalid-name", &p("Net"), "scope id `Net` is not a valid id", || {
            let s = stack();
            s.scope("Net").add("vpc", Vpc::new("10.0.0.0/16"));
            s
        }),
        Case::new("empty nested scope id", "empty-name", &p("net/"), "scope id `` is not a valid id", || {
            let s = stack();
            s.scope("net").scope("").add("vpc", Vpc::new("10.0.0.0/16"));
            s
        }),
        // ---- Absurd values
        Case::new(
            "backups for 400 days",
            "backups-out-of-range",
            &p("db"),
            "backup retention of 400 days exceeds 35",
            || {
                let s = stack();
                let n = net(&s);
                s.add("db", pg(&n).backups(400));
                s
            },
        ),
        Case::new("backups for 36 days", "backups-out-of-range", &p("db"), "36 days", || {
            let s = stack();
            let n = net(&s);
            s.add("db", pg(&n).backups(36));
            s
        }),
        Case::new(
            "storage of 0 GiB",
            "storage-out-of-range",
            &p("db"),
            "storage of 0 GiB is outside 20..=65536",
            || {
                let s = stack();
                let n = net(&s);
                s.add("db", pg(&n).storage_gb(0));
                s
            },
        ),
        Case::new("storage of 19 GiB", "storage-out-of-range", &p("db"), "19 GiB", || {
            let s = stack();
            let n = net(&s);
            s.add("db", Database::mysql("8.4", DbSize::Small, [n.private_a]).storage_gb(19));
            s
        }),
        Case::new("storage of 70000 GiB", "storage-out-of-range", &p("db"), "70000 GiB", || {
            let s = stack();
            let n = net(&s);
            s.add("db", pg(&n).storage_gb(70_000));
            s
        }),
        Case::new(
            "high availability in one zone",
            "ha-needs-two-zones",
            &p("db"),
            "high availability needs subnets in at least two zones",
            || {
                let s = stack();
                let n = net(&s);
                let other_a = s.scope("network").add("other-a", Subnet::new(n.vpc, "10.0.13.0/24").zone(0));
                s.add("db", Database::postgres("16", DbSize::Small, [n.private_a, other_a]).high_availability(true));
                s
            },
        ),
        Case::new(
            "generated password of 4 characters",
            "weak-secret",
            &p("db"),
            "generated password length 4 is outside 16..=128",
            || {
                let s = stack();
                let n = net(&s);
                s.add("db", pg(&n).generated_password(4));
                s
            },
        ),
        Case::new("generated password of 0 characters", "weak-secret", &p("db"), "length 0", || {
            let s = stack();
            let n = net(&s);
            s.add("db", pg(&n).generated_password(0));
            s
        }),
        Case::new("generated password of 100000 characters", "weak-secret", &p("db"), "length 100000", || {
            let s = stack();
            let n = net(&s);
            s.add("db", pg(&n).generated_password(100_000));
            s
        }),
        Case::new(
            "database without subnets",
            "missing-subnets",
            &p("db"),
            "a database needs at least one subnet",
            || {
                let s = stack();
                net(&s);
                s.add("db", Database::postgres("16", DbSize::Small, []));
                s
            },
        ),
        Case::new("user data over 16 KiB", "user-data-too-large", &p("web"), "user data is larger than 16 KiB", || {
            let s = stack();
            let n = net(&s);
            s.add("web", vm(&n).user_data("#!/bin/sh\n".to_string() + &"echo x\n".repeat(2400)));
            s
        }),
        Case::new(
            "env name starting with a digit",
            "invalid-env",
            &p("web"),
            "environment variable name `1BAD`",
            || {
                let s = stack();
                let n = net(&s);
                s.add("web", vm(&n).env("1BAD", "x"));
                s
            },
        ),
        Case::new("empty env name", "invalid-env", &p("web"), "environment variable name ``", || {
            let s = stack();
            let n = net(&s);
            s.add("web", vm(&n).env("", "x"));
            s
        }),
        Case::new("env name with a dash", "invalid-env", &p("web"), "`DB-HOST`", || {
            let s = stack();
            let n = net(&s);
            s.add("web", vm(&n).env("DB-HOST", "x"));
            s
        }),
        Case::new("env name with a newline", "invalid-env", &p("web"), "not valid", || {
            let s = stack();
            let n = net(&s);
            s.add("web", vm(&n).env("A\nB", "x"));
            s
        }),
        Case::new(
            "VM firewall of another VPC",
            "vpc-mismatch",
            &p("web"),
            "belongs to another VPC than subnet `network/public`",
            || {
                let s = stack();
                let n = net(&s);
                let v2 = s.add("vpc2", Vpc::new("10.1.0.0/16"));
                let fw2 = s.add("fw2", Firewall::new(v2));
                s.add("web", vm(&n).firewall(fw2));
                s
            },
        ),
        // ---- References across stacks, exports, moves
        Case::new(
            "subnet in another stack's VPC",
            "foreign-reference",
            &p("sn"),
            "the subnet's VPC refers to a resource of another stack",
            || {
                let other = Stack::new("other", Placement::region("eu-central"), Stage::Dev);
                let v = other.add("vpc", Vpc::new("10.0.0.0/16"));
                let s = stack();
                s.add("sn", Subnet::new(v, "10.0.1.0/24"));
                s
            },
        ),
        Case::new(
            "VM in another stack's subnet",
            "foreign-reference",
            &p("web"),
            "the VM's subnet refers to a resource of another stack",
            || {
                let other = Stack::new("other", Placement::region("eu-central"), Stage::Dev);
                let on = net(&other);
                let s = stack();
                let n = net(&s);
                s.add("web", Vm::new(Image::UbuntuLts, VmSize::Small, on.public).firewall(n.web_fw));
                s
            },
        ),
        Case::new(
            "firewall rule from another stack's firewall",
            "foreign-reference",
            &p("network/fw"),
            "ingress rule #0 refers to a resource of another stack",
            || {
                let other = Stack::new("other", Placement::region("eu-central"), Stage::Dev);
                let on = net(&other);
                let s = stack();
                let n = net(&s);
                s.scope("network").add("fw", Firewall::new(n.vpc).allow(Ingress::tcp(5432).from(on.web_fw)));
                s
            },
        ),
        Case::new(
            "env from another stack's database",
            "foreign-reference",
            &p("web"),
            "env `DB_HOST` refers to a resource of another stack",
            || {
                let other = Stack::new("other", Placement::region("eu-central"), Stage::Dev);
                let on = net(&other);
                let odb = other.add("db", pg(&on));
                let s = stack();
                let n = net(&s);
                s.add("web", vm(&n).env("DB_HOST", odb.host()));
                s
            },
        ),
        Case::new(
            "export of a foreign output",
            "foreign-reference",
            &p("ip"),
            "export `ip` refers to a resource of another stack",
            || {
                let other = Stack::new("other", Placement::region("eu-central"), Stage::Dev);
                let on = net(&other);
                let ovm = other.add("web", vm(&on));
                let s = stack();
                net(&s);
                s.export("ip", ovm.public_ip());
                s
            },
        ),
        Case::new(
            "depends_on a resource of another stack",
            "dangling-reference",
            &p("network/vpc"),
            "depends_on points to no resource of this stack",
            || {
                let other = Stack::new("other", Placement::region("eu-central"), Stage::Dev);
                let ov = other.add("vpc", Vpc::new("10.0.0.0/16"));
                let s = stack();
                let n = net(&s);
                s.depends_on(n.vpc, ov);
                s
            },
        ),
        Case::new("duplicate export", "duplicate-export", NAME, "output `ip` is exported twice", || {
            let s = stack();
            let n = net(&s);
            let web = s.add("web", vm(&n));
            s.export("ip", web.public_ip());
            s.export("ip", web.private_ip());
            s
        }),
        Case::new("duplicate literal export", "duplicate-export", NAME, "output `ip` is exported twice", || {
            let s = stack();
            let n = net(&s);
            let web = s.add("web", vm(&n));
            s.export("ip", web.public_ip());
            s.export_value("ip", "203.0.113.9");
            s
        }),
        Case::new(
            "moved to nowhere",
            "dangling-move",
            NAME,
            "moved target `nowhere` is not a resource of the stack",
            || {
                let s = stack();
                net(&s);
                s.moved("web", "nowhere");
                s
            },
        ),
        Case::new("moved twice", "duplicate-move", NAME, "`old` is moved twice", || {
            let s = stack();
            net(&s);
            s.moved("old", "network/vpc");
            s.moved("old", "network/public");
            s
        }),
        // ---- Several problems at once: all are reported, each with its path.
        Case::new("everything at once", "overlapping-subnets", &p("b"), "10.0.0.0/23", || {
            let s = Stack::new(NAME, Placement::region_within("us-east", Jurisdiction::Eu), Stage::Dev);
            let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
            s.add("a", Subnet::new(v, "10.0.1.0/24"));
            s.add("b", Subnet::new(v, "10.0.0.0/23"));
            let fw = s.add("fw", Firewall::new(v).allow(Ingress::tcp(0).from_anywhere()));
            let sn = s.add("Bad_Name", Subnet::new(v, "10.0.5.0/24"));
            s.add("vm", Vm::new(Image::UbuntuLts, VmSize::Custom("huge".into()), sn).firewall(fw));
            s.add("db", Database::postgres("9.6", DbSize::Small, [sn]).backups(400));
            s
        })
        .and("region-outside-jurisdiction", NAME, "us-east")
        .and("port-out-of-range", &p("fw"), "port 0")
        .and("invalid-name", &p("Bad_Name"), "Bad_Name")
        .and("unknown-size", &p("vm"), "huge")
        .and("unknown-engine-version", &p("db"), "9.6")
        .and("backups-out-of-range", &p("db"), "400"),
    ]
    .into_iter()
    .chain(wiring_and_capacity_cases())
    .collect()
}

/// Cross-VPC wiring, name collisions and capacity: stacks that are well-formed resource by
/// resource but cannot be applied as a whole. (Validation used to accept these; apply then failed
/// mid-graph after cloud calls.)
fn wiring_and_capacity_cases() -> Vec<Case> {
    vec![
        Case::new("firewall rule peer in another VPC", "vpc-mismatch", &p("b"), "`a`", || {
            let s = stack();
            let v1 = s.add("vpc1", Vpc::new("10.0.0.0/16"));
            let v2 = s.add("vpc2", Vpc::new("10.1.0.0/16"));
            let a = s.add("a", Firewall::new(v1));
            s.add("b", Firewall::new(v2).allow(Ingress::tcp(22).from(a)));
            s
        }),
        Case::new("database subnets in two VPCs", "vpc-mismatch", &p("db"), "VPC", || {
            let s = stack();
            let v1 = s.add("vpc1", Vpc::new("10.0.0.0/16"));
            let v2 = s.add("vpc2", Vpc::new("10.1.0.0/16"));
            let a = s.add("a", Subnet::new(v1, "10.0.1.0/24").zone(0));
            let b = s.add("b", Subnet::new(v2, "10.1.1.0/24").zone(1));
            s.add(
                "db",
                Database::postgres("16", DbSize::Small, [a, b]).password(Secret::new("pw-0123456789abcdef".into())),
            );
            s
        }),
        Case::new("database firewall of another VPC", "vpc-mismatch", &p("db"), "fw2", || {
            let s = stack();
            let n = net(&s);
            let v2 = s.add("vpc2", Vpc::new("10.1.0.0/16"));
            let fw2 = s.add("fw2", Firewall::new(v2));
            s.add("db", pg(&n).firewall(fw2).password(Secret::new("pw-0123456789abcdef".into())));
            s
        }),
        Case::new("two paths with one physical name", "duplicate-name", &p("a-b/c"), "bad-a-b-c", || {
            let s = stack();
            let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
            s.scope("a").add("b-c", Firewall::new(v));
            s.scope("a-b").add("c", Firewall::new(v));
            s
        }),
        Case::new(
            "a scoped path and a flat one with one physical name",
            "duplicate-name",
            &p("a/b"),
            "bad-a-b",
            || {
                let s = stack();
                s.add("a-b", Vpc::new("10.0.0.0/16"));
                s.scope("a").add("b", Vpc::new("10.1.0.0/16"));
                s
            },
        ),
        Case::new("twenty VMs in a /28 subnet", "subnet-too-small", &p("small"), "/28", || {
            let s = stack();
            let v = s.add("vpc", Vpc::new("10.0.0.0/16"));
            let sn = s.add("small", Subnet::new(v, "10.0.1.0/28"));
            for i in 0..20 {
                s.add(&format!("vm-{i}"), Vm::new(Image::UbuntuLts, VmSize::Nano, sn));
            }
            s
        }),
    ]
}

/// Run one stack case; `Err` says what went wrong.
fn run_stack_case(case: &Case, baseline: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(baseline, dir.path());
    let before = snapshot(dir.path());
    let sim = Arc::new(sim_in(dir.path()));
    let mut problems = Vec::new();
    rt().block_on(async {
        let engine =
            Engine::new(Arc::new(LocalBackend::new(dir.path()))).with_provider(sim.provider()).with_sealer(None);
        let stack = (case.build)();
        let name = stack.name();
        let result = match &case.catalog {
            Some(c) => stack.synth(&[c]),
            None => engine.synth(&stack),
        };
        match result {
            Err(e @ Error::Invalid(_)) => {
                let text = e.to_string();
                let Error::Invalid(d) = e else { unreachable!() };
                for x in &case.expect {
                    let hit =
                        d.iter().find(|g| g.code == x.code && g.path == x.path && g.message.contains(&x.fragment));
                    match hit {
                        Some(g) if g.help.trim().is_empty() => problems.push(format!("{} has no help", g.code)),
                        Some(_) => {}
                        None => problems.push(format!(
                            "no diagnostic {} at `{}` mentioning `{}`; got:\n{text}",
                            x.code, x.path, x.fragment
                        )),
                    }
                    let shown = format!("error[{}] {}", x.code, x.path);
                    if !text.contains(&shown) {
                        problems.push(format!("the error text does not show `{shown}`:\n{text}"));
                    }
                }
                let wanted: BTreeSet<&str> = case.expect.iter().map(|x| x.code).collect();
                let extra: Vec<String> = d.iter().filter(|g| !wanted.contains(g.code)).map(|g| g.to_string()).collect();
                if !extra.is_empty() {
                    problems.push(format!("unexpected diagnostics besides the problem planted:\n{}", extra.join("\n")));
                }
            }
            Err(other) => problems.push(format!("expected a validation error, got: {other}")),
            Ok(s) => {
                // Validation accepted it: carry on as a user would, so the damage is visible.
                let plan = engine.plan(&s, &PlanOptions::default()).await;
                let applied = engine.apply(&s, &ApplyOptions::default()).await;
                problems.push(format!(
                    "validation accepted stack `{name}`; plan: {}; apply: {}",
                    plan.map(|p| format!("{} change(s)", p.actionable().count())).unwrap_or_else(|e| e.to_string()),
                    applied.map(|_| "succeeded".to_string()).unwrap_or_else(|e| e.to_string())
                ));
            }
        }
    });
    if sim.calls() != 0 {
        problems.push(format!("{} cloud call(s) were made: {:?}", sim.calls(), sim.calls_by_op()));
    }
    if snapshot(dir.path()) != before {
        problems.push("the state directory changed".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("case `{}`:\n  {}", case.name, problems.join("\n  ")))
    }
}

#[test]
fn malformed_stacks_get_a_clear_error_no_cloud_call_and_no_state_change() {
    let base = baseline();
    let cases = stack_cases();
    let failures: Vec<String> = cases.iter().filter_map(|c| run_stack_case(c, base.path()).err()).collect();
    assert!(failures.is_empty(), "{} of {} case(s) failed:\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

#[test]
fn the_baseline_stack_is_valid_so_each_case_plants_its_own_problem() {
    // Sanity: what the cases start from validates, and re-planning it changes nothing.
    let base = baseline();
    let before = snapshot(base.path());
    let sim = Arc::new(sim_in(base.path()));
    rt().block_on(async {
        let engine =
            Engine::new(Arc::new(LocalBackend::new(base.path()))).with_provider(sim.provider()).with_sealer(None);
        let s = engine.synth(&good()).unwrap();
        assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());
    });
    assert_eq!(sim.calls(), 0);
    assert_eq!(snapshot(base.path()), before);
}

// ---------------------------------------------------------------------------------------------
// Damaged state files

/// What the engine is asked to do on the damaged state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Plan,
    Apply,
    Destroy,
    Drift,
    Refresh,
}

const EVERY_OP: [Op; 5] = [Op::Plan, Op::Apply, Op::Destroy, Op::Drift, Op::Refresh];
/// The operations that take the lock (reading is not blocked by a lock).
const LOCKING_OPS: [Op; 3] = [Op::Apply, Op::Destroy, Op::Refresh];

struct StateCase {
    name: &'static str,
    /// Damage the baseline state directory (its stack directory is passed).
    damage: Box<dyn Fn(&Path)>,
    ops: &'static [Op],
    /// Fragments the error message must contain; `{dir}` stands for the stack's state directory.
    fragments: Vec<&'static str>,
    /// Check the error's variant.
    variant: fn(&Error) -> bool,
}

fn journal_line(rec: &Record) -> String {
    serde_json::to_string(rec).unwrap()
}

fn abandon(path: &str) -> Record {
    Record::Abandon { path: path.into(), op: OpKind::Create }
}

fn is_corrupt(e: &Error) -> bool {
    matches!(e, Error::State(StateError::Corrupt { .. }))
}

fn state_cases() -> Vec<StateCase> {
    let good = journal_line(&abandon("web"));
    let g1 = good.clone();
    let g2 = good.clone();
    let g3 = good.clone();
    let g4 = good.clone();
    vec![
        StateCase {
            name: "journal corrupted in the middle",
            damage: Box::new(move |d| {
                std::fs::write(d.join("journal.jsonl"), format!("{g1}\n{{\"record\": \"put\", garbage\n{g1}\n"))
                    .unwrap()
            }),
            ops: &EVERY_OP,
            fragments: vec![
                "state of stack `bad` is corrupt",
                "{dir}/journal.jsonl line 2",
                "restore",
                "nothing was changed",
            ],
            variant: is_corrupt,
        },
        StateCase {
            name: "journal with binary garbage on the first line",
            damage: Box::new(move |d| {
                let mut bytes = vec![0u8, 159, 146, 150, 255, b'\n'];
                bytes.extend_from_slice(format!("{g2}\n").as_bytes());
                std::fs::write(d.join("journal.jsonl"), bytes).unwrap()
            }),
            ops: &EVERY_OP,
            fragments: vec!["corrupt", "{dir}/journal.jsonl line 1"],
            variant: is_corrupt,
        },
        StateCase {
            name: "journal record of an unknown type",
            damage: Box::new(move |d| {
                std::fs::write(
                    d.join("journal.jsonl"),
                    format!("{g3}\n{{\"record\":\"teleport\",\"path\":\"web\"}}\n{g3}\n"),
                )
                .unwrap()
            }),
            ops: &EVERY_OP,
            fragments: vec!["corrupt", "{dir}/journal.jsonl line 2", "teleport"],
            variant: is_corrupt,
        },
        StateCase {
            name: "journal record with a field of the wrong type",
            damage: Box::new(move |d| {
                std::fs::write(
                    d.join("journal.jsonl"),
                    format!("{{\"record\":\"abandon\",\"path\":7,\"op\":\"create\"}}\n{g4}\n"),
                )
                .unwrap()
            }),
            ops: &EVERY_OP,
            fragments: vec!["corrupt", "{dir}/journal.jsonl line 1"],
            variant: is_corrupt,
        },
        StateCase {
            name: "snapshot truncated mid-record",
            damage: Box::new(|d| {
                let bytes = std::fs::read(d.join("state.json")).unwrap();
                std::fs::write(d.join("state.json"), &bytes[..bytes.len() / 2]).unwrap()
            }),
            ops: &EVERY_OP,
            fragments: vec!["corrupt", "{dir}/state.json", "EOF"],
            variant: is_corrupt,
        },
        StateCase {
            name: "snapshot empty",
            damage: Box::new(|d| std::fs::write(d.join("state.json"), b"").unwrap()),
            ops: &EVERY_OP,
            fragments: vec!["corrupt", "{dir}/state.json"],
            variant: is_corrupt,
        },
        StateCase {
            name: "snapshot with resources of the wrong type",
            damage: Box::new(|d| {
                std::fs::write(d.join("state.json"), br#"{"version":1,"stack":"bad","serial":3,"resources":[]}"#)
                    .unwrap()
            }),
            ops: &EVERY_OP,
            fragments: vec!["corrupt", "{dir}/state.json", "invalid type"],
            variant: is_corrupt,
        },
        StateCase {
            name: "snapshot from a future format version",
            damage: Box::new(|d| {
                let mut v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(d.join("state.json")).unwrap()).unwrap();
                v["version"] = 99.into();
                v["something_new"] = "a field this build does not know".into();
                std::fs::write(d.join("state.json"), v.to_string()).unwrap()
            }),
            ops: &EVERY_OP,
            fragments: vec![
                "state of stack `bad` has format version 99",
                "this build reads up to 2",
                "upgrade Konstacks",
            ],
            variant: |e| matches!(e, Error::State(StateError::FutureVersion { found: 99, supported: 2, .. })),
        },
        StateCase {
            name: "lock file that is garbage",
            damage: Box::new(|d| std::fs::write(d.join("lock.json"), b"\x00\x01 not a lock {").unwrap()),
            ops: &LOCKING_OPS,
            fragments: vec!["stack `bad` is locked", "lock file unreadable", "force-unlock"],
            variant: |e| matches!(e, Error::State(StateError::Locked { .. })),
        },
        StateCase {
            name: "lock file that is empty (killed between create and write)",
            damage: Box::new(|d| std::fs::write(d.join("lock.json"), b"").unwrap()),
            ops: &LOCKING_OPS,
            fragments: vec!["stack `bad` is locked", "force-unlock"],
            variant: |e| matches!(e, Error::State(StateError::Locked { .. })),
        },
        StateCase {
            name: "lock held by a dead process",
            damage: Box::new(|d| {
                let lock = serde_json::json!({
                    "id": "deadbeefdeadbeef", "holder": "ghost@gone pid 999999",
                    "operation": "apply", "since": "2020-01-01T00:00:00Z"
                });
                std::fs::write(d.join("lock.json"), lock.to_string()).unwrap()
            }),
            ops: &LOCKING_OPS,
            fragments: vec![
                "locked by ghost@gone pid 999999 (apply)",
                "since 2020-01-01T00:00:00Z",
                "lock id deadbeefdeadbeef",
                "konstacks force-unlock deadbeefdeadbeef",
            ],
            variant: |e| matches!(e, Error::State(StateError::Locked { .. })),
        },
    ]
}

async fn run_op(engine: &Engine, op: Op) -> Result<(), Error> {
    match op {
        Op::Plan => engine.plan(&engine.synth(&good())?, &PlanOptions::default()).await.map(|_| ()),
        Op::Apply => engine.apply(&engine.synth(&good())?, &ApplyOptions::default()).await.map(|_| ()),
        Op::Destroy => engine.destroy(NAME, &ApplyOptions::default()).await.map(|_| ()),
        Op::Drift => engine.drift(NAME).await.map(|_| ()),
        Op::Refresh => engine.refresh(NAME).await.map(|_| ()),
    }
}

fn run_state_case(case: &StateCase, baseline: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    for &op in case.ops {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(baseline, dir.path());
        let stack_dir = dir.path().join("stacks").join(NAME);
        (case.damage)(&stack_dir);
        let before = snapshot(dir.path());
        let sim = Arc::new(sim_in(dir.path()));
        let result = rt().block_on(async {
            let engine =
                Engine::new(Arc::new(LocalBackend::new(dir.path()))).with_provider(sim.provider()).with_sealer(None);
            run_op(&engine, op).await
        });
        match result {
            Ok(()) => problems.push(format!("{op:?} succeeded on damaged state")),
            Err(e) => {
                let msg = e.to_string();
                if !(case.variant)(&e) {
                    problems.push(format!("{op:?}: unexpected error variant: {e:?}"));
                }
                for f in &case.fragments {
                    let f = f.replace("{dir}", &stack_dir.display().to_string());
                    if !msg.contains(&f) {
                        problems.push(format!("{op:?}: message lacks `{f}`: {msg}"));
                    }
                }
            }
        }
        if sim.calls() != 0 {
            problems.push(format!("{op:?}: {} cloud call(s)", sim.calls()));
        }
        if snapshot(dir.path()) != before {
            problems.push(format!("{op:?}: the state directory changed"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("case `{}`:\n  {}", case.name, problems.join("\n  ")))
    }
}

#[test]
fn damaged_state_gets_a_clear_error_no_cloud_call_and_no_state_change() {
    let base = baseline();
    let cases = state_cases();
    let failures: Vec<String> = cases.iter().filter_map(|c| run_state_case(c, base.path()).err()).collect();
    assert!(failures.is_empty(), "{} of {} case(s) failed:\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

/// A journal whose last line was torn by a crash: the torn record was never acknowledged, so it
/// is ignored; reading (plan, drift) works and changes nothing.
#[test]
fn a_torn_last_journal_line_is_tolerated() {
    let base = baseline();
    let stack_dir = base.path().join("stacks").join(NAME);
    let full = journal_line(&abandon("web"));
    let torn = &full[..full.len() / 2];
    std::fs::write(stack_dir.join("journal.jsonl"), format!("{full}\n{torn}")).unwrap();
    let before = snapshot(base.path());
    let sim = Arc::new(sim_in(base.path()));
    rt().block_on(async {
        let engine =
            Engine::new(Arc::new(LocalBackend::new(base.path()))).with_provider(sim.provider()).with_sealer(None);
        let st = engine.state(NAME).await.unwrap();
        assert_eq!(st.resources.len(), 7, "the snapshot is intact");
        let s = engine.synth(&good()).unwrap();
        assert!(engine.plan(&s, &PlanOptions::default()).await.unwrap().is_empty());
    });
    assert_eq!(sim.calls(), 0);
    assert_eq!(snapshot(base.path()), before, "reading never repairs or rewrites state");
}

/// After a crash tore the journal's last line, the next run appends its records to the same
/// file. The new records must not be glued onto the torn fragment (the journal would then be
/// corrupt in the middle, and a second crash would leave state that cannot be loaded).
#[test]
fn a_torn_last_journal_line_survives_the_next_append() {
    let base = baseline();
    let stack_dir = base.path().join("stacks").join(NAME);
    let full = journal_line(&abandon("web"));
    std::fs::write(stack_dir.join("journal.jsonl"), format!("{full}\n{}", &full[..10])).unwrap();
    rt().block_on(async {
        let backend = LocalBackend::new(base.path());
        backend.load(NAME).await.expect("a torn last line is tolerated");
        // What the engine does next: append intents and results to the journal.
        backend.append(NAME, &[abandon("db")]).await.unwrap();
        let st = backend.load(NAME).await;
        assert!(st.is_ok(), "state after one more append: {:?}", st.err().map(|e| e.to_string()));
    });
}

/// A lock file that cannot be parsed must be breakable with the id the error message prints.
#[test]
fn a_garbage_lock_can_be_broken_with_the_id_the_error_names() {
    // Garbage, and empty (a process killed between creating the lock file and writing it).
    for content in [&b"garbage"[..], b""] {
        break_unreadable_lock(content);
    }
}

fn break_unreadable_lock(content: &[u8]) {
    let base = baseline();
    let lock = base.path().join("stacks").join(NAME).join("lock.json");
    std::fs::write(&lock, content).unwrap();
    rt().block_on(async {
        let sim = Arc::new(sim_in(base.path()));
        let engine =
            Engine::new(Arc::new(LocalBackend::new(base.path()))).with_provider(sim.provider()).with_sealer(None);
        let err = engine.destroy(NAME, &ApplyOptions::default()).await.unwrap_err();
        let Error::State(StateError::Locked { id, .. }) = &err else { panic!("{err}") };
        assert!(err.to_string().contains(&format!("force-unlock {id}")), "{err}");
        let broken = engine.force_unlock(NAME, id).await;
        assert!(
            broken.is_ok(),
            "the id the lock error names must break the lock: {:?}",
            broken.err().map(|e| e.to_string())
        );
        assert!(!lock.exists());
        assert_eq!(sim.calls(), 0, "breaking a lock is not a cloud call");
        // And the stack is usable again.
        engine.apply(&engine.synth(&good()).unwrap(), &ApplyOptions::default()).await.unwrap();
    });
}

#[test]
fn the_corpus_has_at_least_fifty_cases() {
    let stacks = stack_cases().len();
    let states = state_cases().len();
    // +4: the torn last line (tolerated), the append after it, the unreadable lock broken by its
    // id, and the non-canonical CIDR.
    let total = stacks + states + 4;
    assert_eq!(stacks, 100, "stack cases");
    assert_eq!(wiring_and_capacity_cases().len(), 6, "of which wiring and capacity");
    assert_eq!(states, 11, "state cases");
    assert_eq!(total, 115);
    assert!(total >= 50, "{total}");
}

/// `10.0.0.0/016` parses (the prefix is read as a number) but is not how the cloud writes the
/// block back. Either validation rejects it, or the stack converges: after apply, a refreshing
/// plan must be empty and drift clean.
#[test]
fn a_non_canonical_cidr_is_rejected_or_converges() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Arc::new(sim_in(dir.path()));
    rt().block_on(async {
        let engine =
            Engine::new(Arc::new(LocalBackend::new(dir.path()))).with_provider(sim.provider()).with_sealer(None);
        let s = stack();
        let v = s.add("vpc", Vpc::new("10.0.0.0/016"));
        s.add("sn", Subnet::new(v, "10.0.1.0/+24"));
        let Ok(synth) = engine.synth(&s) else { return };
        engine.apply(&synth, &ApplyOptions::default()).await.unwrap();
        let drift = engine.drift(NAME).await.unwrap();
        let plan = engine.plan(&synth, &PlanOptions::refreshing()).await.unwrap();
        assert!(
            drift.is_clean() && plan.is_empty(),
            "nothing changed in the cloud, yet:\n{}\n{}",
            drift.render(),
            plan.render(false)
        );
    });
}
