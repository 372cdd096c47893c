//! `ferry:host/hook-dispatch`: a full guest calls the run's site hooks.

use crate::bindings::automation::ferry::host::hook_dispatch::Host;
use crate::bindings::automation::ferry::host::hooks::{Event, Outcome};
use crate::caps::HostError;
use crate::state::RunState;

impl Host for RunState {
    async fn dispatch(&mut self, event: Event) -> Result<Outcome, HostError> {
        let env = self.env.clone();
        env.hooks.clone().dispatch(&env, event).await
    }
}

/// `ferry:host/hooks` holds types only.
impl crate::bindings::automation::ferry::host::hooks::Host for RunState {}
