//! Tasks owned by the call that spawned them.
//!
//! `tokio::spawn` detaches: a task outlives the future that spawned it unless
//! someone aborts it. A hook's run or a part upload must not go on doing I/O
//! after the guest that asked for it is gone (its wall clock ran out, it
//! trapped, the run was dropped), so such tasks are held as [`Owned`], which
//! aborts the task when dropped.

use std::future::Future;

use tokio::task::JoinHandle;

/// A spawned task that is aborted when this handle is dropped unjoined.
pub struct Owned<T>(JoinHandle<T>);

impl<T: Send + 'static> Owned<T> {
    /// Spawns `fut` on the current runtime, owned by the returned handle.
    pub fn spawn(fut: impl Future<Output = T> + Send + 'static) -> Self {
        Owned(tokio::spawn(fut))
    }

    /// Whether the task has finished (joining it will not wait).
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    /// Waits for the task; `Err` says why it did not finish (it panicked).
    pub async fn join(mut self) -> Result<T, String> {
        (&mut self.0).await.map_err(|e| e.to_string())
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::Owned;

    /// Dropping the handle stops the task: its future is dropped, and it never finishes.
    #[tokio::test]
    async fn a_dropped_handle_stops_its_task() {
        struct Dropped(Option<tokio::sync::oneshot::Sender<()>>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                if let Some(tx) = self.0.take() {
                    let _ = tx.send(());
                }
            }
        }
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel();
        let (finished_tx, mut finished_rx) = tokio::sync::oneshot::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let task = Owned::spawn(async move {
            let _guard = Dropped(Some(dropped_tx));
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
            let _ = finished_tx.send(());
        });
        started_rx.await.expect("the task started");
        drop(task);
        dropped_rx.await.expect("the task's future was dropped");
        assert!(finished_rx.try_recv().is_err(), "the task never finished");
    }

    #[tokio::test]
    async fn a_joined_task_gives_its_value() {
        assert_eq!(Owned::spawn(async { 7 }).join().await, Ok(7));
    }
}
