"""CUDA runs of the training and prediction paths (skipped without a GPU).

``benchmarks/gpu_check.py`` runs these with ``pytest -m cuda`` on a machine with a GPU.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hvgp.infer import CigL, load_checkpoint
from hvgp.infer.predictive import predictive_samples
from hvgp.nn import build_model

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _data(n: int = 64, seed: int = 0) -> DataLoader:
    """Two-feature-sum labels on 40 features; a seeded shuffling loader."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 40, generator=g)
    y = (x[:, :10].sum(1) > 0).long() + (x[:, 10:20].sum(1) > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


def _cigl(arch: str = "cnn1d", **kw) -> CigL:
    """A small CigL on CUDA with frequent topology updates."""
    torch.manual_seed(0)
    return CigL(build_model(arch, (40,), 3, width=0.25), 0.8, drop_rate=0.2, device="cuda",
                delta_t=3, **kw)


@pytest.mark.parametrize("arch", ["mlp", "cnn1d"])
def test_cigl_fits_and_predicts_on_cuda(arch: str) -> None:
    est = _cigl(arch, average_start=0.5).fit(_data(), epochs=2)
    assert all(p.is_cuda for p in est.net.parameters())
    assert est.trainer is not None and torch.isfinite(torch.tensor(est.history_[-1]["loss"]))
    x = torch.randn(9, 40)
    for vec in (True, False, None):
        ps = est.predict(x, num_samples=5, vectorize=vec)
        assert ps.probs.shape == (5, 9, 3) and torch.isfinite(ps.probs).all()
        torch.testing.assert_close(ps.probs.sum(-1), torch.ones(5, 9, device=ps.probs.device))
    torch.manual_seed(1)
    a = predictive_samples(est.bnn, x, 6, vectorize=True).probs
    torch.manual_seed(1)
    b = predictive_samples(est.bnn, x, 6, vectorize=False).probs
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)  # same Z on both paths


def test_resume_on_cuda_reproduces_the_uninterrupted_run(tmp_path) -> None:
    from hvgp.infer import Callback

    class _Stop(Callback):
        def on_epoch_end(self, trainer) -> None:
            if trainer.epoch == 1:
                raise KeyboardInterrupt

    full = _cigl("mlp", checkpoint=tmp_path / "a.pt").fit(_data(), epochs=3)
    with pytest.raises(KeyboardInterrupt):
        _cigl("mlp", checkpoint=tmp_path / "b.pt", callbacks=[_Stop()]).fit(_data(), epochs=3)
    assert load_checkpoint(tmp_path / "b.pt")["epoch"] == 1
    resumed = _cigl("mlp", checkpoint=tmp_path / "b.pt")
    resumed.fit(_data(), epochs=3, resume=tmp_path / "b.pt")
    for (k, a), (_, b) in zip(full.bnn.state_dict().items(), resumed.bnn.state_dict().items()):
        assert torch.equal(a, b), k
