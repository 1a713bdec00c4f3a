//! The rules a bucket must keep whatever the cloud: names valid on every object store, and the
//! checks lowering makes on encryption, lifecycle, CORS and the reason for public access.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use super::*;

/// Prefixes a cloud reserves (IDNA, S3 access points and demo names, Google).
const RESERVED_PREFIXES: [&str; 4] = ["xn--", "sthree-", "amzn-s3-demo-", "goog"];
/// Suffixes S3 reserves (access point aliases, Object Lambda, directory and table buckets).
const RESERVED_SUFFIXES: [&str; 4] = ["-s3alias", "--ol-s3", "--x-s3", "--table-s3"];

/// A rule of bucket names that a name breaks.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketNameRule {
    /// Fewer than 3 or more than 63 characters (how many there are).
    Length(usize),
    /// A dot: endpoints are virtual-host HTTPS names, and a wildcard certificate covers one label.
    Dot,
    /// A character other than `a-z`, `0-9`, `-` and `.` (the first one found).
    Character(char),
    /// The first character is not a letter or digit.
    Start,
    /// The last character is not a letter or digit.
    End,
    /// The name has the form of an IPv4 address.
    IpAddress,
    /// A prefix a cloud reserves.
    ReservedPrefix(&'static str),
    /// A suffix a cloud reserves.
    ReservedSuffix(&'static str),
    /// Contains `google`, which Cloud Storage refuses.
    Google,
}

impl fmt::Display for BucketNameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BucketNameRule::Length(n) => {
                write!(f, "it has {n} characters; bucket names have {MIN_NAME_LEN} to {MAX_NAME_LEN}")
            }
            BucketNameRule::Dot => {
                write!(f, "it contains '.', which breaks HTTPS on virtual-host endpoints (`https://<bucket>.<host>`)")
            }
            BucketNameRule::Character(c) => {
                write!(f, "it contains `{}`; bucket names use only a-z, 0-9 and '-'", c.escape_debug())
            }
            BucketNameRule::Start => write!(f, "it does not start with a lowercase letter or digit"),
            BucketNameRule::End => write!(f, "it does not end with a lowercase letter or digit"),
            BucketNameRule::IpAddress => write!(f, "it has the form of an IP address"),
            BucketNameRule::ReservedPrefix(p) => write!(f, "it starts with `{p}`, a prefix clouds reserve"),
            BucketNameRule::ReservedSuffix(s) => write!(f, "it ends with `{s}`, a suffix clouds reserve"),
            BucketNameRule::Google => write!(f, "it contains `google`, which Cloud Storage refuses"),
        }
    }
}

impl BucketNameRule {
    /// What to change in a stack so the derived physical name keeps the rule.
    fn help(&self) -> &'static str {
        match self {
            BucketNameRule::Length(_) => {
                "shorten the stack name, the scope ids or the bucket's id (bucket names have 3 to 63 characters, 3 \
                 of which are kept for replacement suffixes)"
            }
            BucketNameRule::End | BucketNameRule::ReservedSuffix(_) => "change the end of the bucket's id",
            BucketNameRule::ReservedPrefix(_) => "change the start of the stack name",
            BucketNameRule::Google => "remove `google` from the stack name, the scope ids and the bucket's id",
            _ => "use a stack name and ids of a-z, 0-9 and '-', starting and ending with a letter or digit",
        }
    }
}

/// Every rule of bucket names that `name` breaks (empty when it is a valid name): 3 to 63
/// characters of `a-z`, `0-9` and `-` (no dots: virtual-host HTTPS), starting and ending with a
/// letter or digit, not an IP address, no reserved prefix (`xn--`, `sthree-`, `amzn-s3-demo-`,
/// `goog`) or suffix (`-s3alias`, `--ol-s3`, `--x-s3`, `--table-s3`), and no `google`.
pub fn bucket_name_problems(name: &str) -> Vec<BucketNameRule> {
    let mut out = Vec::new();
    let n = name.chars().count();
    if !(MIN_NAME_LEN..=MAX_NAME_LEN).contains(&n) {
        out.push(BucketNameRule::Length(n));
    }
    if name.contains('.') {
        out.push(BucketNameRule::Dot);
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))) {
        out.push(BucketNameRule::Character(c));
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if name.chars().next().is_some_and(|c| !alnum(c)) {
        out.push(BucketNameRule::Start);
    }
    if name.chars().last().is_some_and(|c| !alnum(c)) {
        out.push(BucketNameRule::End);
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        out.push(BucketNameRule::IpAddress);
    }
    out.extend(RESERVED_PREFIXES.iter().filter(|p| name.starts_with(*p)).map(|p| BucketNameRule::ReservedPrefix(p)));
    out.extend(RESERVED_SUFFIXES.iter().filter(|s| name.ends_with(*s)).map(|s| BucketNameRule::ReservedSuffix(s)));
    if name.contains("google") {
        out.push(BucketNameRule::Google);
    }
    out
}

