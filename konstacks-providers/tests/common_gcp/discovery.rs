//! Google's discovery documents (`compute.v1.json`, `sqladmin.v1.json`, `dns.v1.json`,
//! `storage.v1.json`, `redis.v1.json`) as a router and a JSON
//! schema checker. The fake routes every request through [`Discovery::route`] and checks both
//! bodies with [`Discovery::check`]; it owns no state and never decides an answer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// One of the APIs the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiName {
    /// Compute Engine v1, under `/compute/v1/`.
    Compute,
    /// Cloud SQL Admin v1, under `/v1/`.
    SqlAdmin,
    /// Cloud DNS v1, under `/dns/v1/`.
    Dns,
    /// Cloud Storage JSON API v1, under `/storage/v1/`.
    Storage,
    /// Memorystore for Redis v1, under `/v1/projects/*/locations/`.
    Redis,
}

#[derive(Debug, Clone)]
enum Seg {
    Lit(String),
    /// `prefix{var}suffix` within one segment.
    Var {
        prefix: String,
        name: String,
        suffix: String,
    },
    /// `{+var}`: one or more segments.
    Rest(String),
}

/// A discovery method.
#[derive(Debug, Clone)]
pub struct MethodDef {
    /// e.g. `compute.instances.insert`.
    pub id: String,
    /// `GET`, `POST`, ...
    pub http_method: String,
    /// The schema of the request body, when the method takes one.
    pub request: Option<String>,
    /// The schema of the response body, when the method returns one.
    pub response: Option<String>,
    /// Query parameters the method declares.
    pub query: BTreeSet<String>,
    segs: Vec<Seg>,
    literals: usize,
}

/// A loaded discovery document.
#[derive(Debug)]
pub struct Api {
    /// Which API.
    pub name: ApiName,
    /// `revision` of the document.
    pub revision: String,
    schemas: BTreeMap<String, Value>,
    methods: Vec<MethodDef>,
    /// Parameters every method accepts (`alt`, `fields`, `key`, ...).
    common_query: BTreeSet<String>,
}

/// Every document.
#[derive(Debug)]
pub struct Discovery {
    /// Compute Engine v1.
    pub compute: Api,
    /// Cloud SQL Admin v1.
    pub sql: Api,
    /// Cloud DNS v1.
    pub dns: Api,
    /// Cloud Storage JSON API v1.
    pub storage: Api,
    /// Memorystore for Redis v1.
    pub redis: Api,
}

/// Which body is checked; request bodies may carry output-only fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Client to server.
    Request,
    /// Server to client.
    Response,
}

/// How a check runs.
#[derive(Debug, Clone, Copy)]
pub struct CheckOpts {
    /// Which body.
    pub side: Side,
    /// `$alt=json;enum-encoding=int`: enum values may be the proto numbers.
    pub int_enums: bool,
}

/// The environment variable naming the directory of the discovery documents.
pub const DISCOVERY_DIR_ENV: &str = "KONSTACKS_GCP_DISCOVERY_DIR";

impl Discovery {
    /// Load both documents from `$KONSTACKS_GCP_DISCOVERY_DIR`; panics when unset or unreadable.
    pub fn from_env() -> Discovery {
        let dir = std::env::var(DISCOVERY_DIR_ENV).unwrap_or_default();
        if dir.is_empty() {
            panic!(
                "{DISCOVERY_DIR_ENV} is not set: the GCP fake validates against Google's discovery documents; \
                 run the GCP tests with `bash scripts/test-gcp.sh`"
            );
        }
        Discovery::load(Path::new(&dir))
    }

    /// Load every document from `dir`; panics when one is missing.
    pub fn load(dir: &Path) -> Discovery {
        let read = |file: &str| -> Value {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {} ({e}); run `bash scripts/test-gcp.sh`", path.display()));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
        };
        Discovery {
            compute: Api::new(ApiName::Compute, &read("compute.v1.json")),
            sql: Api::new(ApiName::SqlAdmin, &read("sqladmin.v1.json")),
            dns: Api::new(ApiName::Dns, &read("dns.v1.json")),
            storage: Api::new(ApiName::Storage, &read("storage.v1.json")),
            redis: Api::new(ApiName::Redis, &read("redis.v1.json")),
        }
    }

