"""The class spaces (ConSE over all ImageNet and AudioSet classes) and the lexical speech index,
each on known answers: real MiniLM embeddings, real class texts, a real FTS5 file."""

from __future__ import annotations

import numpy as np
import pytest

from indexers.lexical import LexicalIndex, sounds, terms
from operators.models.audio_events import audio_class_names
from operators.models.classes import audio_class_texts, class_space, imagenet_class_texts, audio_weights
from operators.records import FusedRecord, Span
from operators.models.text import TextEncoder


@pytest.fixture(scope="module")
def text() -> TextEncoder:
    encoder = TextEncoder(device="cpu")
    encoder.setup()
    return encoder


def nearest(vector: np.ndarray, queries: list[str], text: TextEncoder) -> str:
    return queries[int(np.argmax(text.embed(queries) @ vector))]


def one_hot(n: int, *pairs: tuple[int, float]) -> np.ndarray:
    scores = np.zeros(n, np.float32)
    for i, p in pairs:
        scores[i] = p
    return scores


def test_imagenet_space_answers_words_outside_the_top_label(text, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    texts = imagenet_class_texts()
    assert len(texts) == 1000 and "Siberian husky" in texts[250]
    space = class_space(texts, text.embed, "minilm")
    husky = space.embed(one_hot(1000, (250, 0.7), (248, 0.2)), top=5)  # Siberian husky, Eskimo dog
    cheetah = space.embed(one_hot(1000, (293, 0.9)), top=5)  # cheetah
    assert nearest(husky, ["a dog", "a cat", "a car", "a bird"], text) == "a dog"
    assert nearest(cheetah, ["a big cat", "a dog", "a truck", "a flower"], text) == "a big cat"
    assert space.embed(np.zeros(1000, np.float32), top=5) is None
    again = class_space(texts, text.embed, "minilm")  # from the cache now
    np.testing.assert_array_equal(again.vectors, space.vectors)


def test_audio_space_finds_an_event_under_speech(text, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    labels = audio_class_names()
    space = class_space(audio_class_texts(labels), text.embed, "minilm", audio_weights(labels, 0.3, 0.4))
    index = {label: i for i, label in enumerate(labels)}
    # Someone talks over a barking dog: the classifier is surer of the speech than of the dog.
    scores = one_hot(len(labels), (index["Speech"], 0.9), (index["Dog"], 0.5), (index["Bark"], 0.4))
    assert nearest(space.embed(scores, top=5), ["a dog barking", "a ship horn", "music", "applause"], text) == "a dog barking"
    horn = one_hot(len(labels), (index["Foghorn"], 0.6), (index["Boat, Water vehicle"], 0.3))
    assert nearest(space.embed(horn, top=5), ["a dog barking", "a ship horn", "music", "applause"], text) == "a ship horn"


def record(segment_id: int, transcript: str) -> FusedRecord:
    return FusedRecord(segment_id, "s", Span(segment_id * 10**9, (segment_id + 1) * 10**9), "", (), (), transcript, None, {}, None)


class _Store:
    def __init__(self, records):
        self.records = records

    def count_segments(self):
        return len(self.records)

    def list_sources(self):
        return []


def test_lexical_index_spelled_and_sound_alike(tmp_path):
    assert terms("Someone says: the Capybara!") == ["capybara"]
    assert sounds(["capybara"]) == sounds(["kapibara"])
    records = [record(1, "this animal is called a capybara"), record(2, "weasels have eaten our phone system"),
               record(3, "the farmer counts his sheep"), record(4, "")]
    lexical = LexicalIndex(tmp_path, _Store(records))
    lexical.apply(records)
    assert list(lexical.search("a capybara", 5)) == [1]
    assert list(lexical.search("kapibara", 5)) == [1]  # misheard or misspelled: found by its sound
    found = lexical.search("the weasels ate the phone", 5)
    assert next(iter(found)) == 2 and found[2] == 1.0
    assert lexical.search("the a of", 5) == {}  # stop words only
    lexical.apply([record(3, "the farmer sleeps")])  # a segment said something else now
    assert lexical.search("sheep", 5) == {}
    lexical.close()
    reopened = LexicalIndex(tmp_path, _Store(records))  # counts agree: not rebuilt
    assert list(reopened.search("farmer", 5)) == [3]
