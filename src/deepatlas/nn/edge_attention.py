"""Graph attention over a cached CSR structure: a fused edge softmax and a per-head sparse aggregation.

Graph attention (Velickovic et al. 2018) computes, per head k and edge j -> i,

    e^k_ij     = LeakyReLU(a_src^k . W^k h_j + a_dst^k . W^k h_i)          (eq. 3, split per node)
    alpha^k_ij = exp(e^k_ij) / sum_{l in N(i)} exp(e^k_il)                  (eq. 3)
    h'^k_i     = sum_{j in N(i)} alpha^k_ij W^k h_j                         (eq. 4)

The direct way (gather W h_j per edge, multiply by alpha, ``index_add`` onto the targets)
materialises an (E, heads, channels) message tensor several times in the forward and the
backward, and its softmax needs two scatters; on a graph of 20k nodes and 220k edges with 8
heads of 8 these passes over memory are most of a training epoch. Here:

- :class:`CSRGraph`, built once per graph: the edges sorted by target (the rows of the
  attention matrix A^k, A^k_ij = alpha^k_ij), each target's segment, and the permutation to
  the source-sorted order (the rows of A^k transposed).
- :class:`GraphAttention`, one autograd Function for the softmax, the attention dropout and the
  aggregation. e (heads, E) from the per-node terms; the segment max and sum as
  ``torch.segment_reduce`` over the sorted segments; h' = A^k (W^k h) per head as a CSR
  sparse-dense product of the unnormalised exp(e - max) (times the dropout mask), divided per
  node by the segment sum afterwards. The backward is closed-form: (A^k)^T over the cached
  transposed structure for the features, d/dA^k_ij = g_i^k . W^k h_j as
  ``torch.sparse.sampled_addmm`` at A's sparsity pattern, then the softmax's Jacobian.
  Neither direction builds an (E, heads, channels) tensor, and no autograd graph is kept of
  the intermediate per-edge steps.

Shapes: heads H, nodes N, edges E (with the self-loops), channels C; per-head tensors are
head-major, (H, N) and (H, E), so that each head's values are contiguous.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .message_passing import add_self_loops


@dataclass(frozen=True)
class CSRGraph:
    """A graph's edges sorted by target (CSR rows), with the source-sorted order of the transpose."""

    num_nodes: int
    source: torch.Tensor  # (E,) column of each entry of A, entries sorted by target
    target: torch.Tensor  # (E,) row of each entry, sorted
    crow: torch.Tensor  # (N + 1,) row offsets of A
    counts: torch.Tensor  # (N,) in-degree: the length of each target's segment
    t_crow: torch.Tensor  # (N + 1,) row offsets of A^T (rows are sources)
    t_col: torch.Tensor  # (E,) column (target) of each entry of A^T
    t_perm: torch.Tensor  # (E,) A^T's entry k is A's entry t_perm[k]

    @property
    def num_edges(self) -> int:
        return self.source.numel()


def csr_graph(edge_index: torch.Tensor, num_nodes: int, self_loops: bool = True) -> CSRGraph:
    """The :class:`CSRGraph` of ``edge_index`` (2, E), with one self-loop per node if ``self_loops``."""
    if self_loops:
        edge_index, _ = add_self_loops(edge_index, num_nodes)
    source, target = edge_index[0], edge_index[1]
    # Sources ascending inside each segment: the gathers of W h_j then walk memory forwards.
    order = torch.argsort(target * num_nodes + source)
    source, target = source[order], target[order]
    counts = torch.bincount(target, minlength=num_nodes)
    t_perm = torch.argsort(source * num_nodes + target)
    return CSRGraph(
        num_nodes=num_nodes, source=source, target=target, crow=_offsets(counts), counts=counts,
        t_crow=_offsets(torch.bincount(source, minlength=num_nodes)), t_col=target[t_perm], t_perm=t_perm,
    )


def _offsets(counts: torch.Tensor) -> torch.Tensor:
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    with warnings.catch_warnings():  # PyTorch calls CSR "beta" on every construction; these ops are tested
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, (n, n), check_invariants=False)


def _segment_sum(values: torch.Tensor, g: CSRGraph) -> torch.Tensor:
    """(H, E) -> (H, N): the sum over each target's segment."""
    lengths = g.counts.expand(values.shape[0], -1)
    return torch.segment_reduce(values, "sum", lengths=lengths, axis=1, unsafe=True)


