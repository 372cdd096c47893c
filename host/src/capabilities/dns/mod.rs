//! `ferry:host/dns`: Route53 hosted zones by id. `host.rs` holds the WIT functions,
//! `provider.rs` the Route53 client.

mod host;
pub mod provider;

use super::Capability;
use crate::policy::Action;

/// The dns capability.
pub const CAPABILITY: Capability = Capability {
    interface: "ferry:host/dns",
    wit: ("dns.wit", include_str!("../../../../wit/dns.wit")),
    actions: &[Action::DnsOpen, Action::DnsList, Action::DnsChange],
    needs_grant: true,
};

/// An open hosted-zone handle.
pub struct ZoneHandle {
    pub(crate) id: String,
}
