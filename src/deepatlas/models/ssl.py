"""Self-supervised representation learners: SimCLR, BYOL, MoCo v2 (around any image encoder) and MAE.

Each model has ``forward_features(x) -> (B, D)``, the frozen representation that linear probes
and k-NN classifiers read (the encoder's penultimate features, before any projection head,
as in all four papers), and ``ssl_loss(inputs, step, generator) -> (loss, logs)``, called by
the ``ssl`` task with two augmented views (``n_views = 2``) or one (MAE).

- SimCLR (Chen et al. 2020): encoder f, projection head g = Linear-BN-ReLU-Linear, NT-Xent on
  z = g(f(x)) of both views (``deepatlas.nn.contrastive.nt_xent``).
- BYOL (Grill et al. 2020): online network (encoder, projector, predictor q) and a target
  network (encoder, projector) that is an exponential moving average of the online one,
      xi <- tau xi + (1 - tau) theta,
      tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2   (tau_base = 0.996, K training steps),
  loss 2 - 2 cos(q(z_1), z'_2) symmetrised, the target side under stop-gradient.
- MoCo v2 (He et al. 2020; Chen et al. 2020): query encoder + MLP head, a key encoder that is
  the momentum average (m = 0.999) of it, a queue of K = 65536 past keys (a FIFO: the newest
  batch of keys replaces the oldest) and InfoNCE at temperature 0.2. With one device, MoCo's
  shuffling BN is emulated: keys are encoded in ``shuffle_groups`` sub-batches of a random
  permutation, so that BN statistics cannot leak which key matches which query.
- MAE (He et al. 2022): a ViT encoder that sees only the visible patches (75% of each image's
  patches masked at random by argsort of uniform noise), a light Transformer decoder that
  takes the encoded visible tokens plus a shared learned mask token at each masked position
  (fixed 2-D sine-cosine position embeddings in both), and an MSE loss on the masked patches
  only, optionally against per-patch normalised pixels (their ``norm_pix_loss``).

The target/key networks, the queue and its pointer are sub-modules and buffers, so they are in
the model's ``state_dict`` and in every checkpoint: a resumed run continues exactly. Their
parameters have ``requires_grad = False``: the optimizer never sees them and they get no
gradient. The momentum update runs at the start of each training step (MoCo's own order),
i.e. after the previous optimizer step; in eval mode nothing moves.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import ClassVar, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nn.contrastive import byol_loss, info_nce, nt_xent
from ..nn.transformer import TransformerBlock
from ..registry import MODELS, model_config, register_model
from ..schema import option


def build_encoder(name: str, in_channels: int, input_size: int, path: str = "model.encoder") -> nn.Module:
    """A registered image classifier without its head: ``forward_features`` is the representation."""
    entry = MODELS.get(name, path)
    fields = {f for f in getattr(entry.config, "__dataclass_fields__", {})}
    if "in_channels" not in fields or not hasattr(entry.factory, "forward_features"):
        raise ConfigError(
            f"{path}: {name!r} is not an image classifier with forward_features (try resnet20, resnet18, lenet5)."
        )
    overrides = {k: v for k, v in (("in_channels", in_channels), ("input_size", input_size)) if k in fields}
    encoder = entry.factory(model_config(name, path, **overrides))
    width = encoder.head.in_features
    encoder.head = nn.Identity()  # the classifier layer is not part of the representation
    encoder.feature_dim = width
    return encoder


def mlp_head(d_in: int, hidden: int, d_out: int, batch_norm: bool = True) -> nn.Sequential:
    """Linear-(BN)-ReLU-Linear: SimCLR's projection head, BYOL's projector and predictor, MoCo v2's head."""
    layers: list[nn.Module] = [nn.Linear(d_in, hidden, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden, d_out)]
    return nn.Sequential(*layers)


@torch.no_grad()
def momentum_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """xi <- tau xi + (1 - tau) theta for every parameter; buffers (BN statistics) are copied."""
    t_params, o_params = list(target.parameters()), [p.detach() for p in online.parameters()]
    torch._foreach_lerp_(t_params, o_params, 1.0 - tau)
    for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
        tb.copy_(ob)


