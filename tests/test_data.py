import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import datasets as skdatasets
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from regexp.data.prepare import fit_scaler, load_dataset, split_indices

SKLEARN = {
    "digits": (skdatasets.load_digits, "classification", 10),
    "diabetes": (skdatasets.load_diabetes, "regression", 0),
    "breast_cancer": (skdatasets.load_breast_cancer, "classification", 2),
    "wine": (skdatasets.load_wine, "classification", 3),
}


@pytest.mark.parametrize("name", list(SKLEARN))
def test_each_dataset_loads_with_the_right_shapes(name):
    loader, task, n_classes = SKLEARN[name]
    bunch = loader()
    data = load_dataset(name, task, val_size=0.2, test_size=0.2)
    n, d = bunch.data.shape
    sizes = [len(data.y_train), len(data.y_val), len(data.y_test)]
    assert sum(sizes) == n
    assert len(data.y_test) == pytest.approx(0.2 * n, abs=1)
    assert len(data.y_val) == pytest.approx(0.2 * n, abs=1)
    for x in (data.x_train, data.x_val, data.x_test):
        assert x.shape[1] == d and x.dtype == torch.float32
    assert data.n_features == d and len(data.feature_names) == d
    assert data.n_classes == n_classes
    assert data.n_outputs == (n_classes if task == "classification" else 1)
    if task == "classification":
        assert data.y_train.dtype == torch.int64
        assert set(data.y_train.tolist()) == set(range(n_classes))
    if name == "digits":
        assert data.image_shape == (8, 8)


def test_split_leaks_no_test_rows_and_covers_every_row():
    y = skdatasets.load_wine().target
    train, val, test = split_indices(y, "classification", 0.2, 0.25, seed=3)
    assert not set(train) & set(test)
    assert not set(val) & set(test)
    assert not set(train) & set(val)
    assert sorted([*train, *val, *test]) == list(range(len(y)))


def test_split_is_stratified_and_seeded():
    y = skdatasets.load_breast_cancer().target
    train, val, test = split_indices(y, "classification", 0.2, 0.2, seed=0)
    overall = y.mean()
    for rows in (train, val, test):
        assert y[rows].mean() == pytest.approx(overall, abs=0.01)
    again = split_indices(y, "classification", 0.2, 0.2, seed=0)
    other = split_indices(y, "classification", 0.2, 0.2, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    assert not np.array_equal(test, other[2])


def test_test_rows_are_the_held_out_rows_of_the_source_data():
    bunch = skdatasets.load_digits()
    data = load_dataset("digits", "classification", val_size=0.2, test_size=0.2, split_seed=5)
    train, _, test = split_indices(bunch.target, "classification", 0.2, 0.2, seed=5)
    scaler = StandardScaler().fit(bunch.data[train])
    expected = scaler.transform(bunch.data[test])
    np.testing.assert_allclose(data.x_test.numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(data.y_test.numpy(), bunch.target[test])


def test_standardization_uses_training_statistics_only():
    data = load_dataset("wine", "classification", val_size=0.2, test_size=0.2)
    train = data.x_train.double().numpy()
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-4)
    # The held-out splits are scaled with the training statistics, so they are not
    # standardized themselves.
    assert np.abs(data.x_test.double().numpy().mean(axis=0)).max() > 0.05


def test_scalers_match_scikit_learn():
    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, size=(50, 4))
    x[:, 2] = 7.0  # a constant column keeps scale 1
    for kind, ref in (("standard", StandardScaler()), ("minmax", MinMaxScaler())):
        shift, scale = fit_scaler(x, kind)
        np.testing.assert_allclose((x - shift) / scale, ref.fit_transform(x), atol=1e-12)
    shift, scale = fit_scaler(x, "none")
    np.testing.assert_array_equal((x - shift) / scale, x)


def test_regression_target_is_standardized_with_training_statistics():
    bunch = skdatasets.load_diabetes()
    data = load_dataset("diabetes", "regression", val_size=0.2, test_size=0.2)
    train, _, test = split_indices(bunch.target, "regression", 0.2, 0.2, seed=0)
    assert data.y_mean == pytest.approx(bunch.target[train].mean())
    assert data.y_std == pytest.approx(bunch.target[train].std())
    restored = data.y_test.double().numpy() * data.y_std + data.y_mean
    np.testing.assert_allclose(restored, bunch.target[test], rtol=1e-5)


def test_csv_dataset_reads_features_and_encodes_string_classes(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    frame["label"] = np.where(frame["a"] > 0, "pos", "neg")
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    data = load_dataset("csv", "classification", path=str(path), target="label")
    assert data.feature_names == ["a", "b", "c"]
    assert data.classes == ("neg", "pos")
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 60
