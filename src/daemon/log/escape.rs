//! A message as one line of visible text: peers choose some of what is
//! logged (registry aliases, exception texts, module names), and what they
//! choose must neither forge a line of its own nor reach a terminal or a
//! log viewer as something other than what it is.
//!
//! Escaped: controls (general category Cc: a newline would start a forged
//! line, an ESC drives the terminal), and the invisible characters that
//! change how the text around them reads: format characters (Cf: bidi
//! overrides that show `exe.txt` for `txt.exe`, zero-width joiners and
//! spaces, the BOM) and the line and paragraph separators (Zl, Zp: some
//! viewers break the line there). Everything else, `é` and `中` included,
//! stays as it is.

/// General category Cf, as ranges of code points, inclusive; from Unicode
/// 15.0's `extracted/DerivedGeneralCategory.txt` (the same in 16.0 and
/// 17.0; 15.0 grew the Egyptian hieroglyph format controls to 1343F).
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),   // soft hyphen
    (0x0600, 0x0605),   // Arabic number signs
    (0x061C, 0x061C),   // Arabic letter mark
    (0x06DD, 0x06DD),   // Arabic end of ayah
    (0x070F, 0x070F),   // Syriac abbreviation mark
    (0x0890, 0x0891),   // Arabic pound and piastre marks above
    (0x08E2, 0x08E2),   // Arabic disputed end of ayah
    (0x180E, 0x180E),   // Mongolian vowel separator
    (0x200B, 0x200F),   // zero-width space, (non-)joiner, LRM, RLM
    (0x202A, 0x202E),   // bidi embeddings and overrides LRE..RLO
    (0x2060, 0x2064),   // word joiner, invisible operators
    (0x2066, 0x206F),   // bidi isolates LRI..PDI, deprecated format chars
    (0xFEFF, 0xFEFF),   // zero-width no-break space (BOM)
    (0xFFF9, 0xFFFB),   // interlinear annotation
    (0x110BD, 0x110BD), // Kaithi number sign
    (0x110CD, 0x110CD), // Kaithi number sign above
    (0x13430, 0x1343F), // Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3), // shorthand format controls
    (0x1D173, 0x1D17A), // musical symbol beam and slur controls
    (0xE0001, 0xE0001), // language tag
    (0xE0020, 0xE007F), // tag characters
];

const LINE_SEPARATOR: char = '\u{2028}';
const PARAGRAPH_SEPARATOR: char = '\u{2029}';

