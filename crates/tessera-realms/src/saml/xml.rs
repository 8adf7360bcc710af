//! Hardened XML input and small helpers for reading and writing SAML.

use base64::Engine;
use roxmltree::{Document, Node, ParsingOptions};

use super::error::{refuse, Rule, SamlError};

/// SAML 2.0 protocol namespace.
pub const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// SAML 2.0 assertion namespace.
pub const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// SAML 2.0 metadata namespace.
pub const NS_METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
/// XML-DSig namespace.
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
/// XML Encryption namespace.
pub const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";

/// The largest XML message accepted (after base64 decoding or inflating).
pub const MAX_MESSAGE_BYTES: usize = 512 * 1024;
/// The most nodes a message may have.
const MAX_NODES: u32 = 20_000;
/// The most attributes (namespace declarations included) one element may
/// carry. roxmltree checks each new attribute against the element's earlier
/// ones, so a tag with tens of thousands of them costs seconds of CPU.
const MAX_ATTRIBUTES: usize = 64;

/// Parses untrusted XML: no DTD (so no entity of any kind), bounded size,
/// node count and attributes per element. roxmltree never resolves external
/// resources.
pub fn parse(text: &str) -> Result<Document<'_>, SamlError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return refuse(
            Rule::Encoding,
            format!("XML of {} bytes is too large", text.len()),
        );
    }
    check_attribute_counts(text)?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => {
            SamlError::new(Rule::Doctype, "a DOCTYPE is not allowed in a SAML message")
        }
        other => SamlError::new(Rule::Xml, format!("not well-formed XML: {other}")),
    })
}

/// Refuses a start tag with more than [`MAX_ATTRIBUTES`] attributes, in one
/// pass before the parser sees the text. An attribute (or `xmlns`
/// declaration) is counted by its `=` outside a quoted value; comments,
/// CDATA sections, processing instructions and other `<!…>` markup are
/// skipped whole. An unterminated construct ends the scan: the parser
/// refuses it, having read no more of a start tag than was counted here.
fn check_attribute_counts(text: &str) -> Result<(), SamlError> {
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(offset) = text[at..].find('<') {
        let start = at + offset;
        let rest = &text[start..];
        let skip_to = |open: &str, close: &str| {
            rest[open.len()..]
                .find(close)
                .map(|end| start + open.len() + end + close.len())
        };
        let next = if rest.starts_with("<!--") {
            skip_to("<!--", "-->")
        } else if rest.starts_with("<![CDATA[") {
            skip_to("<![CDATA[", "]]>")
        } else if rest.starts_with("<?") {
            skip_to("<?", "?>")
        } else if rest.starts_with("<!") {
            skip_to("<!", ">")
        } else if rest.starts_with("</") {
            Some(start + 2)
        } else {
            let mut attributes = 0;
            let mut quote = None;
            let mut end = None;
            for (i, &b) in bytes.iter().enumerate().skip(start + 1) {
                match (quote, b) {
                    (Some(q), _) if b == q => quote = None,
                    (Some(_), _) => {}
                    (None, b'"' | b'\'') => quote = Some(b),
                    (None, b'>') => {
                        end = Some(i + 1);
                        break;
                    }
                    (None, b'=') => {
                        attributes += 1;
                        if attributes > MAX_ATTRIBUTES {
                            return refuse(
                                Rule::Xml,
                                format!(
                                    "an element at byte {start} has more than \
                                     {MAX_ATTRIBUTES} attributes"
                                ),
                            );
                        }
                    }
                    (None, _) => {}
                }
            }
            end
        };
        let Some(next) = next else {
            return Ok(());
        };
        at = next;
    }
    Ok(())
}

