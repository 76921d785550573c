"""Synthetic media with a stated ground truth, for the tests, the demo and the benchmark.

A script of real photos shown with a slow camera move (:class:`Scene`) and of sounds
(:class:`Speech`, :class:`Sound`, :class:`Marker`) is rendered by the ffmpeg binary.
:func:`build_video` and :func:`build_audio` return a :class:`GroundTruth` and write it next to the
file as ``<file name>.truth.json`` (``clip.mp4`` -> ``clip.mp4.truth.json``).

Clocks. Every time in a script and in the truth is float seconds on the *content clock*: 0 is the
first video frame (the first audio sample of an audio-only file). The file's own timestamps put
content time 0 at ``GroundTruth.start_seconds``, so a correct reader finds an event at
``start_seconds + t``. Scene lengths are rounded to whole frames and sound instants to whole
samples, and the truth states the rounded values: it holds to ``timestamp_tolerance_seconds``.

Why the containers are written the way they are (measured with ffmpeg 5.1):

- AAC primes 1024 samples. MP4 hides them behind an edit list when audio starts at 0; when audio
  starts later the stream starts 1024 samples early (0.4787 s for 0.5 s) and the content is still
  in place. ffmpeg's default MP4 movie timescale (1/1000 s) rounds that edit to whole ms and moves
  the audio 32 samples early, hence ``-movie_timescale <sample rate>``.
- MPEG-TS and Matroska have no edit lists: when a packet (priming audio, B-frame reordering) would
  get a negative timestamp, ffmpeg shifts the whole file by the encoders' delay, which the truth
  cannot state. So their content starts at least 0.5 s into the clock (TS 1.4 s by default, where
  ffmpeg's TS muxer puts it), set exactly with ``-muxdelay 0 -output_ts_offset``.

Rendering is two ffmpeg runs: the pictures into a video-only file, then a mux that adds the audio
mix (a WAV made in numpy, see :mod:`pipelines.demo.synth_audio`), the container's start time and
repeats by stream copy, so a 30-min benchmark file costs one 3-min render.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from pipelines.demo.synth_audio import (
    AudioEvent, Marker, Mix, Recording, Sound, SoundEvent, SoundKind, Speech, SpokenPhrase, marker_waveform, mix, write_wav,
)  # fmt: skip

__all__ = [
    "PHOTOS", "AudioEvent", "GroundTruth", "Marker", "Photo", "Recording", "Scene", "Script", "Shot", "Sound", "SoundEvent", "SoundKind",
    "Speech", "SpokenPhrase", "bench_script", "build_audio", "build_video", "demo_script", "find_ffmpeg", "marker_waveform",
    "truth_path",
]  # fmt: skip


@dataclass(frozen=True)
class Photo:
    """A real photo shipped inside an installed package, and words for its subject: the plain
    word first, then the ImageNet class names that EfficientNet-Lite0 ranks in its top 5 for the
    whole photo (two or more each, checked; only the flower's "daisy" is weak)."""

    package: str
    relative_path: str
    """Inside the Python package ``package``; or an absolute path a Debian package installs."""
    expected_words: tuple[str, ...]

    @property
    def name(self) -> str:
        return next((key for key, photo in PHOTOS.items() if photo == self), Path(self.relative_path).stem)

    @property
    def path(self) -> Path:
        if Path(self.relative_path).is_absolute():
            if not Path(self.relative_path).exists():
                raise FileNotFoundError(f"{self.relative_path} is missing: apt-get install {self.package}")
            return Path(self.relative_path)
        spec = importlib.util.find_spec(self.package)  # locates the files without importing the package
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"photos need the {self.package!r} package: pip install scikit-image scikit-learn")
        return Path(spec.submodule_search_locations[0]) / self.relative_path


