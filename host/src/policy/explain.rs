//! `explain`: the policy set in plain words, for the person approving a run.
//!
//! It walks each policy's EST (Cedar's JSON form, via `Policy::to_json`)
//! rather than its text, so the wording follows the structure Cedar
//! evaluates: scope first, then `when`/`unless` conditions in compact Cedar
//! syntax. Policies whose principal can never be this guest are left out.

use std::fmt::Write as _;

use cedar_policy::{Effect, PolicySet};
use serde_json::Value;

use super::{Action, GuestIdentity, load::Entry};

/// Width of the text column before the `[policy-id]` column.
const TEXT_WIDTH: usize = 62;

pub(crate) fn explain(
    policies: &PolicySet,
    order: &[Entry],
    guest: &GuestIdentity,
    group_members: &dyn Fn(&str) -> Vec<&'static str>,
) -> String {
    let mut permits = Vec::new();
    let mut forbids = Vec::new();
    let mut other_guests = 0usize;
    for entry in order {
        let Some(policy) = policies.policy(&entry.id) else {
            continue;
        };
        let line = match policy.to_json() {
            Ok(est) => {
                if !principal_matches(&est["principal"], &guest.name) {
                    other_guests += 1;
                    continue;
                }
                describe(&est, group_members)
            }
            // Cannot happen for parsed policies; still show the policy rather
            // than hide it from the reviewer.
            Err(_) => policy.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
        };
        let line = format_line(&line, entry.id.as_ref());
        match policy.effect() {
            Effect::Permit => permits.push(line),
            Effect::Forbid => forbids.push(line),
        }
    }

    let sha = if guest.sha256.is_empty() {
        "unknown".to_string()
    } else if guest.sha256.len() > 12 {
        format!("{}…", guest.sha256.get(..12).unwrap_or(&guest.sha256))
    } else {
        guest.sha256.clone()
    };
    let mut out = format!("Guest `{}` (sha256 {sha}) may:\n", guest.name);
    if permits.is_empty() {
        out.push_str("  • nothing: no policy permits anything\n");
    }
    for line in &permits {
        out.push_str(line);
    }
    if !forbids.is_empty() {
        out.push_str("It may never:\n");
        for line in &forbids {
            out.push_str(line);
        }
    }
    if other_guests > 0 {
        let _ = writeln!(
            out,
            "({other_guests} policies apply only to other guests and are not shown.)"
        );
    }
    out.push_str("Everything else is denied by default.\n");
    out
}

fn format_line(text: &str, id: &str) -> String {
    if text.chars().count() < TEXT_WIDTH {
        format!("  • {text:<TEXT_WIDTH$} [{id}]\n")
    } else {
        format!("  • {text}  [{id}]\n")
    }
}

/// Whether the principal scope can match `Ferry::Guest::"<guest>"`.
fn principal_matches(scope: &Value, guest: &str) -> bool {
    match scope["op"].as_str() {
        Some("==") | Some("in") => match entity_of(&scope["entity"]) {
            // A Guest has no parents, so `in` matches only the guest itself.
            Some((ty, id)) => ty == "Ferry::Guest" && id == guest,
            None => true,
        },
        Some("is") => scope["entity_type"].as_str() == Some("Ferry::Guest"),
        _ => true,
    }
}

fn describe(est: &Value, group_members: &dyn Fn(&str) -> Vec<&'static str>) -> String {
    let (actions, only_import) = actions_text(&est["action"], group_members);
    let mut conditions: Vec<(String, Value)> = est["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| (c["kind"].as_str().unwrap_or("when").to_string(), c["body"].clone()))
                .collect()
        })
        .unwrap_or_default();

    // `resource in [a, b]` / `resource == a` in a `when` with an open scope
    // is how Cedar spells "one of these resources": fold it into the scope.
    let mut resource = None;
    if est["resource"]["op"].as_str() == Some("All")
        && let Some(pos) = conditions
            .iter()
            .position(|(k, b)| k == "when" && resource_list(b).is_some())
    {
        let (_, body) = conditions.remove(pos);
        resource = resource_list(&body).map(|list| {
            list.iter()
                .map(|(ty, id)| entity_words(ty, id, only_import))
                .collect::<Vec<_>>()
                .join(", ")
        });
    }
    let resource = resource.unwrap_or_else(|| scope_words(&est["resource"], only_import));

    let mut text = if only_import {
        let r = if resource == "any resource" {
            "any interface".to_string()
        } else {
            resource
        };
        format!("import {r}")
    } else {
        format!("{actions} on {resource}")
    };
    for (kind, body) in conditions {
        let _ = write!(text, " {kind} {}", condition_words(&body));
    }
    text
}

