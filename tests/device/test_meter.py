"""The digit-wise meter: carry logic, mid-roll wheels, wrap, set_value and its persistence, rate."""

import json

import pytest

from device.config import SensorConfig
from device.contract import DigitReading, Reading
from device.meter import (ACCEPTED_AFTER_HOLD, CARRY, DECREASED, FIRST, JUMP, REFRESH, SET_VALUE, WRAPPED, Meter,
                          MeterStore, SetValueError)
from device.smooth import Smoother

UNSURE = 0.2  # per-digit confidence of a wheel caught mid-roll


def r(value, unsure=(), confidence=0.95):
    """A reading of ``value``; wheels at the indexes in ``unsure`` come with a low per-digit confidence."""
    if value is None:
        return Reading(value=None, confidence=0.0)
    digits = [DigitReading(d, UNSURE if i in unsure else confidence) for i, d in enumerate(value)]
    return Reading(value=value, confidence=min(d.confidence for d in digits), digits=digits)


def feed(meter, readings, start=0.0, step=0.5):
    """Feed readings (values or Readings) one per ``step`` s; return [(time, value, flags)] of each decision."""
    out = []
    for i, item in enumerate(readings):
        now = start + i * step
        d = meter.update(item if isinstance(item, Reading) else r(item), now)
        if d is not None:
            out.append((now, d.reading.value, d.flags))
    return out


def started(value="004711", **kw):
    """A meter that has accepted ``value`` (set exactly, as after a set_value)."""
    meter = Meter(**{"confirm_s": 10.0, **kw})
    meter.set_value(value, 0.0)
    return meter


def test_a_first_value_needs_confirm_s_of_stability_when_nothing_is_stored():
    meter = Meter(confirm_s=10.0)
    decisions = feed(meter, ["004711"] * 30)
    assert decisions == [(11.0, "004711", (FIRST, ACCEPTED_AFTER_HOLD))]  # stable at 1.0 s, then 10 s


def test_a_normal_step_of_the_lowest_wheel_is_published_once_stable():
    meter = started()
    assert feed(meter, ["004712"] * 5, start=1.0) == [(2.0, "004712", ())]


def test_a_higher_wheel_that_advances_without_a_roll_over_below_is_a_misread():
    meter = started("004711")
    # the hundreds wheel misread 7 -> 8 in 3 of 5 frames, again and again: never published
    noisy = ["004811", "004811", "004711", "004811", "004711"] * 20
    assert feed(meter, noisy, start=1.0) == []
    assert meter.value == "004711"  # the true digit kept showing between: the misread is never confirmed
    assert "carry" in meter.problem(51.0)


def test_a_lowest_wheel_misread_by_several_counts_is_not_published():
    meter = started("004713")
    noisy = ["004718", "004718", "004713", "004718", "004713"] * 20  # 3 -> 8 on a drum
    assert feed(meter, noisy, start=1.0) == []


def test_a_roll_over_is_one_step_even_across_several_wheels():
    meter = started("004999")
    assert feed(meter, ["005000"] * 4, start=1.0) == [(2.0, "005000", ())]


def test_a_mid_roll_wheel_takes_its_value_from_the_wheels_below_and_the_accepted_value():
    meter = started("004719")
    # tens wheel half-turned 1 -> 2 (unsure) while the units wheel has already rolled 9 -> 0
    rolling = [r("004790", unsure=(4,))] * 3
    decisions = feed(meter, rolling, start=1.0)
    assert decisions == [(2.0, "004720", ())]  # the carry, not the guessed 9
    assert decisions and meter.value == "004720"


def test_a_mid_roll_wheel_before_the_roll_over_keeps_the_accepted_digit():
    meter = started("004719")
    assert feed(meter, [r("004789", unsure=(4,))] * 5, start=1.0) == []  # units still 9: tens stays 1
    assert meter.value == "004719"


