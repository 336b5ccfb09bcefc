//! Every `RUSTMETER_*` environment variable rustmeter reads: one table ([`ALL`]) with each
//! variable's name, kind, default and a one-line doc, one parser per kind, and typed
//! accessors ([`switch`], [`size`], [`duration_or_off`], …) the rest of the crate reads
//! them through. The README's "Settings" table is written from this table (a unit test
//! compares them), and `rustmeter check-setting NAME=VALUE…` ([`check_assignments`])
//! lets `install.sh` check values with exactly these parsers.
//!
//! A bad value is never silently replaced: each setting either falls back to its default
//! and is reported ([`OnBad::Default`]: [`problems`] lists it, the kernel shows it on the
//! first cell's stderr and `rustmeter doctor` lists it), or is refused
//! ([`OnBad::Refuse`]: the caller checks with [`check`] and stops).
//!
//! A leaf: it reads the process environment (the only module that does so for
//! `RUSTMETER_*` variables) and imports nothing else of the crate. Setting variables for
//! child processes (`Command::env`) stays with the modules that start them.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What a setting's value is, and so which parser reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// on/off, 1/0, true/false, yes/no (any case).
    Switch,
    /// Bytes: a number with an optional binary unit (`512M`, `2G`, `2GB`, `2GiB`; K, M, G,
    /// T are powers of 1024) or plain bytes; at least `min`. With `off`, the words
    /// [`OFF_WORDS`] mean "no limit".
    Size { min: u64, off: bool },
    /// A number with a unit: `500ms`, `30s` (or plain seconds), `2m`/`2min`, `1h`; more
    /// than zero. With `off`, the words [`OFF_WORDS`] mean "no limit".
    Duration { off: bool },
    /// A whole number (`1000`, also `1_000` or `1,000`), at least `min`. With `off`, the
    /// words [`OFF_WORDS`] mean "no limit".
    Count { min: u64, off: bool },
    /// A file or folder; any text.
    Path,
    /// Free text, read by the module that uses it.
    Text,
    /// One word of a fixed list (any case).
    Word(&'static [&'static str]),
    /// Local accounts: user names or numeric uids separated by commas or spaces; `none`
    /// for no account.
    Accounts,
}

/// What happens to a value the setting's parser does not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBad {
    /// The default applies, and [`problems`] reports the value (first cell, doctor).
    Default,
    /// The command that reads it fails with the error (the kernel does not start).
    Refuse,
}

/// One environment variable rustmeter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub kind: Kind,
    /// For switches, sizes, durations, counts and words, a value the kind's parser reads
    /// (`on`, `2G`, `30m`, `off`); for paths and text, what applies when it is unset.
    pub default: &'static str,
    /// One line: what it does.
    pub doc: &'static str,
    pub on_bad: OnBad,
    /// Set by rustmeter itself for the processes it starts, not by anyone configuring it;
    /// listed so that the table names every `RUSTMETER_*` variable.
    pub internal: bool,
}

/// The words that switch a limit off, for kinds that allow it (`Size`, `Duration` and
/// `Count` with `off`).
pub const OFF_WORDS: [&str; 6] = ["off", "none", "no", "unlimited", "max", "0"];

const fn setting(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    doc: &'static str,
) -> Setting {
    Setting {
        name,
        kind,
        default,
        doc,
        on_bad: OnBad::Default,
        internal: false,
    }
}

const fn refused(mut s: Setting) -> Setting {
    s.on_bad = OnBad::Refuse;
    s
}

const fn internal(name: &'static str, kind: Kind, doc: &'static str) -> Setting {
    Setting {
        name,
        kind,
        default: "set by rustmeter",
        doc,
        on_bad: OnBad::Default,
        internal: true,
    }
}

