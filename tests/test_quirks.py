"""Real-release quirks: normalised and counted when they have one reading, refused with file, row and line otherwise."""
import json

import pytest

from medrepro.cli import main
from medrepro.data.records import RecordError
from medrepro.data.sources import load

BOM, CRLF = "\ufeff", "\r\n"


def write(path, text: str, bom: bool = False, crlf: bool = False):
    if crlf: text = text.replace("\n", CRLF)
    path.write_bytes(((BOM if bom else "") + text).encode("utf-8"))
    return path


def xmed(tmp_path, items, **kw):
    return write(tmp_path / "zh.json", json.dumps(items, ensure_ascii=False, indent=1), **kw)


def test_xmedbench_padding_option_is_dropped_and_counted(tmp_path):
    # the xMedBench Chinese test file pads some 4-option questions with an empty fifth option "(E) ."
    p = xmed(tmp_path, [{"question": "哪种药抑制血小板？", "options": "(A) 阿司匹林.\n(B) 胰岛素.\n(C) 华法林.\n(D) 肝素.\n(E) .", "answer": "(A)"},
                        {"question": "正常心率？", "options": "(A) 60-100.\n(B) 20-40.", "answer": "(A)"}])
    res = load("xmedbench", p)
    assert [len(q.options) for q in res] == [4, 2] and res.info["normalised"] == {"empty_trailing_option": 1}


def test_xmedbench_letter_forms_bom_and_crlf(tmp_path):
    p = xmed(tmp_path, [{"question": "Q?", "options": "A. un\nB. deux\n（C）trois", "answer": "(c)"}], bom=True, crlf=True)
    res = load("xmedbench", p)
    assert res[0].options == {"A": "un", "B": "deux", "C": "trois"} and res[0].answer == {"C"}
    assert res.info["normalised"] == {"answer_letter_form": 1, "bom": 1, "crlf_line_ends": 1, "option_letter_form": 3}


def test_all_empty_options_are_refused_with_file_and_row(tmp_path):
    p = xmed(tmp_path, [{"question": "ok?", "options": "(A) a.\n(B) b.", "answer": "(A)"},
                        {"question": "padding only?", "options": "(A) .\n(B) .", "answer": "(A)"}])
    with pytest.raises(RecordError, match=r"zh\.json:row 2: every option is empty"):
        load("xmedbench", p)
    res = load("xmedbench", p, on_error="skip")
    assert len(res) == 1 and res.skipped[0].row == 1 and str(res.skipped[0]).endswith("row 2: every option is empty")


