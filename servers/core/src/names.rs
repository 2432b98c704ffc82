//! The naming rules for nicknames and rooms.
//!
//! A name is 1 to 32 Unicode scalar values with no whitespace and no control characters.
//! "Whitespace" is Unicode's White_Space property, which is exactly what `char::is_whitespace`
//! tests, and "control" is the Cc category (`char::is_control`). Chinese, emoji and accents are
//! fine.

/// The longest name, in Unicode scalar values (Rust `char`s), not bytes.
pub const MAX_NAME_CHARS: usize = 32;

/// Whether `name` follows the naming rules.
pub fn is_valid_name(name: &str) -> bool {
    let mut count = 0;
    for c in name.chars() {
        count += 1;
        if count > MAX_NAME_CHARS || c.is_whitespace() || c.is_control() {
            return false;
        }
    }
    count > 0
}

/// The key under which a nickname is unique: its Unicode lowercase form, so `Ålice` and `ålice`
/// collide.
pub fn fold(nickname: &str) -> String {
    nickname.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_unicode_names_up_to_32_scalars() {
        assert!(is_valid_name("alice"));
        assert!(is_valid_name("李雷"));
        assert!(is_valid_name("🦀crab"));
        assert!(is_valid_name("Ålice"));
        assert!(is_valid_name(&"é".repeat(32)));
        assert!(!is_valid_name(&"é".repeat(33)));
    }

    #[test]
    fn rejects_empty_whitespace_and_control() {
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name("a\tb"));
        assert!(!is_valid_name("a\u{3000}b")); // ideographic space is White_Space
        assert!(!is_valid_name("a\u{7}b"));
        assert!(!is_valid_name("a\u{85}b")); // NEL: both control and whitespace
    }

    #[test]
    fn folding_follows_unicode_lowercase() {
        assert_eq!(fold("Ålice"), fold("ålice"));
        assert_eq!(fold("BOB"), "bob");
    }
}
