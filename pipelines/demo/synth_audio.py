"""The sound of synthetic media: real speech and crowd recordings mixed sample-exactly in numpy.

Everything is mixed on the content clock at the output sample rate before any encoder sees it, so
the truth is a fact of the mix, not a guess about the encoder: an event placed at sample k starts
at k / sample_rate. The sources are real recordings from Debian packages (crowd cheering from
``heroes-sound-effects``, speech from ``espeak-ng``), resampled by the ffmpeg binary; only the
marker and the tone are computed.
"""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

SoundKind = Literal["crowd", "applause", "tone"]

CROWD_RECORDINGS = (Path("/usr/share/games/heroes/sfx/foule2.wav"), Path("/usr/share/games/heroes/sfx/foule1.wav"))
"""Real crowd cheering (11 kHz, 8-bit, 5.0 s and 2.4 s) from Debian's ``heroes-sound-effects``."""
APPLAUSE_RECORDINGS = (Path("/usr/share/games/frozen-bubble/snd/applause.ogg"),)
"""Real applause (44.1 kHz, 2.1 s) from Debian's ``frozen-bubble-data``."""
TONE_FREQUENCY_HZ = 1000.0
MARKER_SECONDS = 0.02
"""The marker is a 20 ms chirp: broadband, so its cross-correlation peak is one sample wide even
after AAC, where a click or a pure tone would smear over tens of samples."""


@dataclass(frozen=True)
class Speech:
    """``text`` spoken from ``at_seconds``; it lasts as long as the voice takes, which the truth
    measures (the voice's leading and trailing silence is cut).

    ``voice``: ``"espeak:<voice>"`` (espeak-ng, ``rate`` words/min), ``"flite:<voice>"`` (flite's
    kal, awb, rms, slt; ``rate`` 150 is its own pace, others stretch it), or ``"file:<path>"``, a
    recording of a person saying ``text`` (its transcript, written by hand). ``gain_db`` scales the
    voice from its usual peak of 0.8."""

    text: str
    at_seconds: float
    voice: str = "espeak:en-us"
    rate: int = 150
    gain_db: float = 0.0

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("Speech needs some text to say")
        if self.at_seconds < 0:
            raise ValueError(f"Speech {self.text!r} starts at {self.at_seconds} s: times cannot be negative")
        if self.voice.partition(":")[0] not in ("espeak", "flite", "file") or not self.voice.partition(":")[2]:
            raise ValueError(f"Speech voice must be espeak:<voice>, flite:<voice> or file:<path>, got {self.voice!r}")
        if not 80 <= self.rate <= 300:
            raise ValueError(f"Speech rate must be 80-300 words/min, got {self.rate}")


@dataclass(frozen=True)
class Recording:
    """A real recording (any file ffmpeg reads) from ``at_seconds``: played once, or looped with
    cross-fades to ``duration_seconds``; peak 0.6 scaled by ``gain_db``. ``label`` is what a
    person calls the sound ("a dog barking") and ``kind`` its family ("animal", "horn", "alarm",
    "crowd", "music", "impact"), both written by hand. The truth spans the recording's audible
    part (leading and trailing quiet cut, measured on the samples). ``background``: room tone
    under the whole file (``at_seconds`` 0, looped to the end), not an event of the truth."""

    path: str
    at_seconds: float
    label: str = ""
    kind: str = ""
    duration_seconds: float | None = None
    gain_db: float = 0.0
    background: bool = False

    def __post_init__(self) -> None:
        if self.at_seconds < 0 or (self.duration_seconds is not None and not self.duration_seconds > 0):
            raise ValueError(f"Recording {self.path} needs at_seconds >= 0 and a positive duration, got {self}")
        if not self.background and not (self.label and self.kind):
            raise ValueError(f"Recording {self.path}: an event needs a hand-written label and kind")


@dataclass(frozen=True)
class Sound:
    """A non-speech event: ``"crowd"`` (real cheering) or ``"applause"`` (real clapping), each
    looped with cross-fades to any length, or ``"tone"`` (a 1 kHz sine, a stand-in for a beep or
    an alarm)."""

    kind: SoundKind
    at_seconds: float
    duration_seconds: float

    def __post_init__(self) -> None:
        if self.kind not in get_args(SoundKind):
            raise ValueError(f"unknown sound kind {self.kind!r}; choose one of {get_args(SoundKind)}")
        if self.at_seconds < 0 or not self.duration_seconds > 0:
            raise ValueError(f"Sound {self.kind!r} needs at_seconds >= 0 and a positive duration, got {self}")