pub const TELEMETRY: Setting = setting(
    "RUSTMETER_TELEMETRY",
    Kind::Word(&["off", "on", "full", "compact", "big"]),
    "full",
    "footer style of every cell (`:telemetry` changes it in one kernel; on = full, big = projector size)",
);
pub const SHARED_DEPS: Setting = setting(
    "RUSTMETER_SHARED_DEPS",
    Kind::Switch,
    "on",
    "one tokio and rayon shared by all cells (dylib shims); off: evcxr's per-cell linking",
);
pub const CELL_TIMEOUT: Setting = setting(
    "RUSTMETER_CELL_TIMEOUT",
    Kind::Duration { off: true },
    "off",
    "stop a cell whose code has run this long (compile time and waiting for input do not count)",
);
pub const OUTPUT_LIMIT: Setting = setting(
    "RUSTMETER_OUTPUT_LIMIT",
    Kind::Size { min: 0, off: true },
    "2000000",
    "printed output a cell shows (2 MB); the rest is saved to a file the cell names",
);
pub const SOLUTIONS: Setting = setting(
    "RUSTMETER_SOLUTIONS",
    Kind::Path,
    "unset: solutions are off",
    "folder of exercise solutions (`NAME.rs`) that `:solution NAME` shows (`./install.sh --solutions`)",
);
/// Below 64 MiB the process running the cells cannot even start its runtime, and every
/// cell would fail with a misleading crash.
pub const MEMORY_LIMIT: Setting = setting(
    "RUSTMETER_MEMORY_LIMIT",
    Kind::Size {
        min: 64 << 20,
        off: true,
    },
    "off",
    "memory cap of the process running the cells (cgroups; `./install.sh --memory-limit`)",
);
/// Below 32 the process running the cells cannot start: it has a tokio runtime (a worker
/// per core) and evcxr's own threads before any cell runs.
pub const THREAD_LIMIT: Setting = setting(
    "RUSTMETER_THREAD_LIMIT",
    Kind::Count { min: 32, off: true },
    "off",
    "cap on the threads and processes of the process running the cells (`./install.sh --thread-limit`)",
);
pub const CGROUP_PARENT: Setting = setting(
    "RUSTMETER_CGROUP_PARENT",
    Kind::Text,
    "the kernel's own cgroup",
    "where the caps' cgroups go: a cgroup path such as `/rustmeter/{user}`, or `:`-separated directories",
);
pub const DEP_CACHE: Setting = setting(
    "RUSTMETER_DEP_CACHE",
    Kind::Switch,
    "on",
    "the shared dependency cache (rustc wrapper); off: every kernel compiles its dependencies",
);
pub const CACHE_DIR: Setting = setting(
    "RUSTMETER_CACHE_DIR",
    Kind::Path,
    "`$XDG_CACHE_HOME/rustmeter`, else `~/.cache/rustmeter`",
    "per-user cache folder: dependency tier `<it>/deps`, shims, labels, saved outputs; refused (the next safe default is used, and the first cell says why) when it or a folder above it is writable by another account",
);
pub const SHARED_CACHE: Setting = setting(
    "RUSTMETER_SHARED_CACHE",
    Kind::Path,
    "none",
    "a read-only dependency cache tier looked up first (e.g. `/opt/rustmeter/cache`); not used (the first cell says why) when it or a folder above it is writable by another account",
);
pub const CACHE_MAX: Setting = setting(
    "RUSTMETER_CACHE_MAX",
    Kind::Size { min: 0, off: false },
    "2G",
    "size bound of the writable dependency tier; least recently used entries are evicted",
);
pub const SPARE: Setting = setting(
    "RUSTMETER_SPARE",
    Kind::Switch,
    "on",
    "warm spare kernels: each launch starts one warmed-up kernel for the next launch",
);
pub const SPARE_START: Setting = setting(
    "RUSTMETER_SPARE_START",
    Kind::Word(&["launch", "login"]),
    "launch",
    "who starts warm spares: launch = each kernel launch, for the next one; login = only `rustmeter spares start`, which the class's Jupyter server runs when a learner logs in and when their last kernel ends, so a learner never holds two idle kernels",
);
pub const SPARE_IDLE: Setting = setting(
    "RUSTMETER_SPARE_IDLE",
    Kind::Duration { off: false },
    "30m",
    "how long an unclaimed warm spare waits before it exits",
);
pub const STALL_MS: Setting = setting(
    "RUSTMETER_STALL_MS",
    Kind::Count { min: 1, off: false },
    "100",
    "milliseconds one poll of a task may hold a runtime worker before the footer warns of a stall (a blocking call inside async code)",
);
pub const LOG: Setting = setting(
    "RUSTMETER_LOG",
    Kind::Word(&["info", "debug"]),
    "info",
    "what the kernel writes to its log (stderr): info = errors, refusals and a start line; debug adds cargo's per-crate lines and warm-up timings",
);
pub const WATCH_LAUNCHER: Setting = setting(
    "RUSTMETER_WATCH_LAUNCHER",
    Kind::Switch,
    "on",
    "a kernel shuts down when the process that launched it is gone",
);
pub const WIRE_GUARD: Setting = refused(setting(
    "RUSTMETER_WIRE_GUARD",
    Kind::Switch,
    "on",
    "check each client's ZMTP stream before zeromq reads it; off: zeromq listens directly",
));
pub const WIRE_MAX_FRAME: Setting = refused(setting(
    "RUSTMETER_WIRE_MAX_FRAME",
    Kind::Size {
        min: 1024,
        off: false,
    },
    "64M",
    "largest ZMTP frame the wire guard lets a client declare; larger closes the connection",
));
pub const ALLOW_UIDS: Setting = refused(setting(
    "RUSTMETER_ALLOW_UIDS",
    Kind::Accounts,
    "root",
    "accounts besides the kernel's own whose loopback TCP connections the wire guard relays (a hub or server running as another account); others are refused",
));
pub const RUNTIME_DIR: Setting = setting(
    "RUSTMETER_RUNTIME_DIR",
    Kind::Path,
    "`$XDG_RUNTIME_DIR/rustmeter` when private, else `<cache dir>/run`",
    "where kernels' work folders and warm spares' files live; refused (a safe default is used, and the first cell says why) when it or a folder above it is writable by another account",
);
pub const BIN: Setting = setting(
    "RUSTMETER_BIN",
    Kind::Path,
    "the running executable",
    "the `rustmeter` binary `rustmeter::demo::start` runs (read by the `rustmeter` crate in cells; tests)",
);

pub const KERNEL_PID: Setting = internal(
    "RUSTMETER_KERNEL_PID",
    Kind::Count { min: 1, off: false },
    "the pid of the kernel a process belongs to, so the next kernel finds what dead kernels left",
);
pub const RUSTC_WRAPPER: Setting = internal(
    "RUSTMETER_RUSTC_WRAPPER",
    Kind::Text,
    "`1` when cargo runs this binary as rustc's wrapper (the dependency cache)",
);
pub const BUILD_EVENTS: Setting = internal(
    "RUSTMETER_BUILD_EVENTS",
    Kind::Path,
    "file the rustc wrapper appends build progress events to",
);
pub const LINK_AS: Setting = internal(
    "RUSTMETER_LINK_AS",
    Kind::Text,
    "the real linker, when rustc runs this binary as the cell crate's linker (to time the link)",
);
pub const LINK_CRATE: Setting = internal(
    "RUSTMETER_LINK_CRATE",
    Kind::Text,
    "the crate a timed link belongs to",
);
pub const INTERRUPT_FD: Setting = internal(
    "RUSTMETER_INTERRUPT_FD",
    Kind::Count { min: 0, off: false },
    "the pipe the kernel writes to on interrupt, in the process running the cells",
);
pub const CHILD_ENV_FILE: Setting = internal(
    "RUSTMETER_CHILD_ENV_FILE",
    Kind::Path,
    "the variables `:env` set, applied when the process running the cells starts",
);
pub const TELEMETRY_DIR: Setting = internal(
    "RUSTMETER_TELEMETRY_DIR",
    Kind::Path,
    "where `rustmeter::last()` in cells reads the previous cell's figures",
);
pub const LABELS_DIR: Setting = internal(
    "RUSTMETER_LABELS_DIR",
    Kind::Path,
    "where `rustmeter::cell(NAME)` in cells reads labelled cells",
);
pub const DEP_CACHE_TIER: Setting = internal(
    "RUSTMETER_DEP_CACHE_TIER",
    Kind::Path,
    "the only dependency cache tier, set by `rustmeter prewarm --cache DIR`",
);

