"""Meter keys and Home Assistant combinations are checked at config load; each error names one key."""

import pytest

from device.config import parse_config
from device.errors import ConfigError
from tests.support import run_cli

BASE = """
[camera]
source = "frames"

[[sensor]]
name = "water"
mode = "meter"
"""


def meter(*lines: str) -> str:
    return BASE + "\n".join(lines) + "\n"


@pytest.mark.parametrize("lines,message", [
    (('unit = "kWh"', 'device_class = "water"'),
     r"sensor\[0\]\.unit: 'kWh' is not a unit of device_class water: use one of L, gal, m³, ft³, CCF"),
    (('unit = "m3"', 'device_class = "gas"'), r"sensor\[0\]\.unit: 'm3' is not a unit of device_class gas"),
    (('device_class = "energy"',), r"sensor\[0\]\.unit: '' is not a unit of device_class energy"),
    (('unit = "m³"', 'device_class = "watr"'),
     r"sensor\[0\]\.device_class: 'watr' is not a Home Assistant sensor device class \(did you mean 'water'\?\)"),
    (('unit = "m³"', 'device_class = "water"', 'state_class = "measurement"'),
     r"sensor\[0\]\.state_class: a meter is total or total_increasing, not 'measurement'"),
    (('state_class = "increasing"',), r"sensor\[0\]\.state_class: 'increasing' is not one of measurement, total"),
    (('digits = 9',), r"sensor\[0\]\.digits: must be 0 \(the length the meter shows\) to 8, not 9"),
    (('digits = 5', 'decimals = 5'), r"sensor\[0\]\.decimals: must be 0\.\.4 \(fewer than digits\), not 5"),
    (('max_step = 0',), r"sensor\[0\]\.max_step: must be >= 1, not 0"),
    (('confirm_s = -1',), r"sensor\[0\]\.confirm_s: must be >= 0"),
    (('rate_window_s = 0',), r"sensor\[0\]\.rate_window_s: must be > 0"),
    (('stale_after_s = 0',), r"sensor\[0\]\.stale_after_s: must be > 0"),
    (('expire_after_s = -5',), r"sensor\[0\]\.expire_after_s: must be >= 0"),
])
def test_bad_meter_and_home_assistant_settings_name_the_key(tmp_path, lines, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(meter(*lines), tmp_path / "x.toml")


@pytest.mark.parametrize("unit,device_class", [("m³", "water"), ("L", "water"), ("gal", "water"),
                                               ("m³", "gas"), ("CCF", "gas"), ("kWh", "energy"), ("Wh", "energy")])
def test_valid_home_assistant_meters_load(tmp_path, unit, device_class):
    cfg = parse_config(meter(f'unit = "{unit}"', f'device_class = "{device_class}"', 'state_class = "total"',
                             "digits = 8", "decimals = 3"), tmp_path / "x.toml")
    s = cfg.sensors[0]
    assert (s.unit, s.device_class, s.digits, s.decimals, s.state_class) == (unit, device_class, 8, 3, "total")


def test_check_config_refuses_an_invalid_combination_in_one_line_with_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(meter('unit = "kWh"', 'device_class = "gas"'))
    done = run_cli("check-config", str(bad))
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"digitcam: error: {bad}:")
    assert "sensor[0].unit: 'kWh' is not a unit of device_class gas" in last


def test_step_confidence_is_a_share(tmp_path):
    with pytest.raises(ConfigError, match=r"sensor\[0\]\.step_confidence: must be between 0 and 1, not 1\.5"):
        parse_config(meter("step_confidence = 1.5"), tmp_path / "x.toml")
