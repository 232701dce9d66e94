//! Framing: every packet is a 4-byte big-endian length then that many bytes.
//! The length is bounded by `jute.maxbuffer` (1 MiB by default).

use crate::jute::DecodeError;

/// ZooKeeper's default `jute.maxbuffer`.
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024;

/// Checks a frame length prefix against the bound.
pub fn check_len(prefix: [u8; 4], max: usize) -> Result<usize, DecodeError> {
    let len = i32::from_be_bytes(prefix);
    if len < 0 || len as usize > max {
        return Err(DecodeError::FrameTooLarge {
            len: len as i64,
            max,
        });
    }
    Ok(len as usize)
}

/// Splits whole frames off the front of `buf`. Returns the frame bodies and
/// the number of bytes consumed; a partial frame stays for the next read.
pub fn split_frames(buf: &[u8], max: usize) -> Result<(Vec<&[u8]>, usize), DecodeError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while buf.len() - pos >= 4 {
        let len = check_len([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]], max)?;
        if buf.len() - pos - 4 < len {
            break;
        }
        out.push(&buf[pos + 4..pos + 4 + len]);
        pos += 4 + len;
    }
    Ok((out, pos))
}

/// If the first four bytes of a connection spell a four-letter word, returns it.
pub fn four_letter_word(prefix: [u8; 4]) -> Option<&'static str> {
    const WORDS: [&str; 19] = [
        "ruok", "srvr", "stat", "mntr", "cons", "envi", "conf", "wchs", "wchc", "wchp", "dump",
        "isro", "crst", "srst", "dirs", "gtmk", "stmk", "hash", "rqos",
    ];
    WORDS.iter().copied().find(|w| w.as_bytes() == prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_partial_frames_wait() {
        let buf = [0, 0, 0, 2, 7, 8, 0, 0, 0, 1, 9, 0, 0, 0, 5, 1];
        let (frames, used) = split_frames(&buf, 100).unwrap();
        assert_eq!(frames, vec![&[7u8, 8][..], &[9u8][..]]);
        assert_eq!(used, 11);
    }

    #[test]
    fn oversized_and_negative_lengths_are_refused() {
        assert!(check_len([0, 0x10, 0, 1], DEFAULT_MAX_FRAME).is_err());
        assert!(check_len([0xff, 0, 0, 0], DEFAULT_MAX_FRAME).is_err());
        assert_eq!(
            check_len([0, 0x10, 0, 0], DEFAULT_MAX_FRAME).unwrap(),
            1 << 20
        );
    }

    #[test]
    fn four_letter_words_are_recognised() {
        assert_eq!(four_letter_word(*b"ruok"), Some("ruok"));
        assert_eq!(four_letter_word([0, 0, 0, 44]), None);
    }
}
