"""The command parser on its own: no broker, no service, no model."""

from __future__ import annotations

import pytest

from device import commands
from device.commands import COMMANDS, CommandError, CommandSpec, parse_command

SENSORS = ("number", "other")


@pytest.mark.parametrize("name,payload,args", [
    ("read", b"", {}),
    ("read", b"  \n", {}),
    ("read", b'{"sensor": "number", "id": 7}', {"sensor": "number", "id": 7}),
    ("snapshot", b'{"sensor": null}', {"sensor": None}),
    ("reload", b'{"id": "x"}', {"id": "x"}),
])
def test_documented_commands_are_accepted(name, payload, args):
    command = parse_command(name, payload, SENSORS)
    assert (command.name, command.args) == (name, args)


@pytest.mark.parametrize("name,payload,error", [
    ("selfdestruct", b"", "unknown command 'selfdestruct': want one of read, snapshot, reload"),
    ("read", b"x" * 1025, "payload of 1025 bytes is too large (at most 1024)"),
    ("snapshot", b"{not json", "payload is not JSON"),
    ("read", b"\xff\xfe", "payload is not JSON"),
    ("read", b"[1, 2]", "payload must be a JSON object, not list"),
    ("reload", b'{"sensor": "number"}', "unknown key 'sensor' for reload: allowed id"),
    ("read", b'{"sensor": "ghost"}', "unknown sensor 'ghost': have number, other"),
    ("snapshot", b'{"sensor": ["number"]}', "unknown sensor \"['number']\": have number, other"),
])
def test_anything_else_is_one_command_error(name, payload, error):
    with pytest.raises(CommandError) as caught:
        parse_command(name, payload, SENSORS)
    assert str(caught.value).startswith(error)


def test_chosen_sensors_are_the_named_one_or_all():
    class S:
        def __init__(self, name):
            self.name = name

    sensors = [S("number"), S("other")]
    assert parse_command("read", b"", SENSORS).chosen(sensors) == sensors
    assert parse_command("read", b'{"sensor": "other"}', SENSORS).chosen(sensors) == sensors[1:]


def test_a_command_added_to_the_table_is_parsed_with_its_own_key_check(monkeypatch):
    """How a new command is added (see device/commands.py): a row in COMMANDS, a check for a new key."""
    def digits(value, sensors):
        if not (isinstance(value, str) and value.isdigit()):
            raise CommandError(f"value must be a string of digits, not {value!r}")

    monkeypatch.setitem(COMMANDS, "set_value", CommandSpec(frozenset({"sensor", "value"}), needs_frame=False))
    monkeypatch.setitem(commands.KEY_CHECKS, "value", digits)
    command = parse_command("set_value", b'{"sensor": "number", "value": "004711"}', SENSORS)
    assert command.args == {"sensor": "number", "value": "004711"} and not command.spec.needs_frame
    with pytest.raises(CommandError, match="string of digits"):
        parse_command("set_value", b'{"value": 12}', SENSORS)
    assert COMMANDS["read"].needs_frame and not COMMANDS["reload"].needs_frame
