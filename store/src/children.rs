//! The children of a znode: arena indices kept in byte order of the child
//! names, which live in the children themselves (see `Node::name`), plus a
//! 16-bit hash tag per child so that finding a name reads one name, not the
//! ~log2(n) a binary search would (each a cache miss into the arena).
//!
//! Small sets (up to [`CHUNK_MAX`]) are one sorted [`Chunk`]: 6 bytes a
//! child. Larger ones are a list of sorted chunks of at most [`CHUNK_MAX`],
//! each with a fence (the first 16 bytes of its first name) so the right
//! chunk is found by binary search over one small array. A full chunk first
//! passes an index to a neighbour with room and splits in two only when
//! neither has any, so names created in ascending or descending runs fill
//! chunks completely. A set that shrinks to [`CHUNK_MAX`]` / 2` goes back to
//! one chunk.
//!
//! Comparisons read child names through [`Names`], so the set stores no
//! strings of its own.

use std::cmp::Ordering;

use crate::node::Node;

/// Most indices in one chunk, and in a small set.
pub(crate) const CHUNK_MAX: usize = 128;

/// Maps a child's arena index to its name.
pub(crate) trait Names {
    fn name(&self, idx: u32) -> &[u8];
}

impl Names for [Option<Node>] {
    fn name(&self, idx: u32) -> &[u8] {
        self[idx as usize]
            .as_ref()
            .expect("live znode slot")
            .name()
            .as_bytes()
    }
}

/// A 16-bit hash of a name: equal names have equal tags. Only compared
/// within one process (never stored), so it is free to change.
fn tag_of(name: &[u8]) -> u16 {
    const K1: u64 = 0x9e37_79b9_7f4a_7c15;
    const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;
    let n = name.len();
    let word = |i: usize| u64::from_le_bytes(name[i..i + 8].try_into().expect("8 bytes"));
    let half = |i: usize| {
        u64::from(u32::from_le_bytes(
            name[i..i + 4].try_into().expect("4 bytes"),
        ))
    };
    // Short names in one or two overlapping loads, no loop and no copy.
    let (a, b) = if n > 16 {
        let mut h = 0u64;
        let mut i = 0;
        while i + 8 < n {
            h = (h ^ word(i)).wrapping_mul(K1).rotate_left(29);
            i += 8;
        }
        (h, word(n - 8))
    } else if n >= 8 {
        (word(0), word(n - 8))
    } else if n >= 4 {
        (half(0), half(n - 4))
    } else if n > 0 {
        (
            u64::from(name[0]) << 16 | u64::from(name[n / 2]) << 8 | u64::from(name[n - 1]),
            0,
        )
    } else {
        (0, 0)
    };
    let m = u128::from(a ^ K1) * u128::from(b ^ K2 ^ (n as u64) << 40);
    let h = (m as u64) ^ ((m >> 64) as u64);
    (h ^ (h >> 16) ^ (h >> 32) ^ (h >> 48)) as u16
}

/// Bit `i` set where `block[i] == tag`.
#[cfg(target_arch = "x86_64")]
fn eq_mask(block: &[u16; 8], tag: u16) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi16, _mm_loadu_si128, _mm_movemask_epi8, _mm_packs_epi16, _mm_set1_epi16,
        _mm_setzero_si128,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline; the load reads exactly
    // the 16 bytes of `block` (unaligned loads are allowed).
    let bytes = unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let eq = _mm_cmpeq_epi16(v, _mm_set1_epi16(tag as i16));
        // 0xffff lanes pack to 0xff bytes: one mask bit per tag.
        _mm_movemask_epi8(_mm_packs_epi16(eq, _mm_setzero_si128()))
    };
    bytes as u32
}

/// Bit `i` set where `block[i] == tag`.
#[cfg(not(target_arch = "x86_64"))]
fn eq_mask(block: &[u16; 8], tag: u16) -> u32 {
    let mut mask = 0;
    for (i, &t) in block.iter().enumerate() {
        mask |= u32::from(t == tag) << i;
    }
    mask
}

