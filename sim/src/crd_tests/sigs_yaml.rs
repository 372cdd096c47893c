//! YAML read as HyperShift's CRD-suite harness reads it: `sigs.k8s.io/yaml` over go-yaml v2.
//!
//! Upstream's harness (openshift/hypershift `test/envtest/generator.go`) reads a suite file with
//! `sigs.k8s.io/yaml.Unmarshal(raw, &SuiteSpec{})` (`loadSuiteFile`) and every object of a case
//! with `k8s.io/apimachinery/pkg/util/yaml.Unmarshal(raw, &u.Object)` (`newUnstructuredFrom`),
//! which is the same `sigs.k8s.io/yaml.Unmarshal` into a `map[string]interface{}` with
//! `json.Decoder.UseNumber` and then `ConvertMapNumbers` (every number an `int64` when its JSON
//! text is an integer that fits, else a `float64`).
//!
//! `sigs.k8s.io/yaml.Unmarshal` (`yaml.go`: `Unmarshal` → `unmarshal` → `yamlToJSONTarget`) is
//! three steps, each modelled here:
//!
//! 1. go-yaml v2's non-strict `yaml.Unmarshal` into an `interface{}`: `go.yaml.in/yaml/v2` from
//!    sigs.k8s.io/yaml v1.5 on, the vendored copy `sigs.k8s.io/yaml/goyaml.v2` in v1.4 (both are
//!    gopkg.in/yaml.v2 v2.4). YAML 1.1 resolution of plain scalars, keys included (`resolve.go`,
//!    `resolve`): `y`, `yes`, `on`, `true` and `n`, `no`, `off`, `false` are booleans (`Y`, `Yes`,
//!    `YES` and so on too, but `yEs` is a string), `~`, `null` and the empty scalar are null,
//!    `017` is octal, `0x1F`/`0o17`/`0b101` are integers, `_` is dropped from numbers, `.5`/`1e3`
//!    are floats, a date stays a string; quoted and block scalars are strings. The LAST of
//!    duplicate mapping keys wins without an error (`decode.go`, `setMapIndex` errors only under
//!    `UnmarshalStrict`); keys are equal when their resolved values are (`0x1` and `1`). A `<<`
//!    merge sets every merged key over the ones before it (`decode.go`, `merge`). Only the first
//!    document is read.
//! 2. `convertToJSONableObject`: every mapping key becomes a string (`true`, `1`, a float as
//!    `strconv.FormatFloat(f, 'g', -1, 32)`; a null or `uint64` key is an error); a number or boolean headed
//!    for a Go `string` field of the target becomes its text; then `json.Marshal` (NaN and
//!    infinities are errors there).
//! 3. `encoding/json` decodes that JSON into the target: a key fills the field whose JSON name it
//!    equals, else the first one it equals case-insensitively (Unicode simple folding: `ſ` is an
//!    `s`, the Kelvin sign a `k`); keys come in sorted order, so of `Name` and `name` the latter
//!    wins; unknown keys are ignored; JSON `null` leaves a string or struct as it was and makes a
//!    slice nil; a struct decoded over an existing one (a second key for the same field, or an
//!    array element over an earlier element of the same slice) only overwrites the keys it has.
//!
//! Parsing is granit-parser's (the YAML parser under serde-saphyr), set to read as libyaml
//! does where the two differ (a block scalar ending the input without a line break, a BOM inside
//! a document).

use std::collections::HashMap;
use std::sync::LazyLock;

use anyhow::{anyhow, bail};
use base64::Engine as _;
use granit_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

/// A Go type step 3 decodes into (`json:"..."` names as the Go struct tags give them).
#[derive(Debug, Clone, Copy)]
pub(crate) enum GoType {
    /// `string`.
    String,
    /// `interface{}` or `*interface{}`: any value, numbers as `float64`.
    Interface,
    /// `[]T`.
    Slice(&'static GoType),
    /// A struct: its fields' JSON names and types, in declaration order.
    Struct(&'static [(&'static str, GoType)]),
}

/// `sigs.k8s.io/yaml.Unmarshal(text, &v)` for `v` of struct type `ty`: the resulting Go value as
/// JSON, every field present under its JSON name (a nil slice or `interface{}` as `null`).
pub(crate) fn unmarshal_struct(text: &str, ty: GoType) -> anyhow::Result<Value> {
    let yaml = first_document(text)?;
    let json = to_json(&yaml, Some(ty)).map_err(|e| anyhow!("error converting YAML to JSON: {e}"))?;
    let mut v = zero(ty);
    decode_json(ty, &mut v, &json, "").map_err(|e| anyhow!("error unmarshaling JSON: {e}"))?;
    Ok(go_to_json(ty, &v))
}

/// `k8s.io/apimachinery/pkg/util/yaml.Unmarshal(text, &map[string]interface{})`, as
/// `newUnstructuredFrom` reads a case's object: `null` (an empty text) is an empty map; numbers
/// are `int64` when their JSON text is an integer that fits, else `float64` (`ConvertMapNumbers`).
pub(crate) fn unmarshal_object(text: &str) -> anyhow::Result<Map<String, Value>> {
    let yaml = first_document(text)?;
    let json = to_json(&yaml, None).map_err(|e| anyhow!("error converting YAML to JSON: {e}"))?;
    match json {
        Value::Null => Ok(Map::new()),
        Value::Object(mut m) => {
            for v in m.values_mut() {
                convert_numbers(v);
            }
            Ok(m)
        }
        other => bail!(
            "error unmarshaling JSON: cannot unmarshal {} into Go value of type map[string]interface {{}}: \
             the object must be a YAML mapping",
            json_kind(&other)
        ),
    }
}

