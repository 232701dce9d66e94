//! `corral-proto`: the ZooKeeper 3.9 client wire format, as pure encode/decode.
//!
//! - [`jute`]: the primitive encoding (big-endian ints, length-prefixed buffers,
//!   `-1` for null) with a bounded, never-panicking reader.
//! - [`records`]: every client record, field order from Apache ZooKeeper's
//!   `zookeeper.jute`.
//! - [`request`] / [`response`]: a whole client request or reply body keyed by opcode.
//! - [`frame`]: the 4-byte length prefix with the `jute.maxbuffer` bound.
//!
//! Nothing here does I/O. Every decoder returns [`DecodeError`] on bad input, never panics.

pub mod error;
pub mod frame;
pub mod jute;
pub mod opcode;
pub mod records;
pub mod request;
pub mod response;

pub use error::ErrorCode;
pub use jute::{DecodeError, Reader, Writer};
pub use opcode::{CreateMode, OpCode};
pub use records::*;
pub use request::{MultiOp, Request};
pub use response::{MultiResult, Response};
