//! Request checks: every bad field of a request is reported at once, by its path, before
//! anything is read or written. Every string and repeated field of every request has a limit
//! here; `docs/limits.md` lists them (keep the two in step). Free text goes through
//! [`sunshine_domain::check_text`], which also refuses control, zero-width and text-direction
//! characters; org-unit codes must be units of the district's [`OrgTree`].

pub use sunshine_domain::validation::{MAX_COMMAND_ID_CHARS, check_command_id, check_uuid};
use sunshine_domain::{
    NationalId, OrgTier, OrgTree, OrgUnitCode, TextRule, ValidationErrors, check_key,
};
use sunshine_proto::dates::to_date as date_of;
use sunshine_proto::v1 as pb;
use time::Date;

/// Names of people (members, account holders, officials).
pub const MAX_NAME_CHARS: usize = 50;
/// Addresses, file names, the officer's words when revealing.
pub const MAX_TEXT_CHARS: usize = 200;
/// Reasons and declared facts' values.
pub const MAX_REASON_CHARS: usize = 1_000;
/// Categories, kinds, school stages.
pub const MAX_SHORT_TEXT_CHARS: usize = 40;
/// Subjects and positions of officials.
pub const MAX_OFFICIAL_TEXT_CHARS: usize = 100;
pub const MAX_BANK_CHARS: usize = 60;
pub const MAX_ACCOUNT_NUMBER_CHARS: usize = 34;
pub const MAX_MEMBERS: usize = 30;
pub const MAX_DOCUMENTS: usize = 50;
/// Income items of a member, entries of a circumstance change, declared facts.
pub const MAX_ITEMS: usize = 30;
/// Keys of declared facts.
pub const MAX_KEY_CHARS: usize = 40;
/// Largest page of a list; larger requests are refused, not cut short silently.
pub const MAX_PAGE_SIZE: i32 = 100;
pub const DEFAULT_PAGE_SIZE: i32 = 50;
/// The statuses an application can have (`ListApplicationsRequest.status`).
pub const APPLICATION_STATUSES: [&str; 7] = [
    "submitted",
    "under_review",
    "sent_to_department",
    "approved",
    "rejected",
    "withdrawn",
    "terminated",
];

/// A checked member, with the parsed resident id.
#[derive(Debug, Clone)]
pub struct ValidMember {
    pub input: pb::MemberInput,
    pub national_id: NationalId,
}

/// Free text of at most `max_chars`, required or not (see [`sunshine_domain::check_text`]).
pub fn check_text(
    errors: &mut ValidationErrors,
    field: &str,
    value: &str,
    required: bool,
    max_chars: usize,
) {
    let rule = if required {
        TextRule::required(max_chars)
    } else {
        TextRule::optional(max_chars)
    };
    sunshine_domain::check_text(errors, field, value, rule);
}

/// A unit of the district's org tree.
pub fn check_org_unit(
    errors: &mut ValidationErrors,
    tree: &OrgTree,
    field: &str,
    value: &str,
) -> Option<OrgUnitCode> {
    match OrgUnitCode::parse(value) {
        Ok(code) if tree.get(&code).is_some() => Some(code),
        Ok(_) => {
            errors.push(field, "not an org unit of this district");
            None
        }
        Err(error) => {
            errors.push(field, error.to_string());
            None
        }
    }
}

/// A village-community of the district's org tree: where households are registered.
pub fn check_village(
    errors: &mut ValidationErrors,
    tree: &OrgTree,
    field: &str,
    value: &str,
) -> Option<OrgUnitCode> {
    let code = check_org_unit(errors, tree, field, value)?;
    if tree.tier(&code) != Some(OrgTier::VillageCommunity) {
        errors.push(field, "a household is registered at a village or community");
        return None;
    }
    Some(code)
}

pub fn check_payment_account(errors: &mut ValidationErrors, account: Option<&pb::PaymentAccount>) {
    let Some(account) = account else { return };
    check_text(
        errors,
        "payment_account.bank",
        &account.bank,
        false,
        MAX_BANK_CHARS,
    );
    check_text(
        errors,
        "payment_account.holder_name",
        &account.holder_name,
        false,
        MAX_NAME_CHARS,
    );
    if account.account_number.len() > MAX_ACCOUNT_NUMBER_CHARS
        || !account
            .account_number
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric())
    {
        errors.push(
            "payment_account.account_number",
            "at most 34 letters and digits",
        );
    }
}

