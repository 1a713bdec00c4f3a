//! The boot of a VM that runs an [`App`], as cloud-init for Ubuntu and Debian, built from the
//! App's typed fields in this one place: the templates describe what runs, this module decides
//! how a machine starts it.
//!
//! - An image runs in Docker from the OS packages (`docker.io`), as the systemd unit
//!   [`APP_UNIT`]: it pulls the image before each start, runs the container with the
//!   environment file the providers write ([`ENV_FILE`]), publishes the app's port on
//!   127.0.0.1 only, and restarts always.
//! - A command is shell code by design: it gets a script of its own, which the same unit runs
//!   with the environment file loaded by systemd's own parser (no shell sources it).
//! - Caddy listens on the port the load balancer (or the world) reaches and proxies to the app.
//!
//! Values reach the configuration only as whole argv elements, as the content of a file of
//! their own, or as one quoted word of a systemd unit ([`unit_word`]): never inside YAML syntax
//! or another command's text. Which cloud runs the VM is not this module's business; the
//! providers write the environment file.

use konstacks_core::model::{App, AppRun};

use crate::cloud_config::{CloudConfig, WriteFile};

/// The environment file the providers write on every VM that has an environment (mode 0600).
pub const ENV_FILE: &str = "/etc/konstacks/app.env";
/// The systemd unit that runs the app.
pub const APP_UNIT: &str = "konstacks-app.service";
/// The name of the app's container (image form).
pub const CONTAINER: &str = "konstacks-app";
/// The script holding the command (command form), run by [`APP_UNIT`].
pub const START_SCRIPT: &str = "/usr/local/lib/konstacks/start-app";
/// The Docker CLI of the `docker.io` package.
const DOCKER: &str = "/usr/bin/docker";

/// Caddy on `listen` (every address) as a reverse proxy to the app on `127.0.0.1:app_port`.
pub fn reverse_proxy(c: &mut CloudConfig, listen: u32, app_port: u16) {
    c.package("caddy");
    c.file(WriteFile::deferred(
        "/etc/caddy/Caddyfile",
        "0644",
        format!(":{listen} {{\n  reverse_proxy 127.0.0.1:{app_port}\n}}\n"),
    ));
    c.run(&["systemctl", "restart", "caddy"]);
}

/// What runs `app` at boot, and keeps it running: its packages, the unit [`APP_UNIT`] (and for
/// a command its script), and the commands that start it. Add it after any step the app needs
/// before its first start.
pub fn start(c: &mut CloudConfig, app: &App) {
    let unit = match &app.run {
        AppRun::Image(image) => {
            c.package("docker.io");
            image_unit(image, app.port)
        }
        AppRun::Command(command) => {
            c.file(WriteFile::deferred(START_SCRIPT, "0755", format!("#!/bin/sh\n{command}\n")));
            command_unit()
        }
        // A form this module does not know yet starts nothing rather than something wrong.
        _ => return,
    };
    c.file(WriteFile::deferred(format!("/etc/systemd/system/{APP_UNIT}"), "0644", unit));
    c.run(&["systemctl", "daemon-reload"]);
    c.run(&["systemctl", "enable", "--now", APP_UNIT]);
}

/// The unit running `image` with Docker: the container is removed if a crash left it, the image
/// pulled (a registry that cannot be reached leaves the cached image in use; `docker run`
/// pulls a missing one itself), and the container run in the foreground so systemd supervises
/// it and the journal holds its output.
fn image_unit(image: &str, port: u16) -> String {
    let image = unit_word(image);
    format!(
        "[Unit]\n\
         Description=App started by Konstacks (container image)\n\
         Wants=network-online.target\n\
         After=network-online.target docker.service\n\
         Requires=docker.service\n\
         StartLimitIntervalSec=0\n\
         \n\
         [Service]\n\
         Restart=always\n\
         RestartSec=5\n\
         TimeoutStartSec=15min\n\
         ExecStartPre=-{DOCKER} rm --force {CONTAINER}\n\
         ExecStartPre=-{DOCKER} pull {image}\n\
         ExecStart={DOCKER} run --rm --name {CONTAINER} --env-file {ENV_FILE} --publish 127.0.0.1:{port}:{port} {image}\n\
         ExecStop={DOCKER} stop {CONTAINER}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The unit running [`START_SCRIPT`] with the environment file.
fn command_unit() -> String {
    format!(
        "[Unit]\n\
         Description=App started by Konstacks (start_command)\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         StartLimitIntervalSec=0\n\
         \n\
         [Service]\n\
         EnvironmentFile={ENV_FILE}\n\
         ExecStart={START_SCRIPT}\n\
         Restart=always\n\
         RestartSec=5\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// `s` as one double-quoted word of a systemd command line (`ExecStart=`) whose value is exactly
/// `s`: specifiers (`%`) and variables (`$`) are doubled, `\` and `"` escaped, and control
/// characters written as C escapes, so no character ends the word, the line or the command.
pub fn unit_word(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rendered(app: &App) -> String {
        let mut c = CloudConfig::new();
        c.package_update = true;
        reverse_proxy(&mut c, 80, app.port);
        start(&mut c, app);
        c.render()
    }

    #[test]
    fn an_image_runs_in_docker_from_the_os_packages_under_systemd() {
        let app = App::image("ghcr.io/acme/shop:1.4.2", 8080).version("1.4.2-rc1");
        insta::assert_snapshot!("image_form", rendered(&app));
    }

    #[test]
    fn a_command_runs_from_its_script_under_systemd() {
        let app = App::command("exec ./server --listen \"127.0.0.1:$PORT\"", 3000);
        insta::assert_snapshot!("command_form", rendered(&app));
    }

    #[test]
    fn the_version_and_health_path_do_not_reach_the_boot() {
        // They reach the app as APP_VERSION and the load balancer's check; the boot is the same.
        let a = App::image("ghcr.io/acme/shop:1.4.2", 8080);
        assert_eq!(rendered(&a), rendered(&a.clone().version("2").health_path("/healthz")));
    }

    #[test]
    fn unit_words_hold_any_value_as_one_word() {
        assert_eq!(unit_word("ghcr.io/acme/shop:1.4.2"), "\"ghcr.io/acme/shop:1.4.2\"");
        assert_eq!(unit_word("a%nb$HOME\\\"c d"), "\"a%%nb$$HOME\\\\\\\"c d\"");
        assert_eq!(unit_word("x\ny\u{85}"), "\"x\\u000ay\\u0085\"");
        // Whatever the image holds, the unit keeps one line per directive.
        let hostile = App::image("x\"\nExecStartPre=/bin/rm -rf /\n%h$(id)", 8080);
        let text = rendered(&hostile);
        let v: serde_json::Value =
            serde_json::from_str(text.strip_prefix("#cloud-config\n").unwrap_or_default()).unwrap();
        let unit = v["write_files"][1]["content"].as_str().unwrap();
        assert_eq!(unit.lines().filter(|l| l.starts_with("ExecStartPre=")).count(), 2, "{unit}");
        assert!(unit.contains("\"x\\\"\\u000aExecStartPre=/bin/rm -rf /\\u000a%%h$$(id)\""), "{unit}");
    }
}
