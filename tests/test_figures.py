"""Figures carry what they claim: data equal to their input frames, run and sweep identity in
titles, labelled axes, legends outside the axes, error bars within the valid range,
distinct series styles, λ labels, and no text drawn over other text."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.text import Annotation, Text
from torch import nn

from regexp.hydra_app.report import write_plots
from regexp.plots import run as run_plots
from regexp.plots import style as plot_style
from regexp.plots import sweep as sweep_plots
from regexp.runs.run_files import RunOutputs, write

IDENTITY = "digits, sgl (penalty), λ = 1e-3, seed 0"
LAMBDAS = [1e-4, 1e-3, 1e-2]


def render(fig: Figure):
    """Lay out and draw ``fig``; return its renderer."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def text_boxes(fig: Figure) -> list[tuple[str, object]]:
    """(text, window extent) of the suptitle, every panel's title, axis labels, visible tick
    labels and legend: the texts that must never overprint one another."""
    renderer = render(fig)
    found = []
    if fig.get_suptitle():
        found.append(("suptitle", fig._suptitle.get_window_extent(renderer)))
    for ax in fig.axes:
        frame = ax.get_window_extent(renderer)
        pieces = [ax.title, ax.xaxis.label, ax.yaxis.label]
        for tick in ax.get_xticklabels():  # only those inside the axes' span are drawn
            box = tick.get_window_extent(renderer)
            if tick.get_text() and frame.x0 - 1 <= (box.x0 + box.x1) / 2 <= frame.x1 + 1:
                pieces.append(tick)
        for tick in ax.get_yticklabels():
            box = tick.get_window_extent(renderer)
            if tick.get_text() and frame.y0 - 1 <= (box.y0 + box.y1) / 2 <= frame.y1 + 1:
                pieces.append(tick)
        found += [(t.get_text(), t.get_window_extent(renderer)) for t in pieces if t.get_text()]
        if ax.get_legend() is not None:
            found.append(("legend", ax.get_legend().get_window_extent(renderer)))
    found += [("legend", leg.get_window_extent(renderer)) for leg in fig.legends]
    return found


def assert_no_overprint(fig: Figure) -> None:
    boxes = text_boxes(fig)
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"{a!r} overprints {b!r}"
    width, height = fig.bbox.width, fig.bbox.height
    for name, box in boxes:  # nothing is cut off at the figure's edge
        assert box.x0 >= -1 and box.x1 <= width + 1 and box.y0 >= -1 and box.y1 <= height + 1, name


def assert_constrained(fig: Figure) -> None:
    assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)


def assert_legend_outside_axes(fig: Figure, labels: list[str]) -> None:
    renderer = render(fig)
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + fig.legends
    (legend,) = legends
    assert [t.get_text() for t in legend.get_texts()] == labels
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer))


# Run figures ---------------------------------------------------------------------------


def test_run_title_names_dataset_regularizer_mode_lambda_and_seed():
    row = {"dataset": "digits", "regularizer": "sgl", "mode": "penalty", "lambda": 0.001}
    assert run_plots.run_title(row | {"seed": 0, "status": "ok"}) == IDENTITY
    net = {"dataset": "wine", "regularizer": "elastic_net", "mode": "proximal", "lambda": 2.5e-4}
    net |= {"l1_ratio": 0.5, "seed": 7, "status": "diverged"}
    assert run_plots.run_title(net) == (
        "wine, elastic_net (proximal, l1_ratio=0.5), λ = 2.5e-4, seed 7 [diverged]"
    )


@pytest.mark.parametrize(
    ("x", "text"),
    [(1e-3, "1e-3"), (2.5e-4, "2.5e-4"), (0, "0"), (0.5, "0.5"), (0.1778279, "0.178")],
)
def test_short_number(x, text):
    assert plot_style.short_number(x) == text


