//! From intake's household stream to the policy engine's `HouseholdFacts` (its `Decision` on
//! the wire is [`crate::policy_result`]). Only the facts intake keeps in the clear (dates,
//! types, grades, amounts) are used: no personal data is opened.

use serde_json::{Value, json};
use sunshine_household::HouseholdState;
use sunshine_policy::HouseholdFacts;
use sunshine_proto::v1 as pb;

const INCOME_KINDS: [&str; 13] = [
    "wages",
    "business",
    "property",
    "pension",
    "support_from_relatives",
    "entitled_care_payment",
    "family_planning_reward",
    "scholarship_or_award",
    "assistance_payment",
    "resident_basic_pension",
    "disability_allowance",
    "elderly_subsidy",
    "other",
];

fn date(value: Option<&pb::Date>) -> Value {
    match value {
        Some(date) => json!(format!(
            "{:04}-{:02}-{:02}",
            date.year, date.month, date.day
        )),
        None => Value::Null,
    }
}

/// The household's facts for the rules; living members only.
pub fn household_facts(household: &HouseholdState) -> Result<HouseholdFacts, String> {
    let mut members = Vec::new();
    for member in household.members.iter().filter(|member| member.alive) {
        let sealed = &member.sealed;
        let relation = match pb::Relation::try_from(sealed.relation).unwrap_or(pb::Relation::Other)
        {
            pb::Relation::Head => "head",
            pb::Relation::Spouse => "spouse",
            pb::Relation::Child => "child",
            pb::Relation::Parent => "parent",
            pb::Relation::Grandchild => "grandchild",
            pb::Relation::Grandparent => "grandparent",
            pb::Relation::Sibling => "sibling",
            _ => "other",
        };
        let sex = if sealed.sex == pb::Sex::Female as i32 {
            "female"
        } else {
            "male"
        };
        let hukou = if sealed.hukou_type == pb::HukouType::Urban as i32 {
            "urban"
        } else {
            "rural"
        };
        let labour = match pb::LabourCapacity::try_from(sealed.labour_capacity)
            .unwrap_or(pb::LabourCapacity::Unspecified)
        {
            pb::LabourCapacity::None => "none",
            pb::LabourCapacity::Partial => "partial",
            _ => "full",
        };
        let income: Vec<Value> = sealed
            .monthly_income
            .iter()
            .map(|item| {
                let kind = if INCOME_KINDS.contains(&item.kind.as_str()) { item.kind.as_str() } else { "other" };
                json!({ "kind": kind, "amount": item.monthly_amount.as_ref().map_or(0, |money| money.fen) })
            })
            .collect();
        let mut facts = json!({
            "relation": relation,
            "sex": sex,
            "birth_date": date(sealed.birth_date.as_ref()),
            "hukou_type": hukou,
            "labour_capacity": labour,
            "pension": if sealed.has_pension { "retirement_pension" } else { "none" },
            "only_child_certificate": sealed.only_child_certificate,
            "monthly_income": income,
        });
        if sealed.resident_since.is_some() {
            facts["resident_since"] = date(sealed.resident_since.as_ref());
        }
        if sealed.disability_grade > 0 && !sealed.disability_category.is_empty() {
            facts["disability"] =
                json!({ "category": sealed.disability_category, "grade": sealed.disability_grade });
        }
        members.push(facts);
    }
    let assets = household.assets.unwrap_or_default();
    let value = json!({
        "household_id": household.household_id,
        "hukou_org_unit": household.hukou_org_unit_code,
        "members": members,
        "assets": {
            "financial_assets": assets.financial_assets.map_or(0, |money| money.fen),
            "non_essential_vehicles": assets.non_essential_vehicles.max(0),
            "extra_housing_units": assets.extra_housing_units.max(0),
        },
    });
    serde_json::from_value(value).map_err(|error| format!("household facts: {error}"))
}
