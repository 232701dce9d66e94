//! A znode and the encoding of its kind in `ephemeralOwner`.
//!
//! ZooKeeper overloads `ephemeralOwner`: `0` is persistent, `i64::MIN` is a
//! container, a value whose top byte is `0xff` (and reserved bits zero) is a TTL
//! node with the TTL in the low 40 bits, anything else is the owning session.
//! Clients never see the container/TTL encodings: their `Stat.ephemeralOwner` is 0.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Arc;

use corral_proto::{Acl, Stat};

use crate::children::ChildSet;

/// `ephemeralOwner` of a container znode (`0x8000000000000000`).
pub const CONTAINER_OWNER: i64 = i64::MIN;

const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000_u64 as i64;
const RESERVED_BITS_MASK: i64 = 0x00ff_ff00_0000_0000;
const TTL_VALUE_MASK: i64 = !(EXTENDED_MASK | RESERVED_BITS_MASK);

/// The largest TTL ZooKeeper accepts: 2^40 - 1 ms (about 34 years).
pub const MAX_TTL_MS: i64 = TTL_VALUE_MASK;

/// `ephemeralOwner` for a TTL node, or `None` unless `1 <= ttl_ms <= MAX_TTL_MS`.
pub fn ttl_owner(ttl_ms: i64) -> Option<i64> {
    (1..=MAX_TTL_MS)
        .contains(&ttl_ms)
        .then_some(EXTENDED_MASK | ttl_ms)
}

/// What kind of znode an `ephemeralOwner` value denotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    /// Owned by this session; deleted when it closes.
    Ephemeral(i64),
    Container,
    /// Deleted by the server once childless and unmodified for this many ms.
    Ttl(i64),
}

impl NodeKind {
    pub fn from_owner(ephemeral_owner: i64) -> NodeKind {
        if ephemeral_owner == 0 {
            NodeKind::Persistent
        } else if ephemeral_owner == CONTAINER_OWNER {
            NodeKind::Container
        } else if ephemeral_owner & EXTENDED_MASK == EXTENDED_MASK
            && ephemeral_owner & RESERVED_BITS_MASK == 0
        {
            NodeKind::Ttl(ephemeral_owner & TTL_VALUE_MASK)
        } else {
            // ZooKeeper rejects other extended values; they cannot be created, and a
            // session id never has a 0xff top byte (server ids stop at 254).
            NodeKind::Ephemeral(ephemeral_owner)
        }
    }

    /// The raw `ephemeralOwner` this kind is stored as.
    pub fn owner(self) -> i64 {
        match self {
            NodeKind::Persistent => 0,
            NodeKind::Ephemeral(session) => session,
            NodeKind::Container => CONTAINER_OWNER,
            NodeKind::Ttl(ms) => EXTENDED_MASK | (ms & TTL_VALUE_MASK),
        }
    }

    /// The `ephemeralOwner` a client sees: the session for ephemerals, else 0.
    pub fn client_owner(self) -> i64 {
        match self {
            NodeKind::Ephemeral(session) => session,
            _ => 0,
        }
    }
}

/// A znode's ACL: a thin handle (one word) to the interned list, so
/// [`Node::acl`] can hand out the `Arc<[Acl]>` itself. Equal lists share one
/// handle (see `DataTree::intern`).
pub(crate) type AclRef = Arc<Arc<[Acl]>>;

/// One znode. The tree owns it; outside the crate it is read-only.
///
/// Laid out for size: 56 bytes in the tree's arena plus one heap block
/// (`Blob`) holding the name, the data, a non-zero `ephemeralOwner`, and
/// mzxid/mtime/version once a setData changed them (they change only
/// together with the data, which replaces the block anyway). The client
/// [`Stat`] is derived on demand by [`Node::stat`], never stored.
#[derive(Clone)]
pub struct Node {
    /// Name (the last path segment), data, null-data flag, raw owner and
    /// the fields setData changes.
    pub(crate) blob: Blob,
    pub(crate) acl: AclRef,
    pub(crate) children: Option<Box<ChildSet>>,
    pub(crate) czxid: i64,
    pub(crate) ctime: i64,
    pub(crate) pzxid: i64,
    /// ZooKeeper's persisted cversion: the number of child creates.
    pub(crate) cversion: i32,
    pub(crate) aversion: i32,
}

