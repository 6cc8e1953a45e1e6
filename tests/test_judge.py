"""Pairwise judging: both orders, 10/0 and 5/5 scoring, win/tie/loss with intervals, unparsed replies, the CLI."""
import json, subprocess, sys, pathlib
import pytest
from medrepro.core import MedreproError
from medrepro.data.records import RecordError
from medrepro.data.llm import FunctionBackend
from medrepro.eval.judge import judge_pairs, pair_items, parse_verdict, summarize

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from llm_server import serve  # noqa: E402


def _answers(msgs):
    u = msgs[-1]["content"]
    return u.split("[Answer 1]\n")[1].split("\n[End of answer 1]")[0], u.split("[Answer 2]\n")[1].split("\n[End of answer 2]")[0]


def oracle(msgs):
    """Prefers the answer that mentions vitamin C; tie when both or neither do."""
    a1, a2 = ("vitamin C" in x for x in _answers(msgs))
    return "Thinking.\nVerdict: " + ("1" if a1 and not a2 else "2" if a2 and not a1 else "tie")


def _items(n_win=6, n_tie=3, n_loss=1):
    good, bad = "Scurvy: vitamin C deficiency.", "Scurvy: too much sun."
    rows = [(good, bad)] * n_win + [(good, good)] * n_tie + [(bad, good)] * n_loss
    return [{"id": str(i), "question": "What causes scurvy?", "a": a, "b": b} for i, (a, b) in enumerate(rows)]


def test_both_orders_sum_to_win_tie_loss():
    r = judge_pairs(FunctionBackend(oracle, name="oracle"), _items(), n_boot=200)
    s = r.summary
    assert (s["win"], s["tie"], s["loss"]) == (0.6, 0.3, 0.1) and s["unparsed"] == 0 and s["consistency"] == 1.0
    assert [x["points_a"] for x in r.samples] == [20] * 6 + [10] * 3 + [0]
    assert s["win_ci"][0] <= 0.6 <= s["win_ci"][1] and s["win_ci"][0] < s["win_ci"][1]
    assert r.samples[0]["reply_a_first"].endswith("Verdict: 1") and r.samples[0]["reply_b_first"].endswith("Verdict: 2")


def test_position_biased_judge_gives_ties_not_wins():
    r = judge_pairs(FunctionBackend(lambda m: "Verdict: 1", name="first"), _items(), n_boot=50)
    assert r.summary["tie"] == 1.0 and r.summary["consistency"] == 0.0 and r.summary["first_position_preference"] == 1.0


def test_one_order_tie_other_win_counts_as_win():
    calls = []
    def half(msgs):
        calls.append(1)
        return "Verdict: tie" if len(calls) <= 1 else "Verdict: 2"  # first (A-first) order tie; B-first says answer 2 = A
    r = judge_pairs(FunctionBackend(half, name="half"), _items(1, 0, 0), n_boot=10)
    assert r.samples[0]["points_a"] == 15 and r.samples[0]["outcome"] == "win"


def test_unparsed_and_failed_replies_are_counted_not_guessed():
    def flaky(msgs):
        a1, _ = _answers(msgs)
        if "sun" in a1: raise RuntimeError("judge down")
        return "no verdict here"
    r = judge_pairs(FunctionBackend(flaky, name="flaky"), _items(2, 0, 0), n_boot=10)
    assert r.summary["unparsed"] == 2 and r.summary["judged"] == 0 and all(s["outcome"] == "unparsed" for s in r.samples)
    assert r.samples[0]["error"] and "judge down" in r.samples[0]["error"]


def test_parse_verdict():
    assert parse_verdict("Verdict: 1") == "1" and parse_verdict("verdict：平局") == "tie"
    assert parse_verdict("Verdict: [[2]]") == "2" and parse_verdict("Verdict: maybe") is None and parse_verdict(None) is None


