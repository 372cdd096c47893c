//! CEL for `x-kubernetes-validations`: one shared environment (the CEL standard library, the
//! strings extension and the Kubernetes libraries of [`super::cel_k8s`]), rule compilation
//! with an up-front check of every function a rule calls, and the schema-guided conversion of
//! JSON into CEL values that the API server does (`integer` → `int`, `number` → `double`,
//! `date-time` → `timestamp`, sets and map-lists compared without regard to order).
//!
//! Follows `k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel` (`compilation.go`,
//! `validation.go`) and `k8s.io/apiserver/pkg/cel` (`types.go`, the unstructured value model).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::common::traits::{Adder, Container, Indexer, Iterable, Sizer, Zeroer};
use cel::common::types::{
    CelBool, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp, Type,
};
use cel::common::value::{Builtin, BuiltinRef, Val};
use cel::{Context, Env, ExecutionError, Program};
use serde_json::Value;

use super::cel_k8s;

/// Every function a rule may call: the CEL standard library (spec "List of Standard
/// Definitions"), the macros, the optional library, cel-go's strings extension, and the
/// Kubernetes libraries. A rule calling anything else is refused when its CRD is loaded,
/// as kube-apiserver's type-check refuses an undeclared function. The test
/// `every_allowed_function_is_declared` proves each name really is callable.
pub const FUNCTIONS: &[&str] = &[
    // standard library
    "size",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "duration",
    "timestamp",
    "dyn",
    "type",
    "getFullYear",
    "getMonth",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    // macros
    "has",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    // optional library
    "optional.of",
    "optional.none",
    "optional.ofNonZeroValue",
    "orValue",
    "hasValue",
    "value",
    "or",
    // strings extension
    "charAt",
    "indexOf",
    "lastIndexOf",
    "join",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
    "format",
    "strings.quote",
    "reverse",
    // Kubernetes libraries (super::cel_k8s)
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    "ip",
    "isIP",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "ip.isCanonical",
    "cidr",
    "isCIDR",
    "prefixLength",
    "containsIP",
    "containsCIDR",
    "masked",
    "find",
    "findAll",
    "isSorted",
    "sum",
    "min",
    "max",
    "quantity",
    "isQuantity",
    "sign",
    "isInteger",
    "asInteger",
    "asApproximateFloat",
    "add",
    "sub",
    "isGreaterThan",
    "isLessThan",
    "compareTo",
    "format.named",
    "format.dns1123Label",
    "format.dns1123Subdomain",
    "format.dns1035Label",
    "format.qualifiedName",
    "format.labelValue",
    "format.uri",
    "format.uuid",
    "format.byte",
    "format.date",
    "format.datetime",
    "validate",
];

/// The shared environment. Building it costs tens of microseconds; compiled programs keep
/// a reference to it.
pub fn env() -> &'static Arc<Env> {
    static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
        // `Env::default()` without the crate's `regex` feature: `matches` is registered by
        // cel_k8s with RE2 semantics (ASCII `\d`, `\w`, `\s`) and a compiled-pattern cache.
        let mut env = Env::stdlib();
        let registered = env
            .add_extension(cel::extensions::strings)
            .map_err(|e| format!("{e:?}"))
            .and_then(|()| cel_k8s::register(&mut env));
        if let Err(e) = registered {
            // A declaration clash is a programming error in this file, found by the tests.
            tracing::error!(error = %e, "cannot build the CEL environment");
        }
        Arc::new(env)
    });
    &ENV
}

