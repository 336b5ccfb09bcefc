#!/usr/bin/env bash
# Install rustmeter, the Jupyter kernel for Rust: build the release binary, make sure the
# Rust standard library sources are there (for completion), set up a Python environment
# with JupyterLab, and register the kernelspec "rustmeter". Safe to run again: a second
# run rebuilds nothing that is fresh and rewrites no kernelspec that is already current.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=scripts/common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/scripts/common.sh"
# shellcheck source-path=SCRIPTDIR source=scripts/class-install.sh
source "$ROOT/scripts/class-install.sh"

usage() {
    cat <<EOF
usage: ./install.sh [options]

Builds target/release/rustmeter, prepares .venv with JupyterLab, and registers the
Jupyter kernelspec "$KERNEL_NAME".

options:
  --user             register the kernelspec for the current user
                     (default when Jupyter comes from outside the project venv)
  --sys-prefix       register it inside the Python environment that runs Jupyter
                     (default when the project venv .venv is used)
  --prefix PATH      register it under PATH/share/jupyter/kernels
  --no-build         don't run cargo; use the binary that is already built
  --rust-src PATH    Rust standard library sources to point completion at
                     (default: found through rustc/rustup or Debian's rust-src package)
  --env KEY=VALUE    extra environment variable for the kernel (repeatable); every
                     RUSTMETER_* value is checked by the built binary (README, Settings)
  --solutions        let learners reveal exercise solutions with :solution NAME
                     (sets RUSTMETER_SOLUTIONS to notebooks/instructor/solutions/rs)
  --no-prewarm       don't compile the tutorials' dependencies (tokio, full) into the
                     dependency cache after building (rustmeter prewarm; about a minute
                     the first time, seconds when already warm)
  --shared-cache DIR prewarm into DIR and have the kernel read it as a shared, read-only
                     cache tier (RUSTMETER_SHARED_CACHE=DIR in the kernelspec): run as the
                     admin who owns DIR; learners' kernels then reuse what is in it
  --memory-limit SIZE  cap the memory of each kernel's process running the cells
                     (e.g. 500M, 2G; RUSTMETER_MEMORY_LIMIT; needs cgroups, see
                     rustmeter doctor). A cell over it fails; the kernel stays up
  --thread-limit N   cap its threads and processes (e.g. 1000; RUSTMETER_THREAD_LIMIT)
  --cell-timeout TIME stop a cell whose code runs longer (e.g. 30s, 2m;
                     RUSTMETER_CELL_TIMEOUT; default none)
  --class DIR        class mode, for many learner accounts (JupyterHub): copy the kernel
                     and the Rust toolchain into DIR (e.g. /opt/rustmeter), prewarm a
                     read-only crate registry (DIR/cargo) and shared cache (DIR/cache)
                     that kernels use offline, register the kernelspec under DIR/share
                     unless a scope is given (see docs/classroom.md); run as root
  --no-spare         no warm spare kernels (RUSTMETER_SPARE=0): by default each kernel
                     launch starts one warmed-up kernel (about 0.5 GB while it waits,
                     30 min at most) that serves the next launch (a restart, the next
                     notebook) in about a second; --class turns them off
  --no-chromium      don't try to install Chromium (which the browser test drives);
                     by default, as root without Chromium, install.sh runs
                     apt-get install chromium (the test skips when it is missing)
  --uninstall        remove the "$KERNEL_NAME" kernelspec and exit
  -h, --help         show this help

environment:
  CARGO_TARGET_DIR   where cargo builds (default: ./target)
  PYTHON             the python3 to create .venv with (default: python3 on PATH)
EOF
}

# --memory-limit 2G → RUSTMETER_MEMORY_LIMIT=2G in the kernelspec env; the value is
# checked with every other RUSTMETER_* value once the binary is there (check_settings).
limit_env() {
    local flag="$1" value="$2" key
    case "$flag" in
        --memory-limit) key=RUSTMETER_MEMORY_LIMIT ;;
        --thread-limit) key=RUSTMETER_THREAD_LIMIT ;;
        --cell-timeout) key=RUSTMETER_CELL_TIMEOUT ;;
    esac
    extra_env+=("$key=$value")
}

