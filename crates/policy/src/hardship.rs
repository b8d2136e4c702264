//! The hardship coefficient (困难程度系数): a transparent weighted model of how hard a
//! household's situation is.
//!
//! This module owns [`HardshipCoefficient`], [`HardshipFactor`], [`FactorContribution`] and
//! [`HardshipLevel`]. The model: `coefficient = 1.00 + Σ weight × intensity`, each intensity
//! between 0% and 100%, weights and saturation points from the `hardship` parameters. All
//! arithmetic is in integer basis points (1.00 = 10 000), each division rounded half away from
//! zero; every factor's intensity, weight and contribution is kept for the explanation.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sunshine_domain::Money;

use crate::dates::age_on;
use crate::error::PolicyError;
use crate::facts::HouseholdFacts;
use crate::income::counted_household_income;
use crate::language::{Language, format_coefficient};
use crate::resolved::ResolvedPolicy;

/// 1.00 in basis points.
pub const ONE_IN_BASIS_POINTS: i64 = 10_000;

/// One factor of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HardshipFactor {
    /// 收入差距: per-capita counted income below the dibao standard; gap / standard.
    IncomeGap,
    /// 残疾成员: grade 1–2 count 1, grade 3–4 count ½, over `full_at_members`.
    DisabledMembers,
    /// 重病成员: members with a serious illness, over `full_at_members`.
    SeriousIllness,
    /// 80岁以上成员: over `full_at_members`.
    MembersAged80Plus,
    /// 在校未成年人: members under 18 in school, over `full_at_members`.
    MinorsInSchool,
    /// 单亲家庭: all or nothing.
    SingleParent,
    /// 灾害损失: loss over `disaster_loss_full_at`.
    DisasterLoss,
    /// 医疗负担: out-of-pocket medical cost this year over `medical_burden_full_at`.
    MedicalBurden,
}

impl HardshipFactor {
    pub const ALL: [HardshipFactor; 8] = [
        HardshipFactor::IncomeGap,
        HardshipFactor::DisabledMembers,
        HardshipFactor::SeriousIllness,
        HardshipFactor::MembersAged80Plus,
        HardshipFactor::MinorsInSchool,
        HardshipFactor::SingleParent,
        HardshipFactor::DisasterLoss,
        HardshipFactor::MedicalBurden,
    ];

    pub fn zh(self) -> &'static str {
        match self {
            HardshipFactor::IncomeGap => "收入差距",
            HardshipFactor::DisabledMembers => "残疾成员",
            HardshipFactor::SeriousIllness => "重病成员",
            HardshipFactor::MembersAged80Plus => "80岁以上成员",
            HardshipFactor::MinorsInSchool => "在校未成年人",
            HardshipFactor::SingleParent => "单亲家庭",
            HardshipFactor::DisasterLoss => "灾害损失",
            HardshipFactor::MedicalBurden => "医疗负担",
        }
    }

    pub fn en(self) -> &'static str {
        match self {
            HardshipFactor::IncomeGap => "income gap",
            HardshipFactor::DisabledMembers => "disabled members",
            HardshipFactor::SeriousIllness => "seriously ill members",
            HardshipFactor::MembersAged80Plus => "members aged 80 or over",
            HardshipFactor::MinorsInSchool => "minors in school",
            HardshipFactor::SingleParent => "single parent",
            HardshipFactor::DisasterLoss => "disaster loss",
            HardshipFactor::MedicalBurden => "medical burden",
        }
    }
}

/// 困难程度等级 hardship level, read from the coefficient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HardshipLevel {
    /// 一般困难.
    Ordinary,
    /// 比较困难.
    RelativelySevere,
    /// 特别困难.
    Severe,
}

impl HardshipLevel {
    pub fn zh(self) -> &'static str {
        match self {
            HardshipLevel::Ordinary => "一般困难",
            HardshipLevel::RelativelySevere => "比较困难",
            HardshipLevel::Severe => "特别困难",
        }
    }

    pub fn en(self) -> &'static str {
        match self {
            HardshipLevel::Ordinary => "ordinary hardship",
            HardshipLevel::RelativelySevere => "relatively severe hardship",
            HardshipLevel::Severe => "severe hardship",
        }
    }
}

