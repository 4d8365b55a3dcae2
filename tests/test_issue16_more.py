"""Issue #16, the remaining rows: ``hvgp.distributed`` errors, flags and stalled ranks; the
demo's reliability picture; legends that cover no bars."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_DIST = ["--data", "moons", "--data-n", "160", "--arch", "mlp", "--width", "0.125",
             "--batch-size", "32", "--delta-t", "2", "--drop-rate", "0.1", "--device", "cpu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    """One torch thread per process, as the suite runs."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    """What ``torchrun`` would set for ``rank`` of ``world`` on localhost."""
    return _env(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


# ---- hvgp.distributed: flags -----------------------------------------------------------------
def test_every_distributed_flag_has_help_and_one_default() -> None:
    from hvgp.distributed import _parser

    p = _parser()
    flags = [a for a in p._actions if a.option_strings and a.dest != "help"]
    assert [a.dest for a in flags if not a.help] == []
    text = p.format_help()
    assert text.count("(default:") >= len([a for a in flags if a.default is not None
                                           and a.default is not False])
    for line in text.splitlines():
        assert line.count("(default:") <= 1, line
    out = next(a for a in flags if a.dest == "out")
    assert all(w in out.help for w in ("metrics.json", "model.pt", "checkpoint.pt", "rank"))
    assert any(a.dest == "timeout" for a in flags)


# ---- hvgp.distributed: bad arguments ---------------------------------------------------------
BAD = ["--arch", "foo", "--sparsity", "1.2", "--batch-size", "33"]


@pytest.mark.parametrize("rank", [0, 1])
def test_bad_distributed_arguments_are_one_line_each_on_rank_0_only(
        rank: int, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "hvgp.distributed", *TINY_DIST, *BAD, "--out",
           str(tmp_path / "out")]
    proc = subprocess.run(cmd, cwd=ROOT, env=_rank_env(rank, 2, _free_port()),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    if rank:
        assert lines == []  # every rank refuses; only rank 0 says why
        return
    assert "Traceback" not in proc.stderr
    assert len(lines) == 3, proc.stderr
    assert "unknown architecture 'foo'" in lines[0]
    assert "--sparsity must be in [0, 1)" in lines[1]
    assert "not divisible by the 2 ranks" in lines[2]
    assert not (tmp_path / "out").exists()  # nothing written for a refused run


def test_architecture_that_does_not_fit_the_data_is_refused_before_the_group(
        tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "hvgp.distributed", *TINY_DIST, "--arch", "cnn1d", "--out",
           str(tmp_path / "out")]
    # WORLD_SIZE=2 with no peer: a rank that got as far as the process group would hang
    proc = subprocess.run(cmd, cwd=ROOT, env=_rank_env(0, 2, _free_port()),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "does not fit data set 'moons'" in proc.stderr and "mlp" in proc.stderr


def test_bad_arguments_under_torchrun_print_no_rank_tracebacks(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "hvgp.distributed", *TINY_DIST, "--arch", "foo", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "[rank0]" not in proc.stderr and "[rank1]" not in proc.stderr, proc.stderr
    assert proc.stderr.count("unknown architecture 'foo'") == 1, proc.stderr


# ---- hvgp.distributed: a stalled rank --------------------------------------------------------
def test_a_stalled_rank_stops_the_others_after_the_timeout(tmp_path: Path) -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "hvgp.distributed", *TINY_DIST, "--epochs", "100000",
           "--timeout", "3", "--out", str(tmp_path)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=_rank_env(r, 2, port), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for r in range(2)]
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "checkpoint.pt").exists():  # both ranks are training
            assert time.monotonic() < deadline, "training never started"
            assert procs[0].poll() is None, procs[0].communicate()[1]
            time.sleep(0.05)
        os.kill(procs[1].pid, signal.SIGSTOP)
        stopped = time.monotonic()
        _, err = procs[0].communicate(timeout=90)
        waited = time.monotonic() - stopped
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert procs[0].returncode == 1, err
    assert 2.5 < waited < 60
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "rank 0: a collective did not complete within 3 s (--timeout)" in lines[0]
    assert "checkpoint.pt is intact" in lines[0]


def test_init_distributed_refuses_a_bad_timeout() -> None:
    from hvgp.distributed import init_distributed

    for bad in (0, -1.0, float("inf"), "10"):
        with pytest.raises(ValueError, match="timeout"):
            init_distributed("gloo", "cpu", timeout=bad)  # type: ignore[arg-type]


def test_the_launcher_checks_flags_once_and_summarises_a_failed_rank(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "hvgp.distributed", "--nproc-per-node", "2", *TINY_DIST,
            "--epochs", "1", "--out", str(tmp_path / "out")]
    proc = subprocess.run([*base, "--arch", "foo"], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "hvgp.distributed: error: unknown architecture 'foo'; choose from cnn1d, mlp, "
        "resnet18, resnet50, wrn-22-2"]
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    proc = subprocess.run([*base, "--resume", str(bad)], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert 2 <= len(lines) <= 3, proc.stderr  # the rank(s) that failed, then the summary
    assert all("not a valid torch checkpoint" in line for line in lines[:-1])
    assert lines[-1].startswith("hvgp.distributed: failed: rank ")


# ---- reliability pictures: nothing covers the bars -------------------------------------------
def _probs(kind: str, n: int = 4000, c: int = 10, seed: int = 0):
    """A confident accurate model (like the demo's), an under-confident or a poor one."""
    import torch

    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n,), generator=g)
    scale = {"confident": 9.0, "under": 1.2, "poor": 2.0}[kind]
    logits = torch.randn(n, c, generator=g)
    hit = torch.rand(n, generator=g) < {"confident": 0.97, "under": 0.9, "poor": 0.3}[kind]
    logits[torch.arange(n), torch.where(hit, labels, (labels + 1) % c)] += scale
    return logits.softmax(-1), labels


