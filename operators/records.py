"""What flows between stages: spans, segments and the result each encoder adds.

Time inside is integer nanoseconds in half-open spans ``[start_ns, end_ns)``; float seconds
exist only at the edges (CLI, JSON). Records check themselves when built and raise
``ValueError`` in words a user understands; ``repr`` shows shapes, never pixels.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

NS_PER_SECOND = 1_000_000_000
AUDIO_SAMPLE_RATE = 16_000


def seconds_to_ns(seconds: float) -> int:
    return int(round(seconds * NS_PER_SECOND))


def ns_to_seconds(ns: int) -> float:
    return ns / NS_PER_SECOND


def samples_between(start_ns: int, end_ns: int, sample_rate: int = AUDIO_SAMPLE_RATE) -> int:
    """Number of audio samples covering ``[start_ns, end_ns)`` on the sample grid anchored at 0.

    Sample ``k`` sits at ``k / sample_rate`` s; the span owns the samples whose instant lies inside
    it, so consecutive spans share no sample and miss none.
    """
    return sample_index(end_ns, sample_rate) - sample_index(start_ns, sample_rate)


def sample_index(t_ns: int, sample_rate: int = AUDIO_SAMPLE_RATE) -> int:
    """Index of the first sample at or after ``t_ns`` (ceiling on the sample grid)."""
    return -((-t_ns * sample_rate) // NS_PER_SECOND)


def segment_id(source_id: str, start_ns: int) -> int:
    """A segment's id: a pure function of its source and start, positive and below 2**63 (FAISS ids)."""
    digest = hashlib.blake2b(f"{source_id}:{start_ns}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True, slots=True)
class Span:
    """Half-open time span ``[start_ns, end_ns)`` in integer nanoseconds."""

    start_ns: int
    end_ns: int

    def __post_init__(self) -> None:
        if not isinstance(self.start_ns, (int, np.integer)) or not isinstance(self.end_ns, (int, np.integer)):
            raise ValueError(f"span bounds must be integer nanoseconds, got {self.start_ns!r}, {self.end_ns!r}")
        if self.end_ns <= self.start_ns:
            raise ValueError(f"span must end after it starts: [{self.start_ns}, {self.end_ns}) ns")

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def start_seconds(self) -> float:
        return ns_to_seconds(self.start_ns)

    @property
    def end_seconds(self) -> float:
        return ns_to_seconds(self.end_ns)

    def contains(self, t_ns: int) -> bool:
        return self.start_ns <= t_ns < self.end_ns

    def __repr__(self) -> str:
        return f"Span({self.start_seconds:.3f}s-{self.end_seconds:.3f}s)"


@dataclass(frozen=True, eq=False, slots=True)
class Segment:
    """One window of one source: its sampled frames and the audio that covers it exactly.

    ``frames`` is uint8 ``[N, H, W, 3]`` (RGB) with ``frame_pts_ns`` strictly increasing inside the
    span; N may be 0 (audio-only source, or no frame fell in the window). ``audio`` is float32 mono
    at ``sample_rate`` with exactly ``samples_between(span)`` samples, or ``None`` when the source
    has no audio. Model results never live here: each encoder adds its own record.
    """

    source_id: str
    span: Span
    frames: np.ndarray
    frame_pts_ns: np.ndarray
    audio: np.ndarray | None
    sample_rate: int = AUDIO_SAMPLE_RATE
    meta: Mapping[str, object] = field(default_factory=dict)
    thumbnails: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1, 3), np.uint8))
    """Small pictures sampled more densely than ``frames`` (5/s by default), for shot boundaries
    and motion: uint8 ``[M, h, w, 3]`` with ``thumbnail_pts_ns``, same rules as the frames."""
    thumbnail_pts_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if not self.source_id:
            raise ValueError("a segment needs a source_id")
        _check_pictures("frame", self.frames, self.frame_pts_ns, self.span)
        _check_pictures("thumbnail", self.thumbnails, self.thumbnail_pts_ns, self.span)
        if self.audio is not None:
            expected = samples_between(self.span.start_ns, self.span.end_ns, self.sample_rate)
            if self.audio.dtype != np.float32 or self.audio.ndim != 1:
                raise ValueError(f"audio must be float32 mono, got {self.audio.dtype} {self.audio.shape}")
            if self.audio.shape[0] != expected:
                raise ValueError(f"audio must cover {self.span!r} exactly: {expected} samples at {self.sample_rate} Hz, got {self.audio.shape[0]}")

    @property
    def id(self) -> int:
        return segment_id(self.source_id, self.span.start_ns)

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    def __repr__(self) -> str:
        audio = "none" if self.audio is None else f"{self.audio.shape[0]} samples"
        return f"Segment({self.source_id}, {self.span!r}, frames={tuple(self.frames.shape)}, audio={audio})"


