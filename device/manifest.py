"""The model manifest: the JSON beside every model that says what it is and proves it is intact.

``models/digitcam.tflite`` has ``models/digitcam.json`` beside it. The device refuses a model whose
sha256 differs from the manifest's, whose manifest is missing, or whose preprocessing is not ours.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from device.contract import HEADS, PREPROCESS_VERSION
from device.errors import ModelError

MANIFEST_SCHEMA = 1


def manifest_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    sha256: str
    head: str
    data: dict

    @property
    def short(self) -> str:
        return f"{self.name}@{self.version}/{self.sha256[:12]}"


def write_manifest(model_path: Path, fields: dict) -> Path:
    """Write the manifest for a freshly exported model; the sha256 is computed here, never passed in."""
    model_path = Path(model_path)
    data = {"schema": MANIFEST_SCHEMA, **fields, "file": model_path.name, "sha256": sha256_of(model_path)}
    path = manifest_path(model_path)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def read_verified_manifest(model_path: Path, what: str = "model", preprocess: str = PREPROCESS_VERSION) -> dict:
    """The manifest of ``model_path`` as a dict, after checking it exists, parses, was made for our
    preprocessing and carries the model file's sha256; any problem is a one-line ModelError.

    ``what`` names the model in messages ('model', 'locator model'); every model kind shares this check.
    """
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelError(f"{what} not found: {model_path}")
    path = manifest_path(model_path)
    if not path.is_file():
        raise ModelError(f"{what} manifest not found: {path} (every model needs its manifest beside it)")
    try:
        data = json.loads(path.read_text())
        sha, found = data["sha256"], data["input"]["preprocess"]
        if not isinstance(data, dict) or not isinstance(sha, str):
            raise TypeError("not a manifest object")
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{what} manifest {path} is corrupt: {exc.__class__.__name__}: {exc}") from None
    if found != preprocess:
        raise ModelError(f"{what} {model_path} was made for preprocessing {found!r}, this digitcam does {preprocess!r}")
    actual = sha256_of(model_path)
    if actual != sha:
        raise ModelError(f"{what} checksum mismatch: {model_path} has sha256 {actual[:16]}…, manifest says {sha[:16]}…")
    return data


def load_manifest(model_path: Path) -> Manifest:
    """Read and verify the recognizer's manifest; any mismatch is a one-line ModelError."""
    data = read_verified_manifest(model_path)
    path = manifest_path(Path(model_path))
    try:
        name, version, head = data["name"], str(data["version"]), data["head"]
    except KeyError as exc:
        raise ModelError(f"model manifest {path} is corrupt: KeyError: {exc}") from None
    if head not in HEADS:
        raise ModelError(f"model manifest {path}: unknown head {head!r}, want one of {HEADS}")
    return Manifest(name=name, version=version, sha256=data["sha256"], head=head, data=data)