/// The derived physical name against the bucket naming rules, keeping room for a replacement's
/// `-N` suffix.
pub(super) fn check_name(cx: &mut LowerCx<'_>) {
    let Some(base) = cx.physical_name().map(str::to_string) else { return };
    let n = base.chars().count();
    let reserve_only = n > MAX_NAME_LEN - SUFFIX_RESERVE && n <= MAX_NAME_LEN;
    for p in bucket_name_problems(&base) {
        cx.error("invalid-bucket-name", format!("bucket name `{base}` breaks a naming rule: {p}"), p.help());
    }
    if reserve_only {
        cx.error(
            "invalid-bucket-name",
            format!(
                "bucket name `{base}` breaks a naming rule: it has {n} characters; bucket names have at most \
                 {MAX_NAME_LEN}, and {SUFFIX_RESERVE} are kept for the `-N` suffix of a replacement"
            ),
            BucketNameRule::Length(n).help(),
        );
    }
}

pub(super) fn check_encryption(cx: &mut LowerCx<'_>, e: &BucketEncryption) {
    if let BucketEncryption::Kms(key) = e {
        if key.is_empty() || key.len() > 2048 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            cx.error(
                "invalid-kms-key",
                format!("KMS key id {key:?} is empty, too long or contains spaces"),
                "pass the key's id, ARN or resource name as the provider shows it, or use \
                 `BucketEncryption::ProviderManaged`",
            );
        }
    }
}

/// Expiry rules: at least a day, one rule per prefix, keys a cloud accepts. Returns them sorted.
pub(super) fn check_expiry(cx: &mut LowerCx<'_>, rules: &[ExpiryRule]) -> Vec<ExpiryRule> {
    let mut by_prefix: BTreeMap<&str, u32> = BTreeMap::new();
    for r in rules {
        let shown = if r.prefix.is_empty() { "every object".to_string() } else { format!("prefix {:?}", r.prefix) };
        if r.days == 0 {
            cx.error(
                "invalid-expiry",
                format!("objects of {shown} expire after 0 days"),
                "expire objects after at least 1 day, or drop the rule",
            );
        }
        if r.prefix.len() > MAX_PREFIX_LEN || r.prefix.chars().any(char::is_control) {
            cx.error(
                "invalid-expiry",
                format!(
                    "expiry prefix {:?} is longer than {MAX_PREFIX_LEN} bytes or has a control character",
                    r.prefix
                ),
                "use a key prefix such as `logs/`",
            );
        }
        if let Some(first) = by_prefix.insert(&r.prefix, r.days) {
            cx.error(
                "duplicate-expiry",
                format!("objects of {shown} have two expiry rules ({first} and {} days)", r.days),
                "keep one rule per prefix",
            );
        }
    }
    if rules.len() > MAX_LIFECYCLE_RULES {
        cx.error(
            "invalid-expiry",
            format!("{} expiry rules exceed the {MAX_LIFECYCLE_RULES} a bucket may have", rules.len()),
            "merge rules with a common prefix",
        );
    }
    by_prefix.into_iter().map(|(prefix, days)| ExpiryRule { prefix: prefix.to_string(), days }).collect()
}

