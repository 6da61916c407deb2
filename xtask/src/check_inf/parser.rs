//! Reading an INF: its bytes decoded ([`decode`]), then [`parse`]d into sections of entries.
//!
//! Sections are compared without regard to case and repeated sections merged; `key = value`
//! lines; quoted strings (`""` is a literal quote); `;` comments outside quotes; `\` line
//! continuations; `%strkey%` substitution from `[Strings]` (`%%` is a literal `%`; `%13%`-style
//! dirids are left as they are). What the parser itself finds wrong is a [`SyntaxError`].

use std::collections::HashMap;

use anyhow::{Context, Result, bail};

/// One logical line of a section (continuations joined), split into key and fields.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// 1-based line number where the logical line starts.
    pub(super) line: usize,
    /// The key before `=`, unquoted, if the line has one.
    pub(super) key: Option<String>,
    /// The comma-separated fields after `=` (or of the whole line), unquoted and substituted.
    pub(super) fields: Vec<String>,
}

impl Entry {
    /// The whole value, fields joined by commas.
    pub(super) fn value(&self) -> String {
        self.fields.join(",")
    }

    pub(super) fn field(&self, index: usize) -> &str {
        self.fields.get(index).map_or("", String::as_str)
    }
}

/// One section: its name as first written and its entries (all occurrences merged).
#[derive(Debug, Clone)]
pub(super) struct Section {
    pub(super) name: String,
    pub(super) entries: Vec<Entry>,
}

impl Section {
    /// The entries whose key is `key` (without regard to case).
    pub(super) fn values<'s>(&'s self, key: &str) -> impl Iterator<Item = &'s Entry> + use<'s> {
        let key = key.to_owned();
        self.entries.iter().filter(move |e| {
            e.key
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case(&key))
        })
    }

    /// The single value of `key`, if the key occurs.
    pub(super) fn value(&self, key: &str) -> Option<&Entry> {
        self.values(key).next()
    }
}

/// A parsed INF file.
#[derive(Debug, Default)]
pub(super) struct Inf {
    pub(super) sections: Vec<Section>,
    index: HashMap<String, usize>,
}

impl Inf {
    pub(super) fn section(&self, name: &str) -> Option<&Section> {
        self.index
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.sections[i])
    }
}

/// A problem the parser itself found.
#[derive(Debug)]
pub(super) struct SyntaxError {
    pub(super) line: usize,
    pub(super) message: String,
}

/// A raw logical line: text with comments removed and continuations joined.
struct RawLine {
    line: usize,
    text: String,
}

/// Decodes the bytes of an INF: UTF-8 (with or without BOM) or UTF-16LE with BOM.
pub(super) fn decode(bytes: &[u8]) -> Result<String> {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let (pairs, odd) = rest.as_chunks::<2>();
        if !odd.is_empty() {
            bail!("UTF-16LE text with an odd number of bytes");
        }
        let units: Vec<u16> = pairs.iter().map(|pair| u16::from_le_bytes(*pair)).collect();
        return String::from_utf16(&units).context("invalid UTF-16LE");
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8(bytes.to_vec()).context("neither UTF-8 nor UTF-16LE with a byte order mark")
}

/// Splits the text into logical lines: strips `;` comments outside quotes, and joins a line
/// whose last non-blank character (outside quotes and comments) is `\` with the next one.
fn logical_lines(text: &str, errors: &mut Vec<SyntaxError>) -> Vec<RawLine> {
    let mut out = Vec::new();
    let mut pending: Option<RawLine> = None;
    for (i, physical) in text.lines().enumerate() {
        let number = i + 1;
        let mut in_quotes = false;
        let mut code = String::new();
        for c in physical.chars() {
            if c == '"' {
                in_quotes = !in_quotes;
            } else if c == ';' && !in_quotes {
                break;
            }
            code.push(c);
        }
        if in_quotes {
            errors.push(SyntaxError {
                line: number,
                message: "unterminated quoted string".into(),
            });
        }
        let trimmed = code.trim_end();
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) if !in_quotes => (body.to_string(), true),
            _ => (trimmed.to_string(), false),
        };
        let mut current = pending.take().unwrap_or(RawLine {
            line: number,
            text: String::new(),
        });
        current.text.push_str(&body);
        if continues {
            pending = Some(current);
        } else {
            out.push(current);
        }
    }
    if let Some(last) = pending {
        errors.push(SyntaxError {
            line: last.line,
            message: "line continuation at end of file".into(),
        });
        out.push(last);
    }
    out
}

