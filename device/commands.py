"""Commands from ``<base>/cmd/<name>``: which are accepted, and a pure parser that checks a payload.

``parse_command`` needs no broker and no service: a name, the payload bytes and the sensor names in,
a ``Command`` or a one-line ``CommandError`` out. The service runs an accepted command between frames and
answers every command, accepted or not, on ``cmd/result``.

To add a command: add a row to ``COMMANDS`` (the payload keys it takes besides ``id``, and whether it
needs a fresh camera frame), a check to ``KEY_CHECKS`` for any new key, and a handler for the name in
``HANDLERS`` (``device/handlers.py``), called with the service, the chosen sensors and the payload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_COMMAND_BYTES = 1024


class CommandError(ValueError):
    """A command payload that is not one we accept; answered on cmd/result, never raised further."""


@dataclass(frozen=True)
class CommandSpec:
    keys: frozenset  # payload keys accepted besides "id"
    needs_frame: bool  # refused while there is no fresh frame (none yet, or the camera is offline)
    required: frozenset = frozenset()  # keys the payload must have


COMMANDS = {
    "read": CommandSpec(frozenset({"sensor"}), needs_frame=True),
    "snapshot": CommandSpec(frozenset({"sensor"}), needs_frame=True),
    "reload": CommandSpec(frozenset(), needs_frame=False),
    "set_value": CommandSpec(frozenset({"sensor", "value"}), needs_frame=False,
                             required=frozenset({"sensor", "value"})),
}


def _check_sensor(value, sensors) -> None:
    if not isinstance(value, str) or value not in sensors:
        raise CommandError(f"unknown sensor {str(value)[:64]!r}: have {', '.join(sensors)}")


def _check_value(value, _sensors) -> None:
    """A meter value is its digit string, never a number: 004711 and 4711.0 are not the same reading."""
    if not isinstance(value, str) or not value.isdigit():
        raise CommandError(f"value must be a string of digits like \"004711\", not {json.dumps(value)[:32]}")


# key -> check(value, sensor names), raising CommandError
KEY_CHECKS = {"sensor": _check_sensor, "value": _check_value}


@dataclass(frozen=True)
class Command:
    name: str
    args: dict

    @property
    def spec(self) -> CommandSpec:
        return COMMANDS[self.name]

    def chosen(self, sensors) -> list:
        """The sensors the command is about: the one its ``sensor`` names, else all."""
        return [s for s in sensors if self.args.get("sensor") in (None, s.name)]


def parse_command(name: str, payload: bytes, sensors=()) -> Command:
    """Check a command against ``COMMANDS``; ``sensors`` are the configured sensor names."""
    if name not in COMMANDS:
        raise CommandError(f"unknown command {name[:64]!r}: want one of {', '.join(COMMANDS)}")
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandError(f"payload of {len(payload)} bytes is too large (at most {MAX_COMMAND_BYTES})")
    if not payload.strip():
        return Command(name, {})
    try:
        args = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise CommandError("payload is not JSON: send nothing or an object like {\"sensor\": \"name\"}") from None
    if not isinstance(args, dict):
        raise CommandError(f"payload must be a JSON object, not {type(args).__name__}")
    allowed = {"id"} | COMMANDS[name].keys
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise CommandError(f"unknown key {unknown[0][:64]!r} for {name}: allowed {', '.join(sorted(allowed))}")
    missing = sorted(COMMANDS[name].required - set(args))
    if missing:
        raise CommandError(f"{name} needs {' and '.join(repr(k) for k in missing)}")
    sensors = list(sensors)
    for key, value in args.items():
        if key in KEY_CHECKS and (value is not None or key in COMMANDS[name].required):
            KEY_CHECKS[key](value, sensors)
    return Command(name, args)
