//! Sign-in without an operator, pure: addresses (e-mail or phone) in one normal form, sign-in codes and their digests, the limits (code lifetime, wrong tries, requests per address and per client), and session lifetimes.

use chrono::TimeDelta;
use rand::TryRng as _;
use sha2::{Digest, Sha256};

/// How long a sign-in code is good for.
pub const CODE_TTL: TimeDelta = TimeDelta::minutes(10);
/// Wrong codes one client may try for one address within a code's lifetime: past
/// them, that client is refused for the address (other requesters are not).
pub const MAX_WRONG_CODES: i64 = 5;
/// Wrong tries at an address's live codes, from everyone, after which they are spent
/// (a bound on guessing from many clients; the person asks for a new code).
pub const MAX_WRONG_TOTAL: i64 = 50;
/// The window over which code requests are counted.
pub const RATE_WINDOW: TimeDelta = TimeDelta::hours(1);
/// Codes one requester (a client) may have sent to one address in the window: a
/// stranger's requests use up the stranger's own allowance, never the person's.
pub const CODES_PER_REQUESTER: i64 = 5;
/// Codes one address may be sent in the window from all requesters together (a bound
/// on the messages sent, above what one requester may ask).
pub const CODES_PER_ADDRESS: i64 = 30;
/// Codes one client (network address) may ask for in the window.
pub const CODES_PER_CLIENT: i64 = 20;
/// How long a session token from a sign-in lasts.
pub const SESSION_TTL: TimeDelta = TimeDelta::hours(12);

/// An address a person signs in with: an e-mail address or a phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Email(String),
    Phone(String),
}

impl Address {
    /// The normal form an address is stored and looked up in.
    pub fn as_str(&self) -> &str {
        match self {
            Address::Email(a) | Address::Phone(a) => a,
        }
    }

    /// Reads an address as a person types it: an e-mail address (lower-cased), or a
    /// phone number (spaces, dashes, dots and brackets dropped; a mainland number's
    /// +86 or 0086 prefix dropped). `Err` says what is wrong, for the field at fault.
    pub fn parse(raw: &str) -> Result<Address, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("an e-mail address or a phone number is required".into());
        }
        if raw.contains('@') {
            return email(raw)
                .map(Address::Email)
                .ok_or_else(|| format!("`{raw}` is not an e-mail address"));
        }
        phone(raw)
            .map(Address::Phone)
            .ok_or_else(|| format!("`{raw}` is neither an e-mail address nor a phone number"))
    }
}

/// An e-mail address in normal form (trimmed, lower-cased), if `text::email` takes it.
pub fn email(raw: &str) -> Option<String> {
    crate::text::email("email", raw).ok().map(str::to_lowercase)
}

/// A phone number in normal form, if `text::phone` takes it: digits only, a leading `+`
/// kept for numbers abroad, a mainland prefix (+86, 0086) dropped.
pub fn phone(raw: &str) -> Option<String> {
    let checked = crate::text::phone("phone", raw).ok()?;
    let mut p: String = checked
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    for prefix in ["+86", "0086"] {
        if let Some(rest) = p.strip_prefix(prefix) {
            p = rest.to_string();
        }
    }
    (p.trim_start_matches('+').len() >= 5).then_some(p)
}

/// A new sign-in code: six digits from the operating system's randomness.
pub fn new_code() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system provides randomness");
    format!("{:06}", u64::from_le_bytes(bytes) % 1_000_000)
}

/// The digest a code is kept under, bound to its address (a code for one address is no
/// use for another).
pub fn code_digest(address: &Address, code: &str) -> String {
    hex::encode(Sha256::digest(
        format!("{}\n{}", address.as_str(), code.trim()).as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_into_one_form() {
        assert_eq!(
            Address::parse("  Li.Ming@Example.CN "),
            Ok(Address::Email("li.ming@example.cn".into()))
        );
        assert_eq!(
            Address::parse("+86 138-0000-0001"),
            Ok(Address::Phone("13800000001".into()))
        );
        assert_eq!(
            Address::parse("0086 13800000001"),
            Ok(Address::Phone("13800000001".into()))
        );
        assert_eq!(
            Address::parse("+852 9123 4567"),
            Ok(Address::Phone("+85291234567".into()))
        );
        for bad in [
            "",
            "   ",
            "li@",
            "@example.cn",
            "li@localhost",
            "li@@x.cn",
            "abc",
            "12",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn codes_are_six_digits_bound_to_their_address() {
        let codes: Vec<String> = (0..20).map(|_| new_code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(codes.windows(2).any(|w| w[0] != w[1]), "random: {codes:?}");
        let a = Address::Email("li@example.cn".into());
        let b = Address::Phone("13800000001".into());
        assert_eq!(code_digest(&a, "123456"), code_digest(&a, " 123456 "));
        assert_ne!(code_digest(&a, "123456"), code_digest(&b, "123456"));
        assert_ne!(code_digest(&a, "123456"), code_digest(&a, "123457"));
    }
}
