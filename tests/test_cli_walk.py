"""Every user-facing command with bad values and bad files: one line on stderr, exit 2 or 1, never a traceback."""
import io, json, contextlib

import pytest

from medrepro.cli import main

FIX = "medrepro/assets/fixtures"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "binary.dat").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "docs.txt").write_text("Aspirin inhibits platelets.\n", encoding="utf-8")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "bad.jsonl").write_text('{"id": 1, "output": "A"}\n{broken\n', encoding="utf-8")
    return tmp_path


def run(argv):
    "(exit status, stdout, stderr) of `medrepro ARGV` run in-process (argparse's SystemExit included)."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: rc = main(argv)
        except SystemExit as e: rc = e.code
    return rc, out.getvalue(), err.getvalue()


FN = ["--backend", "function", "--model", "mock", "--cache", "none", "--no-progress"]
UNIFY = ["unify", "--input", "{t}/docs.txt", "--source-type", "web", "--out", "{t}/o.jsonl", *FN]
GENQA = ["generate-qa", "--input", "{t}/docs.txt", "--out", "{t}/q.jsonl", *FN]
TRANS = ["translate", "--input", f"{FIX}/records/records.jsonl", "--to", "fr", "--encoder", "none", "--out", "{t}/t.jsonl", *FN]
OPENAI = ["--backend", "openai", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--api-key-env", ""]

BAD_VALUES = [  # (argv, words the error must contain)
    (UNIFY + ["--chunk-size", "-1"], "--chunk-size"), (UNIFY + ["--chunk-size", "0"], "--chunk-size"),
    (UNIFY + ["--limit", "-1"], "--limit"), (UNIFY + ["--limit", "x"], "--limit"),
    (UNIFY + ["--concurrency", "0"], "--concurrency"), (UNIFY + ["--retries", "-1"], "--retries"),
    (UNIFY + ["--max-question-chars", "0"], "--max-question-chars"), (UNIFY + ["--format", "nope"], "--format"),
    (UNIFY + ["--source-type", "blog"], "--source-type"), (UNIFY + ["--language", "fr"], "--language"),
    (UNIFY + ["--price-in", "-1"], "--price-in"), (UNIFY + ["--batch-size", "0"], "--batch-size"),
    (UNIFY + ["--timeout", "-1"], "--timeout"), (UNIFY + ["--timeout", "0"], "--timeout"), (UNIFY + ["--timeout", "nan"], "--timeout"),
    (UNIFY + ["--max-retries", "-1"], "--max-retries"), (UNIFY + ["--retry-base-delay", "-0.5"], "--retry-base-delay"),
    (UNIFY + ["--max-consecutive-failures", "0"], "--max-consecutive-failures"), (UNIFY + ["--base-url", "ftp://x/v1"], "--base-url"),
    (UNIFY + ["--out", "{t}/folder"], "is a folder"), (UNIFY + ["--cache", "{t}/folder"], "is a folder"),
    (UNIFY[:7] + OPENAI[:-1] + ["MEDREPRO_SURELY_UNSET_VAR"], "not set"),
    (GENQA + ["--n-options", "1"], "--n-options"), (GENQA + ["--n-pairs", "0"], "--n-pairs"), (GENQA + ["--kind", "essay"], "--kind"),
    (GENQA + ["--max-tokens", "0"], "--max-tokens"),
    (TRANS + ["--threshold", "1.5"], "--threshold"), (TRANS + ["--to", ","], "--to"), (TRANS + ["--bleu-weight", "-1"], "--bleu-weight"),
    (TRANS + ["--bleu-weight", "0"], "weights"), (TRANS + ["--max-tokens", "-3"], "--max-tokens"),
    (["data", "stats", f"{FIX}/cmexam/test.csv", "--format", "nope"], "--format"),
    (["data", "stats", f"{FIX}/cmexam/test.csv", "--format", "cmexam", "--on-error", "maybe"], "--on-error"),
    (["data", "overlap", "--train", "text", "{t}/docs.txt", "--n", "0"], "--n"),
    (["train", "--config", "params/train/guo_pretrain.yaml", "--tier", "nope"], "--tier"),
    (["eval", "run", "--model", "tiny", "--benchmark", "cmexam_test", "--data", "smoke", "--limit", "-1", "--out", "{t}/e"], "--limit"),
    (["eval", "run", "--model", "tiny", "--benchmark", "cmexam_test", "--data", "smoke", "--batch-size", "0", "--out", "{t}/e"], "--batch-size"),
    (["eval", "run", "--model", "tiny", "--benchmark", "cmexam_test", "--data", "smoke", "--max-new-tokens", "0", "--out", "{t}/e"], "--max-new-tokens"),
    (["eval", "run", "--model", "tiny", "--benchmark", "cmexam_test", "--data", "smoke", "--temperature", "-1", "--out", "{t}/e"], "--temperature"),
    (["eval", "run", "--model", "tiny", "--benchmark", "cmexam_test", "--data", "smoke", "--shots", "-2", "--out", "{t}/e"], "--shots"),
    (["eval", "run", "--model", "tiny", "--benchmark", "cmexam_test", "--data", "smoke", "--n-boot", "-5", "--out", "{t}/e"], "--n-boot"),
    (["eval", "score", "--format", "cmexam", "--data", f"{FIX}/cmexam/test.csv", "--predictions", "{t}/bad.jsonl", "--n-boot", "-1"], "--n-boot"),
    (["eval", "compare", "{t}/a_file", "{t}/a_file", "--n-boot", "-1"], "--n-boot"),
    (["data", "get", "no-such-release"], "no-such-release"), (["data", "get", "--tier", "huge", "--all", "--check"], "tier"),
    (["reproduce", "--jobs", "0", "--list"], "--jobs"), (["reproduce", "--tier", "huge", "--list"], "--tier"),
    (["report", "--tier", "huge"], "--tier"),
]

BAD_FILES = [  # (argv, words the error must contain)
    (UNIFY[:2] + ["{t}/missing.txt"] + UNIFY[3:], "no such file"), (UNIFY[:2] + ["{t}/empty.txt"] + UNIFY[3:], "no inputs"),
    (UNIFY[:2] + ["{t}/binary.dat", "--format", "jsonl"] + UNIFY[3:], "binary.dat:row 1 (line 1)"),
    (UNIFY[:2] + ["{t}/bad.jsonl", "--format", "jsonl"] + UNIFY[3:], "bad.jsonl:row 1 (line 1): missing field 'text'"),
    (UNIFY + ["--out", "{t}/a_file/o.jsonl"], "cannot create folder"), (UNIFY + ["--cache", "{t}/a_file/c.sqlite"], "cannot create folder"),
    (UNIFY + ["--cache", "{t}/docs.txt"], "not a usable SQLite file"),
    (GENQA[:2] + ["{t}/binary.dat"] + GENQA[3:], "undecodable bytes"),
    (TRANS[:2] + ["{t}/bad.jsonl"] + TRANS[3:], "bad.jsonl:row 1 (line 1): not a medrepro Document record"),
    (["data", "stats", "{t}/binary.dat", "--format", "cmexam"], "binary.dat"),
    (["data", "stats", "{t}/missing", "--format", "medqa"], "no such file or folder"),
    (["train", "--config", "{t}/binary.dat"], "not UTF-8"), (["train", "--config", "{t}/missing.yaml"], "does not exist"),
    (["train", "--config", "{t}/empty.txt"], "mapping"),
    (["eval", "run", "--model", "tiny", "--format", "cmexam", "--data", "{t}/binary.dat", "--out", "{t}/e"], "binary.dat"),
    (["eval", "run", "--model", "tiny", "--format", "medqa", "--data", "{t}/missing.jsonl", "--out", "{t}/e"], "no such file"),
    (["eval", "score", "--format", "cmexam", "--data", f"{FIX}/cmexam/test.csv", "--predictions", "{t}/binary.dat"], "not UTF-8"),
    (["eval", "score", "--format", "cmexam", "--data", f"{FIX}/cmexam/test.csv", "--predictions", "{t}/bad.jsonl"], "bad.jsonl:line 2"),
    (["data", "get", "--manifest", "{t}/binary.dat", "--list"], "not UTF-8"),
    (["reproduce", "--params-dir", "{t}/missing", "--list"], "no parameter files"),
    (["report", "--runs-dir", "{t}/missing"], "no such folder"), (["report", "--runs-dir", "{t}/a_file"], "a_file"),
]


@pytest.mark.parametrize("argv,words", BAD_VALUES, ids=[" ".join(a[:2]) + " " + w for a, w in BAD_VALUES])
def test_bad_values_exit_2_in_one_line(files, argv, words):
    rc, out, err = run([a.format(t=files) for a in argv])
    assert rc == 2 and "Traceback" not in err + out, err
    assert words in err and len(err.strip().splitlines()) == 1, err
    assert not (files / "o.jsonl").exists()  # refused before any work


@pytest.mark.parametrize("argv,words", BAD_FILES, ids=[" ".join(a[:2]) + " " + w for a, w in BAD_FILES])
def test_bad_files_exit_1_in_one_line(files, argv, words):
    rc, out, err = run([a.format(t=files) for a in argv])
    assert rc == 1 and "Traceback" not in err + out, err
    assert words in err and len(err.strip().splitlines()) == 1, err


def test_every_command_is_walked():
    from medrepro.cli import COMMANDS
    walked = {" ".join(a[:2]) if " ".join(a[:2]) in COMMANDS else a[0] for a, _ in BAD_VALUES + BAD_FILES}
    assert {"data stats", "data get", "unify", "generate-qa", "translate", "train", "eval run", "eval score", "reproduce", "report"} <= walked


def test_unset_default_key_variable_warns_and_runs(files, monkeypatch):
    "The default OPENAI_API_KEY unset: a warning, and the run goes on (a keyless local server is common)."
    from llm_server import serve
    from medrepro.data.llm import mock_responder
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with serve(mock_responder) as url:
        rc, out, err = run(["unify", "--input", str(files / "docs.txt"), "--source-type", "web", "--out", str(files / "o.jsonl"),
                            "--backend", "openai", "--model", "m", "--base-url", url, "--cache", "none", "--no-progress"])
    assert rc == 0 and "warning: $OPENAI_API_KEY is not set" in err and "1 accepted" in out
