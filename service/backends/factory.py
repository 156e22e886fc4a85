"""Builds the configured backends. The only place the worker learns which teacher, embedder and student run."""

from __future__ import annotations

import os
from pathlib import Path

from service.config import Settings
from service.ports import Embedder, SpanTagger, Student, Teacher

PACKAGED_TEACHERS = ("smollm2-135m-instruct",)


def teacher_model_dir(settings: Settings) -> Path:
    """The folder of teacher weights: a packaged model converted once into the cache, or a folder given as is."""
    from service.backends.models import converted_model_dir, smollm2_gguf_path

    if settings.teacher.model == "smollm2-135m-instruct":
        return converted_model_dir(smollm2_gguf_path(), settings.cache_dir)
    folder = Path(settings.teacher.model)
    if not folder.is_dir():
        raise ValueError(
            f"teacher model {settings.teacher.model!r} is neither a folder nor one of {', '.join(PACKAGED_TEACHERS)}"
        )
    return folder


def make_teacher(settings: Settings) -> Teacher:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    backend = settings.teacher.backend
    if backend == "vllm_server":
        from service.backends.teacher_vllm_server import VLLMServerTeacher

        folder = teacher_model_dir(settings)
        return VLLMServerTeacher(
            settings.teacher.vllm_urls or settings.teacher.vllm_url,
            model=settings.teacher.served_model_name or str(folder),
            tokenizer_dir=folder,
        )
    if backend == "vllm_offline":
        from service.backends.teacher_vllm_offline import VLLMOfflineTeacher

        return VLLMOfflineTeacher(teacher_model_dir(settings))
    from service.backends.teacher_transformers import TransformersTeacher

    return TransformersTeacher(teacher_model_dir(settings), model_name=settings.teacher.model)


def make_embedder(settings: Settings) -> Embedder:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from service.backends.embedder_st import SentenceEmbedder

    return SentenceEmbedder(precision=settings.encoder_precision)


def load_student(settings: Settings, path: Path) -> Student:
    from service.backends.student_lora import LoraStudent

    return LoraStudent.load(path, precision=settings.encoder_precision)


def load_span_student(settings: Settings, path: Path) -> SpanTagger:
    from service.backends.span_student import SpanStudent

    return SpanStudent.load(path, precision=settings.encoder_precision)


def load_any_student(settings: Settings, path: Path) -> Student | SpanTagger:
    """The student saved in ``path``, whatever its task's kind: a span tagger for a spans task."""
    from service.backends.student_meta import StudentMeta

    if StudentMeta.from_pretrained(path).kind == "spans":
        return load_span_student(settings, path)
    return load_student(settings, path)
