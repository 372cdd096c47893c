//! Regular expressions with RE2 semantics where they differ from the `regex` crate:
//! OpenAPI `pattern` and CEL `matches`/`find` are evaluated by Go's `regexp` (RE2), whose
//! `\d`, `\w`, `\s` and `\b` are ASCII-only. Patterns are rewritten to the ASCII forms and
//! compiled once (a bounded cache), so the same schema is not recompiled on every write.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use regex::Regex;

/// Rewrite the Perl classes of an RE2 pattern to their ASCII forms.
pub fn to_rust(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                // RE2's Perl classes are ASCII: \d = [0-9], \w = [0-9A-Za-z_],
                // \s = [\t\n\f\r ]; the negated ones match every other character.
                match (n, in_class) {
                    ('d', false) => out.push_str("[0-9]"),
                    ('D', false) => out.push_str("[^0-9]"),
                    ('w', false) => out.push_str("[0-9A-Za-z_]"),
                    ('W', false) => out.push_str("[^0-9A-Za-z_]"),
                    ('s', false) => out.push_str("[\\t\\n\\f\\r ]"),
                    ('S', false) => out.push_str("[^\\t\\n\\f\\r ]"),
                    ('b' | 'B', false) => {
                        out.push_str("(?-u:\\");
                        out.push(n);
                        out.push(')');
                    }
                    ('d', true) => out.push_str("0-9"),
                    ('D', true) => out.push_str("[:^digit:]"),
                    ('w', true) => out.push_str("0-9A-Za-z_"),
                    ('W', true) => out.push_str("[:^word:]"),
                    ('s', true) => out.push_str("\\t\\n\\f\\r "),
                    ('S', true) => out.push_str("[:^space:]"),
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                // A `]` right after `[` or `[^` is a literal in RE2.
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            '[' if in_class => {
                if chars.peek() == Some(&':') {
                    // `[:alpha:]` inside a class.
                    out.push('[');
                    for d in chars.by_ref() {
                        out.push(d);
                        if d == ']' {
                            break;
                        }
                    }
                } else {
                    // A literal `[` inside a class (RE2 allows it unescaped).
                    out.push_str("\\[");
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The compiled form of an RE2 pattern, from a process-wide cache.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    static CACHE: LazyLock<Mutex<HashMap<String, Regex>>> = LazyLock::new(Mutex::default);
    if let Some(r) = CACHE.lock().unwrap_or_else(PoisonError::into_inner).get(pattern) {
        return Ok(r.clone());
    }
    let r = regex::RegexBuilder::new(&to_rust(pattern))
        .size_limit(1 << 28)
        .build()
        .map_err(|e| format!("error parsing regexp: {e}"))?;
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if cache.len() > 4096 {
        cache.clear();
    }
    cache.insert(pattern.to_string(), r.clone());
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_are_ascii() {
        let d = compile(r"^\d+$").expect("compiles");
        assert!(d.is_match("123"));
        assert!(!d.is_match("١٢"));
        assert!(compile(r"^[\w-]+$").expect("compiles").is_match("a-1_b"));
        assert!(compile(r"^[]a]+$").expect("compiles").is_match("]a"));
        assert!(compile(r"^[[:alpha:]]+$").expect("compiles").is_match("abc"));
        assert!(compile(r"(a").is_err());
        let image = compile(r"^(\w+\S+)$").expect("compiles");
        assert!(image.is_match("quay.io/openshift-release-dev/ocp-release:4.15.11-x86_64"));
        assert!(!image.is_match("-bad image"));
        assert!(compile(r"^[\S]+$").expect("compiles").is_match("é-x"));
    }
}