def test_learning_curves_show_losses_and_the_validation_metric():
    history = pd.DataFrame({
        "epoch": [1, 2, 3], "data_loss": [1.0, 0.6, 0.4], "penalty": [0.2, 0.1, 0.1],
        "train_loss": [1.2, 0.7, 0.5], "val_loss": [1.1, 0.8, 0.7], "val_r2": [-0.2, 0.3, 0.5],
    })  # fmt: skip
    fig = run_plots.learning_curves_figure(history, IDENTITY)
    assert_constrained(fig)
    loss_ax, metric_ax = fig.axes
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    for label, column in [
        ("train data loss", "data_loss"),
        ("train loss + penalty", "train_loss"),
        ("validation loss", "val_loss"),
    ]:
        np.testing.assert_array_equal(lines[label].get_xdata(), history["epoch"])
        np.testing.assert_array_equal(lines[label].get_ydata(), history[column])
    (metric,) = metric_ax.get_lines()
    np.testing.assert_array_equal(metric.get_ydata(), history["val_r2"])
    assert loss_ax.get_ylabel() == "loss (mean squared error)"
    assert loss_ax.get_title() == "Loss (log scale; standardized target)"
    assert metric_ax.get_ylabel().startswith("validation R²")
    assert metric_ax.get_title() == "Validation R²"
    assert loss_ax.get_xlabel() == metric_ax.get_xlabel() == "epoch"
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == list(lines)
    assert IDENTITY in fig.get_suptitle() and "Learning curves" in fig.get_suptitle()
    assert_no_overprint(fig)


def test_learning_curves_of_classification_name_cross_entropy_and_accuracy():
    history = pd.DataFrame({
        "epoch": [1, 2], "data_loss": [2.0, 1.0], "penalty": [0.0, 0.0], "train_loss": [2.0, 1.0],
        "val_loss": [2.1, 1.2], "val_accuracy": [0.4, 0.8],
    })  # fmt: skip
    loss_ax, metric_ax = run_plots.learning_curves_figure(history, IDENTITY).axes
    assert loss_ax.get_ylabel() == "loss (cross-entropy)"
    assert loss_ax.get_title() == "Loss (log scale)" and loss_ax.get_yscale() == "log"
    assert metric_ax.get_ylabel() == "validation accuracy (fraction correct)"
    assert [line.get_label() for line in loss_ax.get_lines()] == [
        "train data loss",
        "validation loss",
    ]  # no penalty: no "train loss + penalty"


def test_sparsity_figure_stacks_kept_on_removed_units():
    layers = pd.DataFrame({
        "layer": ["input", "hidden1", "hidden2"], "units": [64, 40, 20], "removed": [6, 10, 0],
    })  # fmt: skip
    fig = run_plots.sparsity_figure(layers, IDENTITY)
    assert_constrained(fig)
    (ax,) = fig.axes
    kept, removed = ax.containers
    assert [bar.get_height() for bar in kept] == [58, 30, 20]
    assert [bar.get_height() for bar in removed] == [6, 10, 0]
    assert [bar.get_y() for bar in removed] == [58, 30, 20]  # stacked on the kept units
    assert {t.get_text() for t in ax.texts} == {"58/64", "30/40", "20/20"}
    assert ax.get_ylabel() == "units (count)" and ax.get_xlabel().startswith("layer")
    assert IDENTITY in fig.get_suptitle()
    assert_legend_outside_axes(fig, ["kept", "removed"])
    assert_no_overprint(fig)


def test_pixel_map_shows_kept_and_removed_pixels_with_a_legend():
    alive = np.ones(64, dtype=bool)
    alive[[0, 7, 8, 63]] = False
    fig = run_plots.features_figure(alive, [str(i) for i in range(64)], (8, 8), title=IDENTITY)
    assert_constrained(fig)
    (ax,) = fig.axes
    (image,) = ax.get_images()
    np.testing.assert_array_equal(image.get_array(), alive.reshape(8, 8).astype(float))
    # The legend's colours are the image's colours for kept (1) and removed (0).
    assert to_hex(image.cmap(image.norm(1.0))) == to_hex(run_plots.KEPT_COLOR)
    assert to_hex(image.cmap(image.norm(0.0))) == to_hex(run_plots.REMOVED_COLOR)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["kept (60)", "removed (4)"]
    patches = [to_hex(p.get_facecolor()) for p in legend.get_patches()]
    assert patches == [to_hex(run_plots.KEPT_COLOR), to_hex(run_plots.REMOVED_COLOR)]
    assert ax.get_xlabel() == "pixel column" and ax.get_ylabel() == "pixel row"
    assert "60/64 pixels kept" in ax.get_title() and IDENTITY in fig.get_suptitle()
    assert_legend_outside_axes(fig, ["kept (60)", "removed (4)"])
    assert_no_overprint(fig)


