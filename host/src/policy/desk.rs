//! Policy decisions taken on the host's own stack, not on the guest's fiber.
//!
//! Host functions run on wasmtime's fiber stack. Cedar guards its recursion with
//! `stacker::remaining_stack()`, which knows only the thread's stack and reads a fiber as
//! having no room at all; so on a fiber every decision would need a freshly mapped stack
//! (`stacker::grow`: mmap, mprotect, page faults and munmap with its TLB shoot-down, about
//! half of what Cedar itself costs). Instead, the host function leaves its question on the
//! store's [`Desk`] and returns `Pending` once; the fiber switches back to the future that
//! drives the guest ([`Desk::serve`]), which decides on the thread's stack, where Cedar's
//! guard reads true bounds, and resumes the fiber at once. Two fiber switches cost well
//! under a microsecond, and every check is exactly the one [`PolicyEngine::authorize`] makes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use super::{Action, CallContext, Decision, PolicyEngine, ResourceRef};

/// Stack room Cedar needs for one evaluation (it checks for 100 KiB itself).
const RED_ZONE: usize = 256 * 1024;
/// The stack a decision moves to when it is asked where room is short and no desk serves.
const GROWN_STACK: usize = 1024 * 1024;

/// One question and its answer, handed between a guest's host function and the future that
/// drives the guest. One per store: a guest makes one host call at a time.
#[derive(Default)]
pub struct Desk {
    slot: Mutex<Slot>,
    /// Set once [`Desk::serve`] drives the store's guest; until then questions are decided
    /// where they are asked.
    served: AtomicBool,
}

#[derive(Default)]
enum Slot {
    #[default]
    Empty,
    Asked(Question),
    Answered(Decision),
}

struct Question {
    policy: Arc<PolicyEngine>,
    action: Action,
    resource: ResourceRef,
    ctx: CallContext,
}

impl Question {
    fn decide(&self) -> Decision {
        decide_with_room(|| self.policy.authorize(self.action, &self.resource, &self.ctx))
    }
}

/// Runs `decide` where Cedar's stack guard can see the stack's bounds: in place when the
/// thread's stack has room, else on a grown stack (a hook's guest runs on its caller's fiber).
pub(crate) fn decide_with_room(decide: impl FnOnce() -> Decision) -> Decision {
    stacker::maybe_grow(RED_ZONE, GROWN_STACK, decide)
}

impl Desk {
    /// Decides `action` on `resource`, off the fiber when a [`Desk::serve`] drives this store.
    pub async fn decide(
        &self,
        policy: &Arc<PolicyEngine>,
        action: Action,
        resource: &ResourceRef,
        ctx: CallContext,
    ) -> Decision {
        let has_room = stacker::remaining_stack().is_some_and(|r| r >= RED_ZONE);
        if has_room || !self.served.load(Ordering::Acquire) {
            return decide_with_room(|| policy.authorize(action, resource, &ctx));
        }
        *self.lock() = Slot::Asked(Question {
            policy: policy.clone(),
            action,
            resource: resource.clone(),
            ctx,
        });
        Answer { desk: self }.await
    }

    /// Drives `fut` (a guest call on this desk's store) and answers its questions between
    /// polls, on the stack this future is polled on.
    pub fn serve<F: Future>(self: &Arc<Self>, fut: F) -> Serve<F> {
        self.served.store(true, Ordering::Release);
        Serve {
            desk: self.clone(),
            inner: Box::pin(fut),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        // The slot holds plain data; a panic elsewhere cannot leave it half-written.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers the pending question, if any. Returns whether there was one.
    fn answer(&self) -> bool {
        let question = {
            let mut slot = self.lock();
            match std::mem::take(&mut *slot) {
                Slot::Asked(q) => q,
                other => {
                    *slot = other;
                    return false;
                }
            }
        };
        let decision = question.decide();
        *self.lock() = Slot::Answered(decision);
        true
    }
}

/// Waits for [`Desk::serve`] to answer the question left on the desk.
struct Answer<'a> {
    desk: &'a Desk,
}

impl Future for Answer<'_> {
    type Output = Decision;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Decision> {
        let mut slot = self.desk.lock();
        match std::mem::take(&mut *slot) {
            Slot::Answered(decision) => Poll::Ready(decision),
            // No wake-up needed: `Serve` polls again as soon as it has answered.
            other => {
                *slot = other;
                Poll::Pending
            }
        }
    }
}

/// The future returned by [`Desk::serve`].
pub struct Serve<F: Future> {
    desk: Arc<Desk>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Serve<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        loop {
            if let Poll::Ready(out) = self.inner.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            if !self.desk.answer() {
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::policy::GuestIdentity;

    fn engine() -> Arc<PolicyEngine> {
        let guest = GuestIdentity {
            name: "g".into(),
            sha256: "00".into(),
        };
        let text = r#"permit (principal, action == Ferry::Action::"dns:open", resource);"#;
        Arc::new(PolicyEngine::from_source(text, "t", &BTreeMap::new(), &guest).expect("policy"))
    }

    /// A question asked where the stack looks short (as on a fiber) is answered by `serve`,
    /// with the decision `authorize` gives.
    #[tokio::test]
    async fn served_questions_get_the_engines_answer() {
        let desk = Arc::new(Desk::default());
        let policy = engine();
        let ctx = CallContext::default();
        let zone = ResourceRef::Zone { zone: "Z1".into() };
        let cluster = ResourceRef::Cluster { alias: "c".into() };
        let asked = |resource: ResourceRef, action| {
            let desk = desk.clone();
            let policy = policy.clone();
            let ctx = ctx.clone();
            async move {
                *desk.lock() = Slot::Asked(Question {
                    policy,
                    action,
                    resource,
                    ctx,
                });
                Answer { desk: &desk }.await
            }
        };
        let allowed = desk.serve(asked(zone.clone(), Action::DnsOpen)).await;
        assert_eq!(allowed, policy.authorize(Action::DnsOpen, &zone, &ctx));
        assert!(allowed.allowed);
        let denied = desk.serve(asked(cluster.clone(), Action::K8sOpen)).await;
        assert_eq!(denied, policy.authorize(Action::K8sOpen, &cluster, &ctx));
        assert!(!denied.allowed);
        assert!(matches!(*desk.lock(), Slot::Empty), "the answer was taken");
    }

    /// Without a `serve` driving the store, a question is decided where it is asked.
    #[tokio::test]
    async fn unserved_questions_are_decided_in_place() {
        let desk = Desk::default();
        let policy = engine();
        let zone = ResourceRef::Zone { zone: "Z1".into() };
        let d = desk
            .decide(&policy, Action::DnsOpen, &zone, CallContext::default())
            .await;
        assert!(d.allowed);
        assert!(matches!(*desk.lock(), Slot::Empty));
    }
}
