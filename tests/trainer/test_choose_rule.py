"""``trainer.choose_rule``'s replay of the choice on recorded candidates: the no-number gate on the chosen
candidate trades right numbers against nulls, measured without reading again, and is fitted on records."""

from __future__ import annotations

import numpy as np

from device.choose import DEFAULT_GATE, DEFAULT_RULE, NO_NUMBER_BELOW, NumberGate
from device.contract import Reading
from trainer.choose_rule import fit_gate, outcome, score_gates


def record(label, box, *candidates):
    return {"label": label, "box": box, "single": (None, None, 0.0), "candidates": list(candidates)}


def test_the_gate_nulls_a_weak_choice_and_keeps_a_strong_one():
    weak = record("", None, ((0, 0, 10, 5), 0.6, "7", 0.4))  # letter clutter read as a short, unsure number
    strong = record("1234", (5, 5, 40, 10), ((5, 5, 40, 10), 0.95, "1234", 0.9))
    assert outcome(weak, DEFAULT_RULE, 0.5, 4) == ("7", (0, 0, 10, 5), 0.4)
    assert outcome(weak, DEFAULT_RULE, 0.5, 4, min_score=NO_NUMBER_BELOW)[0] is None
    assert outcome(strong, DEFAULT_RULE, 0.5, 4, min_score=NO_NUMBER_BELOW)[0] == "1234"
    rows = {row["min_score"]: row for row in score_gates({"scenes": [strong], "empty": [weak]}, DEFAULT_RULE, 0.5, 4)}
    assert rows[0.0]["empty"]["empty_null"] == 0.0 and rows[0.55]["empty"]["empty_null"] == 1.0
    assert rows[0.55]["scenes"]["right"] == 1.0 and rows[0.55]["mean_right"] == 1.0


def test_the_gate_weighs_length_apart_from_peak_and_confidence():
    one_digit, four = Reading("7", 0.9), Reading("1234", 0.9)
    assert DEFAULT_GATE.score(0.9, one_digit) < DEFAULT_GATE.score(0.9, four)
    assert DEFAULT_GATE.score(0.9, Reading(None, 1.0)) == 0.0
    assert NumberGate(0.0, 0.0, 0.0, 0.0).score(0.9, four) == 0.5


def test_a_fitted_gate_separates_recorded_right_numbers_from_empty_scenes():
    rng = np.random.default_rng(0)
    scenes, empty = [], []
    for i in range(200):  # right numbers: long, sure, strong peaks; empty scenes: short, unsure, weak
        n = int(rng.integers(3, 8))
        label = "".join(str(d) for d in rng.integers(0, 10, n))
        scenes.append(record(label, (0, 0, 40, 10), ((0, 0, 40, 10), rng.uniform(0.7, 1.0), label, rng.uniform(0.6, 1.0))))
        empty.append(record("", None, ((0, 0, 10, 10), rng.uniform(0.5, 0.8), "1" * int(rng.integers(1, 3)),
                                       rng.uniform(0.1, 0.7))))
    sets = {"scenes": scenes, "empty": empty}
    gate = fit_gate(sets, DEFAULT_RULE, 0.5, 4)
    assert gate.length_weight > 0 and gate.confidence_weight > 0
    row = {r["min_score"]: r for r in score_gates(sets, DEFAULT_RULE, 0.5, 4, gate=gate)}[0.5]
    assert row["empty"]["empty_null"] > 0.95 and row["scenes"]["right"] > 0.95
