"""The transformers ``vlm`` backend end to end on tiny random-weight models of each architecture
(tests/tiny_models.py): real frames and audio in, text out. The text is gibberish; the tests
assert plumbing: one text per prompt in order, only new tokens, what media reach the processor,
determinism, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import data
from skimage.transform import resize

from operators.models.vlm import make_backend
from operators.models.vlm_config import Prompt, TransformersVlm
from operators.models.vlm_hf import TransformersBackend, frames_per_second, select_frames
from tiny_models import ARCHITECTURES, build_tiny

MAX_NEW_TOKENS = 8
MAX_FRAMES = 4
RATE = 16_000
# Longer than MAX_NEW_TOKENS words: an echoed prompt would show in the word count.
INSTRUCTION = "describe what happens in this video clip in one sentence with the cat"

SEES = {"qwen2_vl": "video", "qwen2_5_vl": "video", "qwen2_5_omni": "video", "llava_onevision": "video",
        "llava_next_video": "video", "blip_2": "image", "instructblip": "image", "qwen2_audio": "nothing"}
HEARS = {"qwen2_5_omni", "qwen2_audio"}


def _frames(count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` 64x64 frames of the chelsea photo panning right, 0.5 s apart; frame ``i`` has
    ``i`` in its top-left pixel so a test can tell frames apart."""
    image = (resize(data.chelsea(), (64, 64), anti_aliasing=True) * 255).astype(np.uint8)
    frames = np.stack([np.roll(image, 6 * i, axis=1) for i in range(count)])
    frames[:, 0, 0, 0] = np.arange(count)
    return frames, np.arange(count, dtype=np.int64) * 500_000_000 + 7_000_000_000