/// A compiled CEL expression with what it references.
#[derive(Clone)]
pub struct Compiled {
    /// The source text.
    pub source: String,
    program: Arc<Program>,
    /// Whether it reads `oldSelf` (a transition rule).
    pub uses_old_self: bool,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Compile `source`, refusing syntax errors, unknown variables and functions the simulator
/// does not implement.
pub fn compile(source: &str) -> Result<Compiled, String> {
    let program = stacker::maybe_grow(256 * 1024, 8 * 1024 * 1024, || env().compile(source))
        .map_err(|e| format!("compilation failed: {e}"))?;
    let mut refs = References::default();
    refs.walk(program.expression(), &mut Vec::new());
    let mut unknown: Vec<String> = refs
        .functions
        .into_iter()
        .filter(|f| !FUNCTIONS.contains(&f.as_str()))
        .collect();
    unknown.sort();
    unknown.dedup();
    if !unknown.is_empty() {
        return Err(format!(
            "compilation failed: undeclared reference to {} (the simulator's CEL library does not implement {})",
            unknown.iter().map(|f| format!("'{f}'")).collect::<Vec<_>>().join(", "),
            if unknown.len() == 1 { "it" } else { "them" }
        ));
    }
    if let Some(v) = refs
        .variables
        .iter()
        .find(|v| !matches!(v.as_str(), "self" | "oldSelf"))
    {
        return Err(format!("compilation failed: undeclared reference to '{v}'"));
    }
    Ok(Compiled {
        source: source.to_string(),
        uses_old_self: refs.variables.iter().any(|v| v == "oldSelf"),
        program: Arc::new(program),
    })
}

/// Type names an identifier may be (`type(x) == int`).
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

/// The free variables and the functions of an expression. Unlike the crate's own
/// `references()`, this knows comprehension variables (`x` in `self.all(x, ...)`) are bound,
/// and names namespaced functions (`format.named`) in full.
#[derive(Default)]
struct References {
    variables: Vec<String>,
    functions: Vec<String>,
}

impl References {
    fn walk(&mut self, e: &cel::IdedExpr, bound: &mut Vec<String>) {
        use cel::common::ast::{EntryExpr, Expr};
        match &e.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => {
                if !name.starts_with('@') && !bound.contains(name) && !TYPE_NAMES.contains(&name.as_str()) {
                    self.variables.push(name.clone());
                }
            }
            Expr::Call(call) => {
                // Operators appear under internal names (`_==_`, `@in`, `!_`): the parser only
                // produces ones that exist.
                let operator = call.func_name.starts_with(['_', '@', '!']);
                match call.target.as_deref() {
                    Some(cel::IdedExpr {
                        expr: Expr::Ident(ns), ..
                    }) if !bound.contains(ns) && FUNCTIONS.contains(&format!("{ns}.{}", call.func_name).as_str()) => {
                        self.functions.push(format!("{ns}.{}", call.func_name));
                    }
                    target => {
                        if !operator {
                            self.functions.push(call.func_name.clone());
                        }
                        if let Some(t) = target {
                            self.walk(t, bound);
                        }
                    }
                }
                for a in &call.args {
                    self.walk(a, bound);
                }
            }
            Expr::Comprehension(c) => {
                self.walk(&c.iter_range, bound);
                self.walk(&c.accu_init, bound);
                let before = bound.len();
                bound.push(c.iter_var.clone());
                if let Some(v2) = &c.iter_var2 {
                    bound.push(v2.clone());
                }
                bound.push(c.accu_var.clone());
                self.walk(&c.loop_cond, bound);
                self.walk(&c.loop_step, bound);
                self.walk(&c.result, bound);
                bound.truncate(before);
            }
            Expr::List(l) => l.elements.iter().for_each(|x| self.walk(x, bound)),
            Expr::Select(s) => self.walk(&s.operand, bound),
            Expr::Map(m) => {
                for entry in &m.entries {
                    match &entry.expr {
                        EntryExpr::StructField(f) => self.walk(&f.value, bound),
                        EntryExpr::MapEntry(me) => {
                            self.walk(&me.key, bound);
                            self.walk(&me.value, bound);
                        }
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    match &entry.expr {
                        EntryExpr::StructField(f) => self.walk(&f.value, bound),
                        EntryExpr::MapEntry(me) => {
                            self.walk(&me.key, bound);
                            self.walk(&me.value, bound);
                        }
                    }
                }
            }
        }
    }
}

/// What converting JSON to CEL values needs of a schema node. The structural schema implements
/// it (`schema.rs`, which compiles its rules here), so this module does not import it back.
pub trait Typing {
    /// `type`.
    fn type_name(&self) -> Option<&str>;
    /// `format`.
    fn format(&self) -> Option<&str>;
    /// `x-kubernetes-list-type`.
    fn list_type(&self) -> Option<&str>;
    /// `items`.
    fn items(&self) -> Option<&Self>;
    /// The schema of property `key` (`properties`, else `additionalProperties`).
    fn property(&self, key: &str) -> Option<&Self>;
}

/// What one evaluation produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The expression's value, as JSON (booleans for rules, strings for messages).
    Value(Value),
    /// A runtime error, in the API server's words (`no such key: x`).
    Error(String),
}

