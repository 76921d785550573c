"""The ``vlm`` profile: a vision(-audio)-language model that writes captions, summaries and answers.

Two backends behind one call, ``generate(prompts) -> texts``:
- ``TransformersVlm``: any model transformers loads for image/video/audio-text-to-text, from a hub
  name or a local folder (``operators.vlm_hf``): Qwen2-VL, Qwen2.5-VL, Qwen2.5-Omni,
  LLaVA-OneVision / LLaVA-Video, LLaVA-NeXT-Video, BLIP-2, InstructBLIP, Qwen2-Audio.
- ``EndpointVlm``: an OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama)
  (``operators.vlm_endpoint``).

A ``Prompt`` carries the instruction plus whatever media the model may use: sampled frames with
their timestamps, and the audio around them. A backend uses what its model understands (a
captioner ignores audio, an audio model ignores frames, a text-only endpoint gets the text) and
never fails for media it cannot take.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence

import numpy as np

from .base import Device, Operator, Resources
from .records import AUDIO_SAMPLE_RATE, CaptionResult, Segment

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


def make_backend(config: VlmConfig) -> VlmBackend:
    """The backend for ``config``; nothing is loaded until ``setup()``."""
    if isinstance(config, TransformersVlm):
        from .vlm_hf import TransformersBackend

        return TransformersBackend(config)
    if isinstance(config, EndpointVlm):
        from .vlm_endpoint import EndpointBackend

        return EndpointBackend(config)
    raise TypeError(f"not a vlm config: {config!r}")


_LOADED: dict[VlmConfig, VlmBackend] = {}


def load_backend(config: VlmConfig) -> VlmBackend:
    """The backend for ``config``, set up once per process: the captioner and the summariser in
    one worker share one copy of the model."""
    if config not in _LOADED:
        backend = make_backend(config)
        backend.setup()
        _LOADED[config] = backend
    return _LOADED[config]


CAPTION_PROMPT = "Describe what happens in this video clip in one sentence."


class Captioner(Operator[Segment, CaptionResult]):
    """One caption per segment, written by the ``vlm`` model from the segment's frames (and its
    audio, for models that hear). A segment with neither frames nor audio, or any segment when the
    model behind an endpoint is not sent frames, gets an empty caption without a model call."""

    name = "caption"

    def __init__(self, config: VlmConfig, *, prompt: str = CAPTION_PROMPT, resources: Resources | None = None,
                 batch_size: int | None = None) -> None:
        size = batch_size or (config.batch_size if isinstance(config, TransformersVlm) else 4)
        super().__init__(resources=resources, batch_size=size)
        self.config = config
        self.prompt = prompt
        self._backend: VlmBackend | None = None

    @classmethod
    def default_resources(cls) -> Resources:
        return Resources(cpus=1.0, memory_mb=4096)

    def setup(self) -> None:
        self._backend = load_backend(self.config)

    def process(self, batch: Sequence[Segment]) -> list[CaptionResult]:
        if self._backend is None:
            raise RuntimeError(f"{self.name}: call setup() before process()")
        if isinstance(self.config, EndpointVlm) and not self.config.send_frames:
            # A text-only endpoint cannot see the segment: a caption would be invented. The
            # labels describe the picture instead; the model still writes summaries and answers.
            return [CaptionResult(s.id, "") for s in batch]
        media = [s for s in batch if len(s.frames) or s.audio is not None]
        texts = iter(self._backend.generate([Prompt.of(s, self.prompt) for s in media]) if media else [])
        return [CaptionResult(s.id, next(texts).strip() if (len(s.frames) or s.audio is not None) else "")
                for s in batch]