/// mzxid, mtime and version, which only setData changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Modified {
    pub mzxid: i64,
    pub mtime: i64,
    pub version: i32,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name())
            .field("data", &self.data())
            .field("acl", self.acl())
            .field("stat", &self.stat())
            .field("raw_owner", &self.raw_owner())
            .field("cversion", &self.cversion)
            .finish()
    }
}

impl Node {
    /// A node as a create at `zxid`/`time_ms` makes it.
    pub(crate) fn new(
        name: &str,
        data: Option<&[u8]>,
        acl: AclRef,
        owner: i64,
        zxid: i64,
        time_ms: i64,
    ) -> Node {
        Node {
            blob: Blob::new(name, data, owner, None),
            acl,
            children: None,
            czxid: zxid,
            ctime: time_ms,
            pzxid: zxid,
            cversion: 0,
            aversion: 0,
        }
    }

    /// A node with the given persisted fields (snapshot loading).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn with_fields(
        name: &str,
        data: Option<&[u8]>,
        acl: AclRef,
        owner: i64,
        czxid: i64,
        ctime: i64,
        pzxid: i64,
        modified: Modified,
        cversion: i32,
        aversion: i32,
    ) -> Node {
        let m = Self::stored(czxid, ctime, modified);
        Node {
            blob: Blob::new(name, data, owner, m),
            acl,
            children: None,
            czxid,
            ctime,
            pzxid,
            cversion,
            aversion,
        }
    }

    /// What the blob stores for `m`: nothing while it equals a fresh create's.
    fn stored(czxid: i64, ctime: i64, m: Modified) -> Option<Modified> {
        (m.mzxid != czxid || m.mtime != ctime || m.version != 0).then_some(m)
    }

    /// mzxid, mtime and version.
    pub(crate) fn modified(&self) -> Modified {
        self.blob.header().modified.unwrap_or(Modified {
            mzxid: self.czxid,
            mtime: self.ctime,
            version: 0,
        })
    }

    /// The node's name: the last segment of its path (`""` for the root).
    pub fn name(&self) -> &str {
        self.blob.name()
    }

    /// The data; `None` when a client wrote null data (ZooKeeper keeps null
    /// distinct from empty). Was the public field `data: Option<Vec<u8>>`.
    pub fn data(&self) -> Option<&[u8]> {
        self.blob.data()
    }

    /// The ACL list. Interned: equal lists share one allocation.
    pub fn acl(&self) -> &Arc<[Acl]> {
        &self.acl
    }

    /// Exactly the `Stat` ZooKeeper returns for this node (client cversion,
    /// client ephemeralOwner, live data_length and num_children). Computed
    /// on each call from the persisted fields.
    pub fn stat(&self) -> Stat {
        let n = self.num_children() as i32;
        let h = self.blob.header();
        let m = h.modified.unwrap_or(Modified {
            mzxid: self.czxid,
            mtime: self.ctime,
            version: 0,
        });
        Stat {
            czxid: self.czxid,
            mzxid: m.mzxid,
            ctime: self.ctime,
            mtime: m.mtime,
            version: m.version,
            cversion: self.cversion.wrapping_mul(2).wrapping_sub(n),
            aversion: self.aversion,
            ephemeral_owner: NodeKind::from_owner(h.owner).client_owner(),
            data_length: h.data_len as i32,
            num_children: n,
            pzxid: self.pzxid,
        }
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::from_owner(self.raw_owner())
    }

    /// The raw `ephemeralOwner` as stored in txns and snapshots.
    pub fn raw_owner(&self) -> i64 {
        self.blob.owner()
    }

    /// ZooKeeper's persisted cversion (number of child creates; deletes do not
    /// change it). The next sequential child's suffix is this value, formatted
    /// `%010d`, and a create's `parent_cversion` is this value + 1. The client
    /// `Stat.cversion` is derived: `2 * persisted - num_children`.
    pub fn persisted_cversion(&self) -> i32 {
        self.cversion
    }

    /// The data bytes; null data reads as empty.
    pub fn data_bytes(&self) -> &[u8] {
        self.data().unwrap_or(&[])
    }

    pub fn data_len(&self) -> usize {
        self.blob.data_len()
    }

    pub fn num_children(&self) -> usize {
        self.children.as_ref().map_or(0, |c| c.len())
    }

    /// Replaces the data (a setData), keeping the name and owner.
    pub(crate) fn set_data(&mut self, data: Option<&[u8]>, modified: Modified) {
        let m = Self::stored(self.czxid, self.ctime, modified);
        self.blob = Blob::new(self.name(), data, self.raw_owner(), m);
    }

    /// Heap bytes this node holds outside the arena, as glibc would round
    /// them (children sets not included).
    pub(crate) fn blob_heap_bytes(&self) -> usize {
        crate::children::malloc_chunk(self.blob.len())
    }
}