def test_pixel_map_of_fractions_has_a_labelled_colour_bar():
    fractions = np.linspace(0, 1, 64)
    fig = run_plots.features_figure(fractions, [str(i) for i in range(64)], (8, 8), title="x")
    ax, bar = fig.axes
    np.testing.assert_allclose(ax.get_images()[0].get_array(), fractions.reshape(8, 8))
    assert bar.get_ylabel() == "fraction of runs keeping the pixel"
    assert_no_overprint(fig)


def test_feature_bars_colour_removed_features_and_have_a_legend():
    names = ["age", "bmi", "bp", "s1"]
    alive = np.array([True, False, True, False])
    importance = np.array([0.5, 0.0, 1.5, 0.0])
    fig = run_plots.features_figure(alive, names, None, importance, IDENTITY)
    (ax,) = fig.axes
    bars = ax.patches
    assert [b.get_height() for b in bars] == [0.5, 0.0, 1.5, 0.0]
    colours = [to_hex(b.get_facecolor()) for b in bars]
    kept, removed = to_hex(run_plots.KEPT_COLOR), to_hex(run_plots.REMOVED_COLOR)
    assert colours == [kept, removed, kept, removed]
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert ax.get_title() == "2/4 features kept"
    assert_legend_outside_axes(fig, ["kept", "removed (norm 0)"])
    assert_no_overprint(fig)


def test_feature_bars_of_wide_data_draw_the_largest_norms_and_count_the_rest():
    n = 5000
    rng = np.random.default_rng(0)
    alive = rng.random(n) < 0.7
    importance = np.where(alive, rng.random(n) + 0.01, 0.0)
    names = [f"x{i}" for i in range(n)]
    fig = run_plots.features_figure(alive, names, None, importance, IDENTITY)
    (ax,) = fig.axes
    top = sorted(np.argsort(importance)[-run_plots.MAX_FEATURES :])  # by numpy, column order
    assert len(ax.patches) == run_plots.MAX_FEATURES <= 300
    assert [t.get_text() for t in ax.get_xticklabels()] == [names[i] for i in top]
    np.testing.assert_array_equal([b.get_height() for b in ax.patches], importance[top])
    rest = np.setdiff1d(np.arange(n), top)
    kept_rest = int(alive[rest].sum())
    title = ax.get_title()
    assert f"{int(alive.sum()):,}/5,000 features kept" in title
    assert f"4,900 more not shown ({kept_rest:,} kept, {4900 - kept_rest:,} removed)" in title
    assert_no_overprint(fig)


def test_run_write_titles_every_figure_with_the_run(tmp_path, monkeypatch):
    saved: dict[str, Figure] = {}
    monkeypatch.setattr(
        run_plots, "save_figure", lambda fig, path, tight=True: saved.update({path.name: fig})
    )
    row = {"dataset": "wine", "regularizer": "group_lasso", "mode": "proximal", "lambda": 0.01}
    row |= {"seed": 3, "status": "ok"}
    history = pd.DataFrame({
        "epoch": [1], "train_loss": [1.0], "data_loss": [0.9], "penalty": [0.1],
        "val_loss": [1.0], "val_accuracy": [0.5],
    })  # fmt: skip
    layers = pd.DataFrame({"layer": ["input"], "units": [3], "removed": [1], "fraction": [1 / 3]})
    features = {
        "alive": np.array([True, False, True]),
        "names": ["a", "b", "c"],
        "image_shape": None,
        "importance": np.array([1.0, 0.0, 2.0]),
    }
    write(tmp_path, RunOutputs({}, row, history, nn.Linear(3, 2), layers, features))
    assert set(saved) == {"learning_curves.png", "sparsity.png", "features.png"}
    for fig in saved.values():
        assert "wine, group_lasso (proximal), λ = 1e-2, seed 3" in fig.get_suptitle()


