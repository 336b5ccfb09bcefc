//! Who is on the other end of a TCP connection this process accepted: when the peer's
//! socket lives on this machine (in this network namespace), Linux lists it in
//! `/proc/net/tcp` or `/proc/net/tcp6` with the uid of the account that opened it.
//! A connection from another machine has no such entry.
//!
//! Leaf module: reads `/proc/net` only, imports nothing else of the crate and decides
//! nothing; the wire guard decides whom to refuse.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where the peer of an accepted connection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerOwner {
    /// A socket of this machine, opened by this uid.
    Local(u32),
    /// A loopback peer whose socket is not listed (it closed already): treated as unknown.
    LocalUnknown,
    /// Not a socket of this machine: a remote client.
    Remote,
}

/// The owner of the socket at `peer` that is connected to our socket at `local`.
pub fn owner(local: SocketAddr, peer: SocketAddr) -> PeerOwner {
    let (local, peer) = (normal(local), normal(peer));
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        if let Some(uid) = uid_in_table(&text, peer, local) {
            return PeerOwner::Local(uid);
        }
    }
    // A peer on loopback, or on the very address it reached us at, is on this machine
    // even when its row was missed (it closed, or the table changed while we read it).
    if peer.ip().is_loopback() || peer.ip() == local.ip() {
        PeerOwner::LocalUnknown
    } else {
        PeerOwner::Remote
    }
}

/// The uid column of the row whose local address is `socket` and remote is `connected_to`.
fn uid_in_table(text: &str, socket: SocketAddr, connected_to: SocketAddr) -> Option<u32> {
    text.lines().skip(1).find_map(|row| {
        let fields: Vec<&str> = row.split_whitespace().collect();
        let local = normal(parse_address(fields.get(1)?)?);
        let remote = normal(parse_address(fields.get(2)?)?);
        (local == socket && remote == connected_to)
            .then(|| fields.get(7)?.parse().ok())
            .flatten()
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): each 32-bit word is printed
/// as the number its bytes make in this machine's byte order.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for word in address.as_bytes().chunks(8) {
        let word = u32::from_str_radix(std::str::from_utf8(word).ok()?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:127.0.0.1`) as plain IPv4, and
/// only address and port kept: the tables have no IPv6 scope id (a link-local peer's is set).
fn normal(address: SocketAddr) -> SocketAddr {
    let ip = match address.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        IpAddr::V4(v4) => IpAddr::V4(v4),
    };
    SocketAddr::new(ip, address.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_tables_formats() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000  1001        0 1 1\n";
        let ours: SocketAddr = "127.0.0.1:41394".parse().unwrap();
        let theirs: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(uid_in_table(v4, theirs, ours), Some(1001));
            assert_eq!(uid_in_table(v4, ours, theirs), None);
            let mapped = "x\n 0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:A1B2 01 0:0 0:0 0  7 0 1\n";
            assert_eq!(uid_in_table(mapped, theirs, ours), Some(7));
        }
    }

    #[test]
    fn a_link_local_peer_matches_its_row_whatever_its_scope() {
        let ip: Ipv6Addr = "fe80::1".parse().unwrap();
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(ip, 4000, 0, 3));
        assert_eq!(normal(scoped), SocketAddr::new(IpAddr::V6(ip), 4000));
    }

    #[test]
    fn finds_the_owner_of_a_real_loopback_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let me = unsafe { libc::geteuid() };
        assert_eq!(
            owner(accepted.local_addr().unwrap(), peer),
            PeerOwner::Local(me)
        );
    }
}
