//! Known-answer and cross-implementation checks of `sunshine_evidence::merkle`:
//! the RFC 6962 test vectors used by certificate-transparency implementations, and agreement
//! with the independent `ct-merkle` crate on roots, inclusion proofs and consistency proofs.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use proptest::prelude::*;
use sha2::Sha256;
use sunshine_evidence::merkle::{
    Hash, MerkleError, MerkleFrontier, consistency_proof, empty_tree_root, inclusion_proof,
    leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion,
};

fn hash_from_hex(text: &str) -> Hash {
    assert_eq!(text.len(), 64, "{text}");
    let mut hash = [0u8; 32];
    for (position, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * position..2 * position + 2], 16).unwrap();
    }
    hash
}

fn bytes_from_hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|position| u8::from_str_radix(&text[2 * position..2 * position + 2], 16).unwrap())
        .collect()
}

fn hashes_from_hex(texts: &[&str]) -> Vec<Hash> {
    texts.iter().map(|text| hash_from_hex(text)).collect()
}

/// The eight leaves of the RFC 6962 test vectors (hex of the leaf *data*).
const RFC6962_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Roots of the trees of the first 1..=8 leaves.
const RFC6962_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn rfc6962_leaf_hashes() -> Vec<Hash> {
    RFC6962_LEAVES
        .iter()
        .map(|leaf| leaf_hash(&bytes_from_hex(leaf)))
        .collect()
}

fn ct_merkle_tree(leaf_data: &[Vec<u8>]) -> MemoryBackedTree<Sha256, Vec<u8>> {
    let mut tree = MemoryBackedTree::new();
    for leaf in leaf_data {
        tree.push(leaf.clone());
    }
    tree
}

fn ct_merkle_root(hash: &Hash, tree_size: u64) -> RootHash<Sha256> {
    RootHash::new((*hash).into(), tree_size)
}

fn as_proof_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

fn leaf_data(count: usize, salt: u64) -> Vec<Vec<u8>> {
    (0..count as u64)
        .map(|number| {
            let mut data = salt.to_be_bytes().to_vec();
            data.extend_from_slice(&number.to_le_bytes()[..(number % 8) as usize]);
            data
        })
        .collect()
}