/// What a household declares beyond the registry: few items, identifier keys, bounded text.
pub fn check_declared_facts<'a>(
    errors: &mut ValidationErrors,
    facts: impl IntoIterator<Item = (&'a String, &'a String), IntoIter: ExactSizeIterator>,
) {
    let facts = facts.into_iter();
    if facts.len() > MAX_ITEMS {
        errors.push("declared_facts", format!("at most {MAX_ITEMS} items"));
        return;
    }
    for (key, value) in facts {
        let before = errors.len();
        // The key is not repeated in the field path until it is known to be a short identifier.
        check_key(errors, "declared_facts", key, MAX_KEY_CHARS);
        if errors.len() == before {
            check_text(
                errors,
                &format!("declared_facts.{key}"),
                value,
                false,
                MAX_REASON_CHARS,
            );
        }
    }
}

/// The entries of a circumstance change: few, each member once.
pub fn check_member_incomes(errors: &mut ValidationErrors, incomes: &[pb::MemberIncome]) {
    if incomes.len() > MAX_ITEMS {
        errors.push("incomes", format!("at most {MAX_ITEMS} entries"));
        return;
    }
    let mut seen = std::collections::HashSet::new();
    for (index, income) in incomes.iter().enumerate() {
        check_uuid(
            errors,
            &format!("incomes[{index}].member_id"),
            &income.member_id,
            "a member id",
        );
        if !seen.insert(income.member_id.as_str()) {
            errors.push(
                format!("incomes[{index}].member_id"),
                "appears twice in this change",
            );
        }
        check_income(
            errors,
            &format!("incomes[{index}].monthly_income"),
            &income.monthly_income,
        );
    }
}

pub fn check_page(errors: &mut ValidationErrors, page: &pb::PageRequest) {
    if !(0..=MAX_PAGE_SIZE).contains(&page.page_size) {
        errors.push(
            "page.page_size",
            format!("from 0 (default {DEFAULT_PAGE_SIZE}) to {MAX_PAGE_SIZE}"),
        );
    }
    if !page.page_token.is_empty() {
        check_uuid(
            errors,
            "page.page_token",
            &page.page_token,
            "a token from a previous page",
        );
    }
}

fn check_money(errors: &mut ValidationErrors, field: &str, money: Option<&pb::Money>) {
    match money {
        None => errors.push(field, "required"),
        Some(value) if value.fen < 0 => errors.push(field, "must not be negative"),
        Some(_) => {}
    }
}

pub fn check_income(errors: &mut ValidationErrors, field: &str, items: &[pb::IncomeItem]) {
    if items.len() > MAX_ITEMS {
        errors.push(field, format!("at most {MAX_ITEMS} items"));
        return;
    }
    for (index, item) in items.iter().enumerate() {
        let kind_field = format!("{field}[{index}].kind");
        if item.kind.is_empty()
            || item.kind.len() > MAX_SHORT_TEXT_CHARS
            || !item
                .kind
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
        {
            errors.push(
                kind_field,
                "a snake_case income kind of at most 40 characters",
            );
        }
        check_money(
            errors,
            &format!("{field}[{index}].monthly_amount"),
            item.monthly_amount.as_ref(),
        );
    }
}

pub fn check_assets(errors: &mut ValidationErrors, field: &str, assets: Option<&pb::Assets>) {
    let Some(assets) = assets else { return };
    if let Some(money) = &assets.financial_assets
        && money.fen < 0
    {
        errors.push(format!("{field}.financial_assets"), "must not be negative");
    }
    if assets.non_essential_vehicles < 0 {
        errors.push(
            format!("{field}.non_essential_vehicles"),
            "must not be negative",
        );
    }
    if assets.extra_housing_units < 0 {
        errors.push(
            format!("{field}.extra_housing_units"),
            "must not be negative",
        );
    }
}