# Sweep figures -------------------------------------------------------------------------

# Hand-made summary: group lasso and SGL are identical (they hid each other before).
ACCURACY = {"l1": [0.97, 0.95, 0.30], "l2": [0.97, 0.97, 0.96], "group_lasso": [0.96, 0.94, 0.10]}
ACCURACY["sgl"] = ACCURACY["group_lasso"]
REMOVED = {"l1": [0.0, 0.2, 0.98], "l2": [0.0, 0.0, 0.0], "group_lasso": [0.02, 0.5, 1.0]}
REMOVED["sgl"] = REMOVED["group_lasso"]
KEPT = {"l1": [0.9, 0.6, 0.05], "l2": [1.0, 1.0, 1.0], "group_lasso": [0.8, 0.5, 0.0]}
KEPT["sgl"] = KEPT["group_lasso"]


def summary(dataset: str = "digits") -> pd.DataFrame:
    rows = []
    for reg in ["group_lasso", "l1", "l2", "sgl"]:
        for i, lam in enumerate(LAMBDAS):
            rows.append({
                "dataset": dataset, "regularizer": reg, "mode": "penalty", "lambda": lam,
                "n": 2, "n_ok": 2,
                "test_accuracy_mean": ACCURACY[reg][i], "test_accuracy_std": 0.05,
                "neuron_sparsity_input_mean": REMOVED[reg][i], "neuron_sparsity_input_std": 0.1,
                "neuron_sparsity_hidden1_mean": REMOVED[reg][i] / 2,
                "neuron_sparsity_hidden1_std": 0.1,
                "params_fraction_mean": KEPT[reg][i], "params_fraction_std": 0.01,
            })  # fmt: skip
    return pd.DataFrame(rows)


SERIES = ["regularizer", "mode"]
REGULARIZERS = ["group_lasso", "l1", "l2", "sgl"]


def error_segments(ax) -> np.ndarray:
    """The y ends of every error bar of ``ax``: shape [bars, 2]."""
    segments = [s for c in ax.containers for col in c[2] for s in col.get_segments()]
    return np.array([[s[0][1], s[1][1]] for s in segments])


def test_accuracy_vs_lambda_draws_the_summary_with_clipped_error_bars():
    frame = summary()
    fig = sweep_plots.metric_vs_lambda_figure(frame, "test_accuracy", SERIES)
    assert_constrained(fig)
    ax, _ = fig.axes  # the full view, and the zoom on the best (see below)
    assert len(ax.containers) == 4
    for container, reg in zip(ax.containers, REGULARIZERS, strict=True):
        line = container[0]
        assert container.get_label() == reg
        np.testing.assert_array_equal(line.get_xdata(), LAMBDAS)
        np.testing.assert_array_equal(line.get_ydata(), ACCURACY[reg])
        ends = error_segments_of(container)
        # mean ± 0.05, clipped to [0, 1]: 0.97 + 0.05 ends at 1.0, not 1.02.
        low = np.maximum(np.array(ACCURACY[reg]) - 0.05, 0)
        high = np.minimum(np.array(ACCURACY[reg]) + 0.05, 1)
        np.testing.assert_allclose(ends, np.column_stack([low, high]))
    assert ax.get_xlabel() == "λ (log scale)"
    assert ax.get_ylabel() == "test accuracy (fraction correct)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1e-4", "1e-3", "1e-2"]
    title = fig.get_suptitle()
    assert "digits" in title and "a line per regularizer" in title and "2 seeds" in title
    assert_legend_outside_axes(fig, REGULARIZERS)
    assert_no_overprint(fig)


