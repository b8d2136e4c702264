//! Masked forms of personal data, for callers whose role or purpose does not need the full
//! value and for everything shown outside the service. A masked view must not let anyone
//! rebuild what it hides, alone or together with the rest of the view: `docs/privacy.md`
//! says what each mask keeps and why, and the tests count what is left unknown.

use sunshine_proto::v1 as pb;

use crate::access::Reveal;
use sunshine_household::MemberState;

/// Keeps the first character (usually the surname) and one star per hidden character:
/// 张三 → 张*. The given name, one or two characters of thousands in use, stays unknown.
pub fn mask_name(name: &str) -> String {
    let mut characters = name.chars();
    match characters.next() {
        Some(first) => {
            let rest = characters.count();
            format!("{first}{}", "*".repeat(rest.max(1)))
        }
        None => String::new(),
    }
}

/// Hidden characters of a phone number, at least.
const PHONE_HIDDEN_AT_LEAST: usize = 6;

/// Keeps at most the first three characters (for a mobile number, the carrier's prefix) and
/// the last two, and hides at least six: 13812345678 → 138******78, a million candidates. The
/// common 138****5678 hides only four digits: 10,000 numbers, few enough to try them all.
pub fn mask_phone(phone: &str) -> String {
    let characters: Vec<char> = phone.chars().collect();
    let shown = characters
        .len()
        .saturating_sub(PHONE_HIDDEN_AT_LEAST)
        .min(5);
    let tail_count = shown.min(2);
    let head_count = (shown - tail_count).min(3);
    let head: String = characters[..head_count].iter().collect();
    let tail: String = characters[characters.len() - tail_count..].iter().collect();
    let hidden = characters.len() - head_count - tail_count;
    format!("{head}{}{tail}", "*".repeat(hidden))
}

/// Keeps at most the first six characters and at most a third of the address (the district and
/// street-town part, which the household's org unit shows anyway), then a fixed run of stars
/// that does not tell the length: 示例区东城街道幸福里3号 → 示例区东******.
pub fn mask_address(address: &str) -> String {
    let count = address.chars().count();
    if count == 0 {
        return String::new();
    }
    let kept: String = address.chars().take((count / 3).min(6)).collect();
    format!("{kept}******")
}

/// Keeps at most the last four characters of an account number and hides at least eight:
/// 6222020200112233 → ************2233.
pub fn mask_account(account: &str) -> String {
    let characters: Vec<char> = account.chars().collect();
    let keep = characters.len().saturating_sub(8).min(4);
    let tail: String = characters[characters.len() - keep..].iter().collect();
    format!("{}{tail}", "*".repeat(characters.len() - keep))
}

/// A member's personal data, opened.
#[derive(Debug, Clone, Default)]
pub struct OpenedMember {
    pub name: String,
    pub national_id: String,
    pub phone: String,
}

