//! `ferry audit verify`: does this trail tell the truth?
//!
//! Checks, line by line, that each record chains to the one before it, and
//! with a key, that every checkpoint was signed by that key over the chain so
//! far. The first line that fails is named, with what it means for a person
//! reading the trail.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::AuditKey;

/// What a trail that verifies holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Lines read.
    pub records: usize,
    /// Checkpoints found.
    pub checkpoints: usize,
    /// Whether the checkpoints were checked against a key.
    pub signed: bool,
    /// Records after the last checkpoint: a run still going, or one that was killed.
    pub unsigned_tail: usize,
    /// Lines cut short by a crash, kept as evidence (1-based).
    pub torn: Vec<usize>,
}

/// Why a trail does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("cannot read the audit trail {}: {source}", path.display())]
    Read {
        /// The trail.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line breaks the chain, or a checkpoint does not verify.
    #[error("{}:{line}: {why}", path.display())]
    Bad {
        /// The trail.
        path: PathBuf,
        /// The first bad line, 1-based.
        line: usize,
        /// What is wrong there and what it means.
        why: String,
    },
    /// A key was given but nothing in the trail is signed with it.
    #[error(
        "{}: no checkpoint: the trail was written without a key, or its signed records were removed",
        path.display()
    )]
    Unsigned {
        /// The trail.
        path: PathBuf,
    },
}

