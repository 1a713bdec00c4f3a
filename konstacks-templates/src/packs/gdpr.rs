//! `gdpr`: EU/EEA residency (GDPR): every resource and backup in the EU/EEA; buckets encrypted at
//! rest and versioned, so personal data stored in them is protected and an overwrite or a delete
//! can be undone (GDPR art. 32: the ability to restore the availability of personal data).
//! Includes [`baseline`](super::baseline).

use konstacks_core::model::{bucket, Bucket, Jurisdiction};
use konstacks_core::policy::{Pack, PolicyContext, Rule, RuleOutcome, Severity};

use super::residency::ResidencyRule;

/// Pack name.
pub const NAME: &str = "gdpr";
/// Pack description.
pub const DESCRIPTION: &str =
    "EU/EEA residency (GDPR): every resource and backup in the EU/EEA, buckets encrypted and versioned, plus baseline";
/// Id of the residency rule.
pub const RESIDENCY_RULE: &str = "gdpr/eu-residency";

/// The residency rule: every resource in the EU/EEA.
pub fn residency_rule() -> ResidencyRule {
    ResidencyRule::new(RESIDENCY_RULE, "GDPR", "the EU/EEA", [Jurisdiction::Eu])
}

/// The `gdpr` pack: the residency rule, the bucket rules, plus `baseline`.
pub fn pack() -> Pack {
    Pack::new(NAME, DESCRIPTION)
        .rule(residency_rule())
        .rule(BucketEncrypted)
        .rule(BucketVersioned)
        .include(super::baseline::pack())
}

/// `gdpr/bucket-encrypted`: every bucket is encrypted at rest (provider-managed or KMS keys).
#[derive(Debug, Clone, Copy, Default)]
pub struct BucketEncrypted;

impl Rule for BucketEncrypted {
    fn id(&self) -> &str {
        "gdpr/bucket-encrypted"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "Buckets are encrypted at rest"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        cx.of::<Bucket>()
            .map(|b| match b.get(bucket::field::ENCRYPTION) {
                Some(bucket::BucketEncryption::Kms(key)) => {
                    RuleOutcome::pass(b).with_detail(format!("encrypted at rest with KMS key `{key}`"))
                }
                Some(_) => RuleOutcome::pass(b).with_detail("encrypted at rest with provider-managed keys"),
                None => RuleOutcome::fail(
                    b,
                    "the bucket's encryption at rest is not set",
                    "build buckets with `Bucket::new()`, which always encrypts at rest; choose a key with \
                     `.encryption(BucketEncryption::kms(\"<key id>\"))` if needed",
                ),
            })
            .collect()
    }
}

/// `gdpr/bucket-versioned`: every bucket keeps object versions, so personal data overwritten or
/// deleted by mistake (or by ransomware) can be restored.
#[derive(Debug, Clone, Copy, Default)]
pub struct BucketVersioned;

impl Rule for BucketVersioned {
    fn id(&self) -> &str {
        "gdpr/bucket-versioned"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn title(&self) -> &str {
        "Buckets keep object versions, so overwritten or deleted data can be restored"
    }
    fn check(&self, cx: &PolicyContext<'_>) -> Vec<RuleOutcome> {
        cx.of::<Bucket>()
            .map(|b| {
                if b.bool(bucket::field::VERSIONING) == Some(true) {
                    RuleOutcome::pass(b).with_detail("versioning enabled")
                } else {
                    RuleOutcome::fail(
                        b,
                        "versioning is off: an overwritten or deleted object cannot be restored",
                        "remove `.versioning(false)` (versioning is the default; a bucket that had it is only \
                         suspended, so turning it on again restores it)",
                    )
                }
            })
            .collect()
    }
}
