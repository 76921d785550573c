"""Fusion: what each encoder saw, heard and read of one segment, made into one searchable record.

Each modality is phrased as a short English text and embedded in the shared MiniLM space, so a
text query finds a moment by what was seen, heard or said, or by everything at once ("all").
Phrasings were compared on real encoder outputs by the margin between the right moment and the
best wrong one for short queries ("a cat", "applause", "silence"): for visual labels a caption
("a photo of an Egyptian cat, a tiger cat") has the best worst case; for audio events the bare
list ("crowd, choir, chant") beats "the sound of ..." (mean margin 0.34 vs 0.27), whose shared
prefix makes every audio vector look alike. Transcripts are quoted after "someone says", which
is how people ask for speech ("someone says goal").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from operators.models.audio_events import audio_class_names
from operators.base import Device, Operator, Resources
from operators.models.classes import ClassSpace, audio_class_texts, audio_weights, class_space, imagenet_class_texts
from operators.records import AudioResult, CaptionResult, ClipResult, FusedRecord, Scored, Segment, Span, SpeechResult, VisualResult
from operators.models.text import TextEncoder

SILENCE_LOUDNESS_DB = -60.0
"""Below this RMS level a segment is heard as silence, whatever the classifier guessed."""


@dataclass(frozen=True, eq=False, slots=True)
class Observations:
    """Everything the encoders reported about one segment; a modality not run is ``None``."""

    segment_id: int
    source_id: str
    span: Span
    visual: VisualResult | None = None
    audio: AudioResult | None = None
    speech: SpeechResult | None = None
    caption: CaptionResult | None = None
    clip: ClipResult | None = None

    def __post_init__(self) -> None:
        for result in (self.visual, self.audio, self.speech, self.caption, self.clip):
            if result is not None and result.segment_id != self.segment_id:
                raise ValueError(f"{type(result).__name__} of segment {result.segment_id} cannot describe segment {self.segment_id}")

    @classmethod
    def of(cls, segment: Segment, *, visual: VisualResult | None = None, audio: AudioResult | None = None, speech: SpeechResult | None = None) -> Observations:
        return cls(segment.id, segment.source_id, segment.span, visual, audio, speech)


class Fuse(Operator[Observations, FusedRecord]):
    """One ``FusedRecord`` per segment: a readable description and one text embedding per
    modality that has something to say, plus ``"all"`` for the description.

    Only confident results are phrased: visual labels with probability at least
    ``min_label_score`` and audio events with score at least ``min_event_score``, the best one
    always kept, at most ``max_terms`` of each. Fewer terms keep the vectors sharp (a query for
    "a cat" should not be diluted by the classifier's fourth guess); more terms recall more.
    The record still carries every label and event the encoders returned.
    """

    name = "fuse"

    def __init__(
        self,
        *,
        text_encoder: TextEncoder | None = None,
        device: Device = "auto",
        min_label_score: float = 0.05,
        min_event_score: float = 0.15,
        max_terms: int = 3,
        visual_classes: int = 5,
        audio_classes: int = 10,
        speech_class_weight: float = 0.3,
        general_class_weight: float = 0.4,
        resources: Resources | None = None,
        batch_size: int = 64,
    ) -> None:
        super().__init__(resources=resources, batch_size=batch_size)
        if max_terms < 1:
            raise ValueError(f"{self.name}: max_terms must be at least 1, got {max_terms}")
        self.text_encoder = text_encoder or TextEncoder(device=device, resources=self.resources)
        self.min_label_score = min_label_score
        self.min_event_score = min_event_score
        self.max_terms = max_terms
        self.visual_classes = visual_classes
        """ConSE over this many best classes (operators/models/classes.py); 0: embed the label text."""
        self.audio_classes = audio_classes
        self.speech_class_weight = speech_class_weight
        self.general_class_weight = general_class_weight
        self._spaces: dict[str, ClassSpace] = {}

    @classmethod
    def default_resources(cls) -> Resources:
        return TextEncoder.default_resources()

    def setup(self) -> None:
        self.text_encoder.setup()
        embed, key = self.text_encoder.embed, "all-MiniLM-L6-v2"
        labels = audio_class_names()
        self._spaces = {
            "visual": class_space(imagenet_class_texts(), embed, key),
            "audio": class_space(audio_class_texts(labels), embed, key,
                                 audio_weights(labels, self.speech_class_weight, self.general_class_weight)),
        }

    def process(self, batch: Sequence[Observations]) -> list[FusedRecord]:
        phrased = [self.phrase(observations) for observations in batch]
        conse = [self._class_vectors(observations, texts) for observations, (_, texts) in zip(batch, phrased)]
        texts = [text for (_, modality_texts), known in zip(phrased, conse) for m, text in modality_texts.items() if m not in known]
        vectors = iter(self.text_encoder.embed(texts))  # one encode call for the whole batch
        records = []
        for observations, (description, modality_texts), known in zip(batch, phrased, conse):
            embeddings = {modality: known[modality] if modality in known else next(vectors) for modality in modality_texts}
            if observations.clip is not None and observations.clip.embedding is not None:
                embeddings["clip"] = observations.clip.embedding
            visual, audio, speech = observations.visual, observations.audio, observations.speech
            records.append(
                FusedRecord(
                    segment_id=observations.segment_id,
                    source_id=observations.source_id,
                    span=observations.span,
                    description=description,
                    labels=visual.labels if visual else (),
                    events=audio.events if audio else (),
                    transcript=speech.text if speech else "",
                    loudness_db=audio.loudness_db if audio and audio.events else None,  # None: no audio track
                    embeddings=embeddings,
                    visual_features=visual.features if visual else None,
                    class_scores={name: result.class_scores for name, result in (("visual", visual), ("audio", audio))
                                  if result is not None and result.class_scores is not None},
                )
            )
        return records

    def _class_vectors(self, observations: Observations, texts: dict[str, str]) -> dict[str, np.ndarray]:
        """The visual and audio vectors made from all class scores, where there are scores and the
        modality is phrased from labels (a caption, or "silence", is embedded as text)."""
        known = {}
        visual, audio = observations.visual, observations.audio
        if "visual" in texts and observations.caption is None and visual is not None and visual.class_scores is not None \
                and self.visual_classes and "visual" in self._spaces:
            vector = self._spaces["visual"].embed(visual.class_scores, self.visual_classes)
            if vector is not None:
                known["visual"] = vector
        if texts.get("audio", "silence") != "silence" and audio is not None and audio.class_scores is not None \
                and self.audio_classes and "audio" in self._spaces:
            vector = self._spaces["audio"].embed(audio.class_scores, self.audio_classes)
            if vector is not None:
                known["audio"] = vector
        return known

    def phrase(self, observations: Observations) -> tuple[str, dict[str, str]]:
        """The description, and the text to embed per modality (only those with content)."""
        seen = _confident(observations.visual.labels, self.min_label_score, self.max_terms) if observations.visual else []
        heard = self._heard(observations.audio) if observations.audio else []
        said = observations.speech.text if observations.speech else ""
        caption = observations.caption.text if observations.caption else ""
        context = (observations.speech.utterance or said) if observations.speech else ""
        parts, texts = [], {}
        if caption:  # the vlm profile's caption says more than labels: it describes the picture
            parts.append(f"Seen: {caption.rstrip('.')}.")
            texts["visual"] = caption
        elif seen:
            parts.append(f"Seen: {', '.join(seen)}.")
            texts["visual"] = "a photo of " + ", ".join(_with_article(label) for label in seen)
        if heard:
            parts.append(f"Heard: {', '.join(heard)}.")
            texts["audio"] = ", ".join(heard)
        if said:
            parts.append(f'Said: "{said}".')
            texts["speech"] = f'someone says "{context}"'
        description = " ".join(parts)
        if description:
            texts["all"] = description
        return description or "Nothing recognised.", texts

    def _heard(self, audio: AudioResult) -> list[str]:
        """Confident events in lower case, never "silence" beside real sounds (a pause between
        words is not what a segment of speech is about). "silence" alone when the segment is
        quiet, or when nothing else is confident and the classifier heard Silence."""
        if not audio.events:  # the source has no audio track: nothing was heard, not silence
            return []
        if audio.loudness_db < SILENCE_LOUDNESS_DB:
            return ["silence"]
        sounds = tuple((name, score) for name, score in audio.events if name != "Silence")
        confident = [name.lower() for name, score in sounds[: self.max_terms] if score >= self.min_event_score]
        if confident:
            return confident
        if len(sounds) < len(audio.events):
            return ["silence"]
        return [sounds[0][0].lower()]


def _confident(scored: Scored, min_score: float, max_terms: int) -> list[str]:
    """Names scoring at least ``min_score``, best first, at most ``max_terms``; the best always."""
    return [name for rank, (name, score) in enumerate(scored[:max_terms]) if rank == 0 or score >= min_score]


def _with_article(label: str) -> str:
    return ("an " if label[0].lower() in "aeiou" else "a ") + label
