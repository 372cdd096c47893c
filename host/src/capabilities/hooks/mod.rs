//! `ferry:host/hook-dispatch`: a full guest calls the run's site hooks; `ferry:host/hooks`
//! holds their types. The runtime runs the hook components behind [`crate::capabilities::env::HookDispatch`].

use super::{Capability, HostError, View};
use crate::capabilities::bindings::automation::ferry::host::hook_dispatch::Host;
use crate::capabilities::bindings::automation::ferry::host::hooks::{Event, Outcome};

/// `ferry:host/hooks`: the types of hook events and outcomes, nothing to grant.
pub const TYPES: Capability = Capability {
    interface: "ferry:host/hooks",
    wit: ("hooks.wit", include_str!("../../../../wit/hooks.wit")),
    actions: &[],
    needs_grant: false,
};

/// `ferry:host/hook-dispatch`: importing it is the grant; each hook's own calls are checked
/// under its own policy.
pub const DISPATCH: Capability = Capability {
    interface: "ferry:host/hook-dispatch",
    wit: ("hooks.wit", include_str!("../../../../wit/hooks.wit")),
    actions: &[],
    needs_grant: true,
};

impl Host for View<'_> {
    async fn dispatch(&mut self, event: Event) -> Result<Outcome, HostError> {
        let env = self.env.clone();
        env.hooks.dispatch(&env, event).await
    }
}

/// `ferry:host/hooks` holds types only.
impl crate::capabilities::bindings::automation::ferry::host::hooks::Host for View<'_> {}