/// What one factor added: `contribution = weight × intensity / 100%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FactorContribution {
    pub factor: HardshipFactor,
    /// The measured quantity: fen for the income gap, disaster loss and medical burden; half
    /// members for disabled members (grade 1–2 count 2, grade 3–4 count 1); members for the
    /// other counts; 0 or 1 for a single parent.
    pub measured: i64,
    /// What the quantity is measured against (the point of full intensity).
    pub full_at: i64,
    /// 0 to 10 000 (0% to 100%).
    pub intensity_basis_points: i64,
    pub weight_basis_points: i64,
    pub contribution_basis_points: i64,
}

/// 困难程度系数 (hardship coefficient): `basis_points / 10 000` is the coefficient (1.00 and up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardshipCoefficient {
    pub basis_points: i64,
    pub level: HardshipLevel,
    pub contributions: [FactorContribution; 8],
}

/// `numerator / denominator` in basis points, rounded half away from zero, clamped to 0–100%.
fn share_basis_points(numerator: i64, denominator: i64) -> i64 {
    if denominator <= 0 || numerator <= 0 {
        return 0;
    }
    let scaled = i128::from(numerator) * i128::from(ONE_IN_BASIS_POINTS);
    let denominator = i128::from(denominator);
    let rounded = (2 * scaled + denominator) / (2 * denominator);
    i64::try_from(rounded.min(i128::from(ONE_IN_BASIS_POINTS))).unwrap_or(ONE_IN_BASIS_POINTS)
}

