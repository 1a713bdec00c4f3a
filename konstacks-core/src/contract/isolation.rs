//! The isolation suite: stacks sharing one account never take each other's resources. Run
//! through the engine against a provider whose test peer keeps what it is sent (the simulated
//! cloud, moto, the GCP fake; not a stateless mock server): two stacks declare a VPC at the same
//! path; importing one into a third stack is refused with the owner's name (and allowed when
//! forced); a stack whose state is lost sees its own VPC as untracked and never the other's; an
//! interrupted create is adopted only by its full identity; nothing is created twice.

use std::sync::Arc;

use crate::base::clock::Clock;
use crate::engine::{ApplyOptions, Engine, Hazard, ImportOptions, PlanOptions};
use crate::error::Error;
use crate::kind::{ResourceKind, Selector, Tags, TAG_NAME, TAG_PATH, TAG_STACK};
use crate::kinds::Vpc;
use crate::model::placement::{Placement, Stage};
use crate::provider::Provider;
use crate::stack::Stack;
use crate::state::{MemoryBackend, OpKind, PendingOp, Record, StateBackend};

use super::{ensure, failure, ContractFailure, ContractOptions};

fn engine(p: &Provider, clock: &Arc<dyn Clock>, state: Arc<MemoryBackend>) -> Engine {
    Engine::new(state).with_provider(p.clone()).with_clock(clock.clone()).with_sealer(None)
}

fn fail(check: &str) -> impl FnOnce(Error) -> ContractFailure + '_ {
    move |e| failure(check, e.to_string())
}

/// The isolation suite (see the module documentation). Leaves nothing behind when it passes.
pub async fn run_isolation(p: &Provider, clock: Arc<dyn Clock>, o: &ContractOptions) -> Result<(), ContractFailure> {
    let (a, b, thief) = (format!("{}-a", o.stack), format!("{}-b", o.stack), format!("{}-c", o.stack));
    let stack_of = |name: &str| {
        let stack = Stack::new(name, Placement::region(&o.region), Stage::Dev);
        stack.provider(&p.name);
        stack.add("vpc", Vpc::new(&o.vpc_cidr));
        stack
    };
    let ea = engine(p, &clock, Arc::new(MemoryBackend::new()));
    let eb = engine(p, &clock, Arc::new(MemoryBackend::new()));
    let sa = ea.synth(&stack_of(&a)).map_err(fail("isolation.synth"))?;
    let sb = eb.synth(&stack_of(&b)).map_err(fail("isolation.synth"))?;
    ea.apply(&sa, &ApplyOptions::default()).await.map_err(fail("isolation.apply_a"))?;
    eb.apply(&sb, &ApplyOptions::default()).await.map_err(fail("isolation.apply_b"))?;
    let id_a = ea.state(&a).await.map_err(fail("isolation.state"))?.resources["vpc"].id.clone();
    let id_b = eb.state(&b).await.map_err(fail("isolation.state"))?.resources["vpc"].id.clone();
    ensure(id_a != id_b, "isolation.distinct_ids", || format!("both stacks got {id_a}"))?;

    let result = checks(p, &clock, (&a, &id_a), &id_b, &thief, &stack_of).await;
    // Clean up whatever happened: each owner destroys its own VPC.
    let da = ea.destroy(&a, &ApplyOptions::default()).await;
    let db = eb.destroy(&b, &ApplyOptions::default()).await;
    result?;
    da.map_err(fail("isolation.destroy_a"))?;
    db.map_err(fail("isolation.destroy_b"))?;
    Ok(())
}

async fn checks(
    p: &Provider,
    clock: &Arc<dyn Clock>,
    (a, id_a): (&str, &str),
    id_b: &str,
    thief: &str,
    stack_of: &dyn Fn(&str) -> Stack,
) -> Result<(), ContractFailure> {
    // Importing another stack's VPC is refused, naming the owner; nothing is recorded.
    let check = "isolation.import_refused";
    let ec = engine(p, clock, Arc::new(MemoryBackend::new()));
    let sc = ec.synth(&stack_of(thief)).map_err(fail(check))?;
    match ec.import(&sc, "vpc", id_a, &ImportOptions::default()).await {
        Err(Error::Refused(r)) => {
            ensure(matches!(r.hazards.as_slice(), [Hazard::OtherStack { owner, .. }] if owner == a), check, || {
                format!("refused, but not naming owner `{a}`: {r}")
            })?
        }
        Ok(_) => return Err(failure(check, format!("{id_a} of stack {a} was imported into {thief}"))),
        Err(e) => return Err(failure(check, format!("expected a refusal naming {a}, got: {e}"))),
    }
    let st = ec.state(thief).await.map_err(fail(check))?;
    ensure(st.resources.is_empty(), check, || "a refused import recorded state".into())?;
    // Forced, it is taken over (state only: the thief never applies).
    let check = "isolation.import_forced";
    ec.import(&sc, "vpc", id_a, &ImportOptions { force: true }).await.map_err(fail(check))?;

    // With its state lost, stack A sees its own VPC as untracked (never B's) and refuses to
    // create a second one.
    let check = "isolation.untracked";
    let lost = Arc::new(MemoryBackend::new());
    let ea2 = engine(p, clock, lost.clone());
    let sa = ea2.synth(&stack_of(a)).map_err(fail(check))?;
    let plan = ea2.plan(&sa, &PlanOptions::default()).await.map_err(fail(check))?;
    let ids: Vec<&str> = plan.untracked.iter().map(|u| u.id.as_str()).collect();
    ensure(ids == [id_a], check, || format!("untracked {ids:?}, expected only [{id_a}] (never {id_b})"))?;
    match ea2.apply(&sa, &ApplyOptions::default()).await {
        Err(Error::Refused(_)) => {}
        other => return Err(failure(check, format!("apply over lost state was not refused: {other:?}"))),
    }

    // An interrupted create whose recorded name differs is not adopted "by path".
    let check = "isolation.adoption_identity";
    let tags: Tags = [(TAG_STACK, a), (TAG_PATH, "vpc"), (TAG_NAME, "someone-else")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let intent = PendingOp {
        op: OpKind::Create,
        path: "vpc".into(),
        kind: Vpc::KIND,
        provider: p.name.clone(),
        id: None,
        generation: 0,
        tags,
        deps: Vec::new(),
        inputs: Default::default(),
        at: 0,
        sealed: Default::default(),
        release: None,
    };
    lost.append(a, &[Record::Intent(intent)]).await.map_err(|e| failure(check, e.to_string()))?;
    let plan = ea2.plan(&sa, &PlanOptions::default()).await.map_err(fail(check))?;
    ensure(plan.change("vpc").and_then(|c| c.id.as_deref()).is_none(), check, || {
        format!("{id_a} was adopted for an intent that named another resource:\n{}", plan.render(false))
    })?;

    // Nothing was created twice.
    let check = "isolation.no_duplicates";
    let cx = crate::base::clock::OpContext::new(clock.clone(), a);
    let listed = p
        .read_many(&cx, Vpc::KIND, &Selector::Stack(a.to_string()))
        .await
        .map_err(|e| failure(check, e.full_chain()))?;
    ensure(listed.len() == 1, check, || format!("stack {a} has {} VPCs", listed.len()))?;
    Ok(())
}