/// Whether `c` is a format character (general category Cf).
pub fn is_format(c: char) -> bool {
    let c = u32::from(c);
    // everything below the soft hyphen is ASCII or C1 controls: most
    // characters of most lines end here
    if c < 0xAD {
        return false;
    }
    FORMAT
        .binary_search_by(|&(first, last)| {
            if last < c {
                std::cmp::Ordering::Less
            } else if first > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Whether `c` must not reach a log line as it is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_format(c) || c == LINE_SEPARATOR || c == PARAGRAPH_SEPARATOR
}

/// `text` with every unsafe character escaped as Rust writes it in a
/// string literal (`\n`, `\0`, `\u{202e}`), so the line says which one
/// it was.
pub fn one_line(text: String) -> String {
    if !text.chars().any(is_unsafe) {
        return text;
    }
    let mut line = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() {
            line.extend(c.escape_debug());
        } else if is_unsafe(c) {
            // not escape_debug: that one also escapes combining marks,
            // which an `é` written as e + U+0301 is made of
            line.extend(c.escape_unicode());
        } else {
            line.push(c);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(c: char) -> String {
        c.escape_unicode().to_string()
    }

    #[test]
    fn the_table_is_sorted_and_disjoint() {
        for pair in FORMAT.windows(2) {
            assert!(pair[0].0 <= pair[0].1, "{pair:x?}");
            assert!(pair[0].1 < pair[1].0, "{pair:x?}");
        }
    }

    #[test]
    fn every_format_range_is_escaped_at_both_ends_and_its_neighbours_are_not() {
        for &(first, last) in FORMAT {
            for code in [first, last, (first + last) / 2] {
                let c = char::from_u32(code).expect("a scalar value");
                assert!(is_format(c), "U+{code:04X}");
                assert_eq!(one_line(format!("a{c}b")), format!("a{}b", escaped(c)));
            }
        }
        // just outside some ranges: assigned, visible characters
        for c in [
            '\u{00AC}', '\u{00AE}', '\u{2010}', '\u{2029}', '\u{202F}', '\u{FFFC}',
        ] {
            assert!(!is_format(c), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn no_character_comes_out_unsafe_and_safe_ones_come_out_as_they_are() {
        let mut line = String::new();
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            line.clear();
            line.push(c);
            let out = one_line(line.clone());
            assert!(!out.chars().any(is_unsafe), "U+{:04X}", u32::from(c));
            assert_eq!(out == line, !is_unsafe(c), "U+{:04X}", u32::from(c));
            if is_format(c) {
                // the standard library's own tables (of its Unicode
                // version) do not print them either: the table has no typo
                // that takes in a visible character
                assert_ne!(c.escape_debug().to_string(), line, "U+{:04X}", u32::from(c));
            }
        }
    }

    #[test]
    fn line_and_paragraph_separators_are_escaped() {
        assert_eq!(
            one_line("a\u{2028}b\u{2029}c".into()),
            "a\\u{2028}b\\u{2029}c"
        );
    }

    #[test]
    fn bidi_controls_are_escaped() {
        // embeddings and overrides LRE, RLE, PDF, LRO, RLO
        for code in 0x202A..=0x202E {
            let c = char::from_u32(code).expect("a scalar value");
            assert_eq!(one_line(format!("{c}")), format!("\\u{{{code:x}}}"));
        }
        // isolates LRI, RLI, FSI, PDI
        for code in 0x2066..=0x2069 {
            let c = char::from_u32(code).expect("a scalar value");
            assert_eq!(one_line(format!("{c}")), format!("\\u{{{code:x}}}"));
        }
        // the marks LRM, RLM and the Arabic letter mark
        assert_eq!(
            one_line("\u{200E}\u{200F}\u{061C}".into()),
            "\\u{200e}\\u{200f}\\u{61c}"
        );
        // the classic trick: a name that shows as "evil-gnp.exe"
        assert_eq!(
            one_line("evil-\u{202E}exe.png".into()),
            "evil-\\u{202e}exe.png"
        );
    }

    #[test]
    fn zero_width_and_tag_characters_are_escaped() {
        assert_eq!(
            one_line("a\u{200B}b\u{200D}c\u{FEFF}d\u{2060}e".into()),
            "a\\u{200b}b\\u{200d}c\\u{feff}d\\u{2060}e"
        );
        assert_eq!(
            one_line("\u{E0001}\u{E0041}\u{E007F}".into()),
            "\\u{e0001}\\u{e0041}\\u{e007f}"
        );
        assert_eq!(one_line("soft\u{AD}hyphen".into()), "soft\\u{ad}hyphen");
    }

    #[test]
    fn controls_keep_their_short_escapes() {
        assert_eq!(
            one_line("a\nb\r\t\0\u{7f}\u{1b}[2J\u{85}".into()),
            "a\\nb\\r\\t\\0\\u{7f}\\u{1b}[2J\\u{85}"
        );
    }

    #[test]
    fn ordinary_text_stays_readable() {
        for text in [
            "plain ascii, with spaces and punctuation: ok!",
            "ünïcödé café",
            "cafe\u{301} (a combining accent)",
            "中文名字 日本語 한국어",
            "עברית and العربية, bidi by their letters alone",
            "emoji 🦀 and 👩🏽",
            "non-breaking\u{A0}and ideographic\u{3000}spaces",
        ] {
            assert_eq!(one_line(text.to_owned()), text);
        }
    }
}
