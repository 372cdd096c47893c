//! Example site hook `change-window` (point `verify`, phase `teardown`).
//!
//! Teardown deletes the old control plane, so this hook vetoes it unless the
//! site's change window is open:
//!
//! - `change_window = "open"` opens it explicitly (e.g. `--param
//!   change_window=open` once the change is approved), any other value
//!   closes it;
//! - otherwise `change_window_start_hour` and `change_window_end_hour` (UTC,
//!   0–24, the end excluded; a window may wrap midnight, e.g. 22 to 4) open
//!   it while the host's clock (`context.now`) is inside;
//! - with neither, the window is closed.
//!
//! Its policy (`policy.cedar`) grants the `context` import only.

ferry_sdk::hook_world!("../../../wit");

use ferry_sdk::hooks::{self, Point};
use ferry_sdk::params::Params;
use ferry_sdk::{Result, invalid};

/// What the window says about one moment.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on.
    Open(String),
    /// Veto, with the text.
    Closed(String),
}

/// Decides from the parameters and the time (milliseconds since the epoch).
pub fn decide(params: &Params, now_millis: u64, what: &str) -> Result<Decision> {
    let how = "set --param change_window=open once the change is approved, or re-run during the window";
    if let Some(v) = params.get("change_window") {
        return Ok(if v.eq_ignore_ascii_case("open") {
            Decision::Open("change_window=open".into())
        } else {
            Decision::Closed(format!(
                "{what} is outside the change window (change_window={v}): {how}"
            ))
        });
    }
    let start = params.get("change_window_start_hour");
    let end = params.get("change_window_end_hour");
    let (start, end) = match (start, end) {
        (None, None) => {
            return Ok(Decision::Closed(format!(
                "{what} needs an open change window and none is configured: set \
                 change_window_start_hour and change_window_end_hour (UTC) in the site \
                 config, or {how}"
            )));
        }
        (Some(s), Some(e)) => (
            hour(s, "change_window_start_hour", 23)?,
            hour(e, "change_window_end_hour", 24)?,
        ),
        _ => {
            return Err(invalid(
                "change-window: set both change_window_start_hour and change_window_end_hour (UTC), or neither",
            ));
        }
    };
    if start == end % 24 {
        return Err(invalid(format!(
            "change-window: the window {start}:00–{end}:00 UTC is empty; use change_window=open for always"
        )));
    }
    let minute_of_day = (now_millis / 60_000) % (24 * 60);
    let hour_now = minute_of_day / 60;
    let inside = if start < end {
        (start..end).contains(&hour_now)
    } else {
        hour_now >= start || hour_now < end
    };
    let at = format!("{:02}:{:02} UTC", hour_now, minute_of_day % 60);
    let window = format!("{start:02}:00–{end:02}:00 UTC");
    Ok(if inside {
        Decision::Open(format!("{at} is inside the change window {window}"))
    } else {
        Decision::Closed(format!(
            "{what} is outside the change window {window} (now {at}): {how}"
        ))
    })
}

fn hour(v: &str, name: &str, max: u64) -> Result<u64> {
    v.trim().parse::<u64>().ok().filter(|h| *h <= max).ok_or_else(|| {
        invalid(format!(
            "change-window: `{name}` must be an hour from 0 to {max}, got `{v}`"
        ))
    })
}

struct Hook;

impl Guest for Hook {
    fn on_event(event: Event) -> Result<Outcome> {
        if event.point != Point::Verify || event.phase != "teardown" {
            return Ok(Outcome::Proceed);
        }
        let payload = hooks::cluster_payload(&event).unwrap_or_default();
        let what = if payload.hc_name.is_empty() {
            format!("teardown step `{}`", event.step)
        } else {
            format!(
                "teardown of {}/{} (step `{}`)",
                payload.hc_namespace, payload.hc_name, event.step
            )
        };
        let params = Params::load(&[]);
        match decide(&params, ferry_sdk::context::now(), &what)? {
            Decision::Open(why) => {
                ferry_sdk::log::info("change window open", &[("why", &why)]);
                Ok(Outcome::Proceed)
            }
            Decision::Closed(why) => Ok(hooks::veto(why)),
        }
    }
}

export!(Hook);

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;
    // 2024-01-01T00:00:00Z
    const DAY: u64 = 1_704_067_200_000;

    fn p(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs)
    }

    #[test]
    fn explicit_switch() {
        assert!(matches!(
            decide(&p(&[("change_window", "open")]), DAY, "x").unwrap(),
            Decision::Open(_)
        ));
        let Decision::Closed(t) = decide(&p(&[("change_window", "closed")]), DAY, "x").unwrap() else {
            panic!("closed expected");
        };
        assert!(t.contains("change_window=open"), "{t}");
        assert!(matches!(decide(&p(&[]), DAY, "x").unwrap(), Decision::Closed(_)));
    }

    #[test]
    fn hour_windows() {
        let w = p(&[("change_window_start_hour", "9"), ("change_window_end_hour", "17")]);
        assert!(matches!(decide(&w, DAY + 9 * H, "x").unwrap(), Decision::Open(_)));
        assert!(matches!(decide(&w, DAY + 17 * H, "x").unwrap(), Decision::Closed(_)));
        let Decision::Closed(t) = decide(&w, DAY + 8 * H + 30 * 60_000, "teardown").unwrap() else {
            panic!("closed expected");
        };
        assert!(t.contains("now 08:30 UTC") && t.contains("09:00–17:00"), "{t}");
        let wrap = p(&[("change_window_start_hour", "22"), ("change_window_end_hour", "4")]);
        assert!(matches!(decide(&wrap, DAY + 23 * H, "x").unwrap(), Decision::Open(_)));
        assert!(matches!(decide(&wrap, DAY + 3 * H, "x").unwrap(), Decision::Open(_)));
        assert!(matches!(decide(&wrap, DAY + 12 * H, "x").unwrap(), Decision::Closed(_)));
        let to_midnight = p(&[("change_window_start_hour", "20"), ("change_window_end_hour", "24")]);
        assert!(matches!(
            decide(&to_midnight, DAY + 23 * H, "x").unwrap(),
            Decision::Open(_)
        ));
        assert!(matches!(decide(&to_midnight, DAY, "x").unwrap(), Decision::Closed(_)));
    }

    #[test]
    fn bad_windows() {
        assert!(decide(&p(&[("change_window_start_hour", "9")]), DAY, "x").is_err());
        assert!(
            decide(
                &p(&[("change_window_start_hour", "25"), ("change_window_end_hour", "4")]),
                DAY,
                "x"
            )
            .is_err()
        );
        assert!(
            decide(
                &p(&[("change_window_start_hour", "5"), ("change_window_end_hour", "5")]),
                DAY,
                "x"
            )
            .is_err()
        );
        assert!(
            decide(
                &p(&[("change_window_start_hour", "a"), ("change_window_end_hour", "5")]),
                DAY,
                "x"
            )
            .is_err()
        );
    }
}
