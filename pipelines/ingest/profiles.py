"""Model profiles: which models describe the moments (DESIGN.md "Models"), chosen without code edits.

- ``Offline`` (default): the registry-packaged models only (labels, audio events, speech, MiniLM).
- ``ClipProfile``: adds a CLIP/SigLIP image embedding per segment in the ``clip`` space; queries
  are embedded there by the same model's text tower.
- ``VlmProfile``: adds a caption per segment written by a vision-language model, and lets that
  model write the summaries and answer ``vidscope ask``.

A data folder remembers the profile it was ingested with (``profile.json``), so ``search``,
``summary`` and ``ask`` use the same models without being told again. API keys are never written
there: an endpoint's key comes from ``VIDSCOPE_VLM_API_KEY``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from operators.models.clip import ClipConfig
from operators.models.vlm_config import EndpointVlm, TransformersVlm, VlmConfig

PROFILE_FILE = "profile.json"
API_KEY_ENV = "VIDSCOPE_VLM_API_KEY"


@dataclass(frozen=True, slots=True)
class Offline:
    pass


@dataclass(frozen=True, slots=True)
class ClipProfile:
    clip: ClipConfig


@dataclass(frozen=True, slots=True)
class VlmProfile:
    vlm: VlmConfig


Profile = Offline | ClipProfile | VlmProfile


def profile_name(profile: Profile) -> str:
    return {Offline: "offline", ClipProfile: "clip", VlmProfile: "vlm"}[type(profile)]


def make_profile(name: str, *, model: str | None = None, endpoint: str | None = None, device: str = "auto") -> Profile:
    """From the command line: ``--profile clip --model DIR``, ``--profile vlm --model DIR`` or
    ``--profile vlm --endpoint http://host:port/v1 [--model NAME]``."""
    if name == "offline":
        if model or endpoint:
            raise ValueError("the offline profile uses the packaged models: --model and --endpoint need --profile clip or vlm")
        return Offline()
    if name == "clip":
        if not model or endpoint:
            raise ValueError("--profile clip needs --model (a CLIP or SigLIP hub name or local folder), and no --endpoint")
        return ClipProfile(ClipConfig(model, device=device))
    if name == "vlm":
        if endpoint:
            return VlmProfile(EndpointVlm(endpoint, model=model or "default", api_key=os.environ.get(API_KEY_ENV)))
        if not model:
            raise ValueError("--profile vlm needs --model (hub name or local folder) or --endpoint (an OpenAI-compatible URL)")
        return VlmProfile(TransformersVlm(model, device=device))
    raise ValueError(f"unknown profile {name!r}: choose offline, clip or vlm")


def save_profile(data_dir: str | os.PathLike, profile: Profile) -> None:
    body: dict = {"profile": profile_name(profile)}
    if isinstance(profile, ClipProfile):
        body["clip"] = dataclasses.asdict(profile.clip)
    elif isinstance(profile, VlmProfile):
        config = dataclasses.asdict(profile.vlm)
        config.pop("api_key", None)
        body["vlm"] = {"backend": "endpoint" if isinstance(profile.vlm, EndpointVlm) else "transformers", **config}
    path = Path(data_dir) / PROFILE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=1))
    os.replace(tmp, path)


def load_profile(data_dir: str | os.PathLike) -> Profile:
    """The profile a data folder was ingested with; ``Offline`` when it never said."""
    path = Path(data_dir) / PROFILE_FILE
    if not path.exists():
        return Offline()
    body = json.loads(path.read_text())
    if body["profile"] == "clip":
        return ClipProfile(ClipConfig(**body["clip"]))
    if body["profile"] == "vlm":
        config = dict(body["vlm"])
        if config.pop("backend") == "endpoint":
            return VlmProfile(EndpointVlm(**config, api_key=os.environ.get(API_KEY_ENV)))
        return VlmProfile(TransformersVlm(**config))
    return Offline()