/// Verifies the trail at `path`; with `key`, its checkpoints too, and at least one must exist.
pub fn verify(path: &Path, key: Option<&AuditKey>) -> Result<Verified, VerifyError> {
    let text = std::fs::read(path).map_err(|source| VerifyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, why: String| VerifyError::Bad {
        path: path.to_path_buf(),
        line,
        why,
    };
    let mut out = Verified {
        records: 0,
        checkpoints: 0,
        signed: key.is_some(),
        unsigned_tail: 0,
        torn: Vec::new(),
    };
    let mut prev = String::new();
    let body = text.strip_suffix(b"\n").unwrap_or(&text);
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        let n = i + 1;
        if body.is_empty() {
            break;
        }
        if raw.is_empty() {
            return Err(bad(n, "an empty line: the trail was edited".into()));
        }
        out.records += 1;
        out.unsigned_tail += 1;
        let hash = hex::encode(Sha256::digest(raw));
        let record: serde_json::Value = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(_) => {
                // A record cut short by a crash: kept, and the next record chains to it.
                out.torn.push(n);
                prev = hash;
                continue;
            }
        };
        let Some(claimed) = record.get("prev").and_then(|p| p.as_str()) else {
            return Err(bad(n, "a record without `prev`: not written by ferry".into()));
        };
        if claimed != prev {
            let why = if n == 1 {
                "the first record chains to one that is not there: the start of the trail was cut".to_string()
            } else {
                format!(
                    "does not chain to line {}: a record was removed, inserted or edited between them",
                    n - 1
                )
            };
            return Err(bad(n, why));
        }
        if record.get("kind").and_then(|k| k.as_str()) == Some("checkpoint") {
            out.checkpoints += 1;
            if let Some(key) = key {
                let id = record.get("key_id").and_then(|v| v.as_str()).unwrap_or_default();
                let mac = record.get("mac").and_then(|v| v.as_str()).unwrap_or_default();
                if id != key.id() {
                    return Err(bad(
                        n,
                        format!(
                            "the checkpoint was signed with another key (id `{id}`; this key's id is `{}`)",
                            key.id()
                        ),
                    ));
                }
                if !key.verifies(&prev, mac) {
                    return Err(bad(
                        n,
                        "the checkpoint's MAC does not match the records before it: they were rewritten".into(),
                    ));
                }
            }
            out.unsigned_tail = 0;
        }
        prev = hash;
    }
    if key.is_some() && out.checkpoints == 0 {
        return Err(VerifyError::Unsigned {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Audit, Record};
    use crate::policy::GuestIdentity;

    fn key(byte: u8) -> AuditKey {
        AuditKey::from_bytes(vec![byte; 32]).unwrap_or_else(|len| panic!("key of {len} bytes"))
    }

    fn guest() -> GuestIdentity {
        GuestIdentity {
            name: "g".into(),
            sha256: "00".into(),
        }
    }

    /// Two signed runs in one file.
    fn trail(dir: &Path, k: &AuditKey) -> std::io::Result<PathBuf> {
        let path = dir.join("audit.jsonl");
        for phase in ["backup", "restore"] {
            let audit = Audit::to_file(&path, Some(k.clone()))?;
            audit.record(&Record::event(&guest(), phase, "load", "ok", None));
            audit.record(&Record::event(&guest(), phase, "run", "ok", None));
            assert!(audit.checkpoint(&guest(), phase).is_some());
        }
        Ok(path)
    }

    fn edit(path: &Path, f: impl FnOnce(&mut Vec<String>)) -> std::io::Result<()> {
        let mut lines: Vec<String> = std::fs::read_to_string(path)?.lines().map(str::to_string).collect();
        f(&mut lines);
        std::fs::write(path, lines.join("\n") + "\n")
    }

    fn bad_line(r: Result<Verified, VerifyError>) -> (usize, String) {
        match r {
            Err(VerifyError::Bad { line, why, .. }) => (line, why),
            other => panic!("expected a bad line, got {other:?}"),
        }
    }

    #[test]
    fn a_signed_trail_verifies_with_its_key_only() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = trail(dir.path(), &key(7))?;
        let ok = verify(&path, Some(&key(7))).map_err(std::io::Error::other)?;
        assert_eq!((ok.records, ok.checkpoints, ok.unsigned_tail), (6, 2, 0));
        let (line, why) = bad_line(verify(&path, Some(&key(8))));
        assert_eq!(line, 3);
        assert!(why.contains("signed with another key"), "{why}");
        // Without a key the chain alone is checked.
        assert!(verify(&path, None).is_ok_and(|v| !v.signed));
        Ok(())
    }

    #[test]
    fn an_edited_removed_or_recomputed_record_is_named() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let k = key(7);

        let path = trail(dir.path(), &k)?;
        edit(&path, |l| l[1] = l[1].replace("\"ok\"", "\"failed\""))?;
        assert_eq!(bad_line(verify(&path, Some(&k))).0, 3);

        let path = trail(&subdir(dir.path(), "b")?, &k)?;
        edit(&path, |l| {
            l.remove(3);
        })?;
        let (line, why) = bad_line(verify(&path, Some(&k)));
        assert_eq!(line, 4);
        assert!(why.contains("removed, inserted or edited"), "{why}");

        // The whole chain recomputed after an edit: only the key can sign it again.
        let path = trail(&subdir(dir.path(), "c")?, &k)?;
        edit(&path, |l| {
            let mut prev = String::new();
            for line in l.iter_mut() {
                let mut v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                v["outcome"] = "denied".into();
                v["prev"] = prev.clone().into();
                *line = v.to_string();
                prev = hex::encode(Sha256::digest(line.as_bytes()));
            }
        })?;
        let (line, why) = bad_line(verify(&path, Some(&k)));
        assert_eq!(line, 3);
        assert!(why.contains("MAC does not match"), "{why}");

        // The start cut off.
        let path = trail(&subdir(dir.path(), "d")?, &k)?;
        edit(&path, |l| {
            l.remove(0);
        })?;
        assert!(
            bad_line(verify(&path, Some(&k)))
                .1
                .contains("start of the trail was cut")
        );
        Ok(())
    }

    #[test]
    fn a_torn_record_and_an_unsigned_tail_are_reported_not_hidden() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let k = key(7);
        let path = trail(dir.path(), &k)?;
        let mut text = std::fs::read_to_string(&path)?;
        text.push_str("{\"time\":\"cut");
        std::fs::write(&path, text)?;
        let audit = Audit::to_file(&path, Some(k.clone()))?;
        audit.record(&Record::event(&guest(), "teardown", "load", "ok", None));
        drop(audit);
        let v = verify(&path, Some(&k)).map_err(std::io::Error::other)?;
        assert_eq!(v.torn, [7]);
        assert_eq!(v.unsigned_tail, 2);

        let plain = dir.path().join("plain.jsonl");
        let audit = Audit::to_file(&plain, None)?;
        audit.record(&Record::event(&guest(), "backup", "run", "ok", None));
        assert!(audit.checkpoint(&guest(), "backup").is_none());
        drop(audit);
        assert!(matches!(verify(&plain, Some(&k)), Err(VerifyError::Unsigned { .. })));
        Ok(())
    }

    fn subdir(root: &Path, name: &str) -> std::io::Result<PathBuf> {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}
