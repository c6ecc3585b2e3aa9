"""deepatlas.load(...).predict / sample on raw inputs equals what evaluation computed; exports reload exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import deepatlas
from deepatlas.cli import app
from deepatlas.data import load_dataset
from deepatlas.errors import DataError, RunError
from tests.conftest import tiny_recipe
from tests.test_language_e2e import CORPUS, lm_overrides


def _eval_json(run: deepatlas.Run, split: str = "test") -> dict:
    return json.loads((run.path / f"eval-{split}.json").read_text())


def test_image_classifier_predicts_raw_pixels_as_evaluation_did(tmp_path: Path) -> None:
    run = deepatlas.train("quickstart", tiny_recipe(), progress=False)
    metrics = deepatlas.evaluate(run, "test")["metrics"]
    split = load_dataset(run.config.data).split("test")  # raw uint8 digits, values 0..16, in order
    predictor = deepatlas.load(run.id)
    assert predictor.class_names == [str(i) for i in range(10)] and not predictor.model.training
    probabilities = predictor.predict_proba(split.images.numpy())  # raw pixels, as a user has them
    labels = split.labels.numpy()
    assert probabilities.shape == (len(labels), 10)
    assert (probabilities.argmax(1) == labels).mean() == pytest.approx(metrics["accuracy"], abs=1e-9)
    nll = -np.log(probabilities[np.arange(len(labels)), labels]).mean()
    assert nll == pytest.approx(metrics["nll"], rel=1e-5)
    predicted = predictor.predict(split.images[:5, 0])  # (B, H, W) works too, and gives class names
    assert predicted == [str(i) for i in probabilities[:5].argmax(1)]
    assert predictor.predict(split.images[0, 0].numpy()) == predicted[:1]  # one image (H, W)

    folder = deepatlas.export(run.id, tmp_path / "exported")
    again = deepatlas.load(folder)
    assert np.array_equal(again.predict_proba(split.images.numpy()), probabilities)  # bit-identical
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.yaml", "deepatlas-export.json", "model.safetensors", "preprocess.json",
    ]
    with pytest.raises(DataError, match="expected .* C = 1"):
        predictor.predict(np.zeros((2, 3, 8, 8)))
    with pytest.raises(RunError, match="cannot sample \\(it can: export, predict\\)"):
        predictor.sample(4)
    with pytest.raises(DataError, match=r"nosuch[.]png: no such file[.]$"):
        predictor.predict(str(tmp_path / "nosuch.png"))


def test_image_files_and_pil_images_are_read_as_the_image_folder_reader_reads_them(tmp_path: Path) -> None:
    for label in ("dark", "light"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(12):
            value = 40 + 5 * i if label == "dark" else 180 + 5 * i
            Image.fromarray(np.full((10, 10), value, dtype=np.uint8)).save(tmp_path / "images" / label / f"{i}.png")
    run = deepatlas.train("quickstart", [*tiny_recipe(), "data.name=image-folder", f"data.path={tmp_path / 'images'}",
                                         "data.val_fraction=0.25", "data.batch_size=8"], progress=False)
    data = load_dataset(run.config.data, state_dir=run.path)
    predictor = deepatlas.load(run)
    files = sorted((tmp_path / "images" / "light").glob("*.png"))[:3]
    batch = torch.cat([x for x, _ in data.eval_batches("train", torch.device("cpu"))])
    from_files = predictor.preprocess(files)
    assert from_files.shape == (3, *batch.shape[1:])
    with Image.open(files[0]) as img:
        assert torch.equal(predictor.preprocess(img), from_files[:1])
    # the same normalisation as the run's batches: every light image maps into the range the data spans
    assert batch.min() - 1e-6 <= from_files.min() and from_files.max() <= batch.max() + 1e-6


def test_gpt_next_token_probabilities_equal_the_evaluation_loss(tmp_path: Path) -> None:
    corpus = tmp_path / "play.txt"
    corpus.write_text(CORPUS)
    run = deepatlas.train("gpt-shakespeare-char", lm_overrides(corpus, **{"train.max_steps": 20}), progress=False)
    metrics = deepatlas.evaluate(run, "val")["metrics"]
    data = load_dataset(run.config.data, state_dir=run.path)
    predictor = deepatlas.load(run.id)
    tokenizer = predictor.preprocessor.tokenizer
    nll, tokens = 0.0, 0
    for x, y in data.eval_batches("val", torch.device("cpu")):
        texts = [tokenizer.decode(row) for row in x.tolist()]  # the raw text of each window
        p = predictor.predict_proba(texts)  # (B, T, vocab)
        nll -= np.log(np.take_along_axis(p, y.numpy()[..., None], -1)).sum()
        tokens += y.numel()
    assert nll / tokens == pytest.approx(metrics["loss"], rel=1e-4)
    assert len(predictor.predict("ROMEO:")) == 1
    text = predictor.generate("ROMEO:\n", max_new_tokens=30, temperature=0.0)
    assert text == "".join(deepatlas.sample(run, "ROMEO:\n", max_new_tokens=30, temperature=0.0))
    folder = predictor.export(tmp_path / "gpt")
    assert (folder / "tokenizer.json").is_file()
    assert deepatlas.load(folder).generate("ROMEO:\n", max_new_tokens=30, temperature=0.0) == text


def test_gcn_predicts_the_nodes_of_a_raw_graph_as_evaluation_did(planetoid_dir: Path, tmp_path: Path) -> None:
    overrides = [f"data.root={planetoid_dir}", "train.epochs=20", "train.test=true"]
    run = deepatlas.train("gcn-cora", overrides, progress=False)
    accuracy = run.summary["eval"]["test"]["accuracy"]
    data = load_dataset(run.config.data)
    graph = data.graph  # what a user builds: features and edges of the whole graph
    predictor = deepatlas.load(run.id)
    labels = np.array([int(p) if p.isdigit() else predictor.class_names.index(p) for p in predictor.predict(graph)])
    mask = graph.masks["test"].numpy()
    assert labels.shape == (graph.num_nodes,)
    assert (labels[mask] == graph.y.numpy()[mask]).mean() == pytest.approx(accuracy, abs=1e-9)
    again = deepatlas.load(predictor.export(tmp_path / "gcn"))
    assert np.array_equal(again.predict_proba(graph), predictor.predict_proba(graph))


def test_vae_samples_equal_the_images_evaluation_drew(tmp_path: Path) -> None:
    recipe = tmp_path / "vae.yaml"
    recipe.write_text(
        "extends: vae-fashion-mnist\ndata: {name: digits, normalize: false, resize: 28, batch_size: 64}\n"
        "model: {hidden: 32, latent_dim: 4}\ntrain: {epochs: 1, test: false, checkpoint_every: 0}\n"
    )
    run = deepatlas.train(str(recipe), progress=False)
    result = deepatlas.evaluate(run, "test", samples=40)
    predictor = deepatlas.load(run.id)
    images = predictor.sample(40, seed=0)
    assert images.shape == (40, 1, 28, 28) and float(images.min()) >= 0 and float(images.max()) <= 1
    from deepatlas.report.plots import save_image_grid

    grid = save_image_grid(images, tmp_path / "mine.png")
    shown = next(f for f in result["figures"] if f.endswith("samples-eval-test.png"))
    assert np.array_equal(np.asarray(Image.open(grid)), np.asarray(Image.open(shown)))
    exported = deepatlas.load(predictor.export(tmp_path / "vae"))
    assert torch.equal(exported.sample(8, seed=3), predictor.sample(8, seed=3))
    with pytest.raises(RunError, match="cannot predict"):
        predictor.predict(np.zeros((1, 28, 28)))


def test_cli_predict_and_export(tmp_path: Path) -> None:
    run = deepatlas.train("quickstart", tiny_recipe(), progress=False)
    split = load_dataset(run.config.data).split("test")
    files = []
    for i in range(3):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray((split.images[i, 0].numpy().astype(np.float64) * 255 / 16).round().astype(np.uint8)).save(path)
        files.append(str(path))
    runner = CliRunner()
    result = runner.invoke(app, ["predict", run.id, *files, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["input"] for r in rows] == files and all(0 < r["confidence"] <= 1 for r in rows)
    expected = deepatlas.load(run.id).predict([Path(f) for f in files])
    assert [r["prediction"] for r in rows] == expected
    result = runner.invoke(app, ["export", run.id, "--out", str(tmp_path / "model")])
    assert result.exit_code == 0 and (tmp_path / "model" / "deepatlas-export.json").is_file()
    result = runner.invoke(app, ["export", run.id, "--out", str(tmp_path)])  # not empty, not an export
    assert isinstance(result.exception, RunError) and "is not an export folder" in str(result.exception)
    assert math.isfinite(json.loads((tmp_path / "model" / "deepatlas-export.json").read_text())["version"])


def test_seq2seq_decodes_raw_strings_as_evaluation_did(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    words = ["abc", "hello", "tide", "moon", "stars", "rose", "night", "wind", "sea", "fire"]
    path.write_text("".join(f"{w}{i}\t{(w + str(i))[::-1]}\n" for i, w in enumerate(words * 20)))
    overrides = [
        "data.name=text-pairs", f"data.path={path}", "data.max_len=12", "data.batch_size=32",
        "model.d_model=32", "model.n_head=2", "model.d_ff=64", "model.n_encoder_layers=1", "model.n_decoder_layers=1",
        "train.epochs=2", "train.checkpoint_every=0", "task.beam_size=2",
    ]
    run = deepatlas.train("transformer-reverse-shakespeare", overrides, progress=False)
    deepatlas.evaluate(run, "test")
    examples = _eval_json(run)["arrays"]["examples"]  # the first of the one evaluation batch
    data = load_dataset(run.config.data, state_dir=run.path)
    sources = [data.decode(row) for row in data.split("test").inputs]  # the raw strings of the batch
    assert [e["source"] for e in examples] == sources[: len(examples)]
    predictor = deepatlas.load(run.id)
    predicted = predictor.predict(sources)  # one batch, as evaluation decoded it
    assert predicted[: len(examples)] == [e["output"] for e in examples]
    again = deepatlas.load(predictor.export(tmp_path / "s2s"))
    assert again.predict(sources) == predicted


def test_text_classifier_predicts_raw_strings_as_evaluation_did(tmp_path: Path) -> None:
    import csv
    import random

    from tests.test_bert_e2e import WORDS, small_bert

    rng = random.Random(0)
    path = tmp_path / "moods.csv"
    rows = [(" ".join(rng.choice(WORDS[label] + ["the", "of"]) for _ in range(6)), label)
            for label in (rng.choice(list(WORDS)) for _ in range(200))]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    run = deepatlas.train("bert-speakers-shakespeare", small_bert(path, "train.epochs=2"), progress=False)
    accuracy = run.summary["eval"]["test"]["accuracy"]
    data = load_dataset(run.config.data, state_dir=run.path)
    test = data.split("test")
    pad = data.meta["pad_id"]
    texts = [data.tokenizer.decode([i for i in row.tolist()[1:] if i != pad]) for row in test.inputs]  # the raw strings
    predictor = deepatlas.load(run.id)
    assert torch.equal(predictor.preprocess(texts), test.inputs)  # [CLS] + ids, padded, as the data made them
    predicted = predictor.predict(texts)
    names = data.meta["class_names"]
    assert np.mean([names.index(p) for p in predicted] == test.targets.numpy()) == pytest.approx(accuracy, abs=1e-9)


def test_link_predictor_scores_node_pairs_as_evaluation_did(planetoid_dir: Path) -> None:
    from deepatlas.tasks.graph import LinkPrediction

    run = deepatlas.train("gae-cora-links", [f"data.root={planetoid_dir}", "train.epochs=5", "train.test=true"], progress=False)
    data = load_dataset(run.config.data)
    graph, links = next(data.eval_batches("test", torch.device("cpu")))
    predictor = deepatlas.load(run.id)
    pairs = torch.cat([links.positive, links.negative], dim=1)
    probabilities = predictor.predict((graph, pairs))
    assert probabilities.shape == (pairs.shape[1],) and ((probabilities >= 0) & (probabilities <= 1)).all()
    from sklearn.metrics import roc_auc_score

    logits = predictor.outputs((graph, pairs))["logits"].numpy()  # ranks kept where sigmoid saturates
    assert np.allclose(1 / (1 + np.exp(-logits)), probabilities)
    labels = np.r_[np.ones(links.positive.shape[1]), np.zeros(links.negative.shape[1])]
    assert roc_auc_score(labels, logits) == pytest.approx(run.summary["eval"]["test"]["auc"], abs=1e-9)
    assert isinstance(predictor.task, LinkPrediction)


def test_masked_lm_fills_the_masks_written_in_raw_text(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    run = deepatlas.train("bert-mlm-shakespeare", [
        "data.name=text", f"data.path={corpus}", "data.block_size=40", "data.steps_per_epoch=20",
        "data.specials=[\"[PAD]\", \"[MASK]\", \"[CLS]\"]", "model.hidden=32", "model.n_layer=2", "model.n_head=2",
        "model.intermediate=64", "model.max_position=40", "train.max_steps=40", "schedule.warmup=5",
    ], progress=False)
    predictor = deepatlas.load(run.id)
    text = "ROMEO:\nBut soft, what li[MASK]ht through"
    ids = predictor.preprocess(text)
    mask = predictor.task.mask_id
    assert ids.shape == (1, len(text) - len("[MASK]") + 1) and int((ids == mask).sum()) == 1
    filled = predictor.predict(text)[0]
    assert len(filled) == ids.shape[1] and "[MASK]" not in filled
    logits = predictor.model.masked_lm(ids)[0, ids[0].tolist().index(mask)]
    best = predictor.preprocessor.tokenizer.decode([int(logits[: len(predictor.preprocessor.tokenizer.chars)].argmax())])
    assert filled == text.replace("[MASK]", best)
    assert deepatlas.load(predictor.export(tmp_path / "mlm")).predict(text) == [filled]
