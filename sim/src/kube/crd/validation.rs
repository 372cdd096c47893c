//! What kube-apiserver does to a custom resource on its way in: pruning of unknown fields,
//! defaulting, OpenAPI schema validation, list-type invariants and the CEL rules, with
//! ratcheting on updates. Each step follows its upstream counterpart:
//! - pruning: `apiextensions-apiserver/pkg/apiserver/schema/pruning/algorithm.go` (`PruneWithOptions`),
//!   and `defaulting/prunenulls.go` (`PruneNonNullableNullsWithoutDefaults`);
//! - defaulting: `pkg/apiserver/schema/defaulting/algorithm.go` (`Default`);
//! - schema validation: `kube-openapi/pkg/validation/validate` through
//!   `pkg/apiserver/validation/validation.go` (`kubeOpenAPIResultToFieldErrors`), ratcheted by
//!   `pkg/apiserver/validation/ratcheting.go`;
//! - list types: `pkg/apiserver/schema/listtype/validation.go` (`ValidateListSetsAndMaps`);
//! - CEL: `pkg/apiserver/schema/cel/validation.go` (`Validate`), skipped after a blocking
//!   error as `pkg/registry/customresource/strategy.go` (`hasBlockingErr`) does.

use serde_json::{Map, Value};

use super::cel::Outcome;
use super::schema::{Checks, Rule, Schema};
use crate::kube::field::{self, Cause, ErrorType, Path};

/// The fields of `metadata` that survive pruning (`metav1.ObjectMeta`).
pub const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// The message of the error that replaces CEL when a blocking error was found.
pub const RULES_NOT_CHECKED: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// Errors and warnings of one validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Field errors: a non-empty list is a 422.
    pub errors: Vec<Cause>,
    /// Warnings (ratcheted CEL failures), sent as `Warning` headers.
    pub warnings: Vec<String>,
}

/// Which write is being validated.
#[derive(Debug, Clone, Copy)]
pub enum Write<'a> {
    /// POST (and an apply that creates).
    Create,
    /// PUT or PATCH of the main resource: `old` is the stored object.
    Update(&'a Value),
    /// PUT or PATCH of `/status`.
    Status(&'a Value),
}

// ---------------------------------------------------------------------------------------------
// Pruning and defaulting
// ---------------------------------------------------------------------------------------------

/// Drop every field the schema does not declare (outside `x-kubernetes-preserve-unknown-fields`)
/// and `metadata` fields `ObjectMeta` does not have. Returns the paths removed, sorted, as the
/// API server names them for `fieldValidation` (`spec.foo`, `metadata.bar`).
pub fn prune(obj: &mut Value, schema: &Schema) -> Vec<String> {
    let mut removed = Vec::new();
    if let Value::Object(m) = obj {
        prune_object(m, schema, &Path::root(), true, &mut removed);
    }
    removed.sort();
    removed
}

fn prune_meta(meta: &mut Value, path: &Path, removed: &mut Vec<String>) {
    if let Value::Object(m) = meta {
        m.retain(|k, _| {
            let keep = OBJECT_META_FIELDS.contains(&k.as_str());
            if !keep {
                removed.push(path.child(k).as_str().to_string());
            }
            keep
        });
    }
}

fn prune_object(m: &mut Map<String, Value>, s: &Schema, path: &Path, root: bool, removed: &mut Vec<String>) {
    let keep_meta = root || s.embedded_resource;
    // Nulls in non-nullable fields without a default go first (prunenulls.go).
    m.retain(|k, v| {
        !(v.is_null()
            && s.properties
                .get(k)
                .or(s.additional_properties.as_deref())
                .is_some_and(|p| !p.nullable && p.default.is_none()))
    });
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        let cpath = path.child(&k);
        if keep_meta && matches!(k.as_str(), "apiVersion" | "kind") {
            continue;
        }
        if keep_meta && k == "metadata" {
            if let Some(meta) = m.get_mut("metadata") {
                prune_meta(meta, &cpath, removed);
            }
            continue;
        }
        match s.child(&k) {
            Some(cs) => {
                if let Some(v) = m.get_mut(&k) {
                    prune_value(v, cs, &cpath, removed);
                }
            }
            None if s.preserve_unknown_fields => {}
            None => {
                m.remove(&k);
                removed.push(cpath.as_str().to_string());
            }
        }
    }
}

