"""Class spaces: what a classifier scored over *all* its classes, as one point of the text space.

A segment's audio or visual vector is ConSE (Norouzi et al., 2014, "Zero-shot learning by convex
combination of semantic embeddings"): the classifier's probabilities of its T best classes
weight the text embeddings of those classes' names, and the sum is normalised. A query is then
one vector search per space, as before, but it reaches every class the model knows: "a dog"
finds a segment whose top class is "Siberian husky", "a ship horn" one scored "Foghorn" and
"Boat, Water vehicle", although neither word is among its labels. The class texts are the
classes' own words: ImageNet's WordNet lemmas and definitions (shipped by timm), AudioSet's
display names as YAMNet lists them (no installable package ships the ontology's descriptions).

The class embeddings are computed once per machine and cached (a digest of the texts and the
text model in the key): 1,521 short texts, ~5 s on one core.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from operators.models.cache import materialize

SPEECH_CLASSES = frozenset({
    "Speech", "Child speech, kid speaking", "Conversation", "Narration, monologue", "Babbling", "Speech synthesizer",
    "Male speech, man speaking", "Female speech, woman speaking", "Whispering", "Silence",
})  # fmt: skip
"""AudioSet classes that say someone talks (or nothing sounds): the speech space and the
transcript say that better, so they weigh little in the audio vector and an event under speech
still leads it."""


ROOM_CLASSES = frozenset({
    "Inside, small room", "Inside, large room or hall", "Inside, public space", "Outside, urban or manmade",
    "Outside, rural or natural", "Environmental noise",
})  # fmt: skip
"""AudioSet classes that describe where a recording was made, not what happened in it."""

GENERAL_CLASSES = ROOM_CLASSES | {
    "Animal", "Domestic animals, pets", "Livestock, farm animals, working animals", "Wild animals", "Vehicle",
    "Motor vehicle (road)", "Mechanisms", "Tools", "Musical instrument", "Sound effect", "Noise",
}  # fmt: skip
"""AudioSet's umbrella classes (the ontology's parents of many others) and its room classes: they
say little about what happened ("Animal" is in every bark, moo and crow), so they weigh less and
the specific class leads the vector."""


@dataclass(frozen=True, eq=False)
class ClassSpace:
    """``vectors[c]``: the L2-normalised text embedding of class ``c``'s text."""

    texts: tuple[str, ...]
    vectors: np.ndarray  # float32 [C, D]
    weights: np.ndarray  # float32 [C]: how much each class may count (1, or less for speech)

    def __post_init__(self) -> None:
        if self.vectors.shape[0] != len(self.texts) or self.weights.shape != (len(self.texts),):
            raise ValueError(f"a class space needs one vector and one weight per class, got {self.vectors.shape} for {len(self.texts)}")

    def embed(self, scores: np.ndarray, top: int) -> np.ndarray | None:
        """ConSE of ``scores`` (float [C], probabilities): the ``top`` best classes by weighted
        score, their embeddings weighted by it; None when every weighted score is 0."""
        if scores.shape != (len(self.texts),):
            raise ValueError(f"expected {len(self.texts)} class scores, got shape {scores.shape}")
        weighted = np.asarray(scores, np.float32) * self.weights
        best = np.argsort(-weighted, kind="stable")[:top]
        w = weighted[best]
        if not w.sum() > 0:
            return None
        vector = w @ self.vectors[best]
        return (vector / np.linalg.norm(vector)).astype(np.float32)


def class_space(texts: Sequence[str], embed: Callable[[list[str]], np.ndarray], model_key: str,
                weights: np.ndarray | None = None) -> ClassSpace:
    """The space of ``texts`` embedded by ``embed``, from the per-machine cache when there."""
    texts = tuple(texts)
    digest = hashlib.sha256("\n".join((model_key, *texts)).encode()).hexdigest()[:16]

    def build(folder: Path) -> None:
        np.save(folder / "vectors.npy", np.asarray(embed(list(texts)), np.float32))

    vectors = np.load(materialize(f"classes-{digest}", build) / "vectors.npy")
    return ClassSpace(texts, vectors, np.ones(len(texts), np.float32) if weights is None else np.asarray(weights, np.float32))


def audio_class_texts(labels: Sequence[str]) -> tuple[str, ...]:
    """AudioSet display names as text: "Vehicle horn, car horn, honking" stays a list of
    synonyms (a bare list embeds best, see operators/analysis/fuse.py)."""
    return tuple(label.lower() for label in labels)


def audio_weights(labels: Sequence[str], speech: float, general: float) -> np.ndarray:
    """Per class: ``speech`` for speech and silence, ``general`` for umbrella and room classes, else 1."""
    return np.array([speech if label in SPEECH_CLASSES else general if label in GENERAL_CLASSES else 1.0 for label in labels],
                    np.float32)


@cache
def imagenet_classes() -> tuple[tuple[str, str, str], ...]:
    """Per ImageNet-1k class, in the classifier's order: (WordNet synset, lemmas, definition),
    e.g. ("n02110185", "Siberian husky", "breed of sled dog developed in northeastern Siberia").

    Read from the files timm ships in ``timm/data/_info`` without importing timm, which would
    import torch (~5 s) into processes that run their models on ONNX."""
    import csv
    import importlib.util

    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the ImageNet class names ship with timm, which is not installed")
    folder = Path(spec.submodule_search_locations[0]) / "data" / "_info"

    def table(name: str) -> dict[str, str]:
        with (folder / name).open(encoding="utf-8", newline="") as f:
            return dict(csv.reader(f, delimiter="\t"))

    synsets = (folder / "imagenet_synsets.txt").read_text(encoding="utf-8").splitlines()
    lemmas, definitions = table("imagenet_synset_to_lemma.txt"), table("imagenet_synset_to_definition.txt")
    return tuple((synset, lemmas[synset], definitions.get(synset, "").strip()) for synset in synsets)


@cache
def imagenet_class_texts() -> tuple[str, ...]:
    """Per ImageNet-1k class: "a photo of a <lemmas>: <definition>" from WordNet (timm's files),
    e.g. "a photo of a Siberian husky: breed of sled dog developed in northeastern Siberia"."""
    return tuple(f"a photo of a {lemmas}: {definition}".rstrip(": ") for _, lemmas, definition in imagenet_classes())
