#!/usr/bin/env bash
# Run all of rustmeter's tests: the style checks (scripts/lint.sh), the Rust tests
# (cargo test) and the Python/Jupyter tests (pytest tests/), installing first when the binary, the Python environment or the
# kernelspec is missing. Exits non-zero when either suite fails.
#
#   scripts/test.sh [--no-build] [--no-lint] [--no-cargo-test] [--no-pytest] [--no-class-image]
#                   [-- pytest args...]
#
#   --no-build        don't run cargo build (use the binary as it is)
#   --no-lint         skip scripts/lint.sh (rustfmt, clippy, shellcheck, module direction)
#   --no-cargo-test   skip `cargo test`
#   --no-pytest       skip pytest
#   --no-class-image  don't build the class image (tests/test_class_image.py then runs only
#                     when an image is already there)
#   after --, arguments go to pytest (e.g. -- -k smoke -x)
#
# Before pytest it builds the class image from this checkout (scripts/class-image.sh
# --debian-base --local-toolchain, about 4 minutes; as root it installs Debian's docker.io
# and starts dockerd when missing, and leaves that daemon running); when Docker cannot run
# here it says why and tests/test_class_image.py skips.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

build=1
lint=1
cargo_tests=1
py_tests=1
class_image=1
pytest_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) build=0 ;;
        --no-lint) lint=0 ;;
        --no-cargo-test) cargo_tests=0 ;;
        --no-pytest) py_tests=0 ;;
        --no-class-image) class_image=0 ;;
        -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        --) shift; pytest_args=("$@"); break ;;
        *) die "unknown option: $1 (see scripts/test.sh --help)" ;;
    esac
    shift
done

cd "$ROOT"
started=$SECONDS

# ---------------------------------------------------------------------------- install
PY="$(project_python)"
if [[ ! -x "$BIN" || -z "$PY" ]] || ! kernelspec_is_current "$PY"; then
    step "rustmeter is not fully installed (binary, Python environment or kernelspec missing): running ./install.sh"
    # The tests use caches of their own: no prewarm of the user's cache here.
    install_args=(--no-prewarm)
    [[ $build -eq 1 ]] || install_args+=(--no-build)
    "$ROOT/install.sh" ${install_args[@]+"${install_args[@]}"}
    PY="$(project_python)"
    [[ -n "$PY" ]] || die "install.sh finished but no usable Python environment was found"
    kernelspec_is_current "$PY" || die "install.sh finished but kernelspec $KERNEL_NAME does not point at $BIN"
elif [[ $build -eq 1 ]]; then
    # Already installed: just make sure the binary is fresh (a no-op when it is).
    step "building release binary (cargo build --locked --release -p rustmeter)"
    cargo build --locked --release -p rustmeter
fi
use_project_env "$PY"
export RUSTMETER_BIN="$BIN"
[[ $py_tests -eq 1 ]] && ensure_chromium  # for tests/test_browser.py; skips when it can't

