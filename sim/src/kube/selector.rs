//! Label and field selectors, with the grammar of `k8s.io/apimachinery/pkg/labels` and
//! `pkg/fields`.
//!
//! Label selectors: comma-separated requirements (a comma means AND) of the forms `k=v`, `k==v`,
//! `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (does not exist), `k>1`, `k<1`.
//! Field selectors: `path=v`, `path==v`, `path!=v`, with `\,` `\=` `\\` escapes.

use serde_json::Value;

/// A selector string could not be parsed. The API answers 400 BadRequest with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// Operator of one label requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `k=v` or `k==v`.
    Equals,
    /// `k!=v`: also matches when the key is absent.
    NotEquals,
    /// `k in (a,b)`.
    In,
    /// `k notin (a,b)`: also matches when the key is absent.
    NotIn,
    /// `k`.
    Exists,
    /// `!k`.
    DoesNotExist,
    /// `k>N` (integer comparison, key must exist).
    GreaterThan,
    /// `k<N`.
    LessThan,
}

/// One `key op values` term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub op: Op,
    /// Values (one for equality, several for set operators, none for existence).
    pub values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let value = labels.and_then(|l| l.get(&self.key)).and_then(Value::as_str);
        match self.op {
            Op::Equals | Op::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotEquals | Op::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(v), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|b| b.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Op::GreaterThan {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The ANDed requirements.
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Eq,
    DoubleEq,
    NotEq,
    Bang,
    Comma,
    LParen,
    RParen,
    Gt,
    Lt,
}

fn lex(s: &str) -> Result<Vec<Tok>, SelectorError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            '>' => {
                out.push(Tok::Gt);
                i += 1;
            }
            '<' => {
                out.push(Tok::Lt);
                i += 1;
            }
            '=' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Tok::DoubleEq);
                    i += 2;
                } else {
                    out.push(Tok::Eq);
                    i += 1;
                }
            }
            '!' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Tok::NotEq);
                    i += 2;
                } else {
                    out.push(Tok::Bang);
                    i += 1;
                }
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], ',' | '(' | ')' | '=' | '!' | '<' | '>')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Validates a label key: optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters that starts and ends alphanumeric.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 {
            return Err(format!("prefix part of \"{key}\" must be a DNS subdomain"));
        }
        if !p
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(format!(
                "prefix part of \"{key}\" must be a lowercase RFC 1123 subdomain"
            ));
        }
    }
    validate_label_value(name)
        .and_then(|()| {
            if name.is_empty() {
                Err("name part must be non-empty".into())
            } else {
                Ok(())
            }
        })
        .map_err(|e| format!("invalid label key \"{key}\": {e}"))
}

