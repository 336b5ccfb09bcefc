//! The hand-over on the spare's Unix socket: the launcher sends one line of JSON (the
//! connection file's absolute path, its pid) together with its stdin, stdout and stderr
//! as `SCM_RIGHTS`; the spare answers `ok <pid>` or `error <why>`. After that the
//! connection stays open as the link: either side closing it means the other is gone.
//!
//! Owns only the bytes and descriptors on that socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub connection_file: PathBuf,
    pub launcher_pid: u32,
}

const MAX_REQUEST: usize = 64 * 1024;

/// Sends the request with this process's fds 0, 1 and 2.
pub fn send(stream: &UnixStream, request: &Request) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(request)?;
    bytes.push(b'\n');
    let fds: [RawFd; 3] = [0, 1, 2];
    let fd_bytes = std::mem::size_of_val(&fds) as u32;
    let mut control = vec![0u8; unsafe { libc::CMSG_SPACE(fd_bytes) } as usize];
    let mut iov = libc::iovec {
        iov_base: bytes.as_mut_ptr().cast(),
        iov_len: bytes.len(),
    };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
    }
    let sent = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if (sent as usize) < bytes.len() {
        (&*stream).write_all(&bytes[sent as usize..])?;
    }
    Ok(())
}

/// Receives a request and the descriptors that came with it (stdin, stdout, stderr).
pub fn receive(stream: &UnixStream) -> std::io::Result<(Request, Vec<OwnedFd>)> {
    let mut buffer = vec![0u8; MAX_REQUEST];
    let mut control = vec![0u8; unsafe { libc::CMSG_SPACE(64) } as usize];
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    let received = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if received < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let mut line = buffer[..received as usize].to_vec();
    if !line.contains(&b'\n') {
        let mut rest = Vec::new();
        let mut reader = BufReader::new(stream).take(MAX_REQUEST as u64);
        reader.read_until(b'\n', &mut rest)?;
        line.extend(rest);
    }
    let request = serde_json::from_slice(line.trim_ascii()).map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad request: {e}"))
    })?;
    Ok((request, fds))
}

/// The spare's answer: `Ok(pid)` when it serves the launch.
pub fn read_reply(stream: &UnixStream) -> std::io::Result<Result<u32, String>> {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let line = line.trim();
    Ok(match line.strip_prefix("ok ") {
        Some(pid) => pid.parse().map_err(|_| format!("bad reply {line:?}")),
        None => Err(line.strip_prefix("error ").unwrap_or(line).to_string()),
    })
}

pub fn write_reply(mut stream: &UnixStream, reply: Result<u32, &str>) -> std::io::Result<()> {
    let line = match reply {
        Ok(pid) => format!("ok {pid}\n"),
        Err(why) => format!("error {}\n", why.replace('\n', " ")),
    };
    stream.write_all(line.as_bytes())
}

/// The uid of the process on the other end.
pub fn peer_uid(stream: &UnixStream) -> Option<u32> {
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(cred.uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_carries_three_descriptors() {
        let (a, b) = UnixStream::pair().unwrap();
        let request = Request {
            connection_file: "/tmp/kernel-x.json".into(),
            launcher_pid: 42,
        };
        send(&a, &request).unwrap();
        let (got, fds) = receive(&b).unwrap();
        assert_eq!(got.connection_file, request.connection_file);
        assert_eq!(got.launcher_pid, 42);
        assert_eq!(fds.len(), 3);
        write_reply(&b, Ok(7)).unwrap();
        assert_eq!(read_reply(&a).unwrap(), Ok(7));
        write_reply(&b, Err("no")).unwrap();
        assert_eq!(read_reply(&a).unwrap(), Err("no".to_string()));
        assert_eq!(peer_uid(&a), Some(unsafe { libc::getuid() }));
    }
}
