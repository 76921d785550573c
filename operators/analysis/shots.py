"""Shot boundaries and motion from a segment's thumbnails (5/s by default).

Between consecutive thumbnails the detector measures how much the picture changed, in colour
(distance between hue/saturation/value histograms) and in features (1 - correlation of the
normalised luminance layouts), averaged into one score in ``[0, 1]``. A hard cut changes both at
once; a camera move or a person walking changes the layout a little and the colours hardly at all.

The threshold adapts to the source: a cut is a change well above what this source usually does,
``median + sensitivity * MAD`` over the last ``history`` non-cut changes, and never below
``min_score``. A handheld sports feed moves far more than a studio camera, and one fixed threshold
either misses the studio's cuts or fires on every pan of the match. Cuts closer than
``min_shot_ns`` to the previous one are dropped (flashes, strobes). Dissolves and fades spread their
change over many thumbnails and are not detected as cuts (they raise motion instead).

The detector is causal, with no look-ahead: it keeps the previous thumbnail and the recent
history across segments, so one detector per source sees that source's segments in time order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from operators.base import Operator, Resources
from operators.records import NS_PER_SECOND, Segment, Span


@dataclass(frozen=True, slots=True)
class ShotConfig:
    min_score: float = 0.3
    """No change below this is a cut, however still the source is."""
    sensitivity: float = 6.0
    """How many median absolute deviations above the recent median a cut must be."""
    history: int = 150
    """Changes remembered for the threshold: 30 s at 5 thumbnails/s."""
    min_shot_ns: int = NS_PER_SECOND // 2

    def __post_init__(self) -> None:
        if not 0 < self.min_score < 1 or self.sensitivity <= 0 or self.history < 5 or self.min_shot_ns < 0:
            raise ValueError(f"shot config out of range: {self}")


@dataclass(frozen=True, slots=True)
class ShotResult:
    """Cuts found inside one segment (times of the first thumbnail of each new shot, with their
    change score) and its motion: the mean change between consecutive thumbnails that are not
    cuts (0 still, ~0.05 a slow camera move, 0.2+ fast action)."""

    segment_id: int
    span: Span
    cuts_ns: tuple[int, ...]
    cut_scores: tuple[float, ...]
    motion: float

    def __post_init__(self) -> None:
        if len(self.cuts_ns) != len(self.cut_scores):
            raise ValueError("one score per cut")
        if any(not self.span.contains(t) for t in self.cuts_ns):
            raise ValueError(f"cuts {self.cuts_ns} fall outside {self.span!r}")


class ShotDetector(Operator[Segment, ShotResult]):
    """Stateful: one instance per source, fed that source's segments in order."""

    name = "shots"
    emit_delay_ns = 0

    def __init__(self, config: ShotConfig = ShotConfig()) -> None:
        super().__init__(resources=Resources(cpus=0.05, memory_mb=64), batch_size=1)
        self.config = config
        self._previous: np.ndarray | None = None  # signature of the last thumbnail seen
        self._last_cut_ns: int | None = None
        self._changes: deque[float] = deque(maxlen=config.history)

    def process(self, batch: Sequence[Segment]) -> list[ShotResult]:
        return [self._one(segment) for segment in batch]

    def flush(self) -> list[ShotResult]:
        return []

    def threshold(self) -> float:
        """The change a cut needs now, from the recent history of this source."""
        if len(self._changes) < 5:
            return max(self.config.min_score, 0.5)  # too little seen to know the source: be strict
        changes = np.fromiter(self._changes, np.float64)
        median = float(np.median(changes))
        mad = float(np.median(np.abs(changes - median)))
        return max(self.config.min_score, median + self.config.sensitivity * max(mad, 0.005))

    def _one(self, segment: Segment) -> ShotResult:
        cuts, scores, motion = [], [], []
        for pts_ns, image in zip(segment.thumbnail_pts_ns.tolist(), segment.thumbnails):
            signature = _signature(image)
            if self._previous is not None:
                change = _change(self._previous, signature)
                spaced = self._last_cut_ns is None or pts_ns - self._last_cut_ns >= self.config.min_shot_ns
                if change >= self.threshold() and spaced:
                    cuts.append(pts_ns)
                    scores.append(round(change, 4))
                    self._last_cut_ns = pts_ns
                else:
                    self._changes.append(change)
                    motion.append(change)
            self._previous = signature
        return ShotResult(segment.id, segment.span, tuple(cuts), tuple(scores), float(np.mean(motion)) if motion else 0.0)


@dataclass(frozen=True, slots=True)
class _Signature:
    histogram: np.ndarray  # hue 16 + saturation 4 + value 4 bins, each part summing to 1
    layout: np.ndarray  # 16x9 luminance, zero mean, unit norm


def _signature(image: np.ndarray) -> _Signature:
    rgb = image.astype(np.float32) / 255.0
    hue, saturation, value = _hsv(rgb)
    weights = saturation * value  # hue means little for grey or dark pixels
    parts = [
        np.histogram(hue, bins=16, range=(0.0, 1.0), weights=weights)[0] + 1e-6,
        np.histogram(saturation, bins=4, range=(0.0, 1.0))[0].astype(np.float64),
        np.histogram(value, bins=4, range=(0.0, 1.0))[0].astype(np.float64),
    ]
    histogram = np.concatenate([p / p.sum() for p in parts])
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    h, w = luma.shape
    layout = luma[: h - h % 9, : w - w % 16].reshape(9, (h - h % 9) // 9, 16, (w - w % 16) // 16).mean(axis=(1, 3))
    layout = layout - layout.mean()
    norm = float(np.linalg.norm(layout))
    return _Signature(histogram, layout / norm if norm > 1e-6 else layout)


def _change(a: _Signature, b: _Signature) -> float:
    colour = float(np.abs(a.histogram - b.histogram).sum()) / 6.0  # three parts, each L1 in [0, 2]
    flat = not a.layout.any() or not b.layout.any()
    features = (0.0 if not (a.layout.any() or b.layout.any()) else 0.5) if flat else (1.0 - float((a.layout * b.layout).sum())) / 2.0
    return 0.5 * colour + 0.5 * features


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    maximum = rgb.max(axis=-1)
    minimum = rgb.min(axis=-1)
    delta = maximum - minimum
    safe = np.where(delta > 0, delta, 1.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.where(maximum == r, (g - b) / safe % 6.0, np.where(maximum == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)) / 6.0
    hue = np.where(delta > 0, hue, 0.0)
    saturation = np.where(maximum > 0, delta / np.where(maximum > 0, maximum, 1.0), 0.0)
    return hue, saturation, maximum
