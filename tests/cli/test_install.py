"""Issue 19: the package installs anywhere: onnxruntime-gpu where it has wheels, onnxruntime elsewhere;
two onnxruntime distributions in one environment are reported once."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from convrewrite import runtime

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
PLATFORMS = {
    "linux-x86_64": {"platform_system": "Linux", "platform_machine": "x86_64", "sys_platform": "linux"},
    "windows-amd64": {"platform_system": "Windows", "platform_machine": "AMD64", "sys_platform": "win32"},
    "macos-arm64": {"platform_system": "Darwin", "platform_machine": "arm64", "sys_platform": "darwin"},
    "macos-x86_64": {"platform_system": "Darwin", "platform_machine": "x86_64", "sys_platform": "darwin"},
    "linux-aarch64": {"platform_system": "Linux", "platform_machine": "aarch64", "sys_platform": "linux"},
}


def dependencies(platform: str) -> set[str]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    env = PLATFORMS[platform]
    return {r.name for r in map(Requirement, deps) if r.marker is None or r.marker.evaluate(env)}


@pytest.mark.parametrize("platform, runtime_package", [
    ("linux-x86_64", "onnxruntime-gpu"), ("windows-amd64", "onnxruntime-gpu"),
    ("macos-arm64", "onnxruntime"), ("macos-x86_64", "onnxruntime"), ("linux-aarch64", "onnxruntime"),
])
def test_exactly_one_onnxruntime_per_platform(platform, runtime_package):
    deps = dependencies(platform)
    assert {d for d in deps if d.startswith("onnxruntime")} == {runtime_package}
    assert {"onnx", "numpy", "click"} <= deps


def test_two_distributions_together_are_reported(monkeypatch):
    from importlib import metadata

    versions = {"onnxruntime": "1.31.1", "onnxruntime-gpu": "1.31.1"}

    def version(name):
        if name in versions:
            return versions[name]
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", version)
    runtime.distribution_conflict.cache_clear()
    try:
        text = runtime.distribution_conflict()
        assert "onnxruntime 1.31.1 and onnxruntime-gpu 1.31.1 are installed together" in text
        versions.pop("onnxruntime")
        runtime.distribution_conflict.cache_clear()
        assert runtime.distribution_conflict() is None
    finally:
        runtime.distribution_conflict.cache_clear()
