//! Distinguished names (RFC 4514), as far as role mappings compare them.
//!
//! `dn` and `groups` compare as Elasticsearch compares them: a group that
//! parses as a DN equals another spelling of the same DN
//! (`CN=Admins, DC=Example` = `cn=admins,dc=example`), and a pattern is also
//! tried against the normalized form. Normalizing lowercases attribute
//! names and values (`caseIgnoreMatch`, the rule of the usual naming
//! attributes), collapses runs of spaces in values and sorts the parts of a
//! multi-valued RDN.

/// A parsed DN: its RDNs from the leaf up, each a sorted list of
/// `(attribute, value)` pairs, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dn {
    rdns: Vec<Vec<(String, String)>>,
}

impl Dn {
    /// `None` when `text` is not a DN (a SAML group such as `admins`).
    pub(crate) fn parse(text: &str) -> Option<Dn> {
        let mut chars = text.chars().peekable();
        let mut rdns = Vec::new();
        let mut rdn = Vec::new();
        loop {
            let attribute = attribute(&mut chars)?;
            let value = value(&mut chars)?;
            rdn.push((attribute, normalize_value(&value)));
            match chars.next() {
                Some('+') => continue,
                Some(',') | Some(';') => {
                    rdn.sort();
                    rdns.push(std::mem::take(&mut rdn));
                }
                None => {
                    rdn.sort();
                    rdns.push(rdn);
                    return Some(Dn { rdns });
                }
                Some(_) => return None,
            }
        }
    }

    /// Elasticsearch's "normalized string": `attr=value` pairs joined by
    /// `+` within an RDN and `,` between RDNs, special characters escaped.
    pub(crate) fn normalized(&self) -> String {
        self.rdns
            .iter()
            .map(|rdn| {
                rdn.iter()
                    .map(|(a, v)| format!("{a}={}", escape(v)))
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Strictly below `ancestor` in the tree: more RDNs, and the last ones
    /// are `ancestor`'s.
    pub(crate) fn is_descendant_of(&self, ancestor: &Dn) -> bool {
        self.rdns.len() > ancestor.rdns.len()
            && self.rdns[self.rdns.len() - ancestor.rdns.len()..] == ancestor.rdns[..]
    }
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn skip_spaces(chars: &mut Chars<'_>) {
    while chars.peek() == Some(&' ') {
        chars.next();
    }
}

/// An attribute type: a name (`cn`, `dc`, `x-custom`) or a dotted OID,
/// up to and including the `=`.
fn attribute(chars: &mut Chars<'_>) -> Option<String> {
    skip_spaces(chars);
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
            name.push(c.to_ascii_lowercase());
            chars.next();
        } else {
            break;
        }
    }
    skip_spaces(chars);
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c.is_ascii_digit());
    (chars.next() == Some('=') && starts_well).then_some(name)
}

/// A value, up to (not including) the next unescaped `,`, `;`, `+` or the
/// end: plain with `\` escapes (a special character or two hex digits of
/// UTF-8), or quoted.
fn value(chars: &mut Chars<'_>) -> Option<String> {
    skip_spaces(chars);
    let mut bytes = Vec::new();
    let mut trailing_spaces = 0;
    if chars.peek() == Some(&'"') {
        chars.next();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => escaped(chars, &mut bytes)?,
                c => push_char(&mut bytes, c),
            }
        }
        skip_spaces(chars);
    } else {
        while let Some(&c) = chars.peek() {
            match c {
                ',' | ';' | '+' => break,
                '"' | '<' | '>' => return None,
                '\\' => {
                    chars.next();
                    escaped(chars, &mut bytes)?;
                    trailing_spaces = 0;
                    continue;
                }
                ' ' => trailing_spaces += 1,
                _ => trailing_spaces = 0,
            }
            push_char(&mut bytes, c);
            chars.next();
        }
        bytes.truncate(bytes.len() - trailing_spaces);
    }
    String::from_utf8(bytes).ok()
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

fn escaped(chars: &mut Chars<'_>, bytes: &mut Vec<u8>) -> Option<()> {
    let first = chars.next()?;
    if let Some(high) = first.to_digit(16) {
        let low = chars.next()?.to_digit(16)?;
        bytes.push((high * 16 + low) as u8);
    } else if " \"#+,;<=>\\".contains(first) {
        push_char(bytes, first);
    } else {
        return None;
    }
    Some(())
}

fn normalize_value(value: &str) -> String {
    value
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\,+\"<>;=".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_dn_are_equal() {
        let a = Dn::parse("CN=Jane  Doe, OU=People,DC=Example,DC=com").unwrap();
        let b = Dn::parse("cn=jane doe,ou=people,dc=example,dc=com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.normalized(), "cn=jane doe,ou=people,dc=example,dc=com");
        let quoted = Dn::parse("cn=\"Doe, Jane\",dc=example").unwrap();
        let escaped = Dn::parse("cn=Doe\\, Jane,dc=example").unwrap();
        let hex = Dn::parse("cn=Doe\\2C Jane,dc=example").unwrap();
        assert_eq!(quoted, escaped);
        assert_eq!(escaped, hex);
        assert_eq!(quoted.normalized(), "cn=doe\\, jane,dc=example");
        assert_eq!(
            Dn::parse("cn=a+uid=b,dc=x"),
            Dn::parse("UID=B + CN=A, dc=X")
        );
    }

    #[test]
    fn non_dns_are_refused() {
        for text in [
            "",
            "admins",
            "=x",
            "cn",
            "cn=a,",
            "cn=a<b",
            "cn=a\\zz",
            "cn=\"open",
        ] {
            assert_eq!(Dn::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn descendants() {
        let dn = Dn::parse("cn=jane,ou=people,dc=example,dc=com").unwrap();
        let base = Dn::parse("DC=Example, DC=Com").unwrap();
        assert!(dn.is_descendant_of(&base));
        assert!(!base.is_descendant_of(&base), "strictly below");
        assert!(!base.is_descendant_of(&dn));
        assert!(!dn.is_descendant_of(&Dn::parse("dc=other,dc=com").unwrap()));
    }
}