/// Every `RUSTMETER_*` variable rustmeter reads or sets, settings first.
pub const ALL: [&Setting; 33] = [
    &TELEMETRY,
    &SHARED_DEPS,
    &CELL_TIMEOUT,
    &OUTPUT_LIMIT,
    &SOLUTIONS,
    &MEMORY_LIMIT,
    &THREAD_LIMIT,
    &CGROUP_PARENT,
    &DEP_CACHE,
    &CACHE_DIR,
    &SHARED_CACHE,
    &CACHE_MAX,
    &SPARE,
    &SPARE_START,
    &SPARE_IDLE,
    &STALL_MS,
    &LOG,
    &WATCH_LAUNCHER,
    &WIRE_GUARD,
    &WIRE_MAX_FRAME,
    &ALLOW_UIDS,
    &RUNTIME_DIR,
    &BIN,
    &KERNEL_PID,
    &RUSTC_WRAPPER,
    &BUILD_EVENTS,
    &LINK_AS,
    &LINK_CRATE,
    &INTERRUPT_FD,
    &CHILD_ENV_FILE,
    &TELEMETRY_DIR,
    &LABELS_DIR,
    &DEP_CACHE_TIER,
];

/// The table entry named `name`.
pub fn find(name: &str) -> Option<&'static Setting> {
    ALL.iter().copied().find(|s| s.name == name)
}

/// A value a setting's parser does not accept: names the variable, the value and what is
/// accepted, e.g. `RUSTMETER_CACHE_MAX="lots" is not a size (use e.g. 512M, 2G or 2GB)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub setting: &'static Setting,
    /// The value as written (lossy for a value that is not UTF-8).
    pub value: String,
    /// What is wrong and what is accepted, after `NAME="value"`.
    pub reason: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?} {}", self.setting.name, self.value, self.reason)
    }
}

impl std::error::Error for SettingError {}

impl SettingError {
    /// The error and what follows from it, as shown to the learner and in doctor.
    pub fn report(&self) -> String {
        match self.setting.on_bad {
            OnBad::Default => format!(
                "{self}; the default ({}) applies until it is fixed",
                self.setting.default
            ),
            OnBad::Refuse => format!("{self}; the kernel does not start until it is fixed"),
        }
    }
}

/// A setting's value, parsed by its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Switch(bool),
    /// `None`: switched off ("no limit").
    Size(Option<u64>),
    /// `None`: switched off ("no limit").
    Duration(Option<Duration>),
    /// `None`: switched off ("no limit").
    Count(Option<u64>),
    Word(&'static str),
    /// `None`: unset.
    Path(Option<PathBuf>),
    /// `None`: unset.
    Text(Option<String>),
    /// Uids, in the order written.
    Accounts(Vec<u32>),
}

/// Where values come from: the process environment, or a map in tests and doctor.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The process environment: the one place the crate reads a `RUSTMETER_*` variable.
pub fn process_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// What `lookup` holds for `setting`; a blank value counts as unset.
pub fn written_in(setting: &Setting, lookup: Lookup) -> Option<OsString> {
    lookup(setting.name).filter(|v| !v.to_string_lossy().trim().is_empty())
}

/// Parses `text` as a value of `setting`.
pub fn parse(setting: &'static Setting, text: &OsStr) -> Result<Value, SettingError> {
    match setting.kind {
        Kind::Switch => parse_switch(setting, utf8(setting, text)?).map(Value::Switch),
        Kind::Size { .. } => parse_size(setting, utf8(setting, text)?).map(Value::Size),
        Kind::Duration { .. } => parse_duration(setting, utf8(setting, text)?).map(Value::Duration),
        Kind::Count { .. } => parse_count(setting, utf8(setting, text)?).map(Value::Count),
        Kind::Word(_) => parse_word(setting, utf8(setting, text)?).map(Value::Word),
        Kind::Accounts => parse_accounts(setting, utf8(setting, text)?).map(Value::Accounts),
        Kind::Path => Ok(Value::Path(Some(PathBuf::from(text)))),
        Kind::Text => Ok(Value::Text(Some(text.to_string_lossy().into_owned()))),
    }
}

fn utf8<'a>(setting: &'static Setting, text: &'a OsStr) -> Result<&'a str, SettingError> {
    text.to_str().ok_or_else(|| SettingError {
        setting,
        value: text.to_string_lossy().into_owned(),
        reason: "is not valid UTF-8".into(),
    })
}

/// The value of `setting` in `lookup`: its default when unset, an error when bad.
pub fn read_in(setting: &'static Setting, lookup: Lookup) -> Result<Value, SettingError> {
    match written_in(setting, lookup) {
        Some(text) => parse(setting, &text),
        None => Ok(default_value(setting)),
    }
}

/// The table's default of `setting` as a value.
pub fn default_value(setting: &'static Setting) -> Value {
    match setting.kind {
        Kind::Path => Value::Path(None),
        Kind::Text => Value::Text(None),
        _ if setting.internal => panic!(
            "{} is set by rustmeter and has no default: read it with settings::text",
            setting.name
        ),
        _ => parse(setting, OsStr::new(setting.default))
            .unwrap_or_else(|e| panic!("the settings table's default does not parse: {e}")),
    }
}

/// The value of `setting` in `lookup`, or its default when the value is bad (which
/// [`problems`] reports).
fn value_in(setting: &'static Setting, lookup: Lookup) -> Value {
    read_in(setting, lookup).unwrap_or_else(|_| default_value(setting))
}

/// Ok, or the error for `setting`'s value in the process environment: for settings that
/// refuse a bad value ([`OnBad::Refuse`]) before they are read.
pub fn check(setting: &'static Setting) -> Result<(), SettingError> {
    read_in(setting, &process_env).map(|_| ())
}

fn wrong_kind(setting: &Setting, accessor: &str) -> ! {
    panic!(
        "settings::{accessor} cannot read {}, a {:?} setting",
        setting.name, setting.kind
    )
}

