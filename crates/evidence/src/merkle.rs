//! The Merkle log over the global event order: RFC 6962 / RFC 9162 tree hashing with SHA-256,
//! an incremental frontier for the sequencer, and inclusion and consistency proofs.
//!
//! This module owns every byte that an independent verifier has to reproduce to check the
//! log's Merkle tree. It does no I/O.
//!
//! # Hashing (RFC 6962 §2.1, RFC 9162 §2.1.1)
//!
//! ```text
//! leaf hash   = SHA-256(0x00 || leaf bytes)
//! node hash   = SHA-256(0x01 || left child hash (32 bytes) || right child hash (32 bytes))
//! empty tree  = SHA-256("")   (no bytes at all)
//!
//! MTH({d0})        = leaf hash of d0
//! MTH(D[n]), n > 1 = node hash(MTH(D[0:k]), MTH(D[k:n]))
//!                    where k is the largest power of two strictly smaller than n
//! ```
//!
//! Functions here take leaf *hashes*, so the caller decides what the leaf bytes are (for the
//! case-event log: the stored, already-encrypted event record).
//!
//! # Proofs
//!
//! A proof is a sequence of 32-byte hashes, ordered from the leaf (or the old tree) up towards
//! the root, exactly as `PATH(m, D[n])` (RFC 9162 §2.1.3.1) and `PROOF(m, D[n])`
//! (RFC 9162 §2.1.4.1). Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 step by step.
//! A verifier first checks the proof length (it is fully determined by the index and the tree
//! sizes), so a wrong length is reported as such rather than as a root mismatch.
//!
//! Consistency edge cases that RFC 9162 leaves outside `0 < old_size < new_size`:
//! - `old_size == new_size`: the proof must be empty and the two roots must be equal.
//! - `old_size == 0`: the proof must be empty and the old root must be the empty-tree root
//!   `SHA-256("")`; every tree is an extension of the empty tree.
//!
//! # Frontier byte layout
//!
//! [`MerkleFrontier::to_bytes`] (for the sequencer to persist and resume):
//!
//! ```text
//! tree size (u64, big-endian, 8 bytes)
//! || one 32-byte hash per set bit of the tree size, most significant bit first
//! ```
//!
//! The hash for bit `b` is the root of the perfect subtree of `2^b` leaves at that position of
//! the tree's right edge (the "compact range" `[0, size)`). Total length: `8 + 32 * popcount(size)`.

use std::ops::Range;

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

/// Length in bytes of every hash in the tree.
pub const HASH_LENGTH: usize = 32;

/// Domain-separation prefix of a leaf hash (RFC 6962 §2.1).
pub const LEAF_HASH_PREFIX: u8 = 0x00;

/// Domain-separation prefix of an interior node hash (RFC 6962 §2.1).
pub const NODE_HASH_PREFIX: u8 = 0x01;

/// Length in bytes of the tree size that starts a serialised frontier.
const FRONTIER_SIZE_LENGTH: usize = 8;

/// Why a Merkle computation or verification failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("leaf index {index} is out of range for a tree of size {tree_size}")]
    IndexOutOfRange { index: u64, tree_size: u64 },
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeExceedsNewSize { old_size: u64, new_size: u64 },
    #[error("proof has {actual} hashes, expected {expected}")]
    WrongProofLength { expected: usize, actual: usize },
    #[error("root computed from the inclusion proof does not match the expected root")]
    RootMismatch,
    #[error("old root computed from the consistency proof does not match the expected old root")]
    OldRootMismatch,
    #[error("new root computed from the consistency proof does not match the expected new root")]
    NewRootMismatch,
    #[error("two trees of the same size {tree_size} have different roots")]
    RootsDifferAtSameSize { tree_size: u64 },
    #[error("a frontier of size {tree_size} needs {expected} subtree hashes, got {actual}")]
    FrontierHashCountMismatch {
        tree_size: u64,
        expected: usize,
        actual: usize,
    },
    #[error("serialised frontier is {actual} bytes, expected {expected}")]
    FrontierByteLengthMismatch { expected: usize, actual: usize },
    #[error("serialised frontier is shorter than its 8-byte tree size")]
    FrontierTooShort,
    #[error("the tree already holds the maximum number of leaves")]
    TreeFull,
}

