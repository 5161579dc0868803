"""A run killed with SIGKILL at any point is harmless: the rerun encodes no item twice, leaves
no temporary behind, and gives the metrics of a run that was never interrupted.

Each kill happens in a subprocess whose `drift.core.files.write_temporary` (what every atomic
write goes through) SIGKILLs the process once the temporary of the targeted file is written,
before it is renamed into place: the worst moment, with a complete-looking file under the wrong
name. Unpacking a model and extracting an image shard are killed the same way, mid-way. The
library itself has no test hooks.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from drift.adapters import build_adapter
from drift.cli.config import compose
from drift.core.files import FILE_MODE, temporary_name
from drift.core.records import result_path
from drift.data.images import load_webdataset
from drift.encoders.resolver import reassemble_split_zip
from drift.run import run
from drift.serving import runtime as serving
from drift.serving.export import export_adapter, verify_artifact

REPO = Path(__file__).resolve().parents[1]
CHUNK = 50  # items per committed cache shard: 340 items per model make 7 shards

# Makes the interpreter SIGKILL itself once the temporary of the `nth` write of a file whose path
# matches `pattern` (argv 1 and 2) is written; what follows it in a script then runs.
KILL_AT_WRITE = textwrap.dedent(
    """
    import fnmatch, os, signal, sys
    from drift.core import files

    pattern, nth = sys.argv[1], int(sys.argv[2])
    real, hits = files.write_temporary, []

    def write_temporary(final, write):
        tmp = real(final, write)
        if fnmatch.fnmatch(str(final), pattern):
            hits.append(final)
            if len(hits) == nth:
                os.kill(os.getpid(), signal.SIGKILL)
        return tmp

    files.write_temporary = write_temporary
    """
)
RUN = KILL_AT_WRITE + textwrap.dedent(
    """
    from drift.cli.config import compose
    from drift.run import run

    run(compose(sys.argv[3:]))
    """
)

# kill point -> (targeted file, which write of it)
POINTS = {
    "encoding": ("*/shards/*.npy", 3),  # two chunks committed, the third in flight
    "index_build": ("*.faiss", 1),
    "artifact_write": ("*/adapter.json", 1),  # weights.npz written, adapter.json in flight
    "result_write": ("*/results/*.json", 1),
}


def overrides(root: Path) -> list[str]:
    return [
        "encoder@old_encoder=synthetic_old",
        "encoder@new_encoder=synthetic_new",
        "dataset=synthetic",
        "debug=smoke",
        "logger=none",
        "adapter=procrustes",
        f"encode.chunk_size={CHUNK}",
        f"paths.results_dir={root / 'results'}",
        f"paths.cache_dir={root / 'cache'}",
    ]


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".partial"))]


def committed_items(root: Path) -> dict[str, list[str]]:
    """{model name: the item digests of every committed shard (sidecar present)}."""
    items: dict[str, list[str]] = {}
    for manifest in (root / "cache" / "embeddings").rglob("manifest.json"):
        name = json.loads(manifest.read_text())["name"]
        for sidecar in (manifest.parent / "shards").glob("*.json"):
            items.setdefault(name, []).extend(json.loads(sidecar.read_text())["digests"])
    return items


def without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k != "timings"}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{kill point: the folders of a run killed there}; the runs are killed side by side."""
    base = tmp_path_factory.mktemp("killed")
    jobs = {}
    for point, (pattern, nth) in POINTS.items():
        root = base / point
        root.mkdir()
        with (root / "output.txt").open("w") as output:
            command = [sys.executable, "-c", RUN, pattern, str(nth), *overrides(root)]
            jobs[point] = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=output)
    for point, job in jobs.items():
        job.wait(timeout=300)
        log = (base / point / "output.txt").read_text()
        assert job.returncode == -signal.SIGKILL, f"{point}: not killed there\n{log}"
    return {point: base / point for point in POINTS}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The record of the same run, never interrupted, in folders of its own."""
    return run(compose(overrides(tmp_path_factory.mktemp("clean"))))


@pytest.mark.parametrize("point", POINTS)
def test_a_killed_run_reruns_as_if_never_killed(
    point: str, killed: dict[str, Path], clean: dict
) -> None:
    root = killed[point]
    left = temporaries(root)
    assert left, "the kill left no temporary behind: it did not hit a write in flight"
    before = committed_items(root)
    if point == "encoding":  # killed with some chunks committed, not all
        assert sum(map(len, before.values())) == 2 * CHUNK

    record = run(compose(overrides(root)))

    distinct = {model: stats["encoded"] for model, stats in clean["cache"].items()}
    assert distinct == {model: stats["unique"] for model, stats in clean["cache"].items()}
    encoded_again = {
        model: len(before.get(model, [])) + stats["encoded"]
        for model, stats in record["cache"].items()
    }
    assert encoded_again == distinct  # what the killed run committed is never encoded again
    on_disk = committed_items(root)
    assert {model: len(digests) for model, digests in on_disk.items()} == distinct
    assert {model: len(set(digests)) for model, digests in on_disk.items()} == distinct
    assert temporaries(root) == []
    path = result_path(root / "results", record)
    assert path.stat().st_mode & 0o777 == FILE_MODE
    assert without_timings(json.loads(path.read_text())["metrics"]) == without_timings(
        clean["metrics"]
    )


# -- folders unpacked once: the mpnet split zip, webdataset shards ------------------------------
def run_killed(script: str, *args: str) -> None:
    """Run `script` in a fresh interpreter, which must end killed by SIGKILL."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_a_killed_re_export_leaves_no_artifact_and_the_next_export_a_whole_one(
    tmp_path: Path,
) -> None:
    """serving.json is what makes a folder an artifact: a re-export removes the old one first and
    writes the new one last, so a kill in between leaves a folder that refuses to load (not old
    metadata over new weights), and the next export removes the killed one's temporaries."""
    x_new = np.random.default_rng(0).standard_normal((50, 12)).astype(np.float32)
    adapter = build_adapter("procrustes").fit(x_new, x_new[:, :8], seed=0)
    saved, out = adapter.save(tmp_path / "adapter"), tmp_path / "artifact"
    models = {"old_model": "old-model", "new_model": "new-model"}
    export_adapter(adapter, out, **models)
    run_killed(
        KILL_AT_WRITE
        + textwrap.dedent(
            """
            import json
            from drift.adapters import load_adapter
            from drift.serving.export import export_adapter

            export_adapter(load_adapter(sys.argv[3]), sys.argv[4], **json.loads(sys.argv[5]))
            """
        ),
        "*/model.onnx",
        "1",
        str(saved),
        str(out),
        json.dumps(models),
    )
    assert temporaries(out) and not (out / serving.META_FILE).exists()
    export_adapter(adapter, out, **models)
    verify_artifact(adapter, out)
    assert temporaries(out) == []
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == dict.fromkeys(
        ["serving.json", "weights.safetensors", "model.onnx", "drift_serving.py"], FILE_MODE
    )