/// A switch: on or off.
pub fn switch(setting: &'static Setting) -> bool {
    switch_in(setting, &process_env)
}

pub fn switch_in(setting: &'static Setting, lookup: Lookup) -> bool {
    match value_in(setting, lookup) {
        Value::Switch(on) => on,
        _ => wrong_kind(setting, "switch"),
    }
}

/// A size in bytes, for a size setting that cannot be switched off.
pub fn size(setting: &'static Setting) -> u64 {
    size_in(setting, &process_env)
}

pub fn size_in(setting: &'static Setting, lookup: Lookup) -> u64 {
    match (setting.kind, value_in(setting, lookup)) {
        (Kind::Size { off: false, .. }, Value::Size(Some(bytes))) => bytes,
        _ => wrong_kind(setting, "size"),
    }
}

/// A size in bytes, `None` when switched off.
pub fn size_or_off(setting: &'static Setting) -> Option<u64> {
    match (setting.kind, value_in(setting, &process_env)) {
        (Kind::Size { off: true, .. }, Value::Size(bytes)) => bytes,
        _ => wrong_kind(setting, "size_or_off"),
    }
}

/// A whole number, for a count setting that cannot be switched off.
pub fn count(setting: &'static Setting) -> u64 {
    match (setting.kind, value_in(setting, &process_env)) {
        (Kind::Count { off: false, .. }, Value::Count(Some(n))) => n,
        _ => wrong_kind(setting, "count"),
    }
}

/// A duration, for a duration setting that cannot be switched off.
pub fn duration(setting: &'static Setting) -> Duration {
    match (setting.kind, value_in(setting, &process_env)) {
        (Kind::Duration { off: false }, Value::Duration(Some(d))) => d,
        _ => wrong_kind(setting, "duration"),
    }
}

/// A duration, `None` when switched off.
pub fn duration_or_off(setting: &'static Setting) -> Option<Duration> {
    match (setting.kind, value_in(setting, &process_env)) {
        (Kind::Duration { off: true }, Value::Duration(d)) => d,
        _ => wrong_kind(setting, "duration_or_off"),
    }
}

/// One of the setting's words (lowercase, as the table writes it).
pub fn word(setting: &'static Setting) -> &'static str {
    match value_in(setting, &process_env) {
        Value::Word(w) => w,
        _ => wrong_kind(setting, "word"),
    }
}

/// The uids an accounts setting names.
pub fn accounts(setting: &'static Setting) -> Vec<u32> {
    match value_in(setting, &process_env) {
        Value::Accounts(uids) => uids,
        _ => wrong_kind(setting, "accounts"),
    }
}

/// A path setting, `None` when unset (or blank).
pub fn path(setting: &'static Setting) -> Option<PathBuf> {
    match value_in(setting, &process_env) {
        Value::Path(p) => p,
        _ => wrong_kind(setting, "path"),
    }
}

/// The value as written, trimmed, of a setting of any kind; `None` when unset (or blank).
/// For messages that quote the setting, for text settings, and for internal variables
/// whose format belongs to the module that sets them.
pub fn text(setting: &'static Setting) -> Option<String> {
    written_in(setting, &process_env).map(|v| v.to_string_lossy().trim().to_string())
}

/// Every bad value among the (non-internal) settings in the process environment.
pub fn problems() -> Vec<SettingError> {
    problems_in(&process_env)
}

pub fn problems_in(lookup: Lookup) -> Vec<SettingError> {
    ALL.iter()
        .filter(|s| !s.internal)
        .filter_map(|s| read_in(s, lookup).err())
        .collect()
}

/// The (non-internal) settings that have a value in `lookup`, with it.
pub fn set_in(lookup: Lookup) -> Vec<(&'static Setting, String)> {
    ALL.iter()
        .filter(|s| !s.internal)
        .filter_map(|s| Some((*s, written_in(s, lookup)?.to_string_lossy().into_owned())))
        .collect()
}

/// `rustmeter check-setting NAME=VALUE…`: Ok when every assignment names a setting and
/// its value is accepted; else one line per problem. An empty value means unset.
pub fn check_assignments(assignments: &[String]) -> Result<(), String> {
    let errors: Vec<String> = assignments
        .iter()
        .filter_map(|assignment| check_assignment(assignment).err())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

fn check_assignment(assignment: &str) -> Result<(), String> {
    let (name, value) = assignment
        .split_once('=')
        .ok_or_else(|| format!("{assignment:?} is not NAME=VALUE"))?;
    let setting = find(name).ok_or_else(|| {
        format!(
            "{name} is not a rustmeter setting (the settings are listed in the README, \
             section Settings)"
        )
    })?;
    if setting.internal {
        return Err(format!(
            "{name} is set by rustmeter itself for the processes it starts, not a setting"
        ));
    }
    let value = OsString::from(value);
    read_in(setting, &|_| Some(value.clone()))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn error(setting: &'static Setting, text: &str, reason: String) -> SettingError {
    SettingError {
        setting,
        value: text.to_string(),
        reason,
    }
}

/// ", or off" for kinds that can be switched off.
fn or_off(off: bool) -> &'static str {
    if off {
        ", or off"
    } else {
        ""
    }
}

fn means_off(text: &str) -> bool {
    OFF_WORDS.iter().any(|w| text.eq_ignore_ascii_case(w))
}

fn parse_switch(setting: &'static Setting, text: &str) -> Result<bool, SettingError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "true" | "yes" => Ok(true),
        "0" | "off" | "false" | "no" => Ok(false),
        _ => Err(error(
            setting,
            text,
            "is not a switch (use on or off; 1/0, true/false and yes/no work too)".into(),
        )),
    }
}

/// A size: a number with an optional binary unit `K`, `M`, `G`, `T` (also `KB`/`KiB`…,
/// any case; `500M` = 500 × 2²⁰ bytes, as `docker --memory` reads it) or plain bytes.
fn parse_size(setting: &'static Setting, text: &str) -> Result<Option<u64>, SettingError> {
    let Kind::Size { min, off } = setting.kind else {
        wrong_kind(setting, "parse_size")
    };
    let trimmed = text.trim();
    if off && means_off(trimmed) {
        return Ok(None);
    }
    let example = format!("use e.g. 512M, 2G or 2GB{}", or_off(off));
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let not_a_size = || error(setting, text, format!("is not a size ({example})"));
    if number.is_empty() {
        return Err(not_a_size());
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(error(
                setting,
                text,
                format!(
                    "is not a size: the unit {unit:?} is unknown ({example}; K, M, G, T are \
                     powers of 1024)"
                ),
            ))
        }
    };
    let amount: f64 = number.parse().map_err(|_| not_a_size())?;
    let bytes = amount * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(error(setting, text, "is too large to be a size".into()));
    }
    let bytes = bytes as u64;
    if bytes < min {
        return Err(error(
            setting,
            text,
            format!("is below the smallest size accepted, {}", human_bytes(min)),
        ));
    }
    Ok(Some(bytes))
}

