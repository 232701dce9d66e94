//! A znode and the encoding of its kind in `ephemeralOwner`.
//!
//! ZooKeeper overloads `ephemeralOwner`: `0` is persistent, `i64::MIN` is a
//! container, a value whose top byte is `0xff` (and reserved bits zero) is a TTL
//! node with the TTL in the low 40 bits, anything else is the owning session.
//! Clients never see the container/TTL encodings: their `Stat.ephemeralOwner` is 0.

use std::collections::BTreeMap;
use std::sync::Arc;

use corral_proto::{Acl, Stat};

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

/// Children of a znode: name -> arena index. Boxed so a leaf costs one word.
pub(crate) type Children = Option<Box<BTreeMap<Box<str>, u32>>>;

/// One znode. The tree owns it; outside the crate it is read-only.
#[derive(Debug, Clone)]
pub struct Node {
    /// `None` when a client wrote null data (ZooKeeper keeps null distinct from empty).
    pub data: Option<Vec<u8>>,
    /// Interned: equal ACL lists share one allocation.
    pub acl: Arc<[Acl]>,
    /// Exactly the `Stat` ZooKeeper returns for this node (client cversion,
    /// client ephemeralOwner, live data_length and num_children).
    pub stat: Stat,
    /// Raw `ephemeralOwner` (container/TTL encodings included).
    pub(crate) owner: i64,
    /// ZooKeeper's persisted cversion: the number of child creates.
    pub(crate) cversion: i32,
    pub(crate) children: Children,
}

impl Node {
    pub(crate) fn new(
        data: Option<Vec<u8>>,
        acl: Arc<[Acl]>,
        owner: i64,
        zxid: i64,
        time_ms: i64,
    ) -> Node {
        let mut n = Node {
            data,
            acl,
            stat: Stat {
                czxid: zxid,
                mzxid: zxid,
                ctime: time_ms,
                mtime: time_ms,
                pzxid: zxid,
                ..Stat::default()
            },
            owner,
            cversion: 0,
            children: None,
        };
        n.refresh_stat();
        n
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::from_owner(self.owner)
    }

    /// The raw `ephemeralOwner` as stored in txns and snapshots.
    pub fn raw_owner(&self) -> i64 {
        self.owner
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
        self.data.as_deref().unwrap_or(&[])
    }

    pub fn data_len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len())
    }

    pub fn num_children(&self) -> usize {
        self.children.as_ref().map_or(0, |c| c.len())
    }

    /// Recomputes the derived `Stat` fields from the persisted ones.
    pub(crate) fn refresh_stat(&mut self) {
        let n = self.num_children() as i32;
        self.stat.num_children = n;
        self.stat.cversion = self.cversion.wrapping_mul(2).wrapping_sub(n);
        self.stat.data_length = self.data_len() as i32;
        self.stat.ephemeral_owner = NodeKind::from_owner(self.owner).client_owner();
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
}