const NULL_DATA: u8 = 1;
const HAS_OWNER: u8 = 2;
/// The name length is a u32, not one byte.
const LONG_NAME: u8 = 4;
const HAS_MODIFIED: u8 = 8;

/// One heap block behind a thin pointer:
/// `flags u8 | name length (u8, or u32 LE with LONG_NAME) | name | data length (LEB128)
///  | [owner i64] | [mzxid i64, mtime i64, version i32] | data` (little-endian).
///
/// The name comes first, at a fixed offset for names under 256 bytes, as
/// child lookups read it most. `flags` says whether the data is null, how
/// the name length is stored, and whether the owner (only when non-zero)
/// and the modified fields (only once they differ from a fresh create's)
/// are there. Immutable once built: `Node::set_data` builds a new one.
pub(crate) struct Blob(NonNull<u8>);

// SAFETY: a `Blob` uniquely owns its block and never mutates it after
// construction, like a `Box<[u8]>`.
unsafe impl Send for Blob {}
// SAFETY: as above; shared access is read-only.
unsafe impl Sync for Blob {}

/// The decoded header of a blob.
pub(crate) struct Header {
    pub data_len: usize,
    pub owner: i64,
    pub modified: Option<Modified>,
    flags: u8,
    /// Offset of the data.
    data_at: usize,
}

fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut [u8], mut v: usize) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