PHOTOS: dict[str, Photo] = {
    "cat": Photo("skimage", "data/chelsea.png", ("cat", "Egyptian cat", "tiger cat", "tabby")),
    "coffee": Photo("skimage", "data/coffee.png", ("coffee", "espresso", "cup", "coffee mug")),
    "rocket": Photo("skimage", "data/rocket.jpg", ("rocket", "missile", "projectile", "space shuttle")),
    "motorcycle": Photo("skimage", "data/motorcycle_left.png", ("motorcycle", "moped", "motor scooter")),
    "palace": Photo("sklearn", "datasets/images/china.jpg", ("palace", "pagoda", "bell cote", "monastery")),
    # A dahlia; ImageNet has no dahlia and the classifier's "daisy" is a weak 0.2: demo, not tests.
    "flower": Photo("sklearn", "datasets/images/flower.jpg", ("flower", "daisy")),
}


@dataclass(frozen=True)
class Scene:
    """``photo`` (a :class:`Photo`, or the name of one in ``PHOTOS``) for ``duration_seconds``
    (rounded to whole frames), filmed with a slow camera move; scenes cycle through zoom in, pan
    right, zoom out, pan left-and-down. Each scene change is a hard cut, i.e. a shot boundary in
    the truth. A photo with transparency (a cut-out) is cropped to its subject and laid on grey."""

    photo: str | Photo
    duration_seconds: float

    @property
    def picture(self) -> Photo:
        return self.photo if isinstance(self.photo, Photo) else PHOTOS[self.photo]

    def __post_init__(self) -> None:
        if not isinstance(self.photo, Photo) and self.photo not in PHOTOS:
            raise ValueError(f"no photo named {self.photo!r}; choose one of {sorted(PHOTOS)}")
        if not self.duration_seconds > 0:
            raise ValueError(f"Scene {self.photo!r} needs a positive duration, got {self.duration_seconds}")


@dataclass(frozen=True)
class Script:
    """A storyboard: the scenes in order and the sounds at their times (content clock)."""

    scenes: tuple[Scene, ...]
    sounds: tuple[AudioEvent, ...]

    @property
    def duration_seconds(self) -> float:
        return sum(scene.duration_seconds for scene in self.scenes)


@dataclass(frozen=True)
class Shot:
    start_seconds: float
    end_seconds: float
    photo: str
    expected_words: tuple[str, ...]


@dataclass(frozen=True)
class GroundTruth:
    """What a file holds, on the content clock (see the module docstring). JSON-serialisable."""

    file_name: str
    duration_seconds: float
    """Content length: the video's frames (the audio ends with them) or the audio's samples."""
    start_seconds: float
    """Timestamp of content time 0 in the file."""
    timestamp_tolerance_seconds: float
    """How far a correct reader's timestamps may sit from the truth: one audio sample (1 us
    without audio), or the container's clock tick when coarser (Matroska: 1 ms)."""
    width: int | None
    height: int | None
    frames_per_second: float | None
    """Nominal rate; with variable frame rate the frames sit on this rate's grid with gaps."""
    frame_count: int
    frame_times_seconds: tuple[float, ...] | None
    """Every frame's time, given only for variable frame rate; otherwise frame k is at k / rate."""
    keyframe_interval_frames: int | None
    """A keyframe exactly every N frames (no scene-cut keyframes); None: the encoder decides."""
    sample_rate: int | None
    audio_start_seconds: float | None
    """Content time of the first audio sample; later than 0 for audio that starts late."""
    audio_stream_start_seconds: float | None
    """Timestamp of the audio stream's first decoded sample in the file: ``audio_priming_samples``
    before the content start, except in MP4 with audio at 0, whose edit list hides the priming."""
    audio_priming_samples: int
    """Encoder delay: 1024 for AAC, 0 for PCM. The primed samples are near-silence, not content.
    AAC decoders also return up to this many samples of padding past the content's end."""
    shots: tuple[Shot, ...]
    speech: tuple[SpokenPhrase, ...]
    sounds: tuple[SoundEvent, ...]
    marker_times_seconds: tuple[float, ...]

    def __post_init__(self) -> None:
        spans = [*self.shots, *self.speech, *self.sounds]
        if any(not 0 <= s.start_seconds < s.end_seconds <= self.duration_seconds + 1e-9 for s in spans):
            raise ValueError(f"a span of {self.file_name} is empty or outside [0, {self.duration_seconds}] s")
        times = self.frame_times_seconds
        if times is not None and (len(times) != self.frame_count or any(b <= a for a, b in zip(times, times[1:]))):
            raise ValueError(f"frame times of {self.file_name} must be {self.frame_count} strictly increasing values")

    @property
    def container_start_seconds(self) -> float:
        """The earliest timestamp in the file, what a demuxer reports as the container's start."""
        video_start = self.start_seconds if self.width is not None else None
        return min(t for t in (video_start, self.audio_stream_start_seconds) if t is not None)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def load(cls, media_path: str | os.PathLike) -> GroundTruth:
        raw = json.loads(truth_path(media_path).read_text())
        return cls(
            **{
                **raw,
                "frame_times_seconds": None if raw["frame_times_seconds"] is None else tuple(raw["frame_times_seconds"]),
                "shots": tuple(Shot(**{**s, "expected_words": tuple(s["expected_words"])}) for s in raw["shots"]),
                "speech": tuple(SpokenPhrase(**s) for s in raw["speech"]),
                "sounds": tuple(SoundEvent(**s) for s in raw["sounds"]),
                "marker_times_seconds": tuple(raw["marker_times_seconds"]),
            }
        )


