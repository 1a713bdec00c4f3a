//! Names, regions and labels of the objects DigitalOcean cannot tag (domains, record sets,
//! certificates), kept as record tags (`kxr:<dz|dr|ct>:<key>:<field>`, see `labels`) the way
//! those of subnets and firewalls are. The key is [`labels::object_key`] of the object's id, so
//! a long domain or record name never makes a tag too long. An object without such a record was
//! not made by Konstacks: reads by stack leave it out.

use std::collections::BTreeSet;

use konstacks_core::clock::OpContext;
use konstacks_core::provider::ProviderResult;
use konstacks_core::spec::Tags;

use super::labels::{self, RecordFields, RecordKind};
use super::network::{check_lengths, Records};
use super::{invalid, DigitalOcean};

/// What the record of an object says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Owned {
    /// Its physical name in Konstacks.
    pub(crate) name: Option<String>,
    /// The stack's region.
    pub(crate) region: Option<String>,
    /// Its tags (`Name` is the recorded name unless a label says otherwise).
    pub(crate) tags: Tags,
}

/// The record fields of an object, checked against DigitalOcean's tag length before any request.
pub(crate) fn fields_of(
    kind: RecordKind,
    id: &str,
    name: &str,
    region: &str,
    tags: &Tags,
) -> ProviderResult<BTreeSet<String>> {
    let mut f = BTreeSet::from([labels::name_field(name)]);
    if !region.is_empty() {
        f.insert(labels::region_field(region));
    }
    for l in labels::encode(tags, Some(name)).map_err(invalid)? {
        f.insert(labels::label_field(&l));
    }
    check_lengths(kind, &labels::object_key(id), &f)?;
    Ok(f)
}

/// What the record of `id` says; `None` when it has none.
pub(crate) fn owned(records: &Records, kind: RecordKind, id: &str) -> Option<Owned> {
    let f = records.get(&(kind, labels::object_key(id)))?;
    let fields = RecordFields::read(f.iter().map(String::as_str));
    let tags = labels::decode(&fields.labels, fields.name.as_deref());
    Some(Owned { name: fields.name, region: fields.region, tags })
}

impl DigitalOcean {
    /// Bring the record of `id` to `fields` (from [`fields_of`]): new fields first, then the
    /// stale ones go.
    pub(crate) async fn write_owned(
        &self,
        cx: &OpContext,
        kind: RecordKind,
        id: &str,
        fields: &BTreeSet<String>,
    ) -> ProviderResult<()> {
        let key = labels::object_key(id);
        let records = self.records(cx).await?;
        let current = records.get(&(kind, key.clone())).cloned().unwrap_or_default();
        self.sync_record(cx, kind, &key, &current, fields).await
    }

    /// Delete the records of the objects `ids` of one kind (those without one are skipped).
    pub(crate) async fn forget_owned(&self, cx: &OpContext, kind: RecordKind, ids: &[String]) -> ProviderResult<()> {
        let records = self.records(cx).await?;
        for id in ids {
            let key = labels::object_key(id);
            if let Some(current) = records.get(&(kind, key.clone())) {
                self.sync_record(cx, kind, &key, current, &BTreeSet::new()).await?;
            }
        }
        Ok(())
    }
}