/// `SHA-256(0x00 || data)`: the hash of one leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_HASH_PREFIX]);
    hasher.update(data);
    hasher.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One contiguous 65-byte input: two compression-function calls, no intermediate copies.
    let mut input = [0u8; 1 + 2 * HASH_LENGTH];
    input[0] = NODE_HASH_PREFIX;
    input[1..1 + HASH_LENGTH].copy_from_slice(left);
    input[1 + HASH_LENGTH..].copy_from_slice(right);
    Sha256::digest(input).into()
}

/// `SHA-256("")`: the root of the tree with no leaves.
pub fn empty_tree_root() -> Hash {
    Sha256::digest([]).into()
}

/// The Merkle tree hash (RFC 6962 §2.1 `MTH`) of the given leaf hashes.
///
/// Iterative, `n - 1` node hashes, no allocation: leaves are folded into a stack of perfect
/// subtree roots (at most 64), which is then folded right to left. This yields exactly `MTH`
/// because the largest-power-of-two split of `MTH` is the binary decomposition of `n`.
pub fn root_from_leaf_hashes(leaf_hashes: &[Hash]) -> Hash {
    let mut subtree_roots = [[0u8; HASH_LENGTH]; 64];
    let mut subtree_count = 0usize;
    for (position, leaf) in leaf_hashes.iter().enumerate() {
        let mut current = *leaf;
        // Each trailing one bit of `position` is a complete subtree of the same height
        // waiting on the stack for this new right sibling.
        let mut leaves_before = position;
        while leaves_before & 1 == 1 {
            subtree_count -= 1;
            current = node_hash(&subtree_roots[subtree_count], &current);
            leaves_before >>= 1;
        }
        subtree_roots[subtree_count] = current;
        subtree_count += 1;
    }
    fold_subtree_roots(&subtree_roots[..subtree_count])
}

/// Folds perfect subtree roots (largest, leftmost first) into the tree root, right to left.
fn fold_subtree_roots(subtree_roots: &[Hash]) -> Hash {
    let Some((last, rest)) = subtree_roots.split_last() else {
        return empty_tree_root();
    };
    let mut root = *last;
    for left in rest.iter().rev() {
        root = node_hash(left, &root);
    }
    root
}

/// The right edge of a Merkle tree: enough state (O(log n) hashes) to append leaves and compute
/// the root without the leaves themselves. Also called a compact range `[0, size)`.
///
/// The sequencer keeps one of these, appends each new event's leaf hash and persists it with
/// [`MerkleFrontier::to_bytes`] (layout in the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MerkleFrontier {
    tree_size: u64,
    /// One root per set bit of `tree_size`, most significant bit (leftmost subtree) first.
    subtree_roots: Vec<Hash>,
}