/// `weight × intensity / 10 000`, rounded half away from zero (both are non-negative).
fn contribution_of(weight_basis_points: i64, intensity_basis_points: i64) -> i64 {
    let product = i128::from(weight_basis_points) * i128::from(intensity_basis_points);
    let rounded =
        (2 * product + i128::from(ONE_IN_BASIS_POINTS)) / (2 * i128::from(ONE_IN_BASIS_POINTS));
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

impl HardshipCoefficient {
    /// Computes the coefficient of `household` with the parameters of `resolved`.
    pub fn compute(
        resolved: &ResolvedPolicy,
        household: &HouseholdFacts,
    ) -> Result<HardshipCoefficient, PolicyError> {
        let parameters = &resolved.hardship;
        let as_of = resolved.as_of;
        let member_count =
            i64::try_from(household.members.len()).map_err(|_| PolicyError::AmountOverflow {
                program: "hardship",
            })?;
        let hukou_type = household
            .head()
            .map_or(crate::facts::HukouType::Urban, |head| head.hukou_type);
        let standard_total = resolved
            .dibao_standard(hukou_type)
            .checked_mul(member_count)
            .ok_or(PolicyError::AmountOverflow {
                program: "hardship",
            })?;
        let counted_income = counted_household_income(household, resolved.excluded_income)?;
        let income_gap = standard_total
            .checked_sub(counted_income)
            .unwrap_or(Money::ZERO)
            .fen()
            .max(0);

        let mut disabled_half_members = 0_i64;
        let mut seriously_ill = 0_i64;
        let mut aged_80_plus = 0_i64;
        let mut minors_in_school = 0_i64;
        for member in &household.members {
            if let Some(disability) = member.disability {
                disabled_half_members += if disability.is_severe() { 2 } else { 1 };
            }
            if member.serious_illness {
                seriously_ill += 1;
            }
            let age = age_on(member.birth_date, as_of);
            if age >= 80 {
                aged_80_plus += 1;
            }
            if age < 18 && member.school.is_some() {
                minors_in_school += 1;
            }
        }
        let full_at = parameters.full_at_members;
        let disaster_loss = household.disaster.map_or(0, |disaster| disaster.loss.fen());

        let measurements: [(HardshipFactor, i64, i64, i64); 8] = [
            (
                HardshipFactor::IncomeGap,
                income_gap,
                standard_total.fen(),
                parameters.weight_income_gap,
            ),
            (
                HardshipFactor::DisabledMembers,
                disabled_half_members,
                2 * full_at,
                parameters.weight_disabled_members,
            ),
            (
                HardshipFactor::SeriousIllness,
                seriously_ill,
                full_at,
                parameters.weight_serious_illness,
            ),
            (
                HardshipFactor::MembersAged80Plus,
                aged_80_plus,
                full_at,
                parameters.weight_members_aged_80_plus,
            ),
            (
                HardshipFactor::MinorsInSchool,
                minors_in_school,
                full_at,
                parameters.weight_minors_in_school,
            ),
            (
                HardshipFactor::SingleParent,
                i64::from(household.single_parent),
                1,
                parameters.weight_single_parent,
            ),
            (
                HardshipFactor::DisasterLoss,
                disaster_loss,
                parameters.disaster_loss_full_at.fen(),
                parameters.weight_disaster_loss,
            ),
            (
                HardshipFactor::MedicalBurden,
                household.annual_medical_out_of_pocket.fen(),
                parameters.medical_burden_full_at.fen(),
                parameters.weight_medical_burden,
            ),
        ];

        let mut total = ONE_IN_BASIS_POINTS;
        let contributions = measurements.map(|(factor, measured, full_at, weight)| {
            let intensity = share_basis_points(measured, full_at);
            let contribution = contribution_of(weight, intensity);
            total = total.saturating_add(contribution);
            FactorContribution {
                factor,
                measured,
                full_at,
                intensity_basis_points: intensity,
                weight_basis_points: weight,
                contribution_basis_points: contribution,
            }
        });
        let level = if total >= parameters.level_severe_from {
            HardshipLevel::Severe
        } else if total >= parameters.level_relatively_severe_from {
            HardshipLevel::RelativelySevere
        } else {
            HardshipLevel::Ordinary
        };
        Ok(HardshipCoefficient {
            basis_points: total,
            level,
            contributions,
        })
    }

    /// The coefficient as text, `1.35`.
    pub fn to_text(&self) -> String {
        format_coefficient(self.basis_points)
    }

    /// Factor by factor, in one language.
    pub fn explain(&self, language: Language) -> String {
        let mut text = String::new();
        let _ = match language {
            Language::Zh => writeln!(
                text,
                "  困难程度系数 {} ({}) = 1.00 + Σ 权重×强度:",
                self.to_text(),
                self.level.zh()
            ),
            Language::En => writeln!(
                text,
                "  hardship coefficient {} ({}) = 1.00 + Σ weight × intensity:",
                self.to_text(),
                self.level.en()
            ),
        };
        for contribution in &self.contributions {
            let name = match language {
                Language::Zh => contribution.factor.zh(),
                Language::En => contribution.factor.en(),
            };
            let (measured, full_at) = match contribution.factor {
                HardshipFactor::IncomeGap
                | HardshipFactor::DisasterLoss
                | HardshipFactor::MedicalBurden => (
                    Money::from_fen(contribution.measured).to_string(),
                    Money::from_fen(contribution.full_at).to_string(),
                ),
                HardshipFactor::DisabledMembers => (
                    format_half_units(contribution.measured),
                    format_half_units(contribution.full_at),
                ),
                _ => (
                    contribution.measured.to_string(),
                    contribution.full_at.to_string(),
                ),
            };
            let _ = writeln!(
                text,
                "    {name}: {measured} / {full_at} → {}% × {}% = +{}",
                format_percent(contribution.intensity_basis_points),
                format_percent(contribution.weight_basis_points),
                format_coefficient(contribution.contribution_basis_points)
            );
        }
        text
    }
}

/// Half-member counts (a grade 3–4 disability counts ½) as members: 3 → "1.5".
fn format_half_units(half_units: i64) -> String {
    if half_units % 2 == 0 {
        (half_units / 2).to_string()
    } else {
        format!("{}.5", half_units / 2)
    }
}

fn format_percent(basis_points: i64) -> String {
    if basis_points % 100 == 0 {
        (basis_points / 100).to_string()
    } else {
        format!("{}.{:02}", basis_points / 100, basis_points % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_half_away_and_clamp() {
        assert_eq!(share_basis_points(1, 3), 3_333);
        assert_eq!(share_basis_points(2, 3), 6_667);
        assert_eq!(share_basis_points(1, 20_000), 1); // 0.5 bp rounds up
        assert_eq!(share_basis_points(5, 2), 10_000);
        assert_eq!(share_basis_points(0, 2), 0);
        assert_eq!(share_basis_points(3, 0), 0);
        assert_eq!(contribution_of(3_000, 5_000), 1_500);
        assert_eq!(contribution_of(3_000, 3_333), 1_000); // 999.9 → 1000
        assert_eq!(contribution_of(1, 5_000), 1); // 0.5 → 1
    }
}