fn actions_text(scope: &Value, group_members: &dyn Fn(&str) -> Vec<&'static str>) -> (String, bool) {
    let names: Vec<String> = match scope["op"].as_str() {
        Some("==") => entity_of(&scope["entity"]).map(|(_, id)| vec![id]).unwrap_or_default(),
        Some("in") => {
            if let Some(list) = scope["entities"].as_array() {
                list.iter().filter_map(|e| entity_of(e).map(|(_, id)| id)).collect()
            } else {
                entity_of(&scope["entity"]).map(|(_, id)| vec![id]).unwrap_or_default()
            }
        }
        _ => return ("any action".to_string(), false),
    };
    let only_import = !names.is_empty() && names.iter().all(|n| n == "import");
    let words: Vec<String> = names
        .iter()
        .map(|n| {
            if Action::from_name(n).is_some() {
                return n.clone();
            }
            let members = group_members(n);
            if n == "mutating" {
                "any mutating action".to_string()
            } else if members.is_empty() {
                n.clone()
            } else {
                format!("{n} ({})", members.join(", "))
            }
        })
        .collect();
    (words.join(", "), only_import)
}

fn scope_words(scope: &Value, interface: bool) -> String {
    match scope["op"].as_str() {
        Some("==") => entity_of(&scope["entity"]).map_or_else(|| "?".into(), |(t, i)| entity_words(&t, &i, interface)),
        Some("in") => entity_of(&scope["entity"]).map_or_else(|| "?".into(), |(t, i)| within_words(&t, &i)),
        Some("is") => {
            let ty = short(scope["entity_type"].as_str().unwrap_or("?")).to_string();
            match entity_of(&scope["in"]["entity"]) {
                Some((t, i)) => format!(
                    "any {ty} in {}",
                    within_words(&t, &i).trim_start_matches("anything in ")
                ),
                None => format!("any {ty}"),
            }
        }
        _ => "any resource".to_string(),
    }
}

/// `Ferry::Namespace` → `Namespace`.
fn short(ty: &str) -> &str {
    ty.strip_prefix("Ferry::").unwrap_or(ty)
}

/// One resource (`resource == E`) in words.
fn entity_words(ty: &str, id: &str, interface: bool) -> String {
    match short(ty) {
        "Interface" if interface => id.to_string(),
        "Interface" => format!("interface {id}"),
        "Cluster" => format!("cluster {id}"),
        "Namespace" => format!("namespace {id}"),
        "K8sObject" => format!("object {id}"),
        "Bucket" => format!("bucket {id}"),
        "S3Prefix" | "S3Object" => format!("s3://{id}"),
        "Zone" => format!("zone {id}"),
        "RecordSet" => format!("record set {id}"),
        "EtcdMember" => format!("etcd member {id}"),
        "Workspace" => "the workspace root".to_string(),
        "Path" => format!("workspace path {id}"),
        "Guest" => format!("guest {id}"),
        other => format!("{other} \"{id}\""),
    }
}

/// Everything inside one entity (`resource in E`) in words.
fn within_words(ty: &str, id: &str) -> String {
    match short(ty) {
        "Cluster" => format!("anything in cluster {id}"),
        "Namespace" => format!("objects in namespace {id}"),
        "Bucket" => format!("anything in bucket {id}"),
        "S3Prefix" => format!("anything under s3://{id}"),
        "Zone" => format!("anything in zone {id}"),
        "Workspace" => "anything in the workspace".to_string(),
        "Path" => format!("anything under workspace path {id}"),
        _ => entity_words(ty, id, false),
    }
}

/// `(type, id)` of an EST entity reference, in either of its JSON spellings.
fn entity_of(v: &Value) -> Option<(String, String)> {
    let e = v.get("__entity").unwrap_or(v);
    Some((e.get("type")?.as_str()?.to_string(), e.get("id")?.as_str()?.to_string()))
}

/// The entities of `resource in [..]` / `resource == E`, if that is all the
/// expression says.
fn resource_list(body: &Value) -> Option<Vec<(String, String)>> {
    let (op, args) = body.as_object()?.iter().next()?;
    if !matches!(op.as_str(), "in" | "==") || args["left"]["Var"].as_str() != Some("resource") {
        return None;
    }
    let right = &args["right"];
    if let Some(set) = right.get("Set").and_then(Value::as_array) {
        return set.iter().map(|e| entity_of(e.get("Value")?)).collect();
    }
    if let Some(set) = right.get("Value").and_then(Value::as_array) {
        return set.iter().map(entity_of).collect();
    }
    entity_of(right.get("Value")?).map(|e| vec![e])
}