def _check_pictures(what: str, images: np.ndarray, pts: np.ndarray, span: Span) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{what}s must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
    if pts.dtype != np.int64 or pts.shape != (images.shape[0],):
        raise ValueError(f"{what}_pts_ns must be int64 with one entry per {what}, got {pts.dtype} {pts.shape} for {images.shape[0]} {what}s")
    if len(pts) and (pts[0] < span.start_ns or pts[-1] >= span.end_ns):
        raise ValueError(f"{what} timestamps {pts[0]}..{pts[-1]} ns fall outside {span!r}")
    if len(pts) > 1 and not np.all(np.diff(pts) > 0):
        raise ValueError(f"{what} timestamps must be strictly increasing")


Scored = tuple[tuple[str, float], ...]
"""Labels with scores, best first: ``(("tabby cat", 0.61), ("Egyptian cat", 0.22))``."""


def _check_scored(what: str, items: Scored) -> None:
    for label, score in items:
        if not isinstance(label, str) or not label:
            raise ValueError(f"{what}: labels must be non-empty strings, got {label!r}")
        if not np.isfinite(score):
            raise ValueError(f"{what}: score for {label!r} is not finite")


@dataclass(frozen=True, eq=False, slots=True)
class VisualResult:
    """What the frame encoder saw: ImageNet labels, the pooled feature vector (L2-normalised)
    and the probabilities of all classes (what the visual class space is made of)."""

    segment_id: int
    labels: Scored
    features: np.ndarray | None  # float32 [D]; None when the segment had no frame
    class_scores: np.ndarray | None = None  # float32 [1000], mean over the frames

    def __post_init__(self) -> None:
        _check_scored("visual labels", self.labels)
        if self.features is not None and (self.features.dtype != np.float32 or self.features.ndim != 1):
            raise ValueError(f"visual features must be float32 [D], got {self.features.dtype} {self.features.shape}")

    def __repr__(self) -> str:
        dim = None if self.features is None else self.features.shape[0]
        return f"VisualResult({self.segment_id}, labels={[l for l, _ in self.labels[:3]]}, dim={dim})"


@dataclass(frozen=True, slots=True)
class AudioResult:
    """Audio events heard in the segment (AudioSet classes), its loudness in dBFS (RMS), and the
    pooled scores of all classes (what the audio class space is made of)."""

    segment_id: int
    events: Scored
    loudness_db: float
    class_scores: np.ndarray | None = None  # float32 [521]; None without audio

    def __post_init__(self) -> None:
        _check_scored("audio events", self.events)


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start_ns: int
    end_ns: int
    probability: float

    def __post_init__(self) -> None:
        if self.end_ns < self.start_ns:
            raise ValueError(f"word {self.text!r} ends before it starts")


@dataclass(frozen=True, slots=True)
class SpeechResult:
    """Words spoken in the segment, each with its own time on the source clock, and the whole
    utterances (sentences as the recogniser cut them) that those words belong to: a phrase cut by
    a window boundary is still searchable as a phrase from both windows."""

    segment_id: int
    words: tuple[Word, ...]
    utterance: str = ""

    def __post_init__(self) -> None:
        starts = [w.start_ns for w in self.words]
        if starts != sorted(starts):
            raise ValueError("words must be in time order")

    @property
    def text(self) -> str:
        return " ".join(w.text.strip() for w in self.words).strip()


