"""Tiny random-weight vision(-audio)-language models, saved like hub checkpoints.

``build_tiny(arch, folder)`` writes a model of the real architecture (config, safetensors weights)
and a working processor (tokenizer with the architecture's special tokens and chat template,
image/video processor, audio feature extractor) into ``folder``, so ``operators.models.vlm_hf`` loads it
through its real ``from_pretrained`` path. No network: the tokenizer is a word-level vocabulary
built here. Weights are seeded, so generation is deterministic; the text is gibberish and tests
assert plumbing only.

Sizes are picked so a CPU generate takes well under a second: hidden size 32, one layer per tower,
32x32 pixel vision inputs with 8x8 patches, 4-second audio windows with 32 mel bins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

ARCHITECTURES = ("qwen2_vl", "qwen2_5_vl", "qwen2_5_omni", "llava_onevision", "llava_next_video", "blip_2",
                 "instructblip", "qwen2_audio")

WORDS = ("user assistant system a an the cat dog bird car man woman is are on in at of and with to video clip "
         "frame frames audio sound music speech what happens describe this that one sentence caption question "
         "answer there here runs walks sits talks plays red green blue").split()

PIXELS = 32  # side of the square a vision tower sees
PATCH = 8
AUDIO_SECONDS = 4  # Whisper-style feature extractors pad/cut audio to this window
MEL_BINS = 32

# One transformer layer of width 32 in every tower. Text weights are drawn wider than the usual
# 0.02 so that a random model's answer depends on its input (tests tell prompts apart by it).
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
            initializer_range=0.3)
OPT = dict(model_type="opt", hidden_size=32, ffn_dim=64, num_hidden_layers=1, num_attention_heads=2,
           word_embed_proj_dim=32, init_std=0.3)
AUDIO = dict(num_mel_bins=MEL_BINS, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64, d_model=32,
             max_source_positions=AUDIO_SECONDS * 50)
# ViT-style towers (SigLIP, CLIP, BLIP) over 32x32 pixels.
VIT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=PIXELS,
           patch_size=PATCH)
# Qwen's rotary sections: half the head dimension (32 / 2 heads / 2) split over time, height, width.
MROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
QWEN_PIXELS = {"shortest_edge": PIXELS * PIXELS, "longest_edge": PIXELS * PIXELS}
QWEN_VISION = dict(patch_size=PATCH, merge_size=2, temporal_patch_size=2, size=QWEN_PIXELS)  # processors
QWEN2_TOWER = dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, patch_size=PATCH, spatial_merge_size=2,
                   temporal_patch_size=2)
# Qwen2.5's tower (VL and Omni) adds window attention (windows of 2x2 merged patches) and an output width.
QWEN2_5_TOWER = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=PATCH,
                     spatial_merge_size=2, temporal_patch_size=2, window_size=2 * PATCH * 2, fullatt_block_indexes=[0])


@dataclass(frozen=True)
class ChatFormat:
    """How a chat template renders a conversation: turn openers/closers and one placeholder string
    per media type (what the real checkpoint's template writes for ``{"type": "video"}``...)."""

    turn: str  # Jinja, with ``m`` the message
    end: str
    generation: str
    media: dict[str, str] = field(default_factory=dict)

    def template(self) -> str:
        parts = "".join(f"{{% elif c['type'] == '{kind}' %}}{text}" for kind, text in self.media.items())
        return ("{% for m in messages %}" + self.turn
                + "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
                + "{% if c['type'] == 'text' %}{{ c['text'] }}" + parts + "{% endif %}{% endfor %}{% endif %}"
                + self.end + "{% endfor %}{% if add_generation_prompt %}" + self.generation + "{% endif %}")


def chatml(**media: str) -> ChatFormat:
    return ChatFormat("<|im_start|>{{ m['role'] }}\n", "<|im_end|>\n", "<|im_start|>assistant\n", media)


QWEN_VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
QWEN_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def word_tokenizer(special: tuple[str, ...], *, named: dict[str, str] | None = None,
                   **roles: str) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over ``WORDS`` and single letters, with ``special`` tokens
    after the words (ids in the order given). ``roles`` are bos/eos/pad/unk; ``named`` are
    model-specific special tokens a processor reads as attributes (``image_token``...)."""
    vocab = {"[UNK]": 0}
    for word in (*WORDS, *"abcdefghijklmnopqrstuvwxyz.,?!:"):
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(list(special))
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", extra_special_tokens=named or {},
                                   **roles)


def ids(tokenizer: PreTrainedTokenizerFast, **tokens: str) -> dict[str, int]:
    """``ids(tok, image_token_id="<image>")`` -> ``{"image_token_id": 57}``; unknown tokens fail."""
    out = {name: tokenizer.convert_tokens_to_ids(token) for name, token in tokens.items()}
    if tokenizer.unk_token_id in out.values():
        raise ValueError(f"tiny tokenizer lacks one of {tokens}")
    return out


def decoder(tokenizer: PreTrainedTokenizerFast, **fields) -> dict:
    """A text config over ``tokenizer``'s vocabulary with its bos/eos/pad ids."""
    roles = {f"{role}_token_id": getattr(tokenizer, f"{role}_token_id") for role in ("bos", "eos", "pad")}
    return dict(fields, vocab_size=len(tokenizer), **{key: value for key, value in roles.items() if value is not None})


def whisper_features() -> transformers.WhisperFeatureExtractor:
    return transformers.WhisperFeatureExtractor(feature_size=MEL_BINS, chunk_length=AUDIO_SECONDS)


# Each builder returns (config, processor); MODEL_CLASSES names the model class.
Built = tuple[transformers.PretrainedConfig, transformers.ProcessorMixin]


def qwen_vl(arch: str) -> Built:
    """Qwen2-VL and Qwen2.5-VL: same tokens, template and processor; their vision towers differ."""
    tokenizer = word_tokenizer(QWEN_TOKENS + QWEN_VISION_TOKENS, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    chat = chatml(video="<|vision_start|><|video_pad|><|vision_end|>",
                  image="<|vision_start|><|image_pad|><|vision_end|>")
    token_ids = ids(tokenizer, image_token_id="<|image_pad|>", video_token_id="<|video_pad|>",
                    vision_start_token_id="<|vision_start|>", vision_end_token_id="<|vision_end|>")
    if arch == "qwen2_vl":
        vision, config_class, processor_class = QWEN2_TOWER, transformers.Qwen2VLConfig, transformers.Qwen2VLProcessor
    else:
        vision, config_class, processor_class = (QWEN2_5_TOWER, transformers.Qwen2_5_VLConfig,
                                                 transformers.Qwen2_5_VLProcessor)
    config = config_class(text_config=decoder(tokenizer, **TEXT, rope_parameters=MROPE), vision_config=dict(vision),
                          **token_ids)
    processor = processor_class(image_processor=transformers.Qwen2VLImageProcessor(**QWEN_VISION), tokenizer=tokenizer,
                                video_processor=transformers.Qwen2VLVideoProcessor(**QWEN_VISION),
                                chat_template=chat.template())
    return config, processor


def qwen2_5_omni(arch: str) -> Built:
    """The full Omni checkpoint (thinker + talker + token2wav, as on the hub), all tiny; the
    backend loads the thinker only."""
    named = dict(image_token="<|IMAGE|>", audio_token="<|AUDIO|>", video_token="<|VIDEO|>",
                 vision_bos_token="<|vision_bos|>", vision_eos_token="<|vision_eos|>",
                 audio_bos_token="<|audio_bos|>", audio_eos_token="<|audio_eos|>")
    tokenizer = word_tokenizer(QWEN_TOKENS + tuple(named.values()), named=named, eos_token="<|im_end|>",
                               pad_token="<|endoftext|>")
    chat = chatml(video="<|vision_bos|><|VIDEO|><|vision_eos|>", image="<|vision_bos|><|IMAGE|><|vision_eos|>",
                  audio="<|audio_bos|><|AUDIO|><|audio_eos|>")
    token_ids = ids(tokenizer, audio_token_index="<|AUDIO|>", image_token_index="<|IMAGE|>",
                    video_token_index="<|VIDEO|>", audio_start_token_id="<|audio_bos|>",
                    audio_end_token_id="<|audio_eos|>", vision_start_token_id="<|vision_bos|>",
                    vision_end_token_id="<|vision_eos|>", user_token_id="user")
    thinker = dict(
        text_config=decoder(tokenizer, **TEXT, rope_parameters=MROPE),
        vision_config=dict(QWEN2_5_TOWER),
        audio_config=dict(AUDIO, output_dim=32, n_window=50), **token_ids)
    # The talker's ids: its codec tokens sit above the thinker's vocabulary, as on the hub.
    codec = len(tokenizer)
    talker = dict(TEXT, vocab_size=codec + 4, embedding_size=32, head_dim=16, rope_parameters=MROPE,
                  tts_codec_start_token_id=codec, tts_codec_end_token_id=codec + 1, tts_codec_pad_token_id=codec + 2,
                  tts_codec_mask_token_id=codec + 3, **token_ids,
                  **ids(tokenizer, tts_text_start_token_id="<|im_start|>", tts_text_end_token_id="<|im_end|>",
                        tts_text_pad_token_id="<|endoftext|>"))
    token2wav = dict(
        dit_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, head_dim=16, emb_dim=16,
                        num_embeds=64, mel_dim=MEL_BINS, enc_emb_dim=16, enc_dim=16, enc_channels=[16, 16, 16],
                        enc_kernel_sizes=[5, 3, 1], enc_dilations=[1, 2, 1], enc_attention_channels=8,
                        enc_se_channels=8, look_ahead_layers=[0], look_backward_layers=[0]),
        bigvgan_config=dict(mel_dim=MEL_BINS, upsample_initial_channel=16, resblock_kernel_sizes=[3],
                            resblock_dilation_sizes=[[1, 3, 5]], upsample_rates=[2, 2], upsample_kernel_sizes=[4, 4]))
    config = transformers.Qwen2_5OmniConfig(thinker_config=thinker, talker_config=talker,
                                            token2wav_config=token2wav)
    processor = transformers.Qwen2_5OmniProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(**QWEN_VISION),
        video_processor=transformers.Qwen2VLVideoProcessor(**QWEN_VISION), feature_extractor=whisper_features(),
        tokenizer=tokenizer, chat_template=chat.template())
    return config, processor


