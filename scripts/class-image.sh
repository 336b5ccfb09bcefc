#!/usr/bin/env bash
# Builds the class image (docs/class-image/Dockerfile) on this machine with Docker, even
# without a container registry or static.rust-lang.org. Owns the build context it hands to
# Docker; the image's contents are the Dockerfile's.
#
#   scripts/class-image.sh [--tag NAME] [--base IMAGE | --debian-base] [--local-toolchain]
#
#   --tag NAME          the image to build (default rustmeter-class:local)
#   --base IMAGE        the Dockerfile's BASE (default: its own, the Jupyter Docker Stacks'
#                       minimal-notebook, pulled from quay.io)
#   --debian-base       BASE is a Debian bookworm image made here from Debian's packages
#                       (debootstrap --variant=minbase, imported as rustmeter-debian-base:bookworm;
#                       made once, about half a minute)
#   --local-toolchain   carry this machine's Rust toolchain (rustc --print sysroot, which
#                       must be 1.95 with rust-src) and target/release/rustmeter (built
#                       when missing) into the build instead of downloading the toolchain
#                       and compiling the kernel inside the image
#
# Run as root: when Docker or debootstrap is missing it installs Debian's docker.io and
# debootstrap, and starts dockerd when no daemon answers. The build uses the host network
# (crates.io and PyPI for install.sh --class; nothing else).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

TAG="rustmeter-class:local"
BASE=""
use_debian=0
local_toolchain=0

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --tag) [[ $# -ge 2 ]] || die "--tag needs a NAME (e.g. --tag rustmeter-class:local)"; TAG="$2"; shift ;;
        --base) [[ $# -ge 2 ]] || die "--base needs an IMAGE (e.g. --base quay.io/jupyter/minimal-notebook:2025-01-06)"; BASE="$2"; shift ;;
        --debian-base) use_debian=1 ;;
        --local-toolchain) local_toolchain=1 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option: $1 (see scripts/class-image.sh --help)" ;;
    esac
    shift
done
[[ -z "$BASE" || $use_debian -eq 0 ]] || die "--base and --debian-base name two bases: give one"

# apt_install PACKAGE...: as root on Debian, installs what is missing (bounded by timeouts).
apt_install() {
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing: $* (install them, e.g. apt-get install $*, as root)"
    fi
    step "installing $* (apt-get install)"
    apt_get_install "$@" || die "apt-get install $* failed"
}

# ensure_docker: a Docker client and a daemon that answers.
ensure_docker() {
    docker info >/dev/null 2>&1 && return 0  # any daemon that answers: local, rootless, remote
    if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
        apt_install docker.io
    fi
    docker info >/dev/null 2>&1 && return 0
    [[ "$(id -u)" -eq 0 ]] || die "no Docker daemon answers, and starting one needs root"
    step "starting dockerd (log: /var/log/rustmeter-dockerd.log)"
    # The daemon outlives this script, so it must not keep anything in the caller's
    # directories: runc writes each `docker exec`'s process file under TMPDIR, and the
    # test command's TMPDIR is removed when it ends (every later exec then fails, 126).
    (cd / && exec setsid -f env -u TMPDIR dockerd >/var/log/rustmeter-dockerd.log 2>&1 </dev/null)
    local _
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    die "dockerd did not answer within 60 s (see /var/log/rustmeter-dockerd.log)"
}

# ensure_debian_base: the Debian image, made from Debian's packages when missing.
ensure_debian_base() {
    docker image inspect "$DEBIAN_BASE_IMAGE" >/dev/null 2>&1 && return 0
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    local root
    root="$(mktemp -d "${TMPDIR:-/tmp}/rustmeter-debian.XXXXXX")"
    step "making $DEBIAN_BASE_IMAGE with debootstrap --variant=minbase bookworm"
    debootstrap --variant=minbase bookworm "$root" >"$root.log" 2>&1 \
        || { rm -rf "$root"; die "debootstrap failed (log: $root.log)"; }
    tar -C "$root" -c . | docker import - "$DEBIAN_BASE_IMAGE" >/dev/null \
        || { rm -rf "$root"; die "docker import of $root failed"; }
    rm -rf "$root" "$root.log"
}

# make_context DIR: the checkout's files as `git status` sees them (tracked, and untracked
# ones not ignored: what you are working on; never target/ or .venv), and with
# --local-toolchain the toolchain and kernel binary in DIR/.image, where the Dockerfile
# looks for them.
make_context() {
    local dir="$1" sysroot
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
        | tar -C "$ROOT" --null --verbatim-files-from -T - --ignore-failed-read -c \
        | tar -C "$dir" -x || die "could not copy the checkout into the build context $dir"
    # This machine's own certificate authorities (e.g. a TLS-inspecting proxy's), so the
    # build reaches crates.io and PyPI the way this machine does.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        mkdir -p "$dir/.image/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt "$dir/.image/ca-certificates/"
    fi
    [[ $local_toolchain -eq 1 ]] || return 0
    sysroot="$(cd "$ROOT" && rustc --print sysroot)" || die "rustc --print sysroot failed"
    [[ -d "$sysroot/lib/rustlib/src/rust/library" ]] \
        || die "$sysroot has no std sources: rustup component add rust-src"
    if [[ ! -x "$ROOT/target/release/rustmeter" ]]; then
        step "building the kernel (cargo build --release)"
        (cd "$ROOT" && cargo build --locked --release -p rustmeter) || die "cargo build failed"
    fi
    mkdir -p "$dir/.image"
    # (a failed cp -al leaves a partial tree, which the real copy must not land inside)
    cp -al "$sysroot" "$dir/.image/toolchain" 2>/dev/null \
        || { rm -rf "$dir/.image/toolchain" && cp -a "$sysroot" "$dir/.image/toolchain"; } \
        || die "could not copy the toolchain $sysroot into the build context"
    cp "$ROOT/target/release/rustmeter" "$dir/.image/rustmeter"
}

ensure_docker
[[ $use_debian -eq 0 ]] || { ensure_debian_base; BASE="$DEBIAN_BASE_IMAGE"; }
context="$(mktemp -d "${TMPDIR:-/tmp}/rustmeter-image.XXXXXX")"
trap 'rm -rf "$context"' EXIT
make_context "$context"
step "building $TAG from ${BASE:-the default base of the Dockerfile}"
build_args=()
[[ -z "$BASE" ]] || build_args+=(--build-arg "BASE=$BASE")
# The classic builder: Debian's docker.io has no buildx plugin.
DOCKER_BUILDKIT=0 docker build --force-rm --network host -f "$context/docs/class-image/Dockerfile" \
    "${build_args[@]}" -t "$TAG" "$context" || die "docker build of $TAG failed"
step "built $TAG ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.1f GB", $1/1e9}'))"
