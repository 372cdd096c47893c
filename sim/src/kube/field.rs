//! Field paths and field errors, rendered as kube-apiserver renders them
//! (`k8s.io/apimachinery/pkg/util/validation/field`, `errors.go` and `path.go`, v1.32).
//!
//! Clients match on these strings: kubectl prints them, and HyperShift's CRD test suites
//! compare substrings of them. So the wording, the value rendering (Go's `%q`, `%v` and
//! `%#v`) and the paths (`spec.a[0].b`, map keys as `[key]`, the root as `<nil>`) follow the
//! Go code exactly.

use std::fmt::{self, Write as _};

use serde_json::Value;

/// A field path: `spec.services[0].servicePublishingStrategy`. The empty path is the
/// object root, which kube-apiserver prints as `<nil>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Path(String);

impl Path {
    /// The root (`<nil>` when printed).
    pub fn root() -> Path {
        Path(String::new())
    }

    /// A path from a dotted string such as `metadata.name` (the form upstream writes by hand).
    pub fn new(s: &str) -> Path {
        Path(s.to_string())
    }

    /// `self.name`.
    pub fn child(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    /// `self[i]`.
    pub fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    /// `self[key]` (a map key, unquoted as upstream prints it).
    pub fn key(&self, key: &str) -> Path {
        Path(format!("{}[{key}]", self.0))
    }

    /// True for the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The dotted text, empty for the root.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("<nil>")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// `field.ErrorType`: what kind of problem a field has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// `FieldValueNotFound`.
    NotFound,
    /// `FieldValueRequired`.
    Required,
    /// `FieldValueDuplicate`.
    Duplicate,
    /// `FieldValueInvalid`.
    Invalid,
    /// `FieldValueNotSupported`.
    NotSupported,
    /// `FieldValueForbidden`.
    Forbidden,
    /// `FieldValueTooLong`.
    TooLong,
    /// `FieldValueTooMany`.
    TooMany,
    /// `InternalError`.
    Internal,
    /// `FieldValueTypeInvalid`.
    TypeInvalid,
}

impl ErrorType {
    /// The `reason` of a `StatusCause`.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// `ErrorType.String()`.
    pub fn text(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid | ErrorType::TypeInvalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
        }
    }

    /// The type named by a CEL rule's `reason` (`FieldValueForbidden`...), if it is one the
    /// API server accepts there.
    pub fn from_rule_reason(reason: &str) -> Option<ErrorType> {
        match reason {
            "FieldValueInvalid" => Some(ErrorType::Invalid),
            "FieldValueForbidden" => Some(ErrorType::Forbidden),
            "FieldValueRequired" => Some(ErrorType::Required),
            "FieldValueDuplicate" => Some(ErrorType::Duplicate),
            _ => None,
        }
    }
}

/// One field error: the unit of a 422 `Invalid` (one `details.causes` entry each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: String,
    /// `ErrorBody()`: the text after the path, e.g. `Invalid value: "x": must be ...`.
    pub message: String,
    /// The path as printed (`<nil>` for the root).
    pub field: String,
}

impl Cause {
    /// A cause from its parts, for errors that are not about one schema node.
    pub fn new(field: &str, reason: &str, message: impl Into<String>) -> Cause {
        Cause {
            reason: reason.to_string(),
            message: message.into(),
            field: field.to_string(),
        }
    }

    /// `field.Error.Error()`: `<path>: <body>`.
    pub fn error_string(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }

    fn of(type_: ErrorType, path: &Path, body: String) -> Cause {
        Cause {
            reason: type_.reason().to_string(),
            message: body,
            field: path.to_string(),
        }
    }
}

fn with_detail(mut body: String, detail: &str) -> String {
    if !detail.is_empty() {
        body.push_str(": ");
        body.push_str(detail);
    }
    body
}

/// `field.Required(path, detail)`.
pub fn required(path: &Path, detail: &str) -> Cause {
    Cause::of(
        ErrorType::Required,
        path,
        with_detail(ErrorType::Required.text().into(), detail),
    )
}

/// `field.Forbidden(path, detail)`.
pub fn forbidden(path: &Path, detail: &str) -> Cause {
    Cause::of(
        ErrorType::Forbidden,
        path,
        with_detail(ErrorType::Forbidden.text().into(), detail),
    )
}

