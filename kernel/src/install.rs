//! The kernelspec: `kernel.json` and the two logos (committed PNGs under `kernel/assets/`),
//! written into a folder that `jupyter kernelspec install` then registers. Builds nothing
//! and registers nothing.

use anyhow::Context;
use jupyter_protocol::JupyterKernelspec;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Clone)]
pub struct KernelSpecOptions {
    /// Rust std sources for rust-analyzer, when they are not in the toolchain.
    pub rust_src: Option<PathBuf>,
    /// Extra environment (e.g. `RUSTMETER_TELEMETRY=compact`).
    pub env: Vec<(String, String)>,
}

/// The kernel.json contents. jupyter_protocol's own type, so the fields are the ones
/// Jupyter reads; install.sh writes no kernel.json of its own.
pub fn kernel_json(binary: &Path, options: &KernelSpecOptions) -> JupyterKernelspec {
    let mut env = HashMap::new();
    if let Some(src) = &options.rust_src {
        env.insert("RUST_SRC_PATH".to_string(), src.display().to_string());
    }
    for (k, v) in &options.env {
        env.insert(k.clone(), v.clone());
    }
    let metadata = HashMap::from([
        ("debugger".to_string(), serde_json::Value::Bool(false)),
        (
            "rustmeter".to_string(),
            serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }),
        ),
    ]);
    JupyterKernelspec {
        argv: vec![
            binary.display().to_string(),
            "kernel".to_string(),
            "--connection-file".to_string(),
            "{connection_file}".to_string(),
        ],
        display_name: "Rust (rustmeter)".to_string(),
        language: "rust".to_string(),
        metadata: Some(metadata),
        interrupt_mode: Some("message".to_string()),
        env: Some(env),
    }
}

/// Writes kernel.json and logos into `dir` (created if needed).
pub fn write_kernelspec(dir: &Path, options: &KernelSpecOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let binary = std::env::current_exe()
        .context("cannot find the rustmeter binary's path")?
        .canonicalize()?;
    // Through a `Value`, whose objects keep their keys sorted: the same file every time,
    // whatever order the spec's hash maps iterate in.
    let json = serde_json::to_string_pretty(&serde_json::to_value(kernel_json(&binary, options))?)?;
    std::fs::write(dir.join("kernel.json"), json)?;
    for (name, png) in LOGOS {
        std::fs::write(dir.join(name), png)?;
    }
    Ok(())
}

/// The logos, by file name: a rust-orange rounded tile with three rising white bars (a
/// meter). Committed images; Jupyter looks for exactly these two names.
pub const LOGOS: [(&str, &[u8]); 2] = [
    ("logo-32x32.png", include_bytes!("../assets/logo-32x32.png")),
    ("logo-64x64.png", include_bytes!("../assets/logo-64x64.png")),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_json_has_required_fields() {
        let opts = KernelSpecOptions {
            rust_src: Some("/src".into()),
            env: vec![("A".into(), "1".into())],
        };
        let j = serde_json::to_value(kernel_json(Path::new("/bin/rustmeter"), &opts)).unwrap();
        assert_eq!(j["argv"][1], "kernel");
        assert_eq!(j["argv"][3], "{connection_file}");
        assert_eq!(j["interrupt_mode"], "message");
        assert_eq!(j["language"], "rust");
        assert!(j["display_name"].as_str().unwrap().contains("Rust"));
        assert_eq!(j["env"]["RUST_SRC_PATH"], "/src");
        assert_eq!(j["env"]["A"], "1");
    }

    #[test]
    fn logos_are_pngs_of_the_size_their_names_say() {
        for (name, png) in LOGOS {
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}");
            assert_eq!(&png[12..16], b"IHDR", "{name}");
            let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
            let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
            assert_eq!(name, format!("logo-{width}x{height}.png"));
        }
    }
}
