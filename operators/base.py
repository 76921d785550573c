"""The operator contract: a named step with declared resources, set up inside its worker.

``__init__`` stores config only; ``setup()`` loads weights where the operator will run (a Ray
actor, a test process); ``process(batch)`` maps a batch to one result per input, in order.
Nothing here probes hardware at construction (STYLE.md 4).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, Sequence, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True, slots=True)
class Resources:
    """What one worker of an operator reserves. Fractional CPUs are deliberate: on 2 cores, whole
    CPUs per actor starve everything else (FACTS.md)."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int = 512

    def __post_init__(self) -> None:
        if self.cpus < 0 or self.gpus < 0 or self.memory_mb <= 0:
            raise ValueError(f"resources must be non-negative (memory positive): {self}")


class Operator(ABC, Generic[In, Out]):
    """Base of every step. Subclasses set ``name`` and override ``setup`` and ``process``."""

    name: ClassVar[str] = "operator"

    def __init__(self, *, resources: Resources | None = None, batch_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"{self.name}: batch_size must be at least 1, got {batch_size}")
        self.resources = resources or self.default_resources()
        self.batch_size = batch_size

    @classmethod
    def default_resources(cls) -> Resources:
        return Resources()

    def setup(self) -> None:
        """Load weights and warm up inside the worker; called once before the first batch."""

    @abstractmethod
    def process(self, batch: Sequence[In]) -> list[Out]:
        """One result per input, in input order."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, resources={self.resources}, batch_size={self.batch_size})"


def resolve_device(device: Device) -> str:
    """``auto`` picks CUDA when torch sees a GPU. Call from ``setup()``, never from ``__init__``.

    A machine without NVIDIA's driver answers "cpu" without importing torch (~5 s), which the
    models that run on ONNX there never need."""
    if device != "auto":
        return device
    if not os.path.exists("/proc/driver/nvidia/version") and not os.path.exists("/dev/nvidia0"):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_threads(resources: Resources) -> int:
    """Intra-op threads for a torch/ONNX worker: its declared CPUs, at least one."""
    return max(1, int(round(resources.cpus)))


def onnx_cpu_session(path, resources: Resources):
    """An onnxruntime session on the CPU with the worker's declared threads and no memory arena
    (its power-of-two growth held ~330 MB more in the frame encoder's worker, for ~20% less
    CPU per frame; the text encoder runs as fast without it)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch_threads(resources)
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def move_inputs(encoded, device: str, dtype) -> dict:
    """A processor's output on ``device``: tensors moved, floating ones (pixels, audio features)
    cast to the model's ``dtype``; token ids and masks keep their integer type."""
    import torch

    inputs = {}
    for key, value in encoded.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device)
            if value.is_floating_point():
                value = value.to(dtype)
        inputs[key] = value
    return inputs
