//! Costs every request pays before a service does any work: verifying the bearer token, and
//! parsing the values that arrive in it (a resident id, an amount). Each figure is reported as
//! nanoseconds per operation and as a ratio to a baseline measured in the same run (SHA-256 of
//! 64 bytes), so results from different machines can be compared.
//!
//! Writes `target/bench/foundation.json`. Run with `make bench`.

use std::hint::black_box;
use std::time::Instant;

use sha2::Digest as _;
use sunshine_domain::{Money, NationalId};
use sunshine_platform::Role;
use sunshine_platform::auth::{Claims, TokenIssuer, TokenVerifier};
use sunshine_platform::config::{AuthConfig, VerifyingKeyConfig};

const BATCHES: usize = 7;

/// Median nanoseconds per call of `operation` over [`BATCHES`] batches of `iterations`.
fn measure(iterations: u32, mut operation: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        operation();
    }
    let mut per_batch = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let started = Instant::now();
        for _ in 0..iterations {
            operation();
        }
        per_batch.push(started.elapsed().as_nanos() as f64 / f64::from(iterations));
    }
    per_batch.sort_by(f64::total_cmp);
    per_batch[BATCHES / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let payload = [7u8; 64];
    let baseline = measure(200_000, || {
        black_box(sha2::Sha256::digest(black_box(&payload)));
    });

    let issuer = TokenIssuer::generate("bench")?;
    let config = AuthConfig {
        keys: vec![VerifyingKeyConfig {
            kid: "bench".into(),
            public_key: issuer.public_key_base64(),
        }],
        ..AuthConfig::default()
    };
    let verifier = TokenVerifier::from_config(&config, "intake")?;
    let now = time::OffsetDateTime::now_utc();
    let claims = Claims {
        iss: config.issuer.clone(),
        aud: config.audience_for("intake").into(),
        sub: "officer-1".into(),
        exp: now.unix_timestamp() + 3600,
        nbf: None,
        iat: now.unix_timestamp(),
        name: "张三".into(),
        role: Role::CenterReviewer,
        org_unit: "990101000000".into(),
        department_code: None,
        scopes: Vec::new(),
    };
    let token = issuer.sign(&claims);
    // Measure the accepting path, not an early refusal.
    verifier.verify(&token, now)?;

    let results = [
        (
            "token_verify",
            measure(5_000, || {
                black_box(verifier.verify_uncached(black_box(&token), now).ok());
            }),
        ),
        (
            "token_verify_seen_before",
            measure(5_000, || {
                black_box(verifier.verify(black_box(&token), now).ok());
            }),
        ),
        (
            "token_sign",
            measure(5_000, || {
                black_box(issuer.sign(black_box(&claims)));
            }),
        ),
        (
            "national_id_parse",
            measure(200_000, || {
                black_box(NationalId::parse(black_box("11010519491231002X")).ok());
            }),
        ),
        (
            "money_parse_yuan",
            measure(200_000, || {
                black_box(Money::parse_yuan(black_box("12345.67")).ok());
            }),
        ),
        (
            "money_display",
            measure(200_000, || {
                black_box(Money::from_fen(black_box(1_234_567)).to_string());
            }),
        ),
    ];

    let mut json = String::from("{\n");
    json.push_str(&format!(
        "  \"baseline\": {{ \"name\": \"sha256_64_bytes\", \"ns_per_op\": {baseline:.1} }},\n  \"results\": [\n"
    ));
    for (index, (name, nanoseconds)) in results.iter().enumerate() {
        let separator = if index + 1 < results.len() { "," } else { "" };
        json.push_str(&format!(
            "    {{ \"name\": \"{name}\", \"ns_per_op\": {nanoseconds:.1}, \"ratio_to_baseline\": {:.2} }}{separator}\n",
            nanoseconds / baseline
        ));
        println!(
            "{name:>20}: {nanoseconds:>10.1} ns/op  ({:.2} × sha256 of 64 bytes)",
            nanoseconds / baseline
        );
    }
    json.push_str("  ]\n}\n");

    let target_directory = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").to_owned());
    let bench_directory = std::path::Path::new(&target_directory).join("bench");
    std::fs::create_dir_all(&bench_directory)?;
    let output = bench_directory.join("foundation.json");
    std::fs::write(&output, json)?;
    println!(
        "baseline sha256 of 64 bytes: {baseline:.1} ns/op; wrote {}",
        output.display()
    );
    Ok(())
}