/// Checks the members of a registration; returns them parsed when all are valid.
pub fn check_members(
    errors: &mut ValidationErrors,
    members: &[pb::MemberInput],
    today: Date,
) -> Vec<ValidMember> {
    if members.is_empty() {
        errors.push("members", "a household has at least one member");
        return Vec::new();
    }
    if members.len() > MAX_MEMBERS {
        errors.push("members", format!("at most {MAX_MEMBERS} members"));
        return Vec::new();
    }
    let heads = members
        .iter()
        .filter(|member| member.relation == pb::Relation::Head as i32)
        .count();
    if heads != 1 {
        errors.push(
            "members",
            format!("exactly one member must be the head of household (found {heads})"),
        );
    }
    let mut valid = Vec::with_capacity(members.len());
    let mut seen_ids = std::collections::HashSet::new();
    for (index, member) in members.iter().enumerate() {
        let path = format!("members[{index}]");
        if let Some(member) = check_member(errors, &path, member, today, &mut seen_ids) {
            valid.push(member);
        }
    }
    valid
}

/// Checks one member at `path` (`members[3]`, `member`), every bad field under it; `seen_ids`
/// are the resident ids of the request's members before it. The member parsed, when its
/// resident id is valid.
pub fn check_member(
    errors: &mut ValidationErrors,
    path: &str,
    member: &pb::MemberInput,
    today: Date,
    seen_ids: &mut std::collections::HashSet<String>,
) -> Option<ValidMember> {
    check_text(
        errors,
        &format!("{path}.name"),
        &member.name,
        true,
        MAX_NAME_CHARS,
    );
    if member.relation == pb::Relation::Unspecified as i32
        || pb::Relation::try_from(member.relation).is_err()
    {
        errors.push(format!("{path}.relation"), "required");
    }
    if member.hukou_type == pb::HukouType::Unspecified as i32
        || pb::HukouType::try_from(member.hukou_type).is_err()
    {
        errors.push(format!("{path}.hukou_type"), "urban or rural is required");
    }
    if !member.phone.is_empty()
        && (member.phone.len() < 5
            || member.phone.len() > 20
            || !member
                .phone
                .bytes()
                .all(|byte| byte.is_ascii_digit() || byte == b'-' || byte == b'+'))
    {
        errors.push(format!("{path}.phone"), "5 to 20 digits");
    }
    if !(0..=4).contains(&member.disability_grade) {
        errors.push(
            format!("{path}.disability_grade"),
            "0 (none) or a grade from 1 to 4",
        );
    }
    if !(0..=10).contains(&member.entitled_group_grade) {
        errors.push(
            format!("{path}.entitled_group_grade"),
            "0 (none) or a grade from 1 to 10",
        );
    }
    check_text(
        errors,
        &format!("{path}.disability_category"),
        &member.disability_category,
        false,
        MAX_SHORT_TEXT_CHARS,
    );
    check_text(
        errors,
        &format!("{path}.entitled_group_category"),
        &member.entitled_group_category,
        false,
        MAX_SHORT_TEXT_CHARS,
    );
    check_text(
        errors,
        &format!("{path}.school_stage"),
        &member.school_stage,
        false,
        MAX_SHORT_TEXT_CHARS,
    );
    check_income(
        errors,
        &format!("{path}.monthly_income"),
        &member.monthly_income,
    );
    let resident_since = date_of(member.resident_since.as_ref());
    if member.resident_since.is_some() && resident_since.is_none() {
        errors.push(format!("{path}.resident_since"), "not a calendar date");
    }
    if let (Some(since), Some(birth)) = (resident_since, date_of(member.birth_date.as_ref()))
        && since < birth
    {
        errors.push(format!("{path}.resident_since"), "before the birth date");
    }
    if resident_since.is_some_and(|since| since > today) {
        errors.push(
            format!("{path}.resident_since"),
            "must not be in the future",
        );
    }
    match NationalId::parse_as_of(member.national_id.trim_end(), today) {
        Err(error) => {
            errors.push(format!("{path}.national_id"), error.to_string());
            None
        }
        Ok(national_id) => {
            match date_of(member.birth_date.as_ref()) {
                None => errors.push(format!("{path}.birth_date"), "required, a calendar date"),
                // The message does not repeat either date: both are personal data.
                Some(birth_date) if birth_date != national_id.birth_date() => errors.push(
                    format!("{path}.birth_date"),
                    "does not match the birth date in the national id",
                ),
                Some(_) => {}
            }
            let expected_sex = match national_id.sex() {
                sunshine_domain::Sex::Male => pb::Sex::Male,
                sunshine_domain::Sex::Female => pb::Sex::Female,
            };
            if member.sex != pb::Sex::Unspecified as i32 && member.sex != expected_sex as i32 {
                errors.push(format!("{path}.sex"), "does not match the national id");
            }
            if !seen_ids.insert(national_id.as_str().to_owned()) {
                errors.push(
                    format!("{path}.national_id"),
                    "appears twice in this household",
                );
            }
            let mut input = member.clone();
            input.sex = expected_sex as i32;
            input.national_id = national_id.as_str().to_owned();
            Some(ValidMember { input, national_id })
        }
    }
}

