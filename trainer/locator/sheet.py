"""``digitcam locator sheet``: a contact sheet of annotated scenes for a person to check."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.reader import FrameReader


def contact_sheet(locator, recognizer, scenes, output: Path, cols: int = 6, tile_width: int = 240) -> Path:
    """Annotated scenes tiled into one image: what ``digitcam read`` reports (box and reading in green/red),
    the other candidates it read (thin yellow), the true box (thin blue)."""
    import cv2

    from device.overlay import annotate
    from trainer.preview import contact_sheet as sheet_of

    tiles = []
    reader = FrameReader(recognizer, locator)
    for frame, label, box in scenes:
        bgr = np.ascontiguousarray(frame[:, :, ::-1]) if frame.ndim == 3 else frame
        found = reader.read_candidates(bgr)
        value, conf = found.reading.value, (found.reading.confidence if found.candidates else 0.0)
        tile = annotate(bgr, found.reading.box, value, conf)
        for other in found.candidates:
            if other is not found.reading:
                x, y, w, h = other.box
                cv2.rectangle(tile, (x, y), (x + w - 1, y + h - 1), (0, 220, 255), 1)
        if box is not None:
            x, y, w, h = (int(v) for v in box)
            cv2.rectangle(tile, (x, y), (x + w - 1, y + h - 1), (230, 120, 30), 1)
        ok = (value or "") == label
        cv2.putText(tile, f"truth {label or '-'}", (4, tile.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 1.2,
                    (60, 220, 60) if ok else (40, 40, 230), 2, cv2.LINE_AA)
        scale = tile_width / tile.shape[1]
        tiles.append(cv2.resize(tile, (tile_width, int(round(tile.shape[0] * scale))), interpolation=cv2.INTER_AREA))
    th = max(t.shape[0] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, th - t.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=0) for t in tiles]
    output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(output), sheet_of(tiles, columns=cols))
    return output
