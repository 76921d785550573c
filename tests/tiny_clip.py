"""Tiny random-weight CLIP and SigLIP models saved as a hub-style folder, built without network.

The folder holds what a real checkpoint holds (config, weights, image processor, tokenizer), so
``AutoModel.from_pretrained(folder)`` / ``AutoProcessor.from_pretrained(folder)`` run the same code
path as for ``openai/clip-vit-base-patch32`` or ``google/siglip-base-patch16-224``. The tokenizer is
a word-level one over a small vocabulary (built with the ``tokenizers`` library); the weights are
random, so the embeddings mean nothing: tests assert plumbing, not quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

WORDS = (
    "a photo of the cat dog cup coffee espresso woman astronaut rocket person man street car "
    "on in with and red blue green black white table sitting standing video"
).split()
HIDDEN = 32
IMAGE_SIZE = 32
PATCH = 8
MAX_TEXT_TOKENS = 16
PROJECTION_DIM = 24  # CLIP's joint space; SigLIP's is its hidden size


def _tokenizer(kind: Literal["clip", "siglip"]):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
    vocab = {token: i for i, token in enumerate([*specials, *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    if kind == "clip":  # CLIP pools the hidden state at the first <eos>: the tokenizer must add it
        core.post_processor = processors.TemplateProcessing(
            single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])])
    else:  # SigLIP pools the last position of a max_length-padded sequence, like its SentencePiece
        core.post_processor = processors.TemplateProcessing(
            single="$A <eos>", special_tokens=[("<eos>", vocab["<eos>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>",
        model_max_length=MAX_TEXT_TOKENS,
    )


def build_tiny_clip(folder: Path, kind: Literal["clip", "siglip"] = "clip") -> Path:
    """Write a tiny ``kind`` model (2 layers, hidden 32, 32 px images in 8 px patches) with its
    processor into ``folder`` and return the folder. Weights are seeded, so a rebuild is identical."""
    import torch
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, SiglipConfig,
                              SiglipImageProcessor, SiglipModel, SiglipProcessor)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(kind)
    layers = dict(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2, num_attention_heads=2)
    text = dict(layers, vocab_size=len(tokenizer), max_position_embeddings=MAX_TEXT_TOKENS,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id)
    vision = dict(layers, image_size=IMAGE_SIZE, patch_size=PATCH)
    torch.manual_seed(0)
    if kind == "clip":
        config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=PROJECTION_DIM)
        model = CLIPModel(config)
        images = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                    crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
        processor = CLIPProcessor(image_processor=images, tokenizer=tokenizer)
    elif kind == "siglip":
        config = SiglipConfig(text_config=text, vision_config=vision)
        model = SiglipModel(config)
        images = SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
        processor = SiglipProcessor(image_processor=images, tokenizer=tokenizer)
    else:
        raise ValueError(f"kind must be 'clip' or 'siglip', got {kind!r}")
    model.eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