def error_segments_of(container) -> np.ndarray:
    (bars,) = container[2]
    return np.array([[s[0][1], s[1][1]] for s in bars.get_segments()])


def test_equal_series_stay_apart_on_screen_with_their_data_exact():
    fig = sweep_plots.metric_vs_lambda_figure(summary(), "test_accuracy", SERIES)
    render(fig)
    ax = fig.axes[0]
    lines = {c.get_label(): c[0] for c in ax.containers}
    group, sgl = lines["group_lasso"], lines["sgl"]
    np.testing.assert_array_equal(group.get_xydata(), sgl.get_xydata())  # the same data
    assert group.get_marker() != sgl.get_marker() and group.get_linestyle() != sgl.get_linestyle()
    drawn_group = group.get_transform().transform(group.get_xydata())
    drawn_sgl = sgl.get_transform().transform(sgl.get_xydata())
    shift = drawn_sgl[:, 0] - drawn_group[:, 0]
    assert (shift > 5).all()  # pixels apart on screen
    np.testing.assert_allclose(drawn_sgl[:, 1], drawn_group[:, 1])


def test_sixteen_series_have_distinct_styles_and_a_legend_that_fits():
    frames = []
    for mode, hidden in itertools.product(["penalty", "proximal"], ["40-20", "20"]):
        frames.append(summary().assign(mode=mode, hidden=hidden))
    frame = pd.concat(frames, ignore_index=True)
    fig = sweep_plots.metric_vs_lambda_figure(frame, "test_accuracy", [*SERIES, "hidden"])
    ax = fig.axes[0]
    styles = {
        (to_hex(c[0].get_color()), c[0].get_marker(), c[0].get_linestyle()) for c in ax.containers
    }
    assert len(ax.containers) == len(styles) == 16
    labels = [c.get_label() for c in ax.containers]
    assert "group_lasso proximal hidden=40-20" in labels
    assert_legend_outside_axes(fig, labels)
    assert_no_overprint(fig)  # includes: the legend is not cut off at the figure's edge
    triples = plot_style.series_styles([str(i) for i in range(140)]).values()
    assert len({(to_hex(s["color"]), s["marker"], s["linestyle"]) for s in triples}) == 140


def test_sparsity_vs_lambda_of_two_datasets_keeps_its_rows_apart():
    frame = pd.concat([summary("diabetes"), summary("digits")], ignore_index=True)
    fig = sweep_plots.sparsity_vs_lambda_figure(frame, SERIES)
    assert_constrained(fig)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "diabetes: input features",
        "diabetes: hidden1",
        "digits: input features",
        "digits: hidden1",
    ]
    for ax in fig.axes:
        ends = error_segments(ax)
        assert ends.min() >= 0 and ends.max() <= 1  # fractions stay fractions
        assert ax.get_ylabel() == "fraction of units removed"
        assert ax.get_xlabel() == "λ (log scale)"
    first = fig.axes[0]
    for container, reg in zip(first.containers, REGULARIZERS, strict=True):
        np.testing.assert_array_equal(container[0].get_ydata(), REMOVED[reg])
    title = fig.get_suptitle()
    assert "diabetes, digits" in title and "a line per regularizer" in title
    assert_legend_outside_axes(fig, REGULARIZERS)
    assert_no_overprint(fig)  # the x labels of row 1 never touch the titles of row 2


@pytest.mark.parametrize(
    "lambdas",
    [np.logspace(-6, 0, 25), [0.0, 1e-5, 1e-4, 1e-3, 1e-2], [1e-3, 1.2e-3, 1e-1, 1.0]],
    ids=["25 values", "with zero", "close pair"],
)
def test_lambda_tick_labels_never_collide(lambdas):
    frame = pd.DataFrame({
        "dataset": "wine", "regularizer": "l1", "mode": "penalty", "lambda": lambdas,
        "n": 1, "n_ok": 1, "test_accuracy_mean": np.linspace(0.9, 0.5, len(lambdas)),
        "test_accuracy_std": np.nan,
    })  # fmt: skip
    fig = sweep_plots.metric_vs_lambda_figure(frame, "test_accuracy", SERIES)
    assert fig.axes[0].get_xlabel().startswith("λ (log scale")
    boxes = [box for text, box in text_boxes(fig) if text.startswith(("1", "0", "$"))]
    assert len(boxes) >= 3  # some λ ticks are labelled
    assert_no_overprint(fig)


