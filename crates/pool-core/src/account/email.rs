//! Email addresses as accounts know them, and the operator's domain allow and deny lists.
//!
//! The rule is the seed's (`^[a-z0-9]+([._%+-][a-z0-9]+)*@([a-z0-9-]+\.)+[a-z]{2,}$` after trim
//! and lower-case), written out by hand so `pool-core` needs no regex engine, plus the length
//! bounds of RFC 5321 (64 for the local part, 254 in all) that the seed lacked. Lower-casing is
//! ASCII only: Unicode lower-casing would turn the Kelvin sign `K` into `k` and so accept a
//! look-alike of another person's address.

use std::fmt;

/// Longest address kept (RFC 5321's path limit less the angle brackets).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest local part (before `@`).
pub const MAX_LOCAL_CHARS: usize = 64;
/// Longest label of a domain name.
const MAX_LABEL_CHARS: usize = 63;

/// An address that passed [`Email::parse`] (or was read back from the store): trimmed and
/// lower-case. There is no public inner field; read it with `as_ref()`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    #[error("the email address is longer than {MAX_EMAIL_CHARS} characters")]
    TooLong,
    #[error("the part before @ is longer than {MAX_LOCAL_CHARS} characters")]
    LocalTooLong,
    #[error("this is not an email address")]
    Malformed,
}

impl Email {
    /// Trims, lower-cases (ASCII) and checks an address typed by a person.
    pub fn parse(raw: &str) -> Result<Email, InvalidEmail> {
        let email = raw.trim().to_ascii_lowercase();
        if email.len() > MAX_EMAIL_CHARS {
            return Err(InvalidEmail::TooLong);
        }
        let (local, domain) = email.split_once('@').ok_or(InvalidEmail::Malformed)?;
        if local.len() > MAX_LOCAL_CHARS {
            return Err(InvalidEmail::LocalTooLong);
        }
        if valid_local(local) && valid_domain(domain) { Ok(Email(email)) } else { Err(InvalidEmail::Malformed) }
    }

    /// An address as the store holds it: it was parsed when it was written, and is not checked
    /// again, so a later, stricter rule never locks an existing user out of their account.
    pub fn from_stored(stored: String) -> Email {
        Email(stored)
    }

    /// The part after the last `@` (what the domain lists judge).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({:?})", self.0)
    }
}

/// `[a-z0-9]+([._%+-][a-z0-9]+)*`: alphanumeric runs joined by single separators.
fn valid_local(local: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let separator = |b: u8| matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    let bytes = local.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else { return false };
    alnum(first)
        && alnum(last)
        && bytes.iter().all(|&b| alnum(b) || separator(b))
        && bytes.windows(2).all(|pair| !(separator(pair[0]) && separator(pair[1])))
}

/// `([a-z0-9-]+\.)+[a-z]{2,}`, each label at most 63 characters.
fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let Some((top, rest)) = labels.split_last() else { return false };
    let label_ok = |l: &str| {
        (1..=MAX_LABEL_CHARS).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    !rest.is_empty()
        && rest.iter().all(|l| label_ok(l))
        && (2..=MAX_LABEL_CHARS).contains(&top.len())
        && top.bytes().all(|b| b.is_ascii_lowercase())
}

/// One entry of a domain list: a domain name in which `*` stands for any run of characters
/// (`*.edu.cn` is every subdomain of `edu.cn`, not `edu.cn` itself; `example.com` is that domain
/// only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainPattern(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a domain pattern (letters, digits, '-', '.' and '*' only)")]
pub struct InvalidPattern(pub String);

impl DomainPattern {
    pub fn parse(raw: &str) -> Result<DomainPattern, InvalidPattern> {
        let pattern = raw.trim().to_ascii_lowercase();
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'*');
        if pattern.is_empty() || pattern.len() > MAX_EMAIL_CHARS || !pattern.bytes().all(allowed) {
            return Err(InvalidPattern(raw.to_owned()));
        }
        Ok(DomainPattern(pattern))
    }

    pub fn matches(&self, domain: &str) -> bool {
        glob(self.0.as_bytes(), domain.as_bytes())
    }
}

/// Wildcard matching with `*` only, in linear time: on a mismatch, go back to the last `*` and
/// let it swallow one more character.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Which email domains may register. An empty allow list allows every domain; the deny list
/// wins over the allow list (`allow *.edu.cn, deny spam.edu.cn`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainRules {
    pub allow: Vec<DomainPattern>,
    pub deny: Vec<DomainPattern>,
}

