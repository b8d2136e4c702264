//! Dibao evaluation throughput on one core: 1,000,000 deterministically generated households
//! evaluated against the example district's parameters resolved once as of 2026-11-28 (rural
//! households for rural dibao, urban for urban). The baseline, measured in the same run over
//! the same households, is the cost of just summing each household's income items; the ratio
//! says how many such sums one evaluation costs, so figures from different machines compare.
//!
//! Writes `target/bench/policy.json` (`CARGO_TARGET_DIR` if set). Run with
//! `cargo bench -p sunshine-policy` (or `make bench`).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sunshine_domain::{Money, OrgUnitCode, Sex};
use sunshine_policy::facts::{
    AssetFacts, HukouType, IncomeItem, IncomeKind, MemberFacts, Relation,
};
use sunshine_policy::{HouseholdFacts, Policy, ProgramCode};
use time::Date;
use time::macros::date;

const HOUSEHOLD_COUNT: usize = 1_000_000;
const BATCH_SIZE: usize = 10_000;
const AS_OF: Date = date!(2026 - 11 - 28);

/// SplitMix64: a small deterministic generator, so every run sees the same households.
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn generate_household(
    random: &mut SplitMix64,
    village: &OrgUnitCode,
    other_district: &OrgUnitCode,
) -> HouseholdFacts {
    let urban = random.below(2) == 0;
    let hukou_type = if urban {
        HukouType::Urban
    } else {
        HukouType::Rural
    };
    let member_count = 1 + random.below(5) as usize;
    let mut members = Vec::with_capacity(member_count);
    for index in 0..member_count {
        let birth_date = Date::from_julian_day(2_425_000 + random.below(36_000) as i32)
            .unwrap_or(AS_OF)
            .min(AS_OF);
        let item_count = random.below(3) as usize;
        let mut monthly_income = Vec::with_capacity(item_count);
        for _ in 0..item_count {
            let kind = IncomeKind::ALL[random.below(IncomeKind::ALL.len() as u64) as usize];
            monthly_income.push(IncomeItem {
                kind,
                amount: Money::from_fen(random.below(200_000) as i64),
            });
        }
        members.push(MemberFacts {
            label: None,
            relation: if index == 0 {
                Relation::Head
            } else {
                Relation::Child
            },
            sex: if random.below(2) == 0 {
                Sex::Male
            } else {
                Sex::Female
            },
            birth_date,
            hukou_type,
            resident_since: Some(birth_date),
            disability: None,
            labour_capacity: Default::default(),
            self_care: Default::default(),
            pension: Default::default(),
            has_able_supporter: false,
            serious_illness: false,
            entitled_group: None,
            party_member_since: None,
            reservoir_migrant: None,
            enterprise_transferred_cadre: false,
            only_child_certificate: false,
            school: None,
            employment: Default::default(),
            monthly_income,
        });
    }
    HouseholdFacts {
        household_id: None,
        annual_education_spending: Money::ZERO,
        annual_other_rigid_spending: Money::ZERO,
        residence_org_unit: None,
        // One household in fifty is registered elsewhere.
        hukou_org_unit: if random.below(50) == 0 {
            other_district.clone()
        } else {
            village.clone()
        },
        members,
        assets: AssetFacts {
            financial_assets: Money::from_fen(random.below(6_000_000) as i64),
            non_essential_vehicles: u32::from(random.below(20) == 0),
            extra_housing_units: u32::from(random.below(25) == 0),
        },
        recipient_category: Default::default(),
        holds_urban_dibao_certificate: false,
        single_parent: false,
        empty_nest: false,
        family_planning: None,
        emergency: None,
        disaster: None,
        medical_claim: None,
        annual_medical_out_of_pocket: Money::ZERO,
        temporary_assistance_paid_this_year: Money::ZERO,
        housing: Default::default(),
    }
}

fn bench_output_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")));
    target.join("bench").join("policy.json")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = Policy::example_district()?;
    let resolved = policy.resolve(AS_OF)?;
    let village = OrgUnitCode::parse("990101101201")?;
    let other_district = OrgUnitCode::parse("990102001001")?;
    let mut random = SplitMix64 { state: 20_261_128 };

    // Warm-up on a separate batch, not counted.
    let warm_up: Vec<HouseholdFacts> = (0..BATCH_SIZE)
        .map(|_| generate_household(&mut random, &village, &other_district))
        .collect();
    for household in &warm_up {
        black_box(resolved.evaluate(ProgramCode::DibaoRural, black_box(household))?);
    }

    let mut evaluation_time = Duration::ZERO;
    let mut baseline_time = Duration::ZERO;
    let mut evaluated = 0_usize;
    let mut eligible = 0_usize;
    let mut total_amount_fen = 0_i64;
    let mut baseline_checksum = 0_i64;
    while evaluated < HOUSEHOLD_COUNT {
        let batch: Vec<HouseholdFacts> = (0..BATCH_SIZE.min(HOUSEHOLD_COUNT - evaluated))
            .map(|_| generate_household(&mut random, &village, &other_district))
            .collect();

        let started = Instant::now();
        for household in &batch {
            let mut sum = 0_i64;
            for member in &black_box(household).members {
                for item in &member.monthly_income {
                    sum += item.amount.fen();
                }
            }
            baseline_checksum = baseline_checksum.wrapping_add(black_box(sum));
        }
        baseline_time += started.elapsed();

        let started = Instant::now();
        for household in &batch {
            let program = match household.members[0].hukou_type {
                HukouType::Urban => ProgramCode::DibaoUrban,
                HukouType::Rural => ProgramCode::DibaoRural,
            };
            let decision = resolved.evaluate(program, black_box(household))?;
            if decision.eligible {
                eligible += 1;
                total_amount_fen += decision.amount.fen();
            }
            black_box(&decision);
        }
        evaluation_time += started.elapsed();
        evaluated += batch.len();
    }

    let evaluations_per_second = evaluated as f64 / evaluation_time.as_secs_f64();
    let baseline_per_second = evaluated as f64 / baseline_time.as_secs_f64();
    let nanoseconds_per_evaluation = evaluation_time.as_nanos() as f64 / evaluated as f64;
    let nanoseconds_per_baseline = baseline_time.as_nanos() as f64 / evaluated as f64;
    let ratio = nanoseconds_per_evaluation / nanoseconds_per_baseline;

    let report = serde_json::json!({
        "benchmark": "policy",
        "what": "dibao evaluation (difference method) of generated households against parameters resolved once, one core",
        "households": evaluated,
        "as_of": "2026-11-28",
        "policy_version": policy.version().to_hex(),
        "policy_evals_per_s": evaluations_per_second.round(),
        "ns_per_eval": (nanoseconds_per_evaluation * 10.0).round() / 10.0,
        "baseline": "summing each household's monthly income items",
        "baseline_sums_per_s": baseline_per_second.round(),
        "baseline_ns_per_household": (nanoseconds_per_baseline * 10.0).round() / 10.0,
        "eval_to_baseline_ratio": (ratio * 10.0).round() / 10.0,
        "target_policy_evals_per_s": 1_000_000,
        "meets_target": evaluations_per_second >= 1_000_000.0,
        "eligible_households": eligible,
        "total_monthly_amount_fen": total_amount_fen,
        "baseline_checksum": baseline_checksum,
    });
    let path = bench_output_path();
    if let Some(directory) = path.parent() {
        std::fs::create_dir_all(directory)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!("written to {}", path.display());
    Ok(())
}