def test_view_floor_leaves_out_only_points_far_below_the_bulk():
    y = np.array([0.97, 0.95, 0.30, 0.97, 0.97, 0.96, 0.94, 0.10, 0.96, 0.94, 0.10, 0.96])
    median = np.median(y)  # 0.955
    expected = median - max(3 * (0.97 - median), (0.97 - 0.10) / 10)  # 0.955 - 0.087
    assert sweep_plots.view_floor(y) == pytest.approx(expected) == pytest.approx(0.868)
    assert sweep_plots.view_floor(np.array([0.5, 0.6, 0.7, 0.8, 0.9])) is None  # spread out
    assert sweep_plots.view_floor(np.array([0.1, 0.9, 0.9])) is None  # too few to judge


def test_clipped_yerr_stays_within_the_bounds():
    err = plot_style.clipped_yerr(
        np.array([0.98, 0.5, 0.01]), np.array([0.05, 0.1, 0.05]), 0.0, 1.0
    )
    np.testing.assert_allclose(err, [[0.05, 0.1, 0.01], [0.02, 0.1, 0.05]])
    r2 = plot_style.clipped_yerr(np.array([-3.0]), np.array([2.0]), -math.inf, 1.0)
    np.testing.assert_allclose(r2, [[2.0], [2.0]])


def test_pareto_labels_points_with_lambda_and_names_the_points_below_the_view():
    frame = summary()
    fig = sweep_plots.pareto_figure(frame, {"digits": "test_accuracy"}, SERIES)
    assert_constrained(fig)
    (ax,) = fig.axes
    floor = 0.868  # see test_view_floor_leaves_out_only_points_far_below_the_bulk
    shown = frame[frame["test_accuracy_mean"] >= floor]
    drawn = {
        tuple(p)
        for c in ax.collections
        if c.get_label() in REGULARIZERS
        for p in np.round(c.get_offsets(), 6)
    }
    expected = set(zip(shown["params_fraction_mean"], shown["test_accuracy_mean"], strict=True))
    assert drawn == expected
    low, high = ax.get_ylim()
    assert low <= shown["test_accuracy_mean"].min() and high >= 0.97 and low > 0.30
    # The front, by hand: (0.5, .94), (0.6, .95), (0.8, .96), (0.9, .97) in view; l2's
    # (1.0, .97) is dominated by l1's (0.9, .97).
    (ring,) = [c for c in ax.collections if not c.get_label() or c.get_label().startswith("_")]
    assert {tuple(p) for p in ring.get_offsets()} == {
        (0.5, 0.94),
        (0.6, 0.95),
        (0.8, 0.96),
        (0.9, 0.97),
    }
    title = ax.get_title().replace("\u00a0", " ").replace("\n", " ")
    assert "3 points below 0.868 not shown" in title
    for item in ["group_lasso λ=1e-2 (0.10)", "l1 λ=1e-2 (0.30)", "sgl λ=1e-2 (0.10)"]:
        assert item in title
    renderer = render(fig)
    labels = [t for t in ax.texts if isinstance(t, Annotation)]
    tokens = {token for t in labels for token in t.get_text().split(", ")}
    assert tokens == {plot_style.short_number(v) for v in shown["lambda"]}
    assert {tuple(t.xy) for t in labels} <= expected  # each label sits at a drawn point
    boxes = [t.get_window_extent(renderer) for t in labels]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    assert ax.get_xlabel() == "fraction of parameters kept (weights and biases)"
    assert "Test accuracy against parameters kept: digits" in fig.get_suptitle()
    assert_legend_outside_axes(fig, [*REGULARIZERS, "Pareto front"])
    assert_no_overprint(fig)


