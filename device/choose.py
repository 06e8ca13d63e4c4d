"""Choosing the number among the locator's candidates once each has been read.

A frame may hold several numbers (a dial's scale numerals and the odometer, a meter's serial number and
its counter, a date stamp); the locator's strongest peak is not always the one wanted. Each candidate is
scored by its detector peak, its reading's confidence and how much the reading looks like a counter
(its length); the best wins. Whether the winner is a number at all is a second, separate score
(``NumberGate``). The forms and the weights were chosen on validation scenes
(``python -m trainer.choose_rule``; docs/LOCATOR.md), not guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from device.contract import Reading


@dataclass(frozen=True)
class Rule:
    """score = peak ** ``peak_power`` * confidence * min(1, digits / ``counter_digits``) ** ``length_power``.

    A reading of no number scores 0, so it wins only when every candidate reads none.
    """

    peak_power: float = 1.0
    counter_digits: int = 4
    length_power: float = 0.5

    def score(self, peak: float, reading: Reading) -> float:
        if not reading.value:
            return 0.0
        length = min(1.0, len(reading.value) / self.counter_digits) ** self.length_power
        return float(peak) ** self.peak_power * float(reading.confidence) * length


DEFAULT_RULE = Rule()


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-4), 1.0 - 1e-4)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class NumberGate:
    """How likely the chosen candidate is a number at all: a logistic model of its detector peak, its
    reading's confidence and its length, fitted on validation scenes (``python -m trainer.choose_rule
    ... --fit-gate``) to tell scenes without a number from those read right.

    score = sigmoid(peak_weight * logit(peak) + confidence_weight * logit(confidence)
                    + length_weight * digits / 8 + bias)

    A false box on clutter reads a short, unsure number off a weak peak; a product of the three with one
    threshold (the rule score) cannot weigh length apart, and cost single-digit house numbers more than
    it caught empty scenes (docs/LOCATOR.md).
    """

    peak_weight: float = 1.557
    confidence_weight: float = 1.137
    length_weight: float = 4.880
    bias: float = -6.576

    def score(self, peak: float, reading: Reading) -> float:
        if not reading.value:
            return 0.0
        z = (self.peak_weight * _logit(peak) + self.confidence_weight * _logit(reading.confidence)
             + self.length_weight * min(len(reading.value), 8) / 8.0 + self.bias)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


DEFAULT_GATE = NumberGate()

# ``digitcam read``: a chosen candidate whose ``DEFAULT_GATE`` score is below this reads no number. Chosen
# on validation scenes (``python -m trainer.choose_rule ... --rule 1,4,0.5 --floor 0.5 --k 4 --fit-gate``,
# docs/LOCATOR.md): the highest gate that costs at most half a point of right numbers on the scenes with one.
NO_NUMBER_BELOW = 0.55


def choose(peaks, readings: list[Reading], rule: Rule = DEFAULT_RULE) -> int:
    """The index of the candidate to report: the best score, the strongest peak on a tie (and when none
    reads a number)."""
    if not readings:
        raise ValueError("no candidates to choose from")
    scores = [rule.score(p, r) for p, r in zip(peaks, readings)]
    return max(range(len(readings)), key=lambda i: (scores[i], float(peaks[i]), -i))
