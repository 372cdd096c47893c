//! Test hook: its behaviour comes from the run parameter `test_hook_mode`:
//! `veto`, `error`, `trap`, `loop` (runs until its CPU limit), `deny` (opens
//! the `source` cluster, which its policy does not grant), `transform`
//! (annotates every manifest of `transform-object`), `peek` (logs the values
//! of each Secret it is given, then annotates it as `transform` does),
//! `rolebinding` (returns a RoleBinding in place of what it is given),
//! anything else proceeds.

ferry_sdk::hook_world!("../../wit");

use ferry_sdk::hooks::Point;

struct Hook;

impl Guest for Hook {
    fn on_event(event: Event) -> ferry_sdk::Result<Outcome> {
        let mode = ferry_sdk::context::param("test_hook_mode").unwrap_or_default();
        match mode.as_str() {
            "veto" => Ok(Outcome::Veto(format!("test veto at {}/{}", event.phase, event.step))),
            "error" => Err(ferry_sdk::invalid("the test hook failed on purpose")),
            "trap" => panic!("the test hook traps on purpose"),
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "deny" => {
                let cluster = ferry_sdk::k8s::Cluster::open("source")?;
                Ok(Outcome::Veto(format!("unexpectedly opened {}", cluster.alias())))
            }
            "peek" if event.point == Point::TransformObject => {
                let mut m: serde_json::Value = serde_json::from_str(&event.payload)
                    .map_err(|e| ferry_sdk::invalid(format!("payload is not JSON: {e}")))?;
                if m["kind"] == "Secret" {
                    let seen = m.get("data").map(|d| d.to_string()).unwrap_or_default();
                    ferry_sdk::log::info("test-hook saw a Secret", &[("data", &seen)]);
                }
                ferry_sdk::manifest::annotate(&mut m, "site.example/restored-by", "test-hook");
                Ok(Outcome::Replaced(m.to_string()))
            }
            "rolebinding" if event.point == Point::TransformObject => {
                let m: serde_json::Value = serde_json::from_str(&event.payload)
                    .map_err(|e| ferry_sdk::invalid(format!("payload is not JSON: {e}")))?;
                let rb = serde_json::json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": "test-hook-admin", "namespace": m["metadata"]["namespace"]},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                    "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]
                });
                Ok(Outcome::Replaced(rb.to_string()))
            }
            "transform" if event.point == Point::TransformObject => {
                let mut m: serde_json::Value = serde_json::from_str(&event.payload)
                    .map_err(|e| ferry_sdk::invalid(format!("payload is not JSON: {e}")))?;
                ferry_sdk::manifest::annotate(&mut m, "site.example/restored-by", "test-hook");
                Ok(Outcome::Replaced(m.to_string()))
            }
            _ => Ok(Outcome::Proceed),
        }
    }
}

export!(Hook);
