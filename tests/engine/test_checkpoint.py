"""Checkpoints: exact round trips, shared tensors, atomic writes, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatlas.engine.checkpoint import (
    flatten,
    load_checkpoint,
    save_checkpoint,
    tensor_digest,
    unflatten,
)
from deepatlas.errors import CheckpointError

leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text(max_size=8),
    st.sampled_from([float("inf"), float("-inf")]),
    st.integers(1, 4).map(lambda n: torch.randn(n, 2)),
)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(min_size=1, max_size=5), children, max_size=3),
        st.dictionaries(st.integers(0, 9), children, max_size=3),
        st.tuples(children, children),
    ),
    max_leaves=12,
)


def same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


@settings(max_examples=60, deadline=None)
@given(tree=trees)
def test_flatten_round_trip(tree: object) -> None:
    tensors, skeleton = flatten({"root": tree})
    assert same(unflatten(skeleton, tensors)["root"], tree)


def test_save_load_round_trip_with_optimizer_state(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "c.safetensors", {"model": model.state_dict(), "opt": opt.state_dict(), "step": 3})
    loaded = load_checkpoint(path)
    assert loaded["step"] == 3 and same(loaded["model"], model.state_dict())
    fresh = torch.optim.Adam(model.parameters())
    fresh.load_state_dict(loaded["opt"])  # int param ids and tuples survive the JSON header
    assert same(fresh.state_dict(), opt.state_dict())
    assert path.with_suffix(".json").is_file()


def test_tied_and_non_contiguous_tensors(tmp_path: Path) -> None:
    shared = torch.randn(4, 4)
    payload = {"a": shared, "b": shared, "t": shared.t(), "row": shared[1]}
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.safetensors", payload))
    assert all(torch.equal(loaded[k], v) for k, v in payload.items())


def test_corrupt_and_foreign_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="bad.safetensors: not a readable safetensors checkpoint"):
        load_checkpoint(bad)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not a deepatlas checkpoint"):
        load_checkpoint(tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", {"x": torch.ones(2)})
    with pytest.raises(TypeError):
        save_checkpoint(path, {"x": torch.zeros(2), "bad": object()})
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.safetensors"]


def test_every_tensor_byte_and_the_skeleton_are_hashed(tmp_path: Path) -> None:
    a = {"w": torch.zeros(3), "b": torch.ones(2, dtype=torch.bfloat16)}
    digest = tensor_digest(a, "{}")
    assert digest.startswith("sha256:") and digest == tensor_digest(dict(reversed(a.items())), "{}")
    changed = {"w": torch.tensor([0.0, 0.0, 1e-30]), "b": a["b"]}
    assert tensor_digest(changed, "{}") != digest
    assert tensor_digest({"w": a["w"].view(1, 3), "b": a["b"]}, "{}") != digest  # shape counts
    assert tensor_digest(a, '{"x": 1}') != digest


def test_checkpoint_without_hash_loads_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = save_checkpoint(tmp_path / "old.safetensors", {"w": torch.ones(2), "step": 4}, algorithm=None)
    with caplog.at_level("WARNING", logger="deepatlas.engine.checkpoint"):
        loaded = load_checkpoint(path)
    assert loaded["step"] == 4 and torch.equal(loaded["w"], torch.ones(2))
    assert "old.safetensors: written before checkpoints carried a content hash" in caplog.text


def test_write_failure_is_a_checkpoint_error_and_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(2)})

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("deepatlas.engine.checkpoint.save_file", full_disk)
    with pytest.raises(CheckpointError, match=r"c\.safetensors: could not write the checkpoint .*No space left"):
        save_checkpoint(path, {"w": torch.zeros(2)})
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(2))
    assert {p.name for p in tmp_path.iterdir()} == {"c.safetensors", "c.json"}  # no temp file left
