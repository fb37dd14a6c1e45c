"""Job configs composed once per shape of job (regexp.hydra_app.sweeper) against Hydra's own loader.

The reference for every job is ``config_loader.load_sweep_config(master, overrides)``, what
Hydra's sweeper and basic launcher call, and, end to end, the ``.hydra`` files that
Hydra's own sweeper and basic launcher write.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from regexp.hydra_app.sweeper import ConfigCache, basic_sweeper_class

# Group choices (regularizer, optimizer, experiment files) mixed with value overrides,
# among them an interpolation, a list, and values inside a chosen group.
SWEEP = [
    "regularizer=l1,sgl",
    "experiment=digits_sweep,diabetes_sweep",
    "lambda=1e-3,1e-2",
    "seed=0,1",
    "dataset.split_seed=${seed}",
    "model.hidden=[16,8]",
    "optimizer=sgd",
    "optimizer.momentum=0.5",
    "regularizer.mode=proximal",
]


def _master(loader_overrides: list[str]) -> tuple[DictConfig, object]:
    hydra = GlobalHydra.instance().hydra
    master = hydra.compose_config(
        "config",
        [*loader_overrides, "hydra.mode=MULTIRUN", "hydra.sweep.dir=/tmp/sweep"],
        run_mode=RunMode.MULTIRUN,
    )
    return master, hydra.config_loader


def _jobs(master: DictConfig, loader) -> list[list[str]]:
    """The jobs' overrides, as Hydra's basic sweeper expands the command line."""
    parser = OverridesParser.create(config_loader=loader)
    task = OmegaConf.to_container(master.hydra.overrides.task, resolve=False)
    args = parser.parse_overrides(task)
    return basic_sweeper_class().split_arguments(args, None)[0]


def _nodes(node, path: str = "") -> list[tuple]:
    """Every node's path, type, flags and declared types (OmegaConf metadata)."""
    meta = node._metadata
    rows = [
        (
            path,
            type(node).__name__,
            dict(meta.flags),
            str(meta.ref_type),
            str(meta.object_type),
            str(getattr(meta, "key_type", None)),
            str(getattr(meta, "element_type", None)),
        )
    ]
    if node._is_none() or node._is_missing() or node._is_interpolation():
        return rows
    if isinstance(node, DictConfig):
        for key in node:
            rows += _nodes(node._get_node(key), f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            rows += _nodes(node._get_node(i), f"{path}[{i}]")
    return rows


def _dump(cfg: DictConfig, idx: int) -> tuple:
    """The config unresolved and resolved (task part and hydra node), and its nodes."""
    with open_dict(cfg):  # as the launcher and run_job do before running the job
        cfg.hydra.job.id = idx
        cfg.hydra.job.num = idx
        cfg.hydra.runtime.output_dir = f"/tmp/sweep/{idx}"
    HydraConfig.instance().set_config(cfg)  # for ${hydra:...}
    task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    return (
        OmegaConf.to_yaml(cfg),
        OmegaConf.to_yaml(task, resolve=True),
        OmegaConf.to_yaml(cfg.hydra, resolve=True),
        _nodes(cfg),
    )


@pytest.mark.slow
def test_derived_configs_equal_hydras_for_every_job_of_a_mixed_sweep():
    with initialize_config_module("regexp.conf", version_base="1.3"):
        master, loader = _master(SWEEP)
        jobs = _jobs(master, loader)
        assert len(jobs) == 16
        cache = ConfigCache(loader, master)
        for idx, overrides in enumerate(jobs):
            ours = cache.load(overrides)
            ref = loader.load_sweep_config(master, list(overrides))
            assert _dump(ours, idx) == _dump(ref, idx), overrides
        # One composition per distinct pair of (regularizer, experiment) choices.
        assert cache.composed == 4
        ref = loader.load_sweep_config(master, list(jobs[-1]))
        assert ref.dataset.split_seed == ref.seed == 1  # the interpolation did resolve
        assert OmegaConf.to_container(ref.hydra.overrides.task) == jobs[-1]


class _NoGroupListing:
    """A config loader whose ``get_group_options`` fails (a Hydra that changed it)."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def get_group_options(self, *args, **kwargs):
        raise AttributeError("get_group_options is gone")

    def load_sweep_config(self, master, overrides):
        return self.loader.load_sweep_config(master, overrides)


@pytest.mark.slow
def test_a_loader_that_cannot_list_groups_gets_hydras_full_load_for_every_job():
    with initialize_config_module("regexp.conf", version_base="1.3"):
        master, loader = _master(SWEEP)
        jobs = _jobs(master, loader)[:4]
        cache = ConfigCache(_NoGroupListing(loader), master)
        for idx, overrides in enumerate(jobs):
            ref = loader.load_sweep_config(master, list(overrides))
            assert _dump(cache.load(overrides), idx) == _dump(ref, idx), overrides
        assert cache.composed == len(jobs)  # no derivation: one full load per job


@pytest.mark.parametrize(
    "overrides",
    [
        ["+extra=1", "regularizer=l1"],  # an addition: Hydra's full load
        ["~resume", "lambda=1e-2"],  # a deletion
        ["regularizer=l1", "hydra.job.chdir=true"],  # a hydra key
        ["lambda=1e-2", "lambda=2e-2"],  # the same key twice: the last wins
    ],
)
def test_jobs_it_does_not_derive_still_equal_hydras(overrides):
    with initialize_config_module("regexp.conf", version_base="1.3"):
        master, loader = _master(["lambda=1e-3,1e-2"])
        ours = ConfigCache(loader, master).load(overrides)
        ref = loader.load_sweep_config(master, overrides)
        assert _dump(ours, 0) == _dump(ref, 0)


@pytest.mark.parametrize(
    "overrides",
    [
        ["regularizer=nosuch", "lambda=1e-3"],
        ["nosuchkey=1"],
        ["trainer=5"],
        ["lambda=1e-3", "model.hidden.x=1"],
        ["lambda=1e-3", "regularizer.nosuch=1"],
        ["regularizer@regularizer=l2", "seed=3"],
    ],
)
def test_bad_overrides_raise_hydras_own_error(overrides):
    with initialize_config_module("regexp.conf", version_base="1.3"):
        master, loader = _master(["lambda=1e-3,1e-2"])
        cache = ConfigCache(loader, master)
        cache.load(["lambda=1e-3"])  # a shape already composed
        with pytest.raises(Exception) as ours:
            cache.load(overrides)
        with pytest.raises(Exception) as ref:
            loader.load_sweep_config(master, overrides)
        assert type(ours.value) is type(ref.value)
        assert str(ours.value) == str(ref.value)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "REGEXP_DEBUG": ""}
    cmd = [sys.executable, "-m", "regexp.cli", "train", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _hydra_files(run: Path, drop: tuple[str, ...]) -> dict[str, str]:
    """A run's ``.hydra`` files; in hydra.yaml the nodes, choices and command-line
    overrides of the plugin groups in ``drop`` (which the two sweeps choose differently)
    are left out."""
    files = {p.name: p.read_text() for p in sorted((run / ".hydra").iterdir())}
    hydra = OmegaConf.load(run / ".hydra" / "hydra.yaml")
    for group in drop:
        del hydra.hydra[group]
        del hydra.hydra.runtime.choices[f"hydra/{group}"]
        mine = (f"hydra/{group}=", f"hydra.{group}.")
        kept = [o for o in hydra.hydra.overrides.hydra if not o.startswith(mine)]
        hydra.hydra.overrides.hydra = kept
    files["hydra.yaml"] = OmegaConf.to_yaml(hydra)
    return files


@pytest.mark.slow
def test_batched_sweep_writes_the_hydra_files_of_hydras_basic_sweep(tmp_path):
    args = [
        "-m",
        "regularizer=l1,sgl",
        "experiment=digits_sweep,diabetes_sweep",
        "seed=1",
        "dataset.split_seed=${seed}",
        "trainer.epochs=1",
        "model.hidden=[8]",
        "hydra.sweep.dir=sweep",
    ]
    # Hydra's own sweeper and launcher, then regexp's sweeper (the default) and the
    # batched launcher with its worker processes, into the same directory.
    ref = _cli(*args, "hydra/sweeper=basic", "hydra/launcher=basic", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr[-2000:]
    (tmp_path / "sweep").rename(tmp_path / "reference")
    ours = _cli(
        *args,
        "hydra/launcher=batched",
        "hydra.launcher.parallel_from=2",
        "hydra.launcher.n_jobs=2",
        cwd=tmp_path,
    )
    assert ours.returncode == 0, ours.stderr[-2000:]
    reference = (tmp_path / "reference").iterdir()
    runs = sorted(p.name for p in reference if p.is_dir() and p.name != ".regexp")
    assert runs == [str(k) for k in range(4)]
    drop = ("sweeper", "launcher")
    for run in runs:
        assert _hydra_files(tmp_path / "sweep" / run, drop) == _hydra_files(
            tmp_path / "reference" / run, drop
        ), run
        for name in ("config.yaml", "overrides.yaml"):  # byte for byte
            ours_bytes = (tmp_path / "sweep" / run / ".hydra" / name).read_bytes()
            assert ours_bytes == (tmp_path / "reference" / run / ".hydra" / name).read_bytes()


@pytest.mark.slow
def test_a_bad_choice_in_a_sweep_gives_hydras_message_and_exit_code(tmp_path):
    args = ["-m", "regularizer=nosuch,l1", "trainer.epochs=1", "hydra.sweep.dir=sweep"]
    ref = _cli(*args, "hydra/sweeper=basic", cwd=tmp_path)
    ours = _cli(*args, cwd=tmp_path)
    assert ref.returncode == ours.returncode == 1
    assert "Could not find 'regularizer/nosuch'" in ours.stderr
    assert ours.stderr == ref.stderr
