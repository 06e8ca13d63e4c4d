"""``digitcam locator train|scenes|export|views|eval|sheet``: the locator trainer's entry (parsed in ``device.cli``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(args) -> int:
    command = args.locator_command
    if command == "train":
        from trainer.locator.train import train

        train(args.out, args.n_train, args.epochs, args.batch, args.lr, width_mult=args.width_mult,
              minutes=args.minutes, scene_files=args.scenes, init=args.init, height=args.height, width=args.width)
        return 0
    if command == "scenes":
        from trainer.locator.examples import ZOOM_RATE, make_scene_set
        from trainer.locator.model import INPUT_HEIGHT, INPUT_WIDTH

        images, _ = make_scene_set("train", args.n, args.seed, args.height or INPUT_HEIGHT, args.width or INPUT_WIDTH,
                                   ZOOM_RATE, args.output,
                                   log_size=args.log_size, strips=args.strips, empty_rate=args.empty_rate,
                                   plain_rate=args.plain_rate, cluttered=args.cluttered,
                                   cluttered_kinds=scene_kinds(args.kinds), cluttered_empty=args.cluttered_empty,
                                   framed=args.framed, framed_empty=args.framed_empty)
        print(f"wrote {args.output} ({len(images)} scenes)")
        return 0
    if command == "export":
        from trainer.locator.export import export

        metrics = json.loads(args.metrics.read_text()) if args.metrics else None
        fields = export(args.run, args.output, args.threshold, args.margin, not args.no_refine, metrics=metrics)
        print(f"wrote {args.output} ({fields['size_bytes']} bytes, {fields['macs']} MACs)")
        return 0
    return _measure(command, args)


def scene_kinds(text: str) -> tuple[str, ...]:
    """``--kinds`` as a tuple, each checked against the kinds the scene renderer draws."""
    from trainer.scenes import CLUTTERED_KINDS as known

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in known]
    if unknown or not kinds:
        print(f"digitcam: error: --kinds {text!r}: want some of {', '.join(known)}", file=sys.stderr)
        raise SystemExit(2)  # a bad option, as argparse exits for one
    return kinds


def _measure(command: str, args) -> int:
    """``views``, ``eval`` and ``sheet``: the exported locator with a recognizer on held-out scenes."""
    from device.bundled import default_model
    from device.locate import Locator
    from device.recognize import Recognizer
    from trainer.locator.measure import TEST_SEED, VAL_SEED, held_out_scenes, measure, tight_crops

    recognizer = Recognizer(args.model or default_model())
    locator = Locator(args.locator)
    if command == "views":  # finds boxes only; the candidate views are read, not the manifest's
        from trainer.locator.views import choose_views, record_in_manifest

        report = choose_views(locator, recognizer, held_out_scenes("val", args.n, VAL_SEED, args.strips), args.max_views)
        print(json.dumps(report, indent=2))
        if args.write:
            record_in_manifest(args.locator, "crops", report["crops"])
        return 0
    scenes = held_out_scenes(args.split, args.n, TEST_SEED if args.split == "test" else VAL_SEED, args.strips,
                             args.cluttered, scene_kinds(args.kinds))
    if command == "sheet":
        from trainer.locator.sheet import contact_sheet

        print(contact_sheet(locator, recognizer, scenes, args.output))
        return 0
    report = measure(args.locator, scenes, recognizer)
    report["tight_crops"] = tight_crops(locator, recognizer, args.n)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0