/// Decodes base64 (whitespace stripped, as Elasticsearch does for `content`)
/// into UTF-8 text within the size limit.
pub fn decode_base64_text(content: &str) -> Result<String, SamlError> {
    let compact: String = content.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() > MAX_MESSAGE_BYTES * 4 / 3 + 4 {
        return refuse(Rule::Encoding, "the encoded message is too large");
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| SamlError::new(Rule::Encoding, format!("not base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| SamlError::new(Rule::Encoding, "not UTF-8"))
}

/// Is `node` the element `{ns}local`?
pub fn is(node: Node<'_, '_>, ns: &str, local: &str) -> bool {
    node.is_element() && node.tag_name().name() == local && node.tag_name().namespace() == Some(ns)
}

/// The element children of `node` named `{ns}local`.
pub fn children<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    ns: &'a str,
    local: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children().filter(move |c| is(*c, ns, local))
}

/// The single child `{ns}local` of `node`, if there is exactly one.
pub fn only_child<'a, 'input>(
    node: Node<'a, 'input>,
    ns: &str,
    local: &str,
) -> Result<Option<Node<'a, 'input>>, SamlError> {
    let mut found = node.children().filter(|c| is(*c, ns, local));
    let first = found.next();
    if found.next().is_some() {
        return refuse(
            Rule::Malformed,
            format!("more than one <{local}> in <{}>", node.tag_name().name()),
        );
    }
    Ok(first)
}

/// The text of an element, trimmed (SAML values are never whitespace-significant
/// at their ends; entity ids and NameIDs compare exactly after trimming).
pub fn text(node: Node<'_, '_>) -> String {
    let mut s = String::new();
    for d in node.descendants().filter(|d| d.is_text()) {
        s.push_str(d.text().unwrap_or(""));
    }
    s.trim().to_owned()
}

/// Escapes text for an attribute value or element content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_doctype_is_refused_before_any_entity_is_expanded() {
        let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&lol2;</samlp:Response>"#;
        assert_eq!(parse(bomb).unwrap_err().rule, Rule::Doctype);
    }

    /// A `<root>` whose first child carries `count` attributes (the root's
    /// namespace declaration not counted), each valued `value`.
    fn element_with_attributes(count: usize, value: &str) -> String {
        let mut xml = String::from(r#"<root xmlns="urn:x"><e"#);
        for i in 0..count {
            xml.push_str(&format!(r#" a{i}="{value}""#));
        }
        xml.push_str("/></root>");
        xml
    }

    #[test]
    fn an_element_may_carry_64_attributes() {
        let xml = element_with_attributes(64, "v");
        let doc = parse(&xml).unwrap();
        let e = doc.root_element().first_element_child().unwrap();
        assert_eq!(e.attributes().len(), 64);
    }

    #[test]
    fn an_element_with_65_attributes_is_refused() {
        let xml = element_with_attributes(65, "v");
        assert_eq!(parse(&xml).unwrap_err().rule, Rule::Xml);
    }

    #[test]
    fn namespace_declarations_count_as_attributes() {
        let mut xml = String::from("<root");
        for i in 0..33 {
            xml.push_str(&format!(r#" xmlns:n{i}="urn:n{i}" a{i}="v""#));
        }
        xml.push_str("/>");
        assert_eq!(parse(&xml).unwrap_err().rule, Rule::Xml);
    }

    #[test]
    fn one_huge_tag_within_the_size_limit_is_refused() {
        let mut xml = String::from("<root");
        let mut i = 0;
        while xml.len() < 500 * 1024 {
            xml.push_str(&format!(r#" a{i}="1""#));
            i += 1;
        }
        xml.push_str("/>");
        assert!(xml.len() < MAX_MESSAGE_BYTES);
        assert_eq!(parse(&xml).unwrap_err().rule, Rule::Xml);
        // Unterminated, the tag is refused all the same.
        assert_eq!(parse(&xml[..xml.len() - 2]).unwrap_err().rule, Rule::Xml);
    }

    #[test]
    fn equals_signs_in_values_comments_cdata_and_instructions_do_not_count() {
        let many = "=".repeat(100);
        let tag = element_with_attributes(64, &format!("x{many}'>'"));
        let inner = tag
            .strip_prefix(r#"<root xmlns="urn:x">"#)
            .and_then(|t| t.strip_suffix("</root>"))
            .unwrap();
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><?pi {many}?><root xmlns="urn:x"><!-- a{many} b="c" --><s a='{many}"'>text {many}<![CDATA[<e {many} a="b">]]></s>{inner}</root>"#
        );
        let doc = parse(&xml).unwrap();
        assert_eq!(doc.root_element().children().count(), 3);
    }

    #[test]
    fn escaping_covers_markup() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