@dataclass(frozen=True, slots=True)
class CaptionResult:
    """What the ``vlm`` model wrote about one segment (empty when it had nothing to look at)."""

    segment_id: int
    text: str


@dataclass(frozen=True, eq=False, slots=True)
class ClipResult:
    """The ``clip`` profile's image embedding of one segment: the L2-normalised mean of its frames'
    embeddings in the joint image-text space (``None`` when the segment had no frame)."""

    segment_id: int
    embedding: np.ndarray | None

    def __post_init__(self) -> None:
        if self.embedding is not None and (self.embedding.dtype != np.float32 or self.embedding.ndim != 1):
            raise ValueError(f"clip embedding must be float32 [D], got {self.embedding.dtype} {self.embedding.shape}")


MODALITIES = ("visual", "audio", "speech")
"""The text-searchable views of a segment, each embedded in the shared text space."""
CLASS_SCORES = ("visual", "audio")
"""The classifiers whose scores over all their classes a segment keeps (``pack_scores``)."""
JOINT_SPACES = ("clip",)
"""Spaces where pictures and text are embedded by one model (the ``clip`` profile): a query is
embedded there by that model's text tower, not by the shared text encoder."""


@dataclass(frozen=True, eq=False, slots=True)
class FusedRecord:
    """One moment, described: what was seen, heard and said, and its embeddings.

    ``embeddings`` maps each modality present in ``MODALITIES`` (plus ``"all"``, the whole
    description) to an L2-normalised float32 vector in the shared text space.
    ``visual_features`` keeps the frame encoder's vector for image-to-image similarity.
    ``class_scores`` keeps every class's probability per classifier (``"visual"``: ImageNet's
    1000, ``"audio"``: AudioSet's 521), not only the few named in ``labels`` and ``events``.
    """

    segment_id: int
    source_id: str
    span: Span
    description: str
    labels: Scored
    events: Scored
    transcript: str
    loudness_db: float | None
    embeddings: Mapping[str, np.ndarray]
    visual_features: np.ndarray | None
    class_scores: Mapping[str, np.ndarray] = field(default_factory=dict)
    thumbnail_jpeg: bytes | None = field(default=None, repr=False)
    """The picture a result shows (``operators.media.jpeg``); None without frames."""

    def __post_init__(self) -> None:
        for name in self.class_scores:
            if name not in CLASS_SCORES:
                raise ValueError(f"unknown class scores {name!r}; expected one of {CLASS_SCORES}")
        for name, vec in self.embeddings.items():
            if name not in (*MODALITIES, "all", *JOINT_SPACES):
                raise ValueError(f"unknown modality {name!r}; expected one of {MODALITIES + ('all',) + JOINT_SPACES}")
            if vec.dtype != np.float32 or vec.ndim != 1:
                raise ValueError(f"{name} embedding must be float32 [D], got {vec.dtype} {vec.shape}")

    def __repr__(self) -> str:
        return f"FusedRecord({self.segment_id}, {self.source_id}, {self.span!r}, {self.description!r})"


def pack_scores(scores: np.ndarray) -> bytes:
    """Probabilities ``[C]`` in ``[0, 1]`` as a compact blob: one byte each on a square-root
    scale (steps of ~0.001 near 0.05 where a class starts to count, ~0.008 near 1), deflated;
    most classes of a segment are near 0, so 521 AudioSet scores take ~100-300 bytes."""
    q = np.rint(np.sqrt(np.clip(np.asarray(scores, np.float64), 0.0, 1.0)) * 255).astype(np.uint8)
    return zlib.compress(q.tobytes(), 6)


def unpack_scores(blob: bytes) -> np.ndarray:
    """``pack_scores``' blob back to float32 probabilities."""
    return np.square(np.frombuffer(zlib.decompress(blob), np.uint8).astype(np.float32) / 255)


def pts_to_ns(pts: int, time_base) -> int:
    """Exact integer conversion, rounded to the nearest nanosecond."""
    den = time_base.denominator
    return (2 * int(pts) * NS_PER_SECOND * time_base.numerator + den) // (2 * den)
