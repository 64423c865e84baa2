//! The Merkle log over block hashes, as RFC 6962 section 2.1 defines it:
//! leaf = SHA-256(0x00 ‖ block), node = SHA-256(0x01 ‖ left ‖ right), and
//! the tree of n leaves splits at the largest power of two below n.
//!
//! [`Frontier`] keeps only the roots of the perfect subtrees that cover the
//! leaves so far (one per set bit of the size, largest first), enough to
//! append leaves and compute the root of the whole tree in O(log n) space.
//! Folding those peaks right to left gives exactly the RFC 6962 root.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// The hash of a leaf (RFC 6962 section 2.1: `SHA-256(0x00 ‖ d)`).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an interior node (`SHA-256(0x01 ‖ left ‖ right)`).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256()` (RFC 6962 section 2.1).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The compact state of an append-only Merkle tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Roots of the perfect subtrees, largest (leftmost) first.
    peaks: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// A frontier from its size and peaks; `None` if the number of peaks
    /// does not match the size (one per set bit).
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Option<Frontier> {
        (peaks.len() == size.count_ones() as usize).then_some(Frontier { size, peaks })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends a leaf by its leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        // Each trailing one bit of the old size is a peak of the same size
        // as the one being carried: merge them (left ‖ right).
        let mut s = self.size;
        while s & 1 == 1 {
            let left = self.peaks.pop().expect("one peak per set bit");
            h = node_hash(&left, &h);
            s >>= 1;
        }
        self.peaks.push(h);
        self.size += 1;
    }

    /// The RFC 6962 tree head of the leaves so far.
    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        let mut acc = *last;
        for p in it {
            acc = node_hash(p, &acc);
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH straight from RFC 6962 section 2.1, recursively.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn frontier_root_equals_the_rfc6962_definition_for_every_size() {
        let mut f = Frontier::new();
        let mut leaves = Vec::new();
        assert_eq!(f.root(), mth(&leaves));
        for i in 0..70u32 {
            let l = leaf_hash(&i.to_le_bytes());
            leaves.push(l);
            f.push(l);
            assert_eq!(f.root(), mth(&leaves), "size {}", i + 1);
            assert_eq!(f.peaks().len(), f.size().count_ones() as usize);
        }
    }

    #[test]
    fn empty_tree_root_is_sha256_of_nothing() {
        assert_eq!(
            crate::archive::to_hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn frontier_rebuilt_from_peaks_continues_identically() {
        let mut a = Frontier::new();
        for i in 0..13u32 {
            a.push(leaf_hash(&i.to_le_bytes()));
        }
        let mut b = Frontier::from_peaks(a.size(), a.peaks().to_vec()).unwrap();
        for i in 13..40u32 {
            a.push(leaf_hash(&i.to_le_bytes()));
            b.push(leaf_hash(&i.to_le_bytes()));
        }
        assert_eq!(a, b);
        assert!(Frontier::from_peaks(5, vec![[0; 32]]).is_none());
    }
}
