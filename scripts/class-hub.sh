#!/usr/bin/env bash
# A rustmeter class on one machine with JupyterHub: the commands docs/classroom.md gives
# an instructor, and the ones tests/test_hub.py runs. Run as root.
#
#   scripts/class-hub.sh setup [install.sh options]   JupyterHub + proxy + install.sh --class
#   scripts/class-hub.sh add-learners NAME...         system accounts, homes 0700
#   scripts/class-hub.sh start NAME...                the hub, in the foreground, for NAMEs
#   scripts/class-hub.sh remove-learners NAME...      delete the accounts and their homes
#
# Options after `setup` go to install.sh: e.g. --memory-limit 2G --thread-limit 12000 cap
# each learner's kernel (see docs/classroom.md); setup then also has install.sh point the
# kernels at a cgroup per learner, which add-learners creates and hands to the learner.
#
# environment: RUSTMETER_CLASS_DIR (default /opt/rustmeter), RUSTMETER_HUB_PORT (8000),
# RUSTMETER_HUB_IP (127.0.0.1), RUSTMETER_CLASS_PYTHON (the python3 that DIR/venv, where
# the hub and the learners' servers run, is made from; all users must be able to run it;
# default /usr/bin/python3), PYTHON (the Python install.sh registers the kernelspec with;
# default the project's .venv), RUSTMETER_CLASS_CGROUP (where the learners' cgroups go:
# `root`, the default, directly under each cgroup hierarchy's root; `here`, under this
# shell's own cgroups, for a container that must stay inside its own).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

CLASS_DIR="${RUSTMETER_CLASS_DIR:-/opt/rustmeter}"
HUB_DIR="$CLASS_DIR/hub"
CHP_VERSION="4"   # configurable-http-proxy major version JupyterHub 5/6 work with

