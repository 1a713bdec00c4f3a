//! How Konstacks' tags live on GCP resources.
//!
//! GCP labels are strict (keys and values of at most 63 characters from `[a-z0-9_-]`, keys
//! starting with a letter, 64 labels per resource), while Konstacks tags are free text
//! (`konstacks:path` = `web/app`, `Name` = `Acme Web`). Instances and Cloud SQL instances,
//! which have labels, therefore carry two sets:
//!
//! - readable labels: every tag with its key and value lowercased and every other character
//!   turned into `_` (`konstacks_stack = acme-prod`), so that consoles, billing exports and
//!   list filters see them;
//! - the exact tags (plus a few fields the backend keeps for itself, such as the requested image
//!   slug) as JSON in lowercase base32, split over labels `konstacks_x0`, `konstacks_x1`, ...,
//!   from which observed tags are read back exactly.
//!
//! Networks, subnetworks and firewall rules have no labels in the Compute Engine API; they carry
//! the same JSON in their `description`, prefixed with [`DESCRIPTION_PREFIX`].

use std::collections::BTreeMap;

use konstacks_core::spec::{Tags, TAG_STACK};

/// Prefix of the labels holding the exact payload.
const PAYLOAD_PREFIX: &str = "konstacks_x";
/// Label holding the number of payload labels (labels merged by a partial update may leave
/// stale chunks behind; only the first `n` count).
const PAYLOAD_COUNT: &str = "konstacks_xn";
/// Longest label key or value.
const MAX_LEN: usize = 63;
/// Most labels on one resource.
const MAX_LABELS: usize = 64;
/// Prefix of descriptions that carry Konstacks' payload.
pub const DESCRIPTION_PREFIX: &str = "konstacks:";

/// What Konstacks keeps on a resource: its tags and the backend's own fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Payload {
    /// The resource's tags, exactly.
    #[serde(rename = "t", default)]
    pub tags: Tags,
    /// The backend's own fields (requested image, public routing, zone index, ...).
    #[serde(rename = "x", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub internal: BTreeMap<String, String>,
}

impl Payload {
    /// A payload of tags only.
    pub fn new(tags: &Tags) -> Self {
        Self { tags: tags.clone(), internal: BTreeMap::new() }
    }

    /// Add one of the backend's own fields.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.internal.insert(key.to_string(), value.into());
        self
    }

    /// One of the backend's own fields.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.internal.get(key).map(String::as_str)
    }

    /// The stack named by the tags.
    pub fn stack(&self) -> Option<&str> {
        self.tags.get(TAG_STACK).map(String::as_str)
    }

    fn json(&self) -> String {
        // A map of strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A key or value as GCP accepts it: lowercase, `[a-z0-9_-]`, at most 63 characters.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' { c } else { '_' })
        .take(MAX_LEN)
        .collect()
}

/// The label key of a tag key: sanitized and starting with a letter.
pub fn label_key(key: &str) -> String {
    let k = sanitize(key);
    if k.starts_with(|c: char| c.is_ascii_lowercase()) {
        k
    } else {
        sanitize(&format!("k{k}"))
    }
}

/// The label key and value under which the stack name can be filtered on.
pub fn stack_label(stack: &str) -> (String, String) {
    (label_key(TAG_STACK), sanitize(stack))
}

/// The labels for `payload`. Fails when they do not fit in GCP's 64 labels.
pub fn to_labels(payload: &Payload) -> Result<BTreeMap<String, String>, String> {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &payload.tags {
        labels.insert(label_key(k), sanitize(v));
    }
    let encoded = base32(payload.json().as_bytes());
    let chunks: Vec<&str> = encoded.as_bytes().chunks(MAX_LEN).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    for (i, c) in chunks.iter().enumerate() {
        labels.insert(format!("{PAYLOAD_PREFIX}{i}"), c.to_string());
    }
    labels.insert(PAYLOAD_COUNT.to_string(), chunks.len().to_string());
    if labels.len() > MAX_LABELS {
        return Err(format!(
            "{} tags take {} GCP labels with Konstacks' own, more than the {MAX_LABELS} labels a resource may have; use fewer or shorter tags",
            payload.tags.len(),
            labels.len()
        ));
    }
    Ok(labels)
}