def truth_path(media_path: str | os.PathLike) -> Path:
    media_path = Path(media_path)
    return media_path.with_name(media_path.name + ".truth.json")


@dataclass(frozen=True)
class _Container:
    muxer: str
    audio_codec: str
    priming_samples: int
    default_start_seconds: float
    clock_tick_seconds: float
    holds_video: bool


_CONTAINERS = {
    ".mp4": _Container("mp4", "aac", 1024, 0.0, 0.0, True),
    ".m4a": _Container("ipod", "aac", 1024, 0.0, 0.0, False),
    ".mkv": _Container("matroska", "aac", 1024, 1.0, 0.001, True),
    ".ts": _Container("mpegts", "aac", 1024, 1.4, 1 / 90_000, True),
    ".wav": _Container("wav", "pcm_s16le", 0, 0.0, 0.0, False),
}
_EDIT_LISTS = ("mp4", "ipod")
_NO_VIDEO = dict(
    width=None, height=None, frames_per_second=None, frame_count=0, frame_times_seconds=None, keyframe_interval_frames=None, shots=()
)  # fmt: skip
_MIN_START_SECONDS = {"matroska": 0.5, "mpegts": 0.5}

# (zoom, x, y) of ffmpeg's zoompan over a photo pre-scaled to 1.2x the frame: zoom 1.2 shows a
# frame-sized window at full resolution. {last} is the scene's last frame index.
_MOVES = (
    ("1+0.2*on/{last}", "(iw-iw/zoom)/2", "(ih-ih/zoom)/2"),
    ("1.2", "(iw-iw/zoom)*on/{last}", "(ih-ih/zoom)/2"),
    ("1.2-0.2*on/{last}", "(iw-iw/zoom)/2", "(ih-ih/zoom)/2"),
    ("1.2", "(iw-iw/zoom)*(1-on/{last})", "(ih-ih/zoom)*on/{last}"),
)
# Variable frame rate drops frames of the constant-rate render: gaps of 1, 2 and 3 frame periods.
_VFR_SELECT = "not(eq(mod(n,5),1)+eq(mod(n,7),3))"


def _vfr_keeps(n: int) -> bool:
    return n % 5 != 1 and n % 7 != 3


