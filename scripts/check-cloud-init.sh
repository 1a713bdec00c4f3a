#!/usr/bin/env bash
# Validate the user data of every built-in template with cloud-init's own schema validator.
#
# For every template, stage and parameter set (defaults, the snapshot tests' parameters, and
# hostile values that the templates accept as data), `konstacks synth --json` gives each VM's
# user data; every distinct document is then checked with cloud-init's
# `cloudinit.config.schema.validate_cloudconfig_file` (the code behind `cloud-init schema
# --config-file`), plus two checks of our own: PyYAML (YAML 1.1, what cloud-init reads with)
# must load exactly what a JSON parser loads, and every top-level key must be one the schema
# knows (the schema itself lets unknown keys through).
#
# Where cloud-init comes from: it is not published on PyPI, and its GitHub tarballs are not
# reachable from this project's machines, so the script takes Debian's signed package (bookworm's
# cloud-init, pinned below), unpacks it under target/ without installing it, and runs it in a
# venv with pinned PyPI versions of the libraries it imports. Nothing is installed system-wide;
# only `apt-get update` runs when the package lists are empty.
set -euo pipefail
cd "$(dirname "$0")/.."

CLOUD_INIT_DEB_VERSION="22.4.2-1+deb12u4"
WORK="${CARGO_TARGET_DIR:-target}/cloud-init-check"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"

# ---- cloud-init, unpacked from Debian's package
if [ ! -d "$WORK/root/usr/lib/python3/dist-packages/cloudinit" ]; then
    if ! apt-cache policy cloud-init 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq
        else
            echo "check-cloud-init: the apt package lists are empty; run 'apt-get update' as root first" >&2
            exit 1
        fi
    fi
    rm -rf "$WORK/deb" "$WORK/root"
    mkdir -p "$WORK/deb"
    (
        cd "$WORK/deb"
        if ! apt-get download -qq -o APT::Sandbox::User=root "cloud-init=$CLOUD_INIT_DEB_VERSION" 2>/dev/null; then
            # Debian's mirrors keep only the newest update of a release.
            echo "check-cloud-init: cloud-init $CLOUD_INIT_DEB_VERSION is gone from the mirror; using the current one" >&2
            apt-get download -qq -o APT::Sandbox::User=root cloud-init
        fi
    )
    dpkg-deb -x "$WORK"/deb/cloud-init_*.deb "$WORK/root"
fi
echo "check-cloud-init: cloud-init $(dpkg-deb -f "$WORK"/deb/cloud-init_*.deb Version 2>/dev/null || echo '(cached)')"

# ---- a venv with what cloudinit.config.schema imports
if [ ! -x "$WORK/venv/bin/python" ] || ! "$WORK/venv/bin/python" -c 'import yaml, jsonschema, jinja2, configobj, requests, jsonpatch' 2>/dev/null; then
    rm -rf "$WORK/venv"
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q \
        "PyYAML==6.0.2" "jsonschema==4.17.3" "Jinja2==3.1.4" "configobj==5.0.9" "requests==2.32.3" "jsonpatch==1.33"
fi

# ---- the user data of every template, stage and parameter set
cargo build --locked -q -p konstacks --bin konstacks
BIN="${CARGO_TARGET_DIR:-target}/debug/konstacks"
OUT="$WORK/user-data"
rm -rf "$OUT" && mkdir -p "$OUT/params"

