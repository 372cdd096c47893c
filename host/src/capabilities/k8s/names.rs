//! Names a guest gives the Kubernetes capability, checked as the API server checks them and
//! before anything else sees them: before discovery sends an apiVersion to the server, and
//! before the policy decides on a name.
//!
//! A name is part of the request URL. Unchecked, `victim#` would be decided as `victim#` but
//! sent to `.../victim` (the rest, query included, is a URL fragment), so a policy on names,
//! or `--plan`'s dry-run, could be bypassed. The rules follow apimachinery's
//! `pkg/util/validation` (`IsDNS1123Subdomain`, `IsDNS1123Label`, `IsDNS1035Label`) and
//! `pkg/api/validation/path` (`IsValidPathSegmentName`), applied per kind as
//! kubernetes' `ValidateNamespaceName`, `ValidateServiceName` and `ValidateRBACName` do;
//! every other kind, custom resources included, uses `NameIsDNSSubdomain`.

use crate::capabilities::error::{HostError, HostResult};

const SUBDOMAIN_MAX: usize = 253;
const LABEL_MAX: usize = 63;

fn invalid(what: &str, value: &str, rule: &str) -> HostError {
    // Never echo a huge argument back in full.
    let shown: String = value.chars().take(80).collect();
    let more = if value.chars().count() > 80 { "…" } else { "" };
    HostError::Invalid(format!(
        "`{shown}{more}` is not a valid {what}: {rule} (the host refuses it as the API server would, before any request or policy decision)"
    ))
}

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// The shape of a DNS-1123 label, without its length bound: lower-case alphanumerics and
/// `-`, starting and ending alphanumeric.
fn label_shaped(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| is_alnum_lower(c) || c == '-')
        && s.starts_with(is_alnum_lower)
        && s.ends_with(is_alnum_lower)
}

/// apimachinery `IsDNS1123Label`.
fn is_dns1123_label(s: &str) -> bool {
    s.len() <= LABEL_MAX && label_shaped(s)
}

/// apimachinery `IsDNS1035Label`: a DNS-1123 label that starts with a letter.
fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// apimachinery `IsDNS1123Subdomain`: dot-separated label shapes.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= SUBDOMAIN_MAX && s.split('.').all(label_shaped)
}

const LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
     start and end with an alphanumeric character, and be at most 63 characters (e.g. 'my-name')";
const DNS1035_RULE: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start \
     with a letter, end with an alphanumeric character, and be at most 63 characters (e.g. 'my-name')";
const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
     '-' or '.', start and end with an alphanumeric character, and be at most 253 characters (e.g. 'example.com')";
const SEGMENT_RULE: &str = "it may not be '.' or '..', contain '/' or '%', contain characters a URL gives \
     meaning to ('#', '?') or whitespace and control characters, or be longer than 253 characters";

/// Checks an `apiVersion` (`v1` or `<group>/<version>`) and a kind before discovery.
pub(crate) fn check_type(api_version: &str, kind: &str) -> HostResult<()> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (Some(g), v),
        None => (None, api_version),
    };
    // Unlike `check_group`, a written group may not be empty (`/v1`).
    if let Some(group) = group {
        bool_or(is_dns1123_subdomain(group), "API group", group, SUBDOMAIN_RULE)?;
    }
    bool_or(is_dns1035_label(version), "API version", version, DNS1035_RULE)?;
    check_kind(kind)
}

/// Checks a kind: a letter, then letters and digits, as every kind the API server serves.
pub(crate) fn check_kind(kind: &str) -> HostResult<()> {
    let kind_ok = kind.len() <= LABEL_MAX
        && kind.starts_with(|c: char| c.is_ascii_alphabetic())
        && kind.chars().all(|c| c.is_ascii_alphanumeric());
    bool_or(
        kind_ok,
        "kind",
        kind,
        "a kind is a letter followed by letters and digits, at most 63 characters (e.g. 'HostedCluster')",
    )
}

/// Checks an API group on its own (`""` is the core group).
pub(crate) fn check_group(group: &str) -> HostResult<()> {
    bool_or(
        group.is_empty() || is_dns1123_subdomain(group),
        "API group",
        group,
        SUBDOMAIN_RULE,
    )
}