#[test]
fn rfc6962_roots_for_sizes_one_to_eight() {
    let leaves = rfc6962_leaf_hashes();
    let leaf_data: Vec<Vec<u8>> = RFC6962_LEAVES
        .iter()
        .map(|leaf| bytes_from_hex(leaf))
        .collect();
    for size in 1..=8usize {
        let expected = hash_from_hex(RFC6962_ROOTS[size - 1]);
        assert_eq!(
            root_from_leaf_hashes(&leaves[..size]),
            expected,
            "size {size}"
        );
        assert_eq!(
            MerkleFrontier::from_leaf_hashes(&leaves[..size]).root(),
            expected
        );
        let reference = ct_merkle_tree(&leaf_data[..size]).root();
        assert_eq!(reference.as_bytes().as_slice(), expected.as_slice());
    }
    assert_eq!(
        empty_tree_root(),
        hash_from_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
}

/// (leaf index, tree size, proof) from the certificate-transparency test vectors.
#[test]
fn rfc6962_inclusion_proofs() {
    let leaves = rfc6962_leaf_hashes();
    let vectors: [(u64, u64, Vec<Hash>); 5] = [
        (0, 1, vec![]),
        (
            0,
            8,
            hashes_from_hex(&[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]),
        ),
        (
            5,
            8,
            hashes_from_hex(&[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]),
        ),
        (
            2,
            3,
            hashes_from_hex(&["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        ),
        (
            1,
            5,
            hashes_from_hex(&[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]),
        ),
    ];
    for (index, tree_size, expected_proof) in vectors {
        let tree = &leaves[..tree_size as usize];
        let proof = inclusion_proof(tree, index).unwrap();
        assert_eq!(proof, expected_proof, "index {index} size {tree_size}");
        let root = hash_from_hex(RFC6962_ROOTS[tree_size as usize - 1]);
        verify_inclusion(&leaves[index as usize], index, tree_size, &proof, &root).unwrap();
    }
}

/// (old size, new size, proof) from the certificate-transparency test vectors.
#[test]
fn rfc6962_consistency_proofs() {
    let leaves = rfc6962_leaf_hashes();
    let vectors: [(u64, u64, Vec<Hash>); 4] = [
        (1, 1, vec![]),
        (
            1,
            8,
            hashes_from_hex(&[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]),
        ),
        (
            6,
            8,
            hashes_from_hex(&[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]),
        ),
        (
            2,
            5,
            hashes_from_hex(&[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]),
        ),
    ];
    for (old_size, new_size, expected_proof) in vectors {
        let tree = &leaves[..new_size as usize];
        let proof = consistency_proof(tree, old_size).unwrap();
        assert_eq!(proof, expected_proof, "{old_size} -> {new_size}");
        let old_root = hash_from_hex(RFC6962_ROOTS[old_size as usize - 1]);
        let new_root = hash_from_hex(RFC6962_ROOTS[new_size as usize - 1]);
        verify_consistency(old_size, new_size, &old_root, &new_root, &proof).unwrap();
    }
}

#[test]
fn rfc6962_tampering_is_rejected() {
    let leaves = rfc6962_leaf_hashes();
    let root = hash_from_hex(RFC6962_ROOTS[7]);
    let proof = inclusion_proof(&leaves, 5).unwrap();
    // A changed leaf.
    assert_eq!(
        verify_inclusion(&leaf_hash(b"forged"), 5, 8, &proof, &root),
        Err(MerkleError::RootMismatch)
    );
    // A wrong index.
    assert_eq!(
        verify_inclusion(&leaves[5], 4, 8, &proof, &root),
        Err(MerkleError::RootMismatch)
    );
    // A truncated proof.
    assert_eq!(
        verify_inclusion(&leaves[5], 5, 8, &proof[..2], &root),
        Err(MerkleError::WrongProofLength {
            expected: 3,
            actual: 2
        })
    );
    // A wrong tree size. (As in every RFC 9162 verifier, a size whose path has the same shape,
    // here 7, is not detected by the proof alone: the signed checkpoint binds size and root.)
    assert_eq!(
        verify_inclusion(&leaves[5], 5, 6, &proof, &root),
        Err(MerkleError::WrongProofLength {
            expected: 2,
            actual: 3
        })
    );

    let old_root = hash_from_hex(RFC6962_ROOTS[5]);
    let consistency = consistency_proof(&leaves, 6).unwrap();
    assert_eq!(
        verify_consistency(6, 8, &hash_from_hex(RFC6962_ROOTS[4]), &root, &consistency),
        Err(MerkleError::OldRootMismatch)
    );
    assert_eq!(
        verify_consistency(
            6,
            8,
            &old_root,
            &hash_from_hex(RFC6962_ROOTS[6]),
            &consistency
        ),
        Err(MerkleError::NewRootMismatch)
    );
    assert!(matches!(
        verify_consistency(6, 8, &old_root, &root, &consistency[..2]),
        Err(MerkleError::WrongProofLength { .. })
    ));
}

/// Our proofs equal ct-merkle's byte for byte, and each side verifies the other's.
fn cross_check_tree(leaf_data: &[Vec<u8>]) {
    let tree_size = leaf_data.len() as u64;
    let leaves: Vec<Hash> = leaf_data.iter().map(|data| leaf_hash(data)).collect();
    let reference = ct_merkle_tree(leaf_data);
    let root = root_from_leaf_hashes(&leaves);
    assert_eq!(reference.root().as_bytes().as_slice(), root.as_slice());
    assert_eq!(MerkleFrontier::from_leaf_hashes(&leaves).root(), root);
    let reference_root = ct_merkle_root(&root, tree_size);

    for index in 0..tree_size {
        let proof = inclusion_proof(&leaves, index).unwrap();
        let reference_proof = reference.prove_inclusion(index as usize);
        assert_eq!(
            as_proof_bytes(&proof),
            reference_proof.as_bytes(),
            "inclusion {index} of {tree_size}"
        );
        verify_inclusion(&leaves[index as usize], index, tree_size, &proof, &root).unwrap();
        let proof_for_reference =
            InclusionProof::<Sha256>::try_from_bytes(as_proof_bytes(&proof)).unwrap();
        reference_root
            .verify_inclusion(&leaf_data[index as usize], index, &proof_for_reference)
            .unwrap();
    }

    for old_size in 1..=tree_size {
        let old_root = root_from_leaf_hashes(&leaves[..old_size as usize]);
        let proof = consistency_proof(&leaves, old_size).unwrap();
        let reference_proof = reference.prove_consistency((tree_size - old_size) as usize);
        assert_eq!(
            as_proof_bytes(&proof),
            reference_proof.as_bytes(),
            "consistency {old_size} -> {tree_size}"
        );
        verify_consistency(old_size, tree_size, &old_root, &root, &proof).unwrap();
        let proof_for_reference =
            ConsistencyProof::<Sha256>::try_from_bytes(as_proof_bytes(&proof)).unwrap();
        reference_root
            .verify_consistency(&ct_merkle_root(&old_root, old_size), &proof_for_reference)
            .unwrap();
    }
}

#[test]
fn agrees_with_ct_merkle_for_every_size_index_and_old_size_up_to_70() {
    let all = leaf_data(70, 0x5eed);
    for tree_size in 1..=70usize {
        cross_check_tree(&all[..tree_size]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn agrees_with_ct_merkle_at_random_sizes(
        tree_size in 1usize..1500,
        index_seed in any::<u64>(),
        old_size_seed in any::<u64>(),
        salt in any::<u64>(),
    ) {
        let data = leaf_data(tree_size, salt);
        let leaves: Vec<Hash> = data.iter().map(|leaf| leaf_hash(leaf)).collect();
        let reference = ct_merkle_tree(&data);
        let root = root_from_leaf_hashes(&leaves);
        let reference_root = reference.root();
        prop_assert_eq!(reference_root.as_bytes().as_slice(), root.as_slice());

        let size = tree_size as u64;
        let index = index_seed % size;
        let proof = inclusion_proof(&leaves, index).unwrap();
        prop_assert_eq!(
            as_proof_bytes(&proof),
            reference.prove_inclusion(index as usize).as_bytes().to_vec()
        );
        prop_assert!(verify_inclusion(&leaves[index as usize], index, size, &proof, &root).is_ok());
        let other_index = (index + 1) % size;
        if other_index != index {
            prop_assert!(
                verify_inclusion(&leaves[index as usize], other_index, size, &proof, &root).is_err()
            );
        }

        let old_size = 1 + old_size_seed % size;
        let old_root = root_from_leaf_hashes(&leaves[..old_size as usize]);
        let proof = consistency_proof(&leaves, old_size).unwrap();
        prop_assert_eq!(
            as_proof_bytes(&proof),
            reference.prove_consistency((size - old_size) as usize).as_bytes().to_vec()
        );
        prop_assert!(verify_consistency(old_size, size, &old_root, &root, &proof).is_ok());
        if old_size < size {
            let mut forged = old_root;
            forged[0] ^= 1;
            prop_assert!(verify_consistency(old_size, size, &forged, &root, &proof).is_err());
        }

        let mut frontier = MerkleFrontier::from_leaf_hashes(&leaves[..old_size as usize]);
        let resumed = MerkleFrontier::from_bytes(&frontier.to_bytes()).unwrap();
        prop_assert_eq!(&resumed, &frontier);
        for leaf in &leaves[old_size as usize..] {
            frontier.push(*leaf).unwrap();
        }
        prop_assert_eq!(frontier.root(), root);
    }
}

/// Throughput of `root_from_leaf_hashes`; run with
/// `cargo test -p sunshine-eventlog --release --test merkle_vectors -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a correctness check"]
fn root_from_leaf_hashes_throughput() {
    let leaf_count = 1_000_000u64;
    let leaves: Vec<Hash> = (0..leaf_count)
        .map(|number| leaf_hash(&number.to_be_bytes()))
        .collect();
    let started = Instant::now();
    let root = root_from_leaf_hashes(&leaves);
    let elapsed = started.elapsed();
    println!(
        "root of {leaf_count} leaves in {elapsed:?}: {:.0} leaves/s (root {:02x}{:02x}..)",
        leaf_count as f64 / elapsed.as_secs_f64(),
        root[0],
        root[1]
    );
}
