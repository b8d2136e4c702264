//! The district's home-visit sample (入户抽查, 特困人员认定办法; issue 20 item 11): which of
//! the cases it received it must visit, drawn so that anyone holding the log recomputes it.
//!
//! This module owns the draw, [`draw`], pure and deterministic (algorithm [`ALGORITHM`]):
//!
//! 1. the received case ids, sorted (bytewise) with duplicates removed, are the seed's input;
//! 2. seed = SHA-256 of those ids joined by one `\n` (no trailing newline), UTF-8;
//! 3. each case's rank = SHA-256 of the 32 seed bytes followed by the case id's UTF-8 bytes;
//! 4. the sample is the `size` cases of the smallest ranks (compared as bytes; equal ranks,
//!    which SHA-256 makes practically impossible, by case id), listed sorted by case id.
//!
//! `size` is the policy's ⌈share × received⌉ (`CaseProcedure::home_visit_sample_size`). The
//! event (`HomeVisitSampleDrawn`) records the sorted ids, the seed, the share, the size and the
//! sampled ids, so an auditor re-runs steps 1–4 and compares.

use sha2::{Digest, Sha256};

/// The name of the draw's algorithm, recorded in every draw.
pub const ALGORITHM: &str = "sha256-rank-v1";

/// A drawn sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drawn {
    /// The received case ids, sorted, without duplicates: the seed's input.
    pub received: Vec<String>,
    /// SHA-256 of the received ids joined by `\n`, in lowercase hex.
    pub seed_hex: String,
    /// The sampled case ids, sorted.
    pub sampled: Vec<String>,
}

/// The seed of a draw over `sorted_ids` (already sorted and without duplicates).
pub fn seed(sorted_ids: &[String]) -> [u8; 32] {
    Sha256::digest(sorted_ids.join("\n").as_bytes()).into()
}

/// Draws `size` of `case_ids` (at most all of them) by [`ALGORITHM`].
pub fn draw(case_ids: &[String], size: usize) -> Drawn {
    let mut received: Vec<String> = case_ids.to_vec();
    received.sort();
    received.dedup();
    let seed = seed(&received);
    let mut ranked: Vec<([u8; 32], &String)> = received
        .iter()
        .map(|case_id| {
            let mut hasher = Sha256::new();
            hasher.update(seed);
            hasher.update(case_id.as_bytes());
            (hasher.finalize().into(), case_id)
        })
        .collect();
    ranked.sort();
    let mut sampled: Vec<String> = ranked
        .into_iter()
        .take(size)
        .map(|(_, case_id)| case_id.clone())
        .collect();
    sampled.sort();
    Drawn {
        seed_hex: hex::encode(seed),
        received,
        sampled,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ids(count: usize) -> Vec<String> {
        (0..count)
            .map(|index| format!("00000000-0000-4000-8000-{index:012}"))
            .collect()
    }

    #[test]
    fn the_draw_depends_only_on_the_set_of_ids() {
        let forward = ids(10);
        let mut backward = forward.clone();
        backward.reverse();
        backward.push(forward[3].clone());
        let once = draw(&forward, 3);
        assert_eq!(once, draw(&backward, 3));
        assert_eq!(once.received, forward);
        assert_eq!(once.sampled.len(), 3);
        assert!(once.sampled.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(once.sampled.iter().all(|id| forward.contains(id)));
        // Another batch draws another sample (the seed is the batch's).
        assert_ne!(draw(&ids(11), 3).seed_hex, once.seed_hex);
    }

    #[test]
    fn an_auditor_recomputes_it_from_the_recorded_inputs() {
        let drawn = draw(&ids(4), 2);
        // Step 2 by hand: SHA-256 of the ids joined by newlines.
        let joined = drawn.received.join("\n");
        assert_eq!(
            drawn.seed_hex,
            hex::encode(Sha256::digest(joined.as_bytes()))
        );
        // Step 3 and 4 by hand.
        let seed = hex::decode(&drawn.seed_hex).unwrap();
        let mut ranks: Vec<(Vec<u8>, String)> = drawn
            .received
            .iter()
            .map(|id| {
                let mut input = seed.clone();
                input.extend_from_slice(id.as_bytes());
                (Sha256::digest(&input).to_vec(), id.clone())
            })
            .collect();
        ranks.sort();
        let mut expected: Vec<String> = ranks.into_iter().take(2).map(|(_, id)| id).collect();
        expected.sort();
        assert_eq!(drawn.sampled, expected);
    }

    #[test]
    fn a_size_beyond_the_batch_takes_every_case_and_zero_takes_none() {
        assert_eq!(draw(&ids(3), 10).sampled, ids(3));
        assert!(draw(&ids(3), 0).sampled.is_empty());
        assert!(draw(&[], 1).sampled.is_empty());
    }
}