def test_bad_items_and_missing_questions():
    with pytest.raises(RecordError, match="lacks"):
        judge_pairs(FunctionBackend(oracle, name="o"), [{"id": "1", "a": "x", "b": "y"}])
    with pytest.raises(MedreproError, match="no question text"):
        pair_items({"1": {"id": "1", "output": "x"}}, {"1": {"id": "1", "output": "y"}})


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_judge_cli_through_an_openai_compatible_server(tmp_path, capsys):
    from medrepro.cli import main
    items = _items()
    _write(tmp_path / "a.jsonl", [{"id": it["id"], "question": it["question"], "output": it["a"]} for it in items] + [{"id": "extra", "output": "x"}])
    _write(tmp_path / "b.jsonl", [{"id": it["id"], "output": it["b"]} for it in items])
    with serve(oracle) as base_url:
        rc = main(["eval", "judge", "--a", str(tmp_path / "a.jsonl"), "--b", str(tmp_path / "b.jsonl"), "--backend", "openai",
                   "--model", "judge", "--base-url", base_url, "--api-key-env", "", "--cache", "none", "--out", str(tmp_path / "o"),
                   "--json", "--n-boot", "100", "--concurrency", "2"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["win"], s["tie"], s["loss"]) == (0.6, 0.3, 0.1) and s["only_in_a"] == 1 and s["n"] == 10
    saved = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert saved["protocol"]["template"] == "pairwise_en" and "git_sha" in saved["run"]
    assert len((tmp_path / "o" / "judgements.jsonl").read_text().splitlines()) == 10


def test_summarize_empty():
    s = summarize([], n_boot=10)
    assert s["n"] == 0 and s["judged"] == 0


def test_judge_cli_with_a_local_hf_judge_counts_unparsed(tmp_path, capsys):
    """The untrained tiny model writes no verdicts: every question is unparsed and counted, none guessed."""
    from medrepro.cli import main
    items = _items(1, 1, 0)
    _write(tmp_path / "a.jsonl", [{"id": it["id"], "question": it["question"], "output": it["a"]} for it in items])
    _write(tmp_path / "b.jsonl", [{"id": it["id"], "output": it["b"]} for it in items])
    rc = main(["eval", "judge", "--a", str(tmp_path / "a.jsonl"), "--b", str(tmp_path / "b.jsonl"), "--backend", "hf",
               "--model", "tiny", "--cache", "none", "--max-tokens", "6", "--out", str(tmp_path / "o"), "--json", "--n-boot", "10"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["n"] == 2 and s["unparsed"] + s["judged"] == 2
    saved = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert saved["protocol"]["judge"]["kind"] == "hf" and saved["protocol"]["max_tokens"] == 6


def test_importing_the_library_registers_no_judge():
    """The offline stand-in judge is found by name through `judge_backend`; no import adds it to a registry."""
    code = ("import medrepro.paper, medrepro.report, medrepro.eval.judge\n"
            "from medrepro.data.llm import RESPONDERS\n"
            "print('length_judge' in RESPONDERS.names())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_length_judge_by_name_through_judge_backend_and_the_cli(tmp_path, capsys):
    from medrepro.cli import main
    from medrepro.eval.judge import judge_backend, judge_messages
    reply = judge_backend("function", "length_judge").chat_many([judge_messages("Q?", "short", "a much longer answer")])[0]
    assert reply.text.endswith("Verdict: 2")
    items = _items(1, 0, 0)
    _write(tmp_path / "a.jsonl", [{"id": it["id"], "question": it["question"], "output": "a long and detailed answer"} for it in items])
    _write(tmp_path / "b.jsonl", [{"id": it["id"], "output": "short"} for it in items])
    rc = main(["eval", "judge", "--a", str(tmp_path / "a.jsonl"), "--b", str(tmp_path / "b.jsonl"), "--backend", "function",
               "--model", "length_judge", "--cache", "none", "--out", str(tmp_path / "o"), "--json", "--n-boot", "10"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["win"] == 1.0
