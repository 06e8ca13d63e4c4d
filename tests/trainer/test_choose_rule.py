"""``trainer.choose_rule``'s replay of the choice on recorded candidates: the no-number gate on the chosen
candidate's score trades right numbers against nulls, measured without reading again."""

from __future__ import annotations

from device.choose import DEFAULT_RULE
from trainer.choose_rule import outcome, score_gates


def record(label, box, *candidates):
    return {"label": label, "box": box, "single": (None, None, 0.0), "candidates": list(candidates)}


def test_the_gate_nulls_a_weak_choice_and_keeps_a_strong_one():
    weak = record("", None, ((0, 0, 10, 5), 0.6, "7", 0.4))  # letter clutter read as a short, unsure number
    strong = record("1234", (5, 5, 40, 10), ((5, 5, 40, 10), 0.95, "1234", 0.9))
    assert outcome(weak, DEFAULT_RULE, 0.5, 4) == ("7", (0, 0, 10, 5), 0.4)
    assert outcome(weak, DEFAULT_RULE, 0.5, 4, min_score=0.2)[0] is None  # 0.6 * 0.4 * (1/4) ** 0.5 = 0.12
    assert outcome(strong, DEFAULT_RULE, 0.5, 4, min_score=0.35)[0] == "1234"
    rows = {row["min_score"]: row for row in score_gates({"scenes": [strong], "empty": [weak]}, DEFAULT_RULE, 0.5, 4)}
    assert rows[0.0]["empty"]["empty_null"] == 0.0 and rows[0.35]["empty"]["empty_null"] == 1.0
    assert rows[0.35]["scenes"]["right"] == 1.0 and rows[0.35]["mean_right"] == 1.0
