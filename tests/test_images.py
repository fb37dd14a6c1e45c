"""Image data sets (regexp.data.images) read from small files written here in the formats
torchvision keeps on disk, and the conv net (regexp.model.cnn) counted by hand."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from torch import nn

from regexp.data import images
from regexp.data.prepare import load_dataset
from regexp.model.build import build_model, load_model
from regexp.model.cnn import cnn
from regexp.results.identity import data_id


def _idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array, written with struct (independently of read_idx)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">i", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root, folder="MNIST/raw", n_train=60, n_test=20, gz=False, seed=0):
    """Files like torchvision's MNIST download: two images and two label files per split."""
    rng = np.random.default_rng(seed)
    raw = root / folder
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 10,
    }
    for name, array in arrays.items():
        data = _idx_bytes(array)
        if gz:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (raw / name).write_bytes(data)
    return arrays


def write_cifar(root, per_batch=12, seed=0):
    """CIFAR-10's python batches: dicts of b"data" [n, 3072] uint8 and b"labels"."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
        batches[name] = batch
    return batches


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_files_are_read_pixel_for_pixel(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    x, y, shape = images.load_image_set("mnist", str(tmp_path))
    assert shape == (1, 28, 28)
    expected = np.concatenate(
        [arrays["train-images-idx3-ubyte"], arrays["t10k-images-idx3-ubyte"]]
    ).reshape(80, 784)
    np.testing.assert_array_equal(x, expected / 255.0)
    np.testing.assert_array_equal(y, np.r_[np.arange(60) % 10, np.arange(20) % 10])


def test_cifar_batches_are_read_channel_major(tmp_path):
    batches = write_cifar(tmp_path)
    x, y, shape = images.load_image_set("cifar10", str(tmp_path))
    assert shape == (3, 32, 32) and x.shape == (72, 3072)
    first = batches["data_batch_1"][b"data"][0]
    # Row 0, channel 1 (green), pixel (2, 5): CIFAR's own layout, R then G then B planes.
    assert x[0, 1 * 1024 + 2 * 32 + 5] == first[1024 + 2 * 32 + 5] / 255.0
    assert y[-1] == batches["test_batch"][b"labels"][-1]
    assert images.pixel_names(shape)[1024 + 2 * 32 + 5] == "c1_pixel_2_5"


def test_a_truncated_or_foreign_idx_file_is_one_line(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "MNIST/raw/train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="is truncated"):
        images.load_image_set("mnist", str(tmp_path))
    path.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="not an IDX file"):
        images.load_image_set("mnist", str(tmp_path))


@pytest.mark.slow
def test_missing_files_are_one_line_naming_the_folder(regexp_cli, tmp_path):
    proc = regexp_cli(
        "train", "dataset=fashion_mnist", f"dataset.root={tmp_path}/data", check=False
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"no files under '{tmp_path}/data/FashionMNIST/raw'" in lines[0]
    assert "dataset.download=true" in lines[0]
    assert not any(p.is_file() for p in (tmp_path / "outputs").rglob("*"))  # no run left


def test_data_id_follows_the_files(tmp_path):
    write_mnist(tmp_path)
    cfg = {"name": "mnist", "root": str(tmp_path)}
    before = data_id(cfg)
    assert before.startswith("files:") and before != "files:missing"
    write_mnist(tmp_path, seed=1)  # other pixels, same names and sizes
    assert data_id(cfg) != before


@pytest.mark.slow
def test_an_mnist_run_trains_on_the_generated_files(tmp_path, make_config):
    from regexp.cli import main

    write_mnist(tmp_path, n_train=200, n_test=50)
    cfg = make_config("dataset=mnist", f"dataset.root={tmp_path}")
    data = load_dataset(**cfg["dataset"])
    assert data.n_features == 784 and data.channels == 1 and data.image_shape == (28, 28)
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 250
    run = tmp_path / "run"
    main(
        [
            "train",
            "dataset=mnist",
            f"dataset.root={tmp_path}",
            "trainer.epochs=2",
            f"hydra.run.dir={run}",
        ]
    )
    assert (run / "metrics.csv").is_file()


def test_cnn_layers_and_parameters_by_hand():
    model = cnn((1, 8, 8), [8, 16], 10)
    # conv 1→8 (3×3): 8·1·9 + 8 = 80; conv 8→16: 16·8·9 + 16 = 1168; pooled 16×2×2 → 10:
    # 64·10 + 10 = 650.
    counts = [sum(p.numel() for p in m.parameters()) for m in model if list(m.parameters())]
    assert counts == [80, 1168, 650]
    assert model(torch.zeros(5, 64)).shape == (5, 10)
    # Column c·4 + i of the head reads channel c of the last conv layer.
    with torch.no_grad():
        x = torch.randn(3, 64)
        features = model[:-1](x)
        conv_out = model[:-2](x)
    assert torch.equal(features[:, 4 * 5 : 4 * 6], conv_out[:, 5].flatten(1))


def test_cnn_options_are_checked():
    with pytest.raises(ValueError, match=r"model\.kernel_size must be an odd"):
        cnn((1, 8, 8), [8], 10, kernel_size=4)
    with pytest.raises(ValueError, match=r"shrinks 8×8 images below one pixel"):
        cnn((1, 8, 8), [4, 4, 4, 4], 10, pool=2)
    with pytest.raises(ValueError, match="needs an image data set"):
        build_model(
            {
                "name": "cnn",
                "channels": [4],
                "kernel_size": 3,
                "pool": 2,
                "activation": "relu",
                "dropout": 0.0,
            },
            10,
            1,
            None,
        )


@pytest.mark.slow
def test_a_conv_run_is_rebuilt_from_its_checkpoint(tmp_path):
    from regexp.cli import main

    run = tmp_path / "run"
    main(
        ["train", "model=cnn", "dataset=digits_images", "trainer.epochs=2", f"hydra.run.dir={run}"]
    )
    model, cfg = load_model(run / "model.pt")
    assert cfg["model"]["name"] == "cnn"
    assert isinstance(model[1], nn.Conv2d) and model[1].in_channels == 1
    state = torch.load(run / "model.pt", weights_only=True)
    assert state["input_shape"] == [1, 8, 8]
    for key, value in state["state_dict"].items():
        assert torch.equal(model.state_dict()[key], value)


@pytest.mark.slow
def test_a_conv_run_reports_channels_and_compresses_to_params_kept(tmp_path):
    import pandas as pd

    from regexp.cli import main
    from regexp.model.compress import compress_model

    run = tmp_path / "run"
    main(
        [
            "train",
            "model=cnn",
            "dataset=digits_images",
            "regularizer=sgl",
            "lambda=3e-3",
            "trainer.epochs=15",
            f"hydra.run.dir={run}",
        ]
    )
    metrics = pd.read_csv(run / "metrics.csv").iloc[0]
    assert metrics["architecture"] == "1x8x8-c8-c16-10" and metrics["hidden"] == "c8-c16"
    layers = pd.read_csv(run / "sparsity.csv")
    assert layers["layer"].tolist() == ["input", "conv1", "conv2"]
    assert layers["units"].tolist() == [1, 8, 16]
    model, _ = load_model(run / "model.pt")
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    head = next(m for m in model if isinstance(m, nn.Linear))
    # Channels removed, counted by hand from the saved weights: conv2's input channel c is
    # dead when W2[:, c] == 0; conv2's output channel c when the head's 4 columns are 0.
    dead1 = int((convs[1].weight == 0).flatten(start_dim=2).all(-1).all(0).sum())
    dead2 = int((head.weight.reshape(10, 16, 4) == 0).all(-1).all(0).sum())
    assert layers.set_index("layer").loc[["conv1", "conv2"], "removed"].tolist() == [dead1, dead2]
    assert (run / "channels.png").is_file()
    small = compress_model(model)
    assert sum(p.numel() for p in small.parameters()) == metrics["params_kept"]


@pytest.mark.slow
def test_a_batched_conv_sweep_gives_the_numbers_of_jobs_run_one_by_one(regexp_cli, tmp_path):
    """Conv jobs stack with the vmap engine (never as MLPs): each job's metrics are those
    of the same job that the basic launcher trains alone by autograd."""
    import pandas as pd

    frames = {}
    for launcher in ("batched", "basic"):
        regexp_cli(
            "train",
            "-m",
            "model=cnn",
            "dataset=digits_images",
            "seed=0,1",
            "regularizer=l1,sgl",
            "trainer.epochs=2",
            f"hydra/launcher={launcher}",
            f"hydra.sweep.dir={tmp_path / launcher}",
        )
        frames[launcher] = pd.read_csv(tmp_path / launcher / "results.csv").sort_values("job")
    batched, basic = frames["batched"], frames["basic"]
    assert batched["engine"].tolist() == ["vmap"] * 4
    assert basic["engine"].tolist() == ["autograd"] * 4
    assert batched["status"].tolist() == basic["status"].tolist() == ["ok"] * 4
    for column in ("regularizer", "seed", "params_kept", "architecture"):
        assert batched[column].tolist() == basic[column].tolist()
    for column in ("val_accuracy", "test_accuracy", "weight_sparsity"):
        assert (batched[column] - basic[column]).abs().max() <= 0.01, column
    for job in batched["job"]:  # each epoch's losses: float reordering only
        histories = [pd.read_csv(tmp_path / la / str(job) / "history.csv") for la in frames]
        assert list(histories[0].columns) == list(histories[1].columns)
        assert len(histories[0]) == 2 and "val_loss" in histories[0]
        assert (histories[0] - histories[1]).abs().max().max() <= 1e-5, job
    assert basic["test_accuracy"].min() > 0.3  # trained two epochs: chance is 0.1
    assert set(batched["architecture"]) == {"1x8x8-c8-c16-10"}