def test_unsure_lowest_wheel_keeps_the_last_value_and_never_counts_as_confirmation():
    meter = started("004719", stale_after_s=5.0)
    feed(meter, [r("004712", unsure=(5,))] * 20, start=1.0)
    assert meter.value == "004719"
    only_inferred = Meter(confirm_s=1.0, stale_after_s=5.0)
    only_inferred.set_value("12", 0.0)
    feed(only_inferred, [r("99", unsure=(0, 1))] * 20, start=1.0)
    assert only_inferred.problem(20.0) is not None  # nothing was really read for 5 s


def test_wrap_at_the_top_is_a_normal_step_flagged_wrapped():
    meter = started("999999", digits=6)
    assert feed(meter, ["000000"] * 4, start=1.0) == [(2.0, "000000", (WRAPPED,))]
    assert meter.extra(3.0)["reading"] == 0


def test_a_real_decrease_is_held_then_accepted_flagged():
    meter = started("004711", accept_after_s=60.0)
    decisions = feed(meter, ["004700"] * 200, start=1.0)
    assert decisions == [(62.0, "004700", (DECREASED, ACCEPTED_AFTER_HOLD))]


def test_a_big_genuine_rise_after_an_outage_is_accepted_after_confirm_s():
    meter = started("004711", confirm_s=10.0)
    decisions = feed(meter, ["004790"] * 40, start=3600.0)
    assert decisions == [(3611.0, "004790", (CARRY, ACCEPTED_AFTER_HOLD))]


def test_a_held_value_that_keeps_counting_does_not_restart_its_confirmation():
    meter = started("004711", confirm_s=10.0)
    values = ["004750"] * 10 + ["004751"] * 10 + ["004752"] * 10
    decisions = feed(meter, values, start=100.0)
    assert decisions == [(111.0, "004752", (CARRY, ACCEPTED_AFTER_HOLD))]


def test_lowest_wheel_jump_is_flagged_jump_when_accepted():
    meter = started("004711", confirm_s=5.0)
    assert feed(meter, ["004715"] * 20, start=1.0)[0][1:] == ("004715", (JUMP, ACCEPTED_AFTER_HOLD))


def test_rate_limit_applies_in_units_of_the_numeric_reading():
    meter = started("004711", decimals=3, max_rate_per_hour=1.0, accept_after_s=100.0)  # 1 m³/h
    assert feed(meter, ["004712"] * 4, start=3.6) == [(4.6, "004712", ())]  # 0.001 m³ in 4.6 s: 0.78 m³/h


def test_rate_exceeded_is_held():
    meter = started("004711", decimals=3, max_rate_per_hour=0.1, accept_after_s=100.0)
    assert feed(meter, ["004712"] * 10, start=1.0) == []
    assert meter.problem(6.0) is None  # not yet: a passing doubt does not flap the problem sensor
    assert "rate_exceeded" in meter.problem(13.0)


def test_decimals_give_the_numeric_reading_and_rates():
    meter = started("004711", decimals=3, rate_window_s=3600.0)
    feed(meter, ["004712"] * 4, start=1800.0)
    extra = meter.extra(3600.0)
    assert extra["reading"] == 4.712
    assert extra["rate_per_hour"] == pytest.approx(0.001)  # 0.001 m³ since the set value, an hour ago
    assert extra["rate_per_minute"] == pytest.approx(0.001 / 60, rel=1e-5)


def test_rate_counts_through_a_wrap_and_falls_to_zero_when_the_meter_stops():
    meter = started("98", rate_window_s=60.0)
    for value, t in (("99", 10.0), ("00", 20.0), ("01", 30.0)):
        feed(meter, [value] * 3, start=t)
    assert meter.rate_per_hour(40.0) == pytest.approx(3 / (40 / 3600))
    assert meter.rate_per_hour(200.0) == 0.0