fn prune_value(v: &mut Value, s: &Schema, path: &Path, removed: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if s.properties.is_empty() && s.additional_properties.is_none() && !s.embedded_resource {
                // An object without declared fields keeps everything only under
                // preserve-unknown-fields; otherwise it is an empty object.
                if !s.preserve_unknown_fields {
                    for k in m.keys() {
                        removed.push(path.child(k).as_str().to_string());
                    }
                    m.clear();
                }
                return;
            }
            prune_object(m, s, path, false, removed);
        }
        Value::Array(items) => {
            if let Some(is) = s.items.as_deref() {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(item, is, &path.index(i), removed);
                }
            }
        }
        _ => {}
    }
}

/// Apply `default`s: a missing field (or a null one that is not nullable) whose schema has a
/// default gets a copy of it, and defaulting continues inside it.
pub fn default(obj: &mut Value, schema: &Schema) {
    match obj {
        Value::Object(m) => {
            for (k, ps) in &schema.properties {
                let Some(d) = &ps.default else { continue };
                let missing = match m.get(k) {
                    None => true,
                    Some(Value::Null) => !ps.nullable,
                    Some(_) => false,
                };
                if missing {
                    m.insert(k.clone(), d.clone());
                }
            }
            for (k, v) in m.iter_mut() {
                if let Some(cs) = schema.child(k) {
                    default(v, cs);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.items.as_deref() {
                for item in items {
                    default(item, is);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAPI schema validation
// ---------------------------------------------------------------------------------------------

/// The name kube-openapi gives a JSON value's type.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match (t, v) {
        ("object", Value::Object(_)) | ("array", Value::Array(_)) | ("string", Value::String(_)) => true,
        ("boolean", Value::Bool(_)) | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

fn number_text(f: f64) -> String {
    field::go_float(f)
}

/// A format check of `apiextensions-apiserver/pkg/apiserver/validation/formats.go`; formats
/// kube-apiserver does not check (`int32`, `int64`, ...) pass.
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "duration" => super::cel_k8s::parse_go_duration(s).is_some() || strfmt_duration(s),
        "uri" => super::cel_k8s::parse_url(s).is_ok(),
        "hostname" => hostname_ok(s),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => s
            .split_once('/')
            .is_some_and(|(a, b)| a.parse::<std::net::IpAddr>().is_ok() && b.parse::<u8>().is_ok()),
        "uuid" | "uuid3" | "uuid4" | "uuid5" => s.len() == 36 && uuid::Uuid::try_parse(s).is_ok(),
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        "email" => s.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.')),
        "mac" => {
            let parts: Vec<&str> = s.split([':', '-']).collect();
            parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok())
        }
        _ => true,
    }
}

/// strfmt's human durations (`3 days`, `1w`).
fn strfmt_duration(s: &str) -> bool {
    let t = s.trim();
    let n = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    n > 0 && {
        let unit = t[n..].trim();
        matches!(
            unit,
            "ns" | "us"
                | "µs"
                | "ms"
                | "s"
                | "m"
                | "h"
                | "d"
                | "w"
                | "sec"
                | "secs"
                | "second"
                | "seconds"
                | "min"
                | "mins"
                | "minute"
                | "minutes"
                | "hr"
                | "hrs"
                | "hour"
                | "hours"
                | "day"
                | "days"
                | "wk"
                | "wks"
                | "week"
                | "weeks"
        )
    }
}

/// strfmt's `IsHostname`.
fn hostname_ok(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    let labels: Vec<&str> = s.trim_end_matches('.').split('.').collect();
    labels.iter().all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    }) && (labels.len() == 1
        || labels
            .last()
            .is_some_and(|l| l.len() >= 2 && l.chars().all(char::is_alphabetic)))
}

struct Validator<'a> {
    errors: &'a mut Vec<Cause>,
    ratchet: bool,
}

impl Validator<'_> {
    /// `in body` message prefix: the path as kube-openapi names it.
    fn body(path: &Path) -> String {
        format!("{} in body", path.as_str())
    }

    fn checks(&mut self, v: &Value, c: &Checks, path: &Path) {
        if !c.enum_.is_empty() && !c.enum_.contains(v) {
            self.errors.push(field::not_supported(path, v, &c.enum_));
        }
        match v {
            Value::String(s) => {
                let len = s.chars().count() as i64;
                if let Some(max) = c.max_length
                    && len > max
                {
                    self.errors.push(field::too_long(path, max));
                }
                if let Some(min) = c.min_length
                    && len < min
                {
                    self.errors.push(field::invalid(
                        path,
                        v,
                        &format!("{} should be at least {min} chars long", Self::body(path)),
                    ));
                }
                if let Some((src, re)) = &c.pattern
                    && !re.is_match(s)
                {
                    self.errors.push(field::invalid(
                        path,
                        v,
                        &format!("{} should match '{src}'", Self::body(path)),
                    ));
                }
                if let Some(f) = &c.format
                    && !format_ok(f, s)
                {
                    self.errors.push(field::type_invalid(
                        path,
                        v,
                        &format!("{} must be of type {f}: {}", Self::body(path), field::go_quote(s)),
                    ));
                }
            }
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(0.0);
                if let Some(max) = c.maximum {
                    let bad = if c.exclusive_maximum { f >= max } else { f > max };
                    if bad {
                        let rel = if c.exclusive_maximum {
                            "less than"
                        } else {
                            "less than or equal to"
                        };
                        self.errors.push(field::invalid(
                            path,
                            v,
                            &format!("{} should be {rel} {}", Self::body(path), number_text(max)),
                        ));
                    }
                }
                if let Some(min) = c.minimum {
                    let bad = if c.exclusive_minimum { f <= min } else { f < min };
                    if bad {
                        let rel = if c.exclusive_minimum {
                            "greater than"
                        } else {
                            "greater than or equal to"
                        };
                        self.errors.push(field::invalid(
                            path,
                            v,
                            &format!("{} should be {rel} {}", Self::body(path), number_text(min)),
                        ));
                    }
                }
                if let Some(m) = c.multiple_of
                    && m != 0.0
                    && (f / m).fract() != 0.0
                {
                    self.errors.push(field::invalid(
                        path,
                        v,
                        &format!("{} should be a multiple of {}", Self::body(path), number_text(m)),
                    ));
                }
            }
            Value::Array(items) => {
                let n = items.len();
                if let Some(max) = c.max_items
                    && n as i64 > max
                {
                    self.errors.push(field::too_many(path, n, max));
                }
                if let Some(min) = c.min_items
                    && (n as i64) < min
                {
                    self.errors.push(field::invalid(
                        path,
                        &Value::from(n),
                        &format!("{} should have at least {min} items", Self::body(path)),
                    ));
                }
            }
            Value::Object(m) => {
                let n = m.len();
                if let Some(max) = c.max_properties
                    && n as i64 > max
                {
                    self.errors.push(field::too_many(path, n, max));
                }
                if let Some(min) = c.min_properties
                    && (n as i64) < min
                {
                    self.errors.push(field::invalid(
                        path,
                        &Value::from(n),
                        &format!("{} should have at least {min} properties", Self::body(path)),
                    ));
                }
            }
            _ => {}
        }
        self.junctors(v, c, path);
    }

    /// `allOf`, `anyOf`, `oneOf` and `not`: value validations of sub-schemas.
    fn junctors(&mut self, v: &Value, c: &Checks, path: &Path) {
        let passes = |sub: &Checks| {
            let mut errs = Vec::new();
            Validator {
                errors: &mut errs,
                ratchet: false,
            }
            .junctor_value(v, sub, path);
            errs
        };
        for sub in &c.all_of {
            let errs = passes(sub);
            self.errors.extend(errs);
        }
        if !c.any_of.is_empty() {
            let results: Vec<Vec<Cause>> = c.any_of.iter().map(passes).collect();
            if results.iter().all(|e| !e.is_empty()) {
                self.errors.push(field::invalid(
                    path,
                    v,
                    &format!("{} must validate at least one schema (anyOf)", Self::body(path)),
                ));
                if let Some(first) = results.into_iter().next() {
                    self.errors.extend(first);
                }
            }
        }
        if !c.one_of.is_empty() {
            let ok = c.one_of.iter().filter(|s| passes(s).is_empty()).count();
            if ok != 1 {
                self.errors.push(field::invalid(
                    path,
                    v,
                    &format!("{} must validate one and only one schema (oneOf)", Self::body(path)),
                ));
            }
        }
        if let Some(not) = &c.not
            && passes(not).is_empty()
        {
            self.errors.push(field::invalid(
                path,
                v,
                &format!("{} must not validate the schema (not)", Self::body(path)),
            ));
        }
    }

    fn junctor_value(&mut self, v: &Value, c: &Checks, path: &Path) {
        if let Some(t) = &c.type_
            && !type_matches(t, v)
        {
            self.errors.push(field::type_invalid(
                path,
                &Value::String(json_type(v).into()),
                &format!(
                    "{} must be of type {t}: {}",
                    Self::body(path),
                    field::go_quote(json_type(v))
                ),
            ));
            return;
        }
        self.checks(v, c, path);
        if let Value::Object(m) = v {
            for r in &c.required {
                if !m.contains_key(r) {
                    self.errors.push(field::required(&path.child(r), ""));
                }
            }
            for (k, cv) in m {
                if let Some(sub) = c.properties.get(k) {
                    self.junctor_value(cv, sub, &path.child(k));
                }
            }
        }
        if let (Value::Array(items), Some(sub)) = (v, c.items.as_deref()) {
            for (i, item) in items.iter().enumerate() {
                self.junctor_value(item, sub, &path.index(i));
            }
        }
    }

    fn node(&mut self, v: &Value, s: &Schema, old: Option<&Value>, path: &Path) {
        if self.ratchet && old == Some(v) {
            // Ratcheting: errors of a value that did not change are dropped.
            return;
        }
        if v.is_null() {
            if !s.nullable && s.type_.is_some() {
                let t = s.type_name();
                self.errors.push(field::type_invalid(
                    path,
                    &Value::String("null".into()),
                    &format!("{} must be of type {t}: \"null\"", Self::body(path)),
                ));
            }
            return;
        }
        if let Some(t) = &s.type_
            && !type_matches(t, v)
        {
            let actual = json_type(v);
            self.errors.push(field::type_invalid(
                path,
                &Value::String(actual.into()),
                &format!("{} must be of type {t}: {}", Self::body(path), field::go_quote(actual)),
            ));
            if !s.checks.enum_.is_empty() && !s.checks.enum_.contains(v) {
                self.errors.push(field::not_supported(path, v, &s.checks.enum_));
            }
            return;
        }
        self.checks(v, &s.checks, path);
        match v {
            Value::Object(m) => {
                let old_map = old.and_then(Value::as_object);
                for (k, cv) in m {
                    if let Some(cs) = s.child(k) {
                        self.node(cv, cs, old_map.and_then(|o| o.get(k)), &path.child(k));
                    }
                }
                for r in &s.checks.required {
                    if !m.contains_key(r) {
                        self.errors.push(field::required(&path.child(r), ""));
                    }
                }
            }
            Value::Array(items) => {
                if let Some(is) = s.items.as_deref() {
                    for (i, item) in items.iter().enumerate() {
                        let old_item = correlate_item(s, item, old);
                        self.node(item, is, old_item, &path.index(i));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The old value of a list item: by its keys in a `listType=map` list (the only items
/// ratcheting and transition rules correlate, besides set members equal to themselves).
fn correlate_item<'a>(s: &Schema, item: &Value, old: Option<&'a Value>) -> Option<&'a Value> {
    let old_items = old?.as_array()?;
    match s.list_type.as_deref() {
        Some("map") => old_items
            .iter()
            .find(|o| s.list_map_keys.iter().all(|k| o.get(k) == item.get(k))),
        Some("set") => old_items.iter().find(|o| *o == item),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// List types
// ---------------------------------------------------------------------------------------------

fn list_types(v: &Value, s: &Schema, path: &Path, errors: &mut Vec<Cause>) {
    match v {
        Value::Array(items) => {
            match s.list_type.as_deref() {
                Some("set") => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].contains(item) {
                            errors.push(field::duplicate(&path.index(i), item));
                        }
                    }
                }
                Some("map") => {
                    let key_of = |item: &Value| -> Value {
                        let mut m = Map::new();
                        for k in &s.list_map_keys {
                            m.insert(k.clone(), item.get(k).cloned().unwrap_or(Value::Null));
                        }
                        Value::Object(m)
                    };
                    for (i, item) in items.iter().enumerate() {
                        let key = key_of(item);
                        if items[..i].iter().any(|o| key_of(o) == key) {
                            errors.push(field::duplicate(&path.index(i), &key));
                        }
                    }
                }
                _ => {}
            }
            if let Some(is) = s.items.as_deref() {
                for (i, item) in items.iter().enumerate() {
                    list_types(item, is, &path.index(i), errors);
                }
            }
        }
        Value::Object(m) => {
            for (k, cv) in m {
                if let Some(cs) = s.child(k) {
                    list_types(cv, cs, &path.child(k), errors);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// CEL
// ---------------------------------------------------------------------------------------------

struct Cel<'a> {
    errors: &'a mut Vec<Cause>,
    warnings: &'a mut Vec<String>,
    ratchet: bool,
}

impl Cel<'_> {
    fn message(rule: &Rule, s: &Schema, v: &Value, old: Option<&Value>) -> String {
        if let Some(expr) = &rule.message_expression
            && let Outcome::Value(Value::String(m)) = expr.eval(s, v, old)
        {
            let m = m.trim();
            if !m.is_empty() && !m.contains('\n') {
                return m.to_string();
            }
        }
        match rule.message.as_deref().map(str::trim) {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => format!("failed rule: {}", rule.rule.source.trim()),
        }
    }

    fn node(&mut self, v: &Value, s: &Schema, old: Option<&Value>, path: &Path) {
        if v.is_null() {
            return;
        }
        let type_value = field::go_quote(s.type_name());
        for rule in &s.rules {
            if rule.rule.uses_old_self && old.is_none() && !rule.optional_old_self {
                continue;
            }
            let rpath = match &rule.field_path {
                Some(fp) if !fp.is_empty() => fp
                    .split('.')
                    .filter(|p| !p.is_empty())
                    .fold(path.clone(), |p, seg| p.child(seg)),
                _ => path.clone(),
            };
            let cause = match rule.rule.eval(s, v, old) {
                Outcome::Value(Value::Bool(true)) => continue,
                Outcome::Value(Value::Bool(false)) => {
                    let detail = Self::message(rule, s, v, old);
                    field::of_type(rule.reason.unwrap_or(ErrorType::Invalid), &rpath, &type_value, &detail)
                }
                Outcome::Value(_) => field::invalid_rendered(&rpath, &type_value, "rule did not evaluate to a bool"),
                Outcome::Error(e) => {
                    let what = match rule.message.as_deref().map(str::trim) {
                        Some(m) if !m.is_empty() => m.to_string(),
                        _ => rule.rule.source.trim().to_string(),
                    };
                    field::invalid_rendered(&rpath, &type_value, &format!("{e} evaluating rule: {what}"))
                }
            };
            if self.ratchet && !rule.rule.uses_old_self && old == Some(v) {
                self.warnings.push(cause.error_string());
            } else {
                self.errors.push(cause);
            }
        }
        match v {
            Value::Object(m) => {
                let old_map = old.and_then(Value::as_object);
                for (k, cv) in m {
                    if let Some(cs) = s.child(k) {
                        self.node(cv, cs, old_map.and_then(|o| o.get(k)), &path.child(k));
                    }
                }
            }
            Value::Array(items) => {
                if let Some(is) = s.items.as_deref() {
                    for (i, item) in items.iter().enumerate() {
                        self.node(item, is, correlate_item(s, item, old), &path.index(i));
                    }
                }
            }
            _ => {}
        }
    }
}

fn blocking(errors: &[Cause]) -> bool {
    errors.iter().any(|e| {
        [
            ErrorType::NotSupported,
            ErrorType::Required,
            ErrorType::TooLong,
            ErrorType::TooMany,
            ErrorType::TypeInvalid,
        ]
        .iter()
        .any(|t| t.reason() == e.reason)
    })
}

/// Validate a pruned, defaulted object against its version's schema, as the custom resource
/// strategy does for `write`.
pub fn validate(schema: &Schema, obj: &Value, write: Write<'_>) -> Report {
    let mut report = Report::default();
    let root = Path::root();
    match write {
        Write::Create | Write::Update(_) => {
            let old = match write {
                Write::Update(old) => Some(old),
                _ => None,
            };
            let mut v = Validator {
                errors: &mut report.errors,
                ratchet: old.is_some(),
            };
            v.node(obj, schema, old, &root);
        }
        Write::Status(old) => {
            if let (Some(status), Some(ss)) = (obj.get("status"), schema.properties.get("status")) {
                let mut v = Validator {
                    errors: &mut report.errors,
                    ratchet: false,
                };
                v.node(status, ss, None, &root.child("status"));
            }
            let _ = old;
        }
    }
    let old = match write {
        Write::Create => None,
        Write::Update(o) | Write::Status(o) => Some(o),
    };
    let old_list_errors = old.map(|o| {
        let mut e = Vec::new();
        list_types(o, schema, &root, &mut e);
        e
    });
    if old_list_errors.is_none_or(|e| e.is_empty()) {
        list_types(obj, schema, &root, &mut report.errors);
    }
    if schema.rule_count() > 0 {
        if blocking(&report.errors) {
            report
                .errors
                .push(field::invalid(&Path::root(), &Value::Null, RULES_NOT_CHECKED));
        } else {
            let mut cel = Cel {
                errors: &mut report.errors,
                warnings: &mut report.warnings,
                ratchet: matches!(write, Write::Update(_)),
            };
            cel.node(obj, schema, old, &root);
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hc_schema() -> Schema {
        Schema::parse(&json!({
            "type": "object",
            "x-kubernetes-validations": [{"rule": "!has(oldSelf.spec) || has(self.spec)", "message": "spec is required once set"}],
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                "spec": {"type": "object", "required": ["release"], "properties": {
                    "release": {"type": "string", "minLength": 1},
                    "replicas": {"type": "integer", "default": 2, "maximum": 5},
                    "mode": {"type": "string", "enum": ["A", "B"]},
                    "urls": {"type": "array", "maxItems": 1, "items": {"type": "string"},
                        "x-kubernetes-list-type": "set",
                        "x-kubernetes-validations": [
                            {"rule": "self == oldSelf", "message": "urls is immutable"},
                            {"rule": "self.all(u, u.startsWith('https://'))", "message": "https only"}]},
                    "sub": {"type": "object", "default": {}, "properties": {"x": {"type": "string", "default": "y"}}},
                    "prefix": {"type": "string", "x-kubernetes-validations": [{"rule": "self.matches('^[a-z]+$')", "message": "lower-case only"}]}
                }}
            }
        }))
        .expect("structural")
    }

    fn texts(r: &Report) -> Vec<String> {
        r.errors.iter().map(Cause::error_string).collect()
    }

    #[test]
    fn prunes_unknown_fields_and_reports_their_paths() {
        let s = hc_schema();
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "bogus": 1},
            "spec": {"release": "r", "extra": true, "sub": {"x": "a", "z": 1}}, "top": 1});
        let removed = prune(&mut obj, &s);
        assert_eq!(removed, ["metadata.bogus", "spec.extra", "spec.sub.z", "top"]);
        assert_eq!(obj["spec"], json!({"release": "r", "sub": {"x": "a"}}));
    }

    #[test]
    fn defaults_apply_inside_defaults() {
        let s = hc_schema();
        let mut obj = json!({"spec": {"release": "r"}});
        default(&mut obj, &s);
        assert_eq!(obj["spec"], json!({"release": "r", "replicas": 2, "sub": {"x": "y"}}));
    }

    #[test]
    fn schema_errors_read_as_kube_apiserver_writes_them() {
        let s = hc_schema();
        let r = validate(
            &s,
            &json!({"spec": {"replicas": 9, "mode": "C", "urls": ["https://a", "https://b"]}}),
            Write::Create,
        );
        let t = texts(&r);
        assert!(
            t.contains(
                &"spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 5".into()
            ),
            "{t:?}"
        );
        assert!(
            t.contains(&"spec.mode: Unsupported value: \"C\": supported values: \"A\", \"B\"".into()),
            "{t:?}"
        );
        assert!(
            t.contains(&"spec.urls: Too many: 2: must have at most 1 items".into()),
            "{t:?}"
        );
        assert!(t.contains(&"spec.release: Required value".into()), "{t:?}");
        // Required and TooMany block CEL.
        assert_eq!(
            t.last().map(String::as_str),
            Some(format!("<nil>: Invalid value: \"null\": {RULES_NOT_CHECKED}").as_str())
        );
    }

    #[test]
    fn cel_rules_and_transition_rules() {
        let s = hc_schema();
        let created = json!({"spec": {"release": "r", "urls": ["http://a"]}});
        let t = texts(&validate(&s, &created, Write::Create));
        assert_eq!(t, ["spec.urls: Invalid value: \"array\": https only"]);
        let old = json!({"spec": {"release": "r", "urls": ["https://a"]}});
        let new = json!({"spec": {"release": "r2", "urls": ["https://b"]}});
        let t = texts(&validate(&s, &new, Write::Update(&old)));
        assert_eq!(t, ["spec.urls: Invalid value: \"array\": urls is immutable"]);
        let t = texts(&validate(&s, &json!({}), Write::Update(&old)));
        assert_eq!(t, ["<nil>: Invalid value: \"object\": spec is required once set"]);
    }

    #[test]
    fn unchanged_invalid_values_ratchet() {
        let s = hc_schema();
        let old = json!({"spec": {"release": "r", "prefix": "@bad"}});
        let same = json!({"spec": {"release": "r2", "prefix": "@bad"}});
        let r = validate(&s, &same, Write::Update(&old));
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.warnings, ["spec.prefix: Invalid value: \"string\": lower-case only"]);
        let changed = json!({"spec": {"release": "r", "prefix": "@worse"}});
        assert_eq!(
            texts(&validate(&s, &changed, Write::Update(&old))),
            ["spec.prefix: Invalid value: \"string\": lower-case only"]
        );
    }

    #[test]
    fn status_writes_validate_status_and_run_rules_on_the_whole_object() {
        let s = Schema::parse(&json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"a": {"type": "string"}}},
            "status": {"type": "object", "properties": {"url": {"type": "string",
                "x-kubernetes-validations": [{"rule": "self.startsWith('s3://')", "message": "snapshotURL must be s3"}]}}}}}))
        .expect("structural");
        let old = json!({"spec": {"a": "x"}});
        let new = json!({"spec": {"a": "x"}, "status": {"url": "http://x"}});
        assert_eq!(
            texts(&validate(&s, &new, Write::Status(&old))),
            ["status.url: Invalid value: \"string\": snapshotURL must be s3"]
        );
    }

    #[test]
    fn duplicate_set_members_are_refused() {
        let s = hc_schema();
        let t = texts(&validate(
            &s,
            &json!({"spec": {"release": "r", "urls": ["https://a", "https://a"]}}),
            Write::Create,
        ));
        assert!(
            t.contains(&"spec.urls[1]: Duplicate value: \"https://a\"".into()),
            "{t:?}"
        );
    }
}
