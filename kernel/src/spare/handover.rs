//! The hand-over on the spare's Unix socket: the launcher sends one line of JSON (the
//! connection file's absolute path, its pid, its working folder) together with its stdin, stdout and stderr
//! as `SCM_RIGHTS`; the spare answers `ok <pid>` or `error <why>`. After that the
//! connection stays open as the link: either side closing it means the other is gone.
//!
//! Owns only the bytes and descriptors on that socket.

use rustix::net::{
    self, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use rustix::stdio;
use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub connection_file: PathBuf,
    pub launcher_pid: u32,
    /// The launch's working folder (the notebook's): the spare moves itself and the
    /// process that runs cells there.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
}

const MAX_REQUEST: usize = 64 * 1024;

/// Sends the request with this process's fds 0, 1 and its real stderr (the log's
/// destination, not the filter in front of fd 2).
pub fn send(stream: &UnixStream, request: &Request) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(request)?;
    bytes.push(b'\n');
    let stderr = crate::log::real_stderr()?;
    let stdio = [stdio::stdin(), stdio::stdout(), stderr.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(
        control.push(SendAncillaryMessage::ScmRights(&stdio)),
        "the buffer is sized for three descriptors"
    );
    let sent = net::sendmsg(
        stream,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if sent < bytes.len() {
        (&*stream).write_all(&bytes[sent..])?;
    }
    Ok(())
}

/// Receives a request and the descriptors that came with it (stdin, stdout, stderr).
pub fn receive(stream: &UnixStream) -> std::io::Result<(Request, Vec<OwnedFd>)> {
    let mut buffer = vec![0u8; MAX_REQUEST];
    // Room for 16 descriptors, three expected: any extras arrive owned, and are closed
    // when the caller drops them.
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(16))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = net::recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut buffer)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?
    .bytes;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received_fds) = message {
            fds.extend(received_fds);
        }
    }
    let mut line = buffer[..received].to_vec();
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
    net::sockopt::socket_peercred(stream)
        .ok()
        .map(|cred| cred.uid.as_raw())
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
            cwd: Some("/home/learner/notebooks".into()),
        };
        send(&a, &request).unwrap();
        let (got, fds) = receive(&b).unwrap();
        assert_eq!(got.connection_file, request.connection_file);
        assert_eq!(got.launcher_pid, 42);
        assert_eq!(got.cwd, request.cwd);
        assert_eq!(fds.len(), 3);
        for (number, fd) in fds.into_iter().enumerate() {
            use std::os::unix::fs::MetadataExt;
            let received = std::fs::File::from(fd).metadata().unwrap();
            let own = std::fs::metadata(format!("/proc/self/fd/{number}")).unwrap();
            let identity = |m: &std::fs::Metadata| (m.dev(), m.ino());
            assert_eq!(identity(&received), identity(&own), "descriptor {number}");
        }
        write_reply(&b, Ok(7)).unwrap();
        assert_eq!(read_reply(&a).unwrap(), Ok(7));
        write_reply(&b, Err("no")).unwrap();
        assert_eq!(read_reply(&a).unwrap(), Err("no".to_string()));
        assert_eq!(peer_uid(&a), Some(rustix::process::getuid().as_raw()));
    }
}
