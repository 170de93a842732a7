//! PROXY protocol version 2 (HAProxy's binary header): how a proxy tells the server behind
//! it who the client is.
//!
//! The routing mesh relays a client's TCP connection to a task from an address of its own;
//! a port published with `proxy-protocol=v2` starts each relayed connection with a header
//! naming the client's address (source) and the address the client connected to
//! (destination). [`Header::encode`] writes one; [`parse`] reads one (`shoal whoami` uses it).
//!
//! The parser is strict and total: it never panics, and every malformed input is a
//! [`ParseError`] naming what is wrong. Input cut short is [`ParseError::Incomplete`] with
//! the number of bytes needed, so a reader can fetch exactly the header and not one byte of
//! what follows it. Addresses are read as [`Addresses::new`] makes them: IPv4-mapped IPv6
//! addresses as IPv4 when both are. Version 1 (the text form, `PROXY TCP4 …\r\n`) is refused
//! ([`ParseError::Version1`]): shoal sends only version 2. TLVs after the addresses are
//! skipped, unread.
//!
//! Pure code: no I/O, and no dependency on other shoal crates (the mesh and the workloads
//! depend on it).

mod header;
mod parse;

pub use header::{Addresses, Header, Transport};
pub use parse::{parse, ParseError};

/// The twelve bytes every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Length of the fixed part: signature, version and command, family and transport, length.
pub const FIXED_LEN: usize = 16;

/// The longest header there can be: the fixed part and a 16-bit length of what follows.
pub const MAX_LEN: usize = FIXED_LEN + u16::MAX as usize;