# Checks every RUSTMETER_* value going into the kernelspec (options and --env) with the
# kernel's own parsers, `rustmeter check-setting NAME=VALUE...`, so install.sh accepts
# exactly what the kernel does; stops at a bad value, naming it and what is accepted.
check_settings() {
    local kv out assignments=()
    for kv in ${extra_env[@]+"${extra_env[@]}"}; do
        [[ "$kv" == RUSTMETER_* ]] && assignments+=("$kv")
    done
    [[ ${#assignments[@]} -gt 0 ]] || return 0
    step "checking settings: ${assignments[*]}"
    if out="$("$BIN" check-setting "${assignments[@]}" 2>&1)"; then
        return 0
    fi
    if [[ "$out" == *'unknown command "check-setting"'* ]]; then
        die "$BIN is older than this install.sh and cannot check settings: rebuild it (run ./install.sh without --no-build)"
    fi
    die "bad setting (see ./install.sh --help, and README, section Settings):"$'\n'"${out#rustmeter: }"
}

scope=()
scope_given=0
build=1
uninstall=0
rust_src=""
extra_env=()
prewarm=1
shared_cache=""
class_dir=""
CLASS_PREWARM_ENV=()
chromium=1

while [[ $# -gt 0 ]]; do
    case "$1" in
        --user|--sys-prefix)
            scope=("$1"); scope_given=1 ;;
        --prefix)
            [[ $# -ge 2 ]] || die "--prefix needs a PATH"
            scope=(--prefix "$2"); scope_given=1; shift ;;
        --prefix=*)
            scope=(--prefix "${1#--prefix=}"); scope_given=1 ;;
        --no-build) build=0 ;;
        --rust-src)
            [[ $# -ge 2 ]] || die "--rust-src needs a PATH"
            rust_src="$2"; shift ;;
        --rust-src=*) rust_src="${1#--rust-src=}" ;;
        --env)
            [[ $# -ge 2 && "$2" == *=* ]] || die "--env needs KEY=VALUE"
            extra_env+=("$2"); shift ;;
        --env=*)
            [[ "${1#--env=}" == *=* ]] || die "--env needs KEY=VALUE"
            extra_env+=("${1#--env=}") ;;
        --uninstall) uninstall=1 ;;
        --no-prewarm) prewarm=0 ;;
        --no-chromium) chromium=0 ;;
        --no-spare) extra_env+=("RUSTMETER_SPARE=0") ;;
        --shared-cache)
            [[ $# -ge 2 ]] || die "--shared-cache needs a DIR"
            shared_cache="$2"; shift ;;
        --shared-cache=*) shared_cache="${1#--shared-cache=}" ;;
        --memory-limit|--thread-limit|--cell-timeout)
            [[ $# -ge 2 ]] || die "$1 needs a value (see ./install.sh --help)"
            limit_env "$1" "$2"; shift ;;
        --memory-limit=*|--thread-limit=*|--cell-timeout=*)
            limit_env "${1%%=*}" "${1#*=}" ;;
        --class)
            [[ $# -ge 2 ]] || die "--class needs a DIR"
            class_dir="$2"; shift ;;
        --class=*) class_dir="${1#--class=}" ;;
        --solutions) extra_env+=("RUSTMETER_SOLUTIONS=$ROOT/notebooks/instructor/solutions/rs") ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option: $1 (see ./install.sh --help)" ;;
    esac
    shift
done

cd "$ROOT"

# ---------------------------------------------------------------------------- python
PYTHON_BIN="${PYTHON:-python3}"

# Picks the Python whose Jupyter registers and runs the kernel: the project venv when it
# already has everything, else a python3 on PATH that has everything, else a new venv.
choose_python() {
    if py_is_usable "$VENV/bin/python"; then
        step "reusing Python environment $VENV"
        PY="$VENV/bin/python"
        return
    fi
    command -v "$PYTHON_BIN" >/dev/null 2>&1 \
        || die "$PYTHON_BIN not found: install Python 3 (e.g. apt-get install python3 python3-venv)"
    if [[ ! -d "$VENV" ]] && py_is_usable "$(command -v "$PYTHON_BIN")"; then
        step "using the Jupyter that $(command -v "$PYTHON_BIN") already has (no venv needed)"
        PY="$(command -v "$PYTHON_BIN")"
        return
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        step "creating Python virtualenv $VENV"
        "$PYTHON_BIN" -c 'import venv, ensurepip' >/dev/null 2>&1 \
            || die "$PYTHON_BIN cannot create virtualenvs: install its venv module (e.g. apt-get install python3-venv)"
        rm -rf "$VENV"
        "$PYTHON_BIN" -m venv "$VENV" || die "could not create $VENV with $PYTHON_BIN -m venv"
    else
        step "reusing virtualenv $VENV (some packages missing)"
    fi
    step "installing Python packages into $VENV: ${PY_PACKAGES[*]}"
    "$VENV/bin/python" -m pip install -q "${PY_PACKAGES[@]}" \
        || die "pip install failed: is PyPI reachable? (packages: ${PY_PACKAGES[*]})"
    py_is_usable "$VENV/bin/python" \
        || die "$VENV still cannot import: $PY_MODULES"
    PY="$VENV/bin/python"
}