pub fn check_documents(
    errors: &mut ValidationErrors,
    documents: &[pb::DocumentMetadata],
    required: &[String],
) {
    if documents.len() > MAX_DOCUMENTS {
        errors.push("documents", format!("at most {MAX_DOCUMENTS} documents"));
        return;
    }
    for (index, document) in documents.iter().enumerate() {
        let path = format!("documents[{index}]");
        check_text(
            errors,
            &format!("{path}.kind"),
            &document.kind,
            true,
            MAX_SHORT_TEXT_CHARS,
        );
        check_text(
            errors,
            &format!("{path}.file_name"),
            &document.file_name,
            true,
            MAX_TEXT_CHARS,
        );
        if document.sha256_hex.len() != 64
            || !document
                .sha256_hex
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        {
            errors.push(
                format!("{path}.sha256_hex"),
                "64 lowercase hexadecimal digits",
            );
        }
        if document.size_bytes < 0 {
            errors.push(format!("{path}.size_bytes"), "must not be negative");
        }
    }
    // Every missing material at once (民政部 2021 审核确认办法: 一次性告知).
    for kind in required {
        if !documents.iter().any(|document| &document.kind == kind) {
            errors.push(
                format!("documents.{kind}"),
                format!("missing required material: {kind}"),
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn member(name: &str, national_id: &str, birth: (i32, i32, i32)) -> pb::MemberInput {
        pb::MemberInput {
            name: name.into(),
            national_id: national_id.into(),
            relation: pb::Relation::Head as i32,
            hukou_type: pb::HukouType::Rural as i32,
            birth_date: Some(pb::Date {
                year: birth.0,
                month: birth.1,
                day: birth.2,
            }),
            ..Default::default()
        }
    }

    fn today() -> Date {
        Date::from_calendar_date(2026, time::Month::November, 28).unwrap()
    }

    #[test]
    fn a_valid_member_passes_and_gets_its_sex_from_the_id() {
        let mut errors = ValidationErrors::default();
        let valid = check_members(
            &mut errors,
            &[member("张三", "11010519491231002x", (1949, 12, 31))],
            today(),
        );
        assert!(errors.is_empty(), "{errors}");
        assert_eq!(valid[0].input.sex, pb::Sex::Female as i32);
        assert_eq!(valid[0].input.national_id, "11010519491231002X");
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut errors = ValidationErrors::default();
        let mut bad = member("", "110105194912310021", (1949, 12, 31));
        bad.monthly_income = vec![pb::IncomeItem {
            kind: "wages".into(),
            monthly_amount: Some(pb::Money { fen: -1 }),
        }];
        let wrong_birth = member("李四", "11010519491231002X", (1950, 1, 1));
        check_members(&mut errors, &[bad, wrong_birth], today());
        let fields: Vec<String> = errors
            .violations()
            .iter()
            .map(|violation| violation.field.clone())
            .collect();
        assert!(
            fields.contains(&"members".to_owned()),
            "two heads: {fields:?}"
        );
        assert!(fields.contains(&"members[0].name".to_owned()));
        assert!(fields.contains(&"members[0].national_id".to_owned()));
        assert!(fields.contains(&"members[0].monthly_income[0].monthly_amount".to_owned()));
        assert!(fields.contains(&"members[1].birth_date".to_owned()));
    }

    #[test]
    fn huge_values_are_refused_without_reading_them_whole() {
        let mut errors = ValidationErrors::default();
        check_text(
            &mut errors,
            "address",
            &"地".repeat(4_000_000),
            true,
            MAX_TEXT_CHARS,
        );
        assert_eq!(errors.violations()[0].field, "address");
    }

    #[test]
    fn ids_are_canonical_uuids() {
        let mut errors = ValidationErrors::default();
        check_uuid(
            &mut errors,
            "household_id",
            "0190f3c4-1234-7abc-8def-0123456789ab",
            "a household id",
        );
        assert!(errors.is_empty());
        for bad in [
            "0190F3C4-1234-7ABC-8DEF-0123456789AB",
            "{0190f3c4-1234-7abc-8def-0123456789ab}",
            "0190f3c412347abc8def0123456789ab",
            "",
        ] {
            let mut errors = ValidationErrors::default();
            check_uuid(&mut errors, "household_id", bad, "a household id");
            assert_eq!(errors.len(), 1, "{bad}");
        }
    }

    #[test]
    fn declared_facts_and_income_entries_are_capped_and_keys_never_echoed() {
        let mut errors = ValidationErrors::default();
        let huge_key = "k".repeat(2 * 1024 * 1024);
        let facts: std::collections::BTreeMap<String, String> = [
            (huge_key, "x".to_owned()),
            ("illness".into(), "病".repeat(1_001)),
        ]
        .into();
        check_declared_facts(&mut errors, &facts);
        let fields: Vec<&str> = errors
            .violations()
            .iter()
            .map(|violation| violation.field.as_str())
            .collect();
        assert_eq!(fields, ["declared_facts.illness", "declared_facts"]);
        assert!(errors.to_string().len() < 500);

        let mut errors = ValidationErrors::default();
        let entry = pb::MemberIncome {
            member_id: "0190f3c4-1234-7abc-8def-0123456789ab".into(),
            monthly_income: Vec::new(),
        };
        check_member_incomes(&mut errors, &vec![entry.clone(); 20_000]);
        assert_eq!(errors.violations()[0].field, "incomes");
        let mut errors = ValidationErrors::default();
        check_member_incomes(&mut errors, &[entry.clone(), entry]);
        assert_eq!(errors.violations()[0].field, "incomes[1].member_id");
    }

    #[test]
    fn org_units_must_be_in_the_district_tree() {
        let tree = OrgTree::example().unwrap();
        let mut errors = ValidationErrors::default();
        assert!(check_village(&mut errors, &tree, "code", "990101001001").is_some());
        assert!(check_org_unit(&mut errors, &tree, "code", "990101000000").is_some());
        assert!(errors.is_empty());
        for (code, expected) in [
            ("990102001001", "not an org unit of this district"),
            ("990101001099", "not an org unit of this district"),
            (
                "990101001000",
                "a household is registered at a village or community",
            ),
        ] {
            let mut errors = ValidationErrors::default();
            assert!(check_village(&mut errors, &tree, "code", code).is_none());
            assert_eq!(errors.violations()[0].description, expected, "{code}");
        }
    }

    #[test]
    fn missing_materials_are_all_listed() {
        let mut errors = ValidationErrors::default();
        let required = vec![
            "application_form".to_owned(),
            "household_register".to_owned(),
            "income_statement".to_owned(),
        ];
        let provided = vec![pb::DocumentMetadata {
            kind: "application_form".into(),
            file_name: "form.pdf".into(),
            sha256_hex: "a".repeat(64),
            size_bytes: 10,
        }];
        check_documents(&mut errors, &provided, &required);
        let fields: Vec<&str> = errors
            .violations()
            .iter()
            .map(|violation| violation.field.as_str())
            .collect();
        assert_eq!(
            fields,
            ["documents.household_register", "documents.income_statement"]
        );
    }
}