def test_a_killed_unpack_is_removed_by_the_next_one_and_a_live_one_kept(tmp_path: Path) -> None:
    """The mpnet zip is unpacked in a `.partial` folder beside the model cache's copy (a 354 MB
    one was once left behind by a kill): the next unpack removes a dead process's, never a live
    one's."""
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("m/modules.json", "[]")
    dest = tmp_path / "models" / "m"
    run_killed(
        """
        import os, signal, sys, zipfile
        from pathlib import Path
        from drift.encoders.resolver import reassemble_split_zip

        zipfile.ZipFile.extractall = lambda *_: os.kill(os.getpid(), signal.SIGKILL)
        reassemble_split_zip([Path(sys.argv[1])], inner="m", dest=Path(sys.argv[2]))
        """,
        str(archive),
        str(dest),
    )
    (killed,) = temporaries(dest.parent)
    assert (killed / "joined.zip").is_file()
    live = temporary_name(dest, "partial")  # this process's: still unpacking, say
    live.mkdir()
    assert reassemble_split_zip([archive], inner="m", dest=dest) == dest
    assert (dest / "modules.json").read_text() == "[]"
    assert temporaries(dest.parent) == [live]


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_killed_shard_extraction_is_removed_by_the_next_load(tmp_path: Path) -> None:
    shard = tmp_path / "shard-0.tar"
    with tarfile.open(shard, "w") as tar:
        for i in range(3):
            info = tarfile.TarInfo(f"{i}.png")
            info.size = len(data := png(80 * i))
            tar.addfile(info, io.BytesIO(data))
    spec = {"shards": str(shard), "extract_dir": str(tmp_path / "x"), "n_queries": 1}
    run_killed(  # killed with the images extracted, before they are checked and marked done
        """
        import json, os, signal, sys
        from drift.data import images

        images.check_images = lambda samples: os.kill(os.getpid(), signal.SIGKILL)
        images.load_webdataset(**json.loads(sys.argv[1]), seed=0, data_dir=".")
        """,
        json.dumps(spec),
    )
    (killed,) = temporaries(tmp_path / "x")
    assert len(list(killed.glob("*.png"))) == 3
    data = load_webdataset(**spec, seed=0, data_dir=tmp_path)
    assert len(data.corpus) + len(data.queries) == 3
    assert temporaries(tmp_path / "x") == []