def test_set_value_is_exact_clears_a_hold_and_is_refused_when_malformed():
    meter = started("004711", digits=6, accept_after_s=600.0)
    feed(meter, ["000003"] * 10, start=1.0)  # a new meter, held as a decrease
    assert meter.held == "000003"
    decision = meter.set_value("000003", 10.0)
    assert decision.flags == (SET_VALUE,) and decision.reading.value == "000003" and meter.held is None
    assert feed(meter, ["000004"] * 3, start=11.0) == [(12.0, "000004", ())]
    for bad in (4711, "47.11", "", "0047110", "123456789"):
        with pytest.raises(SetValueError):
            meter.set_value(bad, 20.0)


def test_accepted_value_survives_a_restart_and_checks_the_first_reading(tmp_path):
    store = MeterStore(tmp_path / "meters.json")
    meter = Meter(name="water", store=store)
    meter.set_value("004711", 0.0)
    feed(meter, ["004712"] * 3)
    assert json.loads((tmp_path / "meters.json").read_text())["water"]["value"] == "004712"

    again = Meter(name="water", store=MeterStore(tmp_path / "meters.json"), confirm_s=10.0)
    assert again.value == "004712"
    assert feed(again, ["009712", "009712", "009712", "004712"] * 5) == []  # a misread first reading
    assert feed(again, ["004713"] * 3, start=20.0) == [(21.0, "004713", ())]


def test_a_corrupt_state_file_is_ignored_and_rewritten(tmp_path):
    path = tmp_path / "meters.json"
    path.write_text("{not json")
    meter = Meter(name="gas", store=MeterStore(path))
    assert meter.value is None
    meter.set_value("0815", 0.0)
    assert json.loads(path.read_text())["gas"]["value"] == "0815"


def test_refresh_republishes_a_confirmed_value_for_expire_after():
    meter = started("004711", refresh_s=10.0)
    decisions = feed(meter, ["004711"] * 50, start=1.0)
    assert [t for t, _, f in decisions if f == (REFRESH,)] == [10.0, 20.0]


def test_readings_of_the_wrong_length_say_nothing():
    meter = started("004711")
    assert feed(meter, ["04712", "0047120", None] * 10, start=1.0) == []


def test_from_config_builds_a_meter_for_meters_and_a_smoother_for_numbers(tmp_path):
    store = MeterStore(tmp_path / "m.json")
    meter = Smoother.from_config(SensorConfig(name="w", mode="meter", digits=6, decimals=3, max_step=2), store)
    assert isinstance(meter, Meter) and (meter.digits, meter.decimals, meter.max_step) == (6, 3, 2)
    assert meter.refresh_s == pytest.approx(3600.0 / 3)
    assert isinstance(Smoother.from_config(SensorConfig(name="h")), Smoother)


def test_reads_from_before_a_camera_outage_are_forgotten():
    meter = started("004711")
    feed(meter, ["004711"] * 6 + ["004712"] * 2, start=1.0)  # 004712 seen twice, not yet stable
    assert meter.value == "004711"
    # 2 min later (water ran meanwhile): one more 004712 must not make the stale pair stable
    assert feed(meter, ["004724"], start=125.0) == []
    assert meter.value == "004711"


def test_slow_frame_rates_still_become_stable():
    meter = started("004711")
    assert feed(meter, ["004712"] * 4, start=10.0, step=10.0) == [(30.0, "004712", ())]


def test_an_unsure_wheel_is_not_inferred_from_an_accepted_value_the_camera_has_not_confirmed(tmp_path):
    store = MeterStore(tmp_path / "meters.json")
    Meter(name="w", store=store).set_value("004736", 0.0)
    meter = Meter(name="w", store=MeterStore(tmp_path / "meters.json"))  # restarted; the meter ran on meanwhile
    # tens wheel unsure, units read 7: inferring "3" from the stored 004736 would publish 004737
    assert feed(meter, [r("004757", unsure=(4,))] * 10, start=100.0) == []
    assert meter.value == "004736"


