"""digitcam against Tesseract and RapidOCR on the same labelled images, in one run, on one thread.

    .venv/bin/python bench/accuracy_vs_peers.py [--model models/digitcam.tflite] [--n 400] [--full-n 40]
    taskset -c 1 .venv/bin/python bench/accuracy_vs_peers.py      # the recorded figures: one core
    .venv/bin/python bench/accuracy_vs_peers.py --quick           # a few images, to check it runs

Sets: ``meters`` (real single meter digits of the held-out test meters), ``meter-strips`` (3-8 real
digits of one held-out meter side by side), and two rendered sets in colour, ``house-numbers`` (plaques)
and ``drum-counters``. Only the first two are real photos; the targets apply to them.

Every engine reads every image of a set through its own preprocessing; the clock runs around that whole
call. Tesseract is run in each page mode and the best mode per set is the one compared. RapidOCR's full
pipeline takes ~2 s per small crop (its detector upscales the crop to 736 px), so it reads only the
first ``--full-n`` images of each set. Prints one markdown table and ends with one summary line.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.peers import TESSERACT_PSMS, RapidOcrDigits, TesseractDigits  # noqa: E402
from device.benchmark import machine  # noqa: E402
from device.recognize import Recognizer  # noqa: E402

log = logging.getLogger(__name__)

REAL_SETS = ("meters", "meter-strips")
RENDERED_SETS = {"house-numbers": "plaque", "drum-counters": "drum"}
SETS = (*REAL_SETS, *RENDERED_SETS)


class DigitcamDigits:
    """digitcam's recognizer on one crop, through the device's own ``Recognizer.read``."""

    def __init__(self, model: Path, threads: int = 1):
        self.recognizer = Recognizer(model, threads=threads)
        self.name = "digitcam"

    def read(self, image: np.ndarray) -> str:
        (reading,), _ = self.recognizer.read([image])
        return reading.value or ""


# ---- the labelled sets ------------------------------------------------------------------------------


def load_set(name: str, n: int, seed: int) -> list[tuple[np.ndarray, str]]:
    """The first n raw crops (RGB or grey uint8) with their labels; every engine gets these same pixels.

    The held-out meter sets come in a fixed shuffled order that mixes all their meters; the rendered
    sets are one look each, in colour, every crop holding a number.
    """
    from trainer.sources import iter_samples

    if name in RENDERED_SETS:
        stream = iter_samples("rendered", "test", seed, colour=True, styles=(RENDERED_SETS[name],), empty_rate=0.0)
    else:
        stream = iter_samples(name, "test", seed)
    return list(itertools.islice(stream, n))


# ---- scoring ----------------------------------------------------------------------------------------


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions of single digits."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


@dataclass
class Score:
    """One engine on one set: what it read right and how long each image took."""

    engine: str
    set_name: str
    hits: int = 0
    digits_right: int = 0
    digits_total: int = 0
    times_ms: list = field(default_factory=list)

    def add(self, predicted: str, label: str, ms: float) -> None:
        self.hits += predicted == label
        self.digits_right += max(0, len(label) - edit_distance(predicted, label))
        self.digits_total += len(label)
        self.times_ms.append(ms)

    @property
    def n(self) -> int:
        return len(self.times_ms)

    @property
    def sequence_acc(self) -> float:
        """Percent of images whose whole number was read exactly."""
        return 100.0 * self.hits / self.n if self.n else float("nan")

    @property
    def digit_acc(self) -> float:
        """Percent of label digits read right: 1 - edit distance / label length, pooled over the set."""
        return 100.0 * self.digits_right / self.digits_total if self.digits_total else float("nan")

    @property
    def median_ms(self) -> float:
        return float(np.median(self.times_ms)) if self.times_ms else float("nan")


def run_engine(reader, name: str, samples) -> Score:
    score = Score(reader.name, name)
    for image, label in samples:
        start = time.perf_counter()
        predicted = reader.read(image)
        score.add(predicted, label, (time.perf_counter() - start) * 1000.0)
    return score


# ---- the report -------------------------------------------------------------------------------------


def best_of(scores: list[Score], prefix: str, set_name: str) -> Score | None:
    """The best variant of one peer on one set (Tesseract's best page mode, RapidOCR's better mode)."""
    mine = [s for s in scores if s.engine.startswith(prefix) and s.set_name == set_name]
    return max(mine, key=lambda s: (s.sequence_acc, s.digit_acc)) if mine else None


def print_table(scores: list[Score], set_names) -> None:
    print("| set | engine | n | sequence acc % | digit acc % | median ms/image |")
    print("|---|---|---:|---:|---:|---:|")
    for set_name in set_names:
        best_tesseract = best_of(scores, "tesseract", set_name)
        for s in (s for s in scores if s.set_name == set_name):
            mark = " (best)" if s is best_tesseract else ""
            print(f"| {set_name} | {s.engine}{mark} | {s.n} | {s.sequence_acc:.1f} | {s.digit_acc:.1f} | "
                  f"{s.median_ms:.2f} |")


def print_ratios(scores: list[Score], set_names) -> list[dict]:
    """digitcam against the best variant of each peer per set; returns the rows for the summary."""
    print()
    print("| set | peer (best variant) | seq acc digitcam - peer (points) | digit acc digitcam - peer | "
          "speed: peer ms / digitcam ms |")
    print("|---|---|---:|---:|---:|")
    rows = []
    for set_name in set_names:
        ours = next(s for s in scores if s.engine == "digitcam" and s.set_name == set_name)
        for prefix in ("tesseract", "rapidocr"):
            peer = best_of(scores, prefix, set_name)
            if peer is None:
                continue
            row = {"set": set_name, "peer": peer.engine, "seq_gain": ours.sequence_acc - peer.sequence_acc,
                   "digit_gain": ours.digit_acc - peer.digit_acc, "speedup": peer.median_ms / ours.median_ms}
            rows.append(row)
            print(f"| {set_name} | {peer.engine} | {row['seq_gain']:+.1f} | {row['digit_gain']:+.1f} | "
                  f"{row['speedup']:.1f}x |")
    return rows


def summary_line(rows: list[dict], set_names) -> str:
    real = [r for r in rows if r["set"] in REAL_SETS]
    wins = sum(r["seq_gain"] > 0 for r in real)
    tess = [r["speedup"] for r in rows if r["peer"].startswith("tesseract")]
    worst = min(real, key=lambda r: r["seq_gain"]) if real else None
    line = (f"accuracy_vs_peers: digitcam more accurate than the best peer variant in {wins}/{len(real)} "
            f"real-set comparisons")
    if worst:
        line += f" (smallest margin {worst['seq_gain']:+.1f} points vs {worst['peer']} on {worst['set']})"
    if tess:
        line += f"; {min(tess):.0f}-{max(tess):.0f}x faster per image than Tesseract (target >= 20x)"
    return line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="digitcam .tflite (default: the bundled one)")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--n", type=int, default=400, help="images per set")
    parser.add_argument("--full-n", type=int, default=40, help="images per set for RapidOCR's slow full pipeline")
    parser.add_argument("--psm", type=int, nargs="+", default=list(TESSERACT_PSMS), help="Tesseract page modes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="4 images per set, one page mode: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.full_n, args.psm = 4, 1, [7]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cv2.setNumThreads(1)
    from device.bundled import default_model

    model = args.model or default_model()
    readers = [DigitcamDigits(model)] + [TesseractDigits(psm) for psm in args.psm]
    full, rec_only = RapidOcrDigits(detect=True), RapidOcrDigits(detect=False)
    print(f"# {machine()}; model {Path(model).name}; Tesseract {readers[1].version}; one thread each")
    scores = []
    for set_name in args.sets:
        try:
            samples = load_set(set_name, args.n, args.seed)
        except FileNotFoundError as exc:  # a real set not fetched: the message names the fetch command
            print(f"accuracy_vs_peers: {exc}", file=sys.stderr)
            return 2
        for reader in [*readers, rec_only]:
            scores.append(run_engine(reader, set_name, samples))
        scores.append(run_engine(full, set_name, samples[: args.full_n]))
    print_table(scores, args.sets)
    rows = print_ratios(scores, args.sets)
    print(summary_line(rows, args.sets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
