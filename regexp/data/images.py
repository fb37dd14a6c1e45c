"""Image data sets: digits as 1×8×8 images, and MNIST, Fashion-MNIST and CIFAR-10 read from
the files torchvision's data sets keep on disk.

Every image becomes one row of ``C·H·W`` features in channel-major order (``x[c·H·W + h·W + w]``
is channel ``c``'s pixel ``(h, w)``), which is how the MLP reads it and how the conv net
(:mod:`regexp.model.cnn`) unflattens it; :attr:`Table.image_shape` is ``(H, W)`` and
:attr:`Table.channels` is ``C``. Pixels are scaled to [0, 1] (``uint8 / 255``); digits keeps
scikit-learn's values (0–16).

The torchvision sets are read from ``dataset.root`` (default ``~/.cache/regexp/data``) in
torchvision's own layout, so a folder that torchvision downloaded works as it is:

- ``mnist``: ``ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``;
- ``fashion_mnist``: the same names under ``ROOT/FashionMNIST/raw/``;
- ``cifar10``: ``ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch}`` (Python pickles).

The official training and test files are concatenated (training rows first) and split by
``val_size``, ``test_size`` and ``split_seed`` like every other data set. The files are read
here (the IDX format and CIFAR's pickles), not through torchvision, so reading needs no
torchvision; ``dataset.download=true`` downloads them with torchvision when it is installed
(``pip install 'regexp[images]'``) and the network allows. Without the files, one line says
where to put them.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_ROOT = "~/.cache/regexp/data"
# IDX type codes (the third byte of the magic number) and their numpy dtypes (big-endian).
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class ImageSet:
    """Where one torchvision data set lives under ``root``, and how to read it."""

    name: str
    folder: str
    files: tuple[str, ...]
    torchvision_class: str
    shape: tuple[int, int, int]  # C, H, W


IMAGE_SETS = {
    "mnist": ImageSet(
        "mnist",
        "MNIST/raw",
        (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ),
        "MNIST",
        (1, 28, 28),
    ),
    "fashion_mnist": ImageSet(
        "fashion_mnist",
        "FashionMNIST/raw",
        (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ),
        "FashionMNIST",
        (1, 28, 28),
    ),
    "cifar10": ImageSet(
        "cifar10",
        "cifar-10-batches-py",
        (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"),
        "CIFAR10",
        (3, 32, 32),
    ),
}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST's format, optionally gzipped) as a numpy array.

    The header is two zero bytes, a type code, the number of dimensions ``d``, then ``d``
    big-endian int32 sizes; the data follow in C order.
    """
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"'{path}' is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - 4 - 4 * ndim != expected:
        raise ValueError(f"'{path}' is truncated: {len(raw)} bytes for dimensions {dims.tolist()}")
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(dims)


def files_of(name: str, root: str | Path) -> list[Path]:
    """The files of image set ``name`` under ``root``; an MNIST file may be gzipped."""
    spec = IMAGE_SETS[name]
    folder = Path(root).expanduser() / spec.folder
    out = []
    for f in spec.files:
        plain, gz = folder / f, folder / f"{f}.gz"
        out.append(plain if plain.is_file() or not gz.is_file() else gz)
    return out


def missing_message(name: str, root: str | Path, why: str = "") -> str:
    """One line: which files are missing and how to get them."""
    spec = IMAGE_SETS[name]
    folder = Path(root).expanduser() / spec.folder
    return (
        f"dataset={name}: no files under '{folder}' (expected {', '.join(spec.files)}){why}; "
        f"put torchvision's {spec.torchvision_class} files there, or set dataset.download=true "
        "with torchvision installed (pip install 'regexp[images]') and network access"
    )


def download(name: str, root: str | Path) -> None:
    """Download image set ``name`` into ``root`` with torchvision; ``ValueError`` (one line)
    when torchvision is missing or the download fails."""
    try:
        import torchvision.datasets as tvd
    except Exception as err:  # missing, or built for another torch
        raise ValueError(
            missing_message(name, root, f" and torchvision is unusable ({err})")
        ) from None
    cls = getattr(tvd, IMAGE_SETS[name].torchvision_class)
    try:
        for train in (True, False):
            cls(str(Path(root).expanduser()), train=train, download=True)
    except Exception as err:  # no network, a proxy, a full disk: one line
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            missing_message(name, root, f" and the download failed ({message})")
        ) from None


def load_image_set(name: str, root: str = DEFAULT_ROOT, download_files: bool = False):
    """``(x, y, (C, H, W))`` of image set ``name``: ``x`` [n, C·H·W] float64 in [0, 1],
    ``y`` [n] int64, the training files' rows first."""
    paths = files_of(name, root)
    if not all(p.is_file() for p in paths):
        if not download_files:
            raise ValueError(missing_message(name, root))
        download(name, root)
        paths = files_of(name, root)
    spec = IMAGE_SETS[name]
    if name == "cifar10":
        xs, ys = [], []
        for p in paths:
            with p.open("rb") as handle:
                batch = pickle.load(handle, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
        x, y = np.concatenate(xs), np.concatenate(ys)
    else:
        train_x, train_y, test_x, test_y = (read_idx(p) for p in paths)
        x = np.concatenate([train_x, test_x]).reshape(-1, int(np.prod(spec.shape)))
        y = np.concatenate([train_y, test_y]).astype(np.int64)
    if x.shape != (len(y), int(np.prod(spec.shape))):
        raise ValueError(
            f"dataset={name}: images of {x.shape[1:]} values under '{paths[0].parent}', "
            f"expected {np.prod(spec.shape)} ({'×'.join(map(str, spec.shape))})"
        )
    return x.astype(np.float64) / 255.0, y, spec.shape


def pixel_names(shape: tuple[int, int, int]) -> list[str]:
    """``pixel_r_c`` (one channel) or ``c{k}_pixel_r_c``, in channel-major order."""
    channels, height, width = shape
    names = [f"pixel_{r}_{c}" for r in range(height) for c in range(width)]
    return names if channels == 1 else [f"c{k}_{n}" for k in range(channels) for n in names]


def files_digest(name: str, root: str | Path = DEFAULT_ROOT) -> str | None:
    """sha256 over the bytes of image set ``name``'s files (in :func:`files_of` order), first
    16 hex digits; ``None`` while any file is missing. Part of ``data_id`` and of the key of
    the prepared set in :mod:`regexp.data.cache`."""
    paths = files_of(name, root)
    if not all(p.is_file() for p in paths):
        return None
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