/// A number as `encoding/json` with `UseNumber` then `ConvertNumber` leaves it: an integer
/// when Go's `json.Marshal` wrote it as one that fits an `int64`, else a `float64`. Go writes a
/// float64 with no fraction below 1e21 as plain digits, so an integral float in the `int64`
/// range becomes an integer.
pub(crate) fn convert_numbers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if n.as_i64().is_some() {
                return;
            }
            let f = n.as_f64().unwrap_or(0.0);
            *v = if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                // In range and integral: the cast is exact.
                Value::Number(Number::from(f as i64))
            } else {
                Number::from_f64(f).map_or(Value::Null, Value::Number)
            };
        }
        Value::Array(items) => items.iter_mut().for_each(convert_numbers),
        Value::Object(m) => m.values_mut().for_each(convert_numbers),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Step 1: go-yaml v2 into interface{}.

const TAG_STR: &str = "tag:yaml.org,2002:str";
const TAG_BOOL: &str = "tag:yaml.org,2002:bool";
const TAG_INT: &str = "tag:yaml.org,2002:int";
const TAG_FLOAT: &str = "tag:yaml.org,2002:float";
const TAG_NULL: &str = "tag:yaml.org,2002:null";
const TAG_TIMESTAMP: &str = "tag:yaml.org,2002:timestamp";
const TAG_BINARY: &str = "tag:yaml.org,2002:binary";
const TAG_MERGE: &str = "tag:yaml.org,2002:merge";

/// A value as go-yaml v2 decodes it into an `interface{}`.
#[derive(Debug, Clone)]
enum Go {
    Null,
    Bool(bool),
    /// `int` (64-bit).
    Int(i64),
    /// `uint64`: an integer above `int64`'s range.
    Uint(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Go>),
    /// `map[interface{}]interface{}`, in the order keys were first set.
    Map(Vec<(Go, Go)>),
}

/// A node of the document (go-yaml v2 `decode.go`, `node`).
enum Node {
    /// `tag` is the full tag (`tag:yaml.org,2002:int`, `!local`, `!` for the non-specific one),
    /// empty when there is none; `plain` for an unquoted flow scalar.
    Scalar {
        value: String,
        tag: String,
        plain: bool,
    },
    Seq(Vec<usize>),
    /// Keys and values, alternating.
    Map(Vec<usize>),
    /// An alias of the node at this index.
    Alias(usize),
}

/// The first document of `text` decoded as go-yaml v2 decodes into an `interface{}`; `Null` for
/// a text with no document (`yaml.Unmarshal` then leaves its target as it was).
fn first_document(text: &str) -> anyhow::Result<Go> {
    let (nodes, root) = parse(text)?;
    let Some(root) = root else {
        return Ok(Go::Null);
    };
    let mut d = Decoder {
        nodes: &nodes,
        active_aliases: Vec::new(),
        decode_count: 0,
        alias_count: 0,
        alias_depth: 0,
    };
    d.count()
        .and_then(|()| d.unmarshal(root)) // the document node, then its content
        .map_err(|e| anyhow!("error converting YAML to JSON: yaml: {e}"))
}

/// The node tree of the first document, parsed as libyaml (go-yaml v2's parser, a YAML 1.1
/// one) parses it where granit-parser (YAML 1.2) differs in ways a suite could meet:
/// - NEL (U+0085) is a line break;
/// - in a double-quoted scalar `\'` is an escaped `'` and `\/` is an error;
/// - an alias name is `[0-9A-Za-z_-]+`, so `*a: b` is the alias `a` as a key;
/// - a `%YAML` directive must say 1.1.
///
/// NEL is replaced before parsing; when granit-parser stops at an unknown escape `\'` or at
/// an alias `*a:` (to it, an anchor named `a:`), that spot is rewritten (`'`, `*a :`) and the
/// text read again; `\/` and another `%YAML` version are refused. Left as they are: libyaml
/// also refuses anchor names outside `[0-9A-Za-z_-]`, tabs in some indentation and a lone
/// `...`, and reads U+2028/U+2029 as line breaks; granit-parser refuses a plain `-` right
/// before a flow indicator (`[-]`), which libyaml reads.
fn parse(text: &str) -> anyhow::Result<(Vec<Node>, Option<usize>)> {
    let mut text = text.replace('\u{85}', "\n");
    // Each round fixes one spot, so a text with a thousand of them is refused.
    for _ in 0..1000 {
        match parse_once(&text) {
            Ok(tree) => return Ok(tree),
            Err(ParseError::Scan(e)) => match libyaml_reading(&text, &e) {
                Some(fixed) => text = fixed,
                None => return Err(anyhow!("error converting YAML to JSON: yaml: {e}")),
            },
            Err(ParseError::Other(e)) => return Err(anyhow!("error converting YAML to JSON: yaml: {e}")),
        }
    }
    bail!("error converting YAML to JSON: yaml: too many YAML 1.1 constructs to read (`\\'` escapes, `*alias:` keys)")
}

enum ParseError {
    Scan(granit_parser::ScanError),
    Other(String),
}

/// `text` changed so that granit-parser reads what libyaml reads where it reported `e`, if `e`
/// is one of the differences [`parse`] bridges.
fn libyaml_reading(text: &str, e: &granit_parser::ScanError) -> Option<String> {
    let at = e.marker().byte_offset()?;
    match e.kind() {
        // At the `*` of `*a:` (an unknown anchor `a:`, or no `:` after the key `*a:`).
        granit_parser::ErrorKind::UnknownAnchor | granit_parser::ErrorKind::SimpleKeyExpected => {
            let name_len = text
                .get(at + 1..)?
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
                .count();
            let colon = at + 1 + name_len;
            (text.as_bytes().get(at) == Some(&b'*') && name_len > 0 && text.as_bytes().get(colon) == Some(&b':'))
                .then(|| format!("{} {}", &text[..colon], &text[colon..]))
        }
        granit_parser::ErrorKind::UnknownQuotedScalarEscape => {
            // `at` is the opening quote: find the first `\'` before the closing one.
            let scalar = text.get(at..)?;
            let mut chars = scalar.char_indices().skip(1);
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => return None,
                    '\\' => {
                        if let Some((_, '\'')) = chars.next() {
                            return Some(format!("{}{}", &text[..at + i], &text[at + i + 1..]));
                        }
                    }
                    _ => {}
                }
            }
            None
        }
        _ => None,
    }
}

