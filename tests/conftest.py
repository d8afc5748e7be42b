import os

import pytest
import torch

# Tiny models run fastest single-threaded, and a busy 2-core CI box must not oversubscribe.
torch.set_num_threads(1)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def tiny():
    """A tiny Gemma-3-architecture model (random weights) and its character tokenizer."""
    from tiny import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    return tiny_model(tokenizer), tokenizer
