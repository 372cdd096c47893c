//! Decoding of Kubernetes protobuf request bodies for a few core kinds.
//!
//! kubectl's typed commands (`kubectl create namespace|configmap|secret`, `oc create
//! configmap`) send `application/vnd.kubernetes.protobuf` bodies, not JSON. The simulator
//! always answers in JSON (those clients list `application/json` in `Accept`), but it has to
//! read such bodies. Only the kinds those commands create are described here; any other kind in
//! protobuf gets the real server's 415 for an unknown media type.
//!
//! Wire format: the 4-byte magic `k8s\0`, then a `runtime.Unknown` message
//! (1: TypeMeta{1: apiVersion, 2: kind}, 2: raw bytes of the typed message). Field numbers come
//! from the `generated.proto` files of k8s.io/api and k8s.io/apimachinery.

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The protobuf media type.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// Well-formed, but of a kind this module has no schema for (answered with 415).
    #[error("protobuf bodies of {0} are not supported by ferry-sim; send JSON")]
    Unsupported(String),
    /// Not a valid Kubernetes protobuf envelope (answered with 400).
    #[error("malformed protobuf body: {0}")]
    Malformed(String),
}

/// The shape of one field.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    Bool,
    Msg(&'static [Field]),
    /// `map<string,string>`.
    MapStr,
    /// `map<string,bytes>`, values base64.
    MapBytes,
    /// `meta.v1.Time` (seconds, nanos) rendered as RFC 3339.
    Time,
}

#[derive(Clone, Copy)]
struct Field {
    num: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
}

const fn f(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: false,
    }
}

const fn rep(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: true,
    }
}

const OWNER_REFERENCE: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "controller", Ty::Bool),
    f(6, "apiVersion", Ty::Str),
    f(7, "blockOwnerDeletion", Ty::Bool),
];

const OBJECT_META: &[Field] = &[
    f(1, "name", Ty::Str),
    f(2, "generateName", Ty::Str),
    f(3, "namespace", Ty::Str),
    f(5, "uid", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "generation", Ty::Int),
    f(8, "creationTimestamp", Ty::Time),
    f(9, "deletionTimestamp", Ty::Time),
    f(10, "deletionGracePeriodSeconds", Ty::Int),
    f(11, "labels", Ty::MapStr),
    f(12, "annotations", Ty::MapStr),
    rep(13, "ownerReferences", Ty::Msg(OWNER_REFERENCE)),
    rep(14, "finalizers", Ty::Str),
];

const NAMESPACE: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(&[rep(1, "finalizers", Ty::Str)])),
    f(3, "status", Ty::Msg(&[f(1, "phase", Ty::Str)])),
];

const CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapStr),
    f(3, "binaryData", Ty::MapBytes),
    f(4, "immutable", Ty::Bool),
];

const SECRET: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapBytes),
    f(3, "type", Ty::Str),
    f(4, "stringData", Ty::MapStr),
    f(5, "immutable", Ty::Bool),
];

const PROJECT_REQUEST: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "displayName", Ty::Str),
    f(3, "description", Ty::Str),
];

const DELETE_OPTIONS: &[Field] = &[
    f(1, "gracePeriodSeconds", Ty::Int),
    f(
        2,
        "preconditions",
        Ty::Msg(&[f(1, "uid", Ty::Str), f(2, "resourceVersion", Ty::Str)]),
    ),
    f(3, "orphanDependents", Ty::Bool),
    f(4, "propagationPolicy", Ty::Str),
    rep(5, "dryRun", Ty::Str),
];

fn schema_for(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("project.openshift.io/v1", "ProjectRequest") => PROJECT_REQUEST,
        ("meta.k8s.io/v1" | "v1", "DeleteOptions") => DELETE_OPTIONS,
        _ => return None,
    })
}

/// A raw wire value.
enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let s = self.buf.get(self.pos..end).ok_or("truncated field")?;
        self.pos = end;
        Ok(s)
    }

    /// Next (field number, value); fixed-width values are skipped (none of our fields use them).
    fn next(&mut self) -> Result<Option<(u64, Option<Wire<'a>>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (num, wt) = (key >> 3, key & 7);
        let v = match wt {
            0 => Some(Wire::Varint(self.varint()?)),
            1 => {
                self.take(8)?;
                None
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
                Some(Wire::Len(self.take(len)?))
            }
            5 => {
                self.take(4)?;
                None
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        Ok(Some((num, v)))
    }
}

fn string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in a string field".to_string())
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while let Some((num, w)) = r.next()? {
        if let Some(Wire::Len(data)) = w {
            match num {
                1 => k = string(data)?,
                2 if bytes_value => {
                    v = json!(base64::engine::general_purpose::STANDARD.encode(data));
                }
                2 => v = json!(string(data)?),
                _ => {}
            }
        }
    }
    Ok((k, v))
}

