"""Metrics, bootstrap intervals, breakdowns and paired tests against independent computations."""
import math
import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support
from medrepro.core import MedreproError
from medrepro.eval.stats import (UNPARSED, accuracy, answer_key, bootstrap_ci, breakdown, compare_runs, f1_macro,
                                 f1_per_letter_macro, f1_weighted, paired_comparison, score_samples)


def _random_run(n=300, seed=1):
    rng = np.random.default_rng(seed)
    golds = ["".join(sorted(set(rng.choice(list("ABCDE"), rng.integers(1, 4))))) for _ in range(n)]
    preds = [None if rng.random() < 0.1 else (g if rng.random() < 0.4 else set(rng.choice(list("ABCDE"), rng.integers(1, 3))))
             for g in golds]
    return preds, golds


def test_accuracy_is_exact_set_match():
    assert accuracy([{"A", "B"}, {"A"}, None, "BA"], ["AB", "AB", "A", "AB"]) == 0.5


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")  # the reference call, as CMExam makes it
def test_weighted_f1_equals_reference_sklearn_over_answer_strings():
    preds, golds = _random_run()
    ref_pred = ["".join(sorted(p)) if p else "无答案" for p in preds]  # the CMExam script's own unparsed label
    ref = precision_recall_fscore_support(golds, ref_pred, average="weighted")[2]
    assert math.isclose(f1_weighted(preds, golds), ref, abs_tol=1e-12)


def test_per_letter_f1_gives_partial_credit_and_differs_from_weighted():
    golds, preds = ["AB", "AB"], [{"A"}, {"A", "B"}]
    assert accuracy(preds, golds) == 0.5
    # letter A: 2/2 right; letter B: one of two found -> F1 2/3; macro = (1 + 2/3) / 2
    assert math.isclose(f1_per_letter_macro(preds, golds), (1 + 2 / 3) / 2)


def test_macro_f1_pubmedqa_style():
    golds, preds = ["A", "B", "C", "A"], [{"A"}, {"A"}, {"C"}, {"A"}]
    assert math.isclose(f1_macro(preds, golds), f1_score(golds, ["A", "A", "C", "A"], average="macro"))


def test_bootstrap_ci_is_seeded_contains_estimate_and_narrows_with_n():
    preds, golds = _random_run(400)
    for m in ("accuracy", "f1_weighted", "f1_per_letter_macro"):
        lo, hi = bootstrap_ci(m, preds, golds, n_boot=200, seed=3)
        assert (lo, hi) == bootstrap_ci(m, preds, golds, n_boot=200, seed=3)
        assert lo <= {"accuracy": accuracy, "f1_weighted": f1_weighted, "f1_per_letter_macro": f1_per_letter_macro}[m](preds, golds) <= hi
    small = bootstrap_ci("accuracy", preds[:50], golds[:50], n_boot=300)
    big = bootstrap_ci("accuracy", preds, golds, n_boot=300)
    assert big[1] - big[0] < small[1] - small[0]


def test_fast_bootstrap_f1_matches_generic_path():
    preds, golds = _random_run(120)
    fast = bootstrap_ci("f1_weighted", preds, golds, n_boot=50, seed=5)
    slow = bootstrap_ci(lambda p, g: f1_weighted(p, g), preds, golds, n_boot=50, seed=5)
    assert np.allclose(fast, slow)
    fast = bootstrap_ci("f1_per_letter_macro", preds, golds, n_boot=50, seed=5)
    slow = bootstrap_ci(lambda p, g: f1_per_letter_macro(p, g, "ABCDE"), preds, golds, n_boot=50, seed=5)
    assert np.allclose(fast, slow)


def test_score_samples_counts_unparsed_steps_and_breakdowns():
    preds, golds = _random_run(200)
    samples = [{"id": str(i), "pred": p, "gold": g, "step": "unparsed" if p is None else "letter",
                "language": "zh" if i % 3 else "en", "meta": {"question_type": "多项选择题" if len(g) > 1 else "最佳选择题"}}
               for i, (p, g) in enumerate(zip(preds, golds))]
    m = score_samples(samples, n_boot=50)
    assert m["n"] == 200 and m["unparsed"] == sum(p is None for p in preds) == m["steps"]["unparsed"]
    assert set(m["by"]) == {"language", "question_type"}
    zh = [s for s in samples if s["language"] == "zh"]
    assert math.isclose(m["by"]["language"]["zh"]["accuracy"], accuracy([s["pred"] for s in zh], [s["gold"] for s in zh]))
    assert m["by"]["language"]["zh"]["n"] + m["by"]["language"]["en"]["n"] == 200
    with pytest.raises(MedreproError, match="unknown metric"):
        score_samples(samples, metrics=("acc",))


def test_mcnemar_exact_matches_scipy_and_bootstrap_detects_a_real_difference():
    from scipy.stats import binomtest
    a = [1] * 70 + [0] * 30
    b = [1] * 50 + [0] * 20 + [1] * 5 + [0] * 25
    r = paired_comparison(a, b)
    assert (r["only_a_correct"], r["only_b_correct"]) == (20, 5)
    assert math.isclose(r["p_value"], binomtest(5, 25, 0.5).pvalue) and r["p_value"] < 0.01
    assert math.isclose(r["diff"], 0.15) and r["diff_ci"][0] > 0
    assert paired_comparison(a, b, "bootstrap", n_boot=2000)["p_value"] < 0.01
    assert paired_comparison(a, a)["p_value"] == 1.0


def test_compare_runs_aligns_by_id_and_rejects_different_questions():
    A = [{"id": "1", "pred": {"A"}, "gold": "A"}, {"id": "2", "pred": None, "gold": "B"}]
    B = list(reversed([{"id": "1", "pred": {"B"}, "gold": "A"}, {"id": "2", "pred": {"B"}, "gold": "B"}]))
    r = compare_runs(A, B)
    assert (r["only_a_correct"], r["only_b_correct"]) == (1, 1)
    with pytest.raises(MedreproError, match="different questions"):
        compare_runs(A, B[:1])


def test_answer_key():
    assert answer_key("CA") == "AC" and answer_key(None) == UNPARSED


def test_compare_eval_reads_saved_runs(tmp_path):
    import json
    from medrepro.eval.stats import compare_eval
    for name, preds in (("a", "AAAB"), ("b", "ABBB")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "samples.jsonl").write_text("".join(json.dumps({"id": str(i), "pred": p, "gold": "A"}) + "\n" for i, p in enumerate(preds)))
    r = compare_eval(tmp_path / "a", tmp_path / "b" / "samples.jsonl")
    assert (r["only_a_correct"], r["only_b_correct"]) == (2, 0) and r["diff"] == 0.5
    with pytest.raises(MedreproError, match="no such"):
        compare_eval(tmp_path / "a", tmp_path / "c")


def test_compare_cmd(tmp_path, capsys):
    import json
    from medrepro.eval.stats import compare_cmd
    for name, preds in (("a", "A" * 30 + "B" * 10), ("b", "A" * 12 + "B" * 28)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "samples.jsonl").write_text("".join(json.dumps({"id": str(i), "pred": p, "gold": "A"}) + "\n" for i, p in enumerate(preds)))
    assert compare_cmd([str(tmp_path / "a"), str(tmp_path / "b"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["only_a_correct"] == 18 and r["p_value"] < 1e-4