/// Whether the source of a double-quoted scalar has the `\/` escape, which YAML 1.1 lacks.
fn has_slash_escape(source: &str) -> bool {
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.next() == Some('/') {
            return true;
        }
    }
    false
}

fn parse_once(text: &str) -> Result<(Vec<Node>, Option<usize>), ParseError> {
    let mut options = granit_parser::Options::default();
    options.block_scalar_eof_without_line_feed = true;
    options.bom_inside_document_as_content = true;
    options.set_emit_comments(false);
    let mut nodes: Vec<Node> = Vec::new();
    let mut anchors: HashMap<usize, usize> = HashMap::new();
    let mut open: Vec<usize> = Vec::new();
    let mut root = None;
    for event in Parser::new_from_str_with_options(text, options) {
        let (event, span) = event.map_err(ParseError::Scan)?;
        let (node, anchor, opens) = match event {
            Event::DocumentStart(_, Some(v)) if (v.major, v.minor) != (1, 1) => {
                return Err(ParseError::Other(format!(
                    "found incompatible YAML document: %YAML {}.{} (go-yaml v2 reads YAML 1.1)",
                    v.major, v.minor
                )));
            }
            Event::DocumentEnd | Event::StreamEnd => break,
            Event::Scalar(value, style, anchor, tag) => {
                if style == ScalarStyle::DoubleQuoted
                    && span
                        .byte_range()
                        .and_then(|r| text.get(r))
                        .is_some_and(has_slash_escape)
                {
                    return Err(ParseError::Other(format!(
                        "line {}: found unknown escape character while parsing a quoted scalar: YAML 1.1 \
                         has no `\\/` escape (write `/`)",
                        span.start.line()
                    )));
                }
                (
                    Node::Scalar {
                        value: value.into_owned(),
                        tag: tag.map(|t| format!("{}{}", t.handle(), t.suffix())).unwrap_or_default(),
                        plain: style == ScalarStyle::Plain,
                    },
                    anchor,
                    false,
                )
            }
            Event::SequenceStart(_, anchor, _) => (Node::Seq(Vec::new()), anchor, true),
            Event::MappingStart(_, anchor, _) => (Node::Map(Vec::new()), anchor, true),
            Event::SequenceEnd | Event::MappingEnd => {
                open.pop();
                continue;
            }
            Event::Alias(id) => {
                let target = anchors
                    .get(&id)
                    .copied()
                    .ok_or_else(|| ParseError::Other("unknown anchor referenced".into()))?;
                (Node::Alias(target), 0, false)
            }
            _ => continue,
        };
        let index = nodes.len();
        nodes.push(node);
        if anchor != 0 {
            anchors.insert(anchor, index);
        }
        match open.last() {
            Some(&parent) => {
                if let Node::Seq(children) | Node::Map(children) = &mut nodes[parent] {
                    children.push(index);
                }
            }
            None => root = Some(index),
        }
        if opens {
            open.push(index);
        }
    }
    Ok((nodes, root))
}

struct Decoder<'a> {
    nodes: &'a [Node],
    active_aliases: Vec<usize>,
    decode_count: u64,
    alias_count: u64,
    alias_depth: u32,
}

