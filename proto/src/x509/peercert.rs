//! A certificate as Python's `ssl.SSLSocket.getpeercert()` shows it
//! (CPython's `_decode_certificate`): what rpyc's `SSLAuthenticator`
//! hands a service as `conn._config["credentials"]`. Names are tuples of
//! relative distinguished names, each a tuple of `(attribute, value)`
//! with OpenSSL's long names; times as OpenSSL's `ASN1_TIME_print`
//! writes them; the serial number in upper-case hex as `i2a_ASN1_INTEGER`
//! writes it.

use super::der::*;
use super::Certificate;

/// A Name: its relative distinguished names, each a list of
/// `(attribute, value)`.
pub type Name = Vec<Vec<(String, String)>>;

/// One subjectAltName entry, as `(kind, value)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AltName {
    /// `("DNS", "host")`, `("email", ...)`, `("URI", ...)`,
    /// `("IP Address", ...)`, `("Registered ID", ...)`, or a kind CPython
    /// shows as `"<unsupported>"`.
    Text(&'static str, String),
    /// `("DirName", name)`.
    Directory(Name),
}

/// What `getpeercert()` returns for a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    pub subject: Name,
    pub issuer: Name,
    /// 1, 2 or 3.
    pub version: u8,
    pub serial_number: String,
    pub not_before: String,
    pub not_after: String,
    /// `None` when the certificate has no subjectAltName extension.
    pub subject_alt_name: Option<Vec<AltName>>,
}

/// The certificate `der` as `getpeercert()` shows it; `None` for what is
/// not a well-formed certificate, or holds a name OpenSSL cannot turn into
/// text (CPython fails there too).
pub fn peer_cert(der: &[u8]) -> Option<PeerCert> {
    let cert = Certificate::parse(der)?;
    let subject_alt_name = match &cert.extensions.subject_alt_name {
        Some(names) => Some(alt_names(names)?),
        None => None,
    };
    Some(PeerCert {
        subject: name(only(cert.subject, SEQUENCE)?)?,
        issuer: name(only(cert.issuer, SEQUENCE)?)?,
        version: cert.version + 1,
        serial_number: serial_hex(cert.serial),
        not_before: asn1_time_print(cert.not_before),
        not_after: asn1_time_print(cert.not_after),
        subject_alt_name,
    })
}

/// A Name's contents: SEQUENCE OF SET OF `{type, value}`.
fn name(mut rdns: &[u8]) -> Option<Name> {
    let mut out = Vec::new();
    while !rdns.is_empty() {
        let rdn = expect(rdns, SET)?;
        rdns = rdn.rest;
        let mut attributes = rdn.contents;
        let mut entries = Vec::new();
        while !attributes.is_empty() {
            let attribute = expect(attributes, SEQUENCE)?;
            attributes = attribute.rest;
            let kind = expect(attribute.contents, OID)?;
            let value = item(kind.rest)?;
            if !value.rest.is_empty() {
                return None;
            }
            entries.push((
                long_name(kind.contents),
                string_value(value.tag, value.contents)?,
            ));
        }
        out.push(entries);
    }
    Some(out)
}

/// OpenSSL's long name of an attribute type (`OBJ_obj2txt(.., 0)`), or
/// its dotted form when OpenSSL has none.
fn long_name(oid: &[u8]) -> String {
    const NAMES: &[(&[u8], &str)] = &[
        (&[0x55, 0x04, 0x03], "commonName"),
        (&[0x55, 0x04, 0x04], "surname"),
        (&[0x55, 0x04, 0x05], "serialNumber"),
        (&[0x55, 0x04, 0x06], "countryName"),
        (&[0x55, 0x04, 0x07], "localityName"),
        (&[0x55, 0x04, 0x08], "stateOrProvinceName"),
        (&[0x55, 0x04, 0x09], "streetAddress"),
        (&[0x55, 0x04, 0x0a], "organizationName"),
        (&[0x55, 0x04, 0x0b], "organizationalUnitName"),
        (&[0x55, 0x04, 0x0c], "title"),
        (&[0x55, 0x04, 0x0d], "description"),
        (&[0x55, 0x04, 0x0f], "businessCategory"),
        (&[0x55, 0x04, 0x11], "postalCode"),
        (&[0x55, 0x04, 0x29], "name"),
        (&[0x55, 0x04, 0x2a], "givenName"),
        (&[0x55, 0x04, 0x2b], "initials"),
        (&[0x55, 0x04, 0x2c], "generationQualifier"),
        (&[0x55, 0x04, 0x2e], "dnQualifier"),
        (&[0x55, 0x04, 0x41], "pseudonym"),
        (&[0x55, 0x04, 0x61], "organizationIdentifier"),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
            "emailAddress",
        ),
        (
            &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
            "domainComponent",
        ),
        (
            &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
            "userId",
        ),
    ];
    NAMES
        .iter()
        .find(|(known, _)| *known == oid)
        .map_or_else(|| dotted(oid), |(_, name)| (*name).to_owned())
}

/// A directory string as OpenSSL's `ASN1_STRING_to_UTF8` turns it into
/// text: one-byte strings byte for byte (as Latin-1), BMPString as UCS-2,
/// UniversalString as UCS-4, UTF8String as it is. `None` for what is no
/// string, or not valid in its encoding.
fn string_value(tag: u8, bytes: &[u8]) -> Option<String> {
    match tag {
        0x0c => std::str::from_utf8(bytes).ok().map(str::to_owned),
        // NumericString, PrintableString, T61String, IA5String, VisibleString
        0x12 | 0x13 | 0x14 | 0x16 | 0x1a => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        0x1e => {
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            // UCS-2: OpenSSL takes no surrogate pairs
            units
                .iter()
                .map(|&unit| char::from_u32(u32::from(unit)))
                .collect()
        }
        0x1c => {
            if bytes.len() % 4 != 0 {
                return None;
            }
            bytes
                .chunks_exact(4)
                .map(|quad| {
                    char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]]))
                })
                .collect()
        }
        _ => None,
    }
}

