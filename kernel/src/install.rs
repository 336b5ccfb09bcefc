//! The kernelspec: `kernel.json` and the two logos, written into a folder that
//! `jupyter kernelspec install` then registers. Builds nothing and registers nothing.

use anyhow::Context;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Clone)]
pub struct KernelSpecOptions {
    /// Rust std sources for rust-analyzer, when they are not in the toolchain.
    pub rust_src: Option<PathBuf>,
    /// Extra environment (e.g. `RUSTMETER_TELEMETRY=compact`).
    pub env: Vec<(String, String)>,
}

pub fn kernel_json(binary: &Path, options: &KernelSpecOptions) -> serde_json::Value {
    let mut env = serde_json::Map::new();
    if let Some(src) = &options.rust_src {
        env.insert("RUST_SRC_PATH".into(), src.display().to_string().into());
    }
    for (k, v) in &options.env {
        env.insert(k.clone(), v.clone().into());
    }
    serde_json::json!({
        "argv": [binary.display().to_string(), "kernel", "--connection-file", "{connection_file}"],
        "display_name": "Rust (rustmeter)",
        "language": "rust",
        "interrupt_mode": "message",
        "env": env,
        "metadata": {
            "debugger": false,
            "rustmeter": { "version": env!("CARGO_PKG_VERSION") }
        }
    })
}

/// Writes kernel.json and logos into `dir` (created if needed).
pub fn write_kernelspec(dir: &Path, options: &KernelSpecOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let binary = std::env::current_exe()
        .context("cannot find the rustmeter binary's path")?
        .canonicalize()?;
    let json = serde_json::to_string_pretty(&kernel_json(&binary, options))?;
    std::fs::write(dir.join("kernel.json"), json)?;
    for size in [32u32, 64] {
        std::fs::write(dir.join(format!("logo-{size}x{size}.png")), logo_png(size))?;
    }
    Ok(())
}

/// The logo: a rust-orange rounded tile with three rising white bars (a meter).
pub fn logo_png(size: u32) -> Vec<u8> {
    let mut rgba = Vec::with_capacity((size * size * 4) as usize);
    let s = size as f32;
    let radius = s * 0.2;
    for y in 0..size {
        for x in 0..size {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let inside = rounded_rect_contains(fx, fy, s, radius);
            let bar = [(0.2, 0.55), (0.42, 0.35), (0.64, 0.15)]
                .iter()
                .any(|(left, top)| {
                    fx >= s * left && fx < s * (left + 0.16) && fy >= s * top && fy < s * 0.82
                });
            let pixel = match (inside, bar) {
                (false, _) => [0, 0, 0, 0],
                (true, true) => [255, 255, 255, 255],
                (true, false) => [206, 66, 43, 255],
            };
            rgba.extend_from_slice(&pixel);
        }
    }
    encode_png(size, size, &rgba)
}

fn rounded_rect_contains(x: f32, y: f32, s: f32, r: f32) -> bool {
    let cx = x.clamp(r, s - r);
    let cy = y.clamp(r, s - r);
    (x - cx).powi(2) + (y - cy).powi(2) <= r * r
}

/// A minimal PNG encoder (RGBA8, stored deflate blocks): enough for two small logos.
fn encode_png(width: u32, height: u32, rgba: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    for row in rgba.chunks((width * 4) as usize) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc_input);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + byte as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_json_has_required_fields() {
        let opts = KernelSpecOptions {
            rust_src: Some("/src".into()),
            env: vec![("A".into(), "1".into())],
        };
        let j = kernel_json(Path::new("/bin/rustmeter"), &opts);
        assert_eq!(j["argv"][1], "kernel");
        assert_eq!(j["argv"][3], "{connection_file}");
        assert_eq!(j["interrupt_mode"], "message");
        assert_eq!(j["language"], "rust");
        assert!(j["display_name"].as_str().unwrap().contains("Rust"));
        assert_eq!(j["env"]["RUST_SRC_PATH"], "/src");
        assert_eq!(j["env"]["A"], "1");
    }

    #[test]
    fn logo_is_a_png_of_the_right_size() {
        let png = logo_png(32);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 32);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }
}
