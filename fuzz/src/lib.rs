//! What the fuzz targets share: the parameters and principal of a stock DR run.

use std::collections::BTreeMap;

use ferry::policy::GuestIdentity;

/// The parameters a site config gives the stock policy.
pub fn stock_params() -> BTreeMap<String, String> {
    [
        ("source", "source"),
        ("destination", "destination"),
        ("hosted", "hosted"),
        ("hc_namespace", "clusters"),
        ("hc_name", "prod"),
        ("bucket", "b"),
        ("s3_prefix", "p"),
        ("zone_id", "Z1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The stock guest as the policy's principal.
pub fn stock_guest() -> GuestIdentity {
    GuestIdentity {
        name: "hosted-cluster-dr".into(),
        sha256: String::new(),
    }
}
