#!/usr/bin/env bash
# Checks the project's style the way CI does: rustfmt, clippy with warnings as errors,
# ShellCheck on every shell script, and the module dependency direction.
#
#   scripts/lint.sh
#
# Needs shellcheck; as root it is installed with apt-get when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$ROOT/scripts/common.sh"
cd "$ROOT"

step "cargo fmt --check"
cargo fmt --all --check || die "formatting differs: run cargo fmt"

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

if ! command -v shellcheck >/dev/null; then
    [[ $EUID -eq 0 ]] || die "shellcheck is missing: install it (apt-get install shellcheck)"
    step "installing shellcheck (apt-get install shellcheck)"
    apt-get install -y -qq shellcheck >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; } \
        || die "cannot install shellcheck"
fi
step "shellcheck"
mapfile -t shell_scripts < <(git ls-files '*.sh' .ci/run)
shellcheck -x "${shell_scripts[@]}"

step "module dependency direction"
python3 "$ROOT/scripts/module_graph.py" --check
