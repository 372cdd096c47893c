//! `ferry:host/context`: logging, progress, parameters, plan mode and time.

use super::{Capability, View};
use crate::capabilities::bindings::automation::ferry::host::context::{Host, Level, Progress, Unit};
use crate::progress::ProgressEvent;

/// The context capability: nothing in it reaches outside the run, so its calls are not
/// checked one by one (importing it is).
pub const CAPABILITY: Capability = Capability {
    interface: "ferry:host/context",
    wit: ("context.wit", include_str!("../../../../wit/context.wit")),
    actions: &[],
    needs_grant: true,
};

/// The longest a single `sleep` call may ask for (guests loop for longer waits).
const MAX_SLEEP_MS: u64 = 3_600_000;

impl Host for View<'_> {
    async fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) -> wasmtime::Result<()> {
        let guest = &self.env.guest.name;
        // A guest may log a URL it was handed; the logs and the trail never keep its credentials.
        let message = crate::scrub::secrets_owned(message);
        let fields = if fields.is_empty() {
            String::new()
        } else {
            let joined = fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            crate::scrub::secrets_owned(joined)
        };
        // The WIT promises an audit event per record: the trail shows what the guest said.
        let level_name = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let text = if fields.is_empty() {
            message.clone()
        } else {
            format!("{message} ({fields})")
        };
        self.env.audit.record(&crate::audit::Record::event(
            &self.env.guest,
            &self.env.phase,
            "log",
            level_name,
            Some(text),
        ));
        match level {
            Level::Trace => tracing::trace!(%guest, %fields, "{message}"),
            Level::Debug => tracing::debug!(%guest, %fields, "{message}"),
            Level::Info => tracing::info!(%guest, %fields, "{message}"),
            Level::Warn => tracing::warn!(%guest, %fields, "{message}"),
            Level::Error => tracing::error!(%guest, %fields, "{message}"),
        }
        Ok(())
    }

    async fn report_progress(&mut self, event: Progress) -> wasmtime::Result<()> {
        let unit = match event.unit {
            Unit::Items => "items",
            Unit::Bytes => "bytes",
            Unit::Seconds => "seconds",
        };
        if crate::killpoint::ends_step(&event.message) {
            crate::killpoint::step_finished(&event.step);
        }
        self.env.progress.event(&ProgressEvent {
            step: event.step,
            done: event.done,
            total: event.total,
            unit,
            message: event.message,
        });
        Ok(())
    }

    async fn param(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.env.config.params.get(&name).cloned())
    }

    async fn params(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self
            .env
            .config
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn is_plan(&mut self) -> wasmtime::Result<bool> {
        Ok(self.env.plan)
    }

    async fn now(&mut self) -> wasmtime::Result<u64> {
        let ms = self.env.clock.now_ms();
        if let Some(book) = &self.env.plan_book {
            // Times the guest renders from this reading are run stamps in a plan.
            book.clock_read(ms);
        }
        Ok(ms)
    }

    async fn sleep(&mut self, millis: u64) -> wasmtime::Result<()> {
        // The outer wall-clock timeout still bounds the run as a whole.
        tokio::time::sleep(self.env.clock.real_duration(millis.min(MAX_SLEEP_MS))).await;
        Ok(())
    }
}

impl crate::capabilities::bindings::automation::ferry::host::types::Host for View<'_> {
    fn convert_error(&mut self, err: super::HostError) -> wasmtime::Result<crate::capabilities::bindings::WitError> {
        err.into_wit()
    }
}
