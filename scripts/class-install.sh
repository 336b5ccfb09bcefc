# shellcheck shell=bash disable=SC2034  # sets variables install.sh reads
# install.sh's class mode (--class DIR): one kernel install that every learner account on a
# multi-user machine (JupyterHub) can use. Source it from install.sh after BIN is known;
# don't run it. Owns the layout of DIR; must not register anything (install.sh does).
#
#   DIR/bin/rustmeter     a copy of the kernel binary (learners cannot read /root or a
#                         build tree in someone's home)
#   DIR/toolchain         a copy of the active Rust toolchain (hard links when on the same
#                         filesystem): real cargo/rustc, std sources under lib/rustlib/src.
#                         Cell libraries carry a RUNPATH into it, so it must stay readable.
#   DIR/cargo             CARGO_HOME for every kernel, read-only for learners: the crate
#                         index and sources that prewarm downloaded, used offline
#   DIR/cache             the shared, read-only dependency cache tier (compiled crates)
#   DIR/share/jupyter     the kernelspec, unless --prefix/--user/--sys-prefix says otherwise
#   DIR/python            rustmeter_login_spare, the learners' servers' extension that warms
#                         one kernel per learner at login (scripts/rustmeter_login_spare.py)
#   DIR/etc/jupyter       jupyter_server_config.d/ enabling it (the class hub puts DIR/python
#                         on PYTHONPATH and DIR/etc/jupyter on JUPYTER_CONFIG_PATH)
#
# The kernelspec's environment puts DIR/toolchain/bin first on PATH, sets CARGO_HOME,
# CARGO_NET_OFFLINE=true (a class never waits on crates.io; the kernel refuses `:dep` of a
# crate that was never downloaded, naming the ones that were) and RUSTMETER_SHARED_CACHE.

# class_prepare DIR: lays out DIR and sets BIN, rust_src, shared_cache, scope, extra_env
# and CLASS_PREWARM_ENV (the environment prewarm must run with) for install.sh.
class_prepare() {
    local dir="$1" sysroot
    [[ "$dir" == /* ]] || die "--class needs an absolute DIR (learners' kernels read it), got: $dir"
    [[ $(id -u) -eq 0 ]] || warn "--class as $(id -un), not root: learners can use $dir only if they can read it"
    mkdir -p "$dir/bin" "$dir/cargo" "$dir/cache" || die "--class: cannot create folders in $dir"

    if ! cmp -s "$BIN" "$dir/bin/rustmeter"; then
        step "class mode: copying the kernel binary to $dir/bin/rustmeter"
        { install -m 0755 "$BIN" "$dir/bin/rustmeter.new" && mv -f "$dir/bin/rustmeter.new" "$dir/bin/rustmeter"; } \
            || die "--class: cannot copy $BIN to $dir/bin"
    fi
    BIN="$dir/bin/rustmeter"

    command -v rustc >/dev/null 2>&1 || die "rustc not found: class mode copies the active Rust toolchain"
    sysroot="$(rustc --print sysroot)" || die "rustc --print sysroot failed"
    if [[ ! -x "$dir/toolchain/bin/rustc" ]] \
        || [[ "$("$dir/toolchain/bin/rustc" -vV 2>/dev/null)" != "$(rustc -vV)" ]]; then
        step "class mode: copying the Rust toolchain $sysroot to $dir/toolchain"
        rm -rf "$dir/toolchain.new"
        # Hard links cost nothing on the same filesystem; a real copy otherwise.
        # (a failed cp -al leaves a partial tree, which the real copy must not land inside)
        cp -al "$sysroot" "$dir/toolchain.new" 2>/dev/null \
            || { rm -rf "$dir/toolchain.new" && cp -a "$sysroot" "$dir/toolchain.new"; } \
            || die "--class: cannot copy $sysroot"
        rm -rf "$dir/toolchain" && mv "$dir/toolchain.new" "$dir/toolchain"
    fi
    [[ -x "$dir/toolchain/bin/cargo" ]] || die "--class: $sysroot has no cargo (install the toolchain with rustup)"
    if [[ -z "$rust_src" && -d "$dir/toolchain/lib/rustlib/src/rust/library" ]]; then
        rust_src="$dir/toolchain/lib/rustlib/src/rust/library"
    fi
    [[ -n "$rust_src" ]] || warn "the toolchain has no std sources (rustup component add rust-src, then rerun): completion will be limited"

    shared_cache="$dir/cache"
    if [[ $scope_given -eq 0 ]]; then
        scope=(--prefix "$dir"); scope_given=1
        # Jupyter finds it there only through JUPYTER_PATH (class-hub.sh sets it for the
        # learners' servers); set here too so install.sh's shadowing check looks there.
        export JUPYTER_PATH="$dir/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
    fi
    CLASS_PREWARM_ENV=(PATH="$dir/toolchain/bin:$PATH" CARGO_HOME="$dir/cargo")
    extra_env+=(
        "PATH=$dir/toolchain/bin:/usr/local/bin:/usr/bin:/bin"
        "CARGO_HOME=$dir/cargo"
        "CARGO_NET_OFFLINE=true"
    )
    # One warm kernel per learner, started by their server at login (rustmeter_login_spare)
    # and never by a launch: a learner holds at most one idle kernel (about 0.5 GB, sized
    # in docs/classroom.md). --no-spare (RUSTMETER_SPARE=0) turns that off too.
    case " ${extra_env[*]} " in
        *" RUSTMETER_SPARE_START="*) ;;
        *) extra_env+=("RUSTMETER_SPARE_START=login") ;;
    esac
    mkdir -p "$dir/python" "$dir/etc/jupyter/jupyter_server_config.d" || die "--class: cannot create folders in $dir"
    install -m 0644 "$ROOT/scripts/rustmeter_login_spare.py" "$dir/python/rustmeter_login_spare.py" \
        || die "--class: cannot install the login extension in $dir/python"
    install -m 0644 "$ROOT/scripts/rustmeter-login-spare.json" \
        "$dir/etc/jupyter/jupyter_server_config.d/rustmeter-login-spare.json" \
        || die "--class: cannot enable the login extension in $dir/etc/jupyter"
}

# class_finish DIR: after prewarm, everything in DIR readable by all and writable by none
# but its owner (the shared cache tier trusts nothing else).
class_finish() {
    local dir="$1"
    chmod -R a+rX,go-w "$dir/bin" "$dir/cargo" "$dir/cache" "$dir/python" "$dir/etc" || die "--class: cannot set permissions in $dir"
    chmod a+rX,go-w "$dir" "$dir/toolchain"
    [[ -d "$dir/cargo/registry" ]] \
        || warn "$dir/cargo has no crate registry: prewarm did not download the crates, so ':dep' will fail offline"
}
