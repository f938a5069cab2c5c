"""§1.4 Training: L_total = L_rec + λ·L_ssl with per-position cosine distances (eq. 7–11).

Defaults are §2.3: Adam lr 1e-3, betas (0.5, 0.999), batch 16, 100 epochs, λ = 0.1, K = 4.
The training set is the normal images only; nothing here ever sees the test set (no model selection).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Mapping

import torch
from tqdm.auto import tqdm

from .config import ModelConfig, TrainConfig
from .device import resolve_device
from .errors import TrainingError
from .features import cosine_distance, fuse_features
from .model import ReconstructionNet
from .optim import Adam, epoch_mean
from .recombine import check_grid, draw_permutations, recombine


@torch.no_grad()
def channel_stats(maps: Mapping[int, torch.Tensor], channels: int, bs: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population std of the fused train z over all images and positions (float64 sums);
    the std is floored at 1e-6 so a constant channel cannot divide by zero."""
    n = int(next(iter(maps.values())).shape[0])
    total = sq = None
    count = 0
    for s in range(0, n, bs):
        z = fuse_features({l: m[s : s + bs] for l, m in maps.items()}, channels).double()
        part, part_sq = z.sum(dim=(0, 2, 3)), z.square().sum(dim=(0, 2, 3))
        total, sq = (part, part_sq) if total is None else (total + part, sq + part_sq)
        count += z.shape[0] * z.shape[2] * z.shape[3]
    mean = total / count
    std = (sq / count - mean.square()).clamp_min(0).sqrt().clamp_min(1e-6)
    return mean.float(), std.float()


@dataclass
class TrainResult:
    model: ReconstructionNet
    history: list[dict]  # per epoch: loss, rec, ssl

    def summary(self) -> dict:
        return {"epochs": len(self.history), "final": self.history[-1] if self.history else None}


def train_model(
    layer_maps: Mapping[int, torch.Tensor],
    channels: int,
    model_config: ModelConfig,
    config: TrainConfig,
    *,
    progress: bool = True,
    on_epoch: Callable[[int, dict, ReconstructionNet], None] | None = None,
) -> TrainResult:
    """Train the reconstruction network on cached per-layer backbone maps of the normal train images.

    ``on_epoch(epoch, record, model)`` runs after each epoch; it may score the model (training resumes in
    train mode, and scoring draws no random numbers, so on the CPU the training is bitwise unchanged; tested).

    ``layer_maps``: {layer: (N, C_l, H_l, W_l)} (fp16 or fp32, CPU); moved to the device once and fused
    batch by batch there (§1.1), so a step costs no disk read, no decoding and no backbone forward.
    """
    device = resolve_device(config.device)
    layers = sorted(layer_maps)
    n = int(layer_maps[layers[0]].shape[0])
    if n == 0:
        raise TrainingError("the train set is empty: nothing to train on")
    cpu = device.type == "cpu"
    # CPU runs are bitwise reproducible (same seed, machine and thread count; tested) without
    # torch.use_deterministic_algorithms: none of the CPU ops used here has a nondeterministic kernel, and
    # that call imports the whole compiler stack (torch._inductor, ~2.6 s of every training stage).
    if not cpu:
        torch.backends.cudnn.benchmark = True  # GPU: speed over bitwise reproducibility
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)  # batch order and recombination permutations

    maps = {l: layer_maps[l].to(device, non_blocking=True) for l in layers}
    with torch.no_grad():
        h, w = fuse_features({l: m[:1] for l, m in maps.items()}, channels).shape[-2:]
    model_config.check_input(h, w)
    if config.ssl:
        check_grid(h, w, config.ssl_grid)
    model = ReconstructionNet(model_config).to(device)
    if model_config.input_norm == "channel":
        model.set_input_stats(*channel_stats(maps, channels, bs=config.batch_size))
    model.train()
    opt = Adam(model.parameters(), lr=config.lr, betas=config.betas)
    bs = min(config.batch_size, n)  # a batch larger than the train set is simply the whole set
    steps = math.ceil(n / bs)
    history: list[dict] = []
    bar = tqdm(range(config.epochs), desc="train", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        # The epoch's batch order and recombination permutations are drawn up front (the same random
        # stream as drawing them batch by batch) and moved to the device once: no host transfer, and so
        # no host-device synchronisation, inside the step loop.
        order = torch.randperm(n, generator=gen).to(device)
        perms = draw_permutations(n, config.ssl_grid, gen).to(device) if config.ssl else None
        sums = torch.zeros(steps, 3, device=device)  # per batch: total, rec, ssl (one sync per epoch)
        for step in range(steps):
            idx = order[step * bs : (step + 1) * bs]
            with torch.no_grad():
                z = model.normalize(fuse_features({l: m[idx] for l, m in maps.items()}, channels))
            if config.ssl:
                z_prime = recombine(z, config.ssl_grid, perm=perms[step * bs : (step + 1) * bs])
                # z and z' go through the network together (Fig. 1, both branches share weights).
                out = model(torch.cat([z, z_prime], dim=0))
                z_hat, z_hat_prime = out[: len(z)], out[len(z) :]
                l_rec = cosine_distance(z, z_hat).mean()  # eq. 9 (mean over H×W and the batch)
                l_ssl = cosine_distance(z, z_hat_prime).mean()  # eq. 10: ẑ' is pulled towards z, not z'
                loss = l_rec + config.ssl_lambda * l_ssl  # eq. 11
            else:
                l_rec = cosine_distance(z, model(z)).mean()
                l_ssl = torch.zeros((), device=device)
                loss = l_rec
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums[step] = torch.stack([loss.detach(), l_rec.detach(), l_ssl.detach()])
        mean = epoch_mean(sums, bs, n, epoch + 1)
        record = {"epoch": epoch + 1, "loss": mean[0].item(), "rec": mean[1].item(), "ssl": mean[2].item()}
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        if on_epoch is not None:
            on_epoch(epoch + 1, record, model)
            model.train()
    model.eval()
    return TrainResult(model=model, history=history)


def save_model(
    path, result: TrainResult, *, layers, channels: int, train_config: TrainConfig, meta: dict | None = None
) -> None:
    """Atomically save weights + everything needed to score with them (layers, C, architecture)."""
    from .io import atomic_path

    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
        "model_config": result.model.config.to_dict(),
        "layers": list(layers),
        "channels": int(channels),
        "train_config": asdict(train_config),
        "history": result.history,
        "meta": meta or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path, device: torch.device | str = "cpu") -> tuple[ReconstructionNet, dict]:
    """Load a checkpoint written by :func:`save_model`; returns (model in eval mode, payload without weights)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    cfg = payload["model_config"]
    model = ReconstructionNet(ModelConfig(**cfg))
    model.load_state_dict(payload.pop("state_dict"))
    return model.to(device).eval(), payload