impl DomainRules {
    pub fn admits(&self, email: &Email) -> bool {
        let domain = email.domain();
        let listed = |list: &[DomainPattern]| list.iter().any(|p| p.matches(domain));
        !listed(&self.deny) && (self.allow.is_empty() || listed(&self.allow))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    fn rules(allow: &[&str], deny: &[&str]) -> DomainRules {
        let list = |l: &[&str]| l.iter().map(|p| DomainPattern::parse(p).unwrap()).collect();
        DomainRules { allow: list(allow), deny: list(deny) }
    }

    #[test]
    fn an_address_is_trimmed_and_lower_cased() {
        assert_eq!(email("  Alice.Smith+tag@Mail.Example.COM \n").as_ref(), "alice.smith+tag@mail.example.com");
        assert_eq!(email("a@b.cn").domain(), "b.cn");
    }

    #[test]
    fn the_seeds_rule_accepts_what_its_regex_accepts() {
        for ok in ["a@b.co", "a1_b%c-d@x-y.z.org", "0@0.io", "a.b.c@sub.-dash-.com"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_seeds_rule_refuses_what_its_regex_refuses() {
        let bad = [
            "",
            "plain",
            "@b.co",
            "a@",
            "a@b",
            "a@b.c",
            "a@b.c0",
            ".a@b.co",
            "a.@b.co",
            "a..b@b.co",
            "a.-b@b.co",
            "a@@b.co",
            "a@b@c.co",
            "a@.b.co",
            "a@b..co",
            "a b@c.co",
            "a@b.co.",
            "ü@b.co",
            "a@bü.co",
            "a\"@b.co",
            "<a@b.co>",
            "a@b.co\n.x",
        ];
        for raw in bad {
            assert_eq!(Email::parse(raw), Err(InvalidEmail::Malformed), "{raw:?}");
        }
    }

    #[test]
    fn a_look_alike_of_an_ascii_letter_is_not_lower_cased_into_it() {
        // U+212A KELVIN SIGN lower-cases to 'k' under Unicode rules.
        assert_eq!(Email::parse("\u{212A}im@b.co"), Err(InvalidEmail::Malformed));
    }

    #[test]
    fn lengths_are_bounded_as_rfc_5321_says() {
        let local = "a".repeat(MAX_LOCAL_CHARS);
        assert!(Email::parse(&format!("{local}@b.co")).is_ok());
        assert_eq!(Email::parse(&format!("{local}a@b.co")), Err(InvalidEmail::LocalTooLong));
        let label = "d".repeat(60);
        let long = format!("a@{label}.{label}.{label}.{label}.{label}.com");
        assert!(long.len() > MAX_EMAIL_CHARS);
        assert_eq!(Email::parse(&long), Err(InvalidEmail::TooLong));
        assert_eq!(Email::parse(&format!("a@{}.com", "d".repeat(64))), Err(InvalidEmail::Malformed));
    }

    #[test]
    fn a_stored_address_is_read_back_as_it_is() {
        assert_eq!(Email::from_stored("odd'one".to_owned()).as_ref(), "odd'one");
    }

    #[test]
    fn a_wildcard_pattern_matches_subdomains_and_not_the_parent() {
        let pattern = DomainPattern::parse("*.edu.cn").unwrap();
        assert!(pattern.matches("pku.edu.cn"));
        assert!(pattern.matches("cs.pku.edu.cn"));
        assert!(!pattern.matches("edu.cn"));
        assert!(!pattern.matches("edu.cn.evil.com"));
        assert!(!pattern.matches("xedu.cn"));
    }

    #[test]
    fn a_plain_pattern_matches_only_that_domain_and_stars_go_anywhere() {
        let exact = DomainPattern::parse("Example.com").unwrap();
        assert!(exact.matches("example.com"));
        assert!(!exact.matches("sub.example.com"));
        assert!(!exact.matches("example.co"));
        assert!(DomainPattern::parse("mail.*.org").unwrap().matches("mail.a.b.org"));
        assert!(DomainPattern::parse("*").unwrap().matches("anything.io"));
        assert!(DomainPattern::parse("a*b*c").unwrap().matches("aXbYbZc"));
        assert!(!DomainPattern::parse("a*b*c").unwrap().matches("aXbYcZ"));
    }

    #[test]
    fn a_pattern_with_other_characters_is_refused() {
        for bad in ["", " ", "exa mple.com", "a@b.com", "ex?ample.com", "例子.com"] {
            assert!(DomainPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_allow_list_admits_every_domain_but_the_denied() {
        let r = rules(&[], &["spam.com", "*.spam.com"]);
        assert!(r.admits(&email("a@ok.com")));
        assert!(!r.admits(&email("a@spam.com")));
        assert!(!r.admits(&email("a@x.spam.com")));
    }

    #[test]
    fn an_allow_list_admits_only_its_domains_and_the_deny_list_wins() {
        let r = rules(&["*.edu.cn", "example.com"], &["bad.edu.cn"]);
        assert!(r.admits(&email("a@pku.edu.cn")));
        assert!(r.admits(&email("a@example.com")));
        assert!(!r.admits(&email("a@gmail.com")));
        assert!(!r.admits(&email("a@bad.edu.cn")), "deny wins over a matching allow");
        assert!(DomainRules::default().admits(&email("a@any.io")));
    }
}
