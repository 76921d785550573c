"""The ``vlm`` profile: a vision(-audio)-language model that writes captions, summaries and answers.

Two backends behind one call, ``generate(prompts) -> texts``:
- ``TransformersVlm``: any model transformers loads for image/video/audio-text-to-text, from a hub
  name or a local folder (``operators.models.vlm_hf``): Qwen2-VL, Qwen2.5-VL, Qwen2.5-Omni,
  LLaVA-OneVision / LLaVA-Video, LLaVA-NeXT-Video, BLIP-2, InstructBLIP, Qwen2-Audio.
- ``EndpointVlm``: an OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama)
  (``operators.models.vlm_endpoint``).

A ``Prompt`` carries the instruction plus whatever media the model may use: sampled frames with
their timestamps, and the audio around them. A backend uses what its model understands (a
captioner ignores audio, an audio model ignores frames, a text-only endpoint gets the text) and
never fails for media it cannot take.
"""

from __future__ import annotations

from typing import Sequence

from operators.base import Operator, Resources
from operators.records import CaptionResult, Segment
from operators.models.vlm_config import EndpointVlm, Prompt, TransformersVlm, VlmBackend, VlmConfig

def make_backend(config: VlmConfig) -> VlmBackend:
    """The backend for ``config``; nothing is loaded until ``setup()``."""
    if isinstance(config, TransformersVlm):
        from operators.models.vlm_hf import TransformersBackend

        return TransformersBackend(config)
    if isinstance(config, EndpointVlm):
        from operators.models.vlm_endpoint import EndpointBackend

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
