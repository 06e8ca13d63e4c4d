"""The smoother: k of n stable values, and a meter mode that doubts but never gets stuck."""

import pytest

from device.contract import Reading
from device.smooth import ACCEPTED_AFTER_HOLD, DECREASED, RATE_EXCEEDED, Smoother


def r(value, confidence=0.9):
    return Reading(value=value, confidence=confidence)


def feed(smoother, values, start=0.0, step=1.0, confidence=0.9):
    """Feed values one per ``step`` seconds; return [(time, value, flags)] of every decision."""
    out = []
    for i, v in enumerate(values):
        now = start + i * step
        d = smoother.update(r(v, confidence), now)
        if d is not None:
            out.append((now, d.reading.value, d.flags))
    return out


def test_value_published_once_when_k_of_n_agree():
    s = Smoother(stable_reads=3, window=5)
    decisions = feed(s, ["12", "17", "12", "12", "12", "12", "12"])
    assert decisions == [(3.0, "12", ())]


def test_noise_between_agreeing_reads_is_tolerated_but_not_published():
    s = Smoother(stable_reads=3, window=5)
    assert feed(s, ["12", "99", "12", "88", "12"]) == [(4.0, "12", ())]
    assert s.value == "12"


def test_not_enough_agreement_publishes_nothing():
    s = Smoother(stable_reads=3, window=4)
    assert feed(s, ["1", "2", "1", "3", "4", "1", "5"]) == []


def test_low_confidence_reads_do_not_count():
    s = Smoother(stable_reads=2, window=3, min_confidence=0.8)
    assert feed(s, ["5", "5", "5"], confidence=0.7) == []
    assert feed(s, ["5", "5"], confidence=0.8) == [(1.0, "5", ())]


def test_no_number_is_never_published():
    s = Smoother(stable_reads=1, window=1)
    assert feed(s, [None, None, "7", None]) == [(2.0, "7", ())]


def test_number_mode_follows_any_change():
    s = Smoother(stable_reads=2, window=3)
    assert [v for _, v, _ in feed(s, ["30", "30", "29", "29", "31", "31"])] == ["30", "29", "31"]


def test_meter_accepts_plausible_increase_at_once():
    s = Smoother(stable_reads=2, window=3, mode="meter", max_rate_per_hour=100)
    assert feed(s, ["100", "100"], start=0) == [(1.0, "100", ())]
    assert feed(s, ["101", "101"], start=3600) == [(3601.0, "101", ())]


def test_meter_holds_a_decrease_then_accepts_it_flagged():
    s = Smoother(stable_reads=2, window=3, mode="meter", accept_after_s=60)
    feed(s, ["500", "500"])
    decisions = feed(s, ["499"] * 100, start=10, step=1.0)
    # stable at t=11, held from then; accepted once it has been stable for 60 s
    assert decisions == [(71.0, "499", (DECREASED, ACCEPTED_AFTER_HOLD))]
    assert s.value == "499"


def test_meter_holds_a_too_fast_jump_then_accepts_it_flagged():
    s = Smoother(stable_reads=1, window=1, mode="meter", max_rate_per_hour=10, accept_after_s=30)
    feed(s, ["100"])
    assert feed(s, ["900"] * 31, start=1) == [(31.0, "900", (RATE_EXCEEDED, ACCEPTED_AFTER_HOLD))]


def test_meter_glitch_back_to_the_accepted_value_cancels_the_hold():
    s = Smoother(stable_reads=1, window=1, mode="meter", accept_after_s=10)
    feed(s, ["50"])
    assert feed(s, ["40"] * 8 + ["50"] + ["40"] * 8, start=1) == []  # the clock restarted at the glitch
    assert s.value == "50"
    assert feed(s, ["40"] * 3, start=20) == [(20.0, "40", (DECREASED, ACCEPTED_AFTER_HOLD))]


def test_meter_never_gets_stuck_even_with_noise_between():
    s = Smoother(stable_reads=3, window=5, mode="meter", accept_after_s=100)
    feed(s, ["2000"] * 3)
    values = ["0005", "0005", "7777", "0005", "0005"] * 40  # a replaced meter, read with some noise
    decisions = feed(s, values, start=10)
    assert len(decisions) == 1 and decisions[0][1] == "0005"
    assert decisions[0][0] <= 10 + 100 + 5


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        Smoother(stable_reads=4, window=3)
    with pytest.raises(ValueError):
        Smoother(mode="odometer")
