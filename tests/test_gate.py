"""drift.migration.gate: keep vs re-index on planted good and bad adapters (synthetic vectors)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drift.adapters import build_adapter
from drift.cli.gate import main
from drift.core.errors import ConfigError, DataError, VectorError
from drift.core.vectors import l2_normalize
from drift.migration.gate import (
    KEEP,
    REINDEX,
    SERVE_OLD,
    decide,
    evaluate_gate,
    leave_one_out_knn,
    pool_estimates,
    summarise_gate,
)
from drift.scoring.metrics import knn_metrics

D = 16


def unit(x: np.ndarray) -> np.ndarray:
    return l2_normalize(x.astype(np.float32))


@pytest.fixture(scope="module")
def world():
    """A planted rotation new -> old with small noise; pairs for fitting and held-out pairs."""
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.standard_normal((D, D)))
    x_new = unit(rng.standard_normal((1400, D)))
    x_old = unit(x_new @ rotation + 0.01 * rng.standard_normal((1400, D)))
    fit, held = slice(0, 1000), slice(1000, 1400)
    good = build_adapter("procrustes").fit(x_new[fit], x_old[fit])
    # Fitted on shuffled pairs: a map that has learnt nothing about the drift.
    bad = build_adapter("procrustes").fit(x_new[fit], x_old[fit][rng.permutation(1000)])
    return {
        "good": good,
        "bad": bad,
        "new": x_new[held],
        "old": x_old[held],
        "fit_new": x_new[fit],
        "fit_old": x_old[fit],
    }


def test_planted_good_adapter_keeps_serving(world):
    report = evaluate_gate(world["good"], world["new"], world["old"], threshold=0.8)
    assert report.decision == KEEP and report.keep
    assert report.arr["ci_low"] >= 0.8 and report.arr["n"] == 400
    # The noise-free map beats each item's own noisy old vector as the query.
    assert report.gain_over_status_quo["ci_low"] > 0
    assert report.gain_over_status_quo["mean"] == pytest.approx(
        report.arr["mean"] - report.status_quo["mean"]
    )
    assert report.reasons[0].startswith("keep serving through the adapter")
    assert "the adapter adds +" in report.reasons[1]


def test_planted_bad_adapter_serves_old_model_queries(world):
    report = evaluate_gate(world["bad"], world["new"], world["old"], threshold=0.8)
    assert report.decision == SERVE_OLD and not report.keep
    assert report.arr["mean"] < 0.3
    # Old queries into the old index recover the planted neighbours; the bad adapter does not.
    assert report.status_quo["ci_low"] > 0.8
    assert "the adapter is worse than keeping the old model" in report.reasons[0]
    assert "which reaches the threshold 0.8" in report.reasons[0]
    assert "does no better than keeping the old model" in report.reasons[1]


def test_adapter_above_threshold_but_below_the_status_quo_is_not_kept(world):
    """The case the first gate got wrong: good enough by the threshold, worse than doing nothing.
    A map fitted towards a slightly turned old space reaches 0.8 but loses to the old model's own
    queries."""
    u, _, vt = np.linalg.svd(np.eye(D) + 0.05 * np.random.default_rng(3).standard_normal((D, D)))
    turn = u @ vt  # the rotation nearest to a small perturbation of the identity
    off = build_adapter("procrustes").fit(world["fit_new"], world["fit_old"] @ turn.astype("f4"))
    for rule in ("ci_low", "mean"):
        report = evaluate_gate(off, world["new"], world["old"], threshold=0.8, rule=rule)
        assert report.arr["ci_low"] >= 0.8  # the first gate kept it
        assert report.gain_over_status_quo["ci_high"] < 0
        assert report.decision == SERVE_OLD
        assert "the adapter is worse than keeping the old model" in report.reasons[0]


def test_neither_reaching_the_threshold_reindexes():
    rng = np.random.default_rng(2)
    rotation, _ = np.linalg.qr(rng.standard_normal((D, D)))
    x_new = unit(rng.standard_normal((1400, D)))
    x_old = unit(x_new @ rotation + 0.3 * rng.standard_normal((1400, D)))  # strong drift
    adapter = build_adapter("procrustes").fit(x_new[:1000], x_old[:1000])
    report = evaluate_gate(adapter, x_new[1000:], x_old[1000:], threshold=0.5)
    assert report.arr["mean"] < 0.5 and report.status_quo["mean"] < 0.5
    assert report.arr["mean"] > report.status_quo["mean"]
    assert report.decision == REINDEX
    assert "below the threshold 0.5, and so is the status quo's" in report.reasons[0]


@pytest.mark.parametrize(
    ("adapter", "status_quo", "rule", "expected"),
    [
        ((0.90, 0.85), (0.80, 0.75), "ci_low", KEEP),
        ((0.90, 0.85), (0.90, 0.85), "ci_low", KEEP),  # a tie keeps the adapter
        ((0.90, 0.85), (0.92, 0.70), "ci_low", SERVE_OLD),  # adapter reaches, but below
        ((0.90, 0.75), (0.85, 0.81), "ci_low", SERVE_OLD),  # only the status quo reaches
        ((0.90, 0.75), (0.85, 0.81), "mean", KEEP),
        ((0.90, 0.75), (0.70, 0.65), "ci_low", REINDEX),
        ((0.70, 0.65), (0.75, 0.70), "mean", REINDEX),  # below, and neither reaches
    ],
)
def test_decision_table(adapter, status_quo, rule, expected):
    def estimate(mean_and_low):
        return {"mean": mean_and_low[0], "ci_low": mean_and_low[1]}

    assert decide(estimate(adapter), estimate(status_quo), 0.8, rule) == expected


def test_uncertain_estimate_reindexes_under_ci_low_but_keeps_under_mean(world):
    first = evaluate_gate(world["good"], world["new"][:60], world["old"][:60], k=5, threshold=0.5)
    assert first.arr["ci_low"] < first.arr["mean"]
    threshold = (first.arr["ci_low"] + first.arr["mean"]) / 2
    strict = evaluate_gate(
        world["good"], world["new"][:60], world["old"][:60], k=5, threshold=threshold
    )
    lenient = evaluate_gate(
        world["good"], world["new"][:60], world["old"][:60], k=5, threshold=threshold, rule="mean"
    )
    assert strict.decision == REINDEX and "only as a point estimate" in strict.reasons[0]
    assert lenient.decision == KEEP


def test_self_hit_at_corpus_scale(world):
    good = evaluate_gate(world["good"], world["new"], world["old"], old_corpus=world["fit_old"])
    bad = evaluate_gate(world["bad"], world["new"], world["old"], old_corpus=world["fit_old"])
    assert good.self_hit["mean"] > 0.95 > 0.2 > bad.self_hit["mean"]
    assert any("self-hit@10" in reason for reason in good.reasons)


def test_corpus_size_scales_the_pool_depth_towards_corpus_scale_arr():
    """A planted noisy rotation over a corpus of 4,000; 800 held-out pairs. The pool at depth 10
    overstates the corpus-scale ARR@10 of the held-out items; at depth 10 x 800 / 4,000 = 2 it
    lands much closer."""
    rng = np.random.default_rng(1)
    rotation, _ = np.linalg.qr(rng.standard_normal((D, D)))
    x_new = unit(rng.standard_normal((4000, D)))
    x_old = unit(x_new @ rotation + 0.2 * rng.standard_normal((4000, D)))
    adapter = build_adapter("procrustes").fit(x_new[:1000], x_old[:1000])
    pool = slice(3200, 4000)
    truth = leave_one_out_knn(x_new, x_new, 10)[pool]  # each held-out item's corpus top 10
    found = leave_one_out_knn(x_old, adapter.transform(x_new), 10)[pool]
    corpus_arr = float(np.mean(knn_metrics(found, truth, (10,))["recall@10"]))

    report = evaluate_gate(adapter, x_new[pool], x_old[pool], corpus_size=4000, n_boot=100)
    assert (report.pool_k, report.corpus_size) == (2, 4000)
    assert report.arr_at_k["mean"] - corpus_arr > 0.05  # depth 10 in the pool: optimistic
    assert abs(report.arr["mean"] - corpus_arr) < (report.arr_at_k["mean"] - corpus_arr) / 2
    assert "the depth that matches top-10 in a corpus of 4000" in report.reasons[-1]
    unscaled = evaluate_gate(adapter, x_new[pool], x_old[pool], n_boot=100)
    assert unscaled.pool_k == 10 and unscaled.arr == unscaled.arr_at_k == report.arr_at_k
    assert "--corpus-size" in unscaled.reasons[-1]
    tiny = evaluate_gate(adapter, x_new[pool][:100], x_old[pool][:100], corpus_size=4000)
    assert tiny.pool_k == 1 and "no longer follows the corpus size" in tiny.reasons[-1]  # < 1/2
    assert "200 held-out pairs would match" in tiny.reasons[-1]  # N / (2k) = 4000 / 20
    dense = evaluate_gate(adapter, x_new[pool], x_old[pool], corpus_size=800, n_boot=100)
    assert dense.pool_k == 10 and "no depth scaling applies" in dense.reasons[-1]
    with pytest.raises(ConfigError, match=r"corpus size \(--corpus-size\) must be a positive"):
        evaluate_gate(adapter, x_new[pool], x_old[pool], corpus_size=0)


def test_pool_estimates_and_their_summary_beside_the_measured_arr(world):
    adapters = {"good": world["good"], "bad": world["bad"]}
    gate = pool_estimates(adapters, world["new"], world["old"], corpus_size=2000, n_boot=50)
    assert gate["good"]["pool_k"] == 2 and gate["good"]["n_pool"] == 400
    direct = evaluate_gate(world["good"], world["new"], world["old"], corpus_size=2000, n_boot=50)
    assert gate["good"]["arr"] == direct.arr and gate["good"]["arr_at_k"] == direct.arr_at_k
    assert gate["good"]["status_quo"] == direct.status_quo
    assert gate["good"]["gain_over_status_quo"] == direct.gain_over_status_quo
    measured = {"adapter/good": {"metrics": {"recall@10": {"mean": 0.9}}}}
    metrics = {"protocols": {"knn": {"strategies": measured}}}
    text = summarise_gate({"gate": gate, "metrics": metrics})
    gain = direct.gain_over_status_quo
    good = (
        f"| good | {direct.arr['mean']:.3f} [{direct.arr['ci_low']:.3f}, "
        f"{direct.arr['ci_high']:.3f}] | {gain['mean']:+.3f} [{gain['ci_low']:+.3f}, "
    )
    assert good in text and "| 0.900 |" in text
    assert text.split("| bad |")[1].split("|")[1].strip().startswith("-0.")  # below it
    assert "| bad |" in text and text.split("| bad |")[1].split("\n")[0].endswith("| n/a |")
    assert "--corpus-size 2000" in text and "400 held-out pairs" in text
    small = pool_estimates(adapters, world["new"][:10], world["old"][:10], corpus_size=2000)
    too_small = summarise_gate({"gate": small, "metrics": metrics})
    assert too_small.startswith("drift gate: not estimated (needs more")


def test_leave_one_out_knn_matches_brute_force(world):
    x = world["old"][:100]
    ids = leave_one_out_knn(x, x, 5)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :5]
    assert not (ids == np.arange(100)[:, None]).any()
    assert np.mean(ids == expected) > 0.99  # ties aside


def test_bad_inputs(world):
    with pytest.raises(DataError, match="more than k=10"):
        evaluate_gate(world["good"], world["new"][:10], world["old"][:10])
    with pytest.raises(VectorError, match="dimension"):
        evaluate_gate(world["good"], world["new"][:, :8], world["old"])
    with pytest.raises(VectorError, match="rows"):
        evaluate_gate(world["good"], world["new"], world["old"][:50])
    with pytest.raises(ConfigError, match="threshold"):
        evaluate_gate(world["good"], world["new"], world["old"], threshold=0.0)


def test_cli_exit_status_and_json(world, tmp_path, capsys):
    world["good"].save(tmp_path / "good")
    world["bad"].save(tmp_path / "bad")
    np.savez(tmp_path / "pairs.npz", new=world["new"], old=world["old"])
    args = ["--pairs", str(tmp_path / "pairs.npz"), "--threshold", "0.8", "--n-boot", "200"]
    with pytest.raises(SystemExit) as keep:
        main(["--adapter-dir", str(tmp_path / "good"), *args, "--json", str(tmp_path / "g.json")])
    assert keep.value.code == 0
    assert json.loads((tmp_path / "g.json").read_text())["gate"]["decision"] == KEEP
    with pytest.raises(SystemExit) as serve_old:
        main(["--adapter-dir", str(tmp_path / "bad"), *args])
    assert serve_old.value.code == 3
    assert "decision: serve_old_model_queries" in capsys.readouterr().out
    with pytest.raises(SystemExit) as reindex:  # the status quo does not reach 0.99 either
        main(["--adapter-dir", str(tmp_path / "bad"), *args[:2], "--threshold", "0.99"])
    assert reindex.value.code == 1
    assert "decision: reindex_now" in capsys.readouterr().out
    np.savez(tmp_path / "broken.npz", new=world["new"])
    with pytest.raises(SystemExit) as broken:
        main(["--adapter-dir", str(tmp_path / "good"), "--pairs", str(tmp_path / "broken.npz")])
    assert broken.value.code == 2
