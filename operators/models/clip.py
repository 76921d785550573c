"""The ``clip`` profile: a CLIP or SigLIP model that puts frames and text in one joint space, so a
text query finds what was *seen*, not only the labels an ImageNet classifier could name.

Any checkpoint that transformers' ``AutoModel`` loads with ``get_image_features`` and
``get_text_features`` works: CLIP (``openai/clip-vit-base-patch32``), SigLIP
(``google/siglip-base-patch16-224``), SigLIP 2. No registry package ships such weights (FACTS.md):
name a hub model on a machine with network, or a local folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from operators.base import Device, Operator, Resources, move_inputs, resolve_device, torch_threads
from operators.records import ClipResult, Segment

_TRUE = {"1", "ON", "YES", "TRUE"}  # what huggingface_hub accepts as "set" for HF_HUB_OFFLINE


@dataclass(frozen=True, slots=True)
class ClipConfig:
    """``model`` is a hub name or a local folder (a folder, or ``HF_HUB_OFFLINE`` set, loads with
    ``local_files_only``). ``dtype="auto"`` is fp16 on CUDA and fp32 on CPU. ``batch_size`` is
    images per forward pass: larger is faster on a GPU until memory runs out."""

    model: str
    device: Device = "auto"
    dtype: Literal["auto", "float16", "float32"] = "auto"
    batch_size: int = 16

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("clip: name a model (hub name or local folder)")
        if self.batch_size < 1:
            raise ValueError(f"clip: batch_size must be at least 1, got {self.batch_size}")


def _normalised(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def _features(output) -> "torch.Tensor":  # noqa: F821 (torch is imported lazily)
    """The embeddings from ``get_*_features``: transformers 4 returns the tensor; transformers 5
    (5.24 checked) returns a ``BaseModelOutputWithPooling`` whose ``pooler_output`` is the
    projected embedding."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        raise TypeError(f"clip: get_*_features returned {type(output).__name__} without pooler_output")
    return pooled


class ClipEncoder(Operator[Segment, ClipResult]):
    """One embedding per segment: the L2-normalised mean of its frames' L2-normalised image
    embeddings (float32 ``[dim]``; ``None`` for a segment without frames). ``embed_text`` puts
    queries in the same space; cosine similarity is a dot product.

    Averaging frames keeps one vector per segment (one index row) at the cost of blurring a
    segment whose frames show different things; shorter segments see sharper.
    """

    name = "clip"

    def __init__(self, config: ClipConfig, *, resources: Resources | None = None,
                 batch_size: int | None = None) -> None:
        """``batch_size`` is segments per ``process`` call (default ``config.batch_size``); the
        frames of a call go to the model ``config.batch_size`` images at a time."""
        super().__init__(resources=resources, batch_size=batch_size or config.batch_size)
        self.config = config
        self._model = None
        self._processor = None
        self._device = "cpu"
        self._dtype = None
        self._text_kwargs: dict[str, object] = {}
        self._dim: int | None = None

    @classmethod
    def default_resources(cls) -> Resources:
        return Resources(cpus=1.0, memory_mb=2048)  # ViT-B/32 fp32 weights alone are ~600 MB

    @property
    def dim(self) -> int:
        if self._dim is None:
            raise RuntimeError(f"{self.name}: call setup() before asking for dim")
        return self._dim

    def setup(self) -> None:
        """Load model and processor; a second call is a no-op."""
        if self._model is not None:
            return
        import torch
        from transformers import AutoModel, AutoProcessor
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        local = Path(self.config.model).is_dir() or os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE
        device = resolve_device(self.config.device)
        if device == "cpu":
            torch.set_num_threads(torch_threads(self.resources))
        dtype = self.config.dtype
        if dtype == "auto":
            dtype = "float16" if device == "cuda" else "float32"
        self._dtype = getattr(torch, dtype)
        model = AutoModel.from_pretrained(self.config.model, local_files_only=local, dtype=self._dtype)
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise ValueError(f"clip: {self.config.model} ({type(model).__name__}) is not an image-text "
                             "model with get_image_features/get_text_features (CLIP, SigLIP)")
        self._processor = AutoProcessor.from_pretrained(self.config.model, local_files_only=local)
        self._model = model.to(device).eval()
        self._device = device
        text_config = getattr(model.config, "text_config", model.config)
        max_tokens = getattr(text_config, "max_position_embeddings", None)
        # SigLIP was trained on text padded to its full length and pools the last position, so
        # its processor expects padding="max_length"; CLIP pools at <eos> and pads to the longest.
        siglip = model.config.model_type.startswith("siglip")
        self._text_kwargs = {"padding": "max_length" if siglip else True, "truncation": True}
        if max_tokens:
            self._text_kwargs["max_length"] = max_tokens
        self._dim = int(self.embed_text(["a photo"]).shape[1])  # also warms up

    def _inputs(self, encoded) -> dict:
        return move_inputs(encoded, self._device, self._dtype)

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """float32 ``[len(images), dim]``, one L2-normalised row per uint8 RGB ``[H, W, 3]`` image."""
        if self._model is None:
            raise RuntimeError(f"{self.name}: call setup() before embed_images()")
        import torch

        rows = []
        for start in range(0, len(images), self.config.batch_size):
            chunk = list(images[start:start + self.config.batch_size])
            encoded = self._processor(images=chunk, return_tensors="pt")
            with torch.inference_mode():
                out = self._model.get_image_features(**self._inputs(encoded))
            rows.append(_features(out).float().cpu().numpy())
        if not rows:
            return np.zeros((0, self.dim), np.float32)
        # Normalised in float32: normalising fp16 outputs (CUDA) leaves norms off by ~1e-4.
        return _normalised(np.concatenate(rows))

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(texts), dim]``, one L2-normalised row per text, in order. Text longer
        than the model's context (77 tokens for CLIP, 64 for SigLIP) is cut."""
        if self._model is None:
            raise RuntimeError(f"{self.name}: call setup() before embed_text()")
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        import torch

        encoded = self._processor(text=list(texts), return_tensors="pt", **self._text_kwargs)
        with torch.inference_mode():
            out = self._model.get_text_features(**self._inputs(encoded))
        return _normalised(_features(out).float().cpu().numpy())

    def process(self, batch: Sequence[Segment]) -> list[ClipResult]:
        if self._model is None:
            raise RuntimeError(f"{self.name}: call setup() before process()")
        frames = [frame for segment in batch for frame in segment.frames]
        vectors = self.embed_images(frames) if frames else None
        results, start = [], 0
        for segment in batch:
            count = len(segment.frames)
            if count == 0:
                results.append(ClipResult(segment.id, None))
                continue
            results.append(ClipResult(segment.id, _normalised(vectors[start:start + count].mean(axis=0))))
            start += count
        return results
