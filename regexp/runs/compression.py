"""``regexp compress RUN_DIR``: a finished run's thresholded network compressed into a
smaller dense one (:func:`regexp.model.compress.compress_model`), checked and measured.

Writes into the run directory:

- ``compressed.pt``: :func:`regexp.model.compress.state` of the compressed network, plus the
  run's ``config_id`` and ``data_id`` (load it with :func:`load_compressed`);
- ``compression.csv``: one row per model (``thresholded``, the run's ``model.pt``, and
  ``compressed``) with ``params`` (weights and biases), ``file_bytes`` (the file on disk),
  ``state_bytes`` (the state dict alone, serialized by ``torch.save``), the inference latency
  in microseconds at batch 1 and 256 (``latency_b1_us``, ``latency_b256_us``: the median of
  :class:`torch.utils.benchmark.Timer`'s repeated measurements, one thread) and
  ``max_abs_diff`` (the largest ``|compressed(x) - thresholded(x)|`` over the test rows'
  outputs: 0 for the thresholded model itself).

Nothing is written unless the outputs agree within :data:`TOLERANCE` on every test row.
No TorchScript or ONNX file is written: ``compressed.pt`` loads in plain PyTorch with
``weights_only=True``, and ``torch.export``/ONNX of a three-layer MLP add a dependency
without adding speed on CPU.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from regexp.data.prepare import load_dataset
from regexp.io.atomic import atomic_path, write_csv
from regexp.model.build import load_model
from regexp.model.compress import CompressedNet, compress_model, from_state, params, state

log = logging.getLogger(__name__)

TOLERANCE = 1e-5
COMPRESSED_FILE = "compressed.pt"
COMPRESSION_FILE = "compression.csv"
COLUMNS = [
    "model",
    "params",
    "file_bytes",
    "state_bytes",
    "latency_b1_us",
    "latency_b256_us",
    "max_abs_diff",
]


def _state_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def latency_us(model: nn.Module, x: torch.Tensor) -> float:
    """Median seconds per ``model(x)`` call × 1e6, on one thread, without autograd."""
    from torch.utils import benchmark

    with torch.inference_mode():
        timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=1)
        return timer.blocked_autorange(min_run_time=0.2).median * 1e6


def compress(run_dir: str | Path) -> pd.DataFrame:
    """Compress the model of the finished run in ``run_dir``; returns ``compression.csv``
    (``regexp.compress``; ``regexp compress RUN_DIR`` on the command line).

    Raises ``ValueError`` (one line) when the run has no ``model.pt``, is not ok, or when the
    compressed outputs differ from the thresholded ones by more than :data:`TOLERANCE` on a
    test row (then nothing is written).
    """
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "model.pt"
    if not ckpt_path.is_file():
        raise ValueError(f"'{run_dir}' holds no model.pt (expected a finished run directory)")
    try:
        model, cfg = load_model(ckpt_path)
    except Exception as err:  # a truncated or foreign file: one line, not a traceback
        raise ValueError(f"'{ckpt_path}' could not be read as a regexp checkpoint: {err}") from None
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if ckpt.get("metrics", {}).get("status", "ok") != "ok":
        raise ValueError(f"'{run_dir}' is not an ok run (status {ckpt['metrics']['status']})")
    compressed = compress_model(model)
    data = load_dataset(**cfg["dataset"])
    x = data.x_test.to(torch.float32)
    with torch.inference_mode():
        diff = float((compressed.forward_full(x) - model(x)).abs().max())
    if not diff <= TOLERANCE:
        raise ValueError(
            f"'{run_dir}': compressed outputs differ by {diff:.3g} > {TOLERANCE:g} on the "
            "test rows; nothing written"
        )
    extra = {k: ckpt[k] for k in ("config_id", "data_id") if k in ckpt}
    target = run_dir / COMPRESSED_FILE
    with atomic_path(target) as tmp:
        torch.save(state(compressed, extra), tmp)
    kept = x.index_select(1, compressed.kept_inputs)
    rows = [
        _row("thresholded", model, ckpt_path, x, 0.0),
        _row("compressed", compressed, target, kept, diff),
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    write_csv(run_dir / COMPRESSION_FILE, frame)
    return frame


def compressed_columns(run_dir: Path) -> dict:
    """:func:`compress` for a run being written (config key ``compress: true``): the
    ``compressed_*`` columns its ``metrics.csv`` gains, or ``compress_error`` (one line)
    when compression refused; the run stays ok either way."""
    try:
        after = compress(run_dir).set_index("model").loc["compressed"]
    except ValueError as err:
        log.warning("%s", err)
        return {"compress_error": str(err)}
    return {
        "compressed_params": int(after["params"]),
        "compressed_latency_b1_us": float(after["latency_b1_us"]),
        "compressed_latency_b256_us": float(after["latency_b256_us"]),
    }


def _row(name: str, model: nn.Module, path: Path, x: torch.Tensor, diff: float) -> dict:
    one, batch = x[:1], x[:256] if len(x) >= 256 else x.repeat(256 // len(x) + 1, 1)[:256]
    return {
        "model": name,
        "params": params(model),
        "file_bytes": path.stat().st_size,
        "state_bytes": _state_bytes(model),
        "latency_b1_us": round(latency_us(model, one), 2),
        "latency_b256_us": round(latency_us(model, batch), 2),
        "max_abs_diff": diff,
    }


def load_compressed(path: str | Path) -> CompressedNet:
    """The :class:`CompressedNet` saved in ``compressed.pt`` (in eval mode)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return from_state(ckpt)
