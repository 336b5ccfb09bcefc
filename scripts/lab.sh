#!/usr/bin/env bash
# Start JupyterLab on notebooks/ with the rustmeter kernel, installing first if needed.
#   scripts/lab.sh [--no-browser] [--port N] [other jupyter lab options...]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

case "${1:-}" in
    -h|--help)
        echo "usage: scripts/lab.sh [--no-browser] [jupyter lab options...]"
        echo "Runs ./install.sh when the binary, the Python environment or the kernelspec is missing,"
        echo "then JupyterLab on notebooks/, listening on 127.0.0.1."
        exit 0 ;;
esac

cd "$ROOT"
PY="$(project_python)"
if [[ ! -x "$BIN" || -z "$PY" ]] || ! kernelspec_is_current "$PY"; then
    step "rustmeter is not fully installed: running ./install.sh"
    install_args=()
    [[ -x "$BIN" ]] && install_args+=(--no-build) # built already: only the environment is missing
    "$ROOT/install.sh" ${install_args[@]+"${install_args[@]}"}
    PY="$(project_python)"
    [[ -n "$PY" ]] || die "install.sh finished but no usable Jupyter environment was found"
else
    # Installed: rebuild if the sources changed since (a no-op when the binary is fresh).
    step "building release binary (cargo build --locked --release -p rustmeter)"
    cargo build --locked --release -p rustmeter
fi
use_project_env "$PY"

lab_args=(--ip 127.0.0.1 --notebook-dir "$ROOT/notebooks")
[[ $EUID -ne 0 ]] || lab_args+=(--allow-root) # Jupyter refuses root without it (containers, CI)

# Open the first tutorial unless the caller named what to open.
welcome="$ROOT/notebooks/01-welcome.ipynb"
has_path=0
for arg in "$@"; do
    if [[ "$arg" == *.ipynb ]]; then has_path=1; fi
done
if [[ $has_path == 0 && -f "$welcome" ]]; then lab_args+=("$welcome"); fi
step "starting JupyterLab on $ROOT/notebooks"
exec "$PY" -m jupyter lab "${lab_args[@]}" "$@"
