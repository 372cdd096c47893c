//! `meta.k8s.io/v1 Table` responses for `kubectl get`.
//!
//! kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints the
//! server's columns. The simulator gives every kind `Name`, the kind's extra columns from the
//! registry (like a CRD's `additionalPrinterColumns`) and `Age`, computed the same way the
//! apiserver does (`duration.HumanDuration`).

use serde_json::{Value, json};

use super::registry::KindInfo;

/// Whether an `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .any(|part| part.contains("as=Table") && part.contains("g=meta.k8s.io"))
}

/// `includeObject` of a table request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object in rows.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parse the query parameter (absent = Metadata).
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Go's `duration.HumanDuration`, which kubectl shows in the AGE column.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[derive(Debug, PartialEq)]
enum Seg {
    Field(String),
    Index(usize),
    All,
    Filter {
        path: Vec<String>,
        negated: bool,
        value: String,
    },
}

fn parse_path(expr: &str) -> Option<Vec<Seg>> {
    let mut segs = Vec::new();
    let mut rest = expr.trim();
    rest = rest.strip_prefix('{').unwrap_or(rest);
    rest = rest.strip_suffix('}').unwrap_or(rest);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                segs.push(Seg::Field(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim();
            rest = &r[end + 1..];
            if inner == "*" {
                segs.push(Seg::All);
            } else if let Ok(i) = inner.parse::<usize>() {
                segs.push(Seg::Index(i));
            } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (lhs, negated, rhs) = if let Some((l, r)) = f.split_once("!=") {
                    (l, true, r)
                } else {
                    let (l, r) = f.split_once("==")?;
                    (l, false, r)
                };
                segs.push(Seg::Filter {
                    path: lhs.trim().split('.').map(str::to_string).collect(),
                    negated,
                    value: rhs.trim().trim_matches('"').trim_matches('\'').to_string(),
                });
            } else {
                return None;
            }
        } else {
            return None;
        }
    }
    Some(segs)
}

/// Evaluate a simple JSONPath (`.a.b`, `[0]`, `[*]`, `[?(@.k=="v")]`, `[?(@.k!="v")]`) and
/// return every match.
pub fn eval_path<'a>(obj: &'a Value, expr: &str) -> Vec<&'a Value> {
    let Some(segs) = parse_path(expr) else {
        return Vec::new();
    };
    let mut cur = vec![obj];
    for seg in &segs {
        let mut next = Vec::new();
        for v in cur {
            match seg {
                Seg::Field(f) => next.extend(v.get(f)),
                Seg::Index(i) => next.extend(v.get(*i)),
                Seg::All => {
                    if let Some(a) = v.as_array() {
                        next.extend(a.iter());
                    }
                }
                Seg::Filter { path, negated, value } => {
                    if let Some(a) = v.as_array() {
                        for e in a {
                            let mut f = Some(e);
                            for p in path {
                                f = f.and_then(|x| x.get(p));
                            }
                            let actual = match f {
                                Some(Value::String(s)) => Some(s.clone()),
                                Some(Value::Null) | None => None,
                                Some(other) => Some(other.to_string()),
                            };
                            let equal = actual.as_deref() == Some(value.as_str());
                            let keep = if *negated { actual.is_some() && !equal } else { equal };
                            if keep {
                                next.push(e);
                            }
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

fn cell(obj: &Value, path: &str, type_: &str) -> Value {
    match eval_path(obj, path).first() {
        None | Some(Value::Null) => Value::Null,
        Some(v) if type_ == "integer" || type_ == "number" || type_ == "boolean" => (*v).clone(),
        Some(Value::String(s)) => json!(s),
        Some(other) => json!(other.to_string()),
    }
}

fn age(obj: &Value) -> Value {
    obj.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds();
            json!(human_duration(secs))
        })
        .unwrap_or(Value::Null)
}

/// Build a Table from objects. `list_meta` is the list's metadata (resourceVersion, continue).
pub fn to_table(kind: &KindInfo, items: &[Value], list_meta: Value, include: IncludeObject) -> Value {
    let mut columns = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace.",
    })];
    for c in &kind.columns {
        columns.push(json!({
            "name": c.name, "type": c.type_, "format": "", "priority": c.priority,
            "description": format!("Custom resource definition column (in JSONPath format): {}", c.path),
        }));
    }
    columns.push(json!({
        "name": "Age", "type": "date", "format": "", "priority": 0,
        "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
    }));
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let mut cells = vec![obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            for c in &kind.columns {
                cells.push(cell(obj, &c.path, &c.type_));
            }
            cells.push(age(obj));
            let mut row = json!({"cells": cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    });
                }
                IncludeObject::Object => row["object"] = obj.clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_go() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn jsonpath_subset() {
        let o = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "Available", "status": "True", "message": "ok"}
        ], "history": [{"state": ""}, {"state": "Completed", "version": "4.17.0"}]}});
        assert_eq!(
            eval_path(&o, ".status.conditions[?(@.type==\"Available\")].status"),
            vec![&json!("True")]
        );
        assert_eq!(
            eval_path(&o, ".status.history[?(@.state!=\"\")].state"),
            vec![&json!("Completed")]
        );
        assert_eq!(eval_path(&o, ".status.conditions[0].type"), vec![&json!("Ready")]);
        assert_eq!(eval_path(&o, ".status.conditions[*].type").len(), 2);
        assert!(eval_path(&o, ".status.nope").is_empty());
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