# The tests' folders must pass the kernel's own check (no ancestor another account could
# write in: cargo would read a .cargo/config.toml planted there), so not /tmp; yet other
# accounts must be able to traverse them (the limits and hub tests hand them folders).
# Short names too: tests and clients bind Unix sockets under TMPDIR, and a socket path
# has 107 bytes (the kernel copes with deep folders; jupyter_client's ipc endpoints do not).
# safe_base DIR: DIR when we can write in it, and it and its ancestors (symlinks resolved)
# are owned by us or root, not group/other-writable, and (as root, whose tests run kernels
# as other accounts) traversable by others.
safe_base() {
    local dir mode owner open_to_others=0
    [[ "$(id -u)" -eq 0 ]] && open_to_others=1
    [[ -n "$1" && -d "$1" && -w "$1" && ${#1} -le 24 ]] || return 1
    dir="$(realpath -e "$1")" || return 1
    while :; do
        read -r mode owner < <(stat -c '%a %u' "$dir") || return 1
        [[ "$owner" == 0 || "$owner" == "$(id -u)" ]] || return 1
        (( (8#$mode & 8#022) == 0 )) || return 1
        (( open_to_others == 0 || (8#$mode & 8#001) != 0 )) || return 1
        [[ "$dir" == / ]] && return 0
        dir="$(dirname "$dir")"
    done
}
tmp_base=""
for candidate in "${TMPDIR:-}" /var/lib "$HOME/.cache"; do
    if safe_base "$candidate"; then tmp_base="$candidate"; break; fi
done
[[ -n "$tmp_base" ]] || die "no folder for the tests' files: it must be writable by you, at most 24 characters long, and it and every folder above it owned by you or root, writable by nobody else (kernels refuse to build under a folder another account can write in) and, as root, open to other accounts (tests run kernels as them). Tried \$TMPDIR, /var/lib and ~/.cache; set TMPDIR to such a folder"
logs="$(mktemp -d "$tmp_base/rmt.XXXXXX")"
trap 'rm -rf "$logs"' EXIT

# ---------------------------------------------------------------------------- fresh state
# The tests start from nothing this repository does not create, so a machine that earlier
# runs prepared cannot hide a missing set-up step: a new HOME (dependency caches, labels,
# Jupyter's runtime files, spares), a new TMPDIR (kernels' work folders) and a new class
# install for the hub test, all removed or replaced by the next run. The toolchain stays
# where rustup put it.
export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
[[ -z "${PYENV_ROOT:-}" && -d "$HOME/.pyenv" ]] && export PYENV_ROOT="$HOME/.pyenv"
mkdir -p "$logs/home" "$logs/t"
# Other accounts may traverse TMPDIR (tests hand them folders in it) but not write in it;
# HOME is private.
chmod 755 "$logs" "$logs/t" && chmod 700 "$logs/home"
export HOME="$logs/home" TMPDIR="$logs/t"
unset XDG_CACHE_HOME XDG_DATA_HOME XDG_CONFIG_HOME XDG_RUNTIME_DIR JUPYTER_RUNTIME_DIR JUPYTER_DATA_DIR
# A kernelspec registered with --user lived in the old HOME: register it in the environment.
if ! kernelspec_is_current "$PY"; then
    step "registering the kernelspec in the test environment (./install.sh --no-build --no-prewarm)"
    "$ROOT/install.sh" --no-build --no-prewarm
    kernelspec_is_current "$PY" || die "the kernelspec $KERNEL_NAME does not point at $BIN for $PY"
fi
if [[ -z "${RUSTMETER_CLASS_DIR:-}" && "$(id -u)" -eq 0 ]]; then
    # The hub test's class install (scripts/class-hub.sh setup), made anew by every run.
    export RUSTMETER_CLASS_DIR=/opt/rustmeter-test/class
    rm -rf "$RUSTMETER_CLASS_DIR"
fi

# sum_of WORDS-REGEX: adds up the N of every "N <word>" on stdin ("3 passed", "1 failed").
sum_of() {
    awk -v re="^($1)[;,.]?$" '{ for (i = 2; i <= NF; i++) if ($i ~ re && $(i-1) ~ /^[0-9]+$/) s += $(i-1) }
                              END { print s + 0 }'
}
passed=0 failed=0 skipped=0

# ---------------------------------------------------------------------------- lint
lint_status="skipped"
if [[ $lint -eq 1 ]]; then
    if "$ROOT/scripts/lint.sh"; then
        lint_status="PASS"
    else
        lint_status="FAIL (scripts/lint.sh printed what differs)"
        failed=$((failed + 1))
    fi
fi

# ---------------------------------------------------------------------------- cargo test
cargo_status="skipped"
if [[ $cargo_tests -eq 1 ]]; then
    step "running Rust tests (cargo test --release --locked --no-fail-fast)"
    set +e
    # --no-fail-fast: one failing test binary must not hide the others' results.
    cargo test --release --locked --no-fail-fast 2>&1 | tee "$logs/cargo.log"
    rc=${PIPESTATUS[0]}
    set -e
    # cargo prints "test result: ok. 3 passed; 0 failed; 1 ignored; ..." per test binary.
    results="$(grep -E '^test result:' "$logs/cargo.log" || true)"
    c_passed=$(sum_of passed <<<"$results")
    c_failed=$(sum_of failed <<<"$results")
    c_ignored=$(sum_of ignored <<<"$results")
    passed=$((passed + c_passed)); failed=$((failed + c_failed)); skipped=$((skipped + c_ignored))
    if [[ $rc -eq 0 ]]; then
        cargo_status="PASS ($c_passed passed, $c_failed failed, $c_ignored ignored)"
    else
        cargo_status="FAIL (exit $rc; $c_passed passed, $c_failed failed, $c_ignored ignored)"
        [[ $c_failed -gt 0 ]] || failed=$((failed + 1)) # a build failure counts as one failure
    fi
fi

# ---------------------------------------------------------------------------- pytest
# build_class_image: the class image from this checkout, for tests/test_class_image.py.
# Where Docker cannot run (not root and no daemon, a prerequisite only root could install,
# or a daemon that will not start) it says why and the test skips; where Docker runs, a
# failed build fails that test, its log kept in test-artifacts/.
build_class_image() {
    local log="$ROOT/test-artifacts/class-image-build.log" began=$SECONDS
    local tag="${RUSTMETER_CLASS_IMAGE:-rustmeter-class:local}"
    if [[ "$(id -u)" -ne 0 ]]; then
        if ! docker info >/dev/null 2>&1; then
            warn "no Docker daemon answers, and installing or starting one needs root:" \
                 "tests/test_class_image.py will skip"
            return 0
        fi
        if ! command -v debootstrap >/dev/null 2>&1 \
            && ! docker image inspect "$DEBIAN_BASE_IMAGE" >/dev/null 2>&1; then
            warn "the Debian base image needs debootstrap, which only root can install here:" \
                 "tests/test_class_image.py will skip"
            return 0
        fi
    elif ! command -v apt-get >/dev/null 2>&1 \
        && ! { command -v dockerd >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1; }; then
        warn "no apt-get to install Docker and debootstrap: tests/test_class_image.py will skip"
        return 0
    fi
    mkdir -p "$ROOT/test-artifacts"
    step "building the class image $tag (scripts/class-image.sh --debian-base --local-toolchain; log: $log)"
    if "$ROOT/scripts/class-image.sh" --debian-base --local-toolchain --tag "$tag" >"$log" 2>&1; then
        step "built the class image in $((SECONDS - began)) s"
    elif docker info >/dev/null 2>&1; then
        export RUSTMETER_CLASS_IMAGE_BUILD_FAILED="$log"
        warn "the class image did not build after $((SECONDS - began)) s (log: $log):" \
             "tests/test_class_image.py will fail"
    else
        warn "Docker cannot run on this machine ($(tail -n 1 "$log")): tests/test_class_image.py will skip"
    fi
}

# wants_class_image: the class-image tests are in this run (all tests, not narrowed with
# -k or -m, or named).
wants_class_image() {
    [[ $class_image -eq 1 ]] || return 1
    local arg
    for arg in ${pytest_args[@]+"${pytest_args[@]}"}; do
        [[ "$arg" == *test_class_image* ]] && return 0
    done
    [[ ${#targets[@]} -gt 0 ]] || return 1
    for arg in ${pytest_args[@]+"${pytest_args[@]}"}; do
        [[ "$arg" == -k* || "$arg" == -m* ]] && return 1
    done
    return 0
}

pytest_status="skipped"
if [[ $py_tests -eq 1 ]]; then
    # tests/ unless the arguments after -- name test files or folders themselves.
    targets=(tests/)
    for arg in ${pytest_args[@]+"${pytest_args[@]}"}; do
        if [[ "$arg" != -* && -e "${arg%%::*}" ]]; then
            targets=()
            break
        fi
    done
    if wants_class_image; then
        build_class_image
    fi
    step "running Jupyter tests ($PY -m pytest -v ${targets[*]-}${pytest_args[*]+ ${pytest_args[*]}})"
    set +e
    # --durations: the 25 slowest steps, to see where CI's 60-minute budget goes.
    "$PY" -m pytest -v -rs --durations=25 ${targets[@]+"${targets[@]}"} ${pytest_args[@]+"${pytest_args[@]}"} 2>&1 | tee "$logs/pytest.log"
    rc=${PIPESTATUS[0]}
    set -e
    # pytest's closing line: "==== 5 passed, 1 failed, 2 skipped in 12.3s ====".
    last="$(grep -E '^=+ .* in [0-9.]+s' "$logs/pytest.log" | tail -n 1 || true)"
    p_passed=$(sum_of passed <<<"$last")
    p_failed=$(sum_of 'failed|errors?' <<<"$last")
    p_skipped=$(sum_of skipped <<<"$last")
    passed=$((passed + p_passed)); failed=$((failed + p_failed)); skipped=$((skipped + p_skipped))
    if [[ $rc -eq 0 ]]; then
        pytest_status="PASS ($p_passed passed, $p_failed failed, $p_skipped skipped)"
    else
        pytest_status="FAIL (exit $rc; $p_passed passed, $p_failed failed, $p_skipped skipped)"
        [[ $p_failed -gt 0 ]] || failed=$((failed + 1)) # no tests collected / internal error
    fi
fi

# ---------------------------------------------------------------------------- summary
echo
echo "==> summary ($((SECONDS - started))s)"
echo "    lint:       $lint_status"
echo "    cargo test: $cargo_status"
echo "    pytest:     $pytest_status"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[[ "$lint_status" != FAIL* && "$cargo_status" != FAIL* && "$pytest_status" != FAIL* ]]