/// A duration: `500ms`, `30s` (or plain seconds), `2m`/`2min`, `1h`, fractions allowed.
fn parse_duration(setting: &'static Setting, text: &str) -> Result<Option<Duration>, SettingError> {
    let Kind::Duration { off } = setting.kind else {
        wrong_kind(setting, "parse_duration")
    };
    let trimmed = text.trim();
    if off && means_off(trimmed) {
        return Ok(None);
    }
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let bad = || {
        error(
            setting,
            text,
            format!(
                "is not a duration (use a number with a unit, e.g. 30s, 2m, 1h or 500ms{})",
                or_off(off)
            ),
        )
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 1e9 {
        return Err(bad());
    }
    Ok(Some(Duration::from_secs_f64(seconds)))
}

/// A whole number: `1000`, also `1_000` or `1,000`.
fn parse_count(setting: &'static Setting, text: &str) -> Result<Option<u64>, SettingError> {
    let Kind::Count { min, off } = setting.kind else {
        wrong_kind(setting, "parse_count")
    };
    let trimmed = text.trim();
    if off && means_off(trimmed) {
        return Ok(None);
    }
    let digits: String = trimmed
        .chars()
        .filter(|c| !matches!(c, '_' | ','))
        .collect();
    let count: u64 = digits.parse().map_err(|_| {
        error(
            setting,
            text,
            format!("is not a whole number (use e.g. 1000{})", or_off(off)),
        )
    })?;
    if count < min {
        return Err(error(
            setting,
            text,
            format!("is below the smallest number accepted, {min}"),
        ));
    }
    Ok(Some(count))
}

fn parse_word(setting: &'static Setting, text: &str) -> Result<&'static str, SettingError> {
    let Kind::Word(words) = setting.kind else {
        wrong_kind(setting, "parse_word")
    };
    let trimmed = text.trim();
    words
        .iter()
        .copied()
        .find(|w| w.eq_ignore_ascii_case(trimmed))
        .ok_or_else(|| error(setting, text, format!("is not one of {}", words.join(", "))))
}

fn parse_accounts(setting: &'static Setting, text: &str) -> Result<Vec<u32>, SettingError> {
    let names: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
        .collect();
    if names.len() == 1 && names[0].eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    names
        .iter()
        .map(|name| {
            name.parse::<u32>()
                .ok()
                .or_else(|| uid_of_user(name))
                .ok_or_else(|| {
                    error(
                        setting,
                        text,
                        format!("names {name:?}, which is neither a uid nor a user of this machine (use user names or uids separated by commas, or none)"),
                    )
                })
        })
        .collect()
}

/// The uid of login `name`, from the system's user database.
fn uid_of_user(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // getpwnam's result points into static storage; only its uid is copied out.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    (!entry.is_null()).then(|| unsafe { (*entry).pw_uid })
}

/// `524288000` → `500 MiB`; whole units when exact, one decimal otherwise.
pub fn human_bytes(bytes: u64) -> String {
    let units = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, name) in units {
        let unit = 1u64 << shift;
        if bytes >= unit {
            return if bytes.is_multiple_of(unit) {
                format!("{} {name}", bytes / unit)
            } else {
                format!("{:.1} {name}", bytes as f64 / unit as f64)
            };
        }
    }
    format!("{bytes} bytes")
}

impl fmt::Display for Kind {
    /// As the README's table shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let floor = |min: u64, shown: String| {
            if min > 0 {
                format!(" ≥ {shown}")
            } else {
                String::new()
            }
        };
        match *self {
            Kind::Switch => write!(f, "switch"),
            Kind::Size { min, off } => write!(
                f,
                "size{}{}",
                floor(min, human_bytes(min)),
                or_off(off).replace(',', "")
            ),
            Kind::Duration { off } => write!(f, "duration{}", or_off(off).replace(',', "")),
            Kind::Count { min, off } => write!(
                f,
                "count{}{}",
                floor(min, min.to_string()),
                or_off(off).replace(',', "")
            ),
            Kind::Path => write!(f, "path"),
            Kind::Text => write!(f, "text"),
            Kind::Word(words) => write!(f, "word: {}", words.join(", ")),
            Kind::Accounts => write!(f, "user names or uids"),
        }
    }
}

