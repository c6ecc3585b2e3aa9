"""FT-Transformer against the authors' reference implementation (``rtdl_revisiting_models``).

Our weights are copied into the reference ``FTTransformer`` (Gorishniy et al. 2021) and both
networks must give the same outputs; the default preset's parameter count is checked against
the reference model's and against the closed-form count.
"""

from __future__ import annotations

import pytest
import rtdl_revisiting_models as rtdl
import torch

from deepatlas.data.tabular import TabularBatch
from deepatlas.errors import ConfigError
from deepatlas.models import count_parameters
from deepatlas.models.ft_transformer import FTTransformer, FTTransformerConfig
from deepatlas.registry import MODELS, create_model


def reference(c: FTTransformerConfig) -> rtdl.FTTransformer:
    return rtdl.FTTransformer(
        n_cont_features=c.num_numeric, cat_cardinalities=list(c.cardinalities), d_out=c.num_outputs,
        n_blocks=c.n_blocks, d_block=c.d_token, attention_n_heads=c.n_heads, attention_dropout=c.attention_dropout,
        ffn_d_hidden=None, ffn_d_hidden_multiplier=c.ffn_factor, ffn_dropout=c.ffn_dropout,
        ffn_activation="ReGLU" if c.activation == "reglu" else "ReLU", residual_dropout=c.residual_dropout,
    )


@torch.no_grad()
def copy_into(ours: FTTransformer, ref: rtdl.FTTransformer) -> None:
    """Our weights -> the reference model's (our attention packs W_q, W_k, W_v in one matrix)."""
    t = ours.tokenizer
    ref.cls_embedding.weight.copy_(ours.cls)
    if ref.cont_embeddings is not None:
        ref.cont_embeddings.weight.copy_(t.numeric_weight)
        ref.cont_embeddings.bias.copy_(t.numeric_bias)
    if ref.cat_embeddings is not None:
        for theirs, mine in zip(ref.cat_embeddings.embeddings, t.embeddings, strict=True):
            theirs.weight.copy_(mine.weight)
        ref.cat_embeddings.bias.copy_(t.categorical_bias)
    for i, (mine, theirs) in enumerate(zip(ours.blocks, ref.backbone.blocks, strict=True)):
        attention = theirs["attention"]
        for name, w, b in zip(("W_q", "W_k", "W_v"), mine.attention.qkv_proj.weight.chunk(3), mine.attention.qkv_proj.bias.chunk(3), strict=True):
            getattr(attention, name).weight.copy_(w)
            getattr(attention, name).bias.copy_(b)
        attention.W_out.load_state_dict(mine.attention.out_proj.state_dict())
        if i > 0:
            theirs["attention_normalization"].load_state_dict(mine.attention_norm.state_dict())
        theirs["ffn_normalization"].load_state_dict(mine.ffn_norm.state_dict())
        theirs["ffn"].linear1.load_state_dict(mine.linear1.state_dict())
        theirs["ffn"].linear2.load_state_dict(mine.linear2.state_dict())
    ref.backbone.output.normalization.load_state_dict(ours.norm.state_dict())
    ref.backbone.output.linear.load_state_dict(ours.head.state_dict())


def batch(c: FTTransformerConfig, n: int = 6) -> TabularBatch:
    codes = [torch.randint(0, k, (n,)) for k in c.cardinalities]
    return TabularBatch(torch.randn(n, c.num_numeric), torch.stack(codes, 1) if codes else torch.zeros(n, 0, dtype=torch.long))


def ref_forward(ref: rtdl.FTTransformer, c: FTTransformerConfig, x: TabularBatch) -> torch.Tensor:
    return ref(x.numeric if c.num_numeric else None, x.categorical if c.cardinalities else None)