pub(super) fn check_cors(cx: &mut LowerCx<'_>, rules: &[CorsRule]) {
    if rules.len() > MAX_CORS_RULES {
        cx.error(
            "invalid-cors-rule",
            format!("{} CORS rules exceed the {MAX_CORS_RULES} a bucket may have", rules.len()),
            "merge rules: one rule may list several origins and methods",
        );
    }
    for (i, r) in rules.iter().enumerate() {
        let n = i + 1;
        if r.origins.is_empty() || r.methods.is_empty() {
            cx.error(
                "invalid-cors-rule",
                format!("CORS rule #{n} lists no origin or no method"),
                "list at least one origin and one method, e.g. `CorsRule::new([\"https://app.example.com\"], [\"GET\"])`",
            );
        }
        for o in r.origins.iter().filter(|o| !is_cors_origin(o)) {
            cx.error(
                "invalid-cors-origin",
                format!("CORS rule #{n}: origin {o:?} is not `*` or an https origin"),
                "write `*` or `https://host[:port]` in lower case, without a path (a leading `*.` label is allowed)",
            );
        }
        for m in r.methods.iter().filter(|m| !CORS_METHODS.contains(&m.as_str())) {
            cx.error(
                "invalid-cors-method",
                format!("CORS rule #{n}: method {m:?} is not one a bucket serves"),
                "use GET, PUT, POST, DELETE or HEAD, in upper case",
            );
        }
        let token =
            |h: &str| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        for h in r.headers.iter().filter(|h| !token(h)) {
            cx.error(
                "invalid-cors-rule",
                format!("CORS rule #{n}: header {h:?} is not a header name"),
                "use header names such as `content-type`, `x-amz-*` or `*`",
            );
        }
        if r.max_age > MAX_CORS_MAX_AGE {
            cx.error(
                "invalid-cors-rule",
                format!("CORS rule #{n}: max age {}s exceeds a day", r.max_age),
                format!("use at most {MAX_CORS_MAX_AGE} seconds; browsers cap it anyway"),
            );
        }
    }
}

/// `*`, or `https://` and a lowercase host name (a first label `*` allowed) with an optional
/// port, and nothing else.
pub fn is_cors_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some(rest) = origin.strip_prefix("https://") else { return false };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || p.parse::<u16>().map_or(true, |p| p == 0)) {
        return false;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let label_ok = |(i, l): (usize, &&str)| {
        (i == 0 && *l == "*")
            || (!l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-'))
    };
    !host.is_empty() && host.len() <= 253 && labels.iter().enumerate().all(label_ok) && host != "*"
}

/// The reason recorded for public read access: required, short, printable. Returns it trimmed.
pub(super) fn check_reason(cx: &mut LowerCx<'_>, reason: &str) -> String {
    let reason = reason.trim();
    if reason.is_empty() {
        cx.error(
            "missing-public-reason",
            "public read access is asked for without a reason",
            "say why anyone may read the objects, e.g. `.public_read(\"static assets of the public website\")`",
        );
    } else if reason.chars().count() > MAX_REASON_LEN || reason.chars().any(char::is_control) {
        cx.error(
            "invalid-public-reason",
            "the reason for public read access is longer than 256 characters or has a control character",
            "write one short line",
        );
    }
    reason.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_break_no_rule() {
        for name in ["abc", "shop-prod-assets", "a1-b2", &"a".repeat(63), "x--y"] {
            assert_eq!(bucket_name_problems(name), [], "{name}");
        }
    }

    #[test]
    fn each_rule_is_named() {
        use BucketNameRule as R;
        for (name, rule) in [
            ("ab", R::Length(2)),
            (&*"a".repeat(64), R::Length(64)),
            ("my.bucket", R::Dot),
            ("My-bucket", R::Character('M')),
            ("my_bucket", R::Character('_')),
            ("-bucket", R::Start),
            ("bucket-", R::End),
            ("192.168.5.4", R::IpAddress),
            ("xn--bucket", R::ReservedPrefix("xn--")),
            ("sthree-bucket", R::ReservedPrefix("sthree-")),
            ("googbucket", R::ReservedPrefix("goog")),
            ("logs-s3alias", R::ReservedSuffix("-s3alias")),
            ("logs--ol-s3", R::ReservedSuffix("--ol-s3")),
            ("my-google-files", R::Google),
        ] {
            let got = bucket_name_problems(name);
            assert!(got.contains(&rule), "{name}: {got:?} lacks {rule:?}");
        }
        // Every broken rule at once.
        assert_eq!(bucket_name_problems("-A.").len(), 4, "{:?}", bucket_name_problems("-A."));
        assert_eq!(bucket_name_problems(""), [R::Length(0)]);
    }

    #[test]
    fn cors_origins() {
        for ok in ["*", "https://example.com", "https://app.example.com:8443", "https://*.example.com"] {
            assert!(is_cors_origin(ok), "{ok}");
        }
        for bad in [
            "http://example.com",
            "https://example.com/",
            "https://example.com/path",
            "https://Example.com",
            "https://",
            "https://*",
            "https://a.*.com",
            "https://example.com:0",
            "https://example.com:99999",
            "example.com",
            "",
        ] {
            assert!(!is_cors_origin(bad), "{bad}");
        }
    }
}