impl Decoder<'_> {
    /// go-yaml v2's guard against alias bombs (`decode.go`, `unmarshal` and `allowedAliasRatio`).
    fn count(&mut self) -> Result<(), String> {
        self.decode_count += 1;
        if self.alias_depth > 0 {
            self.alias_count += 1;
        }
        let (decodes, aliases) = (self.decode_count as f64, self.alias_count as f64);
        let allowed = if decodes <= 400_000.0 {
            0.99
        } else if decodes >= 4_000_000.0 {
            0.10
        } else {
            0.99 - 0.89 * ((decodes - 400_000.0) / 3_600_000.0)
        };
        if self.alias_count > 100 && self.decode_count > 1000 && aliases / decodes > allowed {
            return Err("document contains excessive aliasing".into());
        }
        Ok(())
    }

    fn enter_alias(&mut self, alias: usize) -> Result<(), String> {
        if self.active_aliases.contains(&alias) {
            return Err("an anchor's value contains an alias of itself".into());
        }
        self.active_aliases.push(alias);
        self.alias_depth += 1;
        Ok(())
    }

    fn leave_alias(&mut self) {
        self.active_aliases.pop();
        self.alias_depth -= 1;
    }

    fn unmarshal(&mut self, n: usize) -> Result<Go, String> {
        self.count()?;
        let nodes = self.nodes;
        match &nodes[n] {
            Node::Alias(target) => {
                self.enter_alias(n)?;
                let v = self.unmarshal(*target);
                self.leave_alias();
                v
            }
            Node::Scalar { value, tag, plain } => scalar(value, tag, *plain),
            Node::Seq(children) => children
                .iter()
                .map(|&c| self.unmarshal(c))
                .collect::<Result<_, _>>()
                .map(Go::Seq),
            Node::Map(_) => {
                let mut out = Vec::new();
                self.mapping_into(n, &mut out)?;
                Ok(Go::Map(out))
            }
        }
    }

    /// `decode.go`, `mapping`: each key set in order, a later equal key replacing the value.
    fn mapping_into(&mut self, n: usize, out: &mut Vec<(Go, Go)>) -> Result<(), String> {
        let nodes = self.nodes;
        let Node::Map(children) = &nodes[n] else {
            return Err("map merge requires map or sequence of maps as the value".into());
        };
        for pair in children.chunks(2) {
            let [k, v] = pair else { break };
            if self.is_merge(*k) {
                self.merge(*v, out)?;
                continue;
            }
            let key = self.unmarshal(*k)?;
            if matches!(key, Go::Seq(_) | Go::Map(_)) {
                return Err("invalid map key: a mapping key must be a scalar".into());
            }
            let value = self.unmarshal(*v)?;
            match out.iter_mut().find(|(existing, _)| go_key_eq(existing, &key)) {
                Some(slot) => *slot = (key, value),
                None => out.push((key, value)),
            }
        }
        Ok(())
    }

    /// `decode.go`, `isMerge`: a `<<` key, plain or tagged `!!merge`.
    fn is_merge(&self, n: usize) -> bool {
        matches!(&self.nodes[n], Node::Scalar { value, tag, plain }
            if value == "<<" && ((tag.is_empty() && *plain) || tag == "!" || tag == TAG_MERGE))
    }

    /// `decode.go`, `merge`: the merged mapping's keys set over `out`; of a sequence of
    /// mappings, the earlier ones win (they are set last).
    fn merge(&mut self, n: usize, out: &mut Vec<(Go, Go)>) -> Result<(), String> {
        let nodes = self.nodes;
        let targets: Vec<usize> = match &nodes[n] {
            Node::Seq(children) => children.iter().rev().copied().collect(),
            Node::Map(_) | Node::Alias(_) => vec![n],
            Node::Scalar { .. } => return Err("map merge requires map or sequence of maps as the value".into()),
        };
        for t in targets {
            self.count()?;
            match &nodes[t] {
                Node::Map(_) => self.mapping_into(t, out)?,
                Node::Alias(target) if matches!(nodes[*target], Node::Map(_)) => {
                    self.enter_alias(t)?;
                    let r = self.count().and_then(|()| self.mapping_into(*target, out));
                    self.leave_alias();
                    r?;
                }
                _ => return Err("map merge requires map or sequence of maps as the value".into()),
            }
        }
        Ok(())
    }
}

/// Go's `==` on `interface{}` map keys: same dynamic type and value (NaN equals nothing).
fn go_key_eq(a: &Go, b: &Go) -> bool {
    match (a, b) {
        (Go::Null, Go::Null) => true,
        (Go::Bool(x), Go::Bool(y)) => x == y,
        (Go::Int(x), Go::Int(y)) => x == y,
        (Go::Uint(x), Go::Uint(y)) => x == y,
        (Go::Float(x), Go::Float(y)) => x == y,
        (Go::Str(x), Go::Str(y)) => x == y,
        _ => false,
    }
}

/// `decode.go`, `scalar`, into an `interface{}`.
fn scalar(value: &str, tag: &str, plain: bool) -> Result<Go, String> {
    if tag.is_empty() && !plain {
        // Quoted and block scalars are strings.
        return Ok(Go::Str(value.to_string()));
    }
    if tag == TAG_BINARY {
        let cleaned: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        let bytes = GO_STD_BASE64
            .decode(cleaned)
            .map_err(|_| "!!binary value contains invalid base64 data".to_string())?;
        return Ok(Go::Str(go_string(&bytes)));
    }
    resolve(tag, value)
}

/// Go's `base64.StdEncoding` (padding required, trailing bits tolerated).
const GO_STD_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Bytes as `json.Marshal` writes a Go string: each byte not part of valid UTF-8 as U+FFFD.
fn go_string(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push('\u{FFFD}');
                rest = &after[1..];
            }
        }
    }
}

/// `resolve.go`, `resolve`, then what `decode.go`'s `scalar` keeps of it in an `interface{}`
/// (a timestamp stays its text).
fn resolve(tag: &str, s: &str) -> Result<Go, String> {
    if !matches!(
        tag,
        "" | TAG_STR | TAG_BOOL | TAG_INT | TAG_FLOAT | TAG_NULL | TAG_TIMESTAMP
    ) {
        // A tag go-yaml does not resolve (a local `!tag`, the non-specific `!`): the text.
        return Ok(Go::Str(s.to_string()));
    }
    let (rtag, out) = resolve_untyped(tag, s);
    if tag.is_empty() || tag == rtag || tag == TAG_STR {
        return Ok(out);
    }
    if tag == TAG_FLOAT
        && let Go::Int(i) = out
    {
        return Ok(Go::Float(i as f64));
    }
    Err(format!(
        "cannot decode {} `{s}` as a {}",
        short_tag(rtag),
        short_tag(tag)
    ))
}

fn short_tag(tag: &str) -> String {
    match tag.strip_prefix("tag:yaml.org,2002:") {
        Some(t) => format!("!!{t}"),
        None => tag.to_string(),
    }
}