impl MerkleFrontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a frontier from a tree size and its subtree roots (most significant bit first),
    /// as returned by [`MerkleFrontier::tree_size`] and [`MerkleFrontier::subtree_roots`].
    pub fn from_parts(tree_size: u64, subtree_roots: Vec<Hash>) -> Result<Self, MerkleError> {
        let expected = tree_size.count_ones() as usize;
        if subtree_roots.len() != expected {
            return Err(MerkleError::FrontierHashCountMismatch {
                tree_size,
                expected,
                actual: subtree_roots.len(),
            });
        }
        Ok(Self {
            tree_size,
            subtree_roots,
        })
    }

    /// The frontier of the tree with the given leaves.
    pub fn from_leaf_hashes(leaf_hashes: &[Hash]) -> Self {
        let mut frontier = Self::new();
        for leaf in leaf_hashes {
            frontier.append_within_capacity(*leaf);
        }
        frontier
    }

    /// Number of leaves appended so far.
    pub fn tree_size(&self) -> u64 {
        self.tree_size
    }

    /// The perfect subtree roots along the right edge, leftmost (largest) first.
    pub fn subtree_roots(&self) -> &[Hash] {
        &self.subtree_roots
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf_hash: Hash) -> Result<(), MerkleError> {
        if self.tree_size == u64::MAX {
            return Err(MerkleError::TreeFull);
        }
        self.append_within_capacity(leaf_hash);
        Ok(())
    }

    fn append_within_capacity(&mut self, leaf_hash: Hash) {
        debug_assert!(self.tree_size < u64::MAX);
        let mut current = leaf_hash;
        let mut leaves_before = self.tree_size;
        while leaves_before & 1 == 1 {
            let Some(left) = self.subtree_roots.pop() else {
                debug_assert!(
                    false,
                    "frontier holds fewer subtree roots than its size implies"
                );
                break;
            };
            current = node_hash(&left, &current);
            leaves_before >>= 1;
        }
        self.subtree_roots.push(current);
        self.tree_size += 1;
        debug_assert_eq!(
            self.subtree_roots.len(),
            self.tree_size.count_ones() as usize
        );
    }

    /// The root of the tree of [`MerkleFrontier::tree_size`] leaves.
    pub fn root(&self) -> Hash {
        fold_subtree_roots(&self.subtree_roots)
    }

    /// `tree size (u64 big-endian) || subtree roots (32 bytes each, leftmost first)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes =
            Vec::with_capacity(FRONTIER_SIZE_LENGTH + HASH_LENGTH * self.subtree_roots.len());
        bytes.extend_from_slice(&self.tree_size.to_be_bytes());
        for subtree_root in &self.subtree_roots {
            bytes.extend_from_slice(subtree_root);
        }
        bytes
    }

    /// Parses the output of [`MerkleFrontier::to_bytes`], checking its exact length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MerkleError> {
        let Some((size_bytes, hash_bytes)) = bytes.split_first_chunk::<FRONTIER_SIZE_LENGTH>()
        else {
            return Err(MerkleError::FrontierTooShort);
        };
        let tree_size = u64::from_be_bytes(*size_bytes);
        let hash_count = tree_size.count_ones() as usize;
        let expected_length = FRONTIER_SIZE_LENGTH + HASH_LENGTH * hash_count;
        if bytes.len() != expected_length {
            return Err(MerkleError::FrontierByteLengthMismatch {
                expected: expected_length,
                actual: bytes.len(),
            });
        }
        let mut subtree_roots = Vec::with_capacity(hash_count);
        for chunk in hash_bytes.chunks_exact(HASH_LENGTH) {
            let mut subtree_root = [0u8; HASH_LENGTH];
            subtree_root.copy_from_slice(chunk);
            subtree_roots.push(subtree_root);
        }
        Self::from_parts(tree_size, subtree_roots)
    }
}

/// The largest power of two strictly smaller than `count` (`k` in RFC 6962). Requires `count >= 2`.
fn largest_power_of_two_below(count: u64) -> u64 {
    debug_assert!(count >= 2);
    1u64 << (63 - (count - 1).leading_zeros())
}

/// The leaf ranges whose subtree roots make up the inclusion proof of leaf `index` in a tree of
/// `tree_size` leaves, in proof order (RFC 9162 §2.1.3.1 `PATH(m, D[n])`, from the leaf up).
///
/// A store that cannot hold every leaf in memory can compute each range's root its own way and
/// get the same proof as [`inclusion_proof`].
pub fn inclusion_proof_subtrees(
    index: u64,
    tree_size: u64,
) -> Result<Vec<Range<u64>>, MerkleError> {
    if index >= tree_size {
        return Err(MerkleError::IndexOutOfRange { index, tree_size });
    }
    let mut subtrees = Vec::new();
    let mut start = 0u64;
    let mut end = tree_size;
    while end - start > 1 {
        let split = start + largest_power_of_two_below(end - start);
        if index < split {
            subtrees.push(split..end);
            end = split;
        } else {
            subtrees.push(start..split);
            start = split;
        }
    }
    subtrees.reverse();
    Ok(subtrees)
}

/// The leaf ranges whose subtree roots make up the consistency proof from `old_size` to
/// `new_size`, in proof order (RFC 9162 §2.1.4.1 `PROOF(m, D[n])`). Empty when
/// `old_size == 0` or `old_size == new_size`.
pub fn consistency_proof_subtrees(
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Range<u64>>, MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::OldSizeExceedsNewSize { old_size, new_size });
    }
    let mut subtrees = Vec::new();
    if old_size == 0 || old_size == new_size {
        return Ok(subtrees);
    }
    // SUBPROOF(m, D[n], b), unrolled: `old_tree_is_whole_subtree` is `b`, true while the old
    // tree is still the left part of the range being examined.
    let mut start = 0u64;
    let mut end = new_size;
    let mut old_tree_is_whole_subtree = true;
    loop {
        if old_size == end {
            if !old_tree_is_whole_subtree {
                subtrees.push(start..end);
            }
            break;
        }
        let split = start + largest_power_of_two_below(end - start);
        if old_size <= split {
            subtrees.push(split..end);
            end = split;
        } else {
            subtrees.push(start..split);
            start = split;
            old_tree_is_whole_subtree = false;
        }
    }
    subtrees.reverse();
    Ok(subtrees)
}