jupyter() { "$PY" -m jupyter "$@"; }

# ---------------------------------------------------------------------------- uninstall
if [[ $uninstall -eq 1 ]]; then
    PY="$(project_python)"
    if [[ -z "$PY" ]]; then
        command -v jupyter >/dev/null 2>&1 || die "no Jupyter found (neither $VENV nor jupyter on PATH): nothing to uninstall"
        jupyter() { command jupyter "$@"; }
    else
        use_project_env "$PY"
    fi
    step "removing kernelspec $KERNEL_NAME"
    removed=0
    # The name may be registered in several places (user, venv, system): remove them all.
    for _ in 1 2 3 4 5; do
        if jupyter kernelspec remove -y "$KERNEL_NAME" >/dev/null 2>&1; then
            removed=$((removed + 1))
        else
            break
        fi
    done
    if [[ $removed -eq 0 ]]; then
        echo "kernelspec $KERNEL_NAME was not installed"
    else
        echo "removed $removed kernelspec(s) named $KERNEL_NAME"
    fi
    exit 0
fi

# ---------------------------------------------------------------------------- build
if [[ $build -eq 1 ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust from rustup.rs"
    step "building release binary (cargo build --locked --release -p rustmeter)"
    cargo build --locked --release -p rustmeter || die "cargo build failed"
else
    step "skipping build (--no-build)"
fi
[[ -x "$BIN" ]] || die "kernel binary $BIN not found: run ./install.sh without --no-build"
check_settings
# Spares started by an earlier build would never serve this one (their key names the
# binary): free their memory now.
"$BIN" spares stop >/dev/null 2>&1 || true

# ---------------------------------------------------------------------------- prewarm
if [[ -n "$class_dir" ]]; then
    [[ $prewarm -eq 1 ]] || warn "--class with --no-prewarm: $class_dir/cargo stays empty unless it was prewarmed before"
    class_prepare "$class_dir"
fi
if [[ -n "$shared_cache" ]]; then
    mkdir -p "$shared_cache" || die "--shared-cache: cannot create $shared_cache"
    shared_cache="$(cd "$shared_cache" && pwd)"
    extra_env+=("RUSTMETER_SHARED_CACHE=$shared_cache")
fi
if [[ $prewarm -eq 1 ]]; then
    prewarm_args=(prewarm)
    [[ -n "$shared_cache" ]] && prewarm_args+=(--cache "$shared_cache")
    step "prewarming the dependency cache: compiling tokio (features full) and the rustmeter crate" \
         "($BIN ${prewarm_args[*]}; skip with --no-prewarm)"
    prewarm_started=$SECONDS
    if env ${CLASS_PREWARM_ENV[@]+"${CLASS_PREWARM_ENV[@]}"} "$BIN" "${prewarm_args[@]}"; then
        echo "prewarm took $((SECONDS - prewarm_started)) s"
    elif [[ -n "$class_dir" ]]; then
        # A class runs offline (CARGO_NET_OFFLINE): without the prewarmed crates no
        # learner's ':dep tokio' can work, so an install without them is no install.
        die "prewarm failed after $((SECONDS - prewarm_started)) s: class mode needs it (learners' kernels" \
            "are offline); fix what it printed above, then run install.sh --class again"
    else
        warn "prewarm failed after $((SECONDS - prewarm_started)) s (offline?): the first ':dep tokio'" \
             "of a notebook will compile tokio instead; retry later with: $BIN ${prewarm_args[*]}"
    fi
else
    step "skipping the dependency cache prewarm (--no-prewarm)"
fi
[[ -z "$class_dir" ]] || class_finish "$class_dir"

# ---------------------------------------------------------------------------- rust-src
if [[ -n "$rust_src" ]]; then
    [[ -d "$rust_src" ]] || die "--rust-src $rust_src is not a directory"
    rust_src="$(cd "$rust_src" && pwd)"
    step "using Rust standard library sources at $rust_src"
else
    step "checking for Rust standard library sources (rust-src)"
    command -v rustc >/dev/null 2>&1 || die "rustc not found: install Rust from rustup.rs"
    sysroot="$(rustc --print sysroot 2>/dev/null || true)"
    sysroot_src="$sysroot/lib/rustlib/src/rust/library"
    if [[ -n "$sysroot" && -d "$sysroot_src" ]]; then
        echo "found $sysroot_src"
    else
        if command -v rustup >/dev/null 2>&1; then
            step "installing rust-src (rustup component add rust-src)"
            timeout 60 rustup component add rust-src || warn "rustup component add rust-src failed"
        fi
        if [[ -n "$sysroot" && -d "$sysroot_src" ]]; then
            echo "found $sysroot_src"
        else
            # Debian's rust-src / rust-web-src packages put the sources here.
            for candidate in /usr/src/rustc-*/library; do
                if [[ -d "$candidate" ]]; then
                    rust_src="$candidate"
                fi
            done
            if [[ -n "$rust_src" ]]; then
                echo "found $rust_src"
            else
                warn "Rust standard library sources not found: code completion will be limited" \
                     "(install them with 'rustup component add rust-src' or apt-get install rust-src)"
            fi
        fi
    fi
fi

# ---------------------------------------------------------------------------- python env
choose_python
use_project_env "$PY"

if [[ $scope_given -eq 0 ]]; then
    if [[ "$PY" == "$VENV/bin/python" ]]; then
        scope=(--sys-prefix)
    else
        scope=(--user)
    fi
fi

# ---------------------------------------------------------------------------- chromium
[[ $chromium -eq 1 ]] && ensure_chromium

# ---------------------------------------------------------------------------- kernelspec
step "writing kernelspec"
spec_dir="$(mktemp -d "${TMPDIR:-/tmp}/rustmeter-kernelspec.XXXXXX")"
# mktemp makes it 0700 and `kernelspec install` copies the mode: a system-wide or class
# kernelspec must be readable by every user.
chmod 755 "$spec_dir"
trap 'rm -rf "$spec_dir"' EXIT

spec_args=(install-kernelspec --dir "$spec_dir")
[[ -n "$rust_src" ]] && spec_args+=(--rust-src "$rust_src")
for kv in ${extra_env[@]+"${extra_env[@]}"}; do
    spec_args+=(--env "$kv")
done
# The binary writes kernel.json (and the logos): the one place its contents are defined.
"$BIN" "${spec_args[@]}" || die "$BIN install-kernelspec failed (its error is above)"
echo "written by $BIN install-kernelspec"

# Where `jupyter kernelspec install` will put it, for the given scope.
dest="$("$PY" - "$KERNEL_NAME" "${scope[@]}" <<'PY'
import os, sys
from jupyter_core.paths import jupyter_data_dir, ENV_JUPYTER_PATH
name, flag, *rest = sys.argv[1:]
if flag == "--user":
    base = jupyter_data_dir()
elif flag == "--sys-prefix":
    base = ENV_JUPYTER_PATH[0]
else:
    base = os.path.join(os.path.abspath(rest[0]), "share", "jupyter")
print(os.path.join(base, "kernels", name))
PY
)"

if [[ -d "$dest" ]] && diff -rq "$spec_dir" "$dest" >/dev/null 2>&1 \
    && [[ "$(stat -c %a "$dest")" == 755 ]]; then
    step "kernelspec $KERNEL_NAME is already up to date at $dest"
else
    step "registering kernelspec $KERNEL_NAME (jupyter kernelspec install ${scope[*]})"
    jupyter kernelspec install "$spec_dir" --name "$KERNEL_NAME" --replace "${scope[@]}" \
        || die "jupyter kernelspec install failed"
fi

# Which one Jupyter will actually pick: another same-named kernelspec may shadow ours.
seen="$(kernelspec_binary "$PY")"
if [[ -z "$seen" ]]; then
    warn "Jupyter ($PY) does not find kernelspec $KERNEL_NAME after installing it with ${scope[*]}"
elif [[ "$(realpath -m "$seen")" != "$(realpath -m "$BIN")" ]]; then
    warn "Jupyter ($PY) resolves kernelspec $KERNEL_NAME to '$seen', not $BIN;" \
         "another kernelspec named $KERNEL_NAME shadows the one just installed (see: jupyter kernelspec list)"
fi

step "done"
if [[ "$PY" == "$VENV/bin/python" ]]; then
    echo "start JupyterLab with: scripts/lab.sh   (or: $VENV/bin/jupyter lab)"
else
    echo "start JupyterLab with: jupyter lab"
fi
echo "run the tests with:    scripts/test.sh"
