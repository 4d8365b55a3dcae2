"""On-disk size and CPU inference latency of CSR-sparse vs dense-masked networks.

Why: a sparse model is only worth exporting if it is smaller and, at some sparsity, faster.
For each model (MLP and CNN1d on MNIST-1D-shaped input, 40 features, 10 classes) and
sparsity (80/90/95/99 %, ERK masks), this measures the file written by
:func:`hvgp.export.save_model` (CSR vs dense weights + bool masks) and the best-of-N latency of
one forward pass of the :func:`hvgp.export.to_sparse` network vs the masked dense network,
at batch 1 and batch 512, on one CPU thread. Values are ratios sparse / dense (< 1: sparse
wins). One run; the latency of one configuration is the fastest of ``--repeats`` calls.

Usage: ``python benchmarks/sparse_inference.py [--repeats 50] [--threads 1]``.
Writes ``benchmarks/results/sparse_inference.json`` and ``.png`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from hvgp.export import ArchSpec, save_model, to_sparse
from hvgp.sparsity import SparseTopology

SPARSITIES = (0.8, 0.9, 0.95, 0.99)
MODELS = (ArchSpec("mlp", (40,), 10, 1.0), ArchSpec("mlp", (40,), 10, 4.0),
          ArchSpec("cnn1d", (40,), 10, 1.0))
BATCHES = (1, 512)
RESULTS = Path(__file__).with_name("results")


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` calls after three warm-up calls (the CPU is shared, so the
    minimum is the least disturbed estimate of the cost)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@torch.no_grad()
def measure(spec: ArchSpec, sparsity: float, repeats: int, tmp: Path) -> dict[str, object]:
    """Sizes and latencies of one model at one sparsity."""
    torch.manual_seed(0)
    net = spec.build()
    SparseTopology(net, sparsity, seed=0)
    net.eval()
    sparse = to_sparse(net)
    s_path = save_model(tmp / "s.pt", net, spec)
    d_path = save_model(tmp / "d.pt", net, spec, sparse=False)
    row: dict[str, object] = {
        "model": f"{spec.arch}-w{spec.width:g}", "sparsity": sparsity,
        "size_sparse_bytes": s_path.stat().st_size, "size_dense_bytes": d_path.stat().st_size,
    }
    row["size_ratio"] = row["size_sparse_bytes"] / row["size_dense_bytes"]  # type: ignore[operator]
    for b in BATCHES:
        x = torch.randn(b, *spec.input_shape)
        torch.testing.assert_close(sparse(x), net(x), rtol=1e-4, atol=1e-4)
        dense_t = best_seconds(lambda: net(x), repeats)  # noqa: B023
        sparse_t = best_seconds(lambda: sparse(x), repeats)  # noqa: B023
        row[f"latency_dense_ms_b{b}"] = 1e3 * dense_t
        row[f"latency_sparse_ms_b{b}"] = 1e3 * sparse_t
        row[f"latency_ratio_b{b}"] = sparse_t / dense_t
    return row


def crossover(rows: list[dict], model: str, batch: int) -> float | None:
    """Lowest measured sparsity from which the sparse network is faster, or None."""
    wins = [r["sparsity"] for r in rows
            if r["model"] == model and r[f"latency_ratio_b{batch}"] < 1.0]
    return min(wins) if wins else None


def plot(rows: list[dict], path: Path) -> None:
    """Latency ratio per model and batch, and size ratio, against sparsity."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax_t, ax_s = fig.subplots(1, 2)
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        sp = [100 * r["sparsity"] for r in mine]
        for b, style in zip(BATCHES, ("--", "-")):
            ax_t.plot(sp, [r[f"latency_ratio_b{b}"] for r in mine], style, marker="o",
                      label=f"{model}, batch {b}")
        ax_s.plot(sp, [r["size_ratio"] for r in mine], marker="o", label=model)
    for ax, title in ((ax_t, "CPU latency, sparse / dense-masked"),
                      (ax_s, "file size, sparse / dense-masked")):
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xlabel("sparsity (%)")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "sparse_inference.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in MODELS:
            for s in SPARSITIES:
                rows.append(measure(spec, s, args.repeats, Path(tmp)))
    head = (f"{'model':<10} {'sparsity':>8} {'size s/d':>9} "
            + " ".join(f"{'lat s/d b' + str(b):>11} {'dense ms':>9} {'sparse ms':>9}"
                       for b in BATCHES))
    print(head)
    for r in rows:
        print(f"{r['model']:<10} {r['sparsity']:>8.2f} {r['size_ratio']:>9.3f} " + " ".join(
            f"{r[f'latency_ratio_b{b}']:>11.3f} {r[f'latency_dense_ms_b{b}']:>9.3f} "
            f"{r[f'latency_sparse_ms_b{b}']:>9.3f}" for b in BATCHES))
    wins = {f"{m}/b{b}": crossover(rows, m, b)
            for m in dict.fromkeys(r["model"] for r in rows) for b in BATCHES}
    print("sparse faster from sparsity (None = never at 80-99 %):", wins)
    meta = {"torch": torch.__version__, "threads": args.threads, "repeats": args.repeats,
            "machine": platform.machine(), "processor": platform.processor(),
            "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows, "sparse_wins_from": wins},
                                   indent=2))
    plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