/// Validates a label value: empty, or at most 63 of `[A-Za-z0-9_.-]` starting and ending
/// alphanumeric.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err(format!(
            "invalid label value \"{value}\": must be no more than 63 characters"
        ));
    }
    let first_last_ok = value.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && value.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_last_ok || !value.chars().all(is_name_char) {
        return Err(format!(
            "invalid label value \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn ident(&mut self, what: &str) -> Result<String, SelectorError> {
        match self.next() {
            Some(Tok::Ident(s)) => Ok(s),
            other => Err(SelectorError(format!(
                "unable to parse requirement: expected {what}, found {other:?}"
            ))),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek() == Some(&Tok::Bang) {
            self.next();
            let key = self.ident("key after '!'")?;
            validate_label_key(&key).map_err(SelectorError)?;
            return Ok(Requirement {
                key,
                op: Op::DoesNotExist,
                values: vec![],
            });
        }
        let key = self.ident("key")?;
        if key == "in" || key == "notin" {
            return Err(SelectorError(format!(
                "unable to parse requirement: found '{key}', expected: identifier"
            )));
        }
        validate_label_key(&key).map_err(SelectorError)?;
        let op = match self.peek() {
            None | Some(Tok::Comma) => {
                return Ok(Requirement {
                    key,
                    op: Op::Exists,
                    values: vec![],
                });
            }
            Some(Tok::Eq) | Some(Tok::DoubleEq) => Op::Equals,
            Some(Tok::NotEq) => Op::NotEquals,
            Some(Tok::Gt) => Op::GreaterThan,
            Some(Tok::Lt) => Op::LessThan,
            Some(Tok::Ident(word)) if word == "in" => Op::In,
            Some(Tok::Ident(word)) if word == "notin" => Op::NotIn,
            Some(other) => {
                return Err(SelectorError(format!(
                    "unable to parse requirement: unexpected {other:?} after key \"{key}\""
                )));
            }
        };
        self.next();
        let values = match op {
            Op::In | Op::NotIn => {
                if self.next() != Some(Tok::LParen) {
                    return Err(SelectorError(format!(
                        "unable to parse requirement: expected '(' after {key} in/notin"
                    )));
                }
                let mut values = Vec::new();
                loop {
                    match self.next() {
                        Some(Tok::Ident(v)) => {
                            validate_label_value(&v).map_err(SelectorError)?;
                            values.push(v);
                            match self.next() {
                                Some(Tok::Comma) => {}
                                Some(Tok::RParen) => break,
                                other => {
                                    return Err(SelectorError(format!(
                                        "unable to parse requirement: expected ',' or ')', found {other:?}"
                                    )));
                                }
                            }
                        }
                        Some(Tok::RParen) if values.is_empty() => break,
                        other => {
                            return Err(SelectorError(format!(
                                "unable to parse requirement: expected a value, found {other:?}"
                            )));
                        }
                    }
                }
                if values.is_empty() {
                    return Err(SelectorError(format!(
                        "unable to parse requirement: for 'in', 'notin' operators, values set can't be empty (key {key})"
                    )));
                }
                values
            }
            Op::GreaterThan | Op::LessThan => {
                let v = self.ident("an integer value")?;
                if v.parse::<i64>().is_err() {
                    return Err(SelectorError(format!(
                        "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {v}"
                    )));
                }
                vec![v]
            }
            _ => {
                // `k=` is a valid requirement on the empty value.
                let v = match self.peek() {
                    None | Some(Tok::Comma) => String::new(),
                    _ => self.ident("a value")?,
                };
                validate_label_value(&v).map_err(SelectorError)?;
                vec![v]
            }
        };
        Ok(Requirement { key, op, values })
    }
}

impl LabelSelector {
    /// Parse a selector string; the empty string gives the match-all selector.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let toks = lex(s)?;
        let mut p = Parser { toks, pos: 0 };
        let mut requirements = Vec::new();
        if p.peek().is_none() {
            return Ok(LabelSelector::default());
        }
        loop {
            requirements.push(p.requirement()?);
            match p.next() {
                None => break,
                Some(Tok::Comma) => {
                    if p.peek().is_none() {
                        return Err(SelectorError("unable to parse requirement: trailing comma".into()));
                    }
                }
                Some(other) => {
                    return Err(SelectorError(format!(
                        "unable to parse requirement: unexpected {other:?}"
                    )));
                }
            }
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Match against a whole object (reads `metadata.labels`).
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// Render a `metav1.LabelSelector` object (`matchLabels` + `matchExpressions`) as a selector
/// string, sorted by key the way `LabelSelectorAsSelector(...).String()` does. A string input is
/// returned as is (CRD scale `labelSelectorPath` fields already hold strings).
pub fn selector_string(v: &Value) -> Option<String> {
    if let Some(s) = v.as_str() {
        return Some(s.to_string());
    }
    let obj = v.as_object()?;
    let mut parts: Vec<(String, String)> = Vec::new();
    if let Some(ml) = obj.get("matchLabels").and_then(Value::as_object) {
        for (k, val) in ml {
            parts.push((k.clone(), format!("{k}={}", val.as_str().unwrap_or_default())));
        }
    }
    if let Some(me) = obj.get("matchExpressions").and_then(Value::as_array) {
        for e in me {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let mut values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            values.sort_unstable();
            let s = match e.get("operator").and_then(Value::as_str).unwrap_or_default() {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => continue,
            };
            parts.push((key.to_string(), s));
        }
    }
    parts.sort();
    Some(parts.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(","))
}

/// One `field op value` term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// Dotted field path, e.g. `metadata.name`.
    pub field: String,
    /// `!=` (true) or `=`/`==` (false).
    pub negated: bool,
    /// Compared value.
    pub value: String,
}

/// A parsed field selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// The ANDed terms.
    pub terms: Vec<FieldTerm>,
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Byte index of the first unescaped occurrence of `pat` in `s` (always a char boundary, so
/// slicing at it cannot panic on multi-byte UTF-8).
fn find_unescaped(s: &str, pat: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        if s[i..].starts_with(pat) {
            return Some(i);
        }
    }
    None
}

impl FieldSelector {
    /// Parse a field selector string.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector::default());
        }
        for raw in split_unescaped(s, ',') {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            // Order matters: `!=` and `==` before `=`.
            let (idx, len, negated) = if let Some(i) = find_unescaped(raw, "!=") {
                (i, 2, true)
            } else if let Some(i) = find_unescaped(raw, "==") {
                (i, 2, false)
            } else if let Some(i) = find_unescaped(raw, "=") {
                (i, 1, false)
            } else {
                return Err(SelectorError(format!(
                    "invalid selector: '{raw}'; can't understand '{raw}'"
                )));
            };
            let field = raw[..idx].trim().to_string();
            if field.is_empty() {
                return Err(SelectorError(format!("invalid selector: '{raw}'")));
            }
            terms.push(FieldTerm {
                field,
                negated,
                value: unescape(raw[idx + len..].trim()),
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the selector has no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Check that every field is selectable: `metadata.name`, `metadata.namespace` and the
    /// given extra paths. The real server answers 400 `field label not supported: X` otherwise.
    pub fn validate(&self, extra: &[&str]) -> Result<(), SelectorError> {
        for t in &self.terms {
            if !(t.field == "metadata.name" || t.field == "metadata.namespace" || extra.contains(&t.field.as_str())) {
                return Err(SelectorError(format!("field label not supported: {}", t.field)));
            }
        }
        Ok(())
    }

    /// Match against an object; a missing field compares as the empty string.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let mut cur = Some(obj);
            for seg in t.field.split('.') {
                cur = cur.and_then(|c| c.get(seg));
            }
            let actual = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == t.value) != t.negated
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "n1", "namespace": "ns1", "labels": labels}})
    }

    fn m(sel: &str, labels: Value) -> bool {
        LabelSelector::parse(sel).expect("parses").matches_object(&obj(labels))
    }

    #[test]
    fn equality_operators() {
        assert!(m("a=1", json!({"a": "1"})));
        assert!(m("a==1", json!({"a": "1"})));
        assert!(!m("a=1", json!({"a": "2"})));
        assert!(!m("a=1", json!({})));
        assert!(m("a!=1", json!({"a": "2"})));
        assert!(m("a!=1", json!({})), "!= matches a missing key");
        assert!(!m("a!=1", json!({"a": "1"})));
        assert!(m("a=", json!({"a": ""})));
    }

    #[test]
    fn set_operators() {
        assert!(m("env in (prod, dev)", json!({"env": "dev"})));
        assert!(!m("env in (prod,dev)", json!({"env": "qa"})));
        assert!(!m("env in (prod,dev)", json!({})));
        assert!(m("env notin (prod,dev)", json!({"env": "qa"})));
        assert!(m("env notin (prod,dev)", json!({})));
        assert!(!m("env notin (prod,dev)", json!({"env": "prod"})));
    }

    #[test]
    fn existence_and_and() {
        assert!(m("a", json!({"a": "x"})));
        assert!(!m("a", json!({})));
        assert!(m("!a", json!({})));
        assert!(!m("!a", json!({"a": "x"})));
        assert!(m("a=1,b in (2,3),!c", json!({"a": "1", "b": "3"})));
        assert!(!m("a=1,b in (2,3),!c", json!({"a": "1", "b": "3", "c": "x"})));
        assert!(m(
            "app.kubernetes.io/name=etcd",
            json!({"app.kubernetes.io/name": "etcd"})
        ));
        assert!(m("n>3", json!({"n": "4"})));
        assert!(!m("n<3", json!({"n": "4"})));
        assert!(m("", json!({})));
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "a in (b",
            "a in ()",
            "a=b,",
            "in",
            "a=b c",
            "!",
            "a>x",
            "a=b=c",
            "Bad Key=1",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should fail");
        }
        let sel = LabelSelector::parse("a in (x, y),b").expect("parses");
        assert_eq!(sel.requirements.len(), 2);
        assert_eq!(sel.requirements[0].values, vec!["x", "y"]);
        assert_eq!(sel.requirements[1].op, Op::Exists);
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let f = |s: &str| FieldSelector::parse(s).expect("parses").matches_object(&o);
        assert!(f("metadata.name=n1"));
        assert!(f("metadata.name==n1,metadata.namespace=ns1"));
        assert!(!f("metadata.name!=n1"));
        assert!(f("metadata.namespace!=other"));
        assert!(!f("metadata.name=n2"));
        let sel = FieldSelector::parse("spec.foo=x").expect("parses");
        assert!(sel.validate(&[]).is_err());
        assert!(sel.validate(&["spec.foo"]).is_ok());
        assert!(FieldSelector::parse("nooperator").is_err());
        let esc = FieldSelector::parse(r"metadata.name=a\,b").expect("parses");
        assert_eq!(esc.terms[0].value, "a,b");
        // Multi-byte input must not panic (byte-index slicing), just fail to match.
        let utf = FieldSelector::parse("metadata.name=é,métadata.ñ!=ü\\é").expect("parses");
        assert!(!utf.matches_object(&o));
        assert!(LabelSelector::parse("é=ü").is_err());
    }

    #[test]
    fn selector_object_to_string() {
        let s = selector_string(&json!({
            "matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]},
                                 {"key": "d", "operator": "DoesNotExist"}]
        }));
        assert_eq!(s.as_deref(), Some("a=1,b=2,c in (x,y),!d"));
        assert_eq!(selector_string(&json!("x=y")).as_deref(), Some("x=y"));
    }
}
