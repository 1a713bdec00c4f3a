//! What a browser makes of the form: its controls and the fields it submits. Just enough HTML
//! reading for markup maud writes (double-quoted attributes, escaped text).

/// One form control.
#[derive(Debug)]
pub(super) struct Control {
    /// `input`, `select` or `textarea`.
    pub tag: String,
    attrs: Vec<(String, Option<String>)>,
    /// A textarea's text, a select's chosen value.
    pub content: String,
}

impl Control {
    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_deref().unwrap_or_default())
    }

    /// Whether attribute `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.attrs.iter().any(|(n, _)| n == name)
    }
}

/// Every input, select and textarea of `html`, in document order.
pub(super) fn controls(html: &str) -> Vec<Control> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let name_len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
        let tag = rest[..name_len].to_string();
        if !matches!(tag.as_str(), "input" | "select" | "textarea") {
            continue;
        }
        let (attrs, after) = attributes(&rest[name_len..]);
        rest = after;
        let content = match tag.as_str() {
            "textarea" => {
                let end = rest.find("</textarea>").unwrap();
                let text = unescape(&rest[..end]);
                rest = &rest[end..];
                // An HTML parser drops one newline right after the start tag.
                text.strip_prefix('\n').map(str::to_string).unwrap_or(text)
            }
            "select" => {
                let end = rest.find("</select>").unwrap();
                let chosen = chosen_option(&rest[..end]);
                rest = &rest[end..];
                chosen
            }
            _ => String::new(),
        };
        out.push(Control { tag, attrs, content });
    }
    out
}

/// The fields a browser submits for the form: checked checkboxes only, textareas with CRLF
/// line breaks.
pub(super) fn submit(html: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for c in controls(html) {
        let Some(name) = c.attr("name").map(str::to_string) else { continue };
        let value = match (c.tag.as_str(), c.attr("type")) {
            ("input", Some("checkbox" | "radio")) => {
                if !c.has("checked") {
                    continue;
                }
                c.attr("value").unwrap_or("on").to_string()
            }
            ("input", _) => c.attr("value").unwrap_or_default().to_string(),
            ("textarea", _) => c.content.replace("\r\n", "\n").replace('\n', "\r\n"),
            _ => c.content.clone(),
        };
        fields.push((name, value));
    }
    fields
}

/// The value of the selected option (the first when none is), within a select's body.
fn chosen_option(body: &str) -> String {
    let mut first = None;
    let mut rest = body;
    while let Some(at) = rest.find("<option") {
        let (attrs, after) = attributes(&rest[at + "<option".len()..]);
        let end = after.find("</option>").unwrap_or(after.len());
        let text = unescape(&after[..end]);
        rest = &after[end..];
        let value = attrs.iter().find(|(n, _)| n == "value").and_then(|(_, v)| v.clone()).unwrap_or(text);
        if attrs.iter().any(|(n, _)| n == "selected") {
            return value;
        }
        first.get_or_insert(value);
    }
    first.unwrap_or_default()
}

/// The attributes of a start tag whose name was just read, and the text after its `>`.
fn attributes(mut s: &str) -> (Vec<(String, Option<String>)>, &str) {
    let mut attrs = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix("/>").or_else(|| s.strip_prefix('>')) {
            return (attrs, after);
        }
        let end = s.find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/').unwrap_or(s.len());
        let name = s[..end].to_string();
        s = &s[end..];
        if let Some(after) = s.strip_prefix("=\"") {
            let close = after.find('"').unwrap();
            attrs.push((name, Some(unescape(&after[..close]))));
            s = &after[close + 1..];
        } else {
            assert!(!name.is_empty(), "cannot read attributes at {s:?}");
            attrs.push((name, None));
        }
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&#39;", "'").replace("&amp;", "&")
}
