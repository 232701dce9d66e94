//! Znode path rules, exactly as ZooKeeper's `PathUtils.validatePath` applies them.
//!
//! ZooKeeper checks UTF-16 code units, so a character outside the Basic
//! Multilingual Plane (a surrogate pair in Java) is refused, as are the private
//! use area and the specials block.

use crate::error::StoreError;

/// Checks `path` as ZooKeeper would. A sequential create may end in `/`
/// (ZooKeeper validates `path + "1"`).
pub fn validate_path(path: &str, is_sequential: bool) -> Result<(), StoreError> {
    // ASCII paths (nearly all) are their own UTF-16 code units: no copy.
    let result = if path.is_ascii() {
        let b = path.as_bytes();
        let len = b.len() + usize::from(is_sequential);
        check_units(len, |i| b.get(i).map_or(u16::from(b'1'), |&c| u16::from(c)))
    } else {
        let mut units: Vec<u16> = path.encode_utf16().collect();
        if is_sequential {
            units.push(u16::from(b'1'));
        }
        check_units(units.len(), |i| units[i])
    };
    result.map_err(|reason| StoreError::InvalidPath {
        path: path.to_string(),
        reason,
    })
}

/// ZooKeeper's checks over `len` UTF-16 code units, `unit(i)` being the i-th.
fn check_units(len: usize, unit: impl Fn(usize) -> u16) -> Result<(), String> {
    if len == 0 {
        return Err("Path length must be > 0".into());
    }
    if unit(0) != u16::from(b'/') {
        return Err("Path must start with / character".into());
    }
    if len == 1 {
        return Ok(());
    }
    if unit(len - 1) == u16::from(b'/') {
        return Err("Path must not end with / character".into());
    }
    let slash = u16::from(b'/');
    let dot = u16::from(b'.');
    // A segment boundary follows position i when i is the last unit or the next is '/'.
    let ends_segment = |i: usize| i + 1 == len || unit(i + 1) == slash;
    let mut last = slash;
    for i in 1..len {
        let c = unit(i);
        let reason = if c == 0 {
            Some("null character not allowed")
        } else if c == slash && last == slash {
            Some("empty node name specified")
        } else if c == dot && last == dot {
            // "/.." as a whole segment; "a..b" and "..." are fine.
            (unit(i - 2) == slash && ends_segment(i)).then_some("relative paths not allowed")
        } else if c == dot {
            (unit(i - 1) == slash && ends_segment(i)).then_some("relative paths not allowed")
        } else if (0x0001..=0x001f).contains(&c)
            || (0x007f..=0x009f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || c >= 0xfff0
        {
            Some("invalid character")
        } else {
            None
        };
        if let Some(r) = reason {
            return Err(format!("{r} @{i}"));
        }
        last = c;
    }
    Ok(())
}

/// The parent of a znode path: `"/a/b"` -> `"/a"`, `"/a"` -> `"/"`, `"/"` -> `"/"`.
/// Never panics; a path without `/` has parent `"/"`.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last segment of a znode path: `"/a/b"` -> `"b"`, `"/"` -> `""`.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// `dir` joined with a child `name`, handling the root.
pub fn join(dir: &str, name: &str) -> String {
    let mut s = String::with_capacity(dir.len() + 1 + name.len());
    s.push_str(dir);
    if !dir.ends_with('/') {
        s.push('/');
    }
    s.push_str(name);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_path_matches_zookeeper_path_utils_table() {
        // Goal: every accept/refuse rule of PathUtils.validatePath, including its quirks.
        let valid = [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/.a",
            "/a.",
            "/...",
            "/a..",
            "/..a",
            "/a/b/c-0000000001",
            "/zookeeper",
            "/ü/ñ",
            "/\u{a0}",
            "/\u{f900}",
            "/\u{ffef}",
            "/ /x",
        ];
        for p in valid {
            assert!(validate_path(p, false).is_ok(), "{p:?} should be valid");
        }
        let invalid = [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/./a",
            "/a/.",
            "/..",
            "/../a",
            "/a/..",
            "/a/../b",
            "/a\0b",
            "/\u{1}",
            "/\u{1f}",
            "/\u{7f}",
            "/\u{9f}",
            "/\u{e000}",
            "/\u{f8ff}",
            "/\u{fff0}",
            "/\u{ffff}",
            "/\u{1F600}",
        ];
        for p in invalid {
            assert!(validate_path(p, false).is_err(), "{p:?} should be invalid");
        }
    }

    #[test]
    fn sequential_paths_may_end_in_slash() {
        // Goal: ZooKeeper validates path+"1" for sequential creates.
        assert!(validate_path("/a/", true).is_ok());
        assert!(validate_path("/a/", false).is_err());
        assert!(validate_path("/a//", true).is_err());
        assert!(validate_path("/", true).is_ok());
        assert!(validate_path("/a/.", true).is_ok());
    }

    #[test]
    fn invalid_path_maps_to_bad_arguments() {
        // Goal: the server can reply with the right code straight from the error.
        let e = validate_path("x", false).unwrap_err();
        assert_eq!(e.code(), corral_proto::ErrorCode::BadArguments);
    }

    #[test]
    fn parent_name_and_join() {
        // Goal: path helpers handle the root and never panic.
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/"), "/");
        assert_eq!(parent("x"), "/");
        assert_eq!(name("/a/b"), "b");
        assert_eq!(name("/a"), "a");
        assert_eq!(name("/"), "");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
