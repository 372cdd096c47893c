//! Reading a policy file: parse, name policies by `@id`, link templates
//! from run parameters through `@link`, and validate strictly.
//!
//! Every step fails closed: a policy that does not parse, does not validate
//! or cannot be linked stops the load, so a run never starts under a policy
//! set other than the one that was reviewed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::OnceLock;

use cedar_policy::{
    EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, Schema, SlotId, ValidationMode, Validator,
};
use miette::Diagnostic;

use super::{GuestIdentity, PolicyError, SCHEMA_SRC};

/// The parsed schema, shared by every engine: it is compiled into the
/// binary, so parsing it once per process is enough.
pub(crate) fn schema() -> Result<&'static Schema, PolicyError> {
    static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Schema::from_cedarschema_str(SCHEMA_SRC)
                .map(|(schema, _warnings)| schema)
                .map_err(|e| render_diagnostic(&e, SCHEMA_SRC, "ferry.cedarschema"))
        })
        .as_ref()
        .map_err(|message| PolicyError::Schema {
            message: message.clone(),
        })
}

/// One policy of the final set, in file order, for `explain`.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) id: PolicyId,
}

/// What loading produced.
pub(crate) struct Loaded {
    pub(crate) policies: PolicySet,
    pub(crate) order: Vec<Entry>,
    pub(crate) params: BTreeMap<String, String>,
    pub(crate) warnings: Vec<String>,
}

/// The HyperShift hosted control plane namespace for a HostedCluster:
/// `<namespace>-<name>` with dots in the name replaced by dashes (as
/// HyperShift's `manifests.HostedControlPlaneNamespace` does).
pub fn hcp_namespace(hc_namespace: &str, hc_name: &str) -> String {
    format!("{hc_namespace}-{}", hc_name.replace('.', "-"))
}

/// The run parameters plus derived ones (`hcp_namespace`), as links see them.
pub(crate) fn effective_params(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = params.clone();
    if !out.contains_key("hcp_namespace")
        && let (Some(ns), Some(name)) = (params.get("hc_namespace"), params.get("hc_name"))
    {
        out.insert("hcp_namespace".to_string(), hcp_namespace(ns, name));
    }
    out
}

/// `src` with the actions of [`super::DEPRECATED_ACTION_PREFIXES`] renamed (`Action::"s3:get"`
/// → `Action::"objects:get"`), and a warning per old name found, so policies written before
/// the names followed the WIT interfaces keep working.
fn rename_deprecated_actions(src: &str, origin: &str) -> (String, Vec<String>) {
    let mut out = src.to_string();
    let mut warnings = Vec::new();
    for (old, new) in super::DEPRECATED_ACTION_PREFIXES {
        let from = format!("Action::\"{old}");
        if out.contains(&from) {
            warnings.push(format!(
                "{origin}: the action names `{old}*` are deprecated; write `{new}*` (they are read as such)"
            ));
            tracing::warn!(policy = origin, "deprecated action names `{old}*`: write `{new}*`");
            out = out.replace(&from, &format!("Action::\"{new}"));
        }
    }
    (out, warnings)
}