usage() {
    sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# The Python environment the hub and the learners' servers run from: DIR/venv, made from a
# Python whose files every account can read (a pyenv or venv under /root is not).
CLASS_VENV="$CLASS_DIR/venv"
BASE_PYTHON="${RUSTMETER_CLASS_PYTHON:-/usr/bin/python3}"
# nbgrader: graded assignments (notebooks/nbgrader, docs/classroom.md); with it in the
# learners' environment their servers get nbgrader's assignment list and validate button.
HUB_PACKAGES=(jupyterhub jupyterlab nbgrader)
HUB_MODULES="jupyterhub, jupyterlab, nbgrader"

hub_python() {
    local py="${PYTHON:-}"
    [[ -n "$py" ]] || py="$(project_python)"
    [[ -n "$py" ]] || die "no Python with Jupyter found: run ./install.sh first (it creates .venv) or set PYTHON"
    printf '%s\n' "$py"
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "$1 must run as root (it manages system users and runs servers as them)"
}

valid_name() {
    [[ "$1" =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || die "not a valid learner account name: '$1' (lowercase letters, digits, - and _)"
}

# ---------------------------------------------------------------------------- cgroups
# Memory and thread caps (install.sh --memory-limit/--thread-limit) need a cgroup each
# learner may create its kernels' groups in. setup records one base directory per
# controller in $CGROUP_BASES; add-learners makes BASE/NAME and chowns it to the learner.
CGROUP_BASES="$HUB_DIR/cgroup-bases"

# Prints "MOUNT OWN-PATH" of the cgroup v1 hierarchy carrying controller $1, if mounted.
cgroup_v1() {
    local ctl="$1" mount root path
    read -r root mount < <(awk -v c="$ctl" '{
        for (i = 7; i <= NF; i++) if ($i == "-") {
            if ($(i + 1) == "cgroup" && ("," $(i + 3) ",") ~ ("," c ",")) { print $4, $5; exit }
            break
        } }' /proc/self/mountinfo) || return 1
    [[ -n "$mount" ]] || return 1
    path="$(awk -F: -v c="$ctl" '("," $2 ",") ~ ("," c ",") { print $3; exit }' /proc/self/cgroup)"
    [[ "$root" == "/" ]] || path="${path#"$root"}"
    printf '%s %s\n' "$mount" "${path:-/}"
}

# Writes $CGROUP_BASES and prints the RUSTMETER_CGROUP_PARENT value, or nothing (with a
# warning) where cgroup v1 memory/pids are not mounted.
record_cgroup_bases() {
    local where="${RUSTMETER_CLASS_CGROUP:-root}" ctl mount own base bases=()
    [[ "$where" == root || "$where" == here ]] \
        || die "RUSTMETER_CLASS_CGROUP must be 'root' or 'here', got: $where"
    for ctl in memory pids; do
        read -r mount own < <(cgroup_v1 "$ctl") || { mount=""; own=""; }
        if [[ -z "$mount" ]]; then
            warn "no cgroup v1 '$ctl' hierarchy mounted: learners' kernels get no $ctl cap (cgroup v2: delegate by hand, see docs/classroom.md)"
            continue
        fi
        [[ "$where" == here ]] || own="/"
        base="${mount}${own%/}/rustmeter-class"
        mkdir -p "$base" || die "cannot create the class cgroup $base"
        bases+=("$base")
    done
    printf '%s\n' ${bases[@]+"${bases[@]}"} >"$CGROUP_BASES"
    local parent=""
    for base in ${bases[@]+"${bases[@]}"}; do parent+="${parent:+:}$base/{user}"; done
    printf '%s\n' "$parent"
}

# The `class-admin` service's token (scripts, the hub test), root-only: made here, part of
# the install, so it exists before the hub first starts; an existing one is kept.
make_admin_token() {
    local token="$HUB_DIR/admin-token"
    [[ -s "$token" ]] && return 0
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$token.new" && mv -f "$token.new" "$token") \
        || die "cannot write the hub's admin token $token"
}

cmd_setup() {
    need_root setup
    local py
    py="$(hub_python)"
    mkdir -p "$CLASS_DIR" "$HUB_DIR" && chmod 755 "$CLASS_DIR" && chmod 700 "$HUB_DIR"
    make_admin_token
    # Also when the venv exists but lacks a package added since it was made.
    if ! "$CLASS_VENV/bin/python" -c "import $HUB_MODULES" >/dev/null 2>&1; then
        [[ -x "$BASE_PYTHON" ]] || die "$BASE_PYTHON not found: set RUSTMETER_CLASS_PYTHON to a python3 all users can run"
        step "creating $CLASS_VENV with $BASE_PYTHON and installing ${HUB_PACKAGES[*]} (pip)"
        "$BASE_PYTHON" -m venv "$CLASS_VENV" \
            || die "$BASE_PYTHON cannot create a virtualenv (Debian/Ubuntu: apt-get install python3-venv)"
        "$CLASS_VENV/bin/python" -m pip install -q "${HUB_PACKAGES[@]}" \
            || die "pip install ${HUB_PACKAGES[*]} failed: is PyPI reachable?"
    fi
    chmod -R a+rX,go-w "$CLASS_VENV"
    runuser -u nobody -- "$CLASS_VENV/bin/python" -c "import $HUB_MODULES" \
        || die "other users cannot run $CLASS_VENV/bin/python: its Python ($(realpath "$CLASS_VENV/bin/python")) must be readable by all; set RUSTMETER_CLASS_PYTHON"
    if [[ ! -x "$HUB_DIR/node_modules/.bin/configurable-http-proxy" ]]; then
        command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js (e.g. apt-get install nodejs npm)"
        step "installing configurable-http-proxy@$CHP_VERSION into $HUB_DIR (npm)"
        npm install --silent --no-fund --no-audit --prefix "$HUB_DIR" "configurable-http-proxy@$CHP_VERSION" \
            || die "npm install configurable-http-proxy failed: is the npm registry reachable?"
    fi
    local args=("$@") parent
    if [[ " $* " == *" --memory-limit"* || " $* " == *" --thread-limit"* ]]; then
        parent="$(record_cgroup_bases)"
        [[ -z "$parent" ]] || args+=(--env "RUSTMETER_CGROUP_PARENT=$parent")
    else
        rm -f "$CGROUP_BASES"
    fi
    step "installing rustmeter in class mode into $CLASS_DIR (./install.sh --class $CLASS_DIR ${args[*]})"
    PYTHON="$py" "$ROOT/install.sh" --class "$CLASS_DIR" "${args[@]}"
}

# The learner's own cgroup in every recorded base (none when setup set no caps).
learner_cgroups() {
    [[ -f "$CGROUP_BASES" ]] || return 0
    local base
    while read -r base; do
        [[ -n "$base" ]] && printf '%s/%s\n' "$base" "$1"
    done <"$CGROUP_BASES"
}

cmd_add_learners() {
    need_root add-learners
    [[ $# -gt 0 ]] || die "add-learners needs at least one NAME"
    local name home
    for name in "$@"; do
        valid_name "$name"
        if id "$name" >/dev/null 2>&1; then
            echo "learner $name exists"
        else
            useradd --create-home --shell /bin/bash --user-group "$name" || die "useradd $name failed"
            echo "created learner $name"
        fi
        home="$(getent passwd "$name" | cut -d: -f6)"
        # Some distributions create homes 0755: a learner must not read another's work.
        chmod 700 "$home" || die "cannot make $home private"
        # Delegated to the learner: their kernels make their capped groups inside it.
        local group
        while read -r group; do
            [[ -n "$group" ]] || continue
            { mkdir -p "$group" && chown -R "$name:" "$group"; } || die "cannot delegate cgroup $group to $name"
        done < <(learner_cgroups "$name")
    done
}

cmd_remove_learners() {
    need_root remove-learners
    [[ $# -gt 0 ]] || die "remove-learners needs at least one NAME"
    local name uid failed=0
    for name in "$@"; do
        valid_name "$name"
        if ! id "$name" >/dev/null 2>&1; then
            echo "learner $name does not exist"
            continue
        fi
        uid="$(id -u "$name")"
        # userdel refuses while the account still runs processes (a server stopping).
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            userdel --remove "$name" 2>/dev/null && break
            sleep 1
        done
        if id "$name" >/dev/null 2>&1; then
            warn "could not remove $name: processes still running? (ps -u $name)"
            failed=1
        else
            # Kernels work in the learner's home (removed above); a learner whose home was
            # unusable fell back to a private folder in /tmp: remove it before the uid is
            # given to someone else (rustmeter-UID: earlier versions' folder).
            rm -rf "${TMPDIR:-/tmp}/rustmeter-$uid-cache" "${TMPDIR:-/tmp}/rustmeter-$uid"
            # Kernels remove their own groups; one killed with its kernel is left empty.
            local group
            while read -r group; do
                [[ -d "$group" ]] || continue
                find "$group" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null
                rmdir "$group" 2>/dev/null || warn "cgroup $group is still in use: remove it once its processes end"
            done < <(learner_cgroups "$name")
            echo "removed learner $name"
        fi
    done
    return $failed
}

cmd_start() {
    need_root start
    [[ $# -gt 0 ]] || die "start needs the learners' account NAMEs"
    local name learners="" py
    for name in "$@"; do
        valid_name "$name"
        id "$name" >/dev/null 2>&1 || die "no system account $name: run add-learners first"
        learners+="${learners:+,}$name"
    done
    [[ -f "$CLASS_DIR/share/jupyter/kernels/$KERNEL_NAME/kernel.json" ]] \
        || die "no class kernelspec in $CLASS_DIR: run '$0 setup' first"
    [[ -x "$HUB_DIR/node_modules/.bin/configurable-http-proxy" ]] \
        || die "configurable-http-proxy missing in $HUB_DIR: run '$0 setup' first"
    [[ -x "$CLASS_VENV/bin/jupyterhub-singleuser" ]] || die "no JupyterHub in $CLASS_VENV: run '$0 setup' first"
    [[ -s "$HUB_DIR/admin-token" ]] || die "no admin token in $HUB_DIR: run '$0 setup' first"
    py="$CLASS_VENV/bin/python"
    export RUSTMETER_CLASS_DIR="$CLASS_DIR" RUSTMETER_HUB_LEARNERS="$learners"
    export RUSTMETER_HUB_PORT="${RUSTMETER_HUB_PORT:-8000}"
    cd "$HUB_DIR"
    step "JupyterHub on http://${RUSTMETER_HUB_IP:-127.0.0.1}:$RUSTMETER_HUB_PORT for $learners (Ctrl-C stops it and the learners' servers)"
    exec "$py" -m jupyterhub -f "$ROOT/scripts/jupyterhub_config.py"
}

[[ $# -gt 0 ]] || { usage; exit 2; }
command="$1"
shift
case "$command" in
    setup) cmd_setup "$@" ;;
    add-learners) cmd_add_learners "$@" ;;
    remove-learners) cmd_remove_learners "$@" ;;
    start) cmd_start "$@" ;;
    -h|--help|help) usage ;;
    *) die "unknown command: $command (setup, add-learners, start, remove-learners)" ;;
esac
