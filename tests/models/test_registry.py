"""Tests generated from the model registry: every preset builds, runs and round-trips.

Each model is shrunk to a tiny version of the same architecture (same block
types, depth pattern, grouping and pre-activation; fewer channels) so that the
whole registry runs in seconds. Full-size presets are checked for shape on the
``meta`` device, which costs nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from deepatlas import schema
from deepatlas.data.tabular import TabularBatch
from deepatlas.engine.checkpoint import load_checkpoint, save_checkpoint
from deepatlas.models import count_parameters
from deepatlas.models.bert import BertConfig
from deepatlas.models.clip import CLIPConfig
from deepatlas.models.cnn import AlexNetConfig, GoogLeNetConfig, VGGConfig
from deepatlas.models.densenet import DenseNetConfig
from deepatlas.models.efficientnet import EfficientNetConfig
from deepatlas.models.gan import GANConfig
from deepatlas.models.gnn import GNN_CONFIGS, GATConfig
from deepatlas.models.gpt import GPTConfig
from deepatlas.models.mobilenet import MobileNetV2Config
from deepatlas.models.resnet import ResNetConfig
from deepatlas.models.rnn import CharRNNConfig
from deepatlas.models.rnn_seq2seq import BahdanauConfig, LuongConfig
from deepatlas.models.segmentation import SegUNetConfig
from deepatlas.models.seq2seq import TransformerConfig
from deepatlas.models.ssl import MAEConfig
from deepatlas.models.unet import UNetConfig
from deepatlas.models.vae import VAEConfig
from deepatlas.models.vit import ViTConfig
from deepatlas.registry import MODELS, create_model

NAMES = MODELS.names()


@dataclasses.dataclass(frozen=True)
class Graphs:
    """Random graphs in one block-diagonal batch: what graph (and set) models take."""

    x: torch.Tensor  # (N, in_channels)
    edge_index: torch.Tensor  # (2, E), edges only within each graph
    batch: torch.Tensor  # (N,) graph of each node
    num_graphs: int


def random_graphs(in_channels: int, graphs: int = 3, nodes: int = 4, edges: int = 6) -> Graphs:
    offsets = torch.arange(graphs).repeat_interleave(edges) * nodes
    edge_index = torch.randint(0, nodes, (2, graphs * edges)) + offsets
    batch = torch.arange(graphs).repeat_interleave(nodes)
    return Graphs(torch.randn(graphs * nodes, in_channels), edge_index, batch, graphs)


def tiny_overrides(config: object) -> dict[str, object]:
    """Keep the architecture, shrink the channels and the input."""
    out: dict[str, object] = {"num_classes": 7} if hasattr(config, "num_classes") else {}
    if isinstance(config, ResNetConfig):
        out.update(widths=tuple(max(2, w // 16) for w in config.widths), stem_width=8, input_size=16, stem="cifar")
        out["layers"] = tuple(min(n, 3) for n in config.layers)
        if config.groups > 1:  # ResNeXt: keep the cardinality, shrink the width per group
            out["base_width"] = 16
    elif isinstance(config, DenseNetConfig):
        out.update(growth_rate=4, stem_width=8, block_config=tuple(min(n, 2) for n in config.block_config), input_size=16, stem="cifar")
    elif isinstance(config, MobileNetV2Config):
        out.update(width_mult=0.25, last_channel=32, input_size=16)
    elif isinstance(config, EfficientNetConfig):
        out.update(width_mult=0.25, depth_mult=0.5, head_width=32, input_size=16)
    elif isinstance(config, VGGConfig):
        out.update(widths=(8, 8, 16, 16, 16), fc_width=32, input_size=32)
    elif isinstance(config, AlexNetConfig):
        out.update(input_size=64)
    elif isinstance(config, GoogLeNetConfig):
        out.update(input_size=32)
    elif isinstance(config, GPTConfig):
        out.update(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16)
    elif isinstance(config, CharRNNConfig):
        out.update(vocab_size=50, block_size=16, n_embd=8, hidden=16)
    elif isinstance(config, TransformerConfig):
        out.update(vocab_size=50, max_len=16, n_encoder_layers=2, n_decoder_layers=2, d_model=16, n_head=2, d_ff=32)
    elif isinstance(config, BahdanauConfig):
        out.update(vocab_size=50, embedding=8, hidden=12, attention_size=10, output_size=6)
    elif isinstance(config, LuongConfig):
        out.update(vocab_size=50, embedding=8, hidden=12)
    elif isinstance(config, CLIPConfig):
        out.update(
            embed_dim=8, patch_size=4, input_size=16, image_width=16, image_layers=2, image_heads=2, vocab_size=50,
            context_length=12, text_width=16, text_layers=2, text_heads=2,
        )
    elif isinstance(config, ViTConfig):
        out.update(patch_size=4, input_size=16, dim=16, depth=2, heads=2, mlp_dim=32)
    elif isinstance(config, MAEConfig):
        out.update(patch_size=4, input_size=16, dim=16, depth=2, heads=2, decoder_dim=8, decoder_depth=1, decoder_heads=2)
    elif hasattr(config, "encoder") and hasattr(config, "proj_dim"):  # SimCLR, BYOL, MoCo around a small encoder
        out.update(encoder="lenet5", input_size=16, proj_hidden=16, proj_dim=8, queue_size=16)
    elif isinstance(config, UNetConfig):
        out.update(input_size=16, width=8, groups=2, attention_at=(4,), num_res_blocks=1)
    elif isinstance(config, GANConfig):
        out.update(input_size=16, z_dim=8, g_width=4, d_width=4)
    elif isinstance(config, SegUNetConfig):
        out.update(base_width=4, depth=2)
    elif isinstance(config, BertConfig):
        out.update(vocab_size=50, max_position=16, n_layer=2, n_head=2, hidden=16, intermediate=32)
    elif isinstance(config, GATConfig):
        out.update(hidden=4, heads=2)
    elif isinstance(config, GNN_CONFIGS):
        out.update(hidden=8)
    elif hasattr(config, "context"):  # a window forecaster: 2 channels, a short window
        out.update(context=8, input_size=2, num_outputs=6, width=16, horizon=3)  # 2 outputs per step
    elif hasattr(config, "num_numeric"):  # a table: 3 numbers, two categorical columns
        out.update(num_numeric=3, cardinalities=(3, 5), num_outputs=4, width=16, d_token=16, n_heads=2)
    else:
        out.update(input_size=16 if hasattr(config, "input_size") else None)
    return {k: v for k, v in out.items() if v is not None and hasattr(config, k)}


def tiny(name: str, **extra: object) -> torch.nn.Module:
    entry = MODELS.get(name)
    return create_model(name, **{**tiny_overrides(entry.config), **extra})


def tabular_input(c: object, batch: int = 3) -> TabularBatch:
    codes = torch.stack([torch.randint(0, n, (batch,)) for n in c.cardinalities], 1) if c.cardinalities else torch.zeros(batch, 0, dtype=torch.long)
    return TabularBatch(torch.randn(batch, c.num_numeric), codes)


def example_input(model: torch.nn.Module, batch: int = 3) -> torch.Tensor | Graphs | TabularBatch | tuple[torch.Tensor, torch.Tensor]:
    c = model.config
    if isinstance(c, CLIPConfig):  # images and captions (end-of-text, the highest id, last)
        tokens = torch.randint(1, c.vocab_size - 1, (batch + 1, min(12, c.context_length)))
        tokens[:, -1] = c.vocab_size - 1
        return torch.randn(batch, c.in_channels, c.input_size, c.input_size), tokens
    if hasattr(c, "num_numeric"):
        return tabular_input(c, batch)
    if hasattr(c, "context"):  # a window forecaster: (B, context, channels)
        return torch.randn(batch, c.context, c.input_size)
    if isinstance(c, GNN_CONFIGS):  # nodes with features, edges and the graph of each node
        return random_graphs(c.in_channels, graphs=batch)
    if hasattr(c, "vocab_size"):  # a sequence model: token ids
        longest = getattr(c, "block_size", None) or getattr(c, "max_position", None) or getattr(c, "max_len", 12)
        return torch.randint(3, c.vocab_size, (batch, min(12, longest)))
    if isinstance(c, SegUNetConfig):  # fully convolutional: any side
        return torch.randn(batch, c.in_channels, 16, 16)
    return torch.randn(batch, c.in_channels, c.input_size, c.input_size)


def run(model: torch.nn.Module, x: torch.Tensor | Graphs) -> torch.Tensor:
    """The model's forward on ``x`` (an encoder-decoder reads x as source and target)."""
    if isinstance(x, Graphs):
        return model(x.x, x.edge_index, x.batch)
    if isinstance(model.config, CLIPConfig):  # image-caption logits
        return model(*x)
    if isinstance(model.config, (TransformerConfig, BahdanauConfig, LuongConfig)):  # encoder-decoders
        return model(x, x)
    if isinstance(model.config, GANConfig):  # the discriminator's scores of generated images
        c = model.config
        torch.manual_seed(0)
        y = torch.arange(x.shape[0]) % c.num_classes
        return model.discriminator(model(torch.randn(x.shape[0], c.z_dim), y), y)
    if isinstance(model.config, UNetConfig):  # a denoiser: (x_t, t) -> a tensor like x_t
        return model(x, torch.arange(x.shape[0]) * 7)
    if isinstance(model.config, VAEConfig):  # likelihood parameters; z is sampled: fix the noise
        torch.manual_seed(0)
        return model(x)[0]
    if hasattr(model, "ssl_loss"):  # a self-supervised learner: its loss on two views (seeded masks, permutations)
        views = (x, x.flip(-1))[: model.n_views]
        return model.ssl_loss(views, 0, torch.Generator().manual_seed(0))[0].reshape(1)
    return model(x)