impl Setting {
    /// This setting's row in the README's Settings table.
    pub fn readme_row(&self) -> String {
        let bad = match (self.internal, self.kind, self.on_bad) {
            (true, _, _) => "internal",
            (false, Kind::Path | Kind::Text, _) => "any text is accepted",
            (false, _, OnBad::Default) => "reported; default used",
            (false, _, OnBad::Refuse) => "refused: the kernel does not start",
        };
        format!(
            "| `{}` | {} | {} | {} | {bad} |",
            self.name, self.kind, self.default, self.doc
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    /// A lookup holding exactly `pairs`, so no test touches the process environment.
    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn parsed(setting: &'static Setting, text: &str) -> Result<Value, SettingError> {
        parse(setting, OsStr::new(text))
    }

    fn bytes(setting: &'static Setting, text: &str) -> Option<u64> {
        match parsed(setting, text).unwrap() {
            Value::Size(b) => b,
            other => panic!("{other:?}"),
        }
    }

    fn seconds(setting: &'static Setting, text: &str) -> Option<Duration> {
        match parsed(setting, text).unwrap() {
            Value::Duration(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn switches_share_one_grammar() {
        for text in ["on", "ON", "1", "true", "True", "yes", " yes "] {
            assert_eq!(parsed(&SPARE, text).unwrap(), Value::Switch(true), "{text}");
        }
        for text in ["off", "Off", "0", "false", "FALSE", "no"] {
            assert_eq!(
                parsed(&SPARE, text).unwrap(),
                Value::Switch(false),
                "{text}"
            );
        }
        for setting in ALL.iter().filter(|s| s.kind == Kind::Switch) {
            let e = parsed(setting, "maybe").unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("{}=\"maybe\" is not a switch", setting.name)),
                "{e}"
            );
            assert!(e.contains("on or off"), "{e}");
        }
    }

    #[test]
    fn dep_cache_off_turns_the_cache_off() {
        for off in ["off", "0", "false", "no"] {
            let lookup = env(&[("RUSTMETER_DEP_CACHE", off)]);
            assert!(!switch_in(&DEP_CACHE, &lookup), "{off}");
        }
        assert!(switch_in(&DEP_CACHE, &env(&[])));
        assert!(switch_in(&DEP_CACHE, &env(&[("RUSTMETER_DEP_CACHE", "1")])));
    }

    #[test]
    fn cache_max_accepts_the_memory_size_grammar() {
        let lookup = env(&[("RUSTMETER_CACHE_MAX", "2GB")]);
        assert_eq!(size_in(&CACHE_MAX, &lookup), 2 << 30);
        assert!(problems_in(&lookup).is_empty());
        // What the cache accepted before stays accepted.
        assert_eq!(bytes(&CACHE_MAX, "500M"), Some(500 << 20));
        assert_eq!(bytes(&CACHE_MAX, "2g"), Some(2 << 30));
        assert_eq!(bytes(&CACHE_MAX, "1234"), Some(1234));
        assert!(parsed(&CACHE_MAX, "x").is_err());
        assert_eq!(size_in(&CACHE_MAX, &env(&[])), 2 << 30, "the default");
    }

    #[test]
    fn a_bad_cache_max_is_an_error_naming_the_variable() {
        let lookup = env(&[("RUSTMETER_CACHE_MAX", "lots")]);
        let problems = problems_in(&lookup);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].to_string(),
            "RUSTMETER_CACHE_MAX=\"lots\" is not a size (use e.g. 512M, 2G or 2GB)"
        );
        assert!(problems[0].report().contains("the default (2G) applies"));
        assert_eq!(
            size_in(&CACHE_MAX, &lookup),
            2 << 30,
            "reported, default used"
        );
        let refused = check_assignments(&["RUSTMETER_CACHE_MAX=lots".into()]).unwrap_err();
        assert!(
            refused.contains("RUSTMETER_CACHE_MAX=\"lots\""),
            "{refused}"
        );
    }

    #[test]
    fn reads_sizes_with_binary_units() {
        let cases = [
            ("500M", 500u64 << 20),
            ("2G", 2 << 30),
            ("2g", 2 << 30),
            ("2GB", 2 << 30),
            ("2GiB", 2 << 30),
            ("1.5G", 3 << 29),
            ("512MiB", 512 << 20),
            (" 700 MB ", 700 << 20),
            ("1T", 1 << 40),
            ("131072K", 128 << 20),
            ("104857600", 100 << 20),
        ];
        for (text, expected) in cases {
            assert_eq!(bytes(&MEMORY_LIMIT, text), Some(expected), "{text}");
        }
    }

    #[test]
    fn off_words_switch_off_only_what_can_be_off() {
        for text in ["off", "None", "unlimited", "max", "0", "no"] {
            assert_eq!(bytes(&MEMORY_LIMIT, text), None, "{text}");
            assert_eq!(parsed(&THREAD_LIMIT, text).unwrap(), Value::Count(None));
            assert_eq!(seconds(&CELL_TIMEOUT, text), None, "{text}");
            assert_eq!(bytes(&OUTPUT_LIMIT, text), None, "{text}");
        }
        assert!(parsed(&CACHE_MAX, "off").is_err());
        assert!(parsed(&SPARE_IDLE, "none").is_err());
        assert!(parsed(&SPARE_IDLE, "0").is_err());
        assert_eq!(bytes(&CACHE_MAX, "0"), Some(0), "zero bytes, not off");
    }

    #[test]
    fn bad_sizes_name_the_variable_and_value() {
        for text in ["lots", "500X", "1.2.3G", "-5M", "10M", "99999999999T"] {
            let e = parsed(&MEMORY_LIMIT, text).unwrap_err().to_string();
            assert!(e.contains("RUSTMETER_MEMORY_LIMIT"), "{e}");
            assert!(e.contains(&format!("{text:?}")), "{e}");
        }
        let floor = parsed(&MEMORY_LIMIT, "10M").unwrap_err().to_string();
        assert!(floor.contains("64 MiB"), "{floor}");
        let unit = parsed(&MEMORY_LIMIT, "500X").unwrap_err().to_string();
        assert!(unit.contains("unit \"X\" is unknown"), "{unit}");
        assert!(parsed(&WIRE_MAX_FRAME, "1000").is_err());
        assert_eq!(bytes(&WIRE_MAX_FRAME, "1024"), Some(1024));
    }

    #[test]
    fn reads_thread_counts() {
        let count = |t| parsed(&THREAD_LIMIT, t).unwrap();
        assert_eq!(count("1000"), Value::Count(Some(1000)));
        assert_eq!(count("1_000"), Value::Count(Some(1000)));
        assert_eq!(count("10,000"), Value::Count(Some(10_000)));
        for text in ["many", "1e3", "-1", "12.5", "4"] {
            let e = parsed(&THREAD_LIMIT, text).unwrap_err().to_string();
            assert!(
                e.contains("RUSTMETER_THREAD_LIMIT") && e.contains(&format!("{text:?}")),
                "{e}"
            );
        }
        assert!(parsed(&THREAD_LIMIT, "4")
            .unwrap_err()
            .to_string()
            .contains("32"));
    }

    #[test]
    fn durations_parse() {
        let d = |t| seconds(&CELL_TIMEOUT, t).unwrap();
        assert_eq!(d("30s"), Duration::from_secs(30));
        assert_eq!(d("2m"), Duration::from_secs(120));
        assert_eq!(d("2min"), Duration::from_secs(120));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("45"), Duration::from_secs(45));
        assert_eq!(seconds(&CELL_TIMEOUT, "none"), None);
        assert_eq!(seconds(&CELL_TIMEOUT, "0"), None);
        assert_eq!(
            read_in(&CELL_TIMEOUT, &env(&[("RUSTMETER_CELL_TIMEOUT", "")])).unwrap(),
            Value::Duration(None),
            "blank is unset"
        );
    }

