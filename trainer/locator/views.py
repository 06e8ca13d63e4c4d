"""Choose the crop views that vote (greedy forward selection on the validation split) and record them in
the locator's manifest."""

from __future__ import annotations

import json
from pathlib import Path

from device.boxes import crop

# Candidate views (width scale, height scale, x shift of the width) around the found box: a few percent
# wider, taller or off to one side, the size of the locator's usual box error (docs/LOCATOR.md).
CANDIDATE_VIEWS = tuple((sx, sy, dx) for sx in (0.95, 1.0, 1.05, 1.1, 1.2) for sy in (0.9, 1.0, 1.1, 1.25)
                        for dx in (-0.03, 0.0, 0.03))


def view_readings(locator, recognizer, scenes, candidates=CANDIDATE_VIEWS) -> list:
    """Per scene: None (no box found) or the (value, confidence) read through each candidate view."""
    from device.boxes import view_boxes

    out = []
    for frame, _, _ in scenes:
        box = locator.find(frame)
        if box is None:
            out.append(None)
            continue
        readings, _ = recognizer.read([crop(frame, view) for view in view_boxes(box, frame.shape, candidates)])
        out.append([(r.value, r.confidence) for r in readings])
    return out


def voted_accuracy(scenes, readings, chosen: list[int]) -> float:
    """Sequence accuracy over the scenes with a number when the ``chosen`` views vote (``device.recognize.vote``)."""
    from device.contract import Reading
    from device.recognize import vote

    hits = total = 0
    for (_, label, box), read in zip(scenes, readings):
        if box is None:
            continue
        total += 1
        if read is not None:
            hits += (read[chosen[vote([Reading(*read[i]) for i in chosen])]][0] or "") == label
    return hits / max(1, total)


def choose_views(locator, recognizer, scenes, max_views: int = 3, candidates=CANDIDATE_VIEWS) -> dict:
    """Greedy forward selection of the views that read best together, starting from the box itself.

    Run on the validation split; a view joins only if it adds at least one right reading.
    """
    readings = view_readings(locator, recognizer, scenes, candidates)
    chosen = [candidates.index((1.0, 1.0, 0.0))]
    steps = [{"views": [list(candidates[i]) for i in chosen], "accuracy": round(voted_accuracy(scenes, readings, chosen), 4)}]
    n = sum(box is not None for _, _, box in scenes)
    while len(chosen) < max_views:
        scores = {i: voted_accuracy(scenes, readings, chosen + [i]) for i in range(len(candidates)) if i not in chosen}
        best = max(scores, key=scores.get)
        if (scores[best] - steps[-1]["accuracy"]) * n < 1 - 1e-6:
            break
        chosen.append(best)
        steps.append({"views": [list(candidates[i]) for i in chosen], "accuracy": round(scores[best], 4)})
    return {"crops": steps[-1]["views"], "steps": steps, "scenes": len(scenes), "with_number": n}


def record_in_manifest(locator_path: Path, key: str, value) -> None:
    """Set one field of the locator's manifest (the chosen ``crops``, measured ``metrics``); the model
    file, and so its sha256, is untouched."""
    from device.manifest import manifest_path, write_manifest

    data = json.loads(manifest_path(locator_path).read_text())
    kept = {k: v for k, v in data.items() if k not in ("schema", "file", "sha256")}  # write_manifest sets these
    write_manifest(locator_path, kept | {key: value})
