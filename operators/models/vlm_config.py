"""What the ``vlm`` profile's backends share: their configs and the prompt they are given.

``TransformersVlm`` (``operators.models.vlm_hf``) and ``EndpointVlm`` (``operators.models.vlm_endpoint``) are
the two backends' configs; a ``Prompt`` carries the instruction plus whatever media the model
may use; ``VlmBackend`` is what the captioner, the summariser and ``ask`` call. Apart from
``operators.models.vlm`` (which picks a backend), so that the backends import this and not the module
that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence

import numpy as np

from operators.base import Device
from operators.records import AUDIO_SAMPLE_RATE, Segment

Dtype = Literal["auto", "float16", "bfloat16", "float32"]


@dataclass(frozen=True, slots=True)
class TransformersVlm:
    """A transformers model. ``model`` is a hub name or a local folder (loaded with
    ``local_files_only`` when ``HF_HUB_OFFLINE`` is set). ``dtype="auto"`` is bf16 on a CUDA device
    that supports it, fp16 on other CUDA devices, fp32 on CPU. ``max_frames`` frames at most go to
    the model per prompt, evenly spread over those given: more frames see more, cost quadratically
    more attention."""

    model: str
    device: Device = "auto"
    dtype: Dtype = "auto"
    max_new_tokens: int = 64
    max_frames: int = 8
    batch_size: int = 4

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("vlm: name a model (hub name or local folder)")
        if self.max_new_tokens < 1 or self.max_frames < 1 or self.batch_size < 1:
            raise ValueError(f"vlm: max_new_tokens, max_frames and batch_size must be at least 1: {self}")


@dataclass(frozen=True, slots=True)
class EndpointVlm:
    """An OpenAI-compatible ``/v1/chat/completions`` server at ``base_url`` (e.g.
    ``http://127.0.0.1:8080/v1``). Frames go as JPEG data URLs when ``send_frames`` is on (the model
    behind the endpoint must take images; llama.cpp serving a text-only GGUF does not)."""

    base_url: str
    model: str = "default"
    api_key: str | None = field(default=None, repr=False)
    send_frames: bool = False
    max_frames: int = 4
    max_new_tokens: int = 256
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"vlm endpoint must be an http(s) URL, got {self.base_url!r}")
        if self.max_new_tokens < 1 or self.max_frames < 1 or self.timeout_s <= 0:
            raise ValueError(f"vlm endpoint: max_new_tokens, max_frames and timeout_s must be positive: {self}")


VlmConfig = TransformersVlm | EndpointVlm


@dataclass(frozen=True, eq=False, slots=True)
class Prompt:
    """One request: the instruction, and the media it is about (either may be empty).

    ``frames`` uint8 ``[N, H, W, 3]`` RGB with ``frame_pts_ns`` (int64, strictly increasing, on the
    source clock); ``audio`` float32 mono at 16 kHz or ``None``.
    """

    text: str
    frames: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1, 3), np.uint8))
    frame_pts_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    audio: np.ndarray | None = None
    sample_rate: int = AUDIO_SAMPLE_RATE

    def __post_init__(self) -> None:
        if not self.text or not self.text.strip():
            raise ValueError("a prompt needs an instruction")
        if self.frames.dtype != np.uint8 or self.frames.ndim != 4 or self.frames.shape[-1] != 3:
            raise ValueError(f"prompt frames must be uint8 [N, H, W, 3], got {self.frames.dtype} {self.frames.shape}")
        if self.frame_pts_ns.shape != (self.frames.shape[0],):
            raise ValueError(f"prompt: {self.frames.shape[0]} frames but {self.frame_pts_ns.shape[0]} timestamps")
        if len(self.frame_pts_ns) > 1 and not np.all(np.diff(self.frame_pts_ns) > 0):
            raise ValueError("prompt frame timestamps must be strictly increasing")
        if self.audio is not None and (self.audio.dtype != np.float32 or self.audio.ndim != 1):
            raise ValueError(f"prompt audio must be float32 mono, got {self.audio.dtype} {self.audio.shape}")

    @classmethod
    def of(cls, segment: Segment, text: str) -> Prompt:
        return cls(text, segment.frames, segment.frame_pts_ns, segment.audio, segment.sample_rate)

    def __repr__(self) -> str:
        audio = "none" if self.audio is None else f"{self.audio.shape[0]} samples"
        return f"Prompt({self.text[:40]!r}, frames={tuple(self.frames.shape)}, audio={audio})"


class VlmBackend(Protocol):
    """What the captioner, the summariser and ``ask`` need from a model."""

    def setup(self) -> None: ...
    def generate(self, prompts: Sequence[Prompt]) -> list[str]: ...
