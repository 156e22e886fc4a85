"""The student network (MiniLM encoder, mean pooling, linear head) and the layout of its saved folder."""

from __future__ import annotations

import torch
from safetensors.torch import load_file, save_file

from service.backends.minilm import mean_pool

ADAPTER_DIR = "adapter"
"""peft's adapter folder (adapter_config.json, adapter_model.safetensors)."""
HEAD_FILE = "head.safetensors"
MAX_LENGTH = 128
"""Tokens kept per text; short texts (SMS, questions, reviews' first lines) fit."""
LORA_TARGET_MODULES = ("query", "value")


class MiniLMClassifier(torch.nn.Module):
    """Sentence embedding (mean of token vectors, as sentence-transformers pools MiniLM) into a linear head."""

    def __init__(self, encoder: torch.nn.Module, hidden_size: int, n_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(hidden_size, n_labels)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.dropout(self.pooled(input_ids, attention_mask)))
        return logits


def save_head(head: torch.nn.Linear, path: str) -> None:
    save_file({"weight": head.weight.detach().contiguous(), "bias": head.bias.detach().contiguous()}, path)


def load_head(head: torch.nn.Linear, path: str) -> None:
    tensors = load_file(path)
    with torch.no_grad():
        head.weight.copy_(tensors["weight"])
        head.bias.copy_(tensors["bias"])
