"""Tokenisation shared by the teachers: counting, token-aware truncation, and the prompt/label boundary.

Both the in-process scorer and the vLLM client tokenise here, so they score the very same token ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from service.ports import Generation

# A token is rarely longer than this many characters; texts are cut to max_tokens * this before
# tokenising so a 1 MB input costs no more than a short one.
_MAX_CHARS_PER_TOKEN = 32


class TeacherTokenizer:
    """The model's tokenizer with the operations the Teacher protocol needs."""

    def __init__(self, model_dir: Path) -> None:
        self._tokenizer: Any = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)

    def encode(self, text: str) -> list[int]:
        # No BOS/EOS added: templates spell out any special tokens they want.
        ids: list[int] = self._tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """Every string the tokenizer reads as one control token: its named special tokens and the added tokens
        marked special (SmolLM2 has <|im_start|> but also <filename>, <gh_stars> and more)."""
        added = [token.content for token in self._tokenizer.added_tokens_decoder.values() if token.special]
        return tuple(sorted({*self._tokenizer.all_special_tokens, *added}))

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """The longest prefix of text within max_tokens tokens (cut on a token boundary), and whether it was cut."""
        if max_tokens <= 0:
            return "", bool(text)
        head = text[: max_tokens * _MAX_CHARS_PER_TOKEN]
        encoded = self._tokenizer(head, add_special_tokens=False, return_offsets_mapping=True)
        offsets: list[tuple[int, int]] = encoded["offset_mapping"]
        if len(offsets) <= max_tokens:
            return head, len(head) < len(text)
        return head[: offsets[max_tokens - 1][1]], True

    @property
    def hf(self) -> Any:
        """The transformers tokenizer itself (the in-process JSON constraint reads its vocabulary)."""
        return self._tokenizer

    @property
    def eos_token_id(self) -> int:
        return int(self._tokenizer.eos_token_id)

    def generation(self, tokens: Sequence[int], logprobs: Sequence[float], *, finished: bool) -> Generation:
        """A generated answer from its token ids and their log-probabilities, a closing end-of-text token left out
        (vLLM reports it; the text ends before it)."""
        if tokens and tokens[-1] == self.eos_token_id:
            tokens, logprobs = tokens[:-1], logprobs[:-1]
        text, ends = self.decode(tokens)
        return Generation(text=text, token_ends=ends, token_logprobs=tuple(logprobs), finished=finished)

    def decode(self, ids: Sequence[int]) -> tuple[str, tuple[int, ...]]:
        """The text of generated token ids and, per token, the offset in it where that token ends (decoding each
        prefix: a token that ends inside a character ends where the character does)."""
        text: str = self._tokenizer.decode(list(ids), skip_special_tokens=True)
        ends: list[int] = []
        for count in range(1, len(ids) + 1):
            prefix: str = self._tokenizer.decode(list(ids[:count]), skip_special_tokens=True)
            ends.append(min(len(prefix.rstrip("\ufffd")), len(text)) if count < len(ids) else len(text))
        return text, tuple(max(ends[: i + 1]) for i in range(len(ends)))

    def encode_request(self, prompt: str, continuations: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        """Token ids of the prompt and of each continuation, as the model would read prompt + continuation.

        A continuation is the tail of tokenize(prompt + continuation) when the prompt's tokens are a
        prefix of it (the usual case: templates end on "Label:" and labels start with a space). If a
        token would straddle the boundary, the continuation is tokenised on its own instead, so that
        the prompt's tokens, and any cache of them, stay shared by all labels.
        """
        prompt_ids = self.encode(prompt)
        cut = len(prompt_ids)
        continuation_ids: list[list[int]] = []
        for continuation in continuations:
            full = self.encode(prompt + continuation)
            if full[:cut] == prompt_ids and len(full) > cut:
                continuation_ids.append(full[cut:])
            else:
                continuation_ids.append(self.encode(continuation))
            if not continuation_ids[-1]:
                raise ValueError(f"continuation {continuation!r} has no tokens")
        return prompt_ids, continuation_ids


NextTokenLogprobs = Callable[[list[list[int]]], list[dict[int, float]]]
"""For each prompt (token ids), the log-probabilities of the label tokens as the next token."""


def score_by_next_token(
    encoded: Sequence[tuple[list[int], list[list[int]]]], next_token_logprobs: NextTokenLogprobs
) -> list[list[float]]:
    """Whole-label log-likelihoods from next-token log-probs: one call for all prompts, one for the rest.

    The first call gives every label's first token after each prompt. The second covers each label's
    later tokens, with the prompt plus that label's earlier tokens as context; a server with prefix
    caching reuses the prompts computed by the first call. Labels sharing leading tokens share contexts.
    """
    first = next_token_logprobs([prompt for prompt, _ in encoded])
    scores = [[first[i][ids[0]] for ids in labels] for i, (_, labels) in enumerate(encoded)]
    contexts: dict[tuple[int, ...], int] = {}
    for prompt, labels in encoded:
        for ids in labels:
            for t in range(1, len(ids)):
                contexts.setdefault(tuple(prompt + ids[:t]), len(contexts))
    if not contexts:
        return scores
    later = next_token_logprobs([list(context) for context in contexts])
    for i, (prompt, labels) in enumerate(encoded):
        for j, ids in enumerate(labels):
            for t in range(1, len(ids)):
                scores[i][j] += later[contexts[tuple(prompt + ids[:t])]][ids[t]]
    return scores