/// A condition with light sugar: conjunctions become "and", and
/// `resource.kind == "X"` becomes `kind is "X"`. Anything else is Cedar.
fn condition_words(body: &Value) -> String {
    let Some((op, args)) = body.as_object().and_then(|o| o.iter().next()) else {
        return expr(body);
    };
    match op.as_str() {
        "&&" => format!(
            "{} and {}",
            condition_words(&args["left"]),
            condition_words(&args["right"])
        ),
        "==" | "!=" if args["left"]["."]["left"]["Var"].as_str() == Some("resource") => {
            let attr = args["left"]["."]["attr"].as_str().unwrap_or("?");
            let verb = if op == "==" { "is" } else { "is not" };
            format!("{attr} {verb} {}", expr(&args["right"]))
        }
        _ => expr(body),
    }
}

/// Renders an EST expression as compact Cedar source.
pub(crate) fn expr(v: &Value) -> String {
    let Some((op, a)) = v.as_object().and_then(|o| o.iter().next()) else {
        return v.to_string();
    };
    let bin = |sym: &str| format!("{} {sym} {}", sub(&a["left"]), sub(&a["right"]));
    let method = |m: &str| format!("{}.{m}({})", sub(&a["left"]), expr(&a["right"]));
    match op.as_str() {
        "Value" => value(a),
        "Var" => a.as_str().unwrap_or("?").to_string(),
        "Slot" => a.as_str().unwrap_or("?").to_string(),
        "!" => format!("!{}", sub(&a["arg"])),
        "neg" => format!("-{}", sub(&a["arg"])),
        "==" | "!=" | "in" | "<" | "<=" | ">" | ">=" | "&&" | "||" | "+" | "-" | "*" => bin(op),
        "contains" | "containsAll" | "containsAny" | "getTag" | "hasTag" => method(op),
        "isEmpty" => format!("{}.isEmpty()", sub(&a["arg"])),
        "." => format!("{}.{}", sub(&a["left"]), a["attr"].as_str().unwrap_or("?")),
        "has" => {
            let attr = match &a["attr"] {
                Value::Array(parts) => parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("."),
                other => other.as_str().unwrap_or("?").to_string(),
            };
            format!("{} has {attr}", sub(&a["left"]))
        }
        "like" => {
            let pattern: String = a["pattern"]
                .as_array()
                .map(|elems| {
                    elems
                        .iter()
                        .map(|e| match e.get("Literal").and_then(Value::as_str) {
                            Some(lit) => lit.replace('\\', "\\\\").replace('"', "\\\"").replace('*', "\\*"),
                            None => "*".to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("{} like \"{pattern}\"", sub(&a["left"]))
        }
        "is" => {
            let ty = a["entity_type"].as_str().unwrap_or("?");
            match a.get("in") {
                Some(e) => format!("{} is {ty} in {}", sub(&a["left"]), sub(e)),
                None => format!("{} is {ty}", sub(&a["left"])),
            }
        }
        "if-then-else" => format!(
            "if {} then {} else {}",
            expr(&a["if"]),
            expr(&a["then"]),
            expr(&a["else"])
        ),
        "Set" => format!(
            "[{}]",
            a.as_array()
                .map(|xs| xs.iter().map(expr).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ),
        "Record" => format!(
            "{{{}}}",
            a.as_object()
                .map(|m| m
                    .iter()
                    .map(|(k, x)| format!("{k}: {}", expr(x)))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        // Extension calls: `{"ip": [arg]}`, `{"lessThan": [a, b]}`.
        name => {
            let args: Vec<String> = a.as_array().map(|xs| xs.iter().map(expr).collect()).unwrap_or_default();
            match args.split_first() {
                Some((recv, rest)) if !matches!(name, "ip" | "decimal" | "datetime" | "duration") => {
                    format!("{recv}.{name}({})", rest.join(", "))
                }
                _ => format!("{name}({})", args.join(", ")),
            }
        }
    }
}

/// A sub-expression, parenthesised when it is itself an operator, so the
/// compact text never changes meaning.
fn sub(v: &Value) -> String {
    let compound = v.as_object().and_then(|o| o.keys().next()).is_some_and(|k| {
        matches!(
            k.as_str(),
            "==" | "!="
                | "in"
                | "<"
                | "<="
                | ">"
                | ">="
                | "&&"
                | "||"
                | "+"
                | "-"
                | "*"
                | "like"
                | "is"
                | "has"
                | "if-then-else"
        )
    });
    if compound { format!("({})", expr(v)) } else { expr(v) }
}

/// A literal in Cedar syntax.
fn value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        Value::Array(xs) => format!("[{}]", xs.iter().map(value).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => {
            if let Some((ty, id)) = o.get("__entity").and_then(entity_of) {
                return format!("{ty}::\"{id}\"");
            }
            if let Some(ext) = o.get("__extn") {
                return format!("{}({})", ext["fn"].as_str().unwrap_or("?"), value(&ext["arg"]));
            }
            format!(
                "{{{}}}",
                o.iter()
                    .map(|(k, x)| format!("{k}: {}", value(x)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        other => other.to_string(),
    }
}