def llava(arch: str) -> Built:
    """LLaVA-OneVision (SigLIP + Qwen2, ChatML) and LLaVA-NeXT-Video (CLIP + Llama, Vicuna
    ``USER: ... ASSISTANT:``): ``<image>``/``<video>`` placeholders the processor expands."""
    media = dict(video="<video>\n", image="<image>\n")
    grid = [[PIXELS, PIXELS], [PIXELS, 2 * PIXELS], [2 * PIXELS, PIXELS], [2 * PIXELS, 2 * PIXELS]]
    if arch == "llava_onevision":
        tokenizer = word_tokenizer(QWEN_TOKENS + ("<image>", "<video>"), eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
        chat = chatml(**media)
        config = transformers.LlavaOnevisionConfig(
            vision_config=dict(VIT, model_type="siglip_vision_model"),
            text_config=decoder(tokenizer, **TEXT, model_type="qwen2"),
            image_grid_pinpoints=grid, **ids(tokenizer, image_token_index="<image>", video_token_index="<video>"))
        pixels = dict(size={"height": PIXELS, "width": PIXELS})
        processor = transformers.LlavaOnevisionProcessor(
            image_processor=transformers.LlavaOnevisionImageProcessor(image_grid_pinpoints=grid, **pixels),
            tokenizer=tokenizer, video_processor=transformers.LlavaOnevisionVideoProcessor(**pixels),
            num_image_tokens=(PIXELS // PATCH) ** 2, vision_feature_select_strategy="full",
            chat_template=chat.template())
        return config, processor
    tokenizer = word_tokenizer(("<s>", "</s>", "<video>", "<image>"), bos_token="<s>", eos_token="</s>",
                               pad_token="</s>")
    chat = ChatFormat("{{ m['role'].upper() }}: ", " ", "ASSISTANT:", media)
    config = transformers.LlavaNextVideoConfig(
        vision_config=dict(VIT, model_type="clip_vision_model", projection_dim=32),
        text_config=decoder(tokenizer, **TEXT, model_type="llama", head_dim=16),
        image_grid_pinpoints=grid, **ids(tokenizer, image_token_index="<image>", video_token_index="<video>"))
    pixels = dict(size={"shortest_edge": PIXELS}, crop_size={"height": PIXELS, "width": PIXELS})
    processor = transformers.LlavaNextVideoProcessor(
        video_processor=transformers.LlavaNextVideoVideoProcessor(**pixels),
        image_processor=transformers.LlavaNextImageProcessor(image_grid_pinpoints=grid, **pixels), tokenizer=tokenizer,
        patch_size=PATCH, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=chat.template())
    return config, processor


def blip(arch: str) -> Built:
    """BLIP-2 and InstructBLIP with an OPT decoder; InstructBLIP's Q-Former also reads the
    instruction through its own (BERT-style) tokenizer. No chat template: the processor prepends
    one ``<image>`` per query token itself, and adds that token to the tokenizer."""
    tokenizer = word_tokenizer(("<pad>", "</s>"), bos_token="</s>", eos_token="</s>", pad_token="<pad>")
    image_processor = transformers.BlipImageProcessor(size={"height": PIXELS, "width": PIXELS})
    queries = 4
    if arch == "blip_2":
        processor = transformers.Blip2Processor(image_processor, tokenizer, num_query_tokens=queries)
        config_class, qformer_vocab = transformers.Blip2Config, 64
    else:
        qformer_tokenizer = word_tokenizer(("[PAD]", "[CLS]", "[SEP]"), pad_token="[PAD]", cls_token="[CLS]",
                                           sep_token="[SEP]")
        processor = transformers.InstructBlipProcessor(image_processor, tokenizer, qformer_tokenizer,
                                                       num_query_tokens=queries)
        config_class, qformer_vocab = transformers.InstructBlipConfig, len(qformer_tokenizer)
    config = config_class(
        vision_config=dict(VIT),
        qformer_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                            encoder_hidden_size=32, vocab_size=qformer_vocab, cross_attention_frequency=1),
        text_config=decoder(tokenizer, **OPT),
        num_query_tokens=queries, **ids(tokenizer, image_token_index="<image>"))
    return config, processor


def qwen2_audio(arch: str) -> Built:
    tokenizer = word_tokenizer(QWEN_TOKENS + ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"), eos_token="<|im_end|>",
                               pad_token="<|endoftext|>")
    chat = chatml(audio="Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\n")
    config = transformers.Qwen2AudioConfig(audio_config=dict(AUDIO),
                                           text_config=decoder(tokenizer, **TEXT, model_type="qwen2"),
                                           **ids(tokenizer, audio_token_index="<|AUDIO|>"))
    processor = transformers.Qwen2AudioProcessor(feature_extractor=whisper_features(), tokenizer=tokenizer,
                                                 chat_template=chat.template())
    return config, processor


BUILDERS: dict[str, Callable[[str], Built]] = {
    "qwen2_vl": qwen_vl, "qwen2_5_vl": qwen_vl, "qwen2_5_omni": qwen2_5_omni, "llava_onevision": llava,
    "llava_next_video": llava, "blip_2": blip, "instructblip": blip, "qwen2_audio": qwen2_audio,
}
# The class the hub checkpoints of each architecture are saved from.
MODEL_CLASSES = {
    "qwen2_vl": "Qwen2VLForConditionalGeneration", "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen2_5_omni": "Qwen2_5OmniForConditionalGeneration", "llava_onevision": "LlavaOnevisionForConditionalGeneration",
    "llava_next_video": "LlavaNextVideoForConditionalGeneration", "blip_2": "Blip2ForConditionalGeneration",
    "instructblip": "InstructBlipForConditionalGeneration", "qwen2_audio": "Qwen2AudioForConditionalGeneration",
}


def build_tiny(arch: str, folder: Path) -> Path:
    """Write a tiny ``arch`` model and its processor into ``folder`` (created if missing) and return
    it. Deterministic: the same arch gives the same weights."""
    if arch not in BUILDERS:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    config, processor = BUILDERS[arch](arch)
    torch.manual_seed(0)
    model = getattr(transformers, MODEL_CLASSES[arch])(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