/// `field.Invalid(path, value, detail)` with the value already rendered (see [`render`]).
pub fn invalid_rendered(path: &Path, rendered: &str, detail: &str) -> Cause {
    Cause::of(
        ErrorType::Invalid,
        path,
        with_detail(format!("{}: {rendered}", ErrorType::Invalid.text()), detail),
    )
}

/// `field.Invalid(path, value, detail)`.
pub fn invalid(path: &Path, value: &Value, detail: &str) -> Cause {
    invalid_rendered(path, &render(value), detail)
}

/// `field.Invalid(path, "<string>", detail)`: the value is a Go string (quoted).
pub fn invalid_str(path: &Path, value: &str, detail: &str) -> Cause {
    invalid_rendered(path, &go_quote(value), detail)
}

/// `field.TypeInvalid(path, value, detail)`.
pub fn type_invalid(path: &Path, value: &Value, detail: &str) -> Cause {
    Cause::of(
        ErrorType::TypeInvalid,
        path,
        with_detail(format!("{}: {}", ErrorType::TypeInvalid.text(), render(value)), detail),
    )
}

/// `field.NotSupported(path, value, supported)`: `Unsupported value: "x": supported values:
/// "a", "b"` (each supported value printed with `strconv.Quote(fmt.Sprint(v))`).
pub fn not_supported(path: &Path, value: &Value, supported: &[Value]) -> Cause {
    let mut body = format!("{}: {}", ErrorType::NotSupported.text(), render(value));
    if !supported.is_empty() {
        let list: Vec<String> = supported.iter().map(|v| go_quote(&go_sprint(v))).collect();
        body.push_str(": supported values: ");
        body.push_str(&list.join(", "));
    }
    Cause::of(ErrorType::NotSupported, path, body)
}

/// `field.Duplicate(path, value)`.
pub fn duplicate(path: &Path, value: &Value) -> Cause {
    Cause::of(
        ErrorType::Duplicate,
        path,
        format!("{}: {}", ErrorType::Duplicate.text(), render(value)),
    )
}

/// `field.Duplicate(path, value)` with the value already rendered.
pub fn duplicate_rendered(path: &Path, rendered: &str) -> Cause {
    Cause::of(
        ErrorType::Duplicate,
        path,
        format!("{}: {rendered}", ErrorType::Duplicate.text()),
    )
}

/// `field.TooLong(path, value, max)`, v1.32 wording.
pub fn too_long(path: &Path, max: i64) -> Cause {
    Cause::of(
        ErrorType::TooLong,
        path,
        format!("{}: may not be more than {max} bytes", ErrorType::TooLong.text()),
    )
}

/// `field.TooMany(path, actual, max)`, v1.32 wording (`items` even for one).
pub fn too_many(path: &Path, actual: usize, max: i64) -> Cause {
    Cause::of(
        ErrorType::TooMany,
        path,
        format!("{}: {actual}: must have at most {max} items", ErrorType::TooMany.text()),
    )
}

/// `field.InternalError(path, err)`.
pub fn internal(path: &Path, detail: &str) -> Cause {
    Cause::of(
        ErrorType::Internal,
        path,
        with_detail(ErrorType::Internal.text().into(), detail),
    )
}

/// An error of a given type with a rendered value, for CEL rules whose `reason` picks it.
pub fn of_type(type_: ErrorType, path: &Path, rendered_value: &str, detail: &str) -> Cause {
    match type_ {
        ErrorType::Required => required(path, detail),
        ErrorType::Forbidden => forbidden(path, detail),
        ErrorType::Duplicate => duplicate_rendered(path, rendered_value),
        _ => invalid_rendered(path, rendered_value, detail),
    }
}

/// How `field.Error` renders a value in v1.32: `nil` → `"null"`, strings with `%q`, numbers
/// and booleans with `%v`, everything else with `%#v`.
pub fn render(v: &Value) -> String {
    match v {
        Value::Null => "\"null\"".to_string(),
        Value::String(s) => go_quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        other => go_sharp_v(other),
    }
}