/// The body of `resolve.go`'s `resolve`: the resolved tag and value.
fn resolve_untyped(tag: &str, s: &str) -> (&'static str, Go) {
    let hint = match s.as_bytes().first() {
        None => b'N',
        Some(b'+' | b'-') => b'S',
        Some(b'0'..=b'9') => b'D',
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => b'M',
        Some(b'.') => b'.',
        Some(_) => 0,
    };
    if hint == 0 || tag == TAG_STR {
        return (TAG_STR, Go::Str(s.to_string()));
    }
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return (TAG_BOOL, Go::Bool(true));
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return (TAG_BOOL, Go::Bool(false));
        }
        "" | "~" | "null" | "Null" | "NULL" => return (TAG_NULL, Go::Null),
        ".nan" | ".NaN" | ".NAN" => return (TAG_FLOAT, Go::Float(f64::NAN)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return (TAG_FLOAT, Go::Float(f64::INFINITY)),
        "-.inf" | "-.Inf" | "-.INF" => return (TAG_FLOAT, Go::Float(f64::NEG_INFINITY)),
        _ => {}
    }
    match hint {
        b'.' => {
            if let Some(f) = go_parse_float(s) {
                return (TAG_FLOAT, Go::Float(f));
            }
        }
        b'D' | b'S' => {
            if (tag.is_empty() || tag == TAG_TIMESTAMP) && is_go_timestamp(s) {
                return (TAG_TIMESTAMP, Go::Str(s.to_string()));
            }
            let plain = s.replace('_', "");
            if let Some(i) = go_parse_int(&plain, 0) {
                return (TAG_INT, Go::Int(i));
            }
            if let Some(u) = go_parse_uint(&plain, 0) {
                return (TAG_INT, Go::Uint(u));
            }
            if YAML_STYLE_FLOAT.is_match(&plain)
                && let Some(f) = go_parse_float(&plain)
            {
                return (TAG_FLOAT, Go::Float(f));
            }
            if let Some(bits) = plain.strip_prefix("0b") {
                if let Some(i) = go_parse_int(bits, 2) {
                    return (TAG_INT, Go::Int(i));
                }
                if let Some(u) = go_parse_uint(bits, 2) {
                    return (TAG_INT, Go::Uint(u));
                }
            } else if let Some(bits) = plain.strip_prefix("-0b")
                && let Some(i) = go_parse_int(&format!("-{bits}"), 2)
            {
                return (TAG_INT, Go::Int(i));
            }
        }
        _ => {}
    }
    (TAG_STR, Go::Str(s.to_string()))
}

/// `resolve.go`'s `yamlStyleFloat`.
static YAML_STYLE_FLOAT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$").unwrap_or_else(|_| unreachable!())
});

/// Go's `strconv.ParseUint(s, base, 64)` (`base` 0: `0x`/`0o`/`0b`/`0` prefixes); `_` is
/// already gone from `s` when `base` is 0 and never allowed otherwise.
fn go_parse_uint(s: &str, base: u32) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let (base, digits) = if base == 0 {
        let b = s.as_bytes();
        if b[0] == b'0' {
            match b.get(1).map(u8::to_ascii_lowercase) {
                Some(b'b') if b.len() >= 3 => (2, &s[2..]),
                Some(b'o') if b.len() >= 3 => (8, &s[2..]),
                Some(b'x') if b.len() >= 3 => (16, &s[2..]),
                _ => (8, &s[1..]),
            }
        } else {
            (10, s)
        }
    } else {
        (base, s)
    };
    let mut n: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(36)?;
        if d >= base {
            return None;
        }
        n = n.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// Go's `strconv.ParseInt(s, base, 64)`.
fn go_parse_int(s: &str, base: u32) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let magnitude = i128::from(go_parse_uint(rest, base)?);
    i64::try_from(if neg { -magnitude } else { magnitude }).ok()
}

/// Go's `strconv.ParseFloat(s, 64)` for the decimal spellings go-yaml hands it: digits with
/// `_` only between digits, an optional fraction and exponent; out of range is an error (an
/// infinity), underflow is zero.
fn go_parse_float(s: &str) -> Option<f64> {
    let bytes = s.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        if c == b'_' {
            let digit_before = i > 0 && bytes[i - 1].is_ascii_digit();
            let digit_after = bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !digit_before || !digit_after {
                return None;
            }
        }
    }
    let plain = s.replace('_', "");
    if !YAML_STYLE_FLOAT.is_match(&plain) {
        return None;
    }
    plain.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Whether `resolve.go`'s `parseTimestamp` accepts `s`: one of `2006-1-2T15:4:5.999999999Z07:00`
/// (`T` or `t`), `2006-1-2 15:4:5.999999999` and `2006-1-2`, as Go's `time.Parse` reads them.
fn is_go_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    // One or two digits (Go's `getnum(value, false)`).
    let num = |p: &mut usize| -> Option<u32> {
        let first = char::from(*b.get(*p)?).to_digit(10)?;
        *p += 1;
        match b.get(*p).and_then(|c| char::from(*c).to_digit(10)) {
            Some(second) => {
                *p += 1;
                Some(first * 10 + second)
            }
            None => Some(first),
        }
    };
    let lit = |p: &mut usize, c: u8| -> bool {
        let ok = b.get(*p) == Some(&c);
        *p += usize::from(ok);
        ok
    };
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let year: u32 = s[..4].parse().unwrap_or(0);
    let mut p = 5;
    let Some(month) = num(&mut p) else { return false };
    if !lit(&mut p, b'-') {
        return false;
    }
    let Some(day) = num(&mut p) else { return false };
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day < 1 || day > days {
        return false;
    }
    if p == b.len() {
        return true;
    }
    let zoned = match b[p] {
        b'T' | b't' => true,
        b' ' => false,
        _ => return false,
    };
    p += 1;
    let Some(hour) = num(&mut p) else { return false };
    if hour >= 24 || !lit(&mut p, b':') {
        return false;
    }
    let Some(minute) = num(&mut p) else { return false };
    if minute >= 60 || !lit(&mut p, b':') {
        return false;
    }
    let Some(second) = num(&mut p) else { return false };
    if second >= 60 {
        return false;
    }
    if matches!(b.get(p), Some(b'.' | b',')) && b.get(p + 1).is_some_and(u8::is_ascii_digit) {
        p += 1;
        while b.get(p).is_some_and(u8::is_ascii_digit) {
            p += 1;
        }
    }
    if zoned {
        if lit(&mut p, b'Z') {
            return p == b.len();
        }
        let zone = &b[p..];
        if zone.len() != 6 || !matches!(zone[0], b'+' | b'-') || zone[3] != b':' {
            return false;
        }
        let two = |x: &[u8]| -> Option<u32> {
            (x[0].is_ascii_digit() && x[1].is_ascii_digit())
                .then(|| u32::from(x[0] - b'0') * 10 + u32::from(x[1] - b'0'))
        };
        return matches!((two(&zone[1..3]), two(&zone[4..6])), (Some(h), Some(m)) if h <= 24 && m <= 60);
    }
    p == b.len()
}