/// Sorted indices with their names' tags, in step.
#[derive(Clone, Debug, Default)]
pub(crate) struct Chunk {
    idx: Vec<u32>,
    tag: Vec<u16>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.idx.len()
    }

    /// Position of `name` (whose tag is `tag`), reading only names whose tag matches.
    fn find<N: Names + ?Sized>(&self, name: &[u8], tag: u16, names: &N) -> Option<usize> {
        // 8 tags at a time into a bit mask, then read the names of the
        // matches only.
        let mut blocks = self.tag.chunks_exact(8);
        let mut base = 0;
        for block in &mut blocks {
            let block: &[u16; 8] = block.try_into().expect("8 tags");
            let mut mask = eq_mask(block, tag);
            while mask != 0 {
                let p = base + mask.trailing_zeros() as usize;
                if names.name(self.idx[p]) == name {
                    return Some(p);
                }
                mask &= mask - 1;
            }
            base += 8;
        }
        let rest = blocks.remainder();
        (0..rest.len())
            .filter(|&i| rest[i] == tag)
            .map(|i| base + i)
            .find(|&p| names.name(self.idx[p]) == name)
    }

    /// Binary search by name.
    fn search<N: Names + ?Sized>(&self, name: &[u8], names: &N) -> Result<usize, usize> {
        self.idx.binary_search_by(|&i| names.name(i).cmp(name))
    }

    fn insert(&mut self, pos: usize, idx: u32, tag: u16) {
        self.idx.insert(pos, idx);
        self.tag.insert(pos, tag);
    }

    fn push(&mut self, idx: u32, tag: u16) {
        self.idx.push(idx);
        self.tag.push(tag);
    }

    fn remove(&mut self, pos: usize) -> (u32, u16) {
        (self.idx.remove(pos), self.tag.remove(pos))
    }

    fn pop(&mut self) -> (u32, u16) {
        (
            self.idx.pop().expect("non-empty chunk"),
            self.tag.pop().expect("non-empty chunk"),
        )
    }

    fn one(idx: u32, tag: u16) -> Chunk {
        Chunk {
            idx: vec![idx],
            tag: vec![tag],
        }
    }

    /// Moves `[at..]` into a new chunk.
    fn split_off(&mut self, at: usize) -> Chunk {
        let c = Chunk {
            idx: self.idx[at..].to_vec(),
            tag: self.tag[at..].to_vec(),
        };
        self.idx.truncate(at);
        self.tag.truncate(at);
        c
    }

    fn append_exact(&mut self, other: &Chunk) {
        self.idx.reserve_exact(other.len());
        self.tag.reserve_exact(other.len());
        self.idx.extend_from_slice(&other.idx);
        self.tag.extend_from_slice(&other.tag);
    }

    fn shrink_if_sparse(&mut self) {
        if self.idx.capacity() > 8 && self.idx.len() * 4 <= self.idx.capacity() {
            self.idx.shrink_to(self.idx.len() * 2);
            self.tag.shrink_to(self.idx.len() * 2);
        }
    }

    fn heap_bytes(&self) -> usize {
        malloc_chunk(self.idx.capacity() * 4) + malloc_chunk(self.tag.capacity() * 2)
    }
}

/// The first 16 bytes of a chunk's first name, zero-padded. Names never
/// hold a NUL, so the padding orders like the end of the name.
type Fence = [u8; 16];

fn fence_of(name: &[u8]) -> Fence {
    let mut f = [0u8; 16];
    let n = name.len().min(16);
    f[..n].copy_from_slice(&name[..n]);
    f
}

#[derive(Clone, Debug)]
pub(crate) enum ChildSet {
    Small(Chunk),
    Large(Box<Chunks>),
}

#[derive(Clone, Debug)]
pub(crate) struct Chunks {
    /// Never empty, and no chunk is empty.
    chunks: Vec<Chunk>,
    /// `fences[i]` is the fence of `chunks[i]`'s first name.
    fences: Vec<Fence>,
    len: usize,
}

impl Default for ChildSet {
    fn default() -> Self {
        ChildSet::Small(Chunk::default())
    }
}