    #[test]
    fn bad_durations_name_the_value() {
        for bad in ["abc", "10 parsecs", "-5s", "s", "1e400s", "2M"] {
            let e = parsed(&CELL_TIMEOUT, bad).unwrap_err().to_string();
            assert!(
                e.contains("RUSTMETER_CELL_TIMEOUT") && e.contains(bad),
                "{e}"
            );
        }
    }

    #[test]
    fn words_come_from_the_fixed_list() {
        assert_eq!(
            parsed(&TELEMETRY, " Compact ").unwrap(),
            Value::Word("compact")
        );
        let e = parsed(&TELEMETRY, "huge").unwrap_err().to_string();
        assert_eq!(
            e,
            "RUSTMETER_TELEMETRY=\"huge\" is not one of off, on, full, compact, big"
        );
    }

    #[test]
    fn paths_and_text_take_any_value() {
        let lookup = env(&[
            ("RUSTMETER_SOLUTIONS", "/srv/solutions"),
            ("RUSTMETER_CGROUP_PARENT", "/rustmeter/{user}"),
        ]);
        assert_eq!(
            read_in(&SOLUTIONS, &lookup).unwrap(),
            Value::Path(Some("/srv/solutions".into()))
        );
        assert_eq!(
            read_in(&CGROUP_PARENT, &lookup).unwrap(),
            Value::Text(Some("/rustmeter/{user}".into()))
        );
        assert_eq!(read_in(&SOLUTIONS, &env(&[])).unwrap(), Value::Path(None));
        assert!(problems_in(&lookup).is_empty());
    }