    /// The API a request path belongs to and the path relative to the document's paths.
    pub fn api_for<'a>(&self, path: &'a str) -> (&Api, &'a str) {
        // Compute's and Storage's method paths are relative to their service path; the others'
        // start with it (`dns/v1/...`, `v1/...`).
        if let Some(rest) = path.strip_prefix("/compute/v1/") {
            return (&self.compute, rest);
        }
        if let Some(rest) = path.strip_prefix("/storage/v1/") {
            return (&self.storage, rest);
        }
        let rel = path.trim_start_matches('/');
        if rel.starts_with("dns/v1/") {
            return (&self.dns, rel);
        }
        let redis = rel.strip_prefix("v1/projects/").and_then(|r| r.split('/').nth(1)) == Some("locations");
        if redis {
            (&self.redis, rel)
        } else {
            (&self.sql, rel)
        }
    }

    /// Find the method that serves `http_method path`, with its path parameters.
    pub fn route(&self, http_method: &str, path: &str) -> Option<(&Api, &MethodDef, BTreeMap<String, String>)> {
        let (api, rel) = self.api_for(path);
        let (m, params) = api.route(http_method, rel)?;
        Some((api, m, params))
    }
}

fn parse_template(t: &str) -> Vec<Seg> {
    t.split('/')
        .map(|s| {
            if let Some(name) = s.strip_prefix("{+").and_then(|r| r.strip_suffix('}')) {
                Seg::Rest(name.to_string())
            } else if let (Some(open), Some(close)) = (s.find('{'), s.find('}')) {
                Seg::Var {
                    prefix: s[..open].to_string(),
                    name: s[open + 1..close].to_string(),
                    suffix: s[close + 1..].to_string(),
                }
            } else {
                Seg::Lit(s.to_string())
            }
        })
        .collect()
}

