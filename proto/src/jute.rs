//! Jute primitive encoding: big-endian integers, one-byte booleans, and
//! length-prefixed buffers, strings and vectors where length `-1` means null.
//!
//! The reader is bounded by its slice and never panics: a short or lying
//! length gives [`DecodeError`].

use thiserror::Error;

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("truncated record: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("negative or oversized length {len} at offset {offset}")]
    BadLength { offset: usize, len: i32 },
    #[error("string at offset {offset} is not valid UTF-8")]
    BadUtf8 { offset: usize },
    #[error("unknown opcode {0}")]
    UnknownOpCode(i32),
    #[error("invalid value {value} for {field}")]
    BadValue { field: &'static str, value: i64 },
    #[error("{0} trailing bytes after record")]
    Trailing(usize),
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { len: i64, max: usize },
}

/// Reads jute primitives from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Errors unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.take(1)?[0] != 0)
    }

    /// Reads a length that must be `-1` (null) or fit in what is left.
    fn read_len(&mut self, elem_min: usize) -> Result<Option<usize>, DecodeError> {
        let offset = self.pos;
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || (len as usize).saturating_mul(elem_min) > self.remaining() {
            return Err(DecodeError::BadLength { offset, len });
        }
        Ok(Some(len as usize))
    }

    /// A buffer; null reads as empty, as ZooKeeper's server treats it.
    pub fn read_buffer(&mut self) -> Result<Vec<u8>, DecodeError> {
        Ok(self.read_opt_buffer()?.unwrap_or_default())
    }

    pub fn read_opt_buffer(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.read_len(1)? {
            None => Ok(None),
            Some(n) => Ok(Some(self.take(n)?.to_vec())),
        }
    }

    /// A string; null reads as empty.
    pub fn read_string(&mut self) -> Result<String, DecodeError> {
        Ok(self.read_opt_string()?.unwrap_or_default())
    }

    pub fn read_opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        let offset = self.pos;
        match self.read_len(1)? {
            None => Ok(None),
            Some(n) => {
                let b = self.take(n)?;
                String::from_utf8(b.to_vec())
                    .map(Some)
                    .map_err(|_| DecodeError::BadUtf8 { offset })
            }
        }
    }

    /// A vector whose elements take at least `elem_min` bytes each; null reads as empty.
    pub fn read_vec<T>(
        &mut self,
        elem_min: usize,
        mut f: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        match self.read_len(elem_min.max(1))? {
            None => Ok(Vec::new()),
            Some(n) => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(f(self)?);
                }
                Ok(v)
            }
        }
    }

    pub fn read_string_vec(&mut self) -> Result<Vec<String>, DecodeError> {
        self.read_vec(4, |r| r.read_string())
    }
}

/// Writes jute primitives into a growable buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }

    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    /// Starts a frame: reserves the 4-byte length prefix, filled by [`Writer::finish_frame`].
    pub fn framed() -> Self {
        Writer {
            buf: vec![0, 0, 0, 0],
        }
    }

    /// Fills in the length prefix reserved by [`Writer::framed`].
    pub fn finish_frame(mut self) -> Vec<u8> {
        let len = (self.buf.len() - 4) as i32;
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn write_i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn write_i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn write_bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }

    pub fn write_buffer(&mut self, v: &[u8]) {
        self.write_i32(v.len() as i32);
        self.buf.extend_from_slice(v);
    }

    pub fn write_opt_buffer(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.write_i32(-1),
            Some(b) => self.write_buffer(b),
        }
    }

    pub fn write_string(&mut self, v: &str) {
        self.write_buffer(v.as_bytes());
    }

    pub fn write_vec<T>(&mut self, v: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.write_i32(v.len() as i32);
        for e in v {
            f(self, e);
        }
    }

    pub fn write_string_vec<S: AsRef<str>>(&mut self, v: &[S]) {
        self.write_vec(v, |w, s| w.write_string(s.as_ref()));
    }

    pub fn write_raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_big_endian_and_round_trip() {
        let mut w = Writer::new();
        w.write_i32(-2);
        w.write_i64(0x0102030405060708);
        w.write_bool(true);
        w.write_string("/a");
        w.write_opt_buffer(None);
        assert_eq!(
            w.as_slice(),
            &[
                0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 1, 0, 0, 0, 2, b'/', b'a', 0xff,
                0xff, 0xff, 0xff
            ]
        );
        let bytes = w.into_inner();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.read_i32().unwrap(), -2);
        assert_eq!(r.read_i64().unwrap(), 0x0102030405060708);
        assert!(r.read_bool().unwrap());
        assert_eq!(r.read_string().unwrap(), "/a");
        assert_eq!(r.read_opt_buffer().unwrap(), None);
        r.finish().unwrap();
    }

    #[test]
    fn lying_lengths_are_errors_not_panics() {
        let bytes = [0x7f, 0xff, 0xff, 0xff, 1, 2];
        assert!(matches!(
            Reader::new(&bytes).read_buffer(),
            Err(DecodeError::BadLength { .. })
        ));
        let bytes = [0xff, 0xff, 0xff, 0xf0];
        assert!(Reader::new(&bytes).read_string().is_err());
        assert!(Reader::new(&[0, 0]).read_i32().is_err());
        // A vector claiming a billion strings in 8 bytes is refused before allocating.
        let bytes = [0x3b, 0x9a, 0xca, 0x00, 0, 0, 0, 0];
        assert!(Reader::new(&bytes).read_string_vec().is_err());
        let bytes = [0, 0, 0, 2, 0xff, 0xfe];
        assert!(matches!(
            Reader::new(&bytes).read_string(),
            Err(DecodeError::BadUtf8 { .. })
        ));
    }
}
