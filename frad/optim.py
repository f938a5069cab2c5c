"""Training helpers shared by FRAD (frad.train) and RD (frad.rd.method): Adam without torch.optim's import cost, and the
sample-weighted epoch mean of per-batch losses with a clear divergence error."""

from __future__ import annotations

import torch

from .errors import TrainingError


class Adam:
    """Adam exactly as ``torch.optim.Adam(params, lr, betas, foreach=True)`` computes it: the same state and
    the same call to torch's functional ``torch.optim.adam.adam`` (multi-tensor kernels on CPU and CUDA),
    bitwise equal to ``torch.optim.Adam`` (tested). Why not the class itself: ``torch.optim.Optimizer``
    imports ``torch._dynamo`` when constructed, ~2.5 s of every training stage (30 s of the quick demo,
    ~5 minutes of the 120 trainings of the paper pipeline)."""

    def __init__(self, params, lr: float, betas: tuple[float, float], eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [torch.tensor(0.0, dtype=torch.float32) for _ in self.params]  # on the CPU, as torch keeps them

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        from torch.optim.adam import adam

        live = [i for i, p in enumerate(self.params) if p.grad is not None]  # torch skips params without grad
        if not live:
            return
        pick = lambda seq: [seq[i] for i in live]  # noqa: E731
        adam(
            pick(self.params),
            [self.params[i].grad for i in live],
            pick(self.exp_avgs),
            pick(self.exp_avg_sqs),
            [],
            pick(self.steps),
            foreach=True,
            capturable=False,
            differentiable=False,
            fused=False,
            grad_scale=None,
            found_inf=None,
            has_complex=False,
            amsgrad=False,
            beta1=self.betas[0],
            beta2=self.betas[1],
            lr=self.lr,
            weight_decay=0.0,
            eps=self.eps,
            maximize=False,
        )


def epoch_mean(sums: torch.Tensor, batch_size: int, n: int, epoch: int, lr_key: str = "train.lr") -> torch.Tensor:
    """Sample-weighted mean over an epoch of per-batch losses ``sums`` (steps, k; column 0 = the total), read
    from the device in one sync; a NaN/inf batch raises TrainingError naming the epoch, the batch and ``lr_key``."""
    per_batch = sums.cpu()
    steps = len(per_batch)
    finite = torch.isfinite(per_batch).all(dim=1)
    if not bool(finite.all()):
        bad = int((~finite).nonzero()[0, 0])
        raise TrainingError(
            f"training diverged: loss is {per_batch[bad, 0].item()} at epoch {epoch}, batch {bad + 1} of {steps}; "
            f"check the cached features for NaN/inf or lower {lr_key}"
        )
    weights = torch.tensor([min(batch_size, n - i * batch_size) for i in range(steps)], dtype=per_batch.dtype)
    return (per_batch * weights[:, None]).sum(0) / n