/// The payload read back from labels; labels of a resource Konstacks did not write become its
/// tags as they are.
pub fn from_labels<'a>(labels: impl IntoIterator<Item = (&'a String, &'a String)>) -> Payload {
    let mut chunks: BTreeMap<usize, &str> = BTreeMap::new();
    let mut plain = Tags::new();
    let mut count = None;
    for (k, v) in labels {
        if k == PAYLOAD_COUNT {
            count = v.parse::<usize>().ok();
            continue;
        }
        match k.strip_prefix(PAYLOAD_PREFIX).and_then(|i| i.parse::<usize>().ok()) {
            Some(i) => {
                chunks.insert(i, v.as_str());
            }
            None => {
                plain.insert(k.clone(), v.clone());
            }
        }
    }
    let Some(count) = count else {
        return Payload { tags: plain, internal: BTreeMap::new() };
    };
    let joined: Option<String> = (0..count).map(|i| chunks.get(&i).copied()).collect();
    joined
        .as_deref()
        .and_then(unbase32)
        .and_then(|bytes| serde_json::from_slice::<Payload>(&bytes).ok())
        .unwrap_or(Payload { tags: plain, internal: BTreeMap::new() })
}

/// The description carrying `payload`.
pub fn to_description(payload: &Payload) -> String {
    format!("{DESCRIPTION_PREFIX}{}", payload.json())
}

/// The payload of a description Konstacks wrote, if it is one.
pub fn from_description(description: Option<&str>) -> Option<Payload> {
    let json = description?.strip_prefix(DESCRIPTION_PREFIX)?;
    serde_json::from_str(json).ok()
}

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Lowercase RFC 4648 base32 without padding (only characters GCP label values accept).
fn base32(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unbase32(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use konstacks_core::spec::{TAG_NAME, TAG_PATH};

    fn tags() -> Tags {
        Tags::from([
            (TAG_STACK.to_string(), "acme-prod".to_string()),
            (TAG_PATH.to_string(), "clients/bakery/web".to_string()),
            (TAG_NAME.to_string(), "Acme Web (Bäckerei)".to_string()),
            ("data-classification".to_string(), "confidential".to_string()),
        ])
    }

    #[test]
    fn labels_round_trip_exactly_and_stay_readable() {
        let p = Payload::new(&tags()).with("image", "ubuntu-lts");
        let labels = to_labels(&p).unwrap();
        for (k, v) in &labels {
            assert!(k.len() <= MAX_LEN && v.len() <= MAX_LEN, "{k}={v}");
            assert!(k.starts_with(|c: char| c.is_ascii_lowercase()), "{k}");
            assert!(k
                .chars()
                .chain(v.chars())
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'));
        }
        assert_eq!(labels.get("konstacks_stack").map(String::as_str), Some("acme-prod"));
        assert_eq!(labels.get("konstacks_path").map(String::as_str), Some("clients_bakery_web"));
        assert_eq!(labels.get("name").map(String::as_str), Some("acme_web__b_ckerei_"));
        assert_eq!(from_labels(&labels), p);
    }

    #[test]
    fn stale_chunks_left_by_a_merge_are_ignored() {
        let long = Payload::new(&tags()).with("note", "x".repeat(200));
        let short = Payload::new(&tags());
        let mut merged = to_labels(&long).unwrap();
        merged.extend(to_labels(&short).unwrap());
        assert_eq!(from_labels(&merged), short);
    }

    #[test]
    fn foreign_labels_are_read_as_they_are() {
        let labels = BTreeMap::from([("team".to_string(), "data".to_string())]);
        let p = from_labels(&labels);
        assert_eq!(p.tags, labels);
        assert!(p.internal.is_empty());
    }

    #[test]
    fn too_many_tags_is_an_error() {
        let many: Tags = (0..70).map(|i| (format!("tag{i}"), "v".to_string())).collect();
        assert!(to_labels(&Payload::new(&many)).unwrap_err().contains("64 labels"));
    }

    #[test]
    fn descriptions_round_trip() {
        let p = Payload::new(&tags()).with("public", "true");
        assert_eq!(from_description(Some(&to_description(&p))), Some(p));
        assert_eq!(from_description(Some("made by hand")), None);
        assert_eq!(from_description(None), None);
    }

    #[test]
    fn base32_round_trips_every_length() {
        for n in 0..40usize {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let e = base32(&data);
            assert!(e.len() <= n.div_ceil(5) * 8);
            if n > 0 {
                assert_eq!(unbase32(&e).unwrap(), data);
            }
        }
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn label_keys_start_with_a_letter() {
        assert_eq!(label_key("Name"), "name");
        assert_eq!(label_key("9lives"), "k9lives");
        assert_eq!(label_key("konstacks:stack"), "konstacks_stack");
        assert_eq!(stack_label("Acme.Prod"), ("konstacks_stack".to_string(), "acme_prod".to_string()));
    }
}