/// Parses, re-ids, links and validates `src`.
pub(crate) fn load(
    src: &str,
    origin: &str,
    params: &BTreeMap<String, String>,
    guest: &GuestIdentity,
) -> Result<Loaded, PolicyError> {
    let (renamed, deprecations) = rename_deprecated_actions(src, origin);
    let src = renamed.as_str();
    let parsed = PolicySet::from_str(src).map_err(|errs| PolicyError::Parse {
        origin: origin.to_string(),
        message: errs
            .iter()
            .map(|e| render_diagnostic(e, src, origin))
            .collect::<Vec<_>>()
            .join("\n"),
    })?;

    // Cedar numbers statements `policy0`, `policy1`, ... in file order; sort
    // on that number so ids, links and `explain` follow the file.
    let mut statements: Vec<(usize, bool, PolicyId)> = parsed
        .policies()
        .map(|p| (p.id().clone(), false))
        .chain(parsed.templates().map(|t| (t.id().clone(), true)))
        .map(|(id, is_template)| {
            let n = id
                .to_string()
                .strip_prefix("policy")
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            (n, is_template, id)
        })
        .collect();
    statements.sort();

    let mut set = PolicySet::new();
    let mut order = Vec::new();
    let mut templates = Vec::new();
    let mut seen = HashSet::new();
    for (_, is_template, old) in &statements {
        let annotation = if *is_template {
            parsed.template_annotation(old, "id")
        } else {
            parsed.annotation(old, "id")
        };
        let id = match annotation {
            Some(id) if id.trim().is_empty() || id.contains('#') => {
                return Err(PolicyError::Parse {
                    origin: origin.to_string(),
                    message: format!("policy `{old}` has an invalid @id `{id}` (empty, or contains `#`)"),
                });
            }
            Some(id) => PolicyId::new(id),
            None => old.clone(),
        };
        if !seen.insert(id.clone()) {
            return Err(PolicyError::Parse {
                origin: origin.to_string(),
                message: format!("two policies have the id `{id}`; every @id must be unique"),
            });
        }
        let added = if *is_template {
            match parsed.template(old) {
                Some(t) => set.add_template(t.new_id(id.clone())),
                None => continue,
            }
        } else {
            match parsed.policy(old) {
                Some(p) => set.add(p.new_id(id.clone())),
                None => continue,
            }
        };
        added.map_err(|e| PolicyError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        if *is_template {
            templates.push(id);
        } else if parsed.annotation(old, "link").is_some() {
            // @link on a policy without slots does nothing; the author most
            // likely meant a template, so do not let it pass silently.
            return Err(PolicyError::Link {
                template: id.to_string(),
                message: "@link is set but the policy has no ?principal or ?resource slot".to_string(),
            });
        } else {
            order.push(Entry { id });
        }
    }

    let params = effective_params(params);
    for tid in templates {
        for link_id in link_template(&mut set, &tid, &params, guest)? {
            order.push(Entry { id: link_id });
        }
    }

    let mut warnings = deprecations;
    warnings.extend(validate(&set, src, origin)?);
    Ok(Loaded {
        policies: set,
        order,
        params,
        warnings,
    })
}

/// Strict validation against the schema; returns the warnings.
pub(crate) fn validate(set: &PolicySet, src: &str, origin: &str) -> Result<Vec<String>, PolicyError> {
    let validator = Validator::new(schema()?.clone());
    let result = validator.validate(set, ValidationMode::Strict);
    let errors: Vec<String> = result
        .validation_errors()
        .map(|e| render_diagnostic(e, src, origin))
        .collect();
    if !errors.is_empty() {
        return Err(PolicyError::Validation {
            origin: origin.to_string(),
            errors,
        });
    }
    Ok(result
        .validation_warnings()
        .map(|w| render_diagnostic(w, src, origin))
        .collect())
}

/// Links one template once per `;`-separated entry of its `@link`.
fn link_template(
    set: &mut PolicySet,
    tid: &PolicyId,
    params: &BTreeMap<String, String>,
    guest: &GuestIdentity,
) -> Result<Vec<PolicyId>, PolicyError> {
    let template = tid.to_string();
    let link_err = |message: String| PolicyError::Link {
        template: template.clone(),
        message,
    };
    let Some(t) = set.template(tid) else {
        return Err(link_err("template vanished from the policy set".to_string()));
    };
    let slots: Vec<SlotId> = t.slots().cloned().collect();
    let has_principal = slots.contains(&SlotId::principal());
    let has_resource = slots.contains(&SlotId::resource());
    let Some(spec) = t.annotation("link").map(str::to_string) else {
        // A template nobody links never applies; that is almost certainly a
        // mistake in a reviewed file, so say so instead of ignoring it.
        return Err(link_err(
            "the template has no @link(\"...\") annotation, so it would never apply".to_string(),
        ));
    };

    let mut ids = Vec::new();
    for (n, entry) in spec.split(';').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
        let mut vals: HashMap<SlotId, EntityUid> = HashMap::new();
        for assignment in split_assignments(entry) {
            let Some((key, value)) = assignment.split_once('=') else {
                return Err(link_err(format!(
                    "`{assignment}` is not `principal=...` or `resource=...`"
                )));
            };
            let slot = match key.trim() {
                "principal" if has_principal => SlotId::principal(),
                "resource" if has_resource => SlotId::resource(),
                k @ ("principal" | "resource") => {
                    return Err(link_err(format!("the template has no ?{k} slot to link")));
                }
                k => {
                    return Err(link_err(format!(
                        "unknown link key `{k}` (use principal= or resource=)"
                    )));
                }
            };
            let uid = link_uid(value.trim(), params, &template)?;
            if vals.insert(slot.clone(), uid).is_some() {
                return Err(link_err(format!("entry `{entry}` sets {slot} twice")));
            }
        }
        if has_principal && !vals.contains_key(&SlotId::principal()) {
            // Unset ?principal means "the guest running now".
            let guest_uid = guest_uid(guest).map_err(link_err)?;
            vals.insert(SlotId::principal(), guest_uid);
        }
        if has_resource && !vals.contains_key(&SlotId::resource()) {
            return Err(link_err(format!("entry `{entry}` does not set resource=")));
        }
        let id = PolicyId::new(format!("{template}#{}", n + 1));
        set.link(tid.clone(), id.clone(), vals)
            .map_err(|e| link_err(e.to_string()))?;
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(link_err(
            "@link has no entries, so the template would never apply".to_string(),
        ));
    }
    Ok(ids)
}