def test_a_wrap_after_a_burst_the_camera_could_not_follow_is_flagged_wrapped():
    meter = started("999994", digits=6, confirm_s=5.0)
    decisions = feed(meter, ["000012"] * 20, start=1.0)
    assert decisions[0][1:] == ("000012", (JUMP, ACCEPTED_AFTER_HOLD, WRAPPED))


class Outbox:
    """A ``send`` for Meter.signals that records what it is given; ``up`` False: the broker is away."""

    def __init__(self):
        self.sent, self.up = [], True

    def __call__(self, topic, payload, retain):
        if self.up:
            self.sent.append((self.now, topic, json.loads(payload), retain))
        return self.up


def test_signals_give_the_raw_reading_at_most_every_raw_interval_and_problem_changes_once():
    meter = started("004711", raw_interval_s=10.0, stale_after_s=30.0)
    out = Outbox()
    for i in range(60):  # 30 s of frames at 2/s, the value confirmed all along
        out.now = 1.0 + i * 0.5
        reading = r("004711")
        meter.update(reading, out.now)
        meter.signals(reading, out.now, out)
    assert [t for t, topic, _, _ in out.sent if topic == "raw"] == [1.0, 11.0, 21.0]
    problems = [(t, p["state"]) for t, topic, p, _ in out.sent if topic == "problem"]
    assert problems == [(1.0, "ON"), (2.0, "OFF")]  # on until the wheels are first stable, then off for good
    out.sent, out.now = [], 31.0
    meter.signals(None, 31.0, out, camera_online=False)
    assert [(topic, p, retain) for _, topic, p, retain in out.sent] == [
        ("problem", {"state": "ON", "reason": "camera offline"}, True)]


def test_a_problem_state_the_broker_did_not_take_is_sent_again():
    meter = started("004711", stale_after_s=30.0)
    out = Outbox()
    out.up, out.now = False, 100.0
    meter.signals(None, 100.0, out)
    out.up = True
    meter.signals(None, 101.0, out)
    meter.signals(None, 102.0, out)
    assert [(p["state"], p["reason"]) for _, _, p, _ in out.sent] == [("ON", "no confident read yet")]


def test_a_held_value_turns_the_problem_on_once_it_has_been_held_for_confirm_s():
    meter = started("004711")
    feed(meter, ["004811", "004811", "004711", "004811", "004711"] * 6, start=1.0)  # held from 2.0 s on
    out = Outbox()
    for out.now in (5.0, 13.0):
        meter.signals(None, out.now, out)
    assert [(t, p["state"], p["reason"]) for t, _, p, _ in out.sent] == [
        (5.0, "OFF", None), (13.0, "ON", "held 004811: carry")]


def test_attach_loads_the_stored_value_and_keeps_it_from_then_on(tmp_path):
    path = tmp_path / "meters.json"
    MeterStore(path).put("water", "004711", 0.0, "set_value")
    meter = Smoother.from_config(SensorConfig(name="water", mode="meter"))
    meter.attach(MeterStore(path))
    assert meter.value == "004711"
    feed(meter, ["004712"] * 3)
    assert json.loads(path.read_text())["water"]["value"] == "004712"


def test_a_wheel_read_as_its_next_digit_without_assurance_is_not_a_step():
    meter = started("004710", step_confidence=0.8)
    half_turned = [r("004711", confidence=0.6)] * 10  # stable, but never sure
    assert feed(meter, half_turned, start=1.0) == []
    assert feed(meter, ["004711"] * 3, start=10.0) == [(11.0, "004711", ())]


def test_without_digits_a_misread_of_another_length_does_not_reset_the_wheels():
    meter = Meter(confirm_s=2.0)
    readings = ["4711", "4711", "47111", "4711", "4711", "471", "4711"] * 3
    decisions = feed(meter, readings)
    assert decisions and decisions[0][1] == "4711"