/// A member as a caller sees them: each personal field in full only if `reveal` says so. A
/// masked view shows the birth year, never the birth date: the date fills eight of the hidden
/// digits of the id.
pub fn member_view(member: &MemberState, opened: OpenedMember, reveal: Reveal) -> pb::Member {
    let sealed = &member.sealed;
    let national_id = if reveal.national_ids {
        opened.national_id
    } else {
        sunshine_domain::NationalId::parse(&opened.national_id)
            .map(|parsed| parsed.masked())
            .unwrap_or_default()
    };
    pb::Member {
        member_id: sealed.member_id.clone(),
        name: if reveal.names {
            opened.name
        } else {
            mask_name(&opened.name)
        },
        national_id,
        relation: sealed.relation,
        sex: sealed.sex,
        birth_date: if reveal.national_ids {
            sealed.birth_date
        } else {
            None
        },
        birth_year: sealed.birth_date.map(|date| date.year).unwrap_or_default(),
        hukou_type: sealed.hukou_type,
        phone: if reveal.phones {
            opened.phone
        } else {
            mask_phone(&opened.phone)
        },
        alive: member.alive,
        date_of_death: member.date_of_death,
        monthly_income: sealed.monthly_income.clone(),
        disability_grade: sealed.disability_grade,
        labour_capacity: sealed.labour_capacity,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sunshine_domain::NationalId;

    #[test]
    fn masks_keep_only_what_identifies_nobody() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_phone("13812345678"), "138******78");
        assert_eq!(mask_phone("0755-1234567"), "075*******67");
        assert_eq!(mask_phone("12345678"), "******78");
        assert_eq!(mask_phone("12345"), "*****");
        assert_eq!(mask_address("示例区东城街道幸福里3号"), "示例区东******");
        assert_eq!(mask_address("幸福里3号"), "幸******");
        assert_eq!(
            mask_address("示例区东城街道幸福里社区第三居民小组七号楼二单元"),
            "示例区东城街******"
        );
        assert_eq!(mask_account("6222020200112233"), "************2233");
        assert_eq!(mask_account("123456789"), "********9");
        assert_eq!(mask_name(""), "");
        assert_eq!(mask_address(""), "");
        assert_eq!(mask_phone(""), "");
        assert_eq!(mask_account(""), "");
    }

    #[test]
    fn masked_phones_and_accounts_hide_enough_digits() {
        for phone in ["13812345678", "0755-1234567", "+8613812345678", "12345"] {
            let hidden = mask_phone(phone).chars().filter(|&c| c == '*').count();
            assert!(hidden >= PHONE_HIDDEN_AT_LEAST.min(phone.len()), "{phone}");
        }
        for account in ["6222020200112233", "62220202001122334455", "ABCDEFGHIJ"] {
            let hidden = mask_account(account).chars().filter(|&c| c == '*').count();
            assert!(hidden >= 8, "{account}");
        }
    }

    fn member_with(national_id: &NationalId) -> MemberState {
        let birth = national_id.birth_date();
        MemberState {
            sealed: pb::SealedMember {
                member_id: "m1".into(),
                sex: match national_id.sex() {
                    sunshine_domain::Sex::Male => pb::Sex::Male as i32,
                    sunshine_domain::Sex::Female => pb::Sex::Female as i32,
                },
                birth_date: Some(pb::Date {
                    year: birth.year(),
                    month: i32::from(u8::from(birth.month())),
                    day: i32::from(birth.day()),
                }),
                ..Default::default()
            },
            alive: true,
            date_of_death: None,
        }
    }

    /// Every valid resident id consistent with everything a masked member shows: the masked
    /// id (region and last characters), the birth year and the sex.
    fn candidates(shown: &pb::Member) -> usize {
        let mask = &shown.national_id;
        assert_eq!(mask.chars().count(), 18);
        let region = &mask[..6];
        let year = shown.birth_year;
        let sex = if shown.sex == pb::Sex::Male as i32 {
            sunshine_domain::Sex::Male
        } else {
            sunshine_domain::Sex::Female
        };
        let mut count = 0;
        let mut day = time::Date::from_calendar_date(year, time::Month::January, 1).unwrap();
        while day.year() == year {
            for sequence in 0..1000 {
                let body = format!(
                    "{region}{year:04}{:02}{:02}{sequence:03}",
                    u8::from(day.month()),
                    day.day()
                );
                let full = NationalId::with_check_character(&body).unwrap();
                let parsed = NationalId::parse(&full).unwrap();
                if parsed.sex() == sex && &parsed.masked() == mask {
                    count += 1;
                }
            }
            day = day.next_day().unwrap();
        }
        count
    }

    #[test]
    fn a_masked_member_leaves_at_least_a_thousand_possible_ids() {
        for body in [
            "99010119650312101",
            "99010120000229002",
            "99010119380920104",
        ] {
            let text = NationalId::with_check_character(body).unwrap();
            let national_id = NationalId::parse(&text).unwrap();
            let shown = member_view(
                &member_with(&national_id),
                OpenedMember {
                    name: "王建国".into(),
                    national_id: text.clone(),
                    phone: "13812345678".into(),
                },
                Reveal::NOTHING,
            );
            assert_eq!(shown.birth_date, None, "no birth date when masked");
            assert_eq!(shown.birth_year, national_id.birth_date().year());
            assert!(!shown.national_id.contains(&text[6..14]));
            let count = candidates(&shown);
            assert!(count >= 1_000, "{body}: only {count} candidates");
        }
    }

    #[test]
    fn a_revealed_member_shows_the_birth_date() {
        let text = NationalId::with_check_character("99010119650312101").unwrap();
        let national_id = NationalId::parse(&text).unwrap();
        let shown = member_view(
            &member_with(&national_id),
            OpenedMember {
                name: "王建国".into(),
                national_id: text.clone(),
                phone: "13812345678".into(),
            },
            Reveal {
                names: true,
                national_ids: true,
                ..Reveal::NOTHING
            },
        );
        assert_eq!(shown.national_id, text);
        assert_eq!(shown.name, "王建国");
        assert_eq!(
            shown.phone, "138******78",
            "phones not revealed for this purpose"
        );
        assert!(shown.birth_date.is_some());
    }
}