/// An INTEGER's contents as `i2a_ASN1_INTEGER` writes them: the
/// magnitude's bytes in upper-case hex, "-" before a negative one.
fn serial_hex(contents: &[u8]) -> String {
    let negative = contents.first().is_some_and(|byte| byte & 0x80 != 0);
    let magnitude: Vec<u8> = if negative {
        // two's complement, negated
        let mut bytes: Vec<u8> = contents.iter().map(|byte| !byte).collect();
        for byte in bytes.iter_mut().rev() {
            let (sum, carry) = byte.overflowing_add(1);
            *byte = sum;
            if !carry {
                break;
            }
        }
        bytes
    } else {
        contents.to_vec()
    };
    let start = magnitude
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(magnitude.len());
    let digits: String = magnitude[start..]
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect();
    let digits = if digits.is_empty() {
        "00".to_owned()
    } else {
        digits
    };
    if negative {
        format!("-{digits}")
    } else {
        digits
    }
}

/// Unix seconds as `ASN1_TIME_print` writes a time: `Jan  5 09:34:43
/// 2018 GMT`.
fn asn1_time_print(unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let seconds = unix.rem_euclid(86_400);
    // the civil date of a day count (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{} {:2} {:02}:{:02}:{:02} {} GMT",
        MONTHS[(month - 1).clamp(0, 11) as usize],
        day,
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60,
        year
    )
}

/// GeneralNames' contents, as CPython's `_get_peer_alt_names` lists them.
fn alt_names(mut names: &[u8]) -> Option<Vec<AltName>> {
    let mut out = Vec::new();
    while !names.is_empty() {
        let general = item(names)?;
        names = general.rest;
        let text = |bytes: &[u8]| -> String { bytes.iter().map(|&b| char::from(b)).collect() };
        out.push(match general.tag {
            0x81 => AltName::Text("email", text(general.contents)),
            0x82 => AltName::Text("DNS", text(general.contents)),
            0x86 => AltName::Text("URI", text(general.contents)),
            0x87 => AltName::Text("IP Address", ip_address(general.contents)),
            0x88 => AltName::Text("Registered ID", long_name(general.contents)),
            0xa4 => AltName::Directory(name(only(general.contents, SEQUENCE)?)?),
            0xa0 => AltName::Text("othername", "<unsupported>".to_owned()),
            0xa3 => AltName::Text("X400Name", "<unsupported>".to_owned()),
            0xa5 => AltName::Text("EdiPartyName", "<unsupported>".to_owned()),
            _ => return None,
        });
    }
    Some(out)
}

/// An iPAddress as CPython writes it: dotted IPv4, or eight upper-case
/// hex groups for IPv6, unshortened.
fn ip_address(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => format!("{}.{}.{}.{}", bytes[0], bytes[1], bytes[2], bytes[3]),
        16 => bytes
            .chunks_exact(2)
            .map(|pair| format!("{:X}", u16::from_be_bytes([pair[0], pair[1]])))
            .collect::<Vec<_>>()
            .join(":"),
        _ => "<invalid>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_openssl_prints_them() {
        assert_eq!(asn1_time_print(0), "Jan  1 00:00:00 1970 GMT");
        // 2018-01-05T09:34:43Z
        assert_eq!(asn1_time_print(1_515_144_883), "Jan  5 09:34:43 2018 GMT");
        // 2049-12-31T23:59:59Z
        assert_eq!(asn1_time_print(2_524_607_999), "Dec 31 23:59:59 2049 GMT");
        assert_eq!(asn1_time_print(951_782_400), "Feb 29 00:00:00 2000 GMT");
    }

    #[test]
    fn serials_as_openssl_writes_them() {
        assert_eq!(serial_hex(&[0x01]), "01");
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x0a]), "8F0A");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0xff]), "-01");
        assert_eq!(serial_hex(&[0x80, 0x00]), "-8000");
    }

    #[test]
    fn strings_of_every_kind() {
        assert_eq!(string_value(0x13, b"Acme").as_deref(), Some("Acme"));
        assert_eq!(string_value(0x0c, "é中".as_bytes()).as_deref(), Some("é中"));
        assert_eq!(string_value(0x14, &[0xe9]).as_deref(), Some("é"));
        assert_eq!(
            string_value(0x1e, &[0x00, 0xe9, 0x4e, 0x2d]).as_deref(),
            Some("é中")
        );
        assert_eq!(string_value(0x1c, &[0, 0, 0, 0x41]).as_deref(), Some("A"));
        assert_eq!(string_value(0x0c, &[0xff]), None);
        assert_eq!(string_value(0x03, &[0x00]), None);
    }

    #[test]
    fn ip_addresses() {
        assert_eq!(ip_address(&[127, 0, 0, 1]), "127.0.0.1");
        let mut v6 = [0u8; 16];
        v6[0] = 0x20;
        v6[1] = 0x01;
        v6[2] = 0x0d;
        v6[3] = 0xb8;
        v6[15] = 1;
        assert_eq!(ip_address(&v6), "2001:DB8:0:0:0:0:0:1");
        assert_eq!(ip_address(&[1, 2, 3]), "<invalid>");
    }
}