/// Checks a namespace (kubernetes `ValidateNamespaceName`: a DNS-1123 label).
pub(crate) fn check_namespace(namespace: &str) -> HostResult<()> {
    bool_or(is_dns1123_label(namespace), "namespace", namespace, LABEL_RULE)
}

/// Checks an object name under its kind's rule.
pub(crate) fn check_name(group: &str, kind: &str, name: &str) -> HostResult<()> {
    let (ok, rule) = match (group, kind) {
        ("", "Namespace") => (is_dns1123_label(name), LABEL_RULE),
        ("", "Service") => (is_dns1035_label(name), DNS1035_RULE),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding") => {
            (is_path_segment(name), SEGMENT_RULE)
        }
        _ => (is_dns1123_subdomain(name), SUBDOMAIN_RULE),
    };
    bool_or(ok, &format!("{kind} name"), name, rule)
}

fn bool_or(ok: bool, what: &str, value: &str, rule: &str) -> HostResult<()> {
    if ok { Ok(()) } else { Err(invalid(what, value, rule)) }
}

/// apimachinery `IsValidPathSegmentName`, without the characters a URL gives meaning to.
fn is_path_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= SUBDOMAIN_MAX
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| matches!(c, '/' | '%' | '#' | '?') || c.is_whitespace() || c.is_control())
}

/// A checked name as it goes into a request path: percent-encoded beyond the characters a
/// path segment carries as they are, so that what the server decodes is the name the policy
/// decided on. Subdomain and label names pass unchanged.
pub(crate) fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | ':' | '@') {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_change_the_url_are_refused() {
        for bad in [
            "victim#",
            "victim?dryRun=All",
            "#",
            "?",
            "a/b",
            "a%2Fb",
            "",
            ".",
            "..",
            "Victim",
            "a b",
        ] {
            assert!(check_name("", "Secret", bad).is_err(), "{bad:?}");
            assert!(
                check_name("hypershift.openshift.io", "HostedCluster", bad).is_err(),
                "{bad:?}"
            );
        }
        for bad in ["victim#", "a?b", "a/b", "a%b", ".", "..", "a\tb", ""] {
            assert!(
                check_name("rbac.authorization.k8s.io", "ClusterRole", bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_the_api_server_accepts_pass() -> HostResult<()> {
        check_name("", "Secret", "pull-secret")?;
        check_name("", "ConfigMap", "a.b-c.0")?;
        check_name("hypershift.openshift.io", "HostedCluster", "example")?;
        check_name("", "Namespace", "clusters-example")?;
        check_name("", "Service", "kube-apiserver")?;
        check_name(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "system:controller:node-controller",
        )?;
        check_namespace("clusters")?;
        check_type("v1", "Secret")?;
        check_type("hypershift.openshift.io/v1beta1", "HostedCluster")?;
        check_group("")?;
        check_group("cluster.x-k8s.io")
    }

    #[test]
    fn per_kind_rules_follow_kubernetes() {
        // A Namespace is a label: no dots. A Service starts with a letter.
        assert!(check_name("", "Namespace", "a.b").is_err());
        assert!(check_name("", "Service", "1abc").is_err());
        assert!(check_name("", "Secret", "1abc").is_ok());
        assert!(check_namespace(&"a".repeat(64)).is_err());
        assert!(check_name("", "Secret", &"a".repeat(254)).is_err());
        assert!(check_name("", "Secret", &"a".repeat(253)).is_ok());
    }

    #[test]
    fn types_are_checked_before_discovery() {
        for (v, k) in [
            ("v1#", "Secret"),
            ("v1?x=y", "Secret"),
            ("../v1", "Secret"),
            ("Hypershift.io/v1", "X"),
            ("a/b/c", "X"),
            ("v1", "Secret/x"),
            ("v1", ""),
            ("", "Secret"),
        ] {
            assert!(check_type(v, k).is_err(), "{v} {k}");
        }
    }

    #[test]
    fn huge_arguments_are_not_echoed_in_full() {
        let huge = "x#".repeat(4 * 1024 * 1024);
        let Err(e) = check_name("", "Secret", &huge) else {
            panic!("an 8 MiB name passed");
        };
        assert!(e.to_string().len() < 1024, "{} bytes", e.to_string().len());
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path_segment("pull-secret"), "pull-secret");
        assert_eq!(path_segment("system:a"), "system:a");
        assert_eq!(path_segment("a+b"), "a%2Bb");
    }
}