def _audio(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(0).normal(0, 0.05, t.shape)
    return (0.3 * np.sin(2 * np.pi * 440 * t) + noise).astype(np.float32)


def _prompts() -> list[Prompt]:
    frames, pts = _frames(7)
    return [
        Prompt(INSTRUCTION, frames, pts, _audio(1.5)),  # 7 frames (more than MAX_FRAMES) and audio
        Prompt("what is the dog doing", frames[:3], pts[:3]),  # 3 frames, no audio
        Prompt("what sound is this", audio=_audio(1.0)),  # audio only
        Prompt("a man and a woman talk in a red car"),  # text only
    ]


class Recorder:
    """Stands in for a processor: records each call's media, then delegates."""

    def __init__(self, processor) -> None:
        self.processor = processor
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self.processor(**kwargs)

    def __getattr__(self, name: str):
        return getattr(self.processor, name)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tiny_vlm")
    built: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in built:
            built[arch] = build_tiny(arch, root / arch)
        return built[arch]

    return get


@pytest.fixture(scope="module")
def backend(tiny_folder):
    loaded: dict[str, TransformersBackend] = {}

    def get(arch: str) -> TransformersBackend:
        if arch not in loaded:
            config = TransformersVlm(str(tiny_folder(arch)), device="cpu", max_new_tokens=MAX_NEW_TOKENS,
                                     max_frames=MAX_FRAMES)
            loaded[arch] = make_backend(config)
            loaded[arch].setup()
        return loaded[arch]

    return get


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_one_new_text_per_prompt_in_order(arch, backend):
    vlm = backend(arch)
    prompts = _prompts()
    texts = vlm.generate(prompts)
    assert len(texts) == len(prompts) and all(isinstance(text, str) for text in texts)
    alone = [vlm.generate([prompt])[0] for prompt in prompts]
    # Batched (grouped, left-padded) and one-by-one agree, so each text belongs to its prompt...
    assert texts == alone
    # ...and the tiny model answers differently to different prompts, so a mix-up would show.
    assert len(set(alone)) > 1, alone
    # The word-level tokenizer makes a word a token: an echoed prompt would exceed the budget.
    assert all(len(text.split()) <= MAX_NEW_TOKENS for text in texts), texts
    assert not any(INSTRUCTION in text for text in texts)
    assert vlm.generate(prompts) == texts  # greedy: deterministic


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_processor_gets_the_media_the_model_takes(arch, backend, monkeypatch):
    vlm = backend(arch)
    recorder = Recorder(vlm._processor)
    monkeypatch.setattr(vlm, "_processor", recorder)
    vlm.generate(_prompts())
    videos = [video for call in recorder.calls for video in call.get("videos", [])]
    images = [image for call in recorder.calls for image in call.get("images", [])]
    audio = [clip for call in recorder.calls for clip in call.get("audio", [])]
    if SEES[arch] == "video":
        # Frame i carries i in its top-left pixel: 7 frames thin to 0, 2, 4, 6; 3 stay 0, 1, 2.
        assert sorted([int(frame[0, 0, 0]) for frame in video] for video in videos) == [[0, 1, 2], [0, 2, 4, 6]]
        rates = sorted(meta["fps"] for call in recorder.calls for meta in call.get("video_metadata", []))
        assert rates == pytest.approx([1.0, 2.0])  # 0.5 s apart, 1 s apart once thinned
    else:
        assert videos == []
    if SEES[arch] == "image":
        assert sorted(int(image[0, 0, 0]) for image in images) == [1, 3]  # the middle frames of 3 and 7
    else:
        assert images == []
    assert sorted(len(clip) for clip in audio) == ([RATE, RATE * 3 // 2] if arch in HEARS else [])


@pytest.mark.parametrize(("arch", "key"), [("qwen2_5_vl", "second_per_grid_ts"),
                                           ("qwen2_5_omni", "video_second_per_grid")])
def test_frame_timing_reaches_the_model(arch, key, backend, monkeypatch):
    # Qwen2.5 models place video tokens in time: seconds per grid = temporal patch (2 frames) / fps.
    vlm = backend(arch)
    calls = []
    generate = vlm._model.generate
    monkeypatch.setattr(vlm._model, "generate", lambda **kwargs: calls.append(kwargs) or generate(**kwargs))
    frames, pts = _frames(7)
    vlm.generate([Prompt("the cat", frames, pts), Prompt("the dog", frames[:3], pts[:3])])
    # 7 frames 0.5 s apart thin to 4 frames 1 s apart (1 fps); 3 frames stay at 2 fps.
    assert sorted(float(value) for call in calls for value in call[key]) == pytest.approx([1.0, 2.0])


def test_audio_at_another_rate_is_resampled(backend, monkeypatch):
    vlm = backend("qwen2_audio")
    recorder = Recorder(vlm._processor)
    monkeypatch.setattr(vlm, "_processor", recorder)
    [text] = vlm.generate([Prompt("what sound is this", audio=_audio(1.0, 8_000), sample_rate=8_000)])
    assert isinstance(text, str)
    assert [len(clip) for clip in recorder.calls[0]["audio"]] == [RATE]


def test_select_frames_spreads_evenly_and_keeps_ends():
    frames, pts = _frames(10)
    chosen, chosen_pts = select_frames(frames, pts, 4)
    assert chosen[:, 0, 0, 0].tolist() == [0, 3, 6, 9]
    assert chosen_pts.tolist() == pts[[0, 3, 6, 9]].tolist()
    assert select_frames(frames, pts, 10)[0] is frames  # few enough: untouched
    assert select_frames(frames, pts, 1)[0][:, 0, 0, 0].tolist() == [0]
    with pytest.raises(ValueError, match="max_frames"):
        select_frames(frames, pts, 0)


def test_frames_per_second_from_timestamps():
    assert frames_per_second(np.array([0, 250_000_000, 500_000_000])) == pytest.approx(4.0)
    assert frames_per_second(np.array([3], np.int64)) == 1.0


def test_unsupported_model_type_is_a_clear_error(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=1).save_pretrained(tmp_path)
    vlm = make_backend(TransformersVlm(str(tmp_path), device="cpu"))
    with pytest.raises(ValueError, match=r"'gpt2' is not supported.*qwen2_5_vl"):
        vlm.setup()


@pytest.mark.parametrize("bad", [dict(model=""), dict(model="m", max_frames=0), dict(model="m", batch_size=0),
                                 dict(model="m", max_new_tokens=0)])
def test_invalid_configs_are_rejected(bad):
    with pytest.raises(ValueError):
        TransformersVlm(**bad)


def test_generate_before_setup_fails():
    with pytest.raises(RuntimeError, match="setup"):
        make_backend(TransformersVlm("some/model")).generate([Prompt("hello")])