def test_medqa_letter_forms_whitespace_and_padding(tmp_path):
    rows = [{"question": "Which?", "options": {"A": "x ", "B": "y", "C": "z", "D": "w", "E": ""}, "answer": "y", "answer_idx": "b"},
            {"question": "Other?", "options": {"a": "p", "(B)": "q"}, "answer_idx": "A."}]
    p = write(tmp_path / "test.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    res = load("medqa", p)
    assert [q.answer_str for q in res] == ["B", "A"] and res[0].options["A"] == "x" and list(res[1].options) == ["A", "B"]
    assert res.info["normalised"] == {"answer_letter_form": 2, "empty_trailing_option": 1, "option_letter_form": 2,
                                      "surrounding_whitespace": 1}


def test_medqa_gap_is_refused_with_row_and_line(tmp_path):
    p = write(tmp_path / "test.jsonl", '{"question": "a", "options": {"A": "x", "B": "y"}, "answer_idx": "A"}\n\n'
                                       '{"question": "b", "options": {"A": "x", "C": "y"}, "answer_idx": "A"}\n')
    with pytest.raises(RecordError) as e:
        load("medqa", p)
    assert str(e.value) == f"{p}:row 2 (line 3): missing option B (options present: AC)"


def test_cmexam_csv_with_bom_crlf_and_whitespace(tmp_path):
    p = write(tmp_path / "test.csv", "Question,Options,Answer,Explanation\n心脏有几个腔？ ,A 2\\nB 3\\nC 4,C,\n",
              bom=True, crlf=True)
    res = load("cmexam", p)
    assert res[0].question == "心脏有几个腔？" and res[0].answer == {"C"}
    assert res.info["normalised"] == {"bom": 1, "crlf_line_ends": 1, "surrounding_whitespace": 1}


def test_mmlu_lowercase_answer_and_crlf(tmp_path):
    p = write(tmp_path / "anatomy_test.csv", "Which bone?,Femur,Tibia,Ulna,Radius,b\n", crlf=True)
    res = load("mmlu", p)
    assert res[0].answer == {"B"} and res.info["normalised"] == {"answer_letter_form": 1, "crlf_line_ends": 1}


def test_pharmacist_and_mmedbench_padding(tmp_path):
    ph = write(tmp_path / "exam.json", json.dumps([{"question": "Q", "option": {"A": "a", "B": "b", "C": "c", "D": "d", "E": ""},
                                                    "answer": "A", "analysis": ""}], ensure_ascii=False))
    assert load("pharmacist", ph).info["normalised"] == {"empty_trailing_option": 1}
    mm = write(tmp_path / "French.jsonl", json.dumps({"question": "Q", "options": {"A": "a", "B": "b", "C": ""}, "answer_idx": "A"}) + "\n")
    res = load("mmedbench", mm)
    assert list(res[0].options) == ["A", "B"] and res.info["normalised"] == {"empty_trailing_option": 1}


def test_a_refused_row_does_not_count_its_quirks(tmp_path):
    p = write(tmp_path / "test.jsonl", '{"question": "a", "options": {"a": "x", "B": "y"}, "answer_idx": "A"}\n'
                                       '{"question": "", "options": {"a": "x", "B": "y"}, "answer_idx": "A"}\n')
    res = load("medqa", p, on_error="skip")
    assert len(res) == 1 and res.info["normalised"] == {"option_letter_form": 1}


def test_data_stats_json_reports_normalised(tmp_path, capsys):
    p = xmed(tmp_path, [{"question": "Q?", "options": "(A) x.\n(B) y.\n(C) .", "answer": "(B)"}], bom=True)
    assert main(["data", "stats", str(p), "--format", "xmedbench", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["records"] == 1 and out["normalised"] == {"bom": 1, "empty_trailing_option": 1}
    assert main(["data", "stats", str(p), "--format", "xmedbench"]) == 0
    assert "normalised    bom: 1, empty_trailing_option: 1" in capsys.readouterr().out


def test_real_xmedbench_samples_load_whole(shared_samples):
    for f in ("test_fr_sample10.json", "test_es_sample10.json"):
        res = load("xmedbench", shared_samples / "xmedbench" / f)
        assert len(res) == 10 and not res.skipped


VALID = {"cmexam": "cmexam/test.csv", "medqa": "medqa", "medmcqa": "medmcqa/dev.json", "pubmedqa": "pubmedqa/ori_pqal.json",
         "mmlu": "mmlu/test", "cmmlu": "cmmlu/test", "ceval": "ceval/val", "pharmacist": "pharmacist/exam.json",
         "mmedbench": "mmedbench/Test", "xmedbench": "xmedbench", "text": "text/corpus.txt", "alpaca": "alpaca/train.json",
         "sharegpt": "sharegpt/conversations.jsonl", "jsonl": "jsonl/docs.jsonl", "records": "records/records.jsonl"}


def test_every_format_is_checked_for_bom_and_crlf():
    from medrepro.data.sources import LOADERS
    assert sorted(VALID) == LOADERS.names()


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_bom_and_windows_line_ends_in_every_format(fixtures, tmp_path, fmt):
    "The same files saved by a Windows editor (BOM, CRLF) load into the same records, and the quirks are counted."
    src = fixtures / VALID[fmt]
    files = [src] if src.is_file() else sorted(p for p in src.iterdir() if p.is_file())
    dst = tmp_path / src.name
    if src.is_dir(): dst.mkdir()
    for f in files:
        text = f.read_bytes().decode("utf-8").replace("\r\n", "\n").replace("\n", "\r\n")
        (dst if src.is_file() else dst / f.name).write_bytes((BOM + text).encode("utf-8"))
    plain, quirky = load(fmt, src), load(fmt, dst)
    key = lambda r: (r.id.split("/")[-1], getattr(r, "question", None) or getattr(r, "instruction", None) or r.text.strip(),
                     getattr(r, "answer", None))
    assert [key(r) for r in quirky] == [key(r) for r in plain] and len(plain) > 0
    assert quirky.info["normalised"]["bom"] == len(files) and quirky.info["normalised"]["crlf_line_ends"] == len(files)