// ---------------------------------------------------------------------------------------------
// Step 2: convertToJSONableObject and json.Marshal.

/// `yaml.go`, `convertToJSONableObject`, then `json.Marshal`, towards `target` (`None`: an
/// `interface{}`, where nothing is converted).
fn to_json(v: &Go, target: Option<GoType>) -> Result<Value, String> {
    Ok(match v {
        Go::Map(entries) => {
            // Keys of different types with the same text (`1` and `1.0`) are one JSON key: Go's
            // map order decides which value survives upstream; here the one set later does.
            // Only the survivor is converted (a NaN that does not survive is no error).
            let mut survivors: Vec<(String, &Go)> = Vec::new();
            for (k, value) in entries {
                let key = match k {
                    Go::Str(s) => s.clone(),
                    Go::Int(i) => i.to_string(),
                    Go::Float(f) => match go_format_g32(*f).as_str() {
                        "+Inf" => ".inf".to_string(),
                        "-Inf" => "-.inf".to_string(),
                        "NaN" => ".nan".to_string(),
                        s => s.to_string(),
                    },
                    Go::Bool(b) => b.to_string(),
                    Go::Uint(u) => {
                        return Err(format!("unsupported map key of type uint64: {u} (quote the key)"));
                    }
                    Go::Null | Go::Seq(_) | Go::Map(_) => {
                        return Err("unsupported map key of type <nil>: a mapping key is null or empty".into());
                    }
                };
                match survivors.iter_mut().find(|(existing, _)| *existing == key) {
                    Some(slot) => slot.1 = value,
                    None => survivors.push((key, value)),
                }
            }
            let mut out = Map::new();
            for (key, value) in survivors {
                let field = match target {
                    Some(GoType::Struct(fields)) => field_index(fields, &key).map(|i| fields[i].1),
                    _ => None,
                };
                let value = to_json(value, field)?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Go::Seq(items) => {
            let elem = match target {
                Some(GoType::Slice(e)) => Some(*e),
                _ => None,
            };
            Value::Array(items.iter().map(|i| to_json(i, elem)).collect::<Result<_, _>>()?)
        }
        scalar => {
            if matches!(target, Some(GoType::String)) {
                match scalar {
                    Go::Int(i) => return Ok(Value::String(i.to_string())),
                    Go::Uint(u) => return Ok(Value::String(u.to_string())),
                    Go::Float(f) => return Ok(Value::String(go_format_g32(*f))),
                    Go::Bool(b) => return Ok(Value::String(b.to_string())),
                    _ => {}
                }
            }
            match scalar {
                Go::Null => Value::Null,
                Go::Bool(b) => Value::Bool(*b),
                Go::Int(i) => Value::Number(Number::from(*i)),
                Go::Uint(u) => Value::Number(Number::from(*u)),
                Go::Float(f) => Value::Number(
                    Number::from_f64(*f).ok_or_else(|| format!("json: unsupported value: {}", go_format_g32(*f)))?,
                ),
                Go::Str(s) => Value::String(s.clone()),
                Go::Seq(_) | Go::Map(_) => Value::Null,
            }
        }
    })
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`: the shortest digits that read back as the same
/// `float32`, in `%e` form when the exponent is below -4 or at least 6 (`1e+06`, `1.5e-05`).
fn go_format_g32(f: f64) -> String {
    let x = f as f32;
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let mut out = String::new();
    if x.is_sign_negative() {
        out.push('-');
    }
    if x == 0.0 {
        out.push('0');
        return out;
    }
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: Vec<char> = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let nd = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let digit = |i: i32| {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or('0')
    };
    if !(-4..6).contains(&exp) {
        out.push(digits[0]);
        if nd > 1 {
            out.push('.');
            out.extend(&digits[1..]);
        }
        out.push_str(&format!("e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs()));
    } else {
        let dp = exp + 1;
        if dp <= 0 {
            out.push('0');
        } else {
            (0..dp).for_each(|i| out.push(digit(i)));
        }
        if nd > dp {
            out.push('.');
            (dp..nd).for_each(|i| out.push(digit(i)));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Step 3: encoding/json into the Go struct.

/// A Go value of a [`GoType`] while `encoding/json` decodes into it.
#[derive(Debug, Clone)]
enum GoVal {
    Str(String),
    Any(Value),
    /// A slice: its backing array (elements past `len` stay there and are decoded over when
    /// the slice grows into them again, as `encoding/json`'s `array` does) and its length.
    Slice(Vec<GoVal>, usize),
    Struct(Vec<GoVal>),
}

fn zero(ty: GoType) -> GoVal {
    match ty {
        GoType::String => GoVal::Str(String::new()),
        GoType::Interface => GoVal::Any(Value::Null),
        GoType::Slice(_) => GoVal::Slice(Vec::new(), 0),
        GoType::Struct(fields) => GoVal::Struct(fields.iter().map(|(_, t)| zero(*t)).collect()),
    }
}

/// The field a JSON key fills: the one named exactly so, else the first whose name it equals
/// under Unicode simple case folding (`encoding/json`, `fields.byExactName`/`byFoldedName`).
fn field_index(fields: &[(&str, GoType)], key: &str) -> Option<usize> {
    fields
        .iter()
        .position(|(name, _)| *name == key)
        .or_else(|| fields.iter().position(|(name, _)| fold_eq(name, key)))
}

/// Whether `key` equals the ASCII field name `name` under Unicode simple case folding: ASCII
/// letters either case, `ſ` (U+017F) as `s`, the Kelvin sign (U+212A) as `k`.
fn fold_eq(name: &str, key: &str) -> bool {
    let mut key_chars = key.chars();
    for n in name.chars() {
        let Some(c) = key_chars.next() else { return false };
        let folded = match c {
            '\u{017F}' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        };
        if folded != n.to_ascii_lowercase() {
            return false;
        }
    }
    key_chars.next().is_none()
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn go_type_name(ty: GoType) -> &'static str {
    match ty {
        GoType::String => "string",
        GoType::Interface => "interface {}",
        GoType::Slice(_) => "a list",
        GoType::Struct(_) => "a mapping",
    }
}

/// `encoding/json`'s decoding of `json` into `v` (of type `ty`); `path` names the field for
/// errors.
fn decode_json(ty: GoType, v: &mut GoVal, json: &Value, path: &str) -> Result<(), String> {
    match (ty, v, json) {
        (GoType::Interface, v, json) => *v = GoVal::Any(json.clone()),
        (GoType::Slice(_), GoVal::Slice(backing, len), Value::Null) => {
            backing.clear();
            *len = 0;
        }
        (_, _, Value::Null) => {} // null leaves a string or struct as it was
        (GoType::String, GoVal::Str(s), Value::String(j)) => j.clone_into(s),
        (GoType::Slice(elem), GoVal::Slice(backing, len), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if i >= backing.len() {
                    backing.push(zero(*elem));
                }
                decode_json(*elem, &mut backing[i], item, &format!("{path}[{i}]"))?;
            }
            *len = items.len();
            if items.is_empty() {
                backing.clear();
            }
        }
        (GoType::Struct(fields), GoVal::Struct(values), Value::Object(m)) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for key in keys {
                if let Some(i) = field_index(fields, key) {
                    let (name, field_ty) = fields[i];
                    let field_path = if path.is_empty() {
                        name.to_string()
                    } else {
                        format!("{path}.{name}")
                    };
                    decode_json(field_ty, &mut values[i], &m[key.as_str()], &field_path)?;
                }
            }
        }
        (ty, _, json) => {
            let at = if path.is_empty() {
                "the document".to_string()
            } else {
                format!("`{path}`")
            };
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type {}: {at} must be {}",
                json_kind(json),
                go_type_name(ty),
                match ty {
                    GoType::String => "a string (quote it, or use a `|` block for YAML text)",
                    GoType::Slice(_) => "a list",
                    GoType::Struct(_) => "a mapping",
                    GoType::Interface => "any value",
                }
            ));
        }
    }
    Ok(())
}

/// A decoded Go value as JSON, struct fields under their JSON names.
fn go_to_json(ty: GoType, v: &GoVal) -> Value {
    match (ty, v) {
        (_, GoVal::Str(s)) => Value::String(s.clone()),
        (_, GoVal::Any(j)) => j.clone(),
        (GoType::Slice(elem), GoVal::Slice(backing, len)) => {
            Value::Array(backing[..*len].iter().map(|e| go_to_json(*elem, e)).collect())
        }
        (GoType::Struct(fields), GoVal::Struct(values)) => Value::Object(
            fields
                .iter()
                .zip(values)
                .map(|((name, t), v)| ((*name).to_string(), go_to_json(*t, v)))
                .collect(),
        ),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(yaml: &str) -> Value {
        Value::Object(unmarshal_object(yaml).unwrap())
    }

    #[test]
    fn yaml_1_1_scalars_resolve_as_go_yaml_v2_does() {
        let v = obj("a: yes\nb: No\nc: on\nd: OFF\ne: y\nf: n\ng: yEs\nh: ~\ni: null\nj:\nk: 'yes'\nl: !!str yes\n");
        assert_eq!(
            v,
            json!({"a": true, "b": false, "c": true, "d": false, "e": true, "f": false, "g": "yEs",
                   "h": null, "i": null, "j": null, "k": "yes", "l": "yes"})
        );
        let v = obj(
            "oct: 017\no: 0o17\nhex: 0x1F\nbin: 0b101\nus: 1_000\nf: 1.5\ne: 1e3\ndot: .5\n\
             int_float: 2.0\nnine: 09\ndate: 2001-12-14\nbig: 99999999999999999999\nover: 1e400\n\
             neg: -0x10\nweird: 0b-101\nsexa: 1:20\n",
        );
        assert_eq!(
            v,
            json!({"oct": 15, "o": 15, "hex": 31, "bin": 5, "us": 1000, "f": 1.5, "e": 1000, "dot": 0.5,
                   "int_float": 2, "nine": 9, "date": "2001-12-14", "big": 1e20, "over": "1e400",
                   "neg": -16, "weird": -5, "sexa": "1:20"})
        );
    }

    #[test]
    fn last_duplicate_key_wins_and_keys_are_compared_resolved() {
        let v = obj("a: 1\nb: 2\na: 3\n0x1: one\n1: uno\nyes: y\ntrue: t\n");
        assert_eq!(v, json!({"a": 3, "b": 2, "1": "uno", "true": "t"}));
        // A key is resolved like any plain scalar: `y` and `off` are booleans.
        assert_eq!(obj("y: 1\noff: 2\n"), json!({"true": 1, "false": 2}));
    }

    #[test]
    fn merges_set_over_earlier_keys_and_earlier_merge_sources_win() {
        let v = obj("base: &b {x: 1, k: 2}\nother: &o {x: 9, z: 3}\nm:\n  x: 0\n  <<: [*b, *o]\n  w: 4\n");
        assert_eq!(v["m"], json!({"x": 1, "k": 2, "z": 3, "w": 4}));
    }

    #[test]
    fn only_the_first_document_is_read() {
        assert_eq!(obj("a: 1\n---\nb: [unclosed\n"), json!({"a": 1}));
        assert_eq!(obj(""), json!({}));
    }

    #[test]
    fn conversion_errors_say_what_is_wrong() {
        let e = unmarshal_object("a: .inf\n").unwrap_err().to_string();
        assert!(e.contains("unsupported value: +Inf"), "{e}");
        let e = unmarshal_object("~: a\n").unwrap_err().to_string();
        assert!(e.contains("mapping key is null"), "{e}");
        let e = unmarshal_object("- a\n").unwrap_err().to_string();
        assert!(e.contains("must be a YAML mapping"), "{e}");
        let e = unmarshal_object("a: !!int abc\n").unwrap_err().to_string();
        assert!(e.contains("cannot decode !!str `abc` as a !!int"), "{e}");
        let e = unmarshal_object("a: &x [*x]\n").unwrap_err().to_string();
        assert!(e.contains("alias of itself"), "{e}");
        let e = unmarshal_object("a: [\n").unwrap_err().to_string();
        assert!(e.contains("error converting YAML to JSON"), "{e}");
    }

    #[test]
    fn the_text_is_parsed_as_libyaml_parses_yaml_1_1() {
        // NEL is a line break, `\'` an escaped quote, `*a:` the alias `a` as a key.
        assert_eq!(obj("a: x\u{85}b: y\n"), json!({"a": "x", "b": true}));
        assert_eq!(obj("a: \"it\\'s\"\n"), json!({"a": "it's"}));
        assert_eq!(
            obj("k: &a key\n*a: v\nm: {*a: w}\n"),
            json!({"k": "key", "key": "v", "m": {"key": "w"}})
        );
        let e = unmarshal_object("a: \"\\/\"\n").unwrap_err().to_string();
        assert!(e.contains("no `\\/` escape"), "{e}");
        let e = unmarshal_object("%YAML 1.2\n---\na: 1\n").unwrap_err().to_string();
        assert!(e.contains("incompatible YAML document"), "{e}");
        assert_eq!(obj("%YAML 1.1\n---\na: on\n"), json!({"a": true}));
    }

    #[test]
    fn tags_resolve_as_go_yaml_v2_does() {
        let v = obj(
            "a: !!float 1\nb: !!int \"12\"\nc: !custom 12\nd: ! yes\ne: !!binary aGVsbG8=\n\
             f: !!timestamp 2001-12-14t21:59:43.10-05:00\ng: !!bool yes\n",
        );
        assert_eq!(
            v,
            json!({"a": 1, "b": 12, "c": "12", "d": "yes", "e": "hello",
                   "f": "2001-12-14t21:59:43.10-05:00", "g": true})
        );
        assert!(unmarshal_object("a: !!timestamp 2001-02-30\n").is_err());
    }

    #[test]
    fn float_text_is_go_format_float_g_32() {
        for (f, s) in [
            (1.0, "1"),
            (1.5, "1.5"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (std::f64::consts::PI, "3.1415927"),
            (-2.5e-7, "-2.5e-07"),
            (1e39, "+Inf"),
        ] {
            assert_eq!(go_format_g32(f), s, "{f}");
        }
    }

    const ITEM: GoType = GoType::Struct(&[("name", GoType::String), ("extra", GoType::String)]);
    const DOC: GoType = GoType::Struct(&[
        ("name", GoType::String),
        ("items", GoType::Slice(&ITEM)),
        ("tags", GoType::Slice(&GoType::String)),
        ("value", GoType::Interface),
    ]);

    fn doc(yaml: &str) -> Value {
        unmarshal_struct(yaml, DOC).unwrap()
    }

    #[test]
    fn struct_fields_match_case_insensitively_and_exact_wins() {
        let v = doc("NAME: upper\n");
        assert_eq!(v["name"], "upper");
        // Sorted keys: `Name` < `name`, so `name` is decoded last.
        let v = doc("name: lower\nName: upper\n");
        assert_eq!(v["name"], "lower");
        // `ſ` folds to `s`, the Kelvin sign to `k`.
        let v = doc("tagſ: [a]\n");
        assert_eq!(v["tags"], json!(["a"]));
    }

    #[test]
    fn values_for_string_fields_become_their_text() {
        let v = doc("name: yes\ntags: [1, 1.5, no, 0x10, ~]\nvalue: yes\nunknown: [1, {a: b}]\n");
        assert_eq!(v["name"], "true");
        // A null element of a []string is left at its zero value.
        assert_eq!(v["tags"], json!(["1", "1.5", "false", "16", ""]));
        assert!(v.get("unknown").is_none());
        assert_eq!(v["value"], json!(true));
    }

    #[test]
    fn a_struct_decoded_twice_keeps_what_the_second_lacks() {
        let v = doc("Items: [{name: a, extra: x}, {name: b, extra: y}]\nitems: [{name: c}]\n");
        assert_eq!(v["items"], json!([{"name": "c", "extra": "x"}]));
        // `NAME` is decoded first; the null of `name` then leaves it as it was.
        let v = doc("NAME: a\nname: ~\n");
        assert_eq!(v["name"], "a");
    }

    #[test]
    fn a_wrong_type_is_an_error_naming_the_field() {
        let e = unmarshal_struct("items: [{name: [a]}]\n", DOC).unwrap_err().to_string();
        assert!(e.contains("`items[0].name` must be a string"), "{e}");
        let e = unmarshal_struct("just text\n", DOC).unwrap_err().to_string();
        assert!(e.contains("the document must be a mapping"), "{e}");
    }
}
