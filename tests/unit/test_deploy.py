"""The deploy files would start: every setting they pass is one the service reads, the commands parse with the
CLI, the name the client asks the teacher server for is the name it serves, the volumes the service writes to are
mounted where it writes, and everything a container names (a PVC, a Secret, a ConfigMap, a healthy dependency) is
defined. Docker and a cluster are not here, so the YAML is checked against config.py and the CLI directly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import BaseModel

from service.cli import app
from service.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ADAPTERS = re.search(r"UNDERSTUDY_ADAPTERS_DIR=(\S+)", (DEPLOY / "Dockerfile").read_text())


def _setting(key: str) -> None:
    """Fail unless UNDERSTUDY_A__B names the field a.b of Settings (extra keys would be silently ignored)."""
    model: type[BaseModel] = Settings
    parts = key.removeprefix("UNDERSTUDY_").lower().split("__")
    for index, part in enumerate(parts):
        assert part in model.model_fields, f"{key}: Settings has no field {'.'.join(parts[: index + 1])}"
        annotation = model.model_fields[part].annotation
        if index < len(parts) - 1:
            assert isinstance(annotation, type) and issubclass(annotation, BaseModel), f"{key}: not a nested setting"
            model = annotation


def _parses(args: list[str]) -> None:
    """The command line parses with the CLI (options and their values), without running it."""
    assert args[0] == "understudy", args
    group = typer.main.get_command(app)
    context = group.make_context("understudy", list(args[1:]))
    command = group.get_command(context, args[1])  # type: ignore[attr-defined]
    assert command is not None, f"no command {args[1]!r}"
    command.make_context(args[1], list(args[2:]), parent=context)


def _vllm_flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def _teacher_env(env: dict[str, Any], served: list[str]) -> None:
    assert env["UNDERSTUDY_TEACHER__BACKEND"] == "vllm_server"
    assert env["UNDERSTUDY_TEACHER__SERVED_MODEL_NAME"] == _vllm_flag(served, "--served-model-name")
    assert env["UNDERSTUDY_TEACHER__MODEL"] == _vllm_flag(served, "--model"), "the tokenizer is the served folder"
    assert "--max-logprobs" in served and int(_vllm_flag(served, "--max-logprobs")) >= 128


def test_compose_passes_known_settings_and_names_the_served_model() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    served = services["vllm"]["command"].split()
    assert re.fullmatch(r"vllm/vllm-openai:v[\d.]+", services["vllm"]["image"]), "a pinned vLLM image"
    assert ADAPTERS is not None
    for name in ("api", "worker"):
        service = services[name]
        env = service["environment"]
        for key in env:
            _setting(key)
        _teacher_env(env, served)
        _parses(service["command"])
        mounts = dict(volume.split(":", 1)[::-1] for volume in service["volumes"])
        assert mounts.get(ADAPTERS.group(1)) == "adapters", f"{name}: students are shared on a volume"
        assert any(target.startswith("/models") for target in mounts), f"{name}: the teacher's tokenizer"
        for dependency, condition in service["depends_on"].items():
            assert condition == {"condition": "service_healthy"} and "healthcheck" in services[dependency]
        assert service["restart"] == "unless-stopped"
    assert services["api"]["ports"] == ["8080:8080"] and "8080" in services["api"]["command"]


def test_kubernetes_defines_what_its_pods_name_and_scales_workers_on_the_queue() -> None:
    documents = [doc for doc in yaml.safe_load_all((DEPLOY / "k8s" / "understudy.yaml").read_text()) if doc]
    by_kind: dict[str, dict[str, Any]] = {}
    for doc in documents:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    secret, teacher = by_kind["Secret"]["understudy-env"], by_kind["ConfigMap"]["understudy-teacher"]
    for key in [*secret["stringData"], *teacher["data"]]:
        if key.startswith("UNDERSTUDY_"):
            _setting(key)
    deployments = by_kind["Deployment"]
    vllm = deployments["vllm-teacher"]["spec"]["template"]["spec"]["containers"][0]
    _teacher_env(teacher["data"], vllm["args"])
    assert vllm["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert (
        teacher["data"]["UNDERSTUDY_TEACHER__VLLM_URL"] == "http://vllm-teacher:8000"
        and "vllm-teacher" in by_kind["Service"]
    )
    assert "postgres" in by_kind["StatefulSet"] and "postgres" in by_kind["Service"]
    assert "@postgres:5432/" in secret["stringData"]["UNDERSTUDY_DATABASE_URL"]
    assert ADAPTERS is not None
    for name in ("understudy-api", "understudy-worker"):
        pod = deployments[name]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        _parses(container["args"])
        sources = {ref.get("secretRef", ref.get("configMapRef"))["name"] for ref in container["envFrom"]}
        assert sources == {"understudy-env", "understudy-teacher"}
        claims = {volume["name"]: volume["persistentVolumeClaim"]["claimName"] for volume in pod["volumes"]}
        assert set(claims.values()) <= set(by_kind["PersistentVolumeClaim"])
        mounts = {mount["mountPath"]: claims[mount["name"]] for mount in container["volumeMounts"]}
        assert mounts[ADAPTERS.group(1)] == "understudy-adapters" and mounts["/models"] == "understudy-models"
        assert "livenessProbe" in container
    api = deployments["understudy-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready" and api["livenessProbe"]["httpGet"]["path"] == "/health"
    adapters = by_kind["PersistentVolumeClaim"]["understudy-adapters"]["spec"]["accessModes"]
    assert adapters == ["ReadWriteMany"], "workers write students the API reads"
    hpa = by_kind["HorizontalPodAutoscaler"]["understudy-worker"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "understudy-worker"
    assert hpa["metrics"][0]["external"]["metric"]["name"] == "understudy_jobs_queued"