impl Compiled {
    /// Evaluate with `self` (and `oldSelf` when given) bound to schema-typed values.
    pub fn eval<S: Typing>(&self, schema: &S, this: &Value, old: Option<&Value>) -> Outcome {
        stacker::maybe_grow(256 * 1024, 8 * 1024 * 1024, || {
            let mut ctx = Context::with_env(env().clone());
            ctx.add_variable_as_val("self", to_val(this, Some(schema)));
            if let Some(old) = old {
                ctx.add_variable_as_val("oldSelf", to_val(old, Some(schema)));
            }
            match self.program.execute(&ctx) {
                Ok(v) => match v.json() {
                    Ok(j) => Outcome::Value(j),
                    Err(_) => Outcome::Error("the result is not a JSON value".into()),
                },
                Err(e) => Outcome::Error(error_text(&e)),
            }
        })
    }
}

/// An evaluation error as cel-go words it, where the API server shows it.
fn error_text(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::NoSuchOverload(o) => {
            format!("{o}: call arguments did not match a supported operator, function or macro signature")
        }
        other => other.to_string(),
    }
}

/// Convert JSON to a CEL value the way the API server's unstructured model does, guided by
/// the node's schema where there is one.
pub fn to_val<'v, S: Typing>(v: &'v Value, schema: Option<&S>) -> Box<dyn Val + 'v> {
    match v {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => {
            let as_double = schema.is_some_and(|s| s.type_name() == Some("number"));
            match n.as_i64() {
                Some(i) if !as_double => Box::new(CelInt::from(i)),
                _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(0.0))),
            }
        }
        Value::String(s) => {
            match schema.and_then(|s| s.format()) {
                Some("date-time" | "datetime") => {
                    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                        return Box::new(CelTimestamp::from(t));
                    }
                }
                Some("duration") => {
                    if let Some(d) = cel_k8s::parse_go_duration(s) {
                        return Box::new(CelDuration::from(d));
                    }
                }
                _ => {}
            }
            Box::new(CelString::from(s.as_str()))
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.items());
            let list: Vec<Box<dyn Val + 'v>> = items.iter().map(|i| to_val(i, item_schema)).collect();
            let unordered = schema
                .and_then(|s| s.list_type())
                .is_some_and(|t| t == "set" || t == "map");
            if unordered {
                Box::new(SetList(CelList::from(list)))
            } else {
                Box::new(CelList::from(list))
            }
        }
        Value::Object(map) => {
            let mut out: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = HashMap::with_capacity(map.len());
            for (k, child) in map {
                let child_schema = schema.and_then(|s| s.property(k));
                out.insert(CelMapKey::from(k.as_str()), to_val(child, child_schema));
            }
            Box::new(CelMap::from(out))
        }
    }
}

/// A list with `x-kubernetes-list-type: set` or `map`: kube-apiserver compares these
/// without regard to order (`k8s.io/apiserver/pkg/cel/common/values.go`, `unstructuredSetList`
/// and `unstructuredMapList`); everything else behaves as a CEL list.
#[derive(Debug, Clone)]
struct SetList<'v>(CelList<'v>);

static SET_LIST_TYPE: LazyLock<Type> = LazyLock::new(|| cel::common::types::LIST_TYPE.to_owned());

impl<'v> Val for SetList<'v> {
    fn get_type(&self) -> &Type {
        &SET_LIST_TYPE
    }