def build_video(
    path: str | os.PathLike,
    scenes: Sequence[Scene],
    sounds: Sequence[AudioEvent] = (),
    *,
    width: int = 320,
    height: int = 240,
    fps: float | Fraction = 30,
    audio: bool = True,
    video_codec: str = "libx264",
    preset: str = "veryfast",
    gop: int | None = None,
    audio_offset_seconds: float = 0.0,
    start_seconds: float | None = None,
    vfr: bool = False,
    faststart: bool = False,
    repeat: int = 1,
    sample_rate: int = 48_000,
) -> GroundTruth:
    """Render ``scenes`` with ``sounds`` into ``path`` (.mp4, .mkv or .ts) and return its truth.

    ``fps`` may be a Fraction (30000/1001 for NTSC video); a float is read to 1/1001 precision.
    ``video_codec`` is any ffmpeg encoder (libx265, libvpx-vp9, ...). ``preset`` is x264/x265's:
    "veryfast" keeps CABAC and B-frames as real encoders do; "ultrafast" encodes 2.3x faster
    (1080p: 1.1 vs 2.6 CPU-s per second of video) into a 5x larger, simpler stream that decodes
    differently from real footage. ``gop`` forces a keyframe every N frames and none elsewhere.
    ``audio=False`` writes video only (its truth then has no sounds).
    ``audio_offset_seconds`` starts the audio stream late: content before it is not in the file.
    ``start_seconds`` places content time 0 on the file's clock (None: the container's usual).
    ``vfr`` drops frames of the ``fps`` grid in a fixed irregular pattern (see
    ``frame_times_seconds``). ``faststart`` puts an MP4's index first, as web files have: a
    truncated faststart file still decodes up to the cut; one with its index at the end (ffmpeg's
    and cameras' default) does not open at all. ``repeat`` plays the render that many times by
    stream copy (constant frame rate, audio from 0 only). Everything is checked before rendering.
    """
    path, container, fps = Path(path), _container(path), Fraction(fps).limit_denominator(1001)
    if not container.holds_video:
        raise ValueError(f"{path.name}: {path.suffix} holds no video; use build_audio, or .mp4/.mkv/.ts")
    if not scenes:
        raise ValueError("a video needs at least one Scene")
    if width % 2 or height % 2 or width < 16 or height < 16:
        raise ValueError(f"width and height must be even and at least 16 px (4:2:0 video), got {width}x{height}")
    frames = [round(scene.duration_seconds * fps) for scene in scenes]
    if min(frames) < 2:
        raise ValueError(f"every scene needs at least 2 frames at {fps} fps, got {frames}")
    if gop is not None and (video_codec != "libx264" or gop < 1):
        raise ValueError(f"gop must be a positive frame count and needs libx264, got {gop} with {video_codec}")
    if repeat < 1 or (repeat > 1 and (vfr or audio_offset_seconds)):
        raise ValueError(f"repeat must be >= 1, and > 1 only at a constant frame rate with audio from 0, got {repeat}")
    start_seconds = _start_seconds(path, container, start_seconds)
    duration_seconds = float(sum(frames) / fps)
    track = _mix_track(sounds, duration_seconds, audio_offset_seconds, sample_rate) if audio else None
    kept = [n for n in range(sum(frames) * repeat) if not vfr or _vfr_keeps(n)]
    edges = [0, *itertools.accumulate(frames)]
    shots = [Shot(float(a / fps), float(b / fps), s.picture.name, s.picture.expected_words) for s, a, b in zip(scenes, edges, edges[1:])]
    video = dict(
        width=width, height=height, frames_per_second=float(fps), frame_count=len(kept),
        frame_times_seconds=tuple(float(n / fps) for n in kept) if vfr else None, keyframe_interval_frames=gop,
        shots=_repeated(shots, repeat, duration_seconds),
    )  # fmt: skip
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as work:
        rendered = Path(work) / "video.mp4"
        graph = _video_graph(scenes, frames, width, height, fps, vfr)
        command = [*_input_photos(scenes, Path(work)), "-filter_complex", graph, "-map", "[v]", "-fps_mode", "passthrough"]
        command += ["-c:v", video_codec]
        if video_codec in ("libx264", "libx265"):
            command += ["-preset", preset]
        if gop is not None:  # only x264 is known to honour all three: others add keyframes of their own
            command += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
        _ffmpeg_run([*command, str(rendered)])
        _mux(path, container, Path(work), rendered, track, start_seconds=start_seconds, faststart=faststart, repeat=repeat)
    return _publish(path, container, duration_seconds, start_seconds, repeat, video, track)