def test_sweep_write_plots_titles_name_the_datasets_and_what_varies(monkeypatch, tmp_path):
    saved: dict[str, Figure] = {}
    monkeypatch.setattr(
        sweep_plots, "save_figure", lambda fig, path, tight=True: saved.update({path.name: fig})
    )
    rows = []
    for (reg, lam), seed in itertools.product(itertools.product(["l1", "sgl"], LAMBDAS), [0, 1]):
        rows.append({
            "job": str(len(rows)), "dataset": "wine", "task": "classification",
            "regularizer": reg, "mode": "penalty", "lambda": lam, "seed": seed, "status": "ok",
            "test_accuracy": 0.9 - lam, "neuron_sparsity_input": 10 * lam,
            "params_total": 100, "params_kept": 100 - 1000 * lam,
        })  # fmt: skip
    written = write_plots(pd.DataFrame(rows), tmp_path)
    names = {"accuracy_vs_lambda.png", "sparsity_vs_lambda.png", "pareto.png"}
    assert {p.name for p in written} == set(saved) == names
    for fig in saved.values():
        title = fig.get_suptitle()
        assert "wine" in title and "2 seeds" in title and "per regularizer" in title
        assert_constrained(fig)


@pytest.mark.slow
def test_saved_pngs_are_written(tmp_path):
    frame = summary()
    sweep_plots.plot_pareto(frame, {"digits": "test_accuracy"}, SERIES, tmp_path / "pareto.png")
    sweep_plots.plot_metric_vs_lambda(frame, "test_accuracy", SERIES, tmp_path / "acc.png")
    for name in ["pareto.png", "acc.png"]:
        assert Path(tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# Issue 23: the Pareto plot on validation, fixed styles, legends, zoom, single λ -----------


def val_test_summary() -> pd.DataFrame:
    """``summary()`` with a validation twin: validation = test + 0.01 (so that the panels
    differ), and a collapsed point (group_lasso at 1e-2)."""
    frame = summary()
    frame["val_accuracy_mean"] = frame["test_accuracy_mean"] + 0.01
    frame["val_accuracy_std"] = 0.01
    frame["collapsed_mean"] = 0.0
    frame.loc[frame["regularizer"].eq("group_lasso") & frame["lambda"].eq(1e-2),
              "collapsed_mean"] = 1.0  # fmt: skip
    return frame


@pytest.mark.slow
def test_pareto_plots_validation_beside_test_with_chosen_points_and_the_tolerance_band():
    frame = val_test_summary()
    # Chosen per group: l1 at 1e-3, l2 at 1e-2; the answer: l1 at 1e-3 (within 0.02 of 0.98).
    rule = "within:0.02"
    selected = pd.DataFrame(
        {"dataset": "digits", "regularizer": ["l1", "l2"], "mode": "penalty",
         "lambda": [1e-3, 1e-2], "rule": rule}
    )  # fmt: skip
    answer = pd.DataFrame(
        {"dataset": ["digits"], "regularizer": ["l1"], "mode": ["penalty"],
         "lambda": [1e-3], "rule": [rule], "group_best": [0.98]}
    )  # fmt: skip
    fig = sweep_plots.pareto_figure(frame, {"digits": "test_accuracy"}, SERIES, selected, answer)
    val_ax, test_ax = fig.axes
    assert val_ax.get_ylabel().startswith("validation accuracy")
    assert test_ax.get_ylabel().startswith("test accuracy")
    assert "validation (chooses)" in val_ax.get_title()
    assert "never chooses" in test_ax.get_title()

    def offsets(ax, label):
        (found,) = [c for c in ax.collections if c.get_label() == label]
        return {tuple(np.round(p, 6)) for p in found.get_offsets()}

    stars = offsets(val_ax, "chosen λ per group (rule within:0.02)")
    assert stars == {(0.6, 0.96), (1.0, 0.97)}  # l1 1e-3: 0.95 + 0.01; l2 1e-2: 0.96 + 0.01
    assert offsets(test_ax, "chosen λ per group (rule within:0.02)") == {(0.6, 0.95), (1.0, 0.96)}
    assert offsets(val_ax, "sparsest within the tolerance of the best") == {(0.6, 0.96)}
    (band,) = [p for p in val_ax.patches if p.get_label().startswith("within 0.02")]
    assert band.get_y() == pytest.approx(0.96)  # from best − 0.02 ...
    assert band.get_y() + band.get_height() == pytest.approx(0.98)  # ... to the best
    # The front (validation only): fewer parameters and higher validation accuracy.
    rings = [c for c in val_ax.collections if not c.get_label() or c.get_label().startswith("_")]
    assert len(rings) == 1
    assert not [c for c in test_ax.collections if c.get_label().startswith("_")]
    renderer = render(fig)
    for ax in (val_ax, test_ax):  # λ labels inside the axes, none over another
        frame_box = ax.get_window_extent(renderer)
        boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]
        for box in boxes:
            assert frame_box.x0 - 1 <= box.x0 and box.x1 <= frame_box.x1 + 1
            assert frame_box.y0 - 1 <= box.y0 and box.y1 <= frame_box.y1 + 1
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b)
    assert_no_overprint(fig)