fn collect_methods(node: &Value, out: &mut Vec<MethodDef>) {
    if let Some(methods) = node.get("methods").and_then(Value::as_object) {
        for m in methods.values() {
            let template = m.get("flatPath").or_else(|| m.get("path")).and_then(Value::as_str).unwrap_or_default();
            let segs = parse_template(template);
            // Ties between templates go to the one with more literal text (`{x}:verb` over `{x}`).
            let literals = segs
                .iter()
                .map(|s| match s {
                    Seg::Lit(l) => l.len() + 1,
                    Seg::Var { prefix, suffix, .. } => prefix.len() + suffix.len(),
                    Seg::Rest(_) => 0,
                })
                .sum();
            let query = m
                .get("parameters")
                .and_then(Value::as_object)
                .map(|ps| {
                    ps.iter()
                        .filter(|(_, p)| p.get("location").and_then(Value::as_str) == Some("query"))
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            let reference =
                |key: &str| m.get(key).and_then(|r| r.get("$ref")).and_then(Value::as_str).map(str::to_string);
            out.push(MethodDef {
                id: m.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                http_method: m.get("httpMethod").and_then(Value::as_str).unwrap_or("GET").to_string(),
                request: reference("request"),
                response: reference("response"),
                query,
                segs,
                literals,
            });
        }
    }
    if let Some(resources) = node.get("resources").and_then(Value::as_object) {
        for r in resources.values() {
            collect_methods(r, out);
        }
    }
}

fn match_segs(segs: &[Seg], parts: &[&str], out: &mut BTreeMap<String, String>) -> bool {
    let Some((first, rest)) = segs.split_first() else {
        return parts.is_empty();
    };
    match first {
        Seg::Rest(name) => {
            // Greedy, leaving enough segments for the rest of the template.
            let min_rest = rest.len();
            if parts.len() < 1 + min_rest {
                return false;
            }
            for take in (1..=parts.len() - min_rest).rev() {
                let mut tmp = out.clone();
                tmp.insert(name.clone(), parts[..take].join("/"));
                if match_segs(rest, &parts[take..], &mut tmp) {
                    *out = tmp;
                    return true;
                }
            }
            false
        }
        _ => {
            let Some((part, others)) = parts.split_first() else {
                return false;
            };
            match first {
                Seg::Lit(l) if l == part => match_segs(rest, others, out),
                Seg::Var { prefix, name, suffix } => {
                    let Some(mid) = part.strip_prefix(prefix.as_str()).and_then(|p| p.strip_suffix(suffix.as_str()))
                    else {
                        return false;
                    };
                    if mid.is_empty() {
                        return false;
                    }
                    out.insert(name.clone(), pct_decode(mid));
                    match_segs(rest, others, out)
                }
                _ => false,
            }
        }
    }
}

/// Percent-decoding of a path segment or query component (`+` is a space in queries only).
pub fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Api {
    /// Build from a parsed discovery document (tests build small ones).
    pub fn new(name: ApiName, doc: &Value) -> Api {
        let mut methods = Vec::new();
        collect_methods(doc, &mut methods);
        let schemas = doc
            .get("schemas")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let common_query =
            doc.get("parameters").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
        let revision = doc.get("revision").and_then(Value::as_str).unwrap_or_default().to_string();
        Api { name, revision, schemas, methods, common_query }
    }

    /// Whether the document has a schema of that name.
    pub fn has_schema(&self, name: &str) -> bool {
        self.schemas.contains_key(name)
    }

    /// The method serving `http_method rel` (`rel` without the service path), most literal first.
    pub fn route(&self, http_method: &str, rel: &str) -> Option<(&MethodDef, BTreeMap<String, String>)> {
        let parts: Vec<&str> = rel.split('/').collect();
        let mut best: Option<(&MethodDef, BTreeMap<String, String>)> = None;
        for m in self.methods.iter().filter(|m| m.http_method.eq_ignore_ascii_case(http_method)) {
            let mut params = BTreeMap::new();
            if match_segs(&m.segs, &parts, &mut params) && best.as_ref().is_none_or(|(b, _)| m.literals > b.literals) {
                best = Some((m, params));
            }
        }
        best
    }

    /// Whether `name` is a query parameter `m` accepts (its own, a common one, or a `$` system one).
    pub fn accepts_query(&self, m: &MethodDef, name: &str) -> bool {
        name.starts_with('$') || m.query.contains(name) || self.common_query.contains(name)
    }

    /// Check `value` against the schema `schema`; each problem is `<json path>: <problem>`.
    pub fn check(&self, schema: &str, value: &Value, opts: CheckOpts) -> Vec<String> {
        let mut out = Vec::new();
        match self.schemas.get(schema) {
            Some(s) => self.check_node(s, value, "$", opts, &mut out, 0),
            None => out.push(format!("$: schema {schema} is not in the {:?} document", self.name)),
        }
        out
    }

    fn check_node(&self, node: &Value, v: &Value, path: &str, opts: CheckOpts, out: &mut Vec<String>, depth: usize) {
        if depth > 64 || v.is_null() {
            return;
        }
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            match self.schemas.get(r) {
                Some(s) => self.check_node(s, v, path, opts, out, depth + 1),
                None => out.push(format!("{path}: $ref {r} is not a schema of the document")),
            }
            return;
        }
        let ty = node.get("type").and_then(Value::as_str).unwrap_or("any");
        let format = node.get("format").and_then(Value::as_str).unwrap_or("");
        match ty {
            "object" => {
                let Some(obj) = v.as_object() else {
                    out.push(format!("{path}: expected an object, got {}", kind_of(v)));
                    return;
                };
                let props = node.get("properties").and_then(Value::as_object);
                let additional = node.get("additionalProperties");
                for (k, child) in obj {
                    let child_path = format!("{path}.{k}");
                    if let Some(p) = props.and_then(|p| p.get(k)) {
                        self.check_node(p, child, &child_path, opts, out, depth + 1);
                    } else if let Some(a) = additional {
                        self.check_node(a, child, &child_path, opts, out, depth + 1);
                    } else if props.is_some() {
                        out.push(format!("{child_path}: unknown property"));
                    }
                }
            }
            "array" => {
                let Some(items) = v.as_array() else {
                    out.push(format!("{path}: expected an array, got {}", kind_of(v)));
                    return;
                };
                if let Some(item) = node.get("items") {
                    for (i, child) in items.iter().enumerate() {
                        self.check_node(item, child, &format!("{path}[{i}]"), opts, out, depth + 1);
                    }
                }
            }
            "boolean" if !v.is_boolean() => out.push(format!("{path}: expected a boolean, got {}", kind_of(v))),
            "integer" => check_int(v, format, path, out),
            "number" => {
                let ok = v.is_number() || v.as_str().is_some_and(|s| matches!(s, "NaN" | "Infinity" | "-Infinity"));
                if !ok {
                    out.push(format!("{path}: expected a {} number, got {}", fmt_or(format, "JSON"), kind_of(v)));
                }
            }
            "string" => self.check_string(node, v, format, path, opts, out),
            _ => {}
        }
    }

    fn check_string(&self, node: &Value, v: &Value, format: &str, path: &str, opts: CheckOpts, out: &mut Vec<String>) {
        if let Some(values) = node.get("enum").and_then(Value::as_array) {
            if opts.int_enums && v.as_i64().is_some() {
                return;
            }
            match v.as_str() {
                Some(s) if values.iter().any(|e| e.as_str() == Some(s)) => {}
                Some(s) => out.push(format!("{path}: {s:?} is not one of the enum values")),
                None => out.push(format!("{path}: expected an enum string, got {}", kind_of(v))),
            }
            return;
        }
        let Some(s) = v.as_str() else {
            let what = match format {
                "int64" | "uint64" => format!("{format} encoded as a JSON string of digits"),
                "" => "a string".to_string(),
                f => format!("a {f} string"),
            };
            out.push(format!("{path}: expected {what}, got {}", kind_of(v)));
            return;
        };
        let ok = match format {
            "int64" => s.strip_prefix('-').unwrap_or(s).parse::<u64>().is_ok() && !s.starts_with('+'),
            "uint64" => s.parse::<u64>().is_ok() && !s.starts_with('+'),
            "byte" => is_base64(s),
            "date-time" | "google-datetime" => is_rfc3339(s),
            "date" => is_date(s),
            "google-duration" => s.strip_suffix('s').is_some_and(|n| n.parse::<f64>().is_ok()),
            _ => true,
        };
        if !ok {
            out.push(format!("{path}: {s:?} is not a valid {format}"));
        }
    }

    /// Check an error body against Google's error envelope.
    pub fn check_error(body: &Value, status: u16) -> Vec<String> {
        let mut out = Vec::new();
        let Some(err) = body.get("error").and_then(Value::as_object) else {
            return vec!["$: an error answer must be {\"error\": {...}}".to_string()];
        };
        for k in body.as_object().into_iter().flat_map(|o| o.keys()) {
            if k != "error" {
                out.push(format!("$.{k}: unknown property of the error envelope"));
            }
        }
        match err.get("code").and_then(Value::as_u64) {
            Some(c) if c == u64::from(status) => {}
            Some(c) => out.push(format!("$.error.code: {c} differs from the HTTP status {status}")),
            None => out.push("$.error.code: expected an integer".to_string()),
        }
        if !err.get("message").is_some_and(Value::is_string) {
            out.push("$.error.message: expected a string".to_string());
        }
        if let Some(s) = err.get("status") {
            if !s.is_string() {
                out.push("$.error.status: expected a string".to_string());
            }
        }
        match err.get("errors").and_then(Value::as_array) {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    for key in ["domain", "reason", "message"] {
                        if !item.get(key).is_some_and(Value::is_string) {
                            out.push(format!("$.error.errors[{i}].{key}: expected a string"));
                        }
                    }
                }
            }
            None => out.push("$.error.errors: expected an array".to_string()),
        }
        for k in err.keys() {
            if !matches!(k.as_str(), "code" | "message" | "errors" | "status" | "details") {
                out.push(format!("$.error.{k}: unknown property of the error envelope"));
            }
        }
        out
    }
}