impl Blob {
    pub(crate) fn new(
        name: &str,
        data: Option<&[u8]>,
        owner: i64,
        modified: Option<Modified>,
    ) -> Blob {
        let d = data.unwrap_or(&[]);
        let mut flags = 0;
        if data.is_none() {
            flags |= NULL_DATA;
        }
        if owner != 0 {
            flags |= HAS_OWNER;
        }
        if modified.is_some() {
            flags |= HAS_MODIFIED;
        }
        let name_head = if name.len() < 256 {
            1
        } else {
            flags |= LONG_NAME;
            u32::try_from(name.len()).expect("znode name too long");
            4
        };
        let optional = if owner != 0 { 8 } else { 0 } + if modified.is_some() { 20 } else { 0 };
        let total = 1 + name_head + name.len() + varint_len(d.len()) + optional + d.len();
        let layout = Layout::from_size_align(total, 1).expect("znode too large");
        // SAFETY: `total >= 3`, so the layout is not zero-sized.
        let ptr = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            std::alloc::handle_alloc_error(layout)
        };
        // SAFETY: the block is `total` bytes, freshly allocated and unaliased;
        // zeroed here so the slice is initialized before anything reads it.
        let buf = unsafe {
            ptr.as_ptr().write_bytes(0, total);
            std::slice::from_raw_parts_mut(ptr.as_ptr(), total)
        };
        buf[0] = flags;
        let mut i = 1;
        if flags & LONG_NAME == 0 {
            buf[1] = name.len() as u8;
            i += 1;
        } else {
            buf[1..5].copy_from_slice(&(name.len() as u32).to_le_bytes());
            i += 4;
        }
        buf[i..i + name.len()].copy_from_slice(name.as_bytes());
        i += name.len();
        i += put_varint(&mut buf[i..], d.len());
        if owner != 0 {
            buf[i..i + 8].copy_from_slice(&owner.to_le_bytes());
            i += 8;
        }
        if let Some(m) = modified {
            buf[i..i + 8].copy_from_slice(&m.mzxid.to_le_bytes());
            buf[i + 8..i + 16].copy_from_slice(&m.mtime.to_le_bytes());
            buf[i + 16..i + 20].copy_from_slice(&m.version.to_le_bytes());
            i += 20;
        }
        buf[i..].copy_from_slice(d);
        Blob(ptr)
    }

    /// One byte of the header.
    fn byte(&self, i: usize) -> u8 {
        // SAFETY: callers read only header bytes, which `new` wrote at the
        // start of the block, in order, never past the header's end.
        unsafe { *self.0.as_ptr().add(i) }
    }

    /// `N` header bytes from `at`.
    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        std::array::from_fn(|k| self.byte(at + k))
    }

    /// Offset and length of the name.
    fn name_span(&self) -> (usize, usize) {
        if self.byte(0) & LONG_NAME == 0 {
            (2, usize::from(self.byte(1)))
        } else {
            (5, u32::from_le_bytes(self.array(1)) as usize)
        }
    }

    pub(crate) fn header(&self) -> Header {
        let flags = self.byte(0);
        let (name_at, name_len) = self.name_span();
        let mut i = name_at + name_len;
        let (mut data_len, mut shift) = (0usize, 0);
        loop {
            let b = self.byte(i);
            i += 1;
            data_len |= usize::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
        }
        let mut owner = 0;
        if flags & HAS_OWNER != 0 {
            owner = i64::from_le_bytes(self.array(i));
            i += 8;
        }
        let mut modified = None;
        if flags & HAS_MODIFIED != 0 {
            modified = Some(Modified {
                mzxid: i64::from_le_bytes(self.array(i)),
                mtime: i64::from_le_bytes(self.array(i + 8)),
                version: i32::from_le_bytes(self.array(i + 16)),
            });
            i += 20;
        }
        Header {
            data_len,
            owner,
            modified,
            flags,
            data_at: i,
        }
    }

    /// Size of the block in bytes.
    pub(crate) fn len(&self) -> usize {
        let h = self.header();
        h.data_at + h.data_len
    }

    pub(crate) fn name(&self) -> &str {
        let (at, len) = self.name_span();
        // SAFETY: the block holds the whole name at `at..at + len`; `new`
        // copied those bytes from a `&str`.
        unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.0.as_ptr().add(at), len))
        }
    }

    pub(crate) fn data(&self) -> Option<&[u8]> {
        let h = self.header();
        if h.flags & NULL_DATA != 0 {
            return None;
        }
        // SAFETY: the block is `data_at + data_len` bytes, all initialized;
        // the data is its tail.
        Some(unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(h.data_at), h.data_len) })
    }

    pub(crate) fn data_len(&self) -> usize {
        self.header().data_len
    }

    pub(crate) fn owner(&self) -> i64 {
        self.header().owner
    }
}

