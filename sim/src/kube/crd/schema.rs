//! Structural schemas: a CRD version's `openAPIV3Schema`, parsed once, checked the way
//! `k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation` and
//! `pkg/apiserver/schema` (`NewStructural`, `ValidateStructural`) check it, with its CEL rules
//! compiled. Refusals name the field path inside the CRD, as kube-apiserver's do.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use super::cel::{self, Compiled, Typing};
use super::re2;
use crate::kube::field::{self, Cause, ErrorType, Path};

/// One `x-kubernetes-validations` rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The compiled `rule`.
    pub rule: Compiled,
    /// `message`.
    pub message: Option<String>,
    /// `messageExpression`, compiled.
    pub message_expression: Option<Compiled>,
    /// `reason` (the type of the field error).
    pub reason: Option<ErrorType>,
    /// `fieldPath` (relative, leading dot removed).
    pub field_path: Option<String>,
    /// `optionalOldSelf`.
    pub optional_old_self: bool,
}

/// Value validations that may also appear inside `allOf`/`anyOf`/`oneOf`/`not`.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// `enum`.
    pub enum_: Vec<Value>,
    /// `pattern`, as written and compiled with RE2 semantics.
    pub pattern: Option<(String, Regex)>,
    /// `format` (strings only).
    pub format: Option<String>,
    /// `maxLength`.
    pub max_length: Option<i64>,
    /// `minLength`.
    pub min_length: Option<i64>,
    /// `maxItems`.
    pub max_items: Option<i64>,
    /// `minItems`.
    pub min_items: Option<i64>,
    /// `uniqueItems`.
    pub unique_items: bool,
    /// `maxProperties`.
    pub max_properties: Option<i64>,
    /// `minProperties`.
    pub min_properties: Option<i64>,
    /// `maximum`.
    pub maximum: Option<f64>,
    /// `exclusiveMaximum`.
    pub exclusive_maximum: bool,
    /// `minimum`.
    pub minimum: Option<f64>,
    /// `exclusiveMinimum`.
    pub exclusive_minimum: bool,
    /// `multipleOf`.
    pub multiple_of: Option<f64>,
    /// `required`.
    pub required: Vec<String>,
    /// `type` inside a junctor (only for the int-or-string `anyOf`).
    pub type_: Option<String>,
    /// `properties` inside a junctor.
    pub properties: BTreeMap<String, Checks>,
    /// `items` inside a junctor.
    pub items: Option<Box<Checks>>,
    /// `allOf`.
    pub all_of: Vec<Checks>,
    /// `anyOf`.
    pub any_of: Vec<Checks>,
    /// `oneOf`.
    pub one_of: Vec<Checks>,
    /// `not`.
    pub not: Option<Box<Checks>>,
}