def _per_head_mm(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """(H, N, C): for each head k, the CSR matrix (crow, col, values[k]) times dense[k] (N, C)."""
    out = torch.empty_like(dense)
    for k in range(dense.shape[0]):  # written in place: a stack of the heads would copy them again
        torch.mm(_csr(crow, col, values[k], dense.shape[1]), dense[k], out=out[k])
    return out


class GraphAttention(torch.autograd.Function):
    """The fused edge softmax and aggregation of one attention layer, over a :class:`CSRGraph`.

    score_src, score_dst (H, N): the per-node terms a^T W h; h (H, N, C): W h per head;
    keep (H, E) bool or None: the attention-dropout mask (entries kept), with ``scale`` = 1 / (1 - p).
    Returns (H, N, C): out_i = sum_j keep_ij ex_ij h_j * scale / sum_j ex_ij, with
    ex_ij = exp(e_ij - max_l e_il), i.e. sum_j dropout(alpha)_ij h_j. Dividing the aggregate by the
    segment sum, instead of every edge's coefficient by it, saves a gather and a division per
    edge; the backward is the closed form of the softmax's Jacobian.
    """

    @staticmethod
    def forward(
        ctx: Any, score_src: torch.Tensor, score_dst: torch.Tensor, h: torch.Tensor, g: CSRGraph,
        negative_slope: float, keep: torch.Tensor | None, scale: float,
    ) -> torch.Tensor:
        pre = score_src.index_select(1, g.source) + score_dst.index_select(1, g.target)  # (H, E)
        e = torch.nn.functional.leaky_relu(pre, negative_slope)
        lengths = g.counts.expand(e.shape[0], -1)
        # Any per-segment constant cancels in the softmax; the maximum keeps exp() from overflowing.
        peak = torch.segment_reduce(e, "max", lengths=lengths, axis=1, unsafe=True)  # (H, N)
        ex = e.sub_(peak.index_select(1, g.target)).exp_()  # (H, E)
        total = torch.segment_reduce(ex, "sum", lengths=lengths, axis=1, unsafe=True).add_(1e-16)  # (H, N)
        w = ex if keep is None else ex * keep
        agg = _per_head_mm(g.crow, g.source, w, h)  # (H, N, C)
        out = agg.div_(total.unsqueeze(-1)).mul_(scale) if scale != 1.0 else agg.div_(total.unsqueeze(-1))
        ctx.g, ctx.negative_slope, ctx.scale, ctx.dropout = g, negative_slope, scale, keep is not None
        ctx.save_for_backward(pre, ex, w, total, h, out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        pre, ex, w, total, h, out = ctx.saved_tensors
        g: CSRGraph = ctx.g
        n, heads = g.num_nodes, h.shape[0]
        grad_n = (grad / total.unsqueeze(-1)).mul_(ctx.scale).contiguous()  # (H, N, C): d out / d agg
        # out = scale * agg / total: d/d total = -sum_c grad * out / total
        grad_total = -(grad * out).sum(-1) / total  # (H, N)
        grad_h = None
        if ctx.needs_input_grad[2]:
            values = w.index_select(1, g.t_perm)  # the weights in the transposed (source-sorted) order
            grad_h = _per_head_mm(g.t_crow, g.t_col, values, grad_n)
        # d out / d w_ij = grad_n_i . h_j: a dense product sampled at A's sparsity pattern.
        pattern = _csr(g.crow, g.source, ex.new_zeros(g.num_edges), n)
        grad_w = torch.stack([
            torch.sparse.sampled_addmm(pattern, grad_n[k], h[k].t(), beta=0.0).values() for k in range(heads)
        ])
        # w = ex * keep and total = sum ex, so d/d ex = grad_w * keep + grad_total; d ex / d e = ex.
        grad_e = grad_w.mul_(w) if ctx.dropout else grad_w.mul_(ex)
        grad_e.addcmul_(grad_total.index_select(1, g.target), ex)
        grad_pre = torch.ops.aten.leaky_relu_backward(grad_e, pre, ctx.negative_slope, False)
        grad_src = torch.zeros_like(total).index_add_(1, g.source, grad_pre)
        return grad_src, _segment_sum(grad_pre, g), grad_h, None, None, None, None


def graph_attention(
    score_src: torch.Tensor, score_dst: torch.Tensor, h: torch.Tensor, g: CSRGraph, negative_slope: float = 0.2,
    dropout: float = 0.0, training: bool = False,
) -> torch.Tensor:
    """:class:`GraphAttention` with attention dropout ``dropout`` in training: (H, N, C).

    The dropout mask is drawn as ``torch.rand >= p``: each coefficient is kept with probability
    1 - p and scaled by 1 / (1 - p), as ``F.dropout`` does, at about half the cost of its
    ``bernoulli_`` on the CPU.
    """
    h = h.contiguous()
    if not training or dropout == 0.0:
        return GraphAttention.apply(score_src, score_dst, h, g, negative_slope, None, 1.0)
    if dropout >= 1.0:
        return h.new_zeros(h.shape)
    keep = torch.rand(score_src.shape[0], g.num_edges, device=h.device) >= dropout
    return GraphAttention.apply(score_src, score_dst, h, g, negative_slope, keep, 1.0 / (1.0 - dropout))


__all__ = ["CSRGraph", "GraphAttention", "csr_graph", "graph_attention"]
