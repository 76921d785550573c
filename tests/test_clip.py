"""The ``clip`` profile encoder on tiny random-weight CLIP and SigLIP models (tests/tiny_clip.py),
loaded through the real ``from_pretrained(folder)`` path, fed real photos from scikit-image.

The weights are random, so the answers are about plumbing: shapes, unit norms, which vector
belongs to which segment, and that the per-segment vector is exactly the normalised mean of the
per-frame embeddings the model gives when called directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from operators.models.clip import ClipConfig, ClipEncoder
from operators.records import Segment, Span, seconds_to_ns
from tiny_clip import HIDDEN, PROJECTION_DIM, build_tiny_clip

KINDS = ("clip", "siglip")
DIM = {"clip": PROJECTION_DIM, "siglip": HIDDEN}


def photo(name: str) -> np.ndarray:
    """A real photo, shrunk and not square (the processor must resize and crop it)."""
    import skimage.data
    from skimage.transform import resize

    image = getattr(skimage.data, name)()
    return (resize(image, (48, 64), anti_aliasing=True) * 255).round().astype(np.uint8)


def segment(source_id: str, start_s: float, frames: list[np.ndarray]) -> Segment:
    """A 2 s segment with its frames 0.25 s apart from its start."""
    start_ns = seconds_to_ns(start_s)
    pts = np.array([start_ns + seconds_to_ns(0.25 * i) for i in range(len(frames))], np.int64)
    pixels = np.stack(frames) if frames else np.zeros((0, 48, 64, 3), np.uint8)
    return Segment(source_id, Span(start_ns, start_ns + seconds_to_ns(2.0)), pixels, pts, None)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: photo(name) for name in ("chelsea", "coffee", "astronaut")}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_clip")
    return {kind: build_tiny_clip(root / kind, kind) for kind in KINDS}


@pytest.fixture(scope="module")
def encoders(folders) -> dict[str, ClipEncoder]:
    made = {}
    for kind in KINDS:
        encoder = ClipEncoder(ClipConfig(str(folders[kind]), device="cpu"))
        encoder.setup()
        made[kind] = encoder
    return made


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_unit_norms(encoders, photos, kind):
    encoder = encoders[kind]
    assert encoder.dim == DIM[kind]
    results = encoder.process([segment("a", 0.0, [photos["chelsea"], photos["coffee"]]),
                               segment("a", 2.0, [photos["astronaut"]])])
    assert len(results) == 2
    for result in results:
        assert result.embedding.dtype == np.float32
        assert result.embedding.shape == (DIM[kind],)
        assert abs(np.linalg.norm(result.embedding) - 1.0) < 1e-5
    texts = encoder.embed_text(["a photo of a cat", "a cup of espresso on a table", "an astronaut"])
    assert texts.dtype == np.float32 and texts.shape == (3, DIM[kind])
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert encoder.embed_text([]).shape == (0, DIM[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_segment_without_frames_gets_none_and_order_is_kept(encoders, photos, kind):
    segments = [segment("a", 0.0, [photos["chelsea"]]), segment("a", 2.0, []),
                segment("a", 4.0, [photos["coffee"]])]
    results = encoders[kind].process(segments)
    assert [r.segment_id for r in results] == [s.id for s in segments]
    assert results[1].embedding is None
    alone = encoders[kind].process([segments[2]])[0].embedding
    np.testing.assert_allclose(results[2].embedding, alone, atol=1e-6)
    assert encoders[kind].process([segment("b", 0.0, [])])[0].embedding is None


@pytest.mark.parametrize("kind", KINDS)
def test_segment_vector_is_normalised_mean_of_frame_embeddings(folders, encoders, photos, kind):
    """Known answer: the model called directly, without the encoder."""
    import torch
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(folders[kind], local_files_only=True).eval()
    processor = AutoProcessor.from_pretrained(folders[kind], local_files_only=True)
    def direct(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            out = model.get_image_features(**processor(images=frames, return_tensors="pt"))
        per_frame = out.pooler_output.numpy()
        per_frame /= np.linalg.norm(per_frame, axis=1, keepdims=True)
        mean = per_frame.mean(axis=0)
        return per_frame, mean / np.linalg.norm(mean)

    first = [photos["chelsea"], photos["coffee"], photos["astronaut"]]
    second = [photos["astronaut"], photos["chelsea"]]
    per_frame, expected_first = direct(first)
    _, expected_second = direct(second)
    got = encoders[kind].process([segment("a", 0.0, first), segment("a", 2.0, second)])
    np.testing.assert_allclose(got[0].embedding, expected_first, atol=1e-5)
    np.testing.assert_allclose(got[1].embedding, expected_second, atol=1e-5)
    # The mean differs from any single frame's vector, so the test above is not trivially met.
    assert np.abs(per_frame - expected_first).max(axis=1).min() > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_same_image_same_vector_different_images_differ(encoders, photos, kind):
    a, b, c = encoders[kind].process([segment("a", 0.0, [photos["chelsea"]]),
                                      segment("b", 10.0, [photos["chelsea"]]),
                                      segment("a", 2.0, [photos["coffee"]])])
    np.testing.assert_array_equal(a.embedding, b.embedding)
    assert np.abs(a.embedding - c.embedding).max() > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_text_embedding_is_deterministic_and_independent_of_batch(encoders, kind):
    encoder = encoders[kind]
    texts = ["a photo of a cat", "a red car on the street"]
    first, again = encoder.embed_text(texts), encoder.embed_text(texts)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first[0] - first[1]).max() > 1e-3
    # The short text padded beside a longer one embeds as it does alone.
    np.testing.assert_allclose(encoder.embed_text([texts[0]])[0], first[0], atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_small_image_batches_give_the_same_vectors(folders, encoders, photos, kind):
    segments = [segment("a", 0.0, [photos["chelsea"], photos["coffee"], photos["astronaut"]]),
                segment("a", 2.0, [photos["coffee"], photos["chelsea"]])]
    small = ClipEncoder(ClipConfig(str(folders[kind]), device="cpu", batch_size=2))
    small.setup()
    for one, other in zip(encoders[kind].process(segments), small.process(segments)):
        np.testing.assert_allclose(one.embedding, other.embedding, atol=1e-6)


def test_setup_is_needed_and_config_is_checked(folders):
    encoder = ClipEncoder(ClipConfig(str(folders["clip"])))
    with pytest.raises(RuntimeError, match="setup"):
        encoder.process([])
    with pytest.raises(RuntimeError, match="setup"):
        encoder.dim
    with pytest.raises(ValueError, match="batch_size"):
        ClipConfig("m", batch_size=0)
    with pytest.raises(ValueError, match="model"):
        ClipConfig("")