def build_audio(
    path: str | os.PathLike,
    sounds: Sequence[AudioEvent],
    *,
    duration_seconds: float,
    start_seconds: float | None = None,
    sample_rate: int = 48_000,
) -> GroundTruth:
    """An audio-only file (.m4a: AAC; .wav: PCM, whose clock always starts at 0) of ``sounds``."""
    path, container = Path(path), _container(path)
    if container.holds_video:
        raise ValueError(f"{path.name}: build_audio writes .m4a or .wav; for audio in {path.suffix} use build_video")
    duration_seconds = round(duration_seconds * sample_rate) / sample_rate
    if not duration_seconds > 0:
        raise ValueError(f"duration_seconds must be positive, got {duration_seconds}")
    start_seconds = _start_seconds(path, container, start_seconds)
    track = _mix_track(sounds, duration_seconds, 0.0, sample_rate)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as work:
        _mux(path, container, Path(work), None, track, start_seconds=start_seconds, faststart=False, repeat=1)
    return _publish(path, container, duration_seconds, start_seconds, 1, None, track)


@dataclass(frozen=True, eq=False)
class _Track:
    mixed: Mix
    start_seconds: float  # content time of the track's first sample
    sample_rate: int


def _mix_track(sounds: Sequence[AudioEvent], duration_seconds: float, offset_seconds: float, sample_rate: int) -> _Track:
    start_seconds = round(offset_seconds * sample_rate) / sample_rate
    if not 0 <= start_seconds < duration_seconds:
        raise ValueError(f"audio_offset_seconds must lie in [0, {duration_seconds}) s, got {offset_seconds}")
    mixed = mix(
        tuple(sounds), duration_seconds=duration_seconds, audio_start_seconds=start_seconds, sample_rate=sample_rate, ffmpeg=find_ffmpeg()
    )
    return _Track(mixed, start_seconds, sample_rate)


def _start_seconds(path: Path, container: _Container, start_seconds: float | None) -> float:
    start_seconds = container.default_start_seconds if start_seconds is None else start_seconds
    least = _MIN_START_SECONDS.get(container.muxer, 0.0)
    if start_seconds < least or (container.muxer == "wav" and start_seconds):
        rule = "0: WAV has no timestamps" if container.muxer == "wav" else f"at least {least} s ({path.suffix} has no edit lists)"
        raise ValueError(f"{path.name}: start_seconds must be {rule}, got {start_seconds}")
    return start_seconds


def _mux(
    path: Path, container: _Container, work: Path, video: Path | None, track: _Track | None, *, start_seconds: float, faststart: bool,
    repeat: int,
) -> None:  # fmt: skip
    """Put the rendered video (copied) and the mixed audio (encoded) into ``path``'s container."""
    loop = ["-stream_loop", str(repeat - 1)] if repeat > 1 else []
    inputs, outputs = [], []
    if video is not None:
        inputs += [*loop, "-i", str(video)]
        outputs += ["-map", "0:v", "-c:v", "copy"]
    if track is not None:
        write_wav(work / "audio.wav", track.mixed.samples[round(track.start_seconds * track.sample_rate) :], track.sample_rate)
        late = ["-itsoffset", f"{track.start_seconds:.6f}"] if track.start_seconds else []
        inputs += [*loop, *late, "-i", str(work / "audio.wav")]
        outputs += ["-map", f"{0 if video is None else 1}:a", "-c:a", container.audio_codec]
    if start_seconds:
        outputs += ["-output_ts_offset", f"{start_seconds:.6f}"]
    if container.muxer in _EDIT_LISTS:
        outputs += ["-movie_timescale", str(track.sample_rate if track else 90_000)] + (["-movflags", "+faststart"] if faststart else [])
    if container.muxer == "mpegts":
        outputs += ["-muxdelay", "0", "-muxpreload", "0"]
    staged = work / f"out{path.suffix}"
    _ffmpeg_run([*inputs, *outputs, "-f", container.muxer, str(staged)])
    os.replace(staged, path)


