"""The frame reader: the one recipe from a frame to Readings, used by the daemon, ``digitcam read``,
``digitcam bench`` and the locator trainer's measurements.

The recipe: a box (a fixed ROI, or the locator's box, tracked between searches) -> the box seen through
the locator's crop views -> all crops of the frame through the recognizer in one call -> the views of
each box vote (``device.recognize.vote``) -> one ``Reading`` per box, built here with its box.
Where the locator finds several candidate boxes (``Locator.candidates``), all are read in that one call
and ``device.choose`` picks the number (``read_candidates``); the daemon's search chooses so too.

The daemon's per-sensor state (box tracker, last search, winning view) lives on ``Sensor``; only
``read_sensors(..., track=True)`` changes it, so an on-demand read (``cmd/read``) sees what the loop
would read now without moving the track.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from device.boxes import Box, clip_box, crop, whole_frame
from device.choose import DEFAULT_GATE, choose
from device.contract import Reading
from device.locate import Candidate
from device.smooth import Smoother
from device.tracker import BoxTracker

# A whole-image candidate's own read counts this many times against its located box's views: chosen on
# val (framed:val located 83.5 -> 85.3 %, the same numbers tight 81.2 -> 81.2 %; 1 vote: tight 70.3 %;
# the whole image alone, as before: 83.5 / 81.2 %), bench/loose_crops.py.
WHOLE_IMAGE_VOTES = 2.0


def no_number() -> Reading:
    """The Reading of a box the locator did not find: no value, and sure of that."""
    return Reading(value=None, confidence=1.0)


@dataclass
class Sensor:
    """One configured number: where to look, its smoother, its box tracker and its last reading (for snapshots)."""

    config: object
    smoother: Smoother
    last: Reading | None = None
    tracker: BoxTracker = field(default_factory=BoxTracker)
    searched_at: int | None = None  # frame number of the last locator search
    view: int | None = None  # the locator view that won the last search's vote, read until the next search

    @property
    def name(self) -> str:
        return self.config.name


def build_sensors(configs, previous=()) -> list[Sensor]:
    """Sensors for these configs; an unchanged sensor keeps its smoother (and its stable value) on reload."""
    kept = {s.name: s for s in previous}
    out = []
    for cfg in configs:
        old = kept.get(cfg.name)
        out.append(old if old is not None and old.config == cfg else Sensor(cfg, Smoother.from_config(cfg)))
    return out


def fixed_box(cfg, frame: np.ndarray) -> Box:
    """The configured ROI clipped to the frame, or the whole frame; an ROI outside it is an error."""
    if not cfg.roi:
        return whole_frame(frame)
    h, w = frame.shape[:2]
    x, y, bw, bh = cfg.roi
    x1, y1 = min(x + bw, w), min(y + bh, h)
    if x >= w or y >= h or x1 - x < 2 or y1 - y < 2:
        raise ValueError(f"sensor {cfg.name}: roi {list(cfg.roi)} lies outside the {w}x{h} frame")
    return x, y, x1 - x, y1 - y


@dataclass(frozen=True)
class Found:
    """What ``read_candidates`` saw: the chosen Reading, every candidate's Reading and peak (best peak
    first), and the ms of the one recognizer call."""

    reading: Reading
    candidates: list[Reading]
    peaks: list[float]
    ms: float
    score: float = 1.0  # the chosen candidate's ``device.choose.DEFAULT_GATE`` score: is it a number at all


class FrameReader:
    """A recognizer and an optional locator, and the one way to read numbers in a frame with them."""

    def __init__(self, recognizer, locator=None, min_score: float = 0.0):
        self.recognizer = recognizer
        self.locator = locator
        self.min_score = min_score  # a located choice whose gate score is less reads no number (digitcam read)
        self._fixed: dict = {}  # (sensor name, frame size) -> its fixed box

    # ---- one number in one image (digitcam read, bench, the locator trainer) --------------------------

    def find(self, frame: np.ndarray) -> Box | None:
        """The crop box of the number: the locator's (None: no number), or the whole frame without one."""
        return whole_frame(frame) if self.locator is None else self.locator.find(frame)

    def read_box(self, frame: np.ndarray, box: Box) -> tuple[Reading, float]:
        """The number in ``box`` read through all the locator's views: (voted Reading with its box, ms)."""
        (reading,), _, ms = self._read(frame, [(box, self._views(box, frame.shape))])
        return reading, ms

    def find_and_read(self, frame: np.ndarray, roi: Box | None = None) -> tuple[Reading, float]:
        """The chosen candidate's Reading (``read_candidates``) and the ms the read took."""
        found = self.read_candidates(frame, roi)
        return found.reading, found.ms

    def read_candidates(self, frame: np.ndarray, roi: Box | None = None) -> Found:
        """Every candidate box the locator finds (inside ``roi``, if given), all in one recognizer call
        (``_choose``); ``device.choose`` picks the Reading to report. No candidate: the no-number
        Reading. Without a locator the roi (else the whole frame) is the one candidate. An roi is cut to
        the frame; one wholly outside it is a ValueError. A located choice whose gate score
        (``device.choose.NumberGate``) is below ``min_score`` reads no number (its box and confidence kept).
        """
        if roi is not None:
            roi = clip_box(roi, frame.shape)
            if roi is None:
                raise ValueError(f"the roi lies outside the {frame.shape[1]}x{frame.shape[0]} image")
        if self.locator is None:
            return self._choose(frame, [Candidate(roi or whole_frame(frame), 1.0)])
        found = self._choose(frame, self.locator.candidates(frame, roi))
        if found.candidates and found.score < self.min_score:
            found = replace(found, reading=replace(found.reading, value=None, digits=[]))
        return found

    def _choose(self, frame: np.ndarray, candidates: list[Candidate]) -> Found:
        """All candidates in one recognizer call, the strongest through every view, the others through the
        box alone (val: the same right-number rate, 61.5 vs 62.0 % on cluttered scenes, with 5 crops a
        cluttered frame instead of 10); then ``device.choose``."""
        if not candidates:
            return Found(no_number(), [], [], 0.0)
        peaks = [c.score for c in candidates]
        jobs, weights = zip(*(self._candidate_views(c, frame.shape, i == 0) for i, c in enumerate(candidates)))
        readings, _, ms = self._read(frame, jobs, weights)
        pick = choose(peaks, readings)
        return Found(readings[pick], readings, peaks, ms, DEFAULT_GATE.score(peaks[pick], readings[pick]))

    def _candidate_views(self, candidate: Candidate, frame_shape, every_view: bool):
        """A candidate's ``(box, views)`` job and the views' vote weights: its box through the locator's
        views (only the box itself unless ``every_view``). A whole-image candidate (``inner``: the number
        fills the image) reads the image, counted ``WHOLE_IMAGE_VOTES`` times, and the located box's views."""
        if candidate.inner is None:
            views = self._views(candidate.box, frame_shape)
            weights = [1.0] * len(views)
        else:
            views = [candidate.box] + self._views(candidate.inner, frame_shape)
            weights = [WHOLE_IMAGE_VOTES] + [1.0] * (len(views) - 1)
        keep = None if every_view else 1
        return (candidate.box, views[:keep]), weights[:keep]

    def search(self, frame: np.ndarray, roi: Box | None = None) -> Box | None:
        """The daemon's locator search: the box ``read_candidates`` would choose (None: no number).

        One candidate needs no reading to be chosen, so only frames with several pay for a read here.
        """
        candidates = self.locator.candidates(frame, roi)
        if len(candidates) <= 1:
            return candidates[0].box if candidates else None
        return self._choose(frame, candidates).reading.box

    # ---- the daemon's sensors -------------------------------------------------------------------------

    def read_sensors(self, frame: np.ndarray, sensors, frame_no: int, track: bool = True) -> tuple[list[Reading], float]:
        """A Reading per sensor, all crops through the recognizer in one call, and the ms it took.

        A located box is read through the locator's views when the locator searches; between searches
        only the view that won is read, so the vote costs one crop's read per search, not per frame.
        With ``track=False`` (an on-demand read) no search is recorded and no tracker or view changes.
        """
        jobs, owners = [], []
        for sensor in sensors:
            box = self._sensor_box(sensor, frame, frame_no, track)
            if box is not None:
                jobs.append((box, self._sensor_views(sensor, box, frame.shape, frame_no)))
                owners.append(sensor)
        found, picks, ms = self._read(frame, jobs)
        if track:
            for sensor, (_, views), pick in zip(owners, jobs, picks):
                if len(views) > 1:
                    sensor.view = pick
        by_sensor = {id(sensor): reading for sensor, reading in zip(owners, found)}
        return [by_sensor.get(id(sensor)) or no_number() for sensor in sensors], ms

    def _located(self, sensor) -> bool:
        return bool(sensor.config.locate) and self.locator is not None

    def _sensor_box(self, sensor: Sensor, frame: np.ndarray, frame_no: int, track: bool) -> Box | None:
        """Where to read: the locator's box (searched inside the roi, if set), else the fixed roi."""
        cfg = sensor.config
        key = (cfg.name, frame.shape[:2])
        fixed = self._fixed.get(key)
        if fixed is None:
            fixed = self._fixed[key] = fixed_box(cfg, frame)
        if not self._located(sensor):
            return fixed
        roi = fixed if cfg.roi else None
        if not track:  # on demand: the tracked box as it is, else one unrecorded search
            box = sensor.tracker.box
            box = box if box is not None else self.search(frame, roi)
            return None if box is None else clip_box(box, frame.shape)
        # searched every ``locate_every`` frames and tracked so the crop does not jump: a meter or a house
        # number does not move between frames, and the search costs more than the read
        if sensor.searched_at is None or frame_no - sensor.searched_at >= cfg.locate_every:
            sensor.searched_at = frame_no
            found = self.search(frame, roi)
            sensor.tracker.update(None if found is None else tuple(int(v) for v in found))
        box = sensor.tracker.box
        return None if box is None else clip_box(box, frame.shape)

    def _sensor_views(self, sensor: Sensor, box: Box, frame_shape, frame_no: int) -> list[Box]:
        """All the locator's views on a search frame (or before any vote), else only the one that won."""
        if not self._located(sensor):
            return [box]
        views = self.locator.view_boxes(box, frame_shape)
        if sensor.searched_at == frame_no or sensor.view is None or sensor.view >= len(views):
            return views
        return [views[sensor.view]]

    # ---- the one read -----------------------------------------------------------------------------------

    def _views(self, box: Box, frame_shape) -> list[Box]:
        return [box] if self.locator is None else self.locator.view_boxes(box, frame_shape)

    def _read(self, frame: np.ndarray, jobs, weights=None) -> tuple[list[Reading], list[int], float]:
        """``[(box, its views), ...]`` -> (a voted Reading per box, carrying the box; the winning views; ms).
        ``weights``: per job, its views' vote weights (default 1 each)."""
        groups = [[crop(frame, v) for v in views] for _, views in jobs]
        found, picks, ms = self.recognizer.read_views(groups, weights)
        readings = [replace(reading, box=tuple(int(v) for v in box)) for reading, (box, _) in zip(found, jobs)]
        return readings, picks, ms