write() { printf '%s\n' "$2" >"$OUT/params/$1.json"; }
write web-app.default '{}'
write web-app.snapshot '{"app_image": "ghcr.io/acme/shop:1.4.2", "admin_cidr": "198.51.100.7/32"}'
write web-app.command '{"start_command": "echo \"$(id)\" `date` '"'"'q'"'"' ; ${IFS}true # runcmd: [evil] %n ${HOME} \\ é", "pgvector": true, "redis": true, "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f me@laptop"]}'
write web-app.digest '{"app_image": "localhost:5000/acme/shop:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}'
write web-app.version '{"app_image": "ghcr.io/acme/shop:1.4.2", "app_version": "1.4.2-build.7", "app_port": 3000, "pgvector": true, "domain": "shop.example.com", "zone": "example.com", "health_path": "/healthz"}'
write web-app.command-version '{"start_command": "exec ./server --port \"$PORT\" %h %n $$", "app_version": "2026.12.05-rc1", "load_balancer": true}'
write gdpr-saas.default '{}'
write gdpr-saas.snapshot '{"app": {"app_image": "ghcr.io/acme/crm:2.0.0", "pgvector": true}, "dpo_contact": "dpo@acme.example"}'
write gdpr-saas.command '{"app": {"start_command": "exec ./server --listen \"127.0.0.1:$PORT\" -- '"'"'x\"y'"'"'"}, "dpo_contact": "Zoë Ødegård"}'
write gdpr-saas.serving '{"app": {"app_image": "ghcr.io/acme/crm:2.0.0", "domain": "crm.example.eu", "zone": "example.eu", "uploads_bucket": true}}'
write lamp-site.default '{}'
write lamp-site.snapshot '{"site_repo": "https://git.example/site.git"}'
write lamp-site.serving '{"site_repo": "https://git.example/site.git", "domain": "www.example.com", "zone": "example.com", "health_path": "/index.php"}'
write lamp-site.url '{"site_repo": "https://user:t%27ok@git.example:8443/a/site.git?ref=main&x=1#frag"}'
write agency-sites.snapshot '{"clients": [{"name": "bakery", "database": true}, {"name": "dentist", "size": "small"}]}'

for params in "$OUT"/params/*.json; do
    base="$(basename "$params" .json)"
    template="${base%%.*}"
    for stage in dev staging prod; do
        "$BIN" --state-dir "$OUT/state" --sim-latency-ms 0 --no-color --template "$template" --stage "$stage" \
            --params "$params" synth --json >"$OUT/$base.$stage.json"
    done
done

# ---- validate
PYTHONPATH="$WORK/root/usr/lib/python3/dist-packages" "$WORK/venv/bin/python" - "$OUT" <<'PY'
import glob, hashlib, json, os, sys

import yaml
from cloudinit.config.schema import get_schema, validate_cloudconfig_file

out = sys.argv[1]
schema = get_schema()

def properties(node, acc):
    if isinstance(node, dict):
        acc.update(node.get("properties", {}).keys())
        for v in node.values():
            properties(v, acc)
    elif isinstance(node, list):
        for v in node:
            properties(v, acc)
    return acc

known = properties(schema, set())
docs, failures = {}, []
for synth in sorted(glob.glob(os.path.join(out, "*.json"))):
    for r in json.load(open(synth))["resources"]:
        ud = r["fields"].get("user_data")
        if isinstance(ud, str):
            docs.setdefault(ud, f"{os.path.basename(synth)[:-5]}:{r['path']}")
if not docs:
    sys.exit("check-cloud-init: no user data found")
for text, where in sorted(docs.items(), key=lambda kv: kv[1]):
    path = os.path.join(out, hashlib.sha256(text.encode()).hexdigest()[:16] + ".yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    problems = []
    try:
        validate_cloudconfig_file(path, schema)
    except Exception as e:  # SchemaValidationError and friends: report, go on with the rest
        problems.append(f"{type(e).__name__}: {e}")
    body = text.split("\n", 1)[1] if text.startswith("#cloud-config\n") else None
    if body is None:
        problems.append("no #cloud-config header line")
    else:
        as_yaml, as_json = yaml.safe_load(body), json.loads(body)
        if as_yaml != as_json:
            problems.append("YAML 1.1 (PyYAML) and JSON read different documents")
        unknown = sorted(set(as_yaml) - known)
        if unknown:
            problems.append(f"keys unknown to cloud-init's schema: {unknown}")
    status = "ok" if not problems else "FAILED"
    print(f"  {status:6} {where} ({os.path.basename(path)})")
    failures += [f"{where}: {p}" for p in problems]
print(f"check-cloud-init: {len(docs)} distinct user data documents, {len(failures)} problem(s)")
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
PY
