"""Latency of the recognizer: int8 vs float, ai-edge-litert vs tflite-runtime, 1 vs 2 threads.

    .venv/bin/python bench/latency.py [--model models/digitcam.tflite] [--float-model F.tflite | --float-from-run runs/X]
    taskset -c 1 .venv/bin/python bench/latency.py --threads 1      # the recorded one-core figures
    .venv/bin/python bench/latency.py --quick                      # a few runs, to check it runs

Each row times the device's own call path (``device.benchmark``): per crop ``Recognizer.read`` (prepare
+ invoke + decode; "invoke" is the interpreter alone) and per 640x480 frame ``Locator.find`` + ``read``. The tflite-runtime rows run the
same code in ``.venv-tflite`` (tflite-runtime 2.14, numpy<2) as a subprocess. The float model is the same
network before int8 quantization, fed the same pixels as float32. Prints one markdown table and ends
with one summary line.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from device import locate  # noqa: E402
from device.benchmark import machine, measure, measure_reader, time_calls  # noqa: E402
from device.contract import InputSpec, decode_outputs, prepare_batch  # noqa: E402
from device.runtime import build_interpreter  # noqa: E402

log = logging.getLogger(__name__)

TFLITE_VENV_PYTHON = REPO / ".venv-tflite" / "bin" / "python"


class FloatRecognizer:
    """The float32 TFLite model read the way ``Recognizer.read`` reads the int8 one, for a fair timing."""

    def __init__(self, model_path: Path, threads: int = 1, runtime: str = "litert"):
        self.model_path = Path(model_path)
        self.interpreter, self.runtime = build_interpreter(self.model_path, threads=threads, prefer=runtime)
        self._runner = self.interpreter.get_signature_runner()
        (self._input_name, details), = self._runner.get_input_details().items()
        self.spec = InputSpec(height=int(details["shape"][1]), width=int(details["shape"][2]))

    def read(self, crops):
        batch = prepare_batch(crops, self.spec).astype(np.float32)
        start = time.perf_counter()
        raw = self._runner(**{self._input_name: batch})
        ms = (time.perf_counter() - start) * 1000.0
        return decode_outputs({k: np.asarray(v, dtype=np.float32) for k, v in raw.items()}), ms


def export_float(run_dir: Path, output: Path) -> Path:
    """The training run's best Keras checkpoint -> a float32 .tflite (no quantization), for comparison only."""
    import tensorflow as tf

    from trainer.train import load_run

    model = load_run(Path(run_dir)).best_model()
    with tempfile.TemporaryDirectory(prefix="digitcam-float-") as tmp:
        model.export(tmp, verbose=False)
        output.write_bytes(tf.lite.TFLiteConverter.from_saved_model(tmp).convert())
    return output


MOBILENET_V2_MACS = 300_000_000  # MobileNet v2 1.0 at 224x224, as published (Sandler et al. 2018)


