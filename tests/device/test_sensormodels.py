"""A sensor can name its own model (an adapted one): the real daemon reads it with that model."""

import json
from pathlib import Path

from tests import support



def own_model(folder: Path, model: Path) -> Path:
    """The test model under another name and version (same weights: it reads the clip as well)."""
    folder.mkdir()
    out = folder / "water-adapted.tflite"
    out.write_bytes(Path(model).read_bytes())
    manifest = json.loads(Path(model).with_suffix(".json").read_text())
    manifest.update(name="water-adapted", version="adapted-1", file=out.name)
    out.with_suffix(".json").write_text(json.dumps(manifest))
    return out


def test_a_sensor_with_its_own_model_is_read_and_published_with_it(tmp_path, model, clip, daemons):
    other = own_model(tmp_path / "own", model)
    second = f'\n[[sensor]]\nname = "own"\nroi = {list(support.ROI)}\nmodel = "{other}"\nmin_confidence = 0.3\n'
    config = support.write_config(tmp_path, model, clip[0], sensor_extra=second)
    daemon = daemons(config, "--print")
    assert daemon.wait(60) == 0, daemon.log()
    printed = daemon.printed()
    versions = {p["sensor"]: p["model"]["version"] for p in printed}
    assert versions["own"] == "adapted-1"
    assert versions["number"] == json.loads(Path(model).with_suffix(".json").read_text())["version"]
    assert {p["value"] for p in printed if p["sensor"] == "own"} & set(clip[1])  # it reads the clip


def test_a_missing_per_sensor_model_is_a_one_line_error_exit_2(tmp_path, model, clip):
    second = '\n[[sensor]]\nname = "own"\nmodel = "missing.tflite"\n'
    config = support.write_config(tmp_path, model, clip[0], sensor_extra=second)
    done = support.run_cli("run", "--config", config, timeout=60)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "missing.tflite" in last and last.startswith("digitcam: error:")