@dataclass(frozen=True)
class Marker:
    """A 20 ms chirp whose first sample lands exactly at ``at_seconds`` (rounded to a sample):
    find it with :func:`marker_waveform` by cross-correlation to check sample-exact alignment."""

    at_seconds: float

    def __post_init__(self) -> None:
        if self.at_seconds < 0:
            raise ValueError(f"Marker at {self.at_seconds} s: times cannot be negative")


AudioEvent = Speech | Sound | Marker | Recording


@dataclass(frozen=True)
class SpokenPhrase:
    text: str
    start_seconds: float
    end_seconds: float


@dataclass(frozen=True)
class SoundEvent:
    kind: str  # a SoundKind, or a Recording's kind
    start_seconds: float
    end_seconds: float
    label: str = ""
    gain_db: float = 0.0


@dataclass(frozen=True, eq=False)
class Mix:
    samples: np.ndarray  # float32 mono on the content clock, sample 0 at content time 0
    speech: tuple[SpokenPhrase, ...]
    sounds: tuple[SoundEvent, ...]
    marker_times_seconds: tuple[float, ...]


def marker_waveform(sample_rate: int) -> np.ndarray:
    """The marker as mixed: a 1-6 kHz linear chirp, amplitude 0.8, 1 ms raised-cosine edges."""
    t = np.arange(round(MARKER_SECONDS * sample_rate)) / sample_rate
    f0, f1 = 1000.0, 6000.0
    chirp = np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * MARKER_SECONDS) * t * t))
    return (0.8 * chirp * _edges(len(t), round(0.001 * sample_rate))).astype(np.float32)


def mix(events: tuple[AudioEvent, ...], *, duration_seconds: float, audio_start_seconds: float, sample_rate: int, ffmpeg: str) -> Mix:
    """Mix ``events`` into ``duration_seconds`` of mono audio; raise ``ValueError`` for an event
    the audio track cannot hold (before ``audio_start_seconds`` or past the end)."""
    samples = np.zeros(round(duration_seconds * sample_rate), np.float32)
    first_sample = round(audio_start_seconds * sample_rate)
    speech, sounds, markers = [], [], []
    spoken: dict[str, np.ndarray] = {}
    for event in sorted(events, key=lambda e: e.at_seconds):
        if isinstance(event, Recording) and event.background:
            samples[first_sample:] += _recorded((Path(event.path),), len(samples) - first_sample, sample_rate, ffmpeg) * _gain(event.gain_db)
            continue
        if isinstance(event, Speech):
            key = f"{event.voice} {event.rate} {event.text}"
            if key not in spoken:
                spoken[key] = _speak(event, sample_rate, ffmpeg)
            clip = spoken[key] * _gain(event.gain_db)
        elif isinstance(event, Recording):
            clip = _decode(ffmpeg, _existing(event.path), sample_rate)
            clip = _trimmed(clip, 0.03 * float(np.abs(clip).max()))  # a recording's hiss before the sound is not the sound
            if event.duration_seconds is not None:
                clip = _recorded((Path(event.path),), round(event.duration_seconds * sample_rate), sample_rate, ffmpeg)
            clip = (0.6 * _gain(event.gain_db) / max(np.abs(clip).max(), 1e-6)) * clip
        elif isinstance(event, Marker):
            clip = marker_waveform(sample_rate)
        elif event.kind in ("crowd", "applause"):
            recordings = CROWD_RECORDINGS if event.kind == "crowd" else APPLAUSE_RECORDINGS
            clip = _recorded(recordings, round(event.duration_seconds * sample_rate), sample_rate, ffmpeg)
        else:
            n = round(event.duration_seconds * sample_rate)
            tone = 0.3 * np.sin(2 * np.pi * TONE_FREQUENCY_HZ * np.arange(n) / sample_rate)
            clip = (tone * _edges(n, round(0.005 * sample_rate))).astype(np.float32)
        start = round(event.at_seconds * sample_rate)
        if start < first_sample:
            raise ValueError(f"{event} starts before the audio track does, at {audio_start_seconds} s")
        if start + len(clip) > len(samples):
            raise ValueError(
                f"{event} lasts {len(clip) / sample_rate:.3f} s and runs past the end of the media at {duration_seconds:.3f} s"
            )
        samples[start : start + len(clip)] += clip
        span = (start / sample_rate, (start + len(clip)) / sample_rate)
        if isinstance(event, Speech):
            speech.append(SpokenPhrase(event.text, *span))
        elif isinstance(event, Marker):
            markers.append(span[0])
        elif isinstance(event, Recording):
            sounds.append(SoundEvent(event.kind, *span, label=event.label, gain_db=event.gain_db))
        else:
            sounds.append(SoundEvent(event.kind, *span))
    np.clip(samples, -1.0, 1.0, out=samples)
    return Mix(samples, tuple(speech), tuple(sounds), tuple(markers))


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """16-bit stereo with both channels equal: real files are stereo, and a decoder that assumes
    mono breaks on them; the two channels are identical so the truth holds for either or a downmix."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(np.repeat(pcm, 2).tobytes())


def _speak(speech: Speech, sample_rate: int, ffmpeg: str) -> np.ndarray:
    """The voice at ``sample_rate``, peak 0.8, its leading and trailing silence removed so the
    phrase spans exactly what the truth says."""
    engine, _, voice = speech.voice.partition(":")
    if engine == "file":
        audio = _decode(ffmpeg, _existing(voice), sample_rate)
    else:
        if engine == "espeak":
            command = ["espeak-ng", "-v", voice, "-s", str(speech.rate), "--stdout", speech.text]
        else:
            command = ["flite", "-voice", voice, "--setf", f"duration_stretch={150 / speech.rate:.3f}", "-t", speech.text, "-o", "/dev/stdout"]
        try:
            wav = subprocess.run(command, capture_output=True, check=True).stdout
        except FileNotFoundError:
            raise FileNotFoundError(f"{command[0]} is missing: apt-get install {command[0]}") from None
        audio = _decode(ffmpeg, "pipe:0", sample_rate, stdin=wav)
    audio = _trimmed(audio)
    if not len(audio):
        raise ValueError(f"{speech.voice} said nothing for {speech.text!r}")
    return 0.8 * audio / np.abs(audio).max()


def _trimmed(audio: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    """``audio`` without its leading and trailing samples below ``threshold`` (absolute)."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio[:0]


