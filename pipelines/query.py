"""The query path: text in, moments out, in-process (no Ray: a query must answer in milliseconds).

``search``, ``highlights``, ``summary`` and ``ask`` read a data folder with the models of the
profile it was ingested with (``pipelines.ingest.profiles``).
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from indexers.index import REDIS_ENV, SegmentIndex
from indexers.search import Searcher
from indexers.shards import Shard
from indexers.store import SourceInfo
from operators.analysis.summary import Summary, clock
from operators.models.text import TextEncoder
from pipelines.ingest.profiles import ClipProfile, VlmProfile, load_profile

log = logging.getLogger(__name__)


def data_folder(data_dir: Path) -> Path:
    """``data_dir`` when it holds an index; a clear error telling how to make one otherwise."""
    data_dir = Path(data_dir)
    if os.environ.get(REDIS_ENV):  # the index lives in Redis; this folder only caches FAISS files
        data_dir.mkdir(parents=True, exist_ok=True)
    if not data_dir.is_dir():
        raise ValueError(f"no index at {data_dir}: run `vidscope ingest PATH --data {data_dir}` first")
    return data_dir


@contextmanager
def open_searcher(data_dir: Path, *, device: str = "cpu", shard: Shard | None = None) -> Iterator[Searcher]:
    """Open the index read-side and load the text encoder(s) once; reuse the searcher for many
    queries. ``shard``: hold only that shard's vectors (``indexers.shards``)."""
    data_dir = data_folder(data_dir)
    encoder = TextEncoder(device=device)
    encoder.setup()
    joint = {}
    profile = load_profile(data_dir)
    if isinstance(profile, ClipProfile):
        from operators.models.clip import ClipEncoder

        clip = ClipEncoder(profile.clip)
        clip.setup()
        joint["clip"] = clip.embed_text
    with SegmentIndex(data_folder(data_dir), read_only=True, shard=shard) as index:
        yield Searcher(index, encoder.embed, joint=joint)


def find_source(index: SegmentIndex, key: str) -> SourceInfo:
    source = index.store.find_source(key)
    if source is None:
        known = ", ".join(s.name for s in index.store.list_sources()[:10]) or "none yet"
        raise ValueError(f"no source {key!r} in {index.data_dir} (known: {known})")
    return source


def load_summary(data_dir: Path, key: str) -> tuple[SourceInfo, Summary]:
    with SegmentIndex(data_folder(data_dir), read_only=True) as index:
        source = find_source(index, key)
        stored = index.store.get_summary(source.source_id)
    if stored is None:
        raise ValueError(f"{source.name} has no summary (ingested by an older vidscope, or its summary failed): "
                         f"run `vidscope ingest {source.uri} --force`")
    return source, Summary.from_json(stored)


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    source: SourceInfo
    text: str
    moments: list  # indexers.search.Moment, best first
    profile: str

    def to_json(self) -> dict:
        return {"question": self.question, "source": self.source.name, "source_id": self.source.source_id,
                "answer": self.text, "profile": self.profile, "moments": [m.to_json() for m in self.moments]}


def ask(data_dir: Path, key: str, question: str, *, top_k: int = 3) -> Answer:
    """Retrieval first (the source's segments that best match the question), then the answer:
    with a ``vlm`` profile the model reads the best moments' frames and what was said there; the
    ``offline`` profile answers with those moments and quotes of what was said in them."""
    if not question.strip():
        raise ValueError("the question is empty")
    with open_searcher(data_dir) as searcher:
        return answer(searcher, find_source(searcher.index, key), question, top_k=top_k)


def answer(searcher: Searcher, source: SourceInfo, question: str, *, top_k: int = 3) -> Answer:
    """``ask`` with an open searcher (``vidscope serve`` keeps one)."""
    if not question.strip():
        raise ValueError("the question is empty")
    ids = [s.segment_id for s in searcher.index.store.segments_of_source(source.source_id)]
    moments = searcher.search_among(question, ids, top_k)
    profile = load_profile(searcher.index.data_dir)
    written = _model_answer(profile, source, question, moments) if isinstance(profile, VlmProfile) else ""
    if written:
        return Answer(question, source, written, moments, "vlm")
    # ``profile`` says who wrote the answer: a model that wrote nothing gets the offline answer.
    return Answer(question, source, _quoted_answer(question, moments), moments, "offline")


def _quoted_answer(question: str, moments: list) -> str:
    if not moments:
        return "Nothing in this source matches the question."
    lines = [f"The moments that best match “{question}”:"]
    for m in moments:
        said = f" Said there: “{m.transcript}”." if m.transcript else ""
        lines.append(f"- {clock(m.start_ns)}-{clock(m.end_ns)}: {m.description}{said}")
    return "\n".join(lines)


def _model_answer(profile: VlmProfile, source: SourceInfo, question: str, moments: list) -> str:
    from operators.media.decode import frames_between
    from operators.models.vlm import load_backend
    from operators.models.vlm_config import Prompt

    context = "\n".join(f"[{clock(m.start_ns)}-{clock(m.end_ns)}] {m.description}" for m in moments) or "(nothing matched)"
    prompt_text = (f"Question about the video {source.name}: {question}\n"
                   f"What was detected in its most relevant moments:\n{context}\n"
                   "Answer the question in one or two sentences.")
    frames, pts = (frames_between(source.uri, moments[0].start_ns, moments[0].end_ns) if moments and source.has_video
                   and "://" not in source.uri and Path(source.uri).exists() else (None, None))
    prompt = Prompt(prompt_text) if frames is None or not len(frames) else Prompt(prompt_text, frames, pts)
    written = load_backend(profile.vlm).generate([prompt])[0].strip()
    if not written:
        log.warning("the vlm gave no answer to %r: answering with the matching moments", question)
    return written

