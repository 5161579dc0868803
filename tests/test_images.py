"""Image data and image-model upgrades: loaders on tiny folders and shards made here, real
EfficientNet features on real photos, random-weight CLIP towers, and end-to-end image runs.

The photos are crops of the two photographs matplotlib ships (Grace Hopper's portrait and a
gift box), so no test needs the offline image sets of scripts/build_offline_images.py.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from matplotlib.cbook import get_sample_data
from PIL import Image

from drift.adapters.base import load_adapter
from drift.cli.config import compose
from drift.core.errors import ConfigError, DataError, ImageReadError
from drift.data import load_data
from drift.data.images import MARKER, load_image_folder, load_webdataset
from drift.encoders import build_encoder
from drift.experiment.stages import RunContext, load_run_data
from drift.run import run

PHOTOS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4"/></svg>'


def sample_photo(name: str) -> Path:
    return Path(get_sample_data(name, asfileobj=False))


def photo(name: str) -> Image.Image:
    with Image.open(sample_photo(name)) as img:
        return img.convert("RGB")


def crops(n: int) -> list[Image.Image]:
    """`n` distinct real-photo crops (size and position vary), alternating the two photos."""
    sources = [photo(name) for name in PHOTOS]
    out = []
    for i in range(n):
        img = sources[i % 2]
        w, h = img.size
        side = int(min(w, h) * (0.5 + 0.4 * ((i * 7) % 10) / 10))
        x, y = (i * 37) % (w - side + 1), (i * 53) % (h - side + 1)
        out.append(img.crop((x, y, x + side, y + side)).resize((96, 96)))
    return out


def jpeg(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_folder(root: Path, n: int = 8) -> Path:
    """n photos in two folders with captions (two share one), plus a corrupt JPEG, a truncated
    PNG, an SVG, a byte-identical copy and an uncaptioned photo."""
    for i, img in enumerate(crops(n)):
        folder = root / ("people" if i % 2 == 0 else "boxes")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"p{i}.jpg").write_bytes(jpeg(img))
        caption = "A gift box." if i in (1, 3) else f"Photo number {i}."
        if i == 5:
            (folder / f"p{i}.json").write_text(json.dumps({"caption": caption}))
        else:
            (folder / f"p{i}.txt").write_text(caption + "\n")
    (root / "people" / "broken.jpg").write_bytes(b"this is not a JPEG")
    png = io.BytesIO()
    crops(1)[0].save(png, format="PNG")
    (root / "boxes" / "truncated.png").write_bytes(png.getvalue()[:200])
    (root / "boxes" / "vector.svg").write_bytes(SVG)
    (root / "people" / "z_copy.jpg").write_bytes((root / "people" / "p0.jpg").read_bytes())
    (root / "people" / "uncaptioned.jpg").write_bytes(jpeg(photo(PHOTOS[0]).resize((64, 80))))
    return root


# -- loaders -----------------------------------------------------------------------------------
def test_folder_holds_out_query_images_and_counts_what_it_skips(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    data = load_image_folder(path=root, n_queries=3, seed=0, data_dir=tmp_path)
    assert (data.corpus_modality, data.query_modality, data.qrels) == ("image", "image", None)
    assert len(data.corpus) + len(data.queries) == 9  # 8 photos + the uncaptioned one
    assert not set(data.corpus) & set(data.queries)
    assert all(Path(p).is_file() for p in data.corpus + data.queries)
    meta = data.summary()
    assert meta["skipped"] == {"duplicate": 1, "svg": 1, "unreadable": 2}
    assert any("broken.jpg" in e for e in meta["skipped_examples"]["unreadable"])
    assert meta["n_samples_found"] == 13 and meta["n_captioned"] == 8
    again = load_image_folder(path=root, n_queries=3, seed=0, data_dir=tmp_path)
    assert again.query_ids == data.query_ids and again.revision == data.revision
    other = [load_image_folder(path=root, n_queries=3, seed=s, data_dir=tmp_path) for s in (1, 2)]
    assert any(o.query_ids != data.query_ids for o in other)


def test_folder_labels_and_caption_queries(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    labelled = load_image_folder(path=root, n_queries=2, labels="folder", seed=0, data_dir=tmp_path)
    for qid, rel in labelled.qrels.items():
        assert {d.split("/")[0] for d in rel} == {qid.split("/")[0]}
    captions = load_data(
        {"type": "image_folder", "path": "imgs", "queries": "caption", "n_queries": 50},
        seed=0,
        data_dir=tmp_path,
    )
    assert captions.query_modality == "text" and len(captions.corpus) == 9
    assert len(captions.queries) == 7  # distinct captions; "A gift box." names two images
    qid = captions.query_ids[captions.queries.index("A gift box.")]
    assert set(captions.qrels[qid]) == {"boxes/p1.jpg", "boxes/p3.jpg"}
    assert "Photo number 5." in captions.queries  # read from p5.json


def test_strict_folder_and_missing_folder_are_clear_errors(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs")
    with pytest.raises(ImageReadError, match="strict: false"):
        load_image_folder(path=root, strict=True, n_queries=2, seed=0, data_dir=tmp_path)
    with pytest.raises(DataError, match="does not exist; build it with: python scripts/x.py"):
        load_image_folder(
            path="nowhere",
            missing_hint="build it with: python scripts/x.py",
            seed=0,
            data_dir=tmp_path,
        )
    with pytest.raises(DataError, match="would leave no corpus"):
        load_image_folder(path=root, n_queries=9, seed=0, data_dir=tmp_path)
    with pytest.raises(ConfigError, match="labels apply to image queries only"):
        load_image_folder(path=root, queries="caption", labels="folder", seed=0, data_dir=tmp_path)


def make_shard(path: Path) -> Path:
    """A webdataset shard as img2dataset writes one, with a corrupt, an SVG-only and an
    image-less sample."""
    members: list[tuple[str, bytes]] = []
    for i, img in enumerate(crops(6)):
        members.append((f"{i:09d}.jpg", jpeg(img)))
        if i % 2:
            members.append((f"{i:09d}.json", json.dumps({"caption": f"shard photo {i}"}).encode()))
        else:
            members.append((f"{i:09d}.txt", f"shard photo {i}".encode()))
    members += [
        ("000000006.jpg", b"\xff\xd8\xff\xe0 truncated"),
        ("000000006.txt", b"a corrupt one"),
        ("000000007.svg", SVG),
        ("000000008.txt", b"a caption without an image"),
    ]
    with tarfile.open(path, "w") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_webdataset_shard_is_extracted_once_and_counts_what_it_skips(tmp_path: Path) -> None:
    make_shard(tmp_path / "shard-00000.tar")
    spec = {"shards": "shard-*.tar", "extract_dir": tmp_path / "x", "n_queries": 2}
    data = load_webdataset(**spec, seed=0, data_dir=tmp_path)
    assert len(data.corpus) == 4 and len(data.queries) == 2
    assert data.corpus_ids[0].startswith("shard-00000/")
    assert data.summary()["skipped"] == {"no_image": 1, "svg": 1, "unreadable": 1}
    (marker,) = (tmp_path / "x").glob(f"*/{MARKER}")
    stamp = marker.stat().st_mtime_ns
    captions = load_webdataset(
        **{**spec, "queries": "caption", "n_queries": 50}, seed=0, data_dir=tmp_path
    )
    assert marker.stat().st_mtime_ns == stamp  # read from the marker, not extracted again
    assert sorted(captions.queries)[:2] == ["shard photo 0", "shard photo 1"]  # txt and json
    with pytest.raises(ImageReadError):
        load_webdataset(**spec, strict=True, seed=0, data_dir=tmp_path)
    with pytest.raises(DataError, match="no webdataset shard matches"):
        load_webdataset(**{**spec, "shards": "none-*.tar"}, seed=0, data_dir=tmp_path)


# -- encoders ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photo_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in PHOTOS:
        target = folder / name
        target.write_bytes(sample_photo(name).read_bytes())
        paths.append(str(target))
    return paths


@pytest.mark.parametrize("tower", ["image", "text"])
def test_open_clip_random_towers_give_unit_vectors_of_the_model_dim(
    tower: str, photo_files: list[str]
) -> None:
    encoder = build_encoder(
        {"type": "open_clip", "architecture": "ViT-S-32", "pretrained": None, "tower": tower},
        device="cpu",
    )
    items = photo_files if tower == "image" else ["a portrait of a woman", "a blue gift box"]
    x = encoder.encode(items)
    assert x.shape == (2, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert encoder.real_weights is False and encoder.modality == tower


def test_efficientnet_pair_gives_1280_d_features_of_real_photos(photo_files: list[str]) -> None:
    features = {}
    for model_id in ("efficientnet-lite0", "efficientnet-lite2"):
        encoder = build_encoder(
            {"type": "efficientnet_lite", "model_id": model_id}, device="cpu", offline=True
        )
        assert encoder.real_weights and encoder.dim == 1280
        features[model_id] = encoder.encode(photo_files)
        assert features[model_id].shape == (2, 1280)
        np.testing.assert_allclose(np.linalg.norm(features[model_id], axis=1), 1.0, atol=1e-5)
        # real ImageNet features tell a portrait from a gift box
        assert features[model_id][0] @ features[model_id][1] < 0.9
    assert not np.allclose(features["efficientnet-lite0"], features["efficientnet-lite2"])


# -- end to end --------------------------------------------------------------------------------
def run_overrides(tmp: Path, *extra: str) -> list[str]:
    return [
        "debug=smoke",
        "logger=none",
        f"paths.results_dir={tmp / 'results'}",
        f"paths.cache_dir={tmp / 'cache'}",
        "dataset=image_folder",
        f"dataset.path={tmp / 'imgs'}",
        *extra,
    ]


def test_efficientnet_image_run_writes_a_result_file(tmp_path: Path) -> None:
    """The offline real-weights upgrade (experiment=image_efficientnet) on real photo crops."""
    make_folder(tmp_path / "imgs", n=24)
    overrides = ["experiment=image_efficientnet", "dataset.n_queries=5", "dataset.labels=folder"]
    record = run(compose(run_overrides(tmp_path, *overrides)))
    (path,) = (tmp_path / "results").rglob("*.json")
    on_disk = json.loads(path.read_text())
    assert on_disk["config_hash"] == record["config_hash"] and on_disk["real_weights"] is True
    assert on_disk["models"]["old"]["name"] == "efficientnet-lite0"
    assert on_disk["models"]["new"]["dim"] == 1280
    assert on_disk["query_models"] == {"old": None, "new": None}
    assert on_disk["dataset"]["skipped"] == {"duplicate": 1, "svg": 1, "unreadable": 2}
    assert (on_disk["dataset"]["n_corpus"], on_disk["dataset"]["n_queries"]) == (20, 5)
    protocols = on_disk["metrics"]["protocols"]
    assert set(protocols) == {"knn", "qrels"}
    knn = protocols["knn"]["strategies"]
    assert knn["full_reindex"]["metrics"]["recall@10"]["mean"] == pytest.approx(1.0)
    # Recomputed outside the pipeline from the same inputs: the run's images encoded again, the
    # saved Procrustes map, numpy's exact top 10 (the run's HNSW over 20 images searches them all).
    _, data = load_run_data(RunContext.from_config(record["config"]))
    old, new = (
        build_encoder(record["config"][f"{side}_encoder"], device="cpu", offline=True)
        for side in ("old", "new")
    )
    x_old, x_new, q_new = old.encode(data.corpus), new.encode(data.corpus), new.encode(data.queries)
    mapped = load_adapter(record["artifacts"]["procrustes"]).transform(q_new)
    found, truth = (
        np.argsort(-(q @ x.T), axis=1)[:, :10] for q, x in ((mapped, x_old), (q_new, x_new))
    )
    expected = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert knn["adapter/procrustes"]["metrics"]["recall@10"]["mean"] == pytest.approx(expected)
    assert "misaligned" in knn  # Lite0 and Lite2 are both 1280-d


def test_caption_queries_run_through_clip_text_towers(tmp_path: Path) -> None:
    """Text -> image: captions through the text towers, the adapter fitted on image pairs."""
    make_folder(tmp_path / "imgs", n=16)
    random_clip = "encoder@{side}=clip_vit_s32_random_image"
    overrides = [
        random_clip.format(side="old_encoder"),
        random_clip.format(side="new_encoder"),
        "new_encoder.seed=1",
        "+" + random_clip.format(side="old_query_encoder"),
        "old_query_encoder.tower=text",
        "+" + random_clip.format(side="new_query_encoder"),
        "new_query_encoder.tower=text",
        "new_query_encoder.seed=1",
        "adapter.exclude_judged=false",  # every image is its own caption's answer
        "dataset.queries=caption",
        "adapter=procrustes",
    ]
    record = run(compose(run_overrides(tmp_path, *overrides)))
    assert record["real_weights"] is False
    assert record["query_models"]["new"]["modality"] == "text"
    assert record["models"]["new"]["modality"] == "image"
    assert record["dataset"]["query_modality"] == "text" and record["dataset"]["n_queries"] == 15
    qrels = record["metrics"]["protocols"]["qrels"]["strategies"]
    assert "adapter/procrustes" in qrels
    assert record["pairs"]["n_train"] + record["pairs"]["n_val"] <= 17  # corpus images only

    without_towers = overrides[:3] + overrides[-3:]
    with pytest.raises(DataError, match="set old_query_encoder to a text encoder"):
        run(compose(run_overrides(tmp_path, *without_towers)))