impl Chunks {
    /// The chunk that holds `name` or would: the last whose first name is
    /// <= it (the first chunk if none is).
    fn chunk_for<N: Names + ?Sized>(&self, name: &[u8], names: &N) -> usize {
        let probe = fence_of(name);
        let first_le = |i: usize| match self.fences[i].cmp(&probe) {
            Ordering::Less => true,
            Ordering::Greater => false,
            // Equal fences with a short name mean equal names (see `Fence`).
            Ordering::Equal if name.len() < 16 => true,
            Ordering::Equal => names.name(self.chunks[i].idx[0]) <= name,
        };
        let (mut lo, mut hi) = (0, self.chunks.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if first_le(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.saturating_sub(1)
    }

    fn refence<N: Names + ?Sized>(&mut self, at: usize, names: &N) {
        self.fences[at] = fence_of(names.name(self.chunks[at].idx[0]));
    }

    fn insert_chunk<N: Names + ?Sized>(&mut self, at: usize, chunk: Chunk, names: &N) {
        self.chunks.insert(at, chunk);
        self.fences.insert(at, [0; 16]);
        self.refence(at, names);
    }

    fn remove_chunk(&mut self, at: usize) -> Chunk {
        self.fences.remove(at);
        self.chunks.remove(at)
    }
}

impl ChildSet {
    pub(crate) fn len(&self) -> usize {
        match self {
            ChildSet::Small(c) => c.len(),
            ChildSet::Large(c) => c.len,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn chunks(&self) -> &[Chunk] {
        match self {
            ChildSet::Small(c) => std::slice::from_ref(c),
            ChildSet::Large(c) => &c.chunks,
        }
    }

    /// Indices in name order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = u32> + '_ {
        self.chunks().iter().flat_map(|c| c.idx.iter().copied())
    }

    /// The child called `name`.
    pub(crate) fn get<N: Names + ?Sized>(&self, name: &[u8], names: &N) -> Option<u32> {
        let chunk = match self {
            ChildSet::Small(c) => c,
            ChildSet::Large(c) => &c.chunks[c.chunk_for(name, names)],
        };
        chunk.find(name, tag_of(name), names).map(|p| chunk.idx[p])
    }

    /// The position (chunk, index) of the first child whose name is
    /// greater than `after` (of the first child for `None`), for `next_at`.
    pub(crate) fn position_after<N: Names + ?Sized>(
        &self,
        after: Option<&[u8]>,
        names: &N,
    ) -> (usize, usize) {
        let Some(after) = after else {
            return (0, 0);
        };
        let at = match self {
            ChildSet::Small(_) => 0,
            ChildSet::Large(c) => c.chunk_for(after, names),
        };
        match self.chunks()[at].search(after, names) {
            Ok(p) => (at, p + 1),
            Err(p) => (at, p),
        }
    }

    /// The child at a position and the position after it; `None` past the
    /// last. Positions are valid until the set changes.
    pub(crate) fn next_at(&self, (mut at, mut p): (usize, usize)) -> Option<(u32, (usize, usize))> {
        let chunks = self.chunks();
        while let Some(chunk) = chunks.get(at) {
            if let Some(&i) = chunk.idx.get(p) {
                return Some((i, (at, p + 1)));
            }
            at += 1;
            p = 0;
        }
        None
    }

    /// The first child whose name is greater than `after` (the first child
    /// for `None`).
    #[cfg(test)]
    pub(crate) fn first_after<N: Names + ?Sized>(
        &self,
        after: Option<&[u8]>,
        names: &N,
    ) -> Option<u32> {
        self.next_at(self.position_after(after, names))
            .map(|(i, _)| i)
    }

    /// Adds child `idx`, whose name `names` already knows. Returns false (and
    /// changes nothing) if a child of that name is already there.
    pub(crate) fn insert<N: Names + ?Sized>(&mut self, idx: u32, names: &N) -> bool {
        let name = names.name(idx);
        let tag = tag_of(name);
        match self {
            ChildSet::Small(v) => {
                // Names created in order (sequential znodes, snapshot loading)
                // append: one comparison.
                let pos = match v.idx.last() {
                    None => 0,
                    Some(&last) if names.name(last) < name => v.len(),
                    Some(_) => match v.search(name, names) {
                        Ok(_) => return false,
                        Err(p) => p,
                    },
                };
                if v.len() < CHUNK_MAX {
                    v.insert(pos, idx, tag);
                    return true;
                }
                let right = v.split_off(CHUNK_MAX / 2);
                let left = std::mem::take(v);
                let fences = vec![
                    fence_of(names.name(left.idx[0])),
                    fence_of(names.name(right.idx[0])),
                ];
                *self = ChildSet::Large(Box::new(Chunks {
                    chunks: vec![left, right],
                    fences,
                    len: CHUNK_MAX,
                }));
                self.insert(idx, names)
            }
            ChildSet::Large(c) => {
                let last = c.chunks.len() - 1;
                let tail = &c.chunks[last];
                let (at, pos) = if names.name(tail.idx[tail.len() - 1]) < name {
                    (last, tail.len())
                } else {
                    let at = c.chunk_for(name, names);
                    match c.chunks[at].search(name, names) {
                        Ok(_) => return false,
                        Err(p) => (at, p),
                    }
                };
                c.len += 1;
                if c.chunks[at].len() < CHUNK_MAX {
                    c.chunks[at].insert(pos, idx, tag);
                    if pos == 0 {
                        c.refence(at, names);
                    }
                    return true;
                }
                // The chunk is full. Before splitting it, shift one index
                // into a neighbour with room, so that runs of creates in
                // ascending or descending order (sequential nodes, counters
                // like n0, n1, ...) leave full chunks behind, not half-full.
                if pos == CHUNK_MAX {
                    match c.chunks.get_mut(at + 1) {
                        Some(next) if next.len() < CHUNK_MAX => {
                            next.insert(0, idx, tag);
                            c.refence(at + 1, names);
                        }
                        _ => c.insert_chunk(at + 1, Chunk::one(idx, tag), names),
                    }
                } else if at > 0 && c.chunks[at - 1].len() < CHUNK_MAX {
                    // pos > 0: only the first chunk can take a name below its first.
                    let (i, t) = c.chunks[at].remove(0);
                    c.chunks[at - 1].push(i, t);
                    c.chunks[at].insert(pos - 1, idx, tag);
                    c.refence(at, names);
                } else if pos == 0 {
                    c.insert_chunk(at, Chunk::one(idx, tag), names);
                } else if c.chunks.get(at + 1).is_some_and(|n| n.len() < CHUNK_MAX) {
                    let (i, t) = c.chunks[at].pop();
                    c.chunks[at + 1].insert(0, i, t);
                    c.refence(at + 1, names);
                    c.chunks[at].insert(pos, idx, tag);
                } else {
                    let chunk = &mut c.chunks[at];
                    let mut right = chunk.split_off(CHUNK_MAX / 2);
                    if pos <= CHUNK_MAX / 2 {
                        chunk.insert(pos, idx, tag);
                    } else {
                        right.insert(pos - CHUNK_MAX / 2, idx, tag);
                    }
                    c.insert_chunk(at + 1, right, names);
                }
                true
            }
        }
    }

    /// Removes and returns the child called `name`.
    pub(crate) fn remove<N: Names + ?Sized>(&mut self, name: &[u8], names: &N) -> Option<u32> {
        let tag = tag_of(name);
        match self {
            ChildSet::Small(v) => {
                let p = v.find(name, tag, names)?;
                let (idx, _) = v.remove(p);
                v.shrink_if_sparse();
                Some(idx)
            }
            ChildSet::Large(c) => {
                let at = c.chunk_for(name, names);
                let p = c.chunks[at].find(name, tag, names)?;
                let (idx, _) = c.chunks[at].remove(p);
                c.len -= 1;
                if c.len <= CHUNK_MAX / 2 {
                    let mut all = Chunk {
                        idx: Vec::with_capacity(CHUNK_MAX),
                        tag: Vec::with_capacity(CHUNK_MAX),
                    };
                    for chunk in &c.chunks {
                        all.idx.extend_from_slice(&chunk.idx);
                        all.tag.extend_from_slice(&chunk.tag);
                    }
                    *self = ChildSet::Small(all);
                    return Some(idx);
                }
                let n = c.chunks[at].len();
                if n == 0 {
                    c.remove_chunk(at);
                    return Some(idx);
                }
                if p == 0 {
                    c.refence(at, names);
                }
                if n < CHUNK_MAX / 4 {
                    // Merge with a neighbour when both fit in 3/4 of a chunk,
                    // so sparse chunks do not pile up.
                    let with = if at + 1 < c.chunks.len() {
                        Some(at + 1)
                    } else {
                        at.checked_sub(1)
                    };
                    if let Some(w) = with {
                        let (lo, hi) = (at.min(w), at.max(w));
                        if c.chunks[lo].len() + c.chunks[hi].len() <= CHUNK_MAX * 3 / 4 {
                            let moved = c.remove_chunk(hi);
                            c.chunks[lo].append_exact(&moved);
                        }
                    }
                }
                Some(idx)
            }
        }
    }

    /// Checks the invariants (tests).
    #[cfg(test)]
    fn check<N: Names + ?Sized>(&self, names: &N) {
        let all: Vec<u32> = self.iter().collect();
        assert_eq!(all.len(), self.len());
        for w in all.windows(2) {
            assert_eq!(
                names.name(w[0]).cmp(names.name(w[1])),
                Ordering::Less,
                "names out of order"
            );
        }
        for chunk in self.chunks() {
            assert_eq!(chunk.idx.len(), chunk.tag.len());
            for (&i, &t) in chunk.idx.iter().zip(&chunk.tag) {
                assert_eq!(t, tag_of(names.name(i)));
            }
        }
        match self {
            ChildSet::Small(v) => assert!(v.len() <= CHUNK_MAX),
            ChildSet::Large(c) => {
                assert!(c.len > CHUNK_MAX / 2);
                assert_eq!(c.fences.len(), c.chunks.len());
                for (chunk, fence) in c.chunks.iter().zip(&c.fences) {
                    assert!(chunk.len() > 0 && chunk.len() <= CHUNK_MAX);
                    assert!(chunk.idx.capacity() <= 2 * CHUNK_MAX);
                    assert_eq!(*fence, fence_of(names.name(chunk.idx[0])));
                }
            }
        }
    }

    /// Heap bytes held, rounded as glibc rounds each block.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            ChildSet::Small(v) => v.heap_bytes(),
            ChildSet::Large(c) => {
                malloc_chunk(std::mem::size_of::<Chunks>())
                    + malloc_chunk(c.chunks.capacity() * std::mem::size_of::<Chunk>())
                    + malloc_chunk(c.fences.capacity() * std::mem::size_of::<Fence>())
                    + c.chunks.iter().map(Chunk::heap_bytes).sum::<usize>()
            }
        }
    }
}

/// What glibc malloc takes for an `n`-byte request (0 for none).
pub(crate) fn malloc_chunk(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n + 8).next_multiple_of(16).max(32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Arena stand-in: index -> name.
    struct Table(Vec<String>);
    impl Names for Table {
        fn name(&self, idx: u32) -> &[u8] {
            self.0[idx as usize].as_bytes()
        }
    }

    /// Applies inserts/removes of names to a set and to a `BTreeSet` model,
    /// checking lookups, order and `first_after` against the model throughout.
    fn run(ops: &[(bool, String)]) {
        let mut table = Table(Vec::new());
        let mut set = ChildSet::default();
        let mut model: BTreeSet<String> = BTreeSet::new();
        for (insert, name) in ops {
            if *insert {
                table.0.push(name.clone());
                let idx = (table.0.len() - 1) as u32;
                assert_eq!(set.insert(idx, &table), model.insert(name.clone()));
            } else {
                let got = set.remove(name.as_bytes(), &table);
                assert_eq!(got.is_some(), model.remove(name));
                if let Some(i) = got {
                    assert_eq!(table.0[i as usize], *name);
                }
            }
            set.check(&table);
            assert_eq!(set.len(), model.len());
            assert_eq!(
                set.get(name.as_bytes(), &table).is_some(),
                model.contains(name)
            );
        }
        let names: Vec<&str> = set.iter().map(|i| table.0[i as usize].as_str()).collect();
        let want: Vec<&str> = model.iter().map(String::as_str).collect();
        assert_eq!(names, want);
        let mut walked = Vec::new();
        let mut at = set.position_after(None, &table);
        while let Some((i, next)) = set.next_at(at) {
            walked.push(i);
            at = next;
        }
        assert_eq!(walked, set.iter().collect::<Vec<_>>());
        let rev: Vec<u32> = set.iter().rev().collect();
        assert_eq!(rev.len(), model.len());
        for n in &model {
            let i = set.get(n.as_bytes(), &table).expect("present");
            assert_eq!(table.0[i as usize], *n);
        }
        // first_after from every model name and from in-between probes.
        let mut probes: Vec<String> = model.iter().cloned().collect();
        probes.extend(["", "m", "zzzz", "n5"].map(String::from));
        for p in probes {
            let got = set
                .first_after(Some(p.as_bytes()), &table)
                .map(|i| table.0[i as usize].clone());
            let want = model
                .range::<String, _>((std::ops::Bound::Excluded(&p), std::ops::Bound::Unbounded))
                .next()
                .cloned();
            assert_eq!(got, want, "first_after({p:?})");
        }
        assert_eq!(
            set.first_after(None, &table)
                .map(|i| table.0[i as usize].clone()),
            model.first().cloned()
        );
    }

    #[test]
    fn grows_into_chunks_and_back_in_order() {
        // Goal: the small-vec -> chunked transition and back keeps order and lookups right.
        let mut ops: Vec<(bool, String)> = (0..1000).map(|i| (true, format!("n{i}"))).collect();
        ops.extend((0..1000).step_by(3).map(|i| (false, format!("n{i}"))));
        ops.extend((0..1000).map(|i| (false, format!("n{i}"))));
        ops.extend((0..300).rev().map(|i| (true, format!("s{i:010}"))));
        run(&ops);
    }

    #[test]
    fn appends_in_order_fill_chunks() {
        // Goal: memory per znode; names created in byte order pack chunks full.
        let table = Table((0..10_000).map(|i| format!("x-{i:010}")).collect());
        let mut set = ChildSet::default();
        for i in 0..10_000 {
            assert!(set.insert(i, &table));
        }
        set.check(&table);
        let ChildSet::Large(c) = &set else {
            panic!("should be chunked")
        };
        assert!(
            c.chunks.len() <= 10_000 / CHUNK_MAX + 2,
            "{}",
            c.chunks.len()
        );
        assert!(
            set.heap_bytes() < 10_000 * 15 / 2,
            "{} bytes",
            set.heap_bytes()
        );
    }

    #[test]
    fn runs_in_either_direction_fill_chunks() {
        // Goal: memory per znode; ascending, descending and bench-shaped
        // (`n0, n1, ...`, not byte order) creates keep chunks well filled.
        let n = 20_000u32;
        let orders: [(&str, Vec<String>); 3] = [
            ("ascending", (0..n).map(|i| format!("x-{i:010}")).collect()),
            (
                "descending",
                (0..n).rev().map(|i| format!("x-{i:010}")).collect(),
            ),
            ("counter", (0..n).map(|i| format!("n{i}")).collect()),
        ];
        for (what, names) in orders {
            let table = Table(names);
            let mut set = ChildSet::default();
            for i in 0..n {
                assert!(set.insert(i, &table));
            }
            set.check(&table);
            let per = set.heap_bytes() as f64 / n as f64;
            assert!(per < 7.5, "{what}: {per:.1} bytes per child");
        }
    }

    #[test]
    fn eq_mask_marks_equal_tags() {
        // Goal: the vector tag scan finds exactly the equal tags.
        let block = [7u16, 0, 7, 0xffff, 0x8000, 7, 1, 7];
        assert_eq!(eq_mask(&block, 7), 0b1010_0101);
        assert_eq!(eq_mask(&block, 0xffff), 0b0000_1000);
        assert_eq!(eq_mask(&block, 0x8000), 0b0001_0000);
        assert_eq!(eq_mask(&block, 2), 0);
    }

    #[test]
    fn names_with_equal_tags_and_long_common_prefixes_stay_distinct() {
        // Goal: lookups never confuse two names whose 16-bit tags or 16-byte fences collide.
        let mut seen = std::collections::HashMap::new();
        let mut pair = None;
        for i in 0..100_000 {
            let name = format!("c{i}");
            if let Some(j) = seen.insert(tag_of(name.as_bytes()), i) {
                pair = Some((j, i));
                break;
            }
        }
        let (a, b) = pair.expect("some 16-bit tags collide");
        let long = "a-prefix-longer-than-sixteen-bytes-";
        let mut ops = vec![(true, format!("c{a}")), (true, format!("c{b}"))];
        ops.extend((0..400).map(|i| (true, format!("{long}{}", (i * 7919) % 1000))));
        ops.push((false, format!("c{a}")));
        ops.extend(
            (0..400)
                .step_by(2)
                .map(|i| (false, format!("{long}{}", (i * 7919) % 1000))),
        );
        run(&ops);
    }

    proptest! {
        #[test]
        fn matches_a_btreeset_model(
            long in any::<bool>(),
            ops in proptest::collection::vec((prop::bool::weighted(0.65), 0u16..400), 0..1500)
        ) {
            // Goal: children lookups, order and range scans agree with BTreeSet through small<->chunked transitions.
            let prefix = if long { "sixteen-bytes-or-more-" } else { "n" };
            let ops: Vec<(bool, String)> =
                ops.into_iter().map(|(ins, k)| (ins, format!("{prefix}{k}"))).collect();
            run(&ops);
        }
    }
}
