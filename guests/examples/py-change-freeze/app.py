"""py-change-freeze: a ferry site hook written in Python (componentize-py).

It guards the destructive end of a migration: at point `verify` of phase
`teardown` it reads the run parameter `freeze` and, when it is "true",
vetoes the phase so nothing is deleted. Every other event proceeds.

It only uses `ferry:host/context` (log and param). The build intersects the
hook world with `context-only.wit`, so the component imports nothing else
and its policy (policy.cedar) grants nothing else; see README.md.
"""

from wit_world import WitWorld
from wit_world.imports import context, hooks

HOOK = "py-change-freeze"


def _log(level: context.Level, message: str, event: hooks.Event) -> None:
    context.log(
        level,
        message,
        [
            ("hook", HOOK),
            ("point", event.point.name.lower().replace("_", "-")),
            ("phase", event.phase),
            ("step", event.step),
        ],
    )


class WitWorld(WitWorld):
    def on_event(self, event: hooks.Event) -> hooks.Outcome:
        if event.point != hooks.Point.VERIFY or event.phase != "teardown":
            _log(context.Level.DEBUG, "not a teardown verify; proceeding", event)
            return hooks.Outcome_Proceed()

        freeze = (context.param("freeze") or "").strip().lower()
        if freeze == "true":
            reason = (
                f"change freeze is on (run parameter freeze=true), so teardown "
                f"stops at step `{event.step}` and the source cluster stays. "
                f"Wait until the freeze is lifted, or rerun teardown with "
                f"--param freeze=false once the change is approved"
            )
            _log(context.Level.WARN, "vetoing teardown: " + reason, event)
            return hooks.Outcome_Veto(reason)

        _log(context.Level.INFO, f"no change freeze (freeze={freeze or 'unset'}); teardown may proceed", event)
        return hooks.Outcome_Proceed()