fn time(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut secs = 0i64;
    while let Some((num, w)) = r.next()? {
        if let (1, Some(Wire::Varint(v))) = (num, w) {
            secs = v as i64;
        }
    }
    if secs == 0 {
        // The zero Time is `null` in JSON.
        return Ok(json!(""));
    }
    let t = chrono::DateTime::from_timestamp(secs, 0).ok_or("timestamp out of range")?;
    Ok(json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn message(b: &[u8], schema: &[Field]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut r = Reader { buf: b, pos: 0 };
    while let Some((num, w)) = r.next()? {
        let (Some(field), Some(w)) = (schema.iter().find(|f| f.num == num), w) else {
            continue;
        };
        let value = match (field.ty, w) {
            (Ty::Str, Wire::Len(d)) => json!(string(d)?),
            (Ty::Int, Wire::Varint(v)) => json!(v as i64),
            (Ty::Bool, Wire::Varint(v)) => json!(v != 0),
            (Ty::Msg(s), Wire::Len(d)) => Value::Object(message(d, s)?),
            (Ty::Time, Wire::Len(d)) => time(d)?,
            (Ty::MapStr | Ty::MapBytes, Wire::Len(d)) => {
                let (k, v) = map_entry(d, matches!(field.ty, Ty::MapBytes))?;
                let entry = out
                    .entry(field.name.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(m) = entry.as_object_mut() {
                    m.insert(k, v);
                }
                continue;
            }
            _ => return Err(format!("unexpected wire type for field {}", field.name)),
        };
        // Go marshals every non-pointer scalar, even when empty; JSON would have omitted them
        // (`omitempty`), and the store treats absent and empty differently in places.
        let empty = match &value {
            Value::String(s) => s.is_empty(),
            Value::Number(n) => n.as_i64() == Some(0),
            _ => false,
        };
        if empty && !field.repeated {
            continue;
        }
        if field.repeated {
            let entry = out
                .entry(field.name.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(a) = entry.as_array_mut() {
                a.push(value);
            }
        } else {
            out.insert(field.name.to_string(), value);
        }
    }
    Ok(out)
}

/// Decode a protobuf request body into the equivalent JSON object (with apiVersion and kind).
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    decode_inner(body).map_err(|e| match e {
        Inner::Unsupported(k) => ProtoError::Unsupported(k),
        Inner::Malformed(m) => ProtoError::Malformed(m),
    })
}

enum Inner {
    Unsupported(String),
    Malformed(String),
}

impl From<String> for Inner {
    fn from(s: String) -> Self {
        Inner::Malformed(s)
    }
}

impl From<&str> for Inner {
    fn from(s: &str) -> Self {
        Inner::Malformed(s.to_string())
    }
}

fn decode_inner(body: &[u8]) -> Result<Value, Inner> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("the protobuf body does not start with the k8s magic")?;
    let mut r = Reader { buf: rest, pos: 0 };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while let Some((num, w)) = r.next()? {
        match (num, w) {
            (1, Some(Wire::Len(tm))) => {
                let m = message(tm, &[f(1, "apiVersion", Ty::Str), f(2, "kind", Ty::Str)])?;
                api_version = m
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                kind = m.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
            }
            (2, Some(Wire::Len(d))) => raw = d,
            _ => {}
        }
    }
    let schema = schema_for(&api_version, &kind).ok_or_else(|| Inner::Unsupported(format!("{api_version}/{kind}")))?;
    let mut obj = message(raw, schema)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn len_field(num: u64, data: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }

    #[test]
    fn decodes_a_config_map() {
        let mut meta = Vec::new();
        len_field(1, b"cm1", &mut meta);
        len_field(3, b"ns1", &mut meta);
        let mut label = Vec::new();
        len_field(1, b"app", &mut label);
        len_field(2, b"x", &mut label);
        len_field(11, &label, &mut meta);
        let mut cm = Vec::new();
        len_field(1, &meta, &mut cm);
        let mut entry = Vec::new();
        len_field(1, b"k", &mut entry);
        len_field(2, b"v", &mut entry);
        len_field(2, &entry, &mut cm);
        let mut tm = Vec::new();
        len_field(1, b"v1", &mut tm);
        len_field(2, b"ConfigMap", &mut tm);
        let mut body = MAGIC.to_vec();
        len_field(1, &tm, &mut body);
        len_field(2, &cm, &mut body);
        let v = decode(&body).expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cm1", "namespace": "ns1", "labels": {"app": "x"}},
                   "data": {"k": "v"}})
        );
        assert!(decode(b"nope").is_err());
        assert!(decode(&body[..body.len() - 2]).is_err());
    }
}