/// Splits `text` at `sep` characters outside quotes.
fn split_outside_quotes(text: &str, sep: char, limit: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut current = String::new();
    for c in text.chars() {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if c == sep && !in_quotes && parts.len() + 1 < limit {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

/// Removes quotes from a field: `"a""b"` becomes `a"b`; text outside quotes is kept, and
/// whitespace outside quotes at either end is dropped.
fn unquote(field: &str) -> String {
    let field = field.trim();
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        if c == '"' {
            if in_quotes && chars.peek() == Some(&'"') {
                out.push('"');
                chars.next();
            } else {
                in_quotes = !in_quotes;
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Substitutes `%strkey%` tokens from `strings`. `%%` is a literal `%`; a token that names no
/// string and is not a number (a dirid such as `%13%`) is reported and left as it is.
fn substitute(
    text: &str,
    strings: &HashMap<String, String>,
    line: usize,
    errors: &mut Vec<SyntaxError>,
) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('%') else {
            errors.push(SyntaxError {
                line,
                message: format!("unmatched '%' in `{text}`"),
            });
            out.push_str(&rest[start..]);
            return out;
        };
        let token = &after[..end];
        if token.is_empty() {
            out.push('%');
        } else if let Some(value) = strings.get(&token.to_ascii_lowercase()) {
            out.push_str(value);
        } else {
            if !token.chars().all(|c| c.is_ascii_digit()) {
                errors.push(SyntaxError {
                    line,
                    message: format!("%{token}% is not defined in [Strings]"),
                });
            }
            out.push('%');
            out.push_str(token);
            out.push('%');
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `[Strings]`: values are quoted or bare, and are not themselves substituted. Keys are
/// compared without case, as INF string keys are.
fn read_strings(
    raw_sections: &[(String, Vec<RawLine>)],
    raw_index: &HashMap<String, usize>,
    errors: &mut Vec<SyntaxError>,
) -> HashMap<String, String> {
    // A key given twice is reported with both lines: which value a Windows tool takes is
    // documented nowhere (a section given twice is legal: its entries merge).
    let mut strings = HashMap::new();
    let mut defined: HashMap<String, &RawLine> = HashMap::new();
    if let Some(&i) = raw_index.get("strings") {
        for line in &raw_sections[i].1 {
            let parts = split_outside_quotes(&line.text, '=', 2);
            if parts.len() == 2 {
                let key = unquote(&parts[0]);
                if let Some(first) = defined.get(&key.to_ascii_lowercase()) {
                    errors.push(SyntaxError {
                        line: line.line,
                        message: format!(
                            "[Strings] defines `{key}` twice: line {} `{}` and line {} `{}`; keep \
                             one (which value wins is undocumented)",
                            first.line,
                            first.text.trim(),
                            line.line,
                            line.text.trim()
                        ),
                    });
                } else {
                    defined.insert(key.to_ascii_lowercase(), line);
                }
                strings
                    .entry(key.to_ascii_lowercase())
                    .or_insert_with(|| unquote(&parts[1]));
            } else {
                errors.push(SyntaxError {
                    line: line.line,
                    message: "[Strings] line without '='".into(),
                });
            }
        }
    }
    strings
}

/// Parses INF text.
pub(super) fn parse(text: &str) -> (Inf, Vec<SyntaxError>) {
    let mut errors = Vec::new();
    let lines = logical_lines(text, &mut errors);

    // First pass: sections with their raw lines, so that [Strings] is known before substitution.
    let mut raw_sections: Vec<(String, Vec<RawLine>)> = Vec::new();
    let mut raw_index: HashMap<String, usize> = HashMap::new();
    let mut current: Option<usize> = None;
    for line in lines {
        let t = line.text.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(header) = t.strip_prefix('[') {
            // A header without its `]` is reported once and read as the section it names, so
            // that its lines (and, for `[Strings`, every %key% they define) are not reported
            // again one by one.
            let name = header.strip_suffix(']').unwrap_or_else(|| {
                errors.push(SyntaxError {
                    line: line.line,
                    message: format!(
                        "malformed section header `{t}`: it lacks its closing `]` (read as \
                         [{}])",
                        header.trim()
                    ),
                });
                header
            });
            let name = name.trim().to_string();
            let key = name.to_ascii_lowercase();
            let i = *raw_index.entry(key).or_insert_with(|| {
                raw_sections.push((name.clone(), Vec::new()));
                raw_sections.len() - 1
            });
            current = Some(i);
            continue;
        }
        match current {
            Some(i) => raw_sections[i].1.push(line),
            None => errors.push(SyntaxError {
                line: line.line,
                message: "text before the first section".into(),
            }),
        }
    }

    let strings = read_strings(&raw_sections, &raw_index, &mut errors);

    let mut inf = Inf::default();
    for (name, raw_lines) in raw_sections {
        let is_strings = name.eq_ignore_ascii_case("Strings");
        let mut entries = Vec::new();
        for raw in raw_lines {
            let parts = split_outside_quotes(&raw.text, '=', 2);
            let (key, value) = if parts.len() == 2 {
                (Some(unquote(&parts[0])), parts[1].clone())
            } else {
                (None, parts[0].clone())
            };
            let fields = split_outside_quotes(&value, ',', usize::MAX)
                .iter()
                .map(|f| {
                    if is_strings {
                        unquote(f)
                    } else {
                        // Quotes protect separators, not tokens: substitute, then unquote.
                        unquote(&substitute(f, &strings, raw.line, &mut errors))
                    }
                })
                .collect();
            let key = key.map(|k| {
                if is_strings {
                    k
                } else {
                    substitute(&k, &strings, raw.line, &mut errors)
                }
            });
            entries.push(Entry {
                line: raw.line,
                key,
                fields,
            });
        }
        inf.index
            .insert(name.to_ascii_lowercase(), inf.sections.len());
        inf.sections.push(Section { name, entries });
    }
    (inf, errors)
}

#[cfg(test)]
mod tests {
    use super::{decode, parse};
    use crate::check_inf::test_support::{GOOD, check};

    #[test]
    fn parser_handles_quotes_comments_continuations_and_strings() {
        let text = "[Version]\r\nSignature = \"$Windows NT$\" ; comment\r\n[A]\r\nKey = \"x;y\", %S% , \\\r\n  \"q\"\"r\"\r\nNoKey, two\r\n%K% = v\r\nP = 100%%\r\n[a]\r\nMore = 1\r\n[Strings]\r\nS = \"sub, stituted\"\r\nK = key\r\n";
        let (inf, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        let a = inf.section("A").unwrap();
        let key = a.value("Key").unwrap();
        assert_eq!(key.fields, vec!["x;y", "sub, stituted", "q\"r"]);
        assert_eq!(key.line, 4);
        let bare = a.entries.iter().find(|e| e.key.is_none()).unwrap();
        assert_eq!(bare.fields, vec!["NoKey", "two"]);
        assert_eq!(a.value("key").unwrap().field(0), "x;y");
        assert_eq!(
            a.entries
                .iter()
                .filter(|e| e.key.as_deref() == Some("key"))
                .count(),
            1
        );
        assert_eq!(a.value("P").unwrap().value(), "100%");
        assert!(a.value("More").is_some(), "repeated sections merge");
        assert_eq!(
            inf.section("version")
                .unwrap()
                .value("signature")
                .unwrap()
                .value(),
            "$Windows NT$"
        );
    }

    /// A `[Strings` header without its `]` is one finding, with its line, not one per string.
    #[test]
    fn a_header_without_its_bracket_is_one_finding() {
        let text = GOOD.replace("[Strings]", "[Strings");
        let line = text.lines().position(|l| l == "[Strings").unwrap() + 1;
        let findings = check(&text);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].file, "test.inx");
        assert_eq!(findings[0].section, format!("line {line}"));
        assert_eq!(
            findings[0].message,
            "malformed section header `[Strings`: it lacks its closing `]` (read as [Strings])"
        );
    }

    /// A `[Strings]` key given twice is one finding naming the key and both lines.
    #[test]
    fn a_strings_key_given_twice_is_one_finding_with_both_lines() {
        for (key, first) in [
            ("ServiceName", "ServiceName        = \"RsPassthrough\""),
            (
                "DiskName",
                "DiskName           = \"rs-passthrough sample installation disk\"",
            ),
        ] {
            let second = format!("{key} = \"Another\"");
            let text = GOOD.replacen(first, &format!("{first}\n{second}"), 1);
            let line = |l: &str| text.lines().position(|x| x == l).unwrap() + 1;
            let findings = check(&text);
            assert_eq!(findings.len(), 1, "{findings:#?}");
            assert_eq!(findings[0].section, format!("line {}", line(&second)));
            assert_eq!(
                findings[0].message,
                format!(
                    "[Strings] defines `{key}` twice: line {} `{first}` and line {} `{second}`; \
                     keep one (which value wins is undocumented)",
                    line(first),
                    line(&second)
                )
            );
        }
    }

    #[test]
    fn parser_reports_syntax_errors() {
        let (_, errors) = parse("stray\n[A\nx = 1\n[B]\ny = \"open\nz = %Missing%\nw = 1 \\");
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("malformed section header")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("text before the first section")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("unterminated")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("%Missing%")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("continuation at end of file")),
            "{messages:?}"
        );
        assert!(
            check("[Version]\nx = %Nope%\n")
                .iter()
                .any(|f| f.rule == "syntax")
        );
    }

    #[test]
    fn decodes_utf16() {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend("[Version]".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode(&bytes).unwrap(), "[Version]");
        assert_eq!(decode(b"\xEF\xBB\xBF[A]").unwrap(), "[A]");
    }
}
