"""Weight conversion from Hugging Face models into deepatlas models (test oracles only)."""

from __future__ import annotations

import torch


def gpt2_to_deepatlas(hf_state: dict[str, torch.Tensor], n_layer: int) -> dict[str, torch.Tensor]:
    """GPT2LMHeadModel state dict -> deepatlas GPT state dict (Conv1D weights are transposed)."""
    sd = {k.removeprefix("transformer."): v for k, v in hf_state.items()}
    out = {"wte.weight": sd["wte.weight"], "wpe.weight": sd["wpe.weight"],
           "ln_f.weight": sd["ln_f.weight"], "ln_f.bias": sd["ln_f.bias"], "lm_head.weight": sd["wte.weight"]}
    names = {"ln_1": "ln1", "ln_2": "ln2", "attn.c_attn": "attn.qkv_proj", "attn.c_proj": "attn.out_proj",
             "mlp.c_fc": "ff.fc1", "mlp.c_proj": "ff.fc2"}
    for i in range(n_layer):
        for theirs, ours in names.items():
            w, b = sd[f"h.{i}.{theirs}.weight"], sd[f"h.{i}.{theirs}.bias"]
            out[f"blocks.{i}.{ours}.weight"] = w.t() if theirs.startswith(("attn", "mlp")) else w
            out[f"blocks.{i}.{ours}.bias"] = b
    return out


def bert_to_deepatlas(hf_state: dict[str, torch.Tensor], n_layer: int) -> dict[str, torch.Tensor]:
    """BertModel state dict -> deepatlas Bert state dict (encoder, embeddings and pooler)."""
    sd = {k.removeprefix("bert."): v for k, v in hf_state.items()}
    out = {
        "embed.word.weight": sd["embeddings.word_embeddings.weight"],
        "embed.position.weight": sd["embeddings.position_embeddings.weight"],
        "embed.token_type.weight": sd["embeddings.token_type_embeddings.weight"],
        "embed.norm.weight": sd["embeddings.LayerNorm.weight"],
        "embed.norm.bias": sd["embeddings.LayerNorm.bias"],
        "pooler.weight": sd["pooler.dense.weight"],
        "pooler.bias": sd["pooler.dense.bias"],
    }
    for i in range(n_layer):
        p = f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            out[f"layers.{i}.attn.qkv_proj.{kind}"] = torch.cat(
                [sd[f"{p}attention.self.{n}.{kind}"] for n in ("query", "key", "value")]
            )
            out[f"layers.{i}.attn.out_proj.{kind}"] = sd[f"{p}attention.output.dense.{kind}"]
            out[f"layers.{i}.ln1.{kind}"] = sd[f"{p}attention.output.LayerNorm.{kind}"]
            out[f"layers.{i}.ff.fc1.{kind}"] = sd[f"{p}intermediate.dense.{kind}"]
            out[f"layers.{i}.ff.fc2.{kind}"] = sd[f"{p}output.dense.{kind}"]
            out[f"layers.{i}.ln2.{kind}"] = sd[f"{p}output.LayerNorm.{kind}"]
    return out