/// Number of hashes in the inclusion proof of leaf `index` in a tree of `tree_size` leaves.
pub fn inclusion_proof_length(index: u64, tree_size: u64) -> Result<usize, MerkleError> {
    Ok(inclusion_proof_subtrees(index, tree_size)?.len())
}

/// Number of hashes in the consistency proof from `old_size` to `new_size`.
pub fn consistency_proof_length(old_size: u64, new_size: u64) -> Result<usize, MerkleError> {
    Ok(consistency_proof_subtrees(old_size, new_size)?.len())
}

fn roots_of_ranges(leaf_hashes: &[Hash], ranges: &[Range<u64>]) -> Vec<Hash> {
    let mut hashes = Vec::with_capacity(ranges.len());
    for range in ranges {
        // Ranges come from sizes no larger than `leaf_hashes.len()`, so they fit in usize.
        let start = range.start as usize;
        let end = range.end as usize;
        hashes.push(root_from_leaf_hashes(&leaf_hashes[start..end]));
    }
    hashes
}

/// The inclusion proof of leaf `index` in the tree whose leaves are `leaf_hashes`
/// (RFC 9162 §2.1.3.1). Hashes each leaf about once.
pub fn inclusion_proof(leaf_hashes: &[Hash], index: u64) -> Result<Vec<Hash>, MerkleError> {
    let tree_size = leaf_hashes.len() as u64;
    let ranges = inclusion_proof_subtrees(index, tree_size)?;
    Ok(roots_of_ranges(leaf_hashes, &ranges))
}

/// The consistency proof from the tree of the first `old_size` leaves to the tree of all
/// `leaf_hashes` (RFC 9162 §2.1.4.1). Empty when `old_size` is 0 or the whole tree.
pub fn consistency_proof(leaf_hashes: &[Hash], old_size: u64) -> Result<Vec<Hash>, MerkleError> {
    let new_size = leaf_hashes.len() as u64;
    let ranges = consistency_proof_subtrees(old_size, new_size)?;
    Ok(roots_of_ranges(leaf_hashes, &ranges))
}

/// Verifies that `leaf_hash` is leaf number `index` of the tree of `tree_size` leaves whose
/// root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    // Step 1.
    if index >= tree_size {
        return Err(MerkleError::IndexOutOfRange { index, tree_size });
    }
    let expected_length = inclusion_proof_length(index, tree_size)?;
    if proof.len() != expected_length {
        return Err(MerkleError::WrongProofLength {
            expected: expected_length,
            actual: proof.len(),
        });
    }
    // Step 2 and 3; the names follow the RFC.
    let mut first_number = index;
    let mut second_number = tree_size - 1;
    let mut running_hash = *leaf_hash;
    // Step 4.
    for proof_hash in proof {
        if second_number == 0 {
            return Err(MerkleError::WrongProofLength {
                expected: expected_length,
                actual: proof.len(),
            });
        }
        if first_number & 1 == 1 || first_number == second_number {
            running_hash = node_hash(proof_hash, &running_hash);
            if first_number & 1 == 0 {
                while first_number & 1 == 0 && first_number != 0 {
                    first_number >>= 1;
                    second_number >>= 1;
                }
            }
        } else {
            running_hash = node_hash(&running_hash, proof_hash);
        }
        first_number >>= 1;
        second_number >>= 1;
    }
    // Step 5.
    if second_number != 0 {
        return Err(MerkleError::WrongProofLength {
            expected: expected_length,
            actual: proof.len(),
        });
    }
    if running_hash != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `new_size` leaves with root `new_root` extends the tree of