def reference_model(path: Path) -> Path:
    """MobileNet v2 1.0 (224x224, random weights) in full int8: the model XNNPACK publishes Pi figures for.

    Timing it here gives this machine's speed on a known workload, so the Pi projection in
    docs/BENCHMARKS.md scales by a measured ratio rather than by clock speeds. Built once, then cached.
    """
    if path.is_file():
        return path
    import tensorflow as tf

    from trainer.export import full_int8

    model = tf.keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)]

    converter = full_int8(tf.lite.TFLiteConverter.from_keras_model(model), representative, tf.int8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(converter.convert())
    return path


def measure_reference(path: Path, threads: int, runs: int) -> dict:
    """Invoke time of the reference model on zeros (content does not change its cost)."""
    interpreter, runtime = build_interpreter(path, threads=threads, prefer="litert")
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()[0]
    interpreter.set_tensor(details["index"], np.zeros(details["shape"], dtype=details["dtype"]))
    timing = time_calls(interpreter.invoke, max(10, runs // 10), warmup=3)
    return {"precision": "int8", "model": str(path), "runtime": runtime, "threads": threads,
            "crop": {**timing, "invoke_median_ms": timing["median_ms"]}, "macs": MOBILENET_V2_MACS,
            "size_bytes": path.stat().st_size}


def measure_in_tflite_venv(model: Path, threads: int, runs: int, locator) -> dict | None:
    """The same measurement in .venv-tflite (tflite-runtime needs numpy<2), as a subprocess."""
    if not TFLITE_VENV_PYTHON.is_file():
        log.warning("%s missing (scripts/setup.sh --dev makes it): tflite-runtime rows left out", TFLITE_VENV_PYTHON)
        return None
    command = [str(TFLITE_VENV_PYTHON), "-m", "device.benchmark", "--model", str(model), "--runtime",
               "tflite-runtime", "--threads", str(threads), "--runs", str(runs), "--row",
               "--locator", str(locator.model_path) if locator else ""]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log.warning("tflite-runtime measurement failed: %s", done.stderr.strip().splitlines()[-1:])
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def collect(args) -> list[dict]:
    """All rows: int8 on both runtimes and float on LiteRT, for each thread count."""
    locator = locate.default_locator(args.locator) if args.locator != "" else None
    locator_arg = str(locator.model_path) if locator else ""
    float_model = args.float_model
    if float_model is None and args.float_from_run is not None:
        float_model = export_float(args.float_from_run, Path(tempfile.mkdtemp(prefix="digitcam-")) / "float.tflite")
    rows = []
    for threads in args.threads:
        row = measure(args.model, threads=threads, runtime="litert", runs=args.runs, locator_path=locator_arg)
        rows.append({"precision": "int8", **row})
        sub = measure_in_tflite_venv(args.model, threads, args.runs, locator)
        if sub is not None:
            rows.append({"precision": "int8", **sub})
        if float_model is not None:
            frame_locator = locate.default_locator(locator_arg, threads=threads) if locator else None
            reader = FloatRecognizer(float_model, threads=threads)
            rows.append({"precision": "float32", "model": str(float_model), "runtime": reader.runtime,
                         "threads": threads, "macs": row["macs"], "size_bytes": Path(float_model).stat().st_size,
                         **measure_reader(reader, args.runs, frame_locator)})
    if args.reference:
        from trainer.streams import cache_dir

        path = reference_model(cache_dir() / "mobilenet_v2_1.0_224_int8.tflite")
        rows += [measure_reference(path, threads, args.runs) for threads in args.threads]
    return rows


def print_table(rows: list[dict]) -> None:
    print("| model | runtime | threads | crop median ms | crop p95 ms | invoke median ms | frame median ms | "
          "frame p95 ms | MMACs (read + locate) | size KB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        frame = r.get("frame")
        frame_cols = f"{frame['median_ms']:.3f} | {frame['p95_ms']:.3f}" if frame else "- | -"
        macs = f"{(r['macs'] or 0) / 1e6:.1f}"
        if r.get("locator_macs"):
            macs += f" + {r['locator_macs'] / 1e6:.1f}"
        print(f"| {r['precision']} {Path(r['model']).name} | {r['runtime']} | {r['threads']} | "
              f"{r['crop']['median_ms']:.3f} | {r['crop']['p95_ms']:.3f} | {r['crop']['invoke_median_ms']:.3f} | "
              f"{frame_cols} | {macs} | "
              f"{r['size_bytes'] / 1024:.0f} |")


def ratio(rows, numerator: dict, denominator: dict) -> float | None:
    """crop median of the row matching ``numerator`` / that of the row matching ``denominator``."""
    def find(match):
        return next((r for r in rows if all(r[k] == v for k, v in match.items())), None)

    a, b = find(numerator), find(denominator)
    return a["crop"]["median_ms"] / b["crop"]["median_ms"] if a and b else None


def summary_line(rows: list[dict]) -> str:
    base = rows[0]
    t = base["threads"]
    line = f"latency: int8 on litert, {t} thread(s): {base['crop']['median_ms']:.3f} ms/crop"
    if "frame" in base:
        line += f", {base['frame']['median_ms']:.3f} ms/frame (locate+read)"
    parts = [
        ("float32/int8", ratio(rows, {"precision": "float32", "threads": t}, {"precision": "int8", "runtime": "litert", "threads": t})),
        ("tflite-runtime/litert", ratio(rows, {"runtime": "tflite-runtime", "threads": t}, {"runtime": "litert", "precision": "int8", "threads": t})),
        ("1/2 threads", ratio(rows, {"runtime": "litert", "precision": "int8", "threads": 1}, {"runtime": "litert", "precision": "int8", "threads": 2})),
    ]
    shown = [f"{name} {value:.2f}x" for name, value in parts if value is not None]
    return line + ("; time ratios " + ", ".join(shown) if shown else "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="int8 .tflite (default: the bundled one)")
    parser.add_argument("--float-model", type=Path, default=None, help="float32 .tflite of the same network")
    parser.add_argument("--float-from-run", type=Path, default=None,
                        help="training run directory: export its best checkpoint to float32 (needs TensorFlow)")
    parser.add_argument("--locator", default=None, help="locator .tflite (default: the bundled one; '' for none)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--reference", action="store_true",
                        help="also time int8 MobileNet v2 (built once with TensorFlow) for the Pi projection")
    parser.add_argument("--quick", action="store_true", help="20 runs: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 20
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cv2.setNumThreads(1)
    if args.model is None:
        from device.bundled import default_model

        args.model = default_model()
    print(f"# {machine()}")
    rows = collect(args)
    print_table(rows)
    print(summary_line(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
