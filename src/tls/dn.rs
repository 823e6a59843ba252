//! Distinguished names as text, in RFC 2253 form: the form Envoy writes in
//! `x-forwarded-client-cert` and `openssl x509 -nameopt RFC2253` prints. The RDNs come last
//! to first (`CN=…,OU=…,O=…`), `,` between them and `+` inside a multi-valued one, no
//! spaces, and the characters that would make the text ambiguous are escaped, so a name can
//! be compared and parsed back exactly.

use x509_parser::asn1_rs::{Any, Tag, ToDer};
use x509_parser::prelude::X509Name;
use x509_parser::x509::AttributeTypeAndValue;

/// The RFC 2253 text of a name.
pub(crate) fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.into_iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attribute) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            push_attribute(&mut out, attribute);
        }
    }
    out
}

/// The short names of RFC 2253 section 2.3, and the two other names common in client
/// certificates, spelt as OpenSSL (and so Envoy) spells them.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("2.5.4.5", "serialNumber"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
];

fn push_attribute(out: &mut String, attribute: &AttributeTypeAndValue<'_>) {
    let oid = attribute.attr_type().to_id_string();
    let short = SHORT_NAMES
        .iter()
        .find(|(id, _)| *id == oid)
        .map(|(_, name)| *name);
    match (short, text(attribute.attr_value())) {
        (Some(name), Some(value)) => {
            out.push_str(name);
            out.push('=');
            escape_into(out, &value);
        }
        // RFC 2253 2.4: a type without a short name, or a value that is not a string, is
        // the dotted OID and `#` with the hex of the value's DER.
        _ => {
            out.push_str(&oid);
            out.push_str("=#");
            // Re-encoding a value just parsed from DER does not fail; were it to, `#` alone
            // still tells a reader the value was not shown.
            let der = attribute.attr_value().to_der_vec().unwrap_or_default();
            for b in der {
                out.push_str(&format!("{b:02X}"));
            }
        }
    }
}

/// The value as text, when it is one of the string types.
fn text(value: &Any<'_>) -> Option<String> {
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString
        | Tag::T61String => std::str::from_utf8(value.data).ok().map(str::to_owned),
        Tag::BmpString => {
            let units: Vec<u16> = value
                .data
                .chunks(2)
                .map(|c| match c {
                    [hi, lo] => Some(u16::from_be_bytes([*hi, *lo])),
                    _ => None,
                })
                .collect::<Option<_>>()?;
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => value
            .data
            .chunks(4)
            .map(|c| {
                let bytes: [u8; 4] = c.try_into().ok()?;
                char::from_u32(u32::from_be_bytes(bytes))
            })
            .collect(),
        _ => None,
    }
}

/// RFC 2253 2.4: `,` `+` `<` `>` `;` escaped with a backslash, as are a leading `#` or space
/// and a trailing space. `"` and `\` are written `\22` and `\5C` (RFC 2253 allows a hex
/// escape for any character): the text then holds no quote, so inside the quoted `Subject`
/// of `x-forwarded-client-cert` it needs no escaping of its own and every reader finds the
/// value's end at the next quote. Control characters and everything outside ASCII are written as `\XX` per
/// UTF-8 byte, as OpenSSL does, so the text is plain ASCII (fit for an HTTP header) and
/// cannot hide a character.
fn escape_into(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '"' => out.push_str("\\22"),
            '\\' => out.push_str("\\5C"),
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};
    use x509_parser::prelude::{FromDer, X509Certificate};

    fn subject_of(name: DistinguishedName) -> String {
        let mut params = CertificateParams::default();
        params.distinguished_name = name;
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
        rfc2253(parsed.subject())
    }

    fn name(parts: &[(DnType, &str)]) -> DistinguishedName {
        let mut name = DistinguishedName::new();
        for (ty, value) in parts {
            name.push(ty.clone(), *value);
        }
        name
    }

    #[test]
    fn writes_the_rdns_last_first_without_spaces() {
        let subject = subject_of(name(&[
            (DnType::CountryName, "GB"),
            (DnType::OrganizationName, "nhs"),
            (DnType::OrganizationalUnitName, "Devices"),
            (DnType::CommonName, "int.api.service.nhs.uk"),
        ]));
        assert_eq!(subject, "CN=int.api.service.nhs.uk,OU=Devices,O=nhs,C=GB");
    }

    #[test]
    fn escapes_what_would_make_the_name_ambiguous() {
        let subject = subject_of(name(&[
            (DnType::OrganizationName, "NHS \"Digital\", Leeds"),
            (DnType::CommonName, "#a+b<c>;d\\e=f "),
        ]));
        assert_eq!(subject, r"CN=\#a\+b\<c\>\;d\5Ce=f\ ,O=NHS \22Digital\22\, Leeds");
        assert_eq!(subject_of(name(&[(DnType::CommonName, " x")])), r"CN=\ x");
    }

    #[test]
    fn writes_control_and_non_ascii_characters_as_utf8_hex() {
        assert_eq!(
            subject_of(name(&[(DnType::CommonName, "Zoë\nx")])),
            r"CN=Zo\C3\AB\0Ax"
        );
        let mut wide = DistinguishedName::new();
        wide.push(DnType::CommonName, DnValue::BmpString("é".try_into().unwrap()));
        wide.push(
            DnType::OrganizationName,
            DnValue::UniversalString("ü".try_into().unwrap()),
        );
        assert_eq!(subject_of(wide), r"O=\C3\BC,CN=\C3\A9");
    }

    #[test]
    fn writes_an_unnamed_type_as_its_oid_and_the_hex_of_its_der() {
        let subject = subject_of(name(&[
            (DnType::CustomDnType(vec![2, 5, 4, 97]), "VATGB-123"),
            (DnType::CommonName, "x"),
        ]));
        // A UTF8String (0x0c) of 9 bytes: "VATGB-123".
        assert_eq!(subject, "CN=x,2.5.4.97=#0C0956415447422D313233");
    }
}
