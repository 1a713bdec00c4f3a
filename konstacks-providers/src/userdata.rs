//! Cloud-init user data for VMs (DigitalOcean droplets, GCP instances): the stack's own user data plus, when the VM has an
//! environment, a cloud-config part that writes it to `/etc/konstacks/app.env` (mode 0600),
//! combined as a MIME multipart document that cloud-init merges.
//!
//! The environment may hold secrets (database passwords): the result is a [`Secret`] and is
//! exposed only to build the request body.

use std::collections::BTreeMap;

use konstacks_core::secret::Secret;

/// Where the environment file is written.
pub const ENV_FILE: &str = "/etc/konstacks/app.env";
const BOUNDARY: &str = "==konstacks-user-data==";

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The user data to send, or `None` when there is nothing to send. Fails when an environment
/// value cannot be written to an env file (it contains a line break).
pub fn compose(
    user_data: Option<&str>,
    env: &BTreeMap<String, Secret<String>>,
) -> Result<Option<Secret<String>>, String> {
    if env.is_empty() {
        return Ok(user_data.map(|u| Secret::new(u.to_string())));
    }
    let mut file = String::new();
    for (k, v) in env {
        if v.expose().contains(['\n', '\r']) {
            return Err(format!("environment variable `{k}` contains a line break, which an env file cannot hold"));
        }
        file.push_str(&format!("{k}={}\n", v.expose()));
    }
    let env_part = format!(
        "#cloud-config\nmerge_how:\n  - name: list\n    settings: [append]\n  - name: dict\n    settings: [no_replace, recurse_list]\nwrite_files:\n  - path: {ENV_FILE}\n    permissions: '0600'\n    owner: root:root\n    encoding: b64\n    content: {}\n",
        base64(file.as_bytes())
    );
    let mut out = format!("Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\nMIME-Version: 1.0\n\n");
    out.push_str(&format!(
        "--{BOUNDARY}\nContent-Type: text/cloud-config; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Disposition: attachment; filename=\"konstacks-env.cfg\"\n\n{env_part}"
    ));
    if let Some(u) = user_data {
        if u.contains(BOUNDARY) {
            return Err("the user data contains the multipart boundary Konstacks uses; rephrase it".into());
        }
        let kind = if u.starts_with("#!") { "text/x-shellscript" } else { "text/cloud-config" };
        out.push_str(&format!(
            "\n--{BOUNDARY}\nContent-Type: {kind}; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Disposition: attachment; filename=\"user-data\"\n\n{u}"
        ));
        if !u.ends_with('\n') {
            out.push('\n');
        }
    }
    out.push_str(&format!("\n--{BOUNDARY}--\n"));
    Ok(Some(Secret::new(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn environment_goes_into_a_second_part() {
        let env = BTreeMap::from([("PORT".to_string(), Secret::new("8080".to_string()))]);
        let out = compose(Some("#cloud-config\npackages: [caddy]\n"), &env);
        let Ok(Some(out)) = out else { panic!("expected user data") };
        let text = out.expose();
        assert!(text.contains(ENV_FILE));
        assert!(text.contains(&base64(b"PORT=8080\n")));
        assert!(text.contains("packages: [caddy]"));
        assert_eq!(
            compose(Some("x"), &BTreeMap::new()).ok().flatten().map(|s| s.expose().clone()).as_deref(),
            Some("x")
        );
        let bad = BTreeMap::from([("A".to_string(), Secret::new("1\n2".to_string()))]);
        assert!(compose(None, &bad).is_err());
    }
}
