//! Checks the ZMTP 3 byte stream a peer sends to the kernel, chunk by chunk, before the
//! `zeromq` codec sees it: the 64-byte greeting (signature, version 3, the NULL mechanism
//! Jupyter uses) and then every frame header (flags, 1- or 8-byte size).
//!
//! Why: `zeromq` 0.7 reserves a frame's declared size before reading it, so a peer that
//! declares a 2^62-byte frame aborts the process before any signature is checked. This
//! module owns only the framing rules; it must not know sockets, Jupyter or HMAC.

/// Why a connection was refused; the guard logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    Greeting(&'static str),
    Flags(u8),
    FrameTooLarge { declared: u64, limit: u64 },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Greeting(what) => write!(f, "bad ZMTP greeting: {what}"),
            Violation::Flags(flags) => write!(f, "bad ZMTP frame flags {flags:#04x}"),
            Violation::FrameTooLarge { declared, limit } => write!(
                f,
                "declared a {declared}-byte frame, above the {limit}-byte limit \
                 (RUSTMETER_WIRE_MAX_FRAME)"
            ),
        }
    }
}

const GREETING_LEN: usize = 64;
const MECHANISM: std::ops::Range<usize> = 12..32;
const FLAG_MORE: u8 = 0x01;
const FLAG_LONG: u8 = 0x02;
const FLAG_COMMAND: u8 = 0x04;

#[derive(Debug)]
enum State {
    Greeting { seen: usize },
    Header,
    Size { long: bool, read: u8, value: u64 },
    Body { left: u64 },
}

/// The client→kernel half of one connection.
#[derive(Debug)]
pub struct InboundCheck {
    state: State,
    limit: u64,
    mechanism: [u8; 20],
    frames: u64,
}

impl InboundCheck {
    /// `limit`: the largest frame body (message part or command) a peer may declare.
    pub fn new(limit: u64) -> Self {
        Self {
            state: State::Greeting { seen: 0 },
            limit,
            mechanism: [0; 20],
            frames: 0,
        }
    }

    /// Frames whose header has been checked so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// True once the whole greeting has arrived and passed.
    pub fn greeted(&self) -> bool {
        !matches!(self.state, State::Greeting { .. })
    }

    /// Checks the next bytes of the stream. After an error the connection must be closed
    /// without forwarding `chunk`.
    pub fn check(&mut self, chunk: &[u8]) -> Result<(), Violation> {
        let mut at = 0;
        while at < chunk.len() {
            match &mut self.state {
                State::Greeting { seen } => {
                    let position = *seen;
                    greeting_byte(position, chunk[at], &mut self.mechanism)?;
                    at += 1;
                    *seen += 1;
                    if *seen == GREETING_LEN {
                        self.state = State::Header;
                    }
                }
                State::Header => {
                    let flags = chunk[at];
                    at += 1;
                    let command = flags & FLAG_COMMAND != 0;
                    if flags & !(FLAG_MORE | FLAG_LONG | FLAG_COMMAND) != 0
                        || (command && flags & FLAG_MORE != 0)
                    {
                        return Err(Violation::Flags(flags));
                    }
                    self.state = State::Size {
                        long: flags & FLAG_LONG != 0,
                        read: 0,
                        value: 0,
                    };
                }
                State::Size { long, read, value } => {
                    *value = (*value << 8) | u64::from(chunk[at]);
                    at += 1;
                    *read += 1;
                    let width = if *long { 8 } else { 1 };
                    if *read == width {
                        let declared = *value;
                        if declared > self.limit {
                            return Err(Violation::FrameTooLarge {
                                declared,
                                limit: self.limit,
                            });
                        }
                        self.frames += 1;
                        self.state = if declared == 0 {
                            State::Header
                        } else {
                            State::Body { left: declared }
                        };
                    }
                }
                State::Body { left } => {
                    let available = (chunk.len() - at) as u64;
                    let take = available.min(*left);
                    at += take as usize;
                    *left -= take;
                    if *left == 0 {
                        self.state = State::Header;
                    }
                }
            }
        }
        Ok(())
    }
}

/// One greeting byte at `position` (ZMTP 3.x, RFC 23/37).
fn greeting_byte(position: usize, byte: u8, mechanism: &mut [u8; 20]) -> Result<(), Violation> {
    match position {
        0 if byte != 0xff => Err(Violation::Greeting("the signature must start with 0xFF")),
        // 1..=8 is padding (libzmq puts a ZMTP 1.0 length there): any value.
        9 if byte != 0x7f => Err(Violation::Greeting("the signature must end with 0x7F")),
        10 if byte < 3 => Err(Violation::Greeting("ZMTP version below 3")),
        p if MECHANISM.contains(&p) => {
            mechanism[p - MECHANISM.start] = byte;
            if p + 1 == MECHANISM.end && mechanism[..] != *b"NULL\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0" {
                return Err(Violation::Greeting(
                    "only the NULL security mechanism is accepted (Jupyter signs messages)",
                ));
            }
            Ok(())
        }
        32 if byte > 1 => Err(Violation::Greeting("as-server must be 0 or 1")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting() -> Vec<u8> {
        let mut g = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 1];
        g.extend(b"NULL");
        g.resize(GREETING_LEN, 0);
        g
    }

    fn short_frame(flags: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![flags, body.len() as u8];
        f.extend(body);
        f
    }

    #[test]
    fn a_valid_stream_passes_in_any_chunking() {
        let mut stream = greeting();
        stream.extend(short_frame(FLAG_COMMAND, b"\x05READY"));
        stream.extend(short_frame(FLAG_MORE, b"<IDS|MSG>"));
        let mut long = vec![FLAG_LONG];
        long.extend(300u64.to_be_bytes());
        long.extend(vec![7u8; 300]);
        stream.extend(long);
        stream.extend(short_frame(0, b""));
        for chunk in [1, 3, 64, 65, 1000] {
            let mut check = InboundCheck::new(1 << 20);
            for piece in stream.chunks(chunk) {
                check.check(piece).unwrap();
            }
            assert!(check.greeted());
            assert_eq!(check.frames(), 4, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_huge_declared_frame_is_refused_at_its_header() {
        let mut check = InboundCheck::new(64 << 20);
        check.check(&greeting()).unwrap();
        let mut header = vec![FLAG_LONG];
        header.extend((1u64 << 62).to_be_bytes());
        assert_eq!(
            check.check(&header),
            Err(Violation::FrameTooLarge {
                declared: 1 << 62,
                limit: 64 << 20
            })
        );
        let mut at_limit = InboundCheck::new(1000);
        at_limit.check(&greeting()).unwrap();
        let mut header = vec![FLAG_LONG | FLAG_COMMAND];
        header.extend(1000u64.to_be_bytes());
        assert!(
            at_limit.check(&header).is_ok(),
            "the limit itself is allowed"
        );
    }

    #[test]
    fn bad_greetings_and_flags_are_refused() {
        let mut g = greeting();
        g[0] = b'G';
        assert!(matches!(
            InboundCheck::new(10).check(&g),
            Err(Violation::Greeting(_))
        ));
        let mut g = greeting();
        g[10] = 2;
        assert!(InboundCheck::new(10).check(&g).is_err());
        let mut g = greeting();
        g[12..17].copy_from_slice(b"CURVE");
        assert!(InboundCheck::new(10).check(&g).is_err());
        for flags in [0x08, 0x80, FLAG_COMMAND | FLAG_MORE] {
            let mut check = InboundCheck::new(10);
            check.check(&greeting()).unwrap();
            assert_eq!(check.check(&[flags]), Err(Violation::Flags(flags)));
        }
    }
}
