//! VMs' apps as child processes: the command form through `/bin/sh -c`, the image form through
//! a local container engine when one answers. Each app gets the VM's environment (secrets are
//! exposed to the child only, never printed) with `PORT` set to a free loopback port the
//! runtime picked; the load balancer reaches the target at `127.0.0.1:PORT`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use konstacks_core::kinds::{VmObserved, VmSpec};
use konstacks_core::model::{App, AppRun};
use tokio::process::Command;

use super::procs::Proc;

/// Variables of this process an app inherits (everything else it gets comes from its VM's
/// spec): enough to find interpreters and locales, nothing that could hold a credential.
const PASSED_THROUGH: &[&str] =
    &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYENV_ROOT", "PYENV_VERSION"];

/// A VM's running app.
#[derive(Debug, Clone)]
pub(crate) struct RunningApp {
    /// The process (for the image form: the container engine's client, which forwards signals).
    pub(crate) proc: Proc,
    /// The loopback port it listens on.
    pub(crate) port: u16,
    /// Its version.
    pub(crate) version: String,
    /// The container's name, for the image form.
    pub(crate) container: Option<(String, String)>,
}

/// The environment of `vm`'s app, with `PORT` and `APP_VERSION` set for the live runtime.
fn env_of(spec: &VmSpec, app: &App, port: u16) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = spec
        .env
        .iter()
        .filter(|(k, _)| k.as_str() != "PORT" && k.as_str() != "APP_VERSION")
        .map(|(k, v)| (k.clone(), v.expose().clone()))
        .collect();
    env.push(("PORT".into(), port.to_string()));
    env.push(("APP_VERSION".into(), app.version.clone()));
    env
}

fn base_command(program: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().current_dir(dir);
    for k in PASSED_THROUGH {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd
}

/// A container engine (`docker` or `podman`) on PATH whose daemon answers, if any.
fn container_engine() -> Option<String> {
    for name in ["docker", "podman"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
            .unwrap_or(false);
        if !found {
            continue;
        }
        let ok = std::process::Command::new(name)
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Some(name.to_string());
        }
    }
    None
}

/// Start the app of `vm` on loopback `port`, from `dir`, its output in `log`.
pub(crate) fn start(
    vm: &VmObserved,
    spec: &VmSpec,
    app: &App,
    port: u16,
    dir: &Path,
    log: &Path,
) -> Result<RunningApp, String> {
    let what = format!("app of VM `{}` ({})", vm.name, vm.id);
    let env = env_of(spec, app, port);
    match &app.run {
        AppRun::Command(line) => {
            let mut cmd = base_command("/bin/sh", dir);
            cmd.arg("-c").arg(line).envs(env);
            let proc = Proc::spawn(what, cmd, log)?;
            Ok(RunningApp { proc, port, version: app.version.clone(), container: None })
        }
        AppRun::Image(image) => {
            let engine = container_engine().ok_or_else(|| {
                format!(
                    "VM `{}` runs the image `{image}`, but no container engine answers here (neither `docker` nor \
                     `podman` is on PATH with a running daemon); give its app the command form instead \
                     (`App::command(\"...\", port)`, the `start_command` parameter of the templates) to run it live",
                    vm.name
                )
            })?;
            let name = format!("konstacks-{}-{}-{}", std::process::id(), vm.id, port);
            let mut cmd = base_command(&engine, dir);
            cmd.args(["run", "--rm", "--init", "--name", &name, "-p"]);
            cmd.arg(format!("127.0.0.1:{port}:{}", app.port));
            // Values travel in the client's environment, never in its argv (visible in `ps`).
            for (k, _) in &env {
                cmd.arg("-e").arg(k);
            }
            let env: Vec<(String, String)> =
                env.into_iter().map(|(k, v)| if k == "PORT" { (k, app.port.to_string()) } else { (k, v) }).collect();
            cmd.envs(env).arg(image);
            let proc = Proc::spawn(what, cmd, log)?;
            Ok(RunningApp { proc, port, version: app.version.clone(), container: Some((engine, name)) })
        }
        _ => Err(format!("VM `{}`: this kind of app cannot run live; give it the command form", vm.name)),
    }
}

/// Remove an image-form app's container, in case its client was killed before it could.
pub(crate) async fn remove_container(engine: &str, name: &str) {
    let mut cmd = Command::new(engine);
    cmd.args(["rm", "-f", name]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let _ = tokio::time::timeout(Duration::from_secs(10), cmd.status()).await;
}
