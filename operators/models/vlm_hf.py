"""The transformers backend of the ``vlm`` profile: one class over the vision(-audio)-language
architectures transformers 5 ships, loaded from a hub name or a local folder.

What each architecture gets from a ``Prompt`` (``FAMILIES``; anything else in the prompt is
ignored, never an error):

- Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision (and LLaVA-Video checkpoints, which load as it),
  LLaVA-NeXT-Video: the frames as one video, with an fps taken from their timestamps.
- Qwen2.5-Omni: the frames as one video and the audio as a separate clip; only the "thinker"
  (the text model) is loaded, so no speech is generated and the talker's weights are not read.
- BLIP-2, InstructBLIP: one image, the middle frame. They are captioners of single images; feeding
  them more frames would need one caption per frame and a merge this backend does not do.
- Qwen2-Audio: the audio only.

Video models see at most ``max_frames`` frames, evenly spread (``select_frames``); audio longer
than the checkpoint's feature-extractor window (30 s for the hub's Whisper-style extractors) is cut
by it, and audio at another rate is resampled to the extractor's. A prompt without media the model
can take becomes a text-only prompt (BLIP's wrapper needs an image, so its language model answers
alone). Chat models get their processor's chat template; BLIP models get the instruction as
their model cards write it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from operators.base import move_inputs, resolve_device
from operators.models.vlm_config import Prompt, TransformersVlm

_TRUE = {"1", "ON", "YES", "TRUE"}  # what huggingface_hub accepts as "set" for HF_HUB_OFFLINE


@dataclass(frozen=True, slots=True)
class Family:
    """How one ``model_type`` is loaded and prompted. ``sees``: frames go as a video, as the
    middle frame alone, or not at all; ``hears``: the audio goes too. ``sub_config`` names the part
    of a composite checkpoint to load (Omni's text-only thinker). ``instruction`` wraps the text
    for models without a chat template. ``batched=False`` sends prompts one by one."""

    model_class: str
    sees: Literal["video", "image", "nothing"]
    hears: bool = False
    sub_config: str | None = None
    instruction: str | None = None  # None: the processor's chat template
    batched: bool = True


FAMILIES: dict[str, Family] = {
    "qwen2_vl": Family("Qwen2VLForConditionalGeneration", "video"),
    "qwen2_5_vl": Family("Qwen2_5_VLForConditionalGeneration", "video"),
    "qwen2_5_omni": Family("Qwen2_5OmniThinkerForConditionalGeneration", "video", hears=True,
                           sub_config="thinker_config"),
    "llava_onevision": Family("LlavaOnevisionForConditionalGeneration", "video"),
    "llava_next_video": Family("LlavaNextVideoForConditionalGeneration", "video"),
    "blip-2": Family("Blip2ForConditionalGeneration", "image", instruction="Question: {text} Answer:"),
    # InstructBLIP's Q-Former reads the instruction too, with absolute positions, and its processor
    # pads both tokenizers on one side: the left padding the decoder needs would shift the Q-Former.
    "instructblip": Family("InstructBlipForConditionalGeneration", "image", instruction="{text}", batched=False),
    "qwen2_audio": Family("Qwen2AudioForConditionalGeneration", "nothing", hears=True),
}


def family_of(model_type: str) -> Family:
    """The family of a checkpoint's ``model_type``; a ValueError naming the supported ones otherwise."""
    if model_type not in FAMILIES:
        raise ValueError(f"vlm: model_type {model_type!r} is not supported by the transformers backend; "
                         f"supported: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[model_type]


def select_frames(frames: np.ndarray, frame_pts_ns: np.ndarray, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_frames`` frames, evenly spread over those given: first and last included
    (the first alone for ``max_frames=1``), the rest at the nearest index, so gaps may differ by a
    frame."""
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    count = len(frames)
    if count <= max_frames:
        return frames, frame_pts_ns
    index = np.linspace(0, count - 1, max_frames).round().astype(int)
    return frames[index], frame_pts_ns[index]


def frames_per_second(frame_pts_ns: np.ndarray) -> float:
    """The mean sampling rate of the frames given; 1.0 for a single frame (its rate is then moot)."""
    if len(frame_pts_ns) < 2:
        return 1.0
    return (len(frame_pts_ns) - 1) * 1e9 / float(frame_pts_ns[-1] - frame_pts_ns[0])


def _resampled(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return audio
    from scipy.signal import resample_poly

    common = gcd(rate, target)
    return resample_poly(audio, target // common, rate // common).astype(np.float32)


class TransformersBackend:
    """``generate`` runs greedy decoding (deterministic) for up to ``max_new_tokens`` tokens and
    returns only the new text. Prompts are grouped by the media they carry (and frame count) and
    sent ``batch_size`` at a time, left-padded; InstructBLIP, and a tokenizer without a pad or eos
    token, run them one by one. Batching changes padding, not answers, up to floating-point noise.
    Weights load on the CPU and then move to the device (placing them directly needs
    ``accelerate``), so loading briefly takes the model's size in host memory."""

    def __init__(self, config: TransformersVlm) -> None:
        self.config = config
        self._model = None
        self._processor = None
        self._family: Family | None = None
        self._device = "cpu"
        self._dtype = None
        self._batch_size = 1

    def setup(self) -> None:
        """Read the checkpoint's config (an unsupported ``model_type`` fails here, before any
        weights), then load model and processor; a second call is a no-op."""
        if self._model is not None:
            return
        import torch
        import transformers
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        name = self.config.model
        local = Path(name).is_dir() or os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE
        checkpoint = transformers.AutoConfig.from_pretrained(name, local_files_only=local)
        family = family_of(checkpoint.model_type)
        device = resolve_device(self.config.device)
        dtype = self.config.dtype
        if dtype == "auto":
            cuda = device.startswith("cuda")
            dtype = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if cuda else "float32"
        self._dtype = getattr(torch, dtype)
        model_config = getattr(checkpoint, family.sub_config) if family.sub_config else checkpoint
        model = getattr(transformers, family.model_class).from_pretrained(
            name, config=model_config, dtype=self._dtype, local_files_only=local)
        processor = transformers.AutoProcessor.from_pretrained(name, local_files_only=local)
        if family.instruction is None and not processor.chat_template:
            raise ValueError(f"vlm: {name} has no chat template; the transformers backend prompts "
                             f"{checkpoint.model_type} models through it")
        tokenizer = processor.tokenizer
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        self._batch_size = self.config.batch_size if family.batched and tokenizer.pad_token is not None else 1
        self._model, self._processor, self._family, self._device = model.to(device).eval(), processor, family, device

    def generate(self, prompts: Sequence[Prompt]) -> list[str]:
        """One text per prompt, in order."""
        if self._model is None:
            raise RuntimeError("vlm: call setup() before generate()")
        groups: dict[tuple[int, bool], list[int]] = {}
        for index, prompt in enumerate(prompts):
            groups.setdefault(self._media(prompt), []).append(index)
        texts = [""] * len(prompts)
        for (frames, hears), indices in groups.items():
            for start in range(0, len(indices), self._batch_size):
                chunk = indices[start:start + self._batch_size]
                for index, text in zip(chunk, self._generate([prompts[i] for i in chunk], frames, hears)):
                    texts[index] = text
        return texts

    def _media(self, prompt: Prompt) -> tuple[int, bool]:
        """What of ``prompt`` the model takes: how many frames (0: none; prompts in one batch
        share a count, as LLaVA stacks videos) and whether the audio."""
        family = self._family
        frames = 0
        if family.sees == "video":
            frames = min(len(prompt.frames), self.config.max_frames)
        elif family.sees == "image":
            frames = min(len(prompt.frames), 1)
        hears = family.hears and prompt.audio is not None and len(prompt.audio) > 0
        return frames, hears

    def _text(self, prompt: Prompt, frames: int, hears: bool) -> str:
        family = self._family
        if family.instruction is not None:
            return family.instruction.format(text=prompt.text)
        content = [{"type": family.sees}] if frames else []
        content += [{"type": "audio"}] if hears else []
        content.append({"type": "text", "text": prompt.text})
        return self._processor.apply_chat_template([{"role": "user", "content": content}],
                                                   add_generation_prompt=True, tokenize=False)

    def _inputs(self, prompts: list[Prompt], frames: int, hears: bool) -> dict:
        import torch

        family = self._family
        media: dict[str, object] = {}
        rates: list[float] = []
        if frames and family.sees == "image":
            media["images"] = [p.frames[len(p.frames) // 2] for p in prompts]
        elif frames:
            chosen = [select_frames(p.frames, p.frame_pts_ns, self.config.max_frames) for p in prompts]
            rates = [frames_per_second(pts) for _, pts in chosen]
            media["videos"] = [list(video) for video, _ in chosen]
            media["video_metadata"] = [{"fps": rate, "total_num_frames": len(video),
                                        "frames_indices": list(range(len(video)))}
                                       for rate, (video, _) in zip(rates, chosen)]
            media["do_sample_frames"] = False
        if hears:
            target = self._processor.feature_extractor.sampling_rate
            media["audio"] = [_resampled(p.audio, p.sample_rate, target) for p in prompts]
            media["sampling_rate"] = target
        texts = [self._text(p, frames, hears) for p in prompts]
        bos = self._processor.tokenizer.bos_token
        # A template that writes <bos> itself must not get a second one from the tokenizer.
        special = not (bos and texts[0].startswith(bos))
        encoded = self._processor(text=texts, padding=True, padding_side="left", add_special_tokens=special,
                                  return_tensors="pt", **media)
        if "video_second_per_grid" in encoded:  # Qwen2.5-Omni takes one fps per call: give each video its own
            patch = self._processor.video_processor.temporal_patch_size
            encoded["video_second_per_grid"] = torch.tensor([patch / rate for rate in rates])
        return move_inputs(encoded, self._device, self._dtype)

    def _generate(self, prompts: list[Prompt], frames: int, hears: bool) -> list[str]:
        import torch

        inputs = self._inputs(prompts, frames, hears)
        model = self._model
        if self._family.sees == "image" and not frames:
            # BLIP's generate needs pixel_values; without an image its language model answers alone.
            model = model.language_model
            inputs = {key: inputs[key] for key in ("input_ids", "attention_mask")}
        tokenizer = self._processor.tokenizer
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=self.config.max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        if not model.config.get_text_config().is_encoder_decoder:  # BLIP-2 with Flan-T5 is one
            out = out[:, inputs["input_ids"].shape[1]:]  # a decoder-only model returns the prompt first
        return [text.strip() for text in tokenizer.batch_decode(out, skip_special_tokens=True)]