/// An entry may set both slots: `principal=...,resource=...`. Commas inside
/// the quoted id are kept (ids are split on commas outside quotes only).
fn split_assignments(entry: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, c) in entry.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                out.push(entry[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(entry[start..].trim());
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// `Ferry::Namespace::"{source}/{hc_namespace}"` → an entity uid. The id is
/// built from the substituted text directly (never re-parsed as Cedar), so
/// a parameter value cannot break out of the quotes or pick another type.
fn link_uid(value: &str, params: &BTreeMap<String, String>, template: &str) -> Result<EntityUid, PolicyError> {
    let link_err = |message: String| PolicyError::Link {
        template: template.to_string(),
        message,
    };
    let Some((ty, rest)) = value.split_once("::\"") else {
        return Err(link_err(format!("`{value}` is not of the form Type::\"id\"")));
    };
    let Some(id) = rest.strip_suffix('"') else {
        return Err(link_err(format!("`{value}` does not end with a quote")));
    };
    if id.contains('"') || id.contains('\\') {
        return Err(link_err(format!(
            "`{value}`: quotes and escapes are not supported in link ids"
        )));
    }
    let ty = EntityTypeName::from_str(ty.trim()).map_err(|e| link_err(format!("`{ty}` is not a type name: {e}")))?;
    let id = substitute(id, params, template)?;
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
}

/// Replaces `{param}` with its value; `{{` and `}}` stand for braces.
pub(crate) fn substitute(text: &str, params: &BTreeMap<String, String>, template: &str) -> Result<String, PolicyError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for n in chars.by_ref() {
                    if n == '}' {
                        closed = true;
                        break;
                    }
                    name.push(n);
                }
                if !closed {
                    return Err(PolicyError::Link {
                        template: template.to_string(),
                        message: format!("unclosed `{{` in `{text}`"),
                    });
                }
                let name = name.trim();
                match params.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        return Err(PolicyError::MissingParam {
                            template: template.to_string(),
                            param: name.to_string(),
                        });
                    }
                }
            }
            '}' => {
                return Err(PolicyError::Link {
                    template: template.to_string(),
                    message: format!("stray `}}` in `{text}` (write `}}}}` for a brace)"),
                });
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `Ferry::Guest::"<name>"`.
pub(crate) fn guest_uid(guest: &GuestIdentity) -> Result<EntityUid, String> {
    let ty = EntityTypeName::from_str("Ferry::Guest").map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(&guest.name)))
}

/// `origin:line:col: message (help)` for any Cedar diagnostic. Cedar reports
/// locations only through miette labels (byte offsets into `src`).
pub(crate) fn render_diagnostic(d: &(impl Diagnostic + ?Sized), src: &str, origin: &str) -> String {
    let offset = d.labels().and_then(|mut labels| labels.next()).map(|l| l.offset());
    let at = match offset {
        Some(off) => {
            let (line, col) = line_col(src, off);
            format!("{origin}:{line}:{col}")
        }
        None => origin.to_string(),
    };
    let mut msg = format!("{at}: {d}");
    if let Some(help) = d.help() {
        msg.push_str(&format!(" (help: {help})"));
    }
    msg
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(src.len());
    while !src.is_char_boundary(off) {
        off -= 1;
    }
    let before = &src[..off];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_hcp_namespace() {
        let mut p = BTreeMap::new();
        p.insert("hc_namespace".to_string(), "clusters".to_string());
        p.insert("hc_name".to_string(), "my.cluster".to_string());
        assert_eq!(
            effective_params(&p).get("hcp_namespace").map(String::as_str),
            Some("clusters-my-cluster")
        );
        p.insert("hcp_namespace".to_string(), "given".to_string());
        assert_eq!(
            effective_params(&p).get("hcp_namespace").map(String::as_str),
            Some("given")
        );
    }

    #[test]
    fn substitution() {
        let mut p = BTreeMap::new();
        p.insert("a".to_string(), "x\"y".to_string());
        assert_eq!(substitute("{a}/{{b}}", &p, "t").ok().as_deref(), Some("x\"y/{b}"));
        assert!(matches!(
            substitute("{missing}", &p, "t"),
            Err(PolicyError::MissingParam { ref template, ref param }) if template == "t" && param == "missing"
        ));
        assert!(matches!(substitute("{a", &p, "t"), Err(PolicyError::Link { .. })));
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
    }

    #[test]
    fn assignments_split_outside_quotes() {
        assert_eq!(
            split_assignments(r#"principal=A::"x,y", resource=B::"z""#),
            [r#"principal=A::"x,y""#, r#"resource=B::"z""#]
        );
    }
}
