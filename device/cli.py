"""``digitcam``: the one command line entry point, for the daemon, one-shot reads and the trainer.

Device subcommands import only device code. Trainer subcommands (data, train, export, eval, adapt, locator) import
their modules lazily, so a Pi without TensorFlow still has a working ``digitcam``. Any DigitcamError
ends the program with its one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from pathlib import Path

from device import __version__
from device.bundled import default_model
from device.errors import DigitcamError, TrainerMissing

log = logging.getLogger("digitcam")

EXIT_USAGE = 2


def _trainer(module: str, function: str = "main", needs_tf: bool = True):
    """Import a trainer entry lazily; without TensorFlow, say which extra to install."""

    def run(args):
        if needs_tf:
            try:
                import tensorflow  # noqa: F401
            except ImportError:
                raise TrainerMissing("this command needs TensorFlow: install digitcam[train]") from None
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise TrainerMissing(f"this command needs the trainer: install digitcam[train] ({exc})") from None
        return getattr(mod, function)(args)

    return run


def _device(module: str, function: str = "main"):
    def run(args):
        return getattr(importlib.import_module(module), function)(args)

    return run


def confidence_arg(text: str) -> float:
    """A probability for argparse: a number in [0, 1], else a one-line usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value


def roi_arg(text: str) -> tuple[int, int, int, int]:
    """A region for argparse: x,y,w,h in whole pixels, w and h positive, else a one-line usage error."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"want x,y,w,h in pixels, not {text!r}") from None
    if x < 0 or y < 0 or w < 2 or h < 2:
        raise argparse.ArgumentTypeError(f"want x, y >= 0 and w, h >= 2, not {text!r}")
    return x, y, w, h


def cmd_read(args) -> int:
    from device.choose import NO_NUMBER_BELOW
    from device.oneshot import read_images
    from device.recognize import Recognizer

    recognizer = Recognizer(args.model or default_model(), threads=args.threads, runtime=args.runtime)
    locator = None
    if not args.no_locate:
        from device.locate import default_locator

        locator = default_locator(args.locator)
    failed = 0
    for result in read_images(
        recognizer, args.images, use_locator=not args.no_locate, locator=locator, annotate_dir=args.annotate,
        min_confidence=args.min_confidence, roi=args.roi, min_score=NO_NUMBER_BELOW if args.min_score is None else args.min_score,
    ):
        failed += "error" in result
        if args.json:
            print(json.dumps(result), flush=True)
        elif "error" in result:
            print(f"{result['image']}: error: {result['error']}", flush=True)
        else:
            print(f"{result['image']}: {result['value'] if result['value'] is not None else '-'} "
                  f"({result['confidence']:.2f})", flush=True)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digitcam", description="Read the numbers a camera sees and publish them over MQTT.")
    parser.add_argument("--version", action="version", version=f"digitcam {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("DIGITCAM_LOG_LEVEL", "INFO"),
                        help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon: capture, read, smooth, publish")
    p.add_argument("--config", "-c", required=True, type=Path, help="digitcam.toml")
    p.add_argument("--print", dest="print_readings", action="store_true", help="also print readings as JSON lines")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames (replays, tests)")
    p.set_defaults(func=_device("device.daemon"))

    p = sub.add_parser("read", help="read the number in image files once")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--model", type=Path, default=None, help="int8 .tflite with its .json manifest beside it")
    p.add_argument("--locator", type=Path, default=None, help="locator .tflite (default: the bundled one)")
    p.add_argument("--no-locate", action="store_true", help="treat each whole image as the number crop")
    p.add_argument("--json", action="store_true", help="one JSON object per image, in input order")
    p.add_argument("--annotate", type=Path, default=None, metavar="DIR", help="write each image with box and number drawn")
    p.add_argument("--min-confidence", type=confidence_arg, default=0.0, metavar="P",
                   help="report no number (null) when the reading is less sure than P, 0..1 (default 0: always report)")
    p.add_argument("--min-score", type=confidence_arg, default=None, metavar="S",
                   help="report no number when the located number's gate score (how likely it is a number at all, "
                        "from detector peak, confidence and length) is below S, 0..1 (default: chosen on validation scenes)")
    p.add_argument("--roi", type=roi_arg, default=None, metavar="X,Y,W,H",
                   help="look for the number only in this rough region of each image (pixels)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runtime", default="auto", choices=["auto", "litert", "tflite-runtime"])
    p.set_defaults(func=cmd_read)

    p = sub.add_parser("check-config", help="validate a digitcam.toml and exit")
    p.add_argument("config", type=Path)
    p.set_defaults(func=_device("device.config", "check_main"))

    p = sub.add_parser("data", help="generate or preview training data")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    q = dsub.add_parser("preview", help="write a contact sheet of samples with their labels")
    q.add_argument("--source", required=True, help="rendered, mnist, meters, meter-strips, svhn, scenes")
    q.add_argument("-n", type=int, default=64)
    q.add_argument("-o", "--output", type=Path, required=True)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--split", default="train", choices=["train", "val", "test"])
    q.add_argument("--svhn-dir", type=Path, default=None)
    q.set_defaults(func=_trainer("trainer.preview", needs_tf=False))
    q = dsub.add_parser("fetch", help="download real training data from its origin, verified, into $DIGITCAM_DATA")
    q.add_argument("datasets", nargs="+", choices=["meters", "mnist", "svhn"], metavar="DATASET",
                   help="meters, mnist or svhn")
    q.add_argument("--dest", type=Path, default=None, help="data folder (default $DIGITCAM_DATA, else ~/.cache/digitcam/data)")
    q.add_argument("--mirror", default=None, metavar="URL", help="fetch each file as URL/<file name> instead (still verified)")
    q.add_argument("--allow-unpinned", action="store_true", help="fetch files that have no pinned sha256 yet, unverified")
    q.set_defaults(func=_trainer("trainer.fetch", needs_tf=False))

    p = sub.add_parser("train", help="train a recognizer from a training config (TOML)")
    p.add_argument("config", type=Path)
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<config name>)")
    p.add_argument("--fresh", action="store_true", help="ignore checkpoints and start over")
    p.set_defaults(func=_trainer("trainer.train"))

    p = sub.add_parser("export", help="export a trained model to full-int8 TFLite with a manifest")
    p.add_argument("run_dir", type=Path, help="the training run directory")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .tflite to write")
    p.add_argument("--version", dest="model_version", default=None)
    p.add_argument("--no-parity", action="store_true", help="skip the int8-vs-float parity check (not for release)")
    p.set_defaults(func=_trainer("trainer.export"))

    add_locator_parser(sub.add_parser("locator", help="train, measure and export the locator (finds the number)"))

    p = sub.add_parser("eval", help="evaluate a model on a labelled set: JSON report + PNG sheets")
    p.add_argument("dataset", help="folder of images named by label, a labels CSV, or a built-in set name")
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("-o", "--output", type=Path, required=True, help="report directory")
    p.set_defaults(func=_trainer("trainer.evaluate", needs_tf=False))

    p = sub.add_parser("bench", help="measure speed of the installed model on this machine")
    add_bench_arguments(p)
    p.set_defaults(func=_device("device.benchmark"))

    p = sub.add_parser("crops", help="list, label and export the crops sensors collected (collect = true)")
    csub = p.add_subparsers(dest="crops_command", required=True, metavar="ACTION")
    q = csub.add_parser("list", help="one line per crop: sensor/name, kind, label, what the model read")
    q.add_argument("where", type=Path, help="digitcam.toml (its state directory's crops) or a folder of crops")
    q.add_argument("--kind", choices=["auto", "human", "review"], default=None)
    q.add_argument("--sensor", default=None)
    q.add_argument("--json", action="store_true", help="one JSON object per crop")
    q.set_defaults(func=_device("device.cropstore"))
    q = csub.add_parser("label", help="give a crop a person's label (outranks the pseudo-label); 'none' to unlabel")
    q.add_argument("where", type=Path, help="digitcam.toml or a folder of crops")
    q.add_argument("name", help="the crop's name (or SENSOR/name) as crops list shows it")
    q.add_argument("label", help="1-8 digits, or none")
    q.set_defaults(func=_device("device.cropstore"))
    q = csub.add_parser("export", help="copy the labelled crops to a folder with labels.csv (for digitcam eval)")
    q.add_argument("where", type=Path, help="digitcam.toml or a folder of crops")
    q.add_argument("-o", "--output", type=Path, required=True)
    q.add_argument("--sensor", default=None)
    q.set_defaults(func=_device("device.cropstore"))

    p = sub.add_parser("adapt", help="fine-tune the model on a meter's collected crops (needs digitcam[train])")
    p.add_argument("--crops", type=Path, required=True, help="a folder of collected crops (a store, or fetched)")
    p.add_argument("--model", type=Path, default=None,
                   help="the base .tflite (default: the bundled one); its Keras weights (.keras) lie beside it")
    p.add_argument("--weights", type=Path, default=None, help="the base's Keras weights, if not beside the model")
    p.add_argument("-o", "--output", type=Path, required=True, help="the adapted .tflite to write")
    p.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: from the crop count)")
    p.add_argument("--holdout", type=float, default=0.25, help="share of the crops, the latest, held out (0.05-0.5)")
    p.add_argument("--cache", type=Path, default=None, help="a pre-rendered shard cache of the training mix")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parity-points", type=float, default=None,
                   help="int8 may lose this many points against float on a set (default 1, what the base "
                        "comparison allows)")
    p.set_defaults(func=_trainer("trainer.adapt"))
    return parser


def add_locator_parser(p: argparse.ArgumentParser) -> None:
    """``digitcam locator ACTION``: the locator trainer (``trainer.locator``); train and export need TensorFlow."""
    lsub = p.add_subparsers(dest="locator_command", required=True, metavar="ACTION")
    q = lsub.add_parser("train", help="train (or resume) a locator on rendered scenes, a checkpoint every epoch")
    q.add_argument("--out", type=Path, default=Path("runs/locator"))
    q.add_argument("--n-train", type=int, default=12000)
    q.add_argument("--epochs", type=int, default=12)
    q.add_argument("--batch", type=int, default=32)
    q.add_argument("--lr", type=float, default=3e-3)
    q.add_argument("--width-mult", type=float, default=1.0)
    q.add_argument("--minutes", type=float, default=None, help="stop after the epoch that passes this budget")
    q.add_argument("--scenes", type=Path, nargs="+", default=None, help="training scene files (from `scenes`)")
    q.add_argument("--init", type=Path, default=None, help="start from this model's weights (.keras, any input size; or an int8 .tflite locator)")
    q.add_argument("--height", type=int, default=None, help="model input height (default 128; a new run only)")
    q.add_argument("--width", type=int, default=None, help="model input width (default 160; a new run only)")
    q.set_defaults(func=_trainer("trainer.locator.cli"))
    q = lsub.add_parser("scenes", help="render a training scene set to an .npz file")
    q.add_argument("output", type=Path)
    q.add_argument("-n", type=int, default=10000)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--log-size", action="store_true", help="log-uniform number heights: more small numbers")
    q.add_argument("--height", type=int, default=None, help="model input height (default 128)")
    q.add_argument("--width", type=int, default=None, help="model input width (default 160)")
    q.add_argument("--strips", type=float, default=0.0, help="share of numbers that are real meter strips")
    q.add_argument("--empty-rate", type=float, default=None, help="share of scenes without a number (default 0.1)")
    q.add_argument("--plain-rate", type=float, default=0.0,
                   help="share of the scenes without a number that are a flat colour or a smooth ramp")
    q.add_argument("--cluttered", type=float, default=0.0,
                   help="share of scenes with many other numbers (instrument clusters, meter faces, date stamps)")
    _add_cluttered_kinds(q)
    q.add_argument("--cluttered-empty", type=float, default=0.0,
                   help="share of the cluttered scenes drawn without their wanted number (negatives)")
    q.add_argument("--framed", type=float, default=0.0,
                   help="share of frames that are a number crop framed loosely (a loose ROI, a cropped photo)")
    q.add_argument("--framed-empty", type=float, default=0.0,
                   help="share of the framed frames whose crop holds no number (negatives)")
    q.set_defaults(func=_trainer("trainer.locator.cli", needs_tf=False))
    q = lsub.add_parser("export", help="a run's last.keras -> full-int8 locator .tflite with its manifest")
    q.add_argument("run", type=Path)
    q.add_argument("-o", "--output", type=Path, default=Path("models/locator.tflite"))
    q.add_argument("--threshold", type=float, default=0.5)
    q.add_argument("--margin", type=float, default=0.1)
    q.add_argument("--no-refine", action="store_true", help="one pass only (no second look around the box)")
    q.add_argument("--metrics", type=Path, default=None, help="an eval report (JSON) to record in the manifest")
    q.set_defaults(func=_trainer("trainer.locator.cli"))
    q = lsub.add_parser("views", help="choose the crop views that vote, on the validation split")
    q.add_argument("--locator", type=Path, default=Path("models/locator.tflite"))
    q.add_argument("--model", type=Path, default=None, help="recognizer (default: the bundled one)")
    q.add_argument("-n", type=int, default=600)
    q.add_argument("--max-views", type=int, default=3)
    q.add_argument("--strips", type=float, default=0.0, help="share of real meter strips among the numbers")
    q.add_argument("--write", action="store_true", help="record the chosen views in the locator's manifest")
    q.set_defaults(func=_trainer("trainer.locator.cli", needs_tf=False))
    for name, text in (("eval", "measure a locator on held-out scenes: box IoU, no-number scenes, end to end (JSON)"),
                       ("sheet", "write a contact sheet of annotated held-out scenes")):
        q = lsub.add_parser(name, help=text)
        q.add_argument("--locator", type=Path, default=Path("models/locator.tflite"))
        q.add_argument("--model", type=Path, default=None, help="recognizer (default: the bundled one)")
        q.add_argument("--split", default="test", choices=["val", "test"])
        q.add_argument("-n", type=int, default=300 if name == "eval" else 36)
        q.add_argument("-o", "--output", type=Path, required=name == "sheet")
        q.add_argument("--strips", type=float, default=0.0, help="share of real meter strips among the numbers")
        q.add_argument("--cluttered", type=float, default=0.0, help="share of cluttered scenes (trainer.cluttered)")
        _add_cluttered_kinds(q)
        q.set_defaults(func=_trainer("trainer.locator.cli", needs_tf=False))


def _add_cluttered_kinds(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kinds", default="cluster,meter,watermark",
                        help="comma-separated cluttered scene kinds: cluster, meter, watermark, house")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``digitcam bench`` and ``python -m device.benchmark`` (kept here: no heavy imports)."""
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--runtime", default="auto", choices=["auto", "litert", "tflite-runtime"])
    parser.add_argument("--locator", default=None,
                        help="locator .tflite for the per-frame figure (default: the bundled one; '' for none)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object instead of the table: model, platform, runtime, ms per crop "
                             "and per frame (what to send back from a Pi)")
    parser.add_argument("--row", action="store_true", help="print the flat measurement row (bench/latency.py)")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except DigitcamError as exc:
        print(f"digitcam: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
