from pathlib import Path

import pytest

from service.backends.venvs import VenvError, cached_venv


def test_a_cached_venv_is_built_once_and_a_failed_build_is_never_marked_ready(tmp_path: Path) -> None:
    env = tmp_path / "venv-x"
    python = cached_venv(env, installs=[], check="import json")
    assert python.is_file()
    stamp = (env / ".understudy-ready").stat().st_mtime_ns
    assert cached_venv(env, installs=[], check="import json") == python
    assert (env / ".understudy-ready").stat().st_mtime_ns == stamp, "reused, not rebuilt"
    with pytest.raises(VenvError, match="exit code 3; see the build log"):
        cached_venv(tmp_path / "venv-y", installs=[], check="raise SystemExit(3)")
    assert not (tmp_path / "venv-y" / ".understudy-ready").exists()