def _publish(
    path: Path, container: _Container, duration_seconds: float, start_seconds: float, repeat: int, video: dict | None, track: _Track | None
) -> GroundTruth:
    """The truth of what was just written to ``path``, also saved next to it."""
    audio: dict = dict(sample_rate=None, audio_start_seconds=None, audio_stream_start_seconds=None, audio_priming_samples=0)
    events: dict = dict(speech=(), sounds=(), marker_times_seconds=())
    if track is not None:
        stream_start = start_seconds + track.start_seconds
        if not (container.muxer in _EDIT_LISTS and stream_start == 0):
            stream_start -= container.priming_samples / track.sample_rate
        audio = dict(
            sample_rate=track.sample_rate, audio_start_seconds=track.start_seconds, audio_stream_start_seconds=stream_start,
            audio_priming_samples=container.priming_samples,
        )  # fmt: skip
        mixed = track.mixed
        events = dict(
            speech=_repeated(mixed.speech, repeat, duration_seconds),
            sounds=_repeated(mixed.sounds, repeat, duration_seconds),
            marker_times_seconds=tuple(t + k * duration_seconds for k in range(repeat) for t in mixed.marker_times_seconds),
        )
    tick = max(container.clock_tick_seconds, 1 / track.sample_rate if track else 1e-6)
    truth = GroundTruth(
        file_name=path.name, duration_seconds=duration_seconds * repeat, start_seconds=start_seconds,
        timestamp_tolerance_seconds=tick, **(video or _NO_VIDEO), **audio, **events,
    )  # fmt: skip
    truth_path(path).write_text(truth.to_json())
    return truth


def _repeated(spans: Sequence, repeat: int, period_seconds: float) -> tuple:
    return tuple(
        dataclasses.replace(s, start_seconds=s.start_seconds + k * period_seconds, end_seconds=s.end_seconds + k * period_seconds)
        for k in range(repeat)
        for s in spans
    )


def _container(path: str | os.PathLike) -> _Container:
    suffix = Path(path).suffix.lower()
    if suffix not in _CONTAINERS:
        raise ValueError(f"{Path(path).name}: the container follows the extension, one of {sorted(_CONTAINERS)}")
    return _CONTAINERS[suffix]


def _input_photos(scenes: Sequence[Scene], work: Path) -> list[str]:
    return [arg for i, scene in enumerate(scenes) for arg in ("-i", str(_opaque(scene.picture.path, work / f"photo{i}.png")))]


def _opaque(path: Path, staged: Path) -> Path:
    """``path`` itself when it has no transparency; else its subject cropped with a 15% margin
    on mid-grey, written to ``staged`` (ffmpeg would lay a cut-out on black, cropped to nothing)."""
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
            return path
        rgba = image.convert("RGBA")
    box = rgba.getchannel("A").point(lambda a: 255 if a > 16 else 0).getbbox() or (0, 0, *rgba.size)
    subject = rgba.crop(box)
    margin = round(0.15 * max(subject.size))
    canvas = Image.new("RGBA", (subject.width + 2 * margin, subject.height + 2 * margin), (128, 128, 128, 255))
    canvas.alpha_composite(subject, (margin, margin))
    canvas.convert("RGB").save(staged)
    return staged


