//! The workload a VM runs, as typed data: a container image or a command, the port it listens
//! on, the path that proves it healthy, and a version. Templates describe apps with it instead of
//! shell strings; each cloud turns it into its boot configuration (the templates render it as
//! cloud-init), and the simulated cloud's live mode runs the command form as a real process.
//!
//! Changing the app of VMs behind a load balancer is a release: see the engine's release
//! orchestration and `docs/releases.md`.

/// What runs: an OCI image, or a command line for machines without containers.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppRun {
    /// A container image reference (`ghcr.io/acme/shop:1.4.2`), run by the machine's container
    /// engine with the app's environment file.
    Image(String),
    /// A command line run by `/bin/sh` under a supervisor, with the app's environment.
    Command(String),
}

/// An app: what runs, on which port, how it proves healthy, and its version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct App {
    /// What runs.
    pub run: AppRun,
    /// The TCP port it listens on (it also receives it as `PORT`).
    pub port: u16,
    /// The path that answers 2xx/3xx when it serves (`/healthz`).
    pub health_path: String,
    /// The version shown in plans and release history (`1.4.2`, a commit); it also reaches the
    /// app as `APP_VERSION`.
    pub version: String,
}

impl App {
    /// An app running the container `image` on `port`, healthy on `/`, version taken from the
    /// image's tag (or `latest`).
    pub fn image(image: impl Into<String>, port: u16) -> Self {
        let image = image.into();
        let version = image_tag(&image).unwrap_or("latest").to_string();
        Self { run: AppRun::Image(image), port, health_path: "/".into(), version }
    }

    /// An app running `command` (one line of `/bin/sh`) on `port`, healthy on `/`, version `1`.
    pub fn command(command: impl Into<String>, port: u16) -> Self {
        Self { run: AppRun::Command(command.into()), port, health_path: "/".into(), version: "1".into() }
    }

    /// The path of its health check (starts with `/`).
    pub fn health_path(mut self, path: impl Into<String>) -> Self {
        self.health_path = path.into();
        self
    }

    /// Its version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Every problem with it, as `(field, message)`; empty when it is valid.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let one_line = |s: &str| !s.trim().is_empty() && !s.chars().any(char::is_control);
        match &self.run {
            AppRun::Image(i) if !one_line(i) || i.chars().any(char::is_whitespace) => out.push((
                "image",
                format!("image reference `{}` is empty or holds spaces or control characters", i.escape_debug()),
            )),
            AppRun::Command(c) if !one_line(c) => out.push((
                "command",
                "the command is empty or holds a control character (a newline, a tab); give one line".to_string(),
            )),
            _ => {}
        }
        if self.port == 0 {
            out.push(("port", "port 0 is not a port the app can listen on; use 1 to 65535".to_string()));
        }
        if !self.health_path.starts_with('/') || self.health_path.chars().any(|c| c.is_control() || c.is_whitespace()) {
            out.push((
                "health_path",
                format!("health path `{}` must start with `/` and hold no spaces", self.health_path.escape_debug()),
            ));
        }
        let version_ok = !self.version.is_empty()
            && self.version.len() <= 128
            && self.version.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
        if !version_ok {
            out.push((
                "version",
                format!(
                    "version `{}` must be 1 to 128 letters, digits, '.', '_', '-' or '+'",
                    self.version.escape_debug()
                ),
            ));
        }
        out
    }
}

/// The tag of an image reference (`1.4.2` of `ghcr.io/acme/shop:1.4.2`), if it has one.
fn image_tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':').map(|(_, t)| t).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_tag_and_problems_are_all_listed() {
        assert_eq!(App::image("ghcr.io/acme/shop:1.4.2", 8080).version, "1.4.2");
        assert_eq!(App::image("localhost:5000/shop", 8080).version, "latest");
        assert_eq!(App::image("shop@sha256:abc", 80).version, "latest");
        let bad = App::command("a\nb", 0).health_path("health").version("1 2");
        let fields: Vec<&str> = bad.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["command", "port", "health_path", "version"]);
        assert!(App::command("python3 app.py", 8080).problems().is_empty());
    }
}