    #[test]
    fn sizes_read_back_for_humans() {
        assert_eq!(human_bytes(500 << 20), "500 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(100), "100 bytes");
    }

    #[test]
    fn accounts_are_names_or_uids_and_an_unknown_name_is_refused() {
        let read = |text: &str| read_in(&ALLOW_UIDS, &env(&[("RUSTMETER_ALLOW_UIDS", text)]));
        assert_eq!(read("root, 1234"), Ok(Value::Accounts(vec![0, 1234])));
        assert_eq!(read("none"), Ok(Value::Accounts(vec![])));
        assert_eq!(default_value(&ALLOW_UIDS), Value::Accounts(vec![0]));
        let error = read("root,nobody-such-user").unwrap_err();
        assert!(error.to_string().contains("nobody-such-user"), "{error}");
        assert!(
            error.report().contains("does not start"),
            "{}",
            error.report()
        );
    }

    #[test]
    fn every_default_is_a_value_of_its_kind() {
        for setting in ALL.iter().filter(|s| !s.internal) {
            let value = default_value(setting);
            let fits = matches!(
                (setting.kind, &value),
                (Kind::Size { off: false, .. }, Value::Size(Some(_)))
                    | (Kind::Duration { off: false }, Value::Duration(Some(_)))
                    | (Kind::Count { off: false, .. }, Value::Count(Some(_)))
                    | (Kind::Size { off: true, .. }, Value::Size(_))
                    | (Kind::Count { off: true, .. }, Value::Count(_))
                    | (Kind::Duration { off: true }, Value::Duration(_))
                    | (Kind::Switch, Value::Switch(_))
                    | (Kind::Word(_), Value::Word(_))
                    | (Kind::Path, Value::Path(None))
                    | (Kind::Text, Value::Text(None))
                    | (Kind::Accounts, Value::Accounts(_))
            );
            assert!(fits, "{}: default {value:?}", setting.name);
        }
        let names: BTreeSet<&str> = ALL.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), ALL.len(), "a name is listed twice");
    }

    #[test]
    fn problems_list_every_bad_setting_and_settings_set() {
        let lookup = env(&[
            ("RUSTMETER_SPARE", "perhaps"),
            ("RUSTMETER_WIRE_GUARD", "2"),
            ("RUSTMETER_TELEMETRY", "compact"),
            ("RUSTMETER_KERNEL_PID", "not checked: internal"),
        ]);
        let problems: Vec<String> = problems_in(&lookup).iter().map(|e| e.report()).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("RUSTMETER_SPARE=\"perhaps\""));
        assert!(problems[0].ends_with("the default (on) applies until it is fixed"));
        assert!(problems[1].ends_with("the kernel does not start until it is fixed"));
        let set: Vec<String> = set_in(&lookup)
            .iter()
            .map(|(s, v)| format!("{}={v}", s.name))
            .collect();
        assert_eq!(
            set,
            [
                "RUSTMETER_TELEMETRY=compact",
                "RUSTMETER_SPARE=perhaps",
                "RUSTMETER_WIRE_GUARD=2"
            ]
        );
    }

    #[test]
    fn check_assignments_names_each_problem() {
        assert_eq!(
            check_assignments(&[
                "RUSTMETER_MEMORY_LIMIT=2G".into(),
                "RUSTMETER_THREAD_LIMIT=1000".into(),
                "RUSTMETER_CELL_TIMEOUT=30s".into(),
                "RUSTMETER_SPARE=off".into(),
                "RUSTMETER_SOLUTIONS=/srv/x".into(),
                "RUSTMETER_CACHE_MAX=".into(),
            ]),
            Ok(())
        );
        let errors = check_assignments(&[
            "RUSTMETER_MEMORY_LIMIT=lots".into(),
            "RUSTMETER_CACHE_MAXX=2G".into(),
            "RUSTMETER_KERNEL_PID=1".into(),
            "RUSTMETER_SPARE".into(),
        ])
        .unwrap_err();
        let lines: Vec<&str> = errors.lines().collect();
        assert_eq!(lines.len(), 4, "{errors}");
        assert!(lines[0].starts_with("RUSTMETER_MEMORY_LIMIT=\"lots\" is not a size"));
        assert!(lines[1].starts_with("RUSTMETER_CACHE_MAXX is not a rustmeter setting"));
        assert!(lines[2].contains("set by rustmeter itself"));
        assert!(lines[3].contains("is not NAME=VALUE"));
    }

    /// The README's Settings section has each table row exactly, and the README names no
    /// `RUSTMETER_*` variable the table lacks.
    #[test]
    fn readme_lists_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let section = readme
            .split("\n## Settings\n")
            .nth(1)
            .expect("README has a section \"## Settings\"");
        let section = section.split("\n## ").next().unwrap_or(section);
        let lines: Vec<&str> = section.lines().collect();
        for setting in ALL {
            let row = setting.readme_row();
            assert!(
                lines.contains(&row.as_str()),
                "README's Settings section lacks (or words differently) the row\n{row}"
            );
        }
        let known: BTreeSet<&str> = ALL.iter().map(|s| s.name).collect();
        let unknown: BTreeSet<&str> = names_in(&readme)
            .into_iter()
            .filter(|n| !known.contains(n))
            .collect();
        assert!(
            unknown.is_empty(),
            "README names {unknown:?}, not in the table"
        );
    }

    /// Every `RUSTMETER_*` token in `text`.
    fn names_in(text: &str) -> BTreeSet<&str> {
        let mut names = BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find("RUSTMETER_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            let name = tail[..end].trim_end_matches('_');
            // `RUSTMETER_*` names the family, not a variable.
            if name != "RUSTMETER" {
                names.insert(name);
            }
            rest = &tail[end..];
        }
        names
    }

    fn sources(dir: &std::path::Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }

    /// Names of `const`s that hold a `RUSTMETER_*` name: `"RUSTMETER_…"` or `….name` of
    /// a table entry.
    fn name_constants(source: &str) -> BTreeSet<String> {
        source
            .lines()
            .filter_map(|line| {
                let (head, value) = line.split_once('=')?;
                let head = head.trim();
                let is_name = value.contains("\"RUSTMETER_")
                    || (value.contains("settings::") && value.trim_end().ends_with(".name;"));
                let ident = head.split("const ").nth(1)?.split(':').next()?.trim();
                is_name.then(|| ident.to_string())
            })
            .collect()
    }

    /// Each place in `source` that reads the environment (`env::var(`, `var_os(`) with a
    /// `RUSTMETER_*` name: a literal, or one of `constants`.
    fn direct_reads(source: &str, constants: &BTreeSet<String>) -> Vec<String> {
        let mut found = Vec::new();
        for (number, line) in source.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for call in ["env::var(", "var_os("] {
                for (at, _) in code.match_indices(call) {
                    let args = &code[at + call.len()..];
                    let arg = args.split(')').next().unwrap_or("").trim();
                    let ident = arg
                        .trim_start_matches('&')
                        .rsplit("::")
                        .next()
                        .unwrap_or("");
                    if arg.contains("RUSTMETER_") || constants.contains(ident) {
                        found.push(format!("line {}: {}", number + 1, line.trim()));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn the_reader_check_finds_direct_reads() {
        let constants = name_constants(
            "pub const VAR: &str = \"RUSTMETER_X\";\nconst B: &str = crate::settings::SPARE.name;\nconst C: &str = \"HOME\";",
        );
        assert_eq!(constants, BTreeSet::from(["VAR".into(), "B".into()]));
        let source = "let a = std::env::var(\"RUSTMETER_X\");\n\
                      let b = std::env::var_os(B);\n\
                      let c = env::var(&super::VAR).ok();\n\
                      let d = std::env::var_os(\"HOME\");\n\
                      command.env(\"RUSTMETER_X\", \"1\"); // std::env::var(\"RUSTMETER_X\")\n";
        let reads = direct_reads(source, &constants);
        assert_eq!(reads.len(), 3, "{reads:?}");
    }

    /// Only this module reads `RUSTMETER_*` variables from the environment.
    #[test]
    fn no_other_module_reads_a_setting_directly() {
        let mut files = Vec::new();
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        assert!(files.len() > 20, "found only {} sources", files.len());
        let constants: BTreeSet<String> =
            files.iter().flat_map(|(_, s)| name_constants(s)).collect();
        let mut offenders = Vec::new();
        for (path, source) in &files {
            if path.ends_with("src/settings.rs") {
                continue;
            }
            for read in direct_reads(source, &constants) {
                offenders.push(format!("{}: {read}", path.display()));
            }
        }
        assert!(
            offenders.is_empty(),
            "read these through crate::settings:\n{}",
            offenders.join("\n")
        );
    }

    /// Every variable name written as a whole string literal in the kernel and the
    /// `rustmeter` crate is in the table, so the table is the complete list.
    #[test]
    fn every_variable_in_the_sources_is_in_the_table() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        sources(&root.join("src"), &mut files);
        sources(&root.join("../api/src"), &mut files);
        let mut missing = BTreeSet::new();
        for (path, source) in &files {
            // This module's own tests quote made-up names.
            if path.ends_with("src/settings.rs") {
                continue;
            }
            for piece in source.split('"') {
                let is_name = piece.starts_with("RUSTMETER_")
                    && piece
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if is_name && find(piece).is_none() {
                    missing.insert(format!("{} in {}", piece, path.display()));
                }
            }
        }
        assert!(missing.is_empty(), "not in the settings table: {missing:?}");
    }
}
