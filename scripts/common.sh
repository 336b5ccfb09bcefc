# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this
# Shared settings for install.sh, scripts/lab.sh and scripts/test.sh. Source it; don't run it.
#
# Defines:
#   ROOT         repository root (absolute)
#   TARGET_DIR   cargo's target dir ($CARGO_TARGET_DIR, relative to ROOT, or ROOT/target)
#   BIN          the release kernel binary
#   VENV         the project virtualenv (ROOT/.venv)
#   KERNEL_NAME  the kernelspec name (rustmeter)
#   PY_PACKAGES  what install.sh pip-installs into the venv
#   PY_MODULES   the import names that make a Python "usable" for this project
#   CHROMIUM     the browser tests/test_browser.py drives (Debian's chromium package)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in
    /*) ;;
    *) TARGET_DIR="$ROOT/$TARGET_DIR" ;;
esac
BIN="$TARGET_DIR/release/rustmeter"
VENV="$ROOT/.venv"
KERNEL_NAME="rustmeter"
# notebook = Notebook 7; playwright drives Chromium in tests/test_browser.py (its own
# browser download is not used: `playwright install` needs network access we may not have);
# nbgrader grades the assignments in notebooks/nbgrader (tests/test_nbgrader.py).
PY_PACKAGES=(jupyterlab notebook jupyter_client jupyter_console nbclient nbformat nbconvert jupyter_kernel_test pytest pexpect ipykernel playwright jupyter-resource-usage nbgrader)
PY_MODULES="jupyterlab, notebook, jupyter_client, jupyter_console, pexpect, nbclient, nbformat, nbconvert, jupyter_kernel_test, pytest, ipykernel, playwright, jupyter_resource_usage, nbgrader"
CHROMIUM="${RUSTMETER_CHROMIUM:-/usr/bin/chromium}"
# The Debian base scripts/class-image.sh makes with debootstrap when no registry is reachable.
DEBIAN_BASE_IMAGE="rustmeter-debian-base:bookworm"

step() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# py_is_usable PYTHON: true when PYTHON runs and imports everything in PY_MODULES.
py_is_usable() {
    [[ -n "${1:-}" ]] && "$1" -c "import $PY_MODULES" >/dev/null 2>&1
}

# project_python: prints the Python the project's Jupyter tooling runs on — the venv's when
# it is usable, else a python3 on PATH that already has everything — or nothing.
project_python() {
    if py_is_usable "$VENV/bin/python"; then
        printf '%s\n' "$VENV/bin/python"
    elif command -v python3 >/dev/null 2>&1 && py_is_usable "$(command -v python3)"; then
        command -v python3
    fi
}

# kernelspec_binary PYTHON: prints argv[0] of the kernelspec KERNEL_NAME as PYTHON's Jupyter
# sees it, or nothing when there is no such kernelspec.
kernelspec_binary() {
    "$1" - "$KERNEL_NAME" 2>/dev/null <<'PY' || true
import sys
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
try:
    spec = KernelSpecManager().get_kernel_spec(sys.argv[1])
except NoSuchKernel:
    sys.exit(0)
print(spec.argv[0])
PY
}

# kernelspec_is_current PYTHON: true when KERNEL_NAME resolves, for PYTHON's Jupyter, to
# this checkout's binary (and that binary exists).
kernelspec_is_current() {
    local got
    [[ -x "$BIN" ]] || return 1
    got="$(kernelspec_binary "$1")"
    [[ -n "$got" ]] || return 1
    [[ "$(realpath -m "$got")" == "$(realpath -m "$BIN")" ]]
}

# use_project_env PYTHON: exports what makes Jupyter, run from PYTHON's environment, prefer
# that environment's kernelspecs over user-level ones (which may point at another checkout).
use_project_env() {
    local py="$1"
    if [[ "$py" == "$VENV/bin/python" ]]; then
        export VIRTUAL_ENV="$VENV"
        export PATH="$VENV/bin:$PATH"
        export JUPYTER_PREFER_ENV_PATH=1
    fi
}

# apt_get_install PACKAGE...: apt-get install, bounded by timeouts, once more after an
# apt-get update when the package lists are stale; quiet; its status says whether it worked.
apt_get_install() {
    timeout 600 apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 \
        || { timeout 300 apt-get update >/dev/null 2>&1 \
             && timeout 600 apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; }
}

# ensure_chromium: makes sure the browser test has Chromium at $CHROMIUM. When it is
# missing and we are root on a Debian-like system, installs the chromium package (bounded
# by a timeout); otherwise, or when that fails, warns: the browser test then skips.
ensure_chromium() {
    [[ -x "$CHROMIUM" ]] && return 0
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        step "installing Chromium for the browser test (apt-get install chromium)"
        if apt_get_install chromium; then
            [[ -x "$CHROMIUM" ]] && return 0
        fi
        warn "could not install Chromium with apt-get: tests/test_browser.py will skip"
    else
        warn "Chromium not found at $CHROMIUM (apt-get install chromium as root, or set" \
             "RUSTMETER_CHROMIUM): tests/test_browser.py will skip"
    fi
    return 0
}