def expected_shape(model: torch.nn.Module, x: torch.Tensor | Graphs) -> tuple[int, ...]:
    c = model.config
    if isinstance(x, Graphs):  # logits per graph, or per node
        return (x.num_graphs if c.graph_level else x.x.shape[0], c.num_classes)
    if isinstance(c, GANConfig):  # one score per image
        return (x.shape[0],)
    if isinstance(c, CLIPConfig):  # every image against every caption
        return (len(x[0]), len(x[1]))
    if isinstance(c, (VAEConfig, UNetConfig)):  # a reconstruction, a denoised image
        return tuple(x.shape)
    if isinstance(c, SegUNetConfig):  # class logits per pixel
        return (x.shape[0], c.num_classes, *x.shape[-2:])
    if hasattr(model, "ssl_loss"):  # one loss
        return (1,)
    if hasattr(c, "num_outputs"):  # a tabular network
        return (len(x), c.num_outputs)
    if hasattr(c, "num_classes"):  # a classifier (of images, or of token sequences like BERT)
        return (x.shape[0], c.num_classes)
    return (*x.shape, c.vocab_size)


def test_registry_is_populated() -> None:
    families = {e.family for e in MODELS}
    assert {"mlp", "cnn", "resnet"} <= families
    assert len(NAMES) >= 40


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_no_nan(name: str) -> None:
    torch.manual_seed(0)
    model = tiny(name, **({"in_channels": 2} if hasattr(MODELS.get(name).config, "in_channels") else {}))
    x = example_input(model)
    logits = run(model, x)
    assert logits.shape == expected_shape(model, x)
    assert torch.isfinite(logits).all()
    loss = logits.logsumexp(dim=-1).mean()
    if hasattr(model, "masked_lm"):  # BERT: the pre-training head has parameters of its own
        loss = loss + model.masked_lm(x).logsumexp(dim=-1).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]  # momentum targets are not trained
    assert all(g is not None and torch.isfinite(g).all() for g in grads), "every parameter gets a finite gradient"
    if hasattr(model, "forward_features") and hasattr(model, "head"):
        assert model.forward_features(x).shape == (3, model.head.in_features)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_and_config_round_trip(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tiny(name).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", {"model": model.state_dict()})  # handles tied weights
    config_dict = schema.to_dict(model.config)
    rebuilt_config = schema.parse(type(model.config), config_dict, "model")
    assert rebuilt_config == model.config
    torch.manual_seed(1)  # different initialisation ...
    clone = MODELS.get(name).factory(rebuilt_config).eval()
    clone.load_state_dict(load_checkpoint(path)["model"])  # ... replaced by the saved weights
    x = example_input(model)
    assert torch.equal(run(model, x), run(clone, x))


@pytest.mark.parametrize("name", NAMES)
def test_full_size_preset_shapes_on_meta(name: str) -> None:
    entry = MODELS.get(name)
    if isinstance(entry.config, GNN_CONFIGS):
        # Self-loop removal has a data-dependent shape (no meta kernel); the presets are small: run them.
        model, x = entry.factory(entry.config), random_graphs(entry.config.in_channels)
        assert run(model, x).shape == expected_shape(model, x)
        return
    with torch.device("meta"):
        model = entry.factory(entry.config)
        c = entry.config
        if hasattr(c, "num_numeric"):
            x = TabularBatch(torch.empty(2, c.num_numeric), torch.zeros(2, len(c.cardinalities), dtype=torch.long))
            assert run(model, x).shape == expected_shape(model, x)
        elif hasattr(c, "context"):
            x = torch.empty(2, c.context, c.input_size)
            assert run(model, x).shape == expected_shape(model, x)
        elif isinstance(c, CLIPConfig):
            x = (torch.empty(2, c.in_channels, c.input_size, c.input_size), torch.ones(3, c.context_length, dtype=torch.long))
            assert run(model, x).shape == expected_shape(model, x)
        elif hasattr(c, "vocab_size"):
            longest = getattr(c, "block_size", None) or getattr(c, "max_position", None) or getattr(c, "max_len", 12)
            x = torch.ones(2, longest, dtype=torch.long)
            assert run(model, x).shape == expected_shape(model, x)
        else:
            size = getattr(c, "input_size", None) or 28
            x = torch.empty(2, getattr(c, "in_channels", 1), size, size)
            assert run(model, x).shape == expected_shape(model, x)


def test_unknown_override_fails_at_once() -> None:
    with pytest.raises(Exception, match="widht"):
        create_model("resnet18", widht=3)


def test_reset_head_for_fine_tuning() -> None:
    model = tiny("resnet18")
    model.reset_head(3)
    assert model(example_input(model)).shape == (3, 3)


def test_config_is_frozen() -> None:
    model = tiny("mlp")
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.config.width = 3  # type: ignore[misc]


def test_meta_counting_equals_real_counting() -> None:
    real = create_model("resnet20")
    with torch.device("meta"):
        meta = create_model("resnet20")
    assert count_parameters(real) == count_parameters(meta)
