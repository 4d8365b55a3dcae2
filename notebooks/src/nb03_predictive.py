"""Cells of notebook 03: predictive distributions by Monte Carlo over the random mask Z."""

CELLS = [
    ("md", r"""
# 03 — Sampling predictive distributions

A CigL network is trained with a random mask $Z\sim\mathrm{Bernoulli}(1-p)$ on its active
weights. At test time the paper uses the **averaged deterministic** model (no $Z$); hvgp also
offers Monte Carlo over $Z$: `est.predict(x, num_samples=S)` runs $S$ masked networks in one
vectorised pass and returns `PredictiveSamples` with a leading sample axis,

$$p(y\mid x) \approx \frac1S\sum_{s=1}^S p(y\mid x, W\odot Z_s/(1-p)),\qquad Z_s\sim
\mathrm{Bernoulli}(1-p).$$

This notebook compares the two on a 1-D regression problem with a gap in the training inputs
(`gap1d`) and on two moons: fan plots, decision-boundary uncertainty, and the split of total
uncertainty (entropy) into its epistemic part (mutual information).
"""),
    ("code", r"""
%matplotlib inline
%config InlineBackend.figure_formats = ["png"]
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
"""),
    ("code", r"""
import os
import time

import matplotlib.pyplot as plt
import torch

from hvgp import PredictiveSamples
from hvgp.data import get_loaders
from hvgp.infer import CigL
from hvgp.metrics import classification_report, regression_report
from hvgp.nn import build_model
from hvgp.plots import regression_fan

QUICK = os.environ.get("HVGP_QUICK") == "1"
plt.rcParams.update({"figure.dpi": 110, "figure.figsize": (6, 3.5)})
S = 16 if QUICK else 128                 # Monte-Carlo samples of Z
REG_EPOCHS = 20 if QUICK else 200
CLS_EPOCHS = 10 if QUICK else 150


def predict(est: CigL, x: torch.Tensor, num_samples: int | None = None,
            chunk: int = 100) -> PredictiveSamples:
    # est.predict in chunks of at most `chunk` points: the Monte-Carlo path runs the model,
    # whose data plate refuses more points than the training set has. Re-seeding before each
    # chunk reuses the same S draws of Z, so sample s is one network across all chunks.
    seed = int(torch.randint(2**31 - 1, ()))
    parts = []
    for c in x.split(chunk):
        torch.manual_seed(seed)
        parts.append(est.predict(c, num_samples))
    return PredictiveSamples.concat(parts)
"""),
    ("md", r"""
## 1-D regression with a gap

`gap1d`: $y = \sin 3x + 0.3x^2 + 0.1\,\varepsilon$, training inputs on $[-1, 1]$ without
$(-0.35, 0.35)$, test inputs on $[-1.5, 1.5]$ (the gap *and* beyond the data). A 50 % sparse MLP
with a Gaussian likelihood (noise std learned) is trained by CigL with $p=0.1$ and $p=0.3$.
"""),
    ("code", r"""
train, _, test, info = get_loaders("gap1d", batch_size=32, seed=0, val_fraction=0.0)
x_train, y_train = train.dataset.x, train.dataset.y
x_test, y_test = test.dataset.x, test.dataset.y
x_grid = torch.linspace(-1.5, 1.5, 200).unsqueeze(-1)

regressors = {}
for p in (0.1, 0.3):
    torch.manual_seed(0)
    est = CigL(build_model("mlp", info, width=0.5), sparsity=0.5, drop_rate=p,
               likelihood="normal", optimizer="adam", lr=0.01, weight_decay=1e-4,
               delta_t=50, device="cpu", seed=0)
    t0 = time.perf_counter()
    regressors[p] = est.fit(train, epochs=REG_EPOCHS)
    print(f"p={p}: trained in {time.perf_counter() - t0:.1f} s, "
          f"noise std {est.bnn.likelihood.noise.item():.3f}, "
          f"zero weights {est.sparsity():.2f} (target 0.5; a few active weights are exactly 0)")
"""),
    ("code", r"""
for p, est in regressors.items():
    fig = regression_fan(x_train, y_train, x_grid, predict(est, x_grid, S))
    fig.suptitle(f"CigL p={p}: Monte Carlo over Z, S={S}")
    display(fig)
fig = regression_fan(x_train, y_train, x_grid, predict(regressors[0.3], x_grid))
fig.suptitle("CigL p=0.3: averaged deterministic model (noise band only)")
display(fig)
"""),
    ("md", r"""
The deterministic model's only uncertainty is the learned noise, the same everywhere; the
sampled networks (thin lines) spread out in the gap and beyond the data, more so for larger
$p$. The test points lie in the gap and beyond the data, so coverage and NLL there measure
exactly this:
"""),
    ("code", r"""
rows = []
for p, est in regressors.items():
    for label, samples in [("deterministic", predict(est, x_test)),
                           (f"MC over Z, S={S}", predict(est, x_test, S))]:
        r = regression_report(samples, y_test)
        rows.append((f"p={p}", label, r["rmse"], r["nll"], r["crps"], r["coverage_90"]))
print(f"{'':6s}{'prediction':18s}{'RMSE':>8s}{'NLL':>8s}{'CRPS':>8s}{'cover90':>9s}")
for row in rows:
    print(f"{row[0]:6s}{row[1]:18s}" + "".join(f"{v:8.3f}" for v in row[2:5]) + f"{row[5]:9.2f}")
"""),
    ("md", r"""
## Two moons: decision-boundary uncertainty

An 80 % sparse MLP classifier on two moons, CigL with $p=0.1$. On a grid we compare the
deterministic prediction with $S$ samples over $Z$:

- **entropy** of the mean predictive, $H[\bar p]$ (total uncertainty);
- **mutual information** $H[\bar p] - \frac1S\sum_s H[p_s]$ (the part due to not knowing
  the weights: how much the masked networks disagree). A deterministic model has none.
"""),
    ("code", r"""
train, _, test, info = get_loaders("moons", batch_size=64, seed=0, val_fraction=0.0)
torch.manual_seed(0)
clf = CigL(build_model("mlp", info, width=0.25), sparsity=0.8, drop_rate=0.1, lr=0.05,
           weight_decay=1e-4, delta_t=50, device="cpu", seed=0)
clf.fit(train, epochs=CLS_EPOCHS)

g0, g1 = torch.meshgrid(torch.linspace(-2, 3, 100), torch.linspace(-1.5, 2, 80), indexing="xy")
grid = torch.stack([g0.flatten(), g1.flatten()], -1)
det, mc = predict(clf, grid), predict(clf, grid, S)
panels = [("p(class 1), deterministic", det.mean()[:, 1]), ("p(class 1), MC mean", mc.mean()[:, 1]),
          ("entropy, deterministic", det.entropy()), ("entropy, MC", mc.entropy()),
          ("mutual information, MC", mc.mutual_information())]
fig, axes = plt.subplots(1, 5, figsize=(17, 3.2), sharey=True)
xs, ys = train.dataset.x, train.dataset.y
for ax, (title, values) in zip(axes, panels):
    im = ax.contourf(g0, g1, values.view(g0.shape), levels=20, cmap="viridis")
    ax.scatter(xs[:, 0], xs[:, 1], c=ys, s=4, cmap="coolwarm", edgecolors="none")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.05)
plt.show()
"""),
    ("md", r"""
The sampled networks disagree (mutual information) along the decision boundary and in the
empty regions the boundary extends into. On held-out points, drawn from the same two moons,
here is the deterministic model against Monte Carlo, and the test NLL as a function of $S$:
"""),
    ("code", r"""
x_test, y_test = test.dataset.x, test.dataset.y
keys = ("accuracy", "ece", "nll", "brier", "entropy", "mutual_information")
print(f"{'prediction':16s}" + "".join(f"{k[:10]:>11s}" for k in keys))
for label, samples in [("deterministic", predict(clf, x_test)),
                       (f"MC, S={S}", predict(clf, x_test, S))]:
    r = classification_report(samples, y_test)
    print(f"{label:16s}" + "".join(f"{r[k]:11.4f}" for k in keys))

sizes = [1, 2, 4, 8, 16] + ([] if QUICK else [32, 64, 128])
torch.manual_seed(1)
nll = [classification_report(predict(clf, x_test, s), y_test)["nll"] for s in sizes]
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(sizes, nll, "o-", label="MC over Z")
ax.axhline(classification_report(predict(clf, x_test), y_test)["nll"], color="k", ls="--",
           label="averaged deterministic")
ax.set(xscale="log", xlabel="samples S", ylabel="test NLL", title="two moons")
ax.legend()
plt.show()
"""),
    ("md", r"""
## Take-aways

- `predict(x)` is the paper's deterministic prediction (the averaged network, no $Z$);
  `predict(x, num_samples=S)` treats the random mask as what it is in the model — a latent
  variable — and averages over it.
- Where data are missing (the gap, extrapolation, off the moons) Monte Carlo over $Z$ adds
  epistemic uncertainty that the deterministic model cannot express; on `gap1d` this shows in
  the coverage and NLL table above, and in the mutual-information map.
- On in-distribution test points (two moons) the averaged deterministic model is already well
  calibrated, and the NLL-vs-$S$ curve shows whether sampling helps or hurts there; a single
  sample ($S=1$) is always the noisiest choice. This is why the paper predicts with the averaged
  model and why hvgp keeps MC over $Z$ an option, not the default.
- Every model in hvgp returns the same `PredictiveSamples`, so the same reductions
  (`mean`, `entropy`, `mutual_information`, `variance`) and reports apply to the GP baselines
  of notebook 05.
"""),
]