@pytest.mark.parametrize("shape", [
    dict(num_numeric=4, cardinalities=(3, 6), num_outputs=3, n_blocks=2),
    dict(num_numeric=5, cardinalities=(), num_outputs=1, n_blocks=3),
    dict(num_numeric=0, cardinalities=(4, 2, 7), num_outputs=2, n_blocks=1),
    dict(num_numeric=3, cardinalities=(5,), num_outputs=2, n_blocks=2, activation="relu", ffn_factor=2.0),
])
def test_outputs_match_the_reference_implementation(shape: dict) -> None:
    torch.manual_seed(0)
    c = FTTransformerConfig(d_token=16, n_heads=4, **shape)
    ours, ref = FTTransformer(c).eval(), reference(c).eval()
    assert count_parameters(ours) == sum(p.numel() for p in ref.parameters())
    copy_into(ours, ref)
    x = batch(c)
    with torch.no_grad():
        expected, got = ref_forward(ref, c, x), ours(x)
    assert got.shape == (6, c.num_outputs)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_a_wrong_weight_is_noticed() -> None:
    """The oracle comparison can fail: perturbing one tokenizer row changes the outputs."""
    torch.manual_seed(0)
    c = FTTransformerConfig(num_numeric=3, cardinalities=(3,), num_outputs=2, d_token=16, n_heads=2, n_blocks=2)
    ours, ref = FTTransformer(c).eval(), reference(c).eval()
    copy_into(ours, ref)
    with torch.no_grad():
        ref.cont_embeddings.weight[1] += 0.1
        x = batch(c)
        assert not torch.allclose(ours(x), ref_forward(ref, c, x), atol=1e-5)


def default_count(p: int, cards: tuple[int, ...], k: int, d: int = 192, blocks: int = 3, d_ffn: int = 256) -> int:
    """The closed form: tokenizer + [CLS] + blocks (the first without its attention LayerNorm) + head."""
    tokenizer = 2 * p * d + sum(cards) * d + len(cards) * d + d
    block = 4 * (d * d + d) + 2 * d + (d * 2 * d_ffn + 2 * d_ffn) + (d_ffn * d + d)
    return tokenizer + blocks * block + (blocks - 1) * 2 * d + 2 * d + d * k + k


@pytest.mark.parametrize("p, cards, k", [(30, (), 2), (8, (3, 5), 1)])
def test_default_preset_parameter_count(p: int, cards: tuple[int, ...], k: int) -> None:
    """The paper's default FT-Transformer (3 blocks, d=192, d_ffn=256): ours = the reference = the formula."""
    entry = MODELS.get("ft-transformer")
    c = entry.config
    assert (c.d_token, c.n_blocks, c.n_heads, c.attention_dropout, c.ffn_dropout, c.residual_dropout, c.activation) == (
        192, 3, 8, 0.2, 0.1, 0.0, "reglu")
    defaults = rtdl.FTTransformer.get_default_kwargs(3)
    assert (defaults["d_block"], defaults["attention_dropout"], defaults["ffn_dropout"], defaults["ffn_d_hidden_multiplier"]) == (
        c.d_token, c.attention_dropout, c.ffn_dropout, c.ffn_factor)
    ours = create_model("ft-transformer", num_numeric=p, cardinalities=cards, num_outputs=k)
    defaults.pop("_is_default")
    ref = rtdl.FTTransformer(n_cont_features=p, cat_cardinalities=list(cards), d_out=k, **defaults)
    assert count_parameters(ours) == sum(q.numel() for q in ref.parameters()) == default_count(p, cards, k)


def test_cls_only_last_block_equals_the_full_sequence() -> None:
    """Running the last FFN on [CLS] alone is an optimisation: the full sequence gives the same [CLS]."""
    torch.manual_seed(0)
    c = FTTransformerConfig(num_numeric=3, cardinalities=(4,), num_outputs=2, d_token=8, n_heads=2, n_blocks=2)
    model, x = FTTransformer(c).eval(), batch(c)
    with torch.no_grad():
        tokens = model.tokenizer(x)
        h = torch.cat([tokens, model.cls.expand(len(x), 1, -1)], 1)
        for block in model.blocks:
            h = block(h)
        full = model.head(torch.relu(model.norm(h[:, -1])))
        torch.testing.assert_close(model(x), full)


def test_feature_tokenizer_is_affine_per_feature() -> None:
    torch.manual_seed(0)
    c = FTTransformerConfig(num_numeric=2, cardinalities=(3,), d_token=4, n_heads=2)
    t = FTTransformer(c).tokenizer
    x = TabularBatch(torch.tensor([[2.0, -1.0]]), torch.tensor([[2]]))
    tokens = t(x)
    assert tokens.shape == (1, 3, 4)
    torch.testing.assert_close(tokens[0, 0], 2.0 * t.numeric_weight[0] + t.numeric_bias[0])
    torch.testing.assert_close(tokens[0, 2], t.embeddings[0].weight[2] + t.categorical_bias[0])


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="n_heads"):
        FTTransformer(FTTransformerConfig(d_token=10, n_heads=4))
    with pytest.raises(ConfigError, match="at least one feature"):
        FTTransformer(FTTransformerConfig(num_numeric=0, cardinalities=()))
