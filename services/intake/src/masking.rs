//! Masked forms of personal data, for callers whose role does not need the full value and
//! for everything shown outside the service (张三 → 张*, 13812345678 → 138****5678).

/// Keeps the first character of a name.
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

/// Keeps the first three and last four digits.
pub fn mask_phone(phone: &str) -> String {
    let characters: Vec<char> = phone.chars().collect();
    if characters.len() <= 7 {
        return "*".repeat(characters.len());
    }
    let head: String = characters[..3].iter().collect();
    let tail: String = characters[characters.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(characters.len() - 7))
}

/// Keeps the first six characters (usually district and street), masks the rest.
pub fn mask_address(address: &str) -> String {
    let kept: String = address.chars().take(6).collect();
    let hidden = address.chars().count().saturating_sub(6);
    format!("{kept}{}", "*".repeat(hidden.min(8)))
}

/// Keeps the last four digits of an account number.
pub fn mask_account(account: &str) -> String {
    let characters: Vec<char> = account.chars().collect();
    let keep = characters.len().min(4);
    let tail: String = characters[characters.len() - keep..].iter().collect();
    format!("{}{tail}", "*".repeat(characters.len() - keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_what_identifies_nobody() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(
            mask_address("示例区东城街道幸福里3号"),
            "示例区东城街******"
        );
        assert_eq!(mask_account("6222020200112233"), "************2233");
        assert_eq!(mask_name(""), "");
    }
}