/// Go's `fmt.Sprint(v)` of a decoded JSON value (strings unquoted).
pub fn go_sprint(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(go_sprint).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(m) => {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{}", go_sprint(v))).collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// A JSON number as Go prints the `int64` or `float64` it decodes to.
pub fn go_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    go_float(n.as_f64().unwrap_or(0.0))
}

/// `strconv.FormatFloat(f, 'g', -1, 64)`, which is what `%v` prints for a `float64`:
/// the shortest representation, in exponent form below 1e-4 or from 1e6 on.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits, like Go's precision -1.
    let sci = format!("{f:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{f}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` of a decoded JSON value (`map[string]interface {}{"a":1}`, `[]interface {}{"a"}`).
fn go_sharp_v(v: &Value) -> String {
    fn inner(v: &Value, out: &mut String) {
        match v {
            Value::Null => out.push_str("interface {}(nil)"),
            Value::String(s) => out.push_str(&go_quote(s)),
            Value::Bool(b) => out.push_str(&b.to_string()),
            Value::Number(n) => out.push_str(&go_number(n)),
            Value::Array(a) => {
                out.push_str("[]interface {}{");
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    inner(x, out);
                }
                out.push('}');
            }
            Value::Object(m) => {
                out.push_str("map[string]interface {}{");
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&go_quote(k));
                    out.push(':');
                    if let Some(x) = m.get(*k) {
                        inner(x, out);
                    }
                }
                out.push('}');
            }
        }
    }
    let mut out = String::new();
    inner(v, &mut out);
    out
}

/// `errs.ToAggregate().Error()`: duplicates (by text) dropped; one error bare, several in
/// brackets joined by `, `.
pub fn aggregate(causes: &[Cause]) -> String {
    let mut seen = std::collections::HashSet::new();
    let texts: Vec<String> = causes
        .iter()
        .map(Cause::error_string)
        .filter(|t| seen.insert(t.clone()))
        .collect();
    match texts.len() {
        0 => String::new(),
        1 => texts.into_iter().next().unwrap_or_default(),
        _ => format!("[{}]", texts.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_print_like_upstream() {
        let p = Path::root().child("spec").child("services").index(0).child("type");
        assert_eq!(p.to_string(), "spec.services[0].type");
        assert_eq!(Path::root().to_string(), "<nil>");
        assert_eq!(
            Path::root().child("metadata").child("labels").key("a/b").to_string(),
            "metadata.labels[a/b]"
        );
    }

    #[test]
    fn bodies_match_kube_apiserver_132() {
        let p = Path::new("spec.etcd.managed.storage.restoreSnapshotURL");
        assert_eq!(
            too_many(&p, 2, 1).error_string(),
            "spec.etcd.managed.storage.restoreSnapshotURL: Too many: 2: must have at most 1 items"
        );
        assert_eq!(
            too_long(&Path::new("spec.x"), 63).error_string(),
            "spec.x: Too long: may not be more than 63 bytes"
        );
        assert_eq!(
            required(&Path::new("spec.pullSecret"), "").error_string(),
            "spec.pullSecret: Required value"
        );
        assert_eq!(
            not_supported(&Path::new("spec.t"), &json!("X"), &[json!("A"), json!("B")]).error_string(),
            "spec.t: Unsupported value: \"X\": supported values: \"A\", \"B\""
        );
        assert_eq!(
            invalid_str(&Path::root(), "object", "msg").error_string(),
            "<nil>: Invalid value: \"object\": msg"
        );
        assert_eq!(
            invalid(&Path::new("a"), &Value::Null, "d").message,
            "Invalid value: \"null\": d"
        );
        assert_eq!(
            render(&json!({"b": 1, "a": "x"})),
            "map[string]interface {}{\"a\":\"x\", \"b\":1}"
        );
    }

    #[test]
    fn floats_print_like_go() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(100000.0), "100000");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(123456789.0), "1.23456789e+08");
    }

    #[test]
    fn aggregate_dedupes_and_brackets() {
        let a = required(&Path::new("a"), "");
        let b = required(&Path::new("b"), "");
        assert_eq!(aggregate(std::slice::from_ref(&a)), "a: Required value");
        assert_eq!(aggregate(&[a.clone(), b, a]), "[a: Required value, b: Required value]");
    }
}