impl Clone for Blob {
    fn clone(&self) -> Blob {
        Blob::new(
            self.name(),
            self.data(),
            self.owner(),
            self.header().modified,
        )
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.len(), 1).expect("blob layout");
        // SAFETY: allocated in `new` with this very layout (the header, and
        // so the size, never changes).
        unsafe { std::alloc::dealloc(self.0.as_ptr(), layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_encodings_match_zookeeper_ephemeral_type() {
        // Goal: container/TTL/session encodings round-trip and match EphemeralType.
        assert_eq!(CONTAINER_OWNER as u64, 0x8000_0000_0000_0000);
        assert_eq!(MAX_TTL_MS, 0xff_ffff_ffff);
        assert_eq!(ttl_owner(0), None);
        assert_eq!(ttl_owner(-1), None);
        assert_eq!(ttl_owner(MAX_TTL_MS + 1), None);
        assert_eq!(ttl_owner(1000), Some(0xff00_0000_0000_03e8_u64 as i64));
        assert_eq!(
            ttl_owner(MAX_TTL_MS).map(NodeKind::from_owner),
            Some(NodeKind::Ttl(MAX_TTL_MS))
        );
        for k in [
            NodeKind::Persistent,
            NodeKind::Ephemeral(0x1000_0000_0000_0001),
            NodeKind::Ephemeral(-5),
            NodeKind::Container,
            NodeKind::Ttl(1),
            NodeKind::Ttl(3_600_000),
        ] {
            assert_eq!(NodeKind::from_owner(k.owner()), k);
        }
        assert_eq!(NodeKind::Container.client_owner(), 0);
        assert_eq!(NodeKind::Ttl(5).client_owner(), 0);
        assert_eq!(NodeKind::Ephemeral(7).client_owner(), 7);
    }

    #[test]
    fn blob_round_trips_name_data_and_owner() {
        // Goal: the packed name/data/owner block gives back exactly what went in.
        let long_name = "n".repeat(300);
        let name_255 = "m".repeat(255);
        let name_256 = "m".repeat(256);
        let big = vec![7u8; 20_000];
        for name in [
            "",
            "a",
            "n123456",
            &long_name,
            &name_255,
            &name_256,
            "ünïcode",
        ] {
            for data in [None, Some(&[][..]), Some(&b"x"[..]), Some(&big[..])] {
                for owner in [0, 1, -1, CONTAINER_OWNER, ttl_owner(5).unwrap()] {
                    for m in [
                        None,
                        Some(Modified {
                            mzxid: -3,
                            mtime: i64::MAX,
                            version: -1,
                        }),
                    ] {
                        let b = Blob::new(name, data, owner, m);
                        assert_eq!(b.name(), name);
                        assert_eq!(b.data(), data);
                        assert_eq!(b.data_len(), data.map_or(0, <[u8]>::len));
                        assert_eq!(b.owner(), owner);
                        assert_eq!(b.header().modified, m);
                        let c = b.clone();
                        drop(b);
                        assert_eq!((c.name(), c.data(), c.owner()), (name, data, owner));
                        assert_eq!(c.header().modified, m);
                    }
                }
            }
        }
    }

    #[test]
    fn node_stays_small() {
        // Goal: memory per znode; the arena slot is 56 bytes (was 136).
        assert_eq!(std::mem::size_of::<Node>(), 56);
        assert_eq!(std::mem::size_of::<Option<Node>>(), 56);
    }

    #[test]
    fn stat_is_derived_from_persisted_fields() {
        // Goal: Node::stat() reports ZooKeeper's client view of the stored fields.
        let acl: AclRef = Arc::new(Acl::open_unsafe().into());
        let mut n = Node::new("x", Some(b"abc"), acl, CONTAINER_OWNER, 5, 9);
        n.cversion = 3;
        let s = n.stat();
        assert_eq!(
            (s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime),
            (5, 5, 5, 9, 9)
        );
        assert_eq!((s.cversion, s.data_length, s.num_children), (6, 3, 0));
        assert_eq!(
            s.ephemeral_owner, 0,
            "containers look persistent to clients"
        );
        assert_eq!(n.raw_owner(), CONTAINER_OWNER);
        let m = Modified {
            mzxid: 8,
            mtime: 10,
            version: 1,
        };
        n.set_data(None, m);
        assert_eq!((n.data(), n.data_len(), n.name()), (None, 0, "x"));
        assert_eq!(n.raw_owner(), CONTAINER_OWNER);
        let s = n.stat();
        assert_eq!(
            (s.czxid, s.mzxid, s.ctime, s.mtime, s.version),
            (5, 8, 9, 10, 1)
        );
        assert_eq!(n.modified(), m);
        // Back to create-time values: nothing stored, same answers.
        let fresh = Modified {
            mzxid: 5,
            mtime: 9,
            version: 0,
        };
        n.set_data(Some(b"y"), fresh);
        assert_eq!(n.modified(), fresh);
        assert!(n.blob.header().modified.is_none());
    }
}