fn fmt_or<'a>(f: &'a str, d: &'a str) -> &'a str {
    if f.is_empty() {
        d
    } else {
        f
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_int(v: &Value, format: &str, path: &str, out: &mut Vec<String>) {
    // Google accepts 32-bit integers both as JSON numbers and as decimal strings.
    let n: Option<i128> = match v {
        Value::Number(n) => n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => s.parse::<i128>().ok(),
        _ => None,
    };
    let Some(n) = n else {
        out.push(format!("{path}: expected an {} integer, got {}", fmt_or(format, "JSON"), kind_of(v)));
        return;
    };
    let (lo, hi) = match format {
        "int32" => (i128::from(i32::MIN), i128::from(i32::MAX)),
        "uint32" => (0, i128::from(u32::MAX)),
        _ => (i128::MIN, i128::MAX),
    };
    if n < lo || n > hi {
        out.push(format!("{path}: {n} is out of the {format} range"));
    }
}

/// Standard or URL-safe base64, padded or not.
pub fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let pad = s.len() - body.len();
    pad <= 2
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/-_".contains(&b))
        && (pad == 0 || s.len().is_multiple_of(4))
        && body.len() % 4 != 1
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_date(s: &str) -> bool {
    let p: Vec<&str> = s.split('-').collect();
    p.len() == 3 && digits(p[0], 4) && digits(p[1], 2) && digits(p[2], 2)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]` and `Z` or `±HH:MM`.
pub fn is_rfc3339(s: &str) -> bool {
    let Some((date, time)) = s.split_once('T') else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let (clock, zone) = if let Some(c) = time.strip_suffix('Z') {
        (c, "")
    } else if let Some(i) = time.rfind(['+', '-']) {
        (&time[..i], &time[i + 1..])
    } else {
        return false;
    };
    if !zone.is_empty() {
        let z: Vec<&str> = zone.split(':').collect();
        if z.len() != 2 || !digits(z[0], 2) || !digits(z[1], 2) {
            return false;
        }
    }
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let t: Vec<&str> = hms.split(':').collect();
    t.len() == 3 && t.iter().all(|x| digits(x, 2)) && !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit())
}
