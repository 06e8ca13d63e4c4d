"""Loose crops: how well a model reads numbers framed loosely (an ROI or a box with room around it), and
the same numbers cropped tight, read the ways ``digitcam read`` could read them.

    .venv/bin/python bench/loose_crops.py --models models/digitcam-v1.tflite,models/digitcam.tflite \
        --split val --n 400 [--covers 0.4,0.6,0.8,never]

Sets: ``framed:<split>`` (rendered numbers in held-out font families and real strips of held-out meters,
with loose margins and clutter of every family) and the identical numbers without framing
(``tight=true``). Ways to read: the whole crop as the model's input (``whole``), and through the
locator with each candidate ``WHOLE_FRAME_COVER`` (a box covering at least that share of the image is
read as the whole image; ``never`` always reads the located box), with ``digitcam read``'s candidate
score gate (``--min-score``, ``device.choose.NO_NUMBER_BELOW``); and as a sensor without ``locate``
reads after the web page's Fit (``device.roi_fit``: the located box grown by each ``--fit-scales`` scale,
read as one fixed crop; the whole crop where nothing is found). Choose the rule on ``--split val``;
report it on ``test``. Prints a markdown table, then one summary line.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device import locate  # noqa: E402
from device.choose import NO_NUMBER_BELOW  # noqa: E402
from device.reader import FrameReader  # noqa: E402
from device.roi_fit import fit_roi  # noqa: E402
from device.recognize import Recognizer  # noqa: E402
from trainer.sources import iter_samples  # noqa: E402
from trainer.train_config import VAL_SEED  # noqa: E402


def accuracy(reader: FrameReader, samples) -> float:
    return 100.0 * sum((reader.find_and_read(img)[0].value or "") == lab for img, lab in samples) / len(samples)


def fitted_accuracy(reader: FrameReader, samples, scale: float) -> float:
    """Right readings of a sensor without ``locate`` whose ROI was fitted (whole crop where no fit is found)."""
    right = 0
    for img, lab in samples:
        fit = fit_roi(reader, img, scale=scale)
        reading = fit.reading if fit is not None else reader.recognizer.read([img])[0][0]
        right += (reading.value or "") == lab
    return 100.0 * right / len(samples)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="models/digitcam.tflite", help="comma-separated .tflite files")
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--covers", default="0.4,0.6,0.8,never")
    parser.add_argument("--fit-scales", default="", help="comma-separated scales of the fitted ROI (e.g. 1.0,1.2)")
    parser.add_argument("--quick", action="store_true", help="40 samples, one cover")
    parser.add_argument("--locator", type=Path, default=None, help="locator .tflite (default: the bundled one)")
    parser.add_argument("--min-score", type=float, default=NO_NUMBER_BELOW,
                        help="a located candidate scoring less reads no number (default: digitcam read's)")
    args = parser.parse_args(argv)
    n = 40 if args.quick else args.n
    covers = ["0.4"] if args.quick else args.covers.split(",")
    sets = {name: list(itertools.islice(iter_samples("framed", args.split, VAL_SEED, tight=tight), n))
            for name, tight in (("framed", False), ("tight", True))}
    locator = locate.default_locator(args.locator)
    default_cover = locate.WHOLE_FRAME_COVER
    print(f"| model | read as | framed:{args.split} | tight | gap |")
    print("|---|---|---:|---:|---:|")
    best = {}
    for path in args.models.split(","):
        recognizer = Recognizer(path)
        ways = [("whole", FrameReader(recognizer), None)]
        ways += [(f"located, cover {c}", FrameReader(recognizer, locator, args.min_score), c) for c in covers]
        ways += [(f"fitted ROI, scale {s}", FrameReader(recognizer, locator, args.min_score), float(s))
                 for s in filter(None, args.fit_scales.split(","))]
        for label, reader, option in ways:
            fitted = label.startswith("fitted")
            locate.WHOLE_FRAME_COVER = default_cover if option is None or fitted else (
                float("inf") if option == "never" else float(option))
            if fitted:
                framed, tight = (fitted_accuracy(reader, sets[k], option) for k in ("framed", "tight"))
            else:
                framed, tight = accuracy(reader, sets["framed"]), accuracy(reader, sets["tight"])
            print(f"| {Path(path).name} | {label} | {framed:.1f} % | {tight:.1f} % | {tight - framed:+.1f} |", flush=True)
            if framed + tight > sum(best.get(path, ("", -1, -1))[1:]):
                best[path] = (label, framed, tight)
    locate.WHOLE_FRAME_COVER = default_cover
    summary = "; ".join(f"{Path(p).name}: best {b[0]} framed {b[1]:.1f} % tight {b[2]:.1f} %" for p, b in best.items())
    print(f"loose crops ({args.split}, n={n} each): {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