def frozen_copy(module: nn.Module) -> nn.Module:
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


# --------------------------------------------------------------------------- the contrastive methods


@dataclass(frozen=True)
class SimCLRConfig:
    encoder: str = option("resnet20", "registered image classifier used as the encoder f (its head is dropped)")
    proj_hidden: int = option(512, "hidden width of the projection head g", low=1)
    proj_dim: int = option(128, "output width of the projection head", low=1)
    temperature: float = option(0.5, "NT-Xent temperature tau", low=1e-4)
    in_channels: int = option(1, "image channels", low=1)
    input_size: int = option(28, "image side in pixels", low=1)


class SimCLR(nn.Module):
    """f + g, NT-Xent on the two views' projections."""

    n_views: ClassVar[int] = 2
    ssl_learner: ClassVar[bool] = True  # declared for the ssl task (ssl_loss, forward_features, n_views)

    def __init__(self, config: SimCLRConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = build_encoder(c.encoder, c.in_channels, c.input_size)
        self.projector = mlp_head(self.encoder.feature_dim, c.proj_hidden, c.proj_dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.forward_features(x))

    def ssl_loss(self, views: tuple[torch.Tensor, ...], step: int, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self(torch.cat(views))  # both views through BN together, as in SimCLR's global-BN batch
        z1, z2 = z.chunk(2)
        loss = nt_xent(z1, z2, self.config.temperature)
        return loss, {"loss": loss.detach()}


@dataclass(frozen=True)
class BYOLConfig:
    encoder: str = option("resnet20", "registered image classifier used as the encoder (its head is dropped)")
    proj_hidden: int = option(1024, "hidden width of projector and predictor (the paper: 4096)", low=1)
    proj_dim: int = option(256, "projection width (the paper: 256)", low=1)
    tau_base: float = option(0.996, "base target decay tau_base", low=0.0, high=1.0)
    tau_steps: Optional[int] = option(
        None, "K of the cosine tau schedule: tau reaches 1 after K steps (null: the run's optimizer steps, so tau "
        "reaches 1 as training ends, as in the paper)", low=1)
    tau_schedule: Literal["cosine", "constant"] = option("cosine", "cosine: BYOL's schedule from tau_base to 1; constant: tau_base throughout")
    in_channels: int = option(1, "image channels", low=1)
    input_size: int = option(28, "image side in pixels", low=1)


def cosine_tau(base: float, step: int, total: int | None) -> float:
    """BYOL's schedule tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2 (constant when K is None)."""
    if total is None:
        return base
    k = min(step, total)
    return 1 - (1 - base) * (math.cos(math.pi * k / total) + 1) / 2


class BYOL(nn.Module):
    """Online encoder + projector + predictor; EMA target encoder + projector under stop-gradient."""

    n_views: ClassVar[int] = 2
    ssl_learner: ClassVar[bool] = True  # declared for the ssl task (ssl_loss, forward_features, n_views)

    def __init__(self, config: BYOLConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = build_encoder(c.encoder, c.in_channels, c.input_size)
        self.projector = mlp_head(self.encoder.feature_dim, c.proj_hidden, c.proj_dim)
        self.predictor = mlp_head(c.proj_dim, c.proj_hidden, c.proj_dim)
        self.target_encoder = frozen_copy(self.encoder)
        self.target_projector = frozen_copy(self.projector)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.forward_features(x)

    def update_target(self, tau: float) -> None:
        momentum_update(self.target_encoder, self.encoder, tau)
        momentum_update(self.target_projector, self.projector, tau)

    def ssl_loss(self, views: tuple[torch.Tensor, ...], step: int, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        tau = cosine_tau(c.tau_base, step, c.tau_steps) if c.tau_schedule == "cosine" else c.tau_base
        if self.training:
            self.update_target(tau)
        x = torch.cat(views)
        p1, p2 = self.predictor(self.projector(self.encoder.forward_features(x))).chunk(2)
        with torch.no_grad():
            self.target_encoder.train(self.training)
            t1, t2 = self.target_projector(self.target_encoder.forward_features(x)).chunk(2)
        loss = byol_loss(p1, t2) + byol_loss(p2, t1)  # symmetrised: each view predicts the other's target
        return loss, {"loss": loss.detach(), "tau": torch.tensor(tau)}


@dataclass(frozen=True)
class MoCoConfig:
    encoder: str = option("resnet20", "registered image classifier used as the encoder (its head is dropped)")
    proj_hidden: int = option(512, "hidden width of the MLP head (MoCo v2: 2048)", low=1)
    proj_dim: int = option(128, "key/query width (MoCo: 128)", low=1)
    queue_size: int = option(65536, "keys K kept in the queue (MoCo: 65536)", low=1)
    momentum: float = option(0.999, "key encoder momentum m", low=0.0, high=1.0)
    temperature: float = option(0.2, "InfoNCE temperature (MoCo v2: 0.2)", low=1e-4)
    shuffle_groups: int = option(2, "key sub-batches of a random permutation, each with its own BN statistics (1: off)", low=1)
    in_channels: int = option(1, "image channels", low=1)
    input_size: int = option(28, "image side in pixels", low=1)


class MoCo(nn.Module):
    """Query encoder + head, momentum key encoder + head, a FIFO queue of normalised keys."""

    n_views: ClassVar[int] = 2
    ssl_learner: ClassVar[bool] = True  # declared for the ssl task (ssl_loss, forward_features, n_views)

    def __init__(self, config: MoCoConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = build_encoder(c.encoder, c.in_channels, c.input_size)
        self.projector = mlp_head(self.encoder.feature_dim, c.proj_hidden, c.proj_dim, batch_norm=False)
        self.key_encoder = frozen_copy(self.encoder)
        self.key_projector = frozen_copy(self.projector)
        # a fixed initial queue of random unit keys, as in MoCo; seeded so that it does not shift the global RNG
        init = torch.randn(c.queue_size, c.proj_dim, generator=torch.Generator().manual_seed(0))
        self.register_buffer("queue", F.normalize(init, dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.forward_features(x)

    def update_keys(self, m: float) -> None:
        momentum_update(self.key_encoder, self.encoder, m)
        momentum_update(self.key_projector, self.projector, m)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest ``len(keys)`` entries (wrapping around) and move the pointer."""
        k = len(keys)
        if k > self.config.queue_size:
            keys, k = keys[-self.config.queue_size:], self.config.queue_size
        slots = (self.queue_ptr + torch.arange(k, device=keys.device)) % self.config.queue_size
        self.queue[slots] = keys.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + k) % self.config.queue_size)

    @torch.no_grad()
    def keys(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Normalised keys, encoded in shuffled sub-batches (single-device shuffling BN)."""
        self.key_encoder.train(self.training)
        groups = min(self.config.shuffle_groups, len(x))
        perm = torch.randperm(len(x), generator=generator).to(x.device)
        chunks = [self.key_projector(self.key_encoder.forward_features(part)) for part in x[perm].chunk(groups)]
        k = torch.empty_like(torch.cat(chunks))
        k[perm] = torch.cat(chunks)
        return F.normalize(k.float(), dim=1)

    def ssl_loss(self, views: tuple[torch.Tensor, ...], step: int, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.training:
            self.update_keys(self.config.momentum)
        x1, x2 = views
        q = self.projector(self.encoder.forward_features(torch.cat([x1, x2])))
        k = self.keys(torch.cat([x2, x1]), generator)  # symmetrised: each view's key is the other view
        queue = self.queue.clone()
        loss = info_nce(q, k, queue, self.config.temperature)
        if self.training:
            self.enqueue(k[: len(x1)])  # one key per image enters the queue
        return loss, {"loss": loss.detach()}


# --------------------------------------------------------------------------- MAE


def sincos_2d(dim: int, side: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings (side * side, dim): half the channels per axis."""
    if dim % 4:
        raise ConfigError(f"model.dim: MAE's 2-D sine-cosine embedding needs a multiple of 4, got {dim}.")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float64), torch.arange(side, dtype=torch.float64), indexing="ij")

    def axis(pos: torch.Tensor) -> torch.Tensor:
        out = pos.reshape(-1, 1) * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    return torch.cat([axis(ys), axis(xs)], dim=1).float()


@dataclass(frozen=True)
class MAEConfig:
    patch_size: int = option(4, "side of the square patches in pixels", low=1)
    dim: int = option(192, "encoder width (a multiple of 4)", low=4)
    depth: int = option(6, "encoder layers", low=1)
    heads: int = option(3, "encoder attention heads", low=1)
    mlp_ratio: float = option(4.0, "feed-forward width / model width", low=0.25)
    decoder_dim: int = option(96, "decoder width (a multiple of 4; MAE: 512 for ViT-B)", low=4)
    decoder_depth: int = option(2, "decoder layers (MAE: 8; light)", low=1)
    decoder_heads: int = option(3, "decoder attention heads", low=1)
    mask_ratio: float = option(0.75, "fraction of each image's patches that are masked", low=0.0, high=0.99)
    norm_pix_loss: bool = option(True, "target: pixels normalised per patch (mean 0, variance 1)")
    in_channels: int = option(1, "image channels", low=1)
    input_size: int = option(28, "image side in pixels (a multiple of patch_size)", low=1)

    def validate(self, path: str) -> None:
        if self.input_size % self.patch_size:
            raise ConfigError(f"{path}.patch_size: input_size {self.input_size} is not a multiple of patch_size {self.patch_size}.")
        for width, heads, key in ((self.dim, self.heads, "heads"), (self.decoder_dim, self.decoder_heads, "decoder_heads")):
            if width % heads:
                raise ConfigError(f"{path}.{key}: the width ({width}) must be divisible by {key} ({heads}).")
        for width, key in ((self.dim, "dim"), (self.decoder_dim, "decoder_dim")):
            if width % 4:
                raise ConfigError(f"{path}.{key}: the 2-D sine-cosine embedding needs a multiple of 4, got {width}.")


def random_masking(n: int, length: int, ratio: float, generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's per-image random masking by argsort of uniform noise.

    Returns ``keep`` (n, len_keep) indices of the visible patches, ``restore`` (n, length), the
    inverse permutation, and ``mask`` (n, length): 1 on masked patches, 0 on visible ones.
    """
    len_keep = int(length * (1 - ratio))
    noise = torch.rand(n, length, generator=generator).to(device)
    shuffle = noise.argsort(dim=1)
    restore = shuffle.argsort(dim=1)
    mask = torch.ones(n, length, device=device)
    mask[:, :len_keep] = 0
    return shuffle[:, :len_keep], restore, torch.gather(mask, 1, restore)


class MAE(nn.Module):
    """Masked autoencoder: ViT encoder on the visible patches, light decoder, loss on the masked ones."""

    n_views: ClassVar[int] = 1
    ssl_learner: ClassVar[bool] = True  # declared for the ssl task (ssl_loss, forward_features, n_views)
    reconstructs: ClassVar[bool] = True  # reconstruct(x, generator): the ssl task draws it

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = c = config
        self.side = c.input_size // c.patch_size
        self.num_patches = self.side ** 2
        patch_dim = c.patch_size ** 2 * c.in_channels
        self.patch_embed = nn.Conv2d(c.in_channels, c.dim, c.patch_size, stride=c.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.register_buffer("pos_embed", sincos_2d(c.dim, self.side)[None], persistent=False)
        self.blocks = nn.ModuleList(TransformerBlock(c.dim, c.heads, int(c.dim * c.mlp_ratio)) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim)
        self.decoder_embed = nn.Linear(c.dim, c.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_dim))
        self.register_buffer("decoder_pos_embed", sincos_2d(c.decoder_dim, self.side)[None], persistent=False)
        self.decoder_blocks = nn.ModuleList(
            TransformerBlock(c.decoder_dim, c.decoder_heads, int(c.decoder_dim * c.mlp_ratio)) for _ in range(c.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(c.decoder_dim)
        self.decoder_pred = nn.Linear(c.decoder_dim, patch_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # as a linear layer, like MAE
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                nn.init.ones_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, L, p*p*C), patches in row-major order."""
        p, c = self.config.patch_size, self.config.in_channels
        b = x.shape[0]
        x = x.reshape(b, c, self.side, p, self.side, p)
        return x.permute(0, 2, 4, 3, 5, 1).reshape(b, self.num_patches, p * p * c)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        p, c = self.config.patch_size, self.config.in_channels
        b = patches.shape[0]
        x = patches.reshape(b, self.side, self.side, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, c, self.side * p, self.side * p)

    def encode(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder tokens (B, 1 + visible, D): [cls] first; ``keep`` None: every patch."""
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, L, D)
        if keep is not None:
            tokens = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, tokens.shape[-1]))
        cls = self.cls_token.expand(len(x), -1, -1)
        h = torch.cat([cls, tokens], dim=1)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def decode(self, latent: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
        """Predicted patches (B, L, p*p*C) from the encoded visible tokens and mask tokens."""
        h = self.decoder_embed(latent)
        b, visible = h.shape[0], h.shape[1] - 1
        masks = self.mask_token.expand(b, self.num_patches - visible, -1)
        seq = torch.cat([h[:, 1:], masks], dim=1)  # in shuffled order: visible first
        seq = torch.gather(seq, 1, restore[..., None].expand(-1, -1, seq.shape[-1]))  # back to patch order
        h = torch.cat([h[:, :1], seq + self.decoder_pos_embed], dim=1)
        for block in self.decoder_blocks:
            h = block(h)
        return self.decoder_pred(self.decoder_norm(h))[:, 1:]

    def target(self, x: torch.Tensor) -> torch.Tensor:
        target = self.patchify(x)
        if self.config.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        return target

    @staticmethod
    def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over the masked patches only."""
        per_patch = (pred.float() - target.float()).pow(2).mean(-1)
        return (per_patch * mask).sum() / mask.sum().clamp_min(1)

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted patches (B, L, p*p*C), mask (B, L)) for one random masking of each image."""
        keep, restore, mask = random_masking(len(x), self.num_patches, self.config.mask_ratio, generator, x.device)
        return self.decode(self.encode(x, keep), restore), mask

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The representation: the mean of the encoder's patch tokens on the whole (unmasked) image."""
        return self.encode(x)[:, 1:].mean(1)

    def ssl_loss(self, views: tuple[torch.Tensor, ...], step: int, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = views[0]
        pred, mask = self(x, generator)
        loss = self.masked_mse(pred, self.target(x), mask)
        return loss, {"loss": loss.detach()}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked input, reconstruction with the visible patches pasted back), images like ``x``."""
        pred, mask = self(x, generator)
        patches = self.patchify(x)
        if self.config.norm_pix_loss:  # back to pixels with each masked patch's own statistics (for display)
            mean, var = patches.mean(-1, keepdim=True), patches.var(-1, keepdim=True)
            pred = pred * (var + 1e-6).sqrt() + mean
        m = mask[..., None]
        masked = self.unpatchify(patches * (1 - m))
        recon = self.unpatchify(patches * (1 - m) + pred * m)
        return masked, recon


register_model("simclr", SimCLR, SimCLRConfig(), family="ssl", doc="SimCLR (Chen et al. 2020): encoder + projection head, NT-Xent")
register_model("byol", BYOL, BYOLConfig(), family="ssl", doc="BYOL (Grill et al. 2020): predictor, EMA target, stop-gradient")
register_model("moco", MoCo, MoCoConfig(), family="ssl", doc="MoCo v2 (Chen et al. 2020): momentum key encoder, queue, InfoNCE")
register_model("mae", MAE, MAEConfig(), family="ssl", doc="MAE (He et al. 2022): ViT on visible patches, light decoder, masked MSE")