    fn cel_type() -> &'static Type {
        &SET_LIST_TYPE
    }

    fn as_adder<'b, 'w>(&'b self) -> Option<&'b (dyn Adder + 'w)>
    where
        Self: 'w,
    {
        self.0.as_adder()
    }

    fn as_container(&self) -> Option<&dyn Container> {
        self.0.as_container()
    }

    fn as_indexer<'b, 'w>(&'b self) -> Option<&'b (dyn Indexer + 'w)>
    where
        Self: 'w,
    {
        self.0.as_indexer()
    }

    fn into_indexer<'w>(self: Box<Self>) -> Option<Box<dyn Indexer + 'w>>
    where
        Self: 'w,
    {
        Box::new(self.0).into_indexer()
    }

    fn as_iterable<'b, 'w>(&'b self) -> Option<&'b (dyn Iterable + 'w)>
    where
        Self: 'w,
    {
        self.0.as_iterable()
    }

    fn as_sizer(&self) -> Option<&dyn Sizer> {
        self.0.as_sizer()
    }

    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        self.0.as_zeroer()
    }

    fn equals(&self, other: &dyn Val) -> bool {
        if other.get_type().kind() != cel::common::types::Kind::List {
            return false;
        }
        let Some(it) = other.as_iterable() else {
            return false;
        };
        let mut theirs = Vec::new();
        let mut iter = it.iter();
        while let Some(v) = iter.next() {
            theirs.push(v);
        }
        let ours = self.0.inner();
        ours.len() == theirs.len()
            && ours.iter().all(|a| theirs.iter().any(|b| a.equals(*b)))
            && theirs.iter().all(|b| ours.iter().any(|a| b.equals(a.as_ref())))
    }

    fn clone_as_boxed<'w>(&self) -> Box<dyn Val + 'w>
    where
        Self: 'w,
    {
        Box::new(self.clone())
    }

    fn as_builtin<'b, 'w>(&'b self) -> BuiltinRef<'b, 'w>
    where
        Self: 'w,
    {
        self.0.as_builtin()
    }

    fn into_builtin<'w>(self: Box<Self>) -> Option<Builtin<'w>>
    where
        Self: 'w,
    {
        Box::new(self.0).into_builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Raw JSON schemas, enough for these tests (the structural schema is tested with its
    /// own module and the validation).
    impl Typing for Value {
        fn type_name(&self) -> Option<&str> {
            self.get("type").and_then(Value::as_str)
        }
        fn format(&self) -> Option<&str> {
            self.get("format").and_then(Value::as_str)
        }
        fn list_type(&self) -> Option<&str> {
            self.get("x-kubernetes-list-type").and_then(Value::as_str)
        }
        fn items(&self) -> Option<&Self> {
            self.get("items")
        }
        fn property(&self, key: &str) -> Option<&Self> {
            self.get("properties")
                .and_then(|p| p.get(key))
                .or(self.get("additionalProperties"))
        }
    }

    fn schema(v: Value) -> Value {
        v
    }

    fn run(rule: &str, s: &Value, this: Value, old: Option<Value>) -> Outcome {
        compile(rule).expect("compiles").eval(s, &this, old.as_ref())
    }

    #[test]
    fn integers_stay_ints_and_numbers_become_doubles() {
        let s = schema(json!({"type": "object", "properties": {
            "i": {"type": "integer"}, "n": {"type": "number"}}}));
        assert_eq!(
            run("self.i + 1 == 4", &s, json!({"i": 3, "n": 1}), None),
            Outcome::Value(json!(true))
        );
        assert_eq!(
            run("self.n + 0.5 == 1.5", &s, json!({"i": 3, "n": 1}), None),
            Outcome::Value(json!(true))
        );
    }

    #[test]
    fn sets_compare_without_order_and_lists_with_it() {
        let set = schema(json!({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}));
        let atomic = schema(json!({"type": "array", "items": {"type": "string"}}));
        assert_eq!(
            run("self == oldSelf", &set, json!(["a", "b"]), Some(json!(["b", "a"]))),
            Outcome::Value(json!(true))
        );
        assert_eq!(
            run("self == oldSelf", &atomic, json!(["a", "b"]), Some(json!(["b", "a"]))),
            Outcome::Value(json!(false))
        );
        assert_eq!(
            run("self[0] == 'a' && size(self) == 2", &set, json!(["a", "b"]), None),
            Outcome::Value(json!(true))
        );
    }

    #[test]
    fn missing_keys_read_as_upstream_words_them() {
        let s = schema(json!({"type": "object", "properties": {"a": {"type": "string"}}}));
        assert_eq!(
            run("self.a == 'x'", &s, json!({}), None),
            Outcome::Error("no such key: a".into())
        );
        assert_eq!(run("!has(self.a)", &s, json!({}), None), Outcome::Value(json!(true)));
        assert_eq!(
            run("self.?a.orValue('d') == 'd'", &s, json!({}), None),
            Outcome::Value(json!(true))
        );
    }

    #[test]
    fn unknown_functions_are_refused_at_compile_time() {
        let e = compile("self.frobnicate() == 1").expect_err("refused");
        assert!(e.contains("'frobnicate'"), "{e}");
        assert!(compile("self.x ==").is_err());
        assert!(
            compile("self.all(x, x.startsWith('a'))")
                .expect("compiles")
                .source
                .contains("all")
        );
        assert!(compile("self == oldSelf").expect("compiles").uses_old_self);
    }

    #[test]
    fn date_time_strings_are_timestamps() {
        let s = schema(json!({"type": "object", "properties": {"t": {"type": "string", "format": "date-time"}}}));
        assert_eq!(
            run(
                "self.t > timestamp('2020-01-01T00:00:00Z')",
                &s,
                json!({"t": "2026-01-01T00:00:00Z"}),
                None
            ),
            Outcome::Value(json!(true))
        );
    }

    /// Every name of [`FUNCTIONS`] is really declared: an undeclared one fails at evaluation
    /// with "Undeclared reference", which none of these calls does.
    #[test]
    fn every_allowed_function_is_declared() {
        let calls: &[(&str, &str)] = &[
            ("size", "size('ab') == 2"),
            ("matches", "'ab'.matches('^a')"),
            ("contains", "'ab'.contains('b')"),
            ("startsWith", "'ab'.startsWith('a')"),
            ("endsWith", "'ab'.endsWith('b')"),
            ("int", "int('1') == 1"),
            ("uint", "uint(1) == 1u"),
            ("double", "double(1) == 1.0"),
            ("string", "string(1) == '1'"),
            ("bytes", "bytes('a') == b'a'"),
            ("bool", "bool('true')"),
            ("duration", "duration('1s') == duration('1000ms')"),
            (
                "timestamp",
                "timestamp('2020-01-01T00:00:00Z') < timestamp('2021-01-01T00:00:00Z')",
            ),
            ("dyn", "dyn(1) == 1"),
            ("type", "type(1) == int"),
            ("getFullYear", "timestamp('2020-01-01T00:00:00Z').getFullYear() == 2020"),
            ("getMonth", "timestamp('2020-01-01T00:00:00Z').getMonth() == 0"),
            ("getDate", "timestamp('2020-01-01T00:00:00Z').getDate() == 1"),
            (
                "getDayOfMonth",
                "timestamp('2020-01-01T00:00:00Z').getDayOfMonth() == 0",
            ),
            ("getDayOfWeek", "timestamp('2020-01-01T00:00:00Z').getDayOfWeek() == 3"),
            ("getDayOfYear", "timestamp('2020-01-01T00:00:00Z').getDayOfYear() == 0"),
            ("getHours", "timestamp('2020-01-01T00:00:00Z').getHours() == 0"),
            ("getMinutes", "duration('2m').getMinutes() == 2"),
            ("getSeconds", "duration('2m').getSeconds() == 120"),
            ("getMilliseconds", "duration('2s').getMilliseconds() == 2000"),
            ("has", "has({'a': 1}.a)"),
            ("all", "[1].all(x, x == 1)"),
            ("exists", "[1].exists(x, x == 1)"),
            ("exists_one", "[1].exists_one(x, x == 1)"),
            ("map", "[1].map(x, x + 1) == [2]"),
            ("filter", "[1, 2].filter(x, x > 1) == [2]"),
            ("optional.of", "optional.of(1).value() == 1"),
            ("optional.none", "!optional.none().hasValue()"),
            ("optional.ofNonZeroValue", "!optional.ofNonZeroValue(0).hasValue()"),
            ("orValue", "optional.none().orValue(1) == 1"),
            ("hasValue", "optional.of(1).hasValue()"),
            ("value", "optional.of(1).value() == 1"),
            ("or", "optional.none().or(optional.of(1)).value() == 1"),
            ("charAt", "'ab'.charAt(1) == 'b'"),
            ("indexOf", "'ab'.indexOf('b') == 1"),
            ("lastIndexOf", "'abb'.lastIndexOf('b') == 2"),
            ("join", "['a', 'b'].join('-') == 'a-b'"),
            ("lowerAscii", "'A'.lowerAscii() == 'a'"),
            ("upperAscii", "'a'.upperAscii() == 'A'"),
            ("trim", "' a '.trim() == 'a'"),
            ("replace", "'ab'.replace('b', 'c') == 'ac'"),
            ("split", "'a,b'.split(',') == ['a', 'b']"),
            ("substring", "'abc'.substring(1) == 'bc'"),
            ("format", "'%s'.format(['a']) == 'a'"),
            ("strings.quote", "strings.quote('a') == '\"a\"'"),
            ("reverse", "'ab'.reverse() == 'ba'"),
            ("url", "url('https://a.b/c').getHost() == 'a.b'"),
            ("isURL", "isURL('https://a.b')"),
            ("getScheme", "url('https://a.b').getScheme() == 'https'"),
            ("getHost", "url('https://a.b:1').getHost() == 'a.b:1'"),
            ("getHostname", "url('https://a.b:1').getHostname() == 'a.b'"),
            ("getPort", "url('https://a.b:1').getPort() == '1'"),
            (
                "getEscapedPath",
                "url('https://a.b/c%20d').getEscapedPath() == '/c%20d'",
            ),
            ("getQuery", "url('https://a.b/?x=1').getQuery() == {'x': ['1']}"),
            ("ip", "ip('10.0.0.1').family() == 4"),
            ("isIP", "isIP('::1')"),
            ("family", "ip('::1').family() == 6"),
            ("isUnspecified", "ip('0.0.0.0').isUnspecified()"),
            ("isLoopback", "ip('127.0.0.1').isLoopback()"),
            ("isLinkLocalMulticast", "ip('224.0.0.1').isLinkLocalMulticast()"),
            ("isLinkLocalUnicast", "ip('169.254.1.1').isLinkLocalUnicast()"),
            ("isGlobalUnicast", "ip('8.8.8.8').isGlobalUnicast()"),
            ("ip.isCanonical", "ip.isCanonical('10.0.0.1')"),
            ("cidr", "cidr('10.0.0.0/8').prefixLength() == 8"),
            ("isCIDR", "isCIDR('10.0.0.0/8')"),
            ("prefixLength", "cidr('fd00::/64').prefixLength() == 64"),
            ("containsIP", "cidr('10.0.0.0/8').containsIP(ip('10.1.2.3'))"),
            ("containsCIDR", "cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16')"),
            ("masked", "cidr('10.1.2.3/8').masked() == cidr('10.0.0.0/8')"),
            ("find", "'abc'.find('b.') == 'bc'"),
            ("findAll", "'a1b2'.findAll('[0-9]') == ['1', '2']"),
            ("isSorted", "[1, 2].isSorted()"),
            ("sum", "[1, 2].sum() == 3"),
            ("min", "[1, 2].min() == 1"),
            ("max", "[1, 2].max() == 2"),
            ("quantity", "quantity('1Gi').isGreaterThan(quantity('1G'))"),
            ("isQuantity", "isQuantity('8Gi')"),
            ("sign", "quantity('-1').sign() == -1"),
            ("isInteger", "quantity('1k').isInteger()"),
            ("asInteger", "quantity('1k').asInteger() == 1000"),
            ("asApproximateFloat", "quantity('500m').asApproximateFloat() == 0.5"),
            ("add", "quantity('1').add(2).asInteger() == 3"),
            ("sub", "quantity('3').sub(quantity('1')).asInteger() == 2"),
            ("isGreaterThan", "quantity('2').isGreaterThan(quantity('1'))"),
            ("isLessThan", "quantity('1').isLessThan(quantity('2'))"),
            ("compareTo", "quantity('1').compareTo(quantity('1')) == 0"),
            ("format.named", "format.named('dns1123Label').hasValue()"),
            ("format.dns1123Label", "!format.dns1123Label().validate('a').hasValue()"),
            (
                "format.dns1123Subdomain",
                "!format.dns1123Subdomain().validate('a.b').hasValue()",
            ),
            ("format.dns1035Label", "format.dns1035Label().validate('1a').hasValue()"),
            (
                "format.qualifiedName",
                "!format.qualifiedName().validate('a/b').hasValue()",
            ),
            ("format.labelValue", "!format.labelValue().validate('').hasValue()"),
            ("format.uri", "!format.uri().validate('https://a').hasValue()"),
            ("format.uuid", "format.uuid().validate('x').hasValue()"),
            ("format.byte", "!format.byte().validate('YQ==').hasValue()"),
            ("format.date", "!format.date().validate('2020-01-01').hasValue()"),
            (
                "format.datetime",
                "!format.datetime().validate('2020-01-01T00:00:00Z').hasValue()",
            ),
            ("validate", "format.uuid().validate('x').value().size() == 1"),
        ];
        for name in FUNCTIONS {
            let Some((_, expr)) = calls.iter().find(|(n, _)| n == name) else {
                panic!("no call for {name}");
            };
            let out = compile(expr)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .eval(&json!({}), &json!({}), None);
            assert_eq!(out, Outcome::Value(json!(true)), "{name}: {expr}");
        }
    }
}