def _overlaps(fig) -> list[str]:
    """Legends / texts of every axes drawn over a bar or a marker line of that axes."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    fig.draw_without_rendering()
    r = fig._get_renderer()
    found = []
    for i, ax in enumerate(fig.axes):
        boxes = [p.get_window_extent(r) for p in ax.patches
                 if isinstance(p, Rectangle) and p.get_height() != 0 and p.get_width() != 0]
        boxes += [ln.get_window_extent(r) for ln in ax.lines
                  if isinstance(ln, Line2D) and len(set(ln.get_xdata())) == 1]  # axvlines
        covers = [a for a in (ax.get_legend(), *ax.texts) if a is not None]
        for a in covers:
            box = a.get_window_extent(r)
            found += [f"axes {i}: {type(a).__name__}" for b in boxes if box.overlaps(b)][:1]
        if len(covers) == 2 and covers[0].get_window_extent(r).overlaps(
                covers[1].get_window_extent(r)):
            found.append(f"axes {i}: legend over the ECE text")
    return found


@pytest.mark.parametrize("kinds", [("confident",), ("confident", "under", "poor"),
                                   ("under",), ("poor", "confident")])
def test_legends_and_the_ece_cover_no_bars(kinds: tuple[str, ...]) -> None:
    from hvgp.plots import reliability_diagram, reliability_grid

    fig = reliability_grid({k: _probs(k, seed=i) for i, k in enumerate(kinds)})
    assert _overlaps(fig) == []
    probs, labels = _probs(kinds[0])
    assert _overlaps(reliability_diagram(probs, labels).figure) == []


def test_reliability_grid_takes_a_title() -> None:
    from hvgp.plots import reliability_grid

    fig = reliability_grid({"a": _probs("confident")}, title="seed 0 of 5")
    assert fig.get_suptitle() == "seed 0 of 5"


# ---- make demo: the reliability picture says which seed it shows -----------------------------
def test_demo_reliability_picture_names_its_seed(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    import hvgp.plots
    from hvgp.demo import reliability_picture

    seen: dict = {}
    real = hvgp.plots.reliability_grid

    def spy(results, path=None, title=None, **kw):
        seen.update(keys=list(results), title=title)
        return real(results, path=path, title=title, **kw)

    monkeypatch.setattr(hvgp.plots, "reliability_grid", spy)
    runs = [SimpleNamespace(config=SimpleNamespace(model=m, seed=s, data="mnist1d"),
                            samples=_probs("confident", n=500, seed=s)[0],
                            labels=_probs("confident", n=500, seed=s)[1])
            for s in range(3) for m in ("cigl", "rigl")]
    shown = reliability_picture(tmp_path / "r.png", runs, seed=0)
    assert shown == "seed 0 of seeds 0-2"
    assert seen["keys"] == ["cigl (seed 0)", "rigl (seed 0)"]
    assert "seed 0 of seeds 0-2" in seen["title"] and "table averages" in seen["title"]
    assert (tmp_path / "r.png").stat().st_size > 1000


def test_sweep_seeds_mean_what_compare_seeds_mean() -> None:
    from hvgp.cli import build_parser

    p = build_parser()
    try:
        sweep = p.parse_args(["sweep", "--seeds", "0,1,2"]).seeds
    except SystemExit:
        pytest.fail("hvgp sweep refuses --seeds 0,1,2 (it takes a count, compare a list)")
    assert sweep == p.parse_args(["compare", "--seeds", "0,1,2"]).seeds == [0, 1, 2]


def test_every_sweep_flag_has_help() -> None:
    import argparse

    from hvgp.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    sweep = sub.choices["sweep"]
    assert [a.dest for a in sweep._actions if a.option_strings and not a.help] == []


def _fitted_cigl():
    """A tiny CigL after weight averaging (random mask p = 0.2)."""
    import torch
    from _train_script import tiny_data, tiny_estimator
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    est = tiny_estimator("mlp", drop_rate=0.2)
    return est.fit(DataLoader(tiny_data(), batch_size=16), 3), tiny_data().tensors[0][:12]


def test_pyro_predictive_parallel_works_on_the_program() -> None:
    import pyro
    import torch

    est, x = _fitted_cigl()
    pyro.set_rng_seed(0)
    out = pyro.infer.Predictive(est.bnn.model, guide=est.bnn.guide, num_samples=8,
                                parallel=True)(x)
    assert out["obs"].shape == (8, 12)
    z = next(v for k, v in out.items() if k.endswith("_z"))
    assert z.shape[0] == 8 and not torch.equal(z[0], z[1])  # 8 different random masks


def test_the_averaged_program_has_a_name_and_is_what_predict_uses() -> None:
    import torch

    est, x = _fitted_cigl()
    avg = est.averaged_bnn
    assert avg.net is est.model_ and avg.net is not est.bnn.net
    torch.testing.assert_close(avg.net(x).softmax(-1), est.predict(x).probs[0])


def _png_sizes(notebook: Path) -> list[tuple[int, int]]:
    """(width, height) in pixels of every PNG output of a committed notebook."""
    import base64
    import json
    import struct

    sizes = []
    for cell in json.loads(notebook.read_text())["cells"]:
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                sizes.append(struct.unpack(">II", base64.b64decode(png)[16:24]))
    return sizes


def test_committed_notebook_figures_were_drawn_at_the_readable_dpi() -> None:
    """The executed notebooks carry figures at >= 100 dpi: a 6-inch-wide figure is >= 600 px
    (at the old 60-72 dpi the widest single panels were 330-440 px)."""
    for nb in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        sizes = _png_sizes(nb)
        assert sizes, f"{nb.name} has no figure outputs (execute it: notebooks/build.py)"
        assert min(w for w, _ in sizes) >= 450, f"{nb.name}: figure widths {sizes}"


def test_notebook_figures_are_readable() -> None:
    """Figures at >= 100 dpi, and notebook 05's grid of panels without overlapping titles."""
    import re

    src = ROOT / "notebooks" / "src"
    for path in sorted(src.glob("nb*.py")):
        text = path.read_text()
        dpis = [int(d) for d in re.findall(r"dpi[\"']?\s*[:=(]\s*(\d+)", text)]
        dpis += [int(d) for d in re.findall(r"set_dpi\((\d+)\)", text)]
        assert dpis and min(dpis) >= 100, f"{path.name}: figure dpi {dpis}"
    nb05 = (src / "nb05_gp_baselines.py").read_text()
    assert 'ax.set_title(f"{name}: {label}"' not in nb05  # one long title per panel overlapped