/// One node of a structural schema.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// `type`, absent only with `x-kubernetes-int-or-string` or
    /// `x-kubernetes-preserve-unknown-fields`.
    pub type_: Option<String>,
    /// `format`.
    pub format: Option<String>,
    /// `description` (for `kubectl explain`).
    pub description: Option<String>,
    /// `nullable`.
    pub nullable: bool,
    /// `default`.
    pub default: Option<Value>,
    /// `properties`.
    pub properties: BTreeMap<String, Schema>,
    /// `additionalProperties` as a schema (a map).
    pub additional_properties: Option<Box<Schema>>,
    /// `items`.
    pub items: Option<Box<Schema>>,
    /// `x-kubernetes-preserve-unknown-fields`.
    pub preserve_unknown_fields: bool,
    /// `x-kubernetes-embedded-resource`.
    pub embedded_resource: bool,
    /// `x-kubernetes-int-or-string`.
    pub int_or_string: bool,
    /// `x-kubernetes-list-type`.
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`.
    pub map_type: Option<String>,
    /// Value validations.
    pub checks: Checks,
    /// `x-kubernetes-validations`.
    pub rules: Vec<Rule>,
}

const ALLOWED_KEYS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "default",
    "example",
    "externalDocs",
    "properties",
    "additionalProperties",
    "items",
    "enum",
    "pattern",
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "multipleOf",
    "required",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

const TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean"];

struct Parser {
    causes: Vec<Cause>,
}

fn int_of(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

fn float_of(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

impl Parser {
    fn fail(&mut self, path: &Path, value: &Value, detail: &str) {
        self.causes.push(field::invalid(path, value, detail));
    }

    fn checks(&mut self, v: &Value, path: &Path) -> Checks {
        let mut c = Checks {
            enum_: v.get("enum").and_then(Value::as_array).cloned().unwrap_or_default(),
            format: v.get("format").and_then(Value::as_str).map(str::to_string),
            max_length: int_of(v, "maxLength"),
            min_length: int_of(v, "minLength"),
            max_items: int_of(v, "maxItems"),
            min_items: int_of(v, "minItems"),
            unique_items: v.get("uniqueItems").and_then(Value::as_bool).unwrap_or(false),
            max_properties: int_of(v, "maxProperties"),
            min_properties: int_of(v, "minProperties"),
            maximum: float_of(v, "maximum"),
            exclusive_maximum: v.get("exclusiveMaximum").and_then(Value::as_bool).unwrap_or(false),
            minimum: float_of(v, "minimum"),
            exclusive_minimum: v.get("exclusiveMinimum").and_then(Value::as_bool).unwrap_or(false),
            multiple_of: float_of(v, "multipleOf"),
            required: v
                .get("required")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            ..Checks::default()
        };
        if let Some(p) = v.get("pattern") {
            match p.as_str().map(|s| (s, re2::compile(s))) {
                Some((s, Ok(re))) => c.pattern = Some((s.to_string(), re)),
                Some((_, Err(e))) => self.fail(&path.child("pattern"), p, &e),
                None => self.fail(&path.child("pattern"), p, "must be a string"),
            }
        }
        if v.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
            self.causes.push(field::forbidden(
                &path.child("uniqueItems"),
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            ));
        }
        for (key, list) in [
            ("allOf", &mut c.all_of),
            ("anyOf", &mut c.any_of),
            ("oneOf", &mut c.one_of),
        ] {
            if let Some(items) = v.get(key).and_then(Value::as_array) {
                for (i, item) in items.iter().enumerate() {
                    list.push(self.junctor(item, &path.child(key).index(i)));
                }
            }
        }
        if let Some(n) = v.get("not") {
            c.not = Some(Box::new(self.junctor(n, &path.child("not"))));
        }
        c
    }

    /// A schema under a junctor: value validations only (`type` only for int-or-string).
    fn junctor(&mut self, v: &Value, path: &Path) -> Checks {
        let mut c = self.checks(v, path);
        c.type_ = v.get("type").and_then(Value::as_str).map(str::to_string);
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                let child = self.junctor(p, &path.child("properties").key(k));
                c.properties.insert(k.clone(), child);
            }
        }
        if let Some(items) = v.get("items") {
            c.items = Some(Box::new(self.junctor(items, &path.child("items"))));
        }
        for key in ["default", "description", "nullable", "additionalProperties"] {
            if v.get(key).is_some() {
                self.causes
                    .push(field::forbidden(&path.child(key), "must be empty to be structural"));
            }
        }
        if v.get("x-kubernetes-validations").is_some() {
            self.causes.push(field::forbidden(
                &path.child("x-kubernetes-validations"),
                "the simulator does not evaluate x-kubernetes-validations inside allOf, anyOf, oneOf or not",
            ));
        }
        c
    }

    fn rules(&mut self, v: &Value, path: &Path) -> Vec<Rule> {
        let Some(list) = v.get("x-kubernetes-validations") else {
            return Vec::new();
        };
        let rpath = path.child("x-kubernetes-validations");
        let Some(list) = list.as_array() else {
            self.fail(&rpath, list, "must be a list");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let ipath = rpath.index(i);
            let Some(src) = r.get("rule").and_then(Value::as_str) else {
                self.causes.push(field::required(&ipath.child("rule"), ""));
                continue;
            };
            let compiled = match cel::compile(src) {
                Ok(c) => c,
                Err(e) => {
                    self.causes.push(field::invalid_str(&ipath.child("rule"), src, &e));
                    continue;
                }
            };
            let message_expression = match r.get("messageExpression").and_then(Value::as_str) {
                None => None,
                Some(m) => match cel::compile(m) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        self.causes
                            .push(field::invalid_str(&ipath.child("messageExpression"), m, &e));
                        continue;
                    }
                },
            };
            let reason = match r.get("reason").and_then(Value::as_str) {
                None => None,
                Some(reason) => match ErrorType::from_rule_reason(reason) {
                    Some(t) => Some(t),
                    None => {
                        self.causes.push(field::not_supported(
                            &ipath.child("reason"),
                            &Value::String(reason.into()),
                            &[
                                "FieldValueInvalid".into(),
                                "FieldValueForbidden".into(),
                                "FieldValueRequired".into(),
                                "FieldValueDuplicate".into(),
                            ],
                        ));
                        continue;
                    }
                },
            };
            let optional_old_self = r.get("optionalOldSelf").and_then(Value::as_bool).unwrap_or(false);
            if optional_old_self && !compiled.uses_old_self {
                self.causes.push(field::invalid(
                    &ipath.child("optionalOldSelf"),
                    &Value::Bool(true),
                    "may not be set if oldSelf is not used in rule",
                ));
            }
            out.push(Rule {
                rule: compiled,
                message: r.get("message").and_then(Value::as_str).map(str::to_string),
                message_expression,
                reason,
                field_path: r
                    .get("fieldPath")
                    .and_then(Value::as_str)
                    .map(|p| p.trim_start_matches('.').to_string()),
                optional_old_self,
            });
        }
        out
    }

    fn node(&mut self, v: &Value, path: &Path, under_preserve: bool) -> Schema {
        let Some(obj) = v.as_object() else {
            self.fail(path, v, "must be an object");
            return Schema::default();
        };
        for k in obj.keys() {
            if !ALLOWED_KEYS.contains(&k.as_str()) {
                self.causes
                    .push(field::forbidden(&path.child(k), "must not be used in a schema"));
            }
        }
        let type_ = v.get("type").and_then(Value::as_str).map(str::to_string);
        if let Some(t) = &type_
            && !TYPES.contains(&t.as_str())
        {
            self.causes.push(field::not_supported(
                &path.child("type"),
                &Value::String(t.clone()),
                &TYPES.iter().map(|t| Value::String((*t).into())).collect::<Vec<_>>(),
            ));
        }
        let preserve = v.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
        let int_or_string = v.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
        let embedded = v.get("x-kubernetes-embedded-resource").and_then(Value::as_bool) == Some(true);
        if type_.is_none() && !int_or_string && !preserve && !under_preserve {
            self.causes.push(field::required(
                &path.child("type"),
                "must not be empty for specified object fields",
            ));
        }
        let mut s = Schema {
            format: v.get("format").and_then(Value::as_str).map(str::to_string),
            description: v.get("description").and_then(Value::as_str).map(str::to_string),
            nullable: v.get("nullable").and_then(Value::as_bool).unwrap_or(false),
            default: v.get("default").cloned(),
            preserve_unknown_fields: preserve,
            embedded_resource: embedded,
            int_or_string,
            list_type: v
                .get("x-kubernetes-list-type")
                .and_then(Value::as_str)
                .map(str::to_string),
            list_map_keys: v
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            map_type: v
                .get("x-kubernetes-map-type")
                .and_then(Value::as_str)
                .map(str::to_string),
            checks: self.checks(v, path),
            rules: self.rules(v, path),
            type_,
            ..Schema::default()
        };
        let child_preserve = under_preserve || preserve;
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                let child = self.node(p, &path.child("properties").key(k), child_preserve);
                s.properties.insert(k.clone(), child);
            }
        }
        match v.get("additionalProperties") {
            None | Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => {
                self.causes.push(field::forbidden(
                    &path.child("additionalProperties"),
                    "must not be false to be structural",
                ));
            }
            Some(ap) => {
                if !s.properties.is_empty() {
                    self.causes.push(field::forbidden(
                        &path.child("additionalProperties"),
                        "additionalProperties and properties are mutual exclusive",
                    ));
                }
                s.additional_properties = Some(Box::new(self.node(
                    ap,
                    &path.child("additionalProperties"),
                    child_preserve,
                )));
            }
        }
        if let Some(items) = v.get("items") {
            s.items = Some(Box::new(self.node(items, &path.child("items"), child_preserve)));
        } else if s.type_.as_deref() == Some("array") {
            self.causes
                .push(field::required(&path.child("items"), "must be specified"));
        }
        if let Some(lt) = &s.list_type {
            if !matches!(lt.as_str(), "atomic" | "set" | "map") {
                self.causes.push(field::not_supported(
                    &path.child("x-kubernetes-list-type"),
                    &Value::String(lt.clone()),
                    &["atomic".into(), "set".into(), "map".into()],
                ));
            }
            if lt == "map" && s.list_map_keys.is_empty() {
                self.causes.push(field::required(
                    &path.child("x-kubernetes-list-map-keys"),
                    "must not be empty if x-kubernetes-list-type is map",
                ));
            }
        }
        s
    }
}

impl Schema {
    /// Parse and check a schema (the root of a version's `openAPIV3Schema`), collecting every
    /// problem with its path below `openAPIV3Schema`.
    pub fn parse_at(v: &Value, path: &Path) -> Result<Schema, Vec<Cause>> {
        let mut p = Parser { causes: Vec::new() };
        let s = p.node(v, path, false);
        if p.causes.is_empty() { Ok(s) } else { Err(p.causes) }
    }

    /// [`Schema::parse_at`] the root.
    pub fn parse(v: &Value) -> Result<Schema, Vec<Cause>> {
        Self::parse_at(v, &Path::root())
    }

    /// The schema of a child value: a property, or the `additionalProperties` schema.
    pub fn child(&self, key: &str) -> Option<&Schema> {
        self.properties.get(key).or(self.additional_properties.as_deref())
    }

    /// Whether unknown fields below this node are kept (`x-kubernetes-preserve-unknown-fields`).
    pub fn keeps_unknown(&self) -> bool {
        self.preserve_unknown_fields
    }

    /// The type name kube-apiserver shows for a CEL failure at this node (`"object"`, ...):
    /// empty for int-or-string and untyped nodes.
    pub fn type_name(&self) -> &str {
        self.type_.as_deref().unwrap_or("")
    }

    /// The number of `x-kubernetes-validations` rules in the whole schema.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
            + self.properties.values().map(Schema::rule_count).sum::<usize>()
            + self.additional_properties.as_deref().map_or(0, Schema::rule_count)
            + self.items.as_deref().map_or(0, Schema::rule_count)
    }
}

impl Typing for Schema {
    fn type_name(&self) -> Option<&str> {
        self.type_.as_deref()
    }
    fn format(&self) -> Option<&str> {
        self.format.as_deref()
    }
    fn list_type(&self) -> Option<&str> {
        self.list_type.as_deref()
    }
    fn items(&self) -> Option<&Self> {
        self.items.as_deref()
    }
    fn property(&self, key: &str) -> Option<&Self> {
        self.properties.get(key).or(self.additional_properties.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_structural_schema_with_rules() {
        let s = Schema::parse(&json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "urls": {"type": "array", "items": {"type": "string"}, "maxItems": 1,
                        "x-kubernetes-list-type": "set",
                        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}]},
                    "size": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true}
                }}
            }
        }))
        .expect("structural");
        assert_eq!(s.rule_count(), 1);
        let urls = &s.properties["spec"].properties["urls"];
        assert_eq!(urls.list_type.as_deref(), Some("set"));
        assert!(urls.rules[0].rule.uses_old_self);
        assert_eq!(s.properties["spec"].properties["size"].checks.any_of.len(), 2);
    }

    #[test]
    fn refuses_non_structural_schemas_with_their_paths() {
        let causes = Schema::parse_at(
            &json!({"type": "object", "properties": {"a": {"properties": {}}, "b": {"type": "array"}}}),
            &Path::new("spec.versions[0].schema.openAPIV3Schema"),
        )
        .expect_err("not structural");
        let text: Vec<String> = causes.iter().map(Cause::error_string).collect();
        assert!(
            text.contains(
                &"spec.versions[0].schema.openAPIV3Schema.properties[a].type: Required value: must not be empty for specified object fields"
                    .to_string()
            ),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("properties[b].items: Required value")),
            "{text:?}"
        );
    }

    #[test]
    fn refuses_rules_with_unknown_functions() {
        let causes = Schema::parse(&json!({"type": "string",
            "x-kubernetes-validations": [{"rule": "self.frob()"}]}))
        .expect_err("refused");
        assert!(
            causes[0].field.ends_with("x-kubernetes-validations[0].rule"),
            "{causes:?}"
        );
        assert!(causes[0].message.contains("'frob'"), "{causes:?}");
    }
}
