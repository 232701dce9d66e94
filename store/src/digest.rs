//! A small deterministic 64-bit hash for the tree digest.
//!
//! The tree digest is the wrapping sum of independent parts, one per
//! (node, aspect) and one per session, so it is order-independent and each
//! change costs only the parts it touches. Every part hashes the node's path,
//! so two nodes cannot swap contents unnoticed. Deterministic across processes
//! and builds (no random keys): replicas compare digests.

use corral_proto::Acl;

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;

pub(crate) struct Hasher64 {
    h: u64,
}

impl Hasher64 {
    pub(crate) fn new(domain: u64) -> Self {
        Hasher64 {
            h: domain.wrapping_mul(K2) ^ K1,
        }
    }

    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w.wrapping_mul(K1))
            .rotate_left(31)
            .wrapping_mul(K2);
    }

    pub(crate) fn i64(&mut self, v: i64) -> &mut Self {
        self.word(v as u64);
        self
    }

    /// Length-prefixed, so adjacent fields cannot run into each other.
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.word(b.len() as u64);
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            self.word(u64::from_le_bytes(a));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut a = [0u8; 8];
            a[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(a));
        }
        self
    }

    pub(crate) fn finish(&self) -> u64 {
        // splitmix64 finaliser
        let mut z = self.h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

const D_DATA: u64 = 1;
const D_ACL: u64 = 2;
const D_META: u64 = 3;
const D_SESSION: u64 = 4;

pub(crate) fn data_part(path: &str, data: Option<&[u8]>) -> u64 {
    let mut h = Hasher64::new(D_DATA);
    h.bytes(path.as_bytes());
    match data {
        // Null and empty data are different states; hash them differently.
        None => h.i64(-1),
        Some(d) => h.bytes(d),
    };
    h.finish()
}

pub(crate) fn acl_part(path: &str, acl: &[Acl]) -> u64 {
    let mut h = Hasher64::new(D_ACL);
    h.bytes(path.as_bytes()).i64(acl.len() as i64);
    for a in acl {
        h.i64(a.perms.into())
            .bytes(a.id.scheme.as_bytes())
            .bytes(a.id.id.as_bytes());
    }
    h.finish()
}

/// The persisted stat fields plus the child count.
pub(crate) fn meta_part(path: &str, node: &crate::node::Node) -> u64 {
    let m = node.modified();
    Hasher64::new(D_META)
        .bytes(path.as_bytes())
        .i64(node.czxid)
        .i64(m.mzxid)
        .i64(node.ctime)
        .i64(m.mtime)
        .i64(m.version.into())
        .i64(node.cversion.into())
        .i64(node.aversion.into())
        .i64(node.raw_owner())
        .i64(node.pzxid)
        .i64(node.num_children() as i64)
        .finish()
}

/// A session's part; an unbound session hashes as before tenants were
/// recorded, a bound one also hashes its tenant's name.
pub(crate) fn session_part(id: i64, timeout_ms: i32, passwd: &[u8], tenant: Option<&str>) -> u64 {
    let mut h = Hasher64::new(D_SESSION);
    h.i64(id).i64(timeout_ms.into()).bytes(passwd);
    if let Some(t) = tenant {
        h.bytes(t.as_bytes());
    }
    h.finish()
}
