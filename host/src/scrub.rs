//! Credentials taken out of text before it leaves the host's hands.
//!
//! Error messages come from servers, SDKs and guests, and some of them quote what they
//! were given: an API server's validation error repeats a presigned `restoreSnapshotURL`
//! (its query string is a bearer credential for the snapshot), an HTTP error repeats an
//! `Authorization` header, a guest logs a URL it was handed. [`secrets`] is applied where
//! such text leaves the host: errors handed to a guest, audit records, logs of what a
//! guest said, and the command line's error output. It removes values, not the shape
//! around them, so a reader still sees which parameter or header was involved.
//!
//! What it knows: the query parameters of SigV4, SigV2 and common token-carrying URLs,
//! `Authorization`/`Bearer` values, AWS key variables, and PEM private-key blocks. It is a
//! net under the other measures (credentials never reach a guest; exec-plugin failures are
//! replaced by a fixed sentence in `capabilities::k8s::provider`), not the only one.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What replaces a removed value.
pub const REDACTED: &str = "REDACTED";

/// Query parameters whose value is a credential, matched case-insensitively.
static QUERY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)([?&;](?:x-amz-signature|x-amz-credential|x-amz-security-token|signature|awsaccesskeyid|sig|token|access_token|id_token|client_secret|password)=)[^&\s"'#<>)\]}]+"#,
    )
    .unwrap_or_else(|e| unreachable!("the query pattern is valid: {e}"))
});

/// `Authorization: ...` and bare `Bearer ...` values.
static AUTHORIZATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)(authorization["']?\s*[:=]\s*["']?(?:bearer|basic|aws4-hmac-sha256)?\s*|\bbearer\s+)[^\s"',;]+"#)
        .unwrap_or_else(|e| unreachable!("the authorization pattern is valid: {e}"))
});

/// AWS credential variables and their config-file spellings.
static AWS_KEYS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)(aws_secret_access_key|aws_session_token|secretaccesskey|sessiontoken)(["']?\s*[:=]\s*["']?)[^\s"',;}]+"#)
        .unwrap_or_else(|e| unreachable!("the AWS key pattern is valid: {e}"))
});

/// PEM private keys, whole.
static PRIVATE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)")
        .unwrap_or_else(|e| unreachable!("the private key pattern is valid: {e}"))
});

/// `text` with every credential value it recognises replaced by [`REDACTED`]; borrowed
/// when there is nothing to remove (the common case costs no allocation).
pub fn secrets(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for (re, replacement) in [
        (
            &*PRIVATE_KEY,
            "-----BEGIN ${1}PRIVATE KEY----- REDACTED -----END ${1}PRIVATE KEY-----",
        ),
        (&*QUERY, "${1}REDACTED"),
        (&*AUTHORIZATION, "${1}REDACTED"),
        (&*AWS_KEYS, "${1}${2}REDACTED"),
    ] {
        if let Cow::Owned(s) = re.replace_all(&out, replacement) {
            out = Cow::Owned(s);
        }
    }
    out
}

/// [`secrets`] for an owned string, returning it unchanged (no copy) when clean.
pub fn secrets_owned(text: String) -> String {
    match secrets(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(s) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_query_strings_lose_their_credentials_but_keep_their_shape() {
        let url = "https://s3.example.com/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261127%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261127T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQoGZXIvYXdzE&X-Amz-Signature=0123abcd";
        let msg = format!("spec.etcd.managed.storage.restoreSnapshotURL: Invalid value: \"{url}\": must be https");
        let out = secrets(&msg);
        for leaked in ["AKIDEXAMPLE", "FQoGZXIvYXdzE", "0123abcd"] {
            assert!(!out.contains(leaked), "{leaked} survived: {out}");
        }
        assert!(out.contains("X-Amz-Signature=REDACTED"), "{out}");
        assert!(out.contains("X-Amz-Expires=3600"), "harmless parameters stay: {out}");
        assert!(
            out.ends_with("\": must be https"),
            "the text after the URL stays: {out}"
        );
    }

    #[test]
    fn headers_tokens_keys_and_private_keys_are_removed() {
        let cases = [
            (
                "request failed: Authorization: Bearer eyJhbGciOi.payload.sig",
                "eyJhbGciOi",
            ),
            (
                "header authorization=\"AWS4-HMAC-SHA256 Credential=AKID/x, Signature=ff\"",
                "AKID",
            ),
            ("sent bearer sha256~abcdef to the server", "sha256~abcdef"),
            ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG and more", "wJalrXUtnFEMI"),
            ("{\"SecretAccessKey\": \"wJalrXUtnFEMI\"}", "wJalrXUtnFEMI"),
            ("aws_session_token = IQoJb3JpZ2lu", "IQoJb3JpZ2lu"),
            ("https://x/y?token=t0k3n&other=1", "t0k3n"),
            (
                "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- end",
                "MIIEow",
            ),
            ("cut: -----BEGIN PRIVATE KEY-----\nMIIEvQ", "MIIEvQ"),
        ];
        for (text, leaked) in cases {
            let out = secrets(text);
            assert!(!out.contains(leaked), "{leaked} survived in {out:?}");
            assert!(out.contains(REDACTED), "{out:?}");
        }
        assert!(secrets("-----BEGIN RSA PRIVATE KEY-----\nA\n-----END RSA PRIVATE KEY----- end").ends_with(" end"));
    }

    #[test]
    fn clean_text_is_not_copied() {
        let text = "cannot get hypershift.openshift.io/v1beta1 HostedCluster clusters/example: not found";
        assert!(matches!(secrets(text), Cow::Borrowed(_)));
        let owned = text.to_string();
        let ptr = owned.as_ptr();
        let back = secrets_owned(owned);
        assert_eq!(back.as_ptr(), ptr);
    }
}