/// `old_size` leaves with root `old_root` (RFC 9162 §2.1.4.2, plus the edge cases described in
/// the module documentation).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    let expected_length = consistency_proof_length(old_size, new_size)?;
    let wrong_length = MerkleError::WrongProofLength {
        expected: expected_length,
        actual: proof.len(),
    };
    if proof.len() != expected_length {
        return Err(wrong_length);
    }
    if old_size == 0 {
        if *old_root != empty_tree_root() {
            return Err(MerkleError::OldRootMismatch);
        }
        if new_size == 0 && *new_root != empty_tree_root() {
            return Err(MerkleError::NewRootMismatch);
        }
        return Ok(());
    }
    if old_size == new_size {
        if old_root != new_root {
            return Err(MerkleError::RootsDifferAtSameSize {
                tree_size: old_size,
            });
        }
        return Ok(());
    }

    // From here 0 < old_size < new_size. Step 1.
    let Some((first_proof_hash, remaining_proof)) = proof.split_first() else {
        return Err(wrong_length);
    };
    // Step 2: when the old tree is a perfect subtree its root is the implicit first path entry.
    let (starting_hash, path_after_start): (&Hash, &[Hash]) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        (first_proof_hash, remaining_proof)
    };
    // Step 3 and 4; the names follow the RFC (fn, sn, fr, sr).
    let mut first_number = old_size - 1;
    let mut second_number = new_size - 1;
    while first_number & 1 == 1 {
        first_number >>= 1;
        second_number >>= 1;
    }
    // Step 5.
    let mut first_root = *starting_hash;
    let mut second_root = *starting_hash;
    // Step 6.
    for path_hash in path_after_start {
        if second_number == 0 {
            return Err(wrong_length);
        }
        if first_number & 1 == 1 || first_number == second_number {
            first_root = node_hash(path_hash, &first_root);
            second_root = node_hash(path_hash, &second_root);
            if first_number & 1 == 0 {
                while first_number & 1 == 0 && first_number != 0 {
                    first_number >>= 1;
                    second_number >>= 1;
                }
            }
        } else {
            second_root = node_hash(&second_root, path_hash);
        }
        first_number >>= 1;
        second_number >>= 1;
    }
    // Step 7.
    if second_number != 0 {
        return Err(wrong_length);
    }
    if first_root != *old_root {
        return Err(MerkleError::OldRootMismatch);
    }
    if second_root != *new_root {
        return Err(MerkleError::NewRootMismatch);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn leaves(count: u64) -> Vec<Hash> {
        let mut hashes = Vec::new();
        for number in 0..count {
            hashes.push(leaf_hash(&number.to_be_bytes()));
        }
        hashes
    }

    /// Straight transcription of the recursive RFC 6962 definition, as an oracle.
    fn recursive_root(leaf_hashes: &[Hash]) -> Hash {
        match leaf_hashes.len() {
            0 => empty_tree_root(),
            1 => leaf_hashes[0],
            count => {
                let split = largest_power_of_two_below(count as u64) as usize;
                node_hash(
                    &recursive_root(&leaf_hashes[..split]),
                    &recursive_root(&leaf_hashes[split..]),
                )
            }
        }
    }

    #[test]
    fn hashing_uses_rfc6962_prefixes() {
        let mut expected_leaf = Sha256::new();
        expected_leaf.update([0u8]);
        expected_leaf.update(b"abc");
        assert_eq!(leaf_hash(b"abc"), <Hash>::from(expected_leaf.finalize()));

        let left = [1u8; 32];
        let right = [2u8; 32];
        let mut expected_node = Sha256::new();
        expected_node.update([1u8]);
        expected_node.update(left);
        expected_node.update(right);
        assert_eq!(
            node_hash(&left, &right),
            <Hash>::from(expected_node.finalize())
        );
    }

    #[test]
    fn empty_tree_root_is_sha256_of_nothing() {
        let expected = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let actual: String = empty_tree_root()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(actual, expected);
        assert_eq!(root_from_leaf_hashes(&[]), empty_tree_root());
    }

    #[test]
    fn iterative_root_matches_recursive_definition() {
        let all = leaves(300);
        for size in 0..=300usize {
            assert_eq!(
                root_from_leaf_hashes(&all[..size]),
                recursive_root(&all[..size]),
                "size {size}"
            );
        }
    }

    #[test]
    fn frontier_root_matches_batch_root_at_every_size() {
        let all = leaves(200);
        let mut frontier = MerkleFrontier::new();
        assert_eq!(frontier.root(), empty_tree_root());
        for (position, leaf) in all.iter().enumerate() {
            frontier.push(*leaf).unwrap();
            assert_eq!(frontier.tree_size(), position as u64 + 1);
            assert_eq!(frontier.root(), root_from_leaf_hashes(&all[..=position]));
            assert_eq!(
                frontier.subtree_roots().len(),
                frontier.tree_size().count_ones() as usize
            );
        }
    }

    #[test]
    fn frontier_survives_serialisation_and_resumes() {
        let all = leaves(77);
        let frontier = MerkleFrontier::from_leaf_hashes(&all[..45]);
        let bytes = frontier.to_bytes();
        assert_eq!(bytes.len(), 8 + 32 * 45u64.count_ones() as usize);
        assert_eq!(&bytes[..8], &45u64.to_be_bytes());
        let mut resumed = MerkleFrontier::from_bytes(&bytes).unwrap();
        assert_eq!(resumed, frontier);
        for leaf in &all[45..] {
            resumed.push(*leaf).unwrap();
        }
        assert_eq!(resumed.root(), root_from_leaf_hashes(&all));

        let from_parts =
            MerkleFrontier::from_parts(frontier.tree_size(), frontier.subtree_roots().to_vec())
                .unwrap();
        assert_eq!(from_parts, frontier);

        let empty = MerkleFrontier::from_bytes(&0u64.to_be_bytes()).unwrap();
        assert_eq!(empty.root(), empty_tree_root());
    }

    #[test]
    fn frontier_rejects_inconsistent_parts() {
        assert_eq!(
            MerkleFrontier::from_parts(3, vec![[0u8; 32]]),
            Err(MerkleError::FrontierHashCountMismatch {
                tree_size: 3,
                expected: 2,
                actual: 1
            })
        );
        assert_eq!(
            MerkleFrontier::from_bytes(&[0u8; 7]),
            Err(MerkleError::FrontierTooShort)
        );
        let mut bytes = MerkleFrontier::from_leaf_hashes(&leaves(3)).to_bytes();
        bytes.pop();
        assert_eq!(
            MerkleFrontier::from_bytes(&bytes),
            Err(MerkleError::FrontierByteLengthMismatch {
                expected: 72,
                actual: 71
            })
        );
    }

    #[test]
    fn full_frontier_refuses_another_leaf() {
        let mut frontier = MerkleFrontier::from_parts(u64::MAX, vec![[0u8; 32]; 64]).unwrap();
        assert_eq!(frontier.push([0u8; 32]), Err(MerkleError::TreeFull));
    }

    #[test]
    fn every_inclusion_proof_verifies_and_has_the_predicted_length() {
        let all = leaves(40);
        for size in 1..=40u64 {
            let tree = &all[..size as usize];
            let root = root_from_leaf_hashes(tree);
            for index in 0..size {
                let proof = inclusion_proof(tree, index).unwrap();
                assert_eq!(proof.len(), inclusion_proof_length(index, size).unwrap());
                verify_inclusion(&tree[index as usize], index, size, &proof, &root).unwrap();
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies() {
        let all = leaves(40);
        for new_size in 0..=40u64 {
            let tree = &all[..new_size as usize];
            let new_root = root_from_leaf_hashes(tree);
            for old_size in 0..=new_size {
                let old_root = root_from_leaf_hashes(&all[..old_size as usize]);
                let proof = consistency_proof(tree, old_size).unwrap();
                verify_consistency(old_size, new_size, &old_root, &new_root, &proof).unwrap();
            }
        }
    }

    #[test]
    fn inclusion_tampering_is_detected() {
        let tree = leaves(13);
        let root = root_from_leaf_hashes(&tree);
        let proof = inclusion_proof(&tree, 6).unwrap();

        let changed_leaf = leaf_hash(b"forged");
        assert_eq!(
            verify_inclusion(&changed_leaf, 6, 13, &proof, &root),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_inclusion(&tree[6], 7, 13, &proof, &root),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_inclusion(&tree[6], 6, 13, &proof[..proof.len() - 1], &root),
            Err(MerkleError::WrongProofLength {
                expected: proof.len(),
                actual: proof.len() - 1
            })
        );
        let mut longer = proof.clone();
        longer.push([0u8; 32]);
        assert!(matches!(
            verify_inclusion(&tree[6], 6, 13, &longer, &root),
            Err(MerkleError::WrongProofLength { .. })
        ));
        let mut changed_proof = proof.clone();
        changed_proof[1][0] ^= 1;
        assert_eq!(
            verify_inclusion(&tree[6], 6, 13, &changed_proof, &root),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_inclusion(&tree[6], 13, 13, &proof, &root),
            Err(MerkleError::IndexOutOfRange {
                index: 13,
                tree_size: 13
            })
        );
        assert_eq!(
            inclusion_proof(&tree, 13),
            Err(MerkleError::IndexOutOfRange {
                index: 13,
                tree_size: 13
            })
        );
    }

    #[test]
    fn consistency_tampering_is_detected() {
        let tree = leaves(21);
        let old_root = root_from_leaf_hashes(&tree[..7]);
        let new_root = root_from_leaf_hashes(&tree);
        let proof = consistency_proof(&tree, 7).unwrap();
        verify_consistency(7, 21, &old_root, &new_root, &proof).unwrap();

        let forged_old_root = root_from_leaf_hashes(&leaves(6));
        assert_eq!(
            verify_consistency(7, 21, &forged_old_root, &new_root, &proof),
            Err(MerkleError::OldRootMismatch)
        );
        let mut rewritten = tree.clone();
        rewritten[3] = leaf_hash(b"rewritten history");
        let rewritten_root = root_from_leaf_hashes(&rewritten);
        let rewritten_proof = consistency_proof(&rewritten, 7).unwrap();
        assert!(verify_consistency(7, 21, &old_root, &rewritten_root, &rewritten_proof).is_err());
        assert_eq!(
            verify_consistency(7, 21, &old_root, &rewritten_root, &proof),
            Err(MerkleError::NewRootMismatch)
        );
        assert!(matches!(
            verify_consistency(7, 21, &old_root, &new_root, &proof[1..]),
            Err(MerkleError::WrongProofLength { .. })
        ));
        assert!(verify_consistency(6, 21, &old_root, &new_root, &proof).is_err());
        assert_eq!(
            verify_consistency(22, 21, &old_root, &new_root, &proof),
            Err(MerkleError::OldSizeExceedsNewSize {
                old_size: 22,
                new_size: 21
            })
        );
    }

    #[test]
    fn consistency_edge_cases() {
        let tree = leaves(5);
        let root = root_from_leaf_hashes(&tree);
        let other_root = root_from_leaf_hashes(&tree[..4]);
        // Same size: empty proof, equal roots.
        verify_consistency(5, 5, &root, &root, &[]).unwrap();
        assert_eq!(
            verify_consistency(5, 5, &root, &other_root, &[]),
            Err(MerkleError::RootsDifferAtSameSize { tree_size: 5 })
        );
        assert!(matches!(
            verify_consistency(5, 5, &root, &root, &[root]),
            Err(MerkleError::WrongProofLength { .. })
        ));
        // From the empty tree: empty proof, old root must be SHA-256("").
        verify_consistency(0, 5, &empty_tree_root(), &root, &[]).unwrap();
        verify_consistency(0, 0, &empty_tree_root(), &empty_tree_root(), &[]).unwrap();
        assert_eq!(
            verify_consistency(0, 5, &root, &root, &[]),
            Err(MerkleError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 0, &empty_tree_root(), &root, &[]),
            Err(MerkleError::NewRootMismatch)
        );
        assert!(matches!(
            verify_consistency(0, 5, &empty_tree_root(), &root, &[root]),
            Err(MerkleError::WrongProofLength { .. })
        ));
        assert_eq!(consistency_proof(&tree, 0).unwrap(), Vec::<Hash>::new());
        assert_eq!(consistency_proof(&tree, 5).unwrap(), Vec::<Hash>::new());
        assert_eq!(
            consistency_proof(&tree, 6),
            Err(MerkleError::OldSizeExceedsNewSize {
                old_size: 6,
                new_size: 5
            })
        );
    }

    #[test]
    fn proof_lengths_at_large_sizes_do_not_overflow() {
        assert_eq!(inclusion_proof_length(0, 1u64 << 63).unwrap(), 63);
        assert_eq!(inclusion_proof_length(u64::MAX - 1, u64::MAX).unwrap(), 63);
        assert!(consistency_proof_length(u64::MAX - 1, u64::MAX).unwrap() > 0);
        assert_eq!(inclusion_proof_length(0, u64::MAX).unwrap(), 64);
    }
}
