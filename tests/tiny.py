"""A tiny Gemma-3-architecture model and a character-level tokenizer, built from a config:
random weights, offline, fast. Shared by the training tests."""

from __future__ import annotations

import string

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

from phasegrpo.data.prompts import BASE_MODEL_CHAT_TEMPLATE

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    characters = sorted(set(string.printable))
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + characters)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    tokenizer.chat_template = BASE_MODEL_CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def tiny_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> Gemma3ForCausalLM:
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=2048,
        sliding_window=64, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    return Gemma3ForCausalLM(config).eval()


def scripted_model(tokenizer: PreTrainedTokenizerFast, next_character: dict[str, str], otherwise: str,
                   confidence: float = 12.0) -> Gemma3ForCausalLM:
    """A tiny Gemma-3 whose next token depends only on the current one (`next_character`, else
    `otherwise`), by its weights: the layers add nothing to the residual stream (zero output
    projections), each embedding is a one-hot code and the untied head maps it to its successor's
    logit (`confidence`, all others 0). Every generation path sees the same real model."""
    vocab_size = len(tokenizer)
    config = Gemma3TextConfig(
        vocab_size=vocab_size, hidden_size=vocab_size, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=2048,
        sliding_window=64, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False,
    )
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                parameter.zero_()
        model.model.embed_tokens.weight.copy_(torch.eye(vocab_size))
        head = torch.zeros(vocab_size, vocab_size)
        for token in range(vocab_size):
            successor = next_character.get(tokenizer.convert_ids_to_tokens(token), otherwise)
            # The normed one-hot code is sqrt(hidden) at its own position.
            head[tokenizer.convert_tokens_to_ids(successor), token] = confidence / vocab_size**0.5
        model.lm_head.weight.copy_(head)
    return model