def _gain(db: float) -> float:
    return float(10 ** (db / 20))


def _existing(path: str) -> str:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} is missing: install the package that ships it (see bench/media.py)")
    return path


_PACKAGES = {CROWD_RECORDINGS: "heroes-sound-effects", APPLAUSE_RECORDINGS: "frozen-bubble-data"}


def _recorded(paths: tuple[Path, ...], n_samples: int, sample_rate: int, ffmpeg: str) -> np.ndarray:
    """Recordings end to end (looped), 0.25 s cross-fades between them, peak 0.6, faded in and out."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is missing: apt-get install {_PACKAGES.get(paths, 'the package that ships it')}")
    recordings = [_decode(ffmpeg, str(p), sample_rate) for p in paths]
    fade = round(0.25 * sample_rate)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    out, joined = recordings[0], 1
    while len(out) < n_samples:
        nxt = recordings[joined % len(recordings)]
        joined += 1
        joint = out[-fade:] * ramp[::-1] + nxt[:fade] * ramp
        out = np.concatenate([out[:-fade], joint, nxt[fade:]])
    out = out[:n_samples] * _edges(n_samples, min(round(0.2 * sample_rate), n_samples // 2))
    return (0.6 * out / max(np.abs(out).max(), 1e-6)).astype(np.float32)


def _edges(n: int, ramp: int) -> np.ndarray:
    """Gain 1 with raised-cosine ramps of ``ramp`` samples at both ends (no clicks at the cuts)."""
    gain = np.ones(n, np.float32)
    if ramp > 0:
        rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        gain[:ramp] = rise
        gain[n - ramp :] = rise[::-1]
    return gain


def _decode(ffmpeg: str, source: str, sample_rate: int, stdin: bytes | None = None) -> np.ndarray:
    """Any audio ffmpeg reads, as float32 mono at ``sample_rate``."""
    command = [ffmpeg, "-loglevel", "error", "-i", source, "-f", "f32le", "-ac", "1", "-ar", str(sample_rate), "pipe:1"]
    done = subprocess.run(command, input=stdin or b"", capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not read {source}: {done.stderr.decode(errors='replace')[-500:]}")
    return np.frombuffer(done.stdout, "<f4").copy()
