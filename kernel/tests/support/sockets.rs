//! The sockets a process listens on, read from /proc (Linux): for tests that check where
//! the kernel listens, and for waiting until a started kernel listens before connecting.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeSet;

/// Socket inodes the process holds open.
pub fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    // A process that is gone holds nothing.
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    fds.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// (address, port) of the TCP sockets `pid` listens on, from /proc/net/tcp and tcp6.
pub fn tcp_listeners(pid: u32) -> BTreeSet<(String, u16)> {
    let mine = socket_inodes(pid);
    let mut found = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let inode: u64 = f[9].parse().unwrap();
            if f[3] != "0A" || !mine.contains(&inode) {
                continue;
            }
            let (addr, port) = f[1].split_once(':').unwrap();
            let address = if addr.len() == 8 {
                let n = u32::from_str_radix(addr, 16).unwrap();
                std::net::Ipv4Addr::from(n.swap_bytes()).to_string()
            } else {
                format!("ipv6:{addr}")
            };
            found.insert((address, u16::from_str_radix(port, 16).unwrap()));
        }
    }
    found
}

/// Paths of the unix sockets `pid` listens on, from /proc/net/unix.
pub fn unix_listeners(pid: u32) -> Vec<String> {
    let mine = socket_inodes(pid);
    std::fs::read_to_string("/proc/net/unix")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let listening = f[3] == "00010000"; // __SO_ACCEPTCON
            let inode: u64 = f[6].parse().ok()?;
            (listening && mine.contains(&inode)).then(|| f.get(7).unwrap_or(&"").to_string())
        })
        .collect()
}
