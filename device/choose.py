"""Choosing the number among the locator's candidates once each has been read.

A frame may hold several numbers (a dial's scale numerals and the odometer, a meter's serial number and
its counter, a date stamp); the locator's strongest peak is not always the one wanted. Each candidate is
scored by its detector peak, its reading's confidence and how much the reading looks like a counter
(its length); the best wins. The form and the weights were chosen on validation scenes
(``python -m trainer.choose_rule``; docs/LOCATOR.md), not guessed.
"""

from __future__ import annotations

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

# ``digitcam read``: a chosen candidate that scores less than this reads no number. A false box on letter
# clutter reads a short, unsure number off a weak peak; the wanted one scores higher. Chosen on
# validation scenes (``python -m trainer.choose_rule ... --rule 1,4,0.5 --floor 0.5 --k 4``, docs/LOCATOR.md):
# the highest gate that costs at most half a point of right numbers on the scenes with one.
NO_NUMBER_BELOW = 0.35


def choose(peaks, readings: list[Reading], rule: Rule = DEFAULT_RULE) -> int:
    """The index of the candidate to report: the best score, the strongest peak on a tie (and when none
    reads a number)."""
    if not readings:
        raise ValueError("no candidates to choose from")
    scores = [rule.score(p, r) for p, r in zip(peaks, readings)]
    return max(range(len(readings)), key=lambda i: (scores[i], float(peaks[i]), -i))