def _video_graph(scenes: Sequence[Scene], frames: list[int], width: int, height: int, fps: Fraction, vfr: bool) -> str:
    """One zoompan per scene over its photo (scaled once to cover 1.2x the frame, in YUV 4:2:0),
    concatenated.

    zoompan rescales a window of the photo every frame: ~3 ms per 1080p frame, a seventh of what
    x264 veryfast spends encoding it. A crop-only pan would save that but never zoom. The window
    sits on whole pixels of the photo, a sub-pixel shake that reads as a hand-held camera.
    """
    cover_w, cover_h = 2 * round(0.6 * width), 2 * round(0.6 * height)
    chains = []
    for i, (scene, count) in enumerate(zip(scenes, frames)):
        zoom, x, y = (e.format(last=count - 1) for e in _MOVES[i % len(_MOVES)])
        chains.append(
            f"[{i}:v]scale={cover_w}:{cover_h}:force_original_aspect_ratio=increase,crop={cover_w}:{cover_h},format=yuv420p,"
            f"zoompan=z='{zoom}':x='{x}':y='{y}':d={count}:s={width}x{height}:fps={fps.numerator}/{fps.denominator},setsar=1[s{i}]"
        )
    joined = "".join(f"[s{i}]" for i in range(len(scenes))) + f"concat=n={len(scenes)}:v=1:a=0"
    return ";".join(chains) + ";" + joined + (f",select='{_VFR_SELECT}'" if vfr else "") + "[v]"


def find_ffmpeg() -> str:
    """Debian's /usr/bin/ffmpeg, else one on PATH, else imageio-ffmpeg's static binary. Needs
    ffmpeg >= 5.1 (``-fps_mode``)."""
    if os.access("/usr/bin/ffmpeg", os.X_OK):
        return "/usr/bin/ffmpeg"
    if found := shutil.which("ffmpeg"):
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        raise FileNotFoundError("no ffmpeg binary: apt-get install ffmpeg, or pip install imageio-ffmpeg") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg_run(arguments: list[str]) -> None:
    done = subprocess.run([find_ffmpeg(), "-nostdin", "-y", "-loglevel", "error", *arguments], capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")


def demo_script() -> Script:
    """48 s, any size: five photos (the cat twice), five spoken phrases, cheering after the
    launch line. 640x360 renders in ~5 s on 2 cores."""
    scenes = tuple(Scene(photo, 8.0) for photo in ("cat", "coffee", "rocket", "motorcycle", "palace", "cat"))
    sounds = (
        Speech("welcome to the vidscope demo", 1.0),
        Speech("a fresh cup of coffee", 9.0),
        Speech("the rocket is ready for launch", 17.0),
        Sound("crowd", 20.0, 7.0),
        Speech("a red motorcycle in the garage", 25.5),
        Speech("that is all for today", 42.0),  # not "thank you for watching": Whisper hallucinates it on silence
    )
    return Script(scenes, sounds)


_BENCH_PHRASES = ("welcome to the vidscope benchmark", "the rocket is ready for launch", "a fresh cup of coffee", "the cat is watching you")


def bench_script(duration_seconds: float) -> Script:
    """A 36-s pattern repeated: six photos of 6 s each (the last scene takes the remainder), a
    phrase every 15 s, 5 s of cheering every 30 s; no event straddles the end.

    Measured on the 2-core build machine while others used it: ``bench_script(180)`` at
    1920x1080, 30 fps, veryfast took 143 s (136 CPU-s) and makes 16 MB; ``repeat=10`` then adds
    22 s of muxing for the 30-min file (164 MB). ultrafast needs ~0.43x the CPU for a 5x larger file.
    """
    if duration_seconds < 12:
        raise ValueError(f"a benchmark script needs at least 12 s, got {duration_seconds}")
    count = int(duration_seconds // 6)
    photos = ("cat", "coffee", "rocket", "motorcycle", "palace", "flower")
    scenes = [Scene(photos[i % len(photos)], 6.0) for i in range(count - 1)]
    scenes.append(Scene(photos[(count - 1) % len(photos)], duration_seconds - 6.0 * (count - 1)))
    speech = [Speech(_BENCH_PHRASES[k % len(_BENCH_PHRASES)], 15.0 * k + 2.0) for k in range(int((duration_seconds - 6.0) // 15) + 1)]
    crowd = [Sound("crowd", 30.0 * k + 20.0, 5.0) for k in range(int((duration_seconds - 25.0) // 30) + 1)]
    return Script(tuple(scenes), tuple(sorted([*speech, *crowd], key=lambda e: e.at_seconds)))