def test_a_regularizer_keeps_its_colour_and_marker_in_every_figure():
    everything = plot_style.summary_styles(summary(), SERIES)[1]
    two = plot_style.summary_styles(summary()[summary()["regularizer"].isin(["sgl", "l2"])],
                                    SERIES)[1]  # fmt: skip
    for reg in ("sgl", "l2"):
        assert (everything[reg]["color"], everything[reg]["marker"]) == (
            two[reg]["color"], two[reg]["marker"])  # fmt: skip
        assert everything[reg]["color"] == plot_style.REGULARIZER_STYLES[reg][0]
    fig = sweep_plots.metric_vs_lambda_figure(summary(), "test_accuracy", SERIES)
    lines = {c.get_label(): c[0] for c in fig.axes[0].containers}
    assert to_hex(lines["sgl"].get_color()) == to_hex(plot_style.REGULARIZER_STYLES["sgl"][0])


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("source", "outputs/multirun/digits_a", "digits_a"),
        ("source", "outputs/multirun/digits_b/results.csv", "digits_b"),
        ("dataset.path", "/data/pima.csv", "pima"),
        ("data_id", "csv:0123456789abcdef", "data=01234567"),
        ("dropout", "0.2", "dropout=0.2"),
        ("mode", "proximal", "proximal"),
    ],
)
def test_legends_show_no_paths_or_hashes(column, value, shown):
    assert plot_style.display(column, value) == shown


def test_accuracy_against_lambda_zooms_on_the_best_where_the_curve_falls_far():
    frame = val_test_summary()
    fig = sweep_plots.metric_vs_lambda_figure(frame, "test_accuracy", SERIES)
    full, zoom = fig.axes
    assert zoom.get_ylim() == pytest.approx((0.97 - 0.05, 0.97 + 0.005))
    assert full.get_ylim()[0] < 0.2  # the full panel shows the collapse
    crosses = [c for c in full.collections if c.get_label().startswith("a run collapsed")]
    assert {tuple(p) for p in crosses[0].get_offsets()} == {(1e-2, 0.10)}
    assert_no_overprint(fig)


def test_a_single_lambda_sweep_draws_points_with_error_bars():
    frame = summary()[summary()["lambda"] == 1e-3].assign(n_ok=1, test_accuracy_std=np.nan)
    fig = sweep_plots.metric_vs_lambda_figure(frame, "test_accuracy", SERIES)
    (ax,) = fig.axes
    xs = [float(c[0].get_xdata()[0]) for c in ax.containers]
    assert xs == [0.0, 1.0, 2.0, 3.0]  # one position per series, not a vertical strip
    assert [t.get_text() for t in ax.get_xticklabels()] == REGULARIZERS
    assert ax.get_xlabel() == "series at λ = 1e-3"
    assert "one seed per point (no spread to show)" in fig.get_suptitle()
    assert "over 1 seed" not in fig.get_suptitle()
    assert_no_overprint(fig)
