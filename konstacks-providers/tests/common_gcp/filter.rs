//! List filters of the fake: Compute Engine's (`name = "x"`, `labels.env != prod`, `name eq web-.*`,
//! `(a) (b)`, `a AND b`, `a OR b` inside parentheses, `field:*`) and Cloud SQL's
//! (`settings.userLabels.env:prod other:x`, space-separated ANDs), parsed into one small tree.
//! `eq`/`ne` values are RE2 regexes that must match the whole value, as in Compute Engine.

use regex::Regex;
use serde_json::Value;

/// A parsed filter.
#[derive(Debug, Clone)]
pub enum Filter {
    /// All must hold (an empty list holds).
    And(Vec<Filter>),
    /// One must hold.
    Or(Vec<Filter>),
    /// `field = value` (or `:` with a value other than `*`).
    Eq(String, String),
    /// `field != value`.
    Ne(String, String),
    /// `field eq regex`.
    Matches(String, Regex),
    /// `field ne regex`.
    NotMatches(String, Regex),
    /// `field:*`.
    Present(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Op(String),
    Word(String),
    Quoted(String),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '"' | '\'' => {
                let mut j = i + 1;
                let mut text = String::new();
                while j < chars.len() && chars[j] != c {
                    if chars[j] == '\\' && j + 1 < chars.len() {
                        j += 1;
                    }
                    text.push(chars[j]);
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(format!("unterminated quote in filter {s:?}"));
                }
                out.push(Tok::Quoted(text));
                i = j + 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Op("!=".into()));
                i += 2;
            }
            '=' | ':' => {
                out.push(Tok::Op(c.to_string()));
                i += 1;
            }
            _ => {
                let mut j = i;
                let mut text = String::new();
                while j < chars.len() && !chars[j].is_whitespace() && !"()=:!\"'".contains(chars[j]) {
                    text.push(chars[j]);
                    j += 1;
                }
                if j < chars.len() && chars[j] == '!' && chars.get(j + 1) != Some(&'=') {
                    text.push('!');
                    j += 1;
                }
                out.push(Tok::Word(text));
                i = j;
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// or := and ("OR" and)*
    fn or(&mut self) -> Result<Filter, String> {
        let mut alts = vec![self.and()?];
        while matches!(self.peek(), Some(Tok::Word(w)) if w == "OR") {
            self.pos += 1;
            alts.push(self.and()?);
        }
        Ok(if alts.len() == 1 { alts.remove(0) } else { Filter::Or(alts) })
    }

    /// and := term (("AND")? term)*
    fn and(&mut self) -> Result<Filter, String> {
        let mut terms = Vec::new();
        loop {
            match self.peek() {
                None | Some(Tok::Close) => break,
                Some(Tok::Word(w)) if w == "OR" => break,
                Some(Tok::Word(w)) if w == "AND" => {
                    self.pos += 1;
                }
                _ => terms.push(self.term()?),
            }
        }
        Ok(Filter::And(terms))
    }

    fn term(&mut self) -> Result<Filter, String> {
        match self.next() {
            Some(Tok::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Tok::Close) => Ok(inner),
                    _ => Err("missing ')' in filter".into()),
                }
            }
            Some(Tok::Word(field)) => {
                let op = match self.next() {
                    Some(Tok::Op(op)) => op,
                    Some(Tok::Word(w)) if w == "eq" || w == "ne" => w,
                    other => return Err(format!("expected an operator after {field:?}, got {other:?}")),
                };
                let value = match self.next() {
                    Some(Tok::Word(v)) | Some(Tok::Quoted(v)) => v,
                    other => return Err(format!("expected a value after {field} {op}, got {other:?}")),
                };
                let re = |v: &str| Regex::new(&format!("^(?:{v})$")).map_err(|e| format!("bad regex {v:?}: {e}"));
                Ok(match op.as_str() {
                    "=" => Filter::Eq(field, value),
                    "!=" => Filter::Ne(field, value),
                    ":" if value == "*" => Filter::Present(field),
                    ":" => Filter::Eq(field, value),
                    "eq" => Filter::Matches(field, re(&value)?),
                    _ => Filter::NotMatches(field, re(&value)?),
                })
            }
            other => Err(format!("unexpected {other:?} in filter")),
        }
    }
}

/// Parse a filter; the error says what is wrong (the fake answers 400 with it).
pub fn parse(s: &str) -> Result<Filter, String> {
    let mut p = Parser { toks: tokenize(s)?, pos: 0 };
    let f = p.or()?;
    if p.pos < p.toks.len() {
        return Err(format!("unexpected {:?} in filter {s:?}", p.toks[p.pos]));
    }
    Ok(f)
}

fn lookup(v: &Value, field: &str) -> Option<String> {
    let mut cur = v;
    for part in field.split('.') {
        cur = cur.get(part)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        Value::Bool(_) | Value::Number(_) => Some(cur.to_string()),
        other => Some(other.to_string()),
    }
}

impl Filter {
    /// Whether `resource` passes.
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(resource)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(resource)),
            Filter::Eq(k, v) => lookup(resource, k).is_some_and(|x| glob(v, &x)),
            Filter::Ne(k, v) => !lookup(resource, k).is_some_and(|x| glob(v, &x)),
            Filter::Matches(k, re) => re.is_match(&lookup(resource, k).unwrap_or_default()),
            Filter::NotMatches(k, re) => !re.is_match(&lookup(resource, k).unwrap_or_default()),
            Filter::Present(k) => lookup(resource, k).is_some(),
        }
    }
}

/// `=` compares literally except for `*`, which matches any run of characters.
fn glob(pattern: &str, value: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == value;
    }
    let re = pattern.split('*').map(regex::escape).collect::<Vec<_>>().join(".*");
    Regex::new(&format!("^{re}$")).is_ok_and(|r| r.is_match(value))
}
