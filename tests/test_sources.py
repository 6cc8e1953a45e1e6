"""Loaders for every original dataset format: valid fixtures, malformed rows, real shared samples."""
import filecmp, json, pathlib
import pytest
from medrepro.core import MedreproError, UnknownNameError
from medrepro.data.records import MCQ, Document, Pair, RecordError
from medrepro.data.sources import LOADERS, LoadResult, Skipped, load, load_mcq, parse_cmexam_options, parse_xmed_options

ASSETS = pathlib.Path(__file__).resolve().parent.parent / "medrepro" / "assets" / "fixtures"
FORMATS = ["cmexam", "medqa", "medmcqa", "pubmedqa", "mmlu", "cmmlu", "ceval", "pharmacist", "mmedbench", "xmedbench",
           "text", "alpaca", "sharegpt", "jsonl", "records"]


def test_every_format_is_registered():
    assert sorted(FORMATS) == LOADERS.names()
    with pytest.raises(UnknownNameError, match="did you mean 'cmexam'"):
        load("cmexan", "x.csv")


# ------------------------------------------------------------------ valid fixtures, format by format
def test_cmexam_multi_answer_and_annotations(fixtures):
    res = load("cmexam", fixtures / "cmexam" / "test.csv")
    assert isinstance(res, LoadResult) and len(res) == 6 and not res.skipped
    q = res[1]
    assert q.id == "1" and q.answer == {"A", "B", "D"} and q.is_multi and q.language == "zh"
    assert q.options["B"] == "二度以上房室传导阻滞" and len(q.options) == 5
    assert "\n" in q.explanation and '"严重"' in q.explanation       # quoted cell with a real newline and quotes
    assert q.meta["Disease Group"] == "心血管系统疾病"
    four = res[2]
    assert list(four.options) == list("ABCD") and four.explanation == "" and "Disease Group" not in four.meta  # 'nan' is missing
    assert [q.answer_str for q in res] == ["B", "ABD", "B", "C", "D", "ACD"]


def test_cmexam_option_cell_splits_on_backslash_n_only():
    assert parse_cmexam_options("A 甲\\nB 乙 丙\\nC 1\\n") == [("A", "甲"), ("B", "乙 丙"), ("C", "1")]
    with pytest.raises(RecordError, match="cannot read option"):
        parse_cmexam_options("甲乙丙")


def test_medqa_us_and_mainland(fixtures):
    res = load("medqa", fixtures / "medqa")
    ids = [q.id for q in res]
    assert ids[0] == "Mainland_MCMLE_test/0" and "US_4_options_test/3" in ids    # folder: file stem prefixes ids
    us = load_mcq("medqa", fixtures / "medqa" / "US_4_options_test.jsonl")
    assert [q.answer_str for q in us] == ["A", "C", "D", "B"] and {q.language for q in us} == {"en"}
    assert us[1].meta == {"meta_info": "step2&3"}
    cn = load_mcq("medqa", fixtures / "medqa" / "Mainland_MCMLE_test.jsonl")
    assert {q.language for q in cn} == {"zh"} and len(cn[0].options) == 5 and cn[0].meta["meta_info"] == "第二篇　消化系统"
    assert load_mcq("medqa", fixtures / "medqa" / "Mainland_MCMLE_test.jsonl", language="zh-cn")[0].language == "zh-cn"


def test_medmcqa_cop_base_detected_from_the_whole_file(fixtures):
    one = load("medmcqa", fixtures / "medmcqa" / "dev.json")
    zero = load("medmcqa", fixtures / "medmcqa" / "validation_hub.jsonl")
    assert one.info["cop_base"] == 1 and zero.info["cop_base"] == 0
    assert "4" in one.info["cop_base_reason"] and "0" in zero.info["cop_base_reason"]
    assert [q.answer_str for q in one] == [q.answer_str for q in zero] == ["B", "D", "A", "B", "C"]
    assert one[0].id == "b1f0a7e2-0001" and one[0].meta["subject_name"] == "Pharmacology" and one[1].explanation == ""


def test_medmcqa_ambiguous_or_contradictory_cop_is_an_error(fixtures):
    bad = fixtures / "medmcqa" / "malformed"
    with pytest.raises(RecordError, match="cannot tell 0-3 from 1-4; pass cop_base"):
        load("medmcqa", bad / "ambiguous.json")
    with pytest.raises(RecordError, match="both 0 and 4"):
        load("medmcqa", bad / "mixed.json")
    assert [q.answer_str for q in load("medmcqa", bad / "ambiguous.json", cop_base=1)] == ["B", "B", "C"]
    assert [q.answer_str for q in load("medmcqa", bad / "ambiguous.json", cop_base=0)] == ["C", "C", "D"]
    with pytest.raises(RecordError, match="contradicts"):
        load("medmcqa", fixtures / "medmcqa" / "dev.json", cop_base=0)


def test_pubmedqa_yes_no_maybe_with_context_in_meta(fixtures):
    res = load("pubmedqa", fixtures / "pubmedqa" / "ori_pqal.json")
    assert [q.id for q in res] == ["90000001", "90000002", "90000003", "90000004"]
    assert [q.answer_str for q in res] == ["A", "B", "C", "A"]
    q = res[0]
    assert q.options == {"A": "yes", "B": "no", "C": "maybe"}
    assert q.question.startswith("Does early") and "randomised" not in q.question   # context is not in the question
    assert len(q.meta["contexts"]) == 2 and q.meta["labels"] == ["METHODS", "RESULTS"] and q.explanation


def test_pubmedqa_ground_truth_selects_and_checks(fixtures):
    d = fixtures / "pubmedqa"
    res = load("pubmedqa", d / "ori_pqal.json", ground_truth=d / "test_ground_truth.json")
    assert [(q.id, q.answer_str) for q in res] == [("90000002", "B"), ("90000003", "C")]
    with pytest.raises(RecordError, match=r"PMID 90000001: final_decision 'yes' disagrees with ground truth 'no'"):
        load("pubmedqa", d / "ori_pqal.json", ground_truth=d / "malformed" / "ground_truth_disagrees.json")


def test_mmlu_subject_from_filename_and_folder(fixtures):
    res = load("mmlu", fixtures / "mmlu" / "test")
    assert len(res) == 8 and res.info["files"] and len(res.info["files"]) == 3
    assert res[0].id == "anatomy/0" and res[0].meta == {"subject": "anatomy", "split": "test"}
    assert {q.meta["subject"] for q in res} == {"anatomy", "clinical_knowledge", "college_medicine"}
    one = load("mmlu", fixtures / "mmlu" / "test" / "clinical_knowledge_test.csv")
    assert one[2].question.endswith('"ventrogluteal", lies over the') and one[2].answer == {"A"}
    sel = load("mmlu", fixtures / "mmlu" / "test", subjects=["college_medicine"])
    assert {q.meta["subject"] for q in sel} == {"college_medicine"}
    with pytest.raises(RecordError, match="subject.*virology.*not found"):
        load("mmlu", fixtures / "mmlu" / "test", subjects=["virology"])


def test_cmmlu_unnamed_index_column(fixtures):
    res = load("cmmlu", fixtures / "cmmlu" / "test")
    assert [q.id for q in res][:2] == ["anatomy/0", "anatomy/1"] and res[0].language == "zh"
    assert res[0].options == {"A": "肝脏", "B": "皮肤", "C": "肺", "D": "小肠"} and res[0].answer == {"B"}
    with pytest.raises(RecordError, match="line 1: header 'idx,Question"):
        load("cmmlu", fixtures / "cmmlu" / "malformed" / "named_index.csv")


def test_ceval_ids_explanations_and_test_split(fixtures):
    val = load("ceval", fixtures / "ceval" / "val")
    assert [q.id for q in val] == ["clinical_medicine/0", "clinical_medicine/1", "clinical_medicine/2", "physician/0", "physician/1"]
    dev = load("ceval", fixtures / "ceval" / "dev")
    assert dev[0].explanation.startswith("1. 成年男性") and dev[0].meta["split"] == "dev"
    with pytest.raises(RecordError, match="no answer column"):
        load("ceval", fixtures / "ceval" / "malformed" / "clinical_medicine_test.csv")


def test_pharmacist_nfkc_four_options_multi_answer(fixtures):
    res = load("pharmacist", fixtures / "pharmacist" / "exam.json")
    q0, q1, q2 = res[0], res[1], res[2]
    assert "⼀" not in q0.question and "一般" in q0.question and "一线" in q0.explanation   # Kangxi radical U+2F00 -> U+4E00
    assert "长效" in q1.question and list(q1.options) == list("ABCD")                     # empty E -> 4 options
    assert q2.answer == {"A", "C", "D"} and q2.meta["question_type"] == "多项选择题"
    lay = load("pharmacist", fixtures / "pharmacist" / "eval_layout.json")
    assert [q.id for q in lay] == ["2023_药学/0", "2023_药学/1", "2023_中药学/0"] and lay[2].meta["exam"] == "2023_中药学"


def test_pharmacist_full_width_letters(tmp_path):
    item = {"question": "１．测试", "option": {"Ａ": "甲", "Ｂ": "乙", "Ｃ": "丙", "Ｄ": "丁", "Ｅ": ""}, "answer": "ＡＣ",
            "analysis": "", "question_type": "多项选择题", "source": "x"}
    (tmp_path / "fw.json").write_text(json.dumps([item], ensure_ascii=False), encoding="utf-8")
    q = load("pharmacist", tmp_path / "fw.json")[0]
    assert q.options == {"A": "甲", "B": "乙", "C": "丙", "D": "丁"} and q.answer == {"A", "C"} and q.question == "1.测试"


def test_mmedbench_languages_and_multi_answer(fixtures):
    res = load("mmedbench", fixtures / "mmedbench" / "Test")
    langs = {q.id.split("/")[0]: q.language for q in res}
    assert langs == {"Chinese": "zh", "English": "en", "French": "fr", "Japanese": "ja", "Russian": "ru", "Spanish": "es"}
    fr = load("mmedbench", fixtures / "mmedbench" / "Test" / "French.jsonl")
    assert fr[1].answer == {"A", "C", "E"} and fr[1].explanation.startswith("L'héparine")
    with pytest.raises(RecordError, match="language unknown"):
        load("mmedbench", fixtures / "mmedbench" / "malformed" / "no_language.jsonl")
    assert load("mmedbench", fixtures / "mmedbench" / "malformed" / "no_language.jsonl", language="en")[0].language == "en"


def test_xmedbench_option_string_and_parenthesised_answer(fixtures):
    fr = load("xmedbench", fixtures / "xmedbench" / "fr.json")
    assert fr[0].options["B"] == "Elle est sécrétée par les cellules bêta" and fr[1].answer == {"A", "C"}
    es = load("xmedbench", fixtures / "xmedbench" / "es.json")
    assert es[0].options["D"] == "Atenolol." and es[1].answer == {"A", "B", "D"} and es[0].language == "es"
    kept = load("xmedbench", fixtures / "xmedbench" / "es.json", strip_period=False)
    assert kept[0].options["D"] == "Atenolol.." and kept.info["stripped_trailing_period"] is False
    assert parse_xmed_options("(A) one\n  continued.\n(B) two.") == [("A", "one\n  continued"), ("B", "two")]


def test_text_documents(fixtures):
    txt = load("text", fixtures / "text" / "corpus.txt", source="books")
    assert [d.id for d in txt] == ["0", "2", "3"]                       # ids are line numbers; the blank line is no document
    assert all(isinstance(d, Document) and d.source == "books" for d in txt)
    assert [d.language for d in txt] == ["zh", "en", "zh"]
    js = load("text", fixtures / "text" / "corpus.jsonl", language="xx")
    assert js[1].text == "肝脏是人体最大的消化腺。" and js[1].meta == {"url": "medrepro://2"} and js[0].language == "xx"


def test_alpaca_pairs(fixtures):
    res = load("alpaca", fixtures / "alpaca" / "train.json", source="sft", priority=1.0)
    assert all(isinstance(p, Pair) for p in res) and res[1].input == "Patient without comorbidities."
    assert [p.language for p in res] == ["zh", "en", "zh"]


def test_sharegpt_one_pair_per_assistant_turn(fixtures):
    res = load("sharegpt", fixtures / "sharegpt" / "conversations.jsonl", priority=2.0)
    assert [p.id for p in res] == ["0:0", "0:1", "1:0", "2:0"]
    second = res[1]
    assert second.instruction == "需要吃抗生素吗？" and second.output.startswith("普通感冒")
    assert [t["value"] for t in second.meta["history"]] == ["感冒了应该多喝水吗？", "是的，适量多饮水有助于补充发热和出汗丢失的水分。"]
    assert res[2].meta["system"] == "You are a careful medical assistant." and res[2].priority == 2.0
    assert res.info["n_dangling_turns"] == 1 and res[3].instruction == "What does HbA1c measure?"


# ------------------------------------------------------------------ malformed rows: raise, or skip with reasons
MALFORMED = {
    ("cmexam", "cmexam/malformed/rows.csv"): ["row 2 (line 3): gold letter(s) E not among options ABC", "row 3 (line 4): empty question",
        "row 4 (line 5): duplicate option letter(s) A", "row 5 (line 6): missing option C", "row 6 (line 7): missing answer",
        "row 7 (line 8): 5 columns, header has 4"],
    ("cmexam", "cmexam/malformed/undecodable.csv"): ["row 2 (line 3): undecodable bytes"],
    ("medqa", "medqa/malformed/rows.jsonl"): ["row 2 (line 2): invalid JSON", "row 3 (line 3): empty question",
        "row 4 (line 4): duplicate option letter(s) A", "row 5 (line 5): gold letter(s) E not among options ABCD",
        "row 6 (line 6): missing option C", "row 7 (line 7): answer text 'Iodine deficiency' differs from option A",
        "row 8 (line 8): missing field 'answer_idx'"],
    ("medqa", "medqa/malformed/undecodable.jsonl"): ["row 2 (line 2): undecodable bytes"],
    ("medmcqa", "medmcqa/malformed/rows.json"): ["row 2 (line 2): cop -1 has no gold answer", "row 3 (line 3): empty question",
        "row 4 (line 4): option C is empty", "row 5 (line 5): cop 6 outside 1-4", "row 6 (line 6): missing field 'opd'"],
    ("pubmedqa", "pubmedqa/malformed/ori_pqal_rows.json"): ["PMID 90000012: final_decision 'perhaps' is not yes/no/maybe",
        "PMID 90000013: empty question", "PMID 90000014: missing field 'CONTEXTS'"],
    ("mmlu", "mmlu/malformed/virology_test.csv"): ["row 2 (line 2): 5 columns, expected 6", "row 3 (line 3): empty question",
        "row 4 (line 4): gold letter(s) E not among options ABCD", "row 5 (line 5): option B is empty"],
    ("cmmlu", "cmmlu/malformed/genetics.csv"): ["row 2 (line 3): index column holds '一'", "row 3 (line 4): 6 columns, header has 7",
        "row 4 (line 5): gold letter(s) F not among options"],
    ("ceval", "ceval/malformed/basic_medicine_val.csv"): ["id 2 (line 3): empty question", "id 3 (line 4): missing answer",
        "id 4 (line 5): 6 columns, header has 7"],
    ("pharmacist", "pharmacist/malformed/rows.jsonl"): ["row 2 (line 2): option B is empty",
        "row 3 (line 3): gold letter(s) E not among options ABCD", "row 4 (line 4): duplicate option letter(s) B",
        "row 5 (line 5): empty question", "row 6 (line 6): missing field 'option'"],
    ("mmedbench", "mmedbench/malformed/French.jsonl"): ["row 2 (line 2): gold letter(s) F not among options ABCDE",
        "row 3 (line 3): empty question", "row 4 (line 4): missing option C", "row 5 (line 5): answer 'B,B' repeats a letter"],
    ("xmedbench", "xmedbench/malformed/fr.json"): ["row 2: gold letter(s) F not among options ABCDE", "row 3: duplicate option letter(s) A",
        "row 4: missing option C", "row 5: cannot read option line 'A) Un.'", "row 6: empty question"],
    ("text", "text/malformed/rows.jsonl"): ["row 2 (line 2): missing field 'text'", "row 3 (line 3): empty document",
        "row 4 (line 4): invalid JSON"],
    ("text", "text/malformed/undecodable.txt"): ["row 2 (line 2): undecodable bytes"],
    ("alpaca", "alpaca/malformed/rows.jsonl"): ["row 2 (line 2): empty output", "row 3 (line 3): missing field 'instruction'",
        "row 4 (line 4): field 'output' is a list"],
    ("sharegpt", "sharegpt/malformed/rows.jsonl"): ["row 2 (line 2): conversation has no assistant reply",
        "row 3 (line 3): turn 1 is 'human' where the assistant's turn was due", "row 4 (line 4): turn 0 has unknown role 'doctor'",
        "row 5 (line 5): empty output", "row 6 (line 6): missing field 'conversations'"],
}


@pytest.mark.parametrize("fmt,rel", list(MALFORMED), ids=[f"{f}-{pathlib.Path(r).name}" for f, r in MALFORMED])
def test_malformed_rows_raise_then_skip_with_reasons(fixtures, fmt, rel):
    path, expected = fixtures / rel, MALFORMED[(fmt, rel)]
    with pytest.raises(RecordError) as e:
        load(fmt, path)
    assert str(e.value).startswith(f"{path}:{expected[0]}"), str(e.value)   # file, row/line and problem of the FIRST bad row
    res = load(fmt, path, on_error="skip")
    assert len(res) == 1 and res.info["n_skipped"] == len(expected)         # each malformed file holds exactly one good row
    got = [str(s) for s in res.skipped]
    assert len(got) == len(expected)
    for g, want in zip(got, expected):
        assert g.startswith(f"{path}:{want}"), (g, want)
    assert all(isinstance(s, Skipped) and s.file == str(path) for s in res.skipped)


def test_file_level_errors(fixtures, tmp_path):
    with pytest.raises(RecordError, match=r"ori_pqal_truncated.json:line \d+: invalid JSON"):
        load("pubmedqa", fixtures / "pubmedqa" / "malformed" / "ori_pqal_truncated.json", on_error="skip")
    with pytest.raises(RecordError, match="no such file or folder"):
        load("cmexam", tmp_path / "missing.csv")
    with pytest.raises(RecordError, match="no mmlu files"):
        load("mmlu", tmp_path)
    (tmp_path / "x.csv").write_text("Question,Choices,Answer\nq,A a\\nB b,A\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"x.csv:line 1: header lacks column\(s\) Options"):
        load("cmexam", tmp_path / "x.csv")


def test_options_are_checked(fixtures):
    with pytest.raises(MedreproError, match="no option\\(s\\) cop_base"):
        load("cmexam", fixtures / "cmexam" / "test.csv", cop_base=1)
    with pytest.raises(MedreproError, match="on_error"):
        load("cmexam", fixtures / "cmexam" / "test.csv", on_error="ignore")
    with pytest.raises(MedreproError, match="not MCQs"):
        load_mcq("alpaca", fixtures / "alpaca" / "train.json")
    assert "cop_base" in LOADERS.get("medmcqa").options() and "ground_truth" in LOADERS.get("pubmedqa").options()


def test_bom_and_gb18030_encoding(tmp_path):
    text = "Question,Options,Answer,Explanation\n心脏有几个腔,A 2\\nB 3\\nC 4,C,\n"
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load("cmexam", tmp_path / "bom.csv")[0].answer == {"C"}
    (tmp_path / "gb.csv").write_bytes(text.encode("gb18030"))
    with pytest.raises(RecordError, match="undecodable"):
        load("cmexam", tmp_path / "gb.csv")
    assert load("cmexam", tmp_path / "gb.csv", encoding="gb18030")[0].question == "心脏有几个腔"


def test_records_round_trip_through_dicts(fixtures):
    for q in load("cmexam", fixtures / "cmexam" / "test.csv"):
        assert MCQ.from_dict(json.loads(json.dumps(q.to_dict(), ensure_ascii=False))) == q


def test_bundled_smoke_fixtures_equal_test_fixtures(fixtures):
    bundled = sorted(p.relative_to(ASSETS) for p in ASSETS.rglob("*") if p.is_file() and p.name != "README.md")
    assert len(bundled) >= 13
    assert {p.parts[0] for p in bundled} == set(FORMATS)
    for rel in bundled:
        assert filecmp.cmp(ASSETS / rel, fixtures / rel, shallow=False), rel


# ------------------------------------------------------------------ the real public rows in ../shared
SHARED = [("cmexam", "cmexam/val_sample15.csv", 15), ("medqa", "medqa", 30), ("medmcqa", "medmcqa", 10),
          ("pubmedqa", "pubmedqa/ori_pqal_sample10.json", 10), ("mmlu", "mmlu/dev", 30), ("cmmlu", "cmmlu/dev", 45),
          ("xmedbench", "xmedbench/test_fr_sample10.json", 10), ("xmedbench", "xmedbench/test_es_sample10.json", 10)]


@pytest.mark.parametrize("fmt,rel,n", SHARED, ids=[r for _, r, _ in SHARED])
def test_loaders_read_the_real_samples(shared_samples, fmt, rel, n):
    res = load(fmt, shared_samples / rel)
    assert len(res) == n and not res.skipped
    for q in res:
        assert q.validate() and q.answer <= set(q.options) and q.question


def test_real_cmexam_multi_answer_and_nan(shared_samples):
    res = load("cmexam", shared_samples / "cmexam" / "val_sample15.csv")
    multi = [q.answer_str for q in res if q.is_multi]
    assert sorted(multi) == ["BCDE", "DE"]
    assert sum(len(q.options) == 4 for q in res) == 1
    assert sum(q.explanation == "" for q in res) == 2 and all("nan" != q.explanation for q in res)


def test_real_medqa_letters_and_languages(shared_samples):
    us4 = load("medqa", shared_samples / "medqa" / "US_4_options_phrases_no_exclude_test_sample10.jsonl")
    us5 = load("medqa", shared_samples / "medqa" / "US_5_options_test_sample10.jsonl")
    assert [q.question for q in us4] == [q.question for q in us5]              # the same 10 questions ...
    assert sum(a.answer != b.answer for a, b in zip(us4, us5)) == 8             # ... whose letters differ in 8 (README)
    for a, b in zip(us4, us5):
        assert a.options[a.answer_str] == b.options[b.answer_str]
    cn = load("medqa", shared_samples / "medqa" / "Mainland_MCMLE_4_options_test_sample10.jsonl")
    assert {q.language for q in cn} == {"zh"}


def test_real_medmcqa_reformat_is_recognised(shared_samples):
    res = load("medmcqa", shared_samples / "medmcqa" / "dev_aistairc_format_sample10.jsonl")
    assert res.info["variant"] == "aistairc" and "cop_base" not in res.info
    assert res[0].id == "45d2b684-c55a-400b-ab09-76ee3a9ba64b" and res[0].answer == {"B"}


def test_real_pubmedqa_and_sharegpt(shared_samples):
    pq = load("pubmedqa", shared_samples / "pubmedqa" / "ori_pqal_sample10.json")
    assert pq[0].id == "19822586" and pq[0].meta["contexts"] and {q.answer_str for q in pq} <= {"A", "B", "C"}
    sg = load("sharegpt", shared_samples / "medicalgpt" / "sft_sharegpt_zh_1K_format_sample20.jsonl")
    assert sg.info["n_dangling_turns"] == 1 and not sg.skipped and len(sg) > 20
    assert all(p.instruction and p.output for p in sg)


def test_real_xmedbench_periods(shared_samples):
    es = load("xmedbench", shared_samples / "xmedbench" / "test_es_sample10.json")
    assert es[0].options["A"].endswith("pulsioximetría.") and not es[0].options["A"].endswith("..")


# ------------------------------------------------------------------ the hub path (no network here: load_dataset is stubbed)
def test_hub_rows_go_through_the_same_parser(fixtures, monkeypatch):
    import datasets
    rows = [json.loads(l) for l in (fixtures / "medmcqa" / "validation_hub.jsonl").read_text().splitlines()]
    calls = []
    def fake_load_dataset(hub_id, split=None):
        calls.append((hub_id, split))
        return datasets.Dataset.from_list(rows)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    res = load("medmcqa", "openlifescienceai/medmcqa", hub=True, split="validation")
    assert calls == [("openlifescienceai/medmcqa", "validation")]
    assert res.info["cop_base"] == 0 and [q.answer_str for q in res] == ["B", "D", "A", "B", "C"]
    with pytest.raises(MedreproError, match="no hub reader"):
        load("cmexam", "some/id", hub=True, split="test")
    with pytest.raises(MedreproError, match="needs split"):
        load("medmcqa", "openlifescienceai/medmcqa", hub=True)


def test_hub_failure_is_one_clear_error(monkeypatch):
    import datasets
    def offline(hub_id, split=None): raise ConnectionError("Couldn't reach the Hugging Face Hub\nmore detail")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(MedreproError, match="cannot load hub dataset 'x/y' split 'test': ConnectionError: Couldn't reach"):
        load("medqa", "x/y", hub=True, split="test")


def test_folder_ids_stay_unique_when_files_share_a_stem(fixtures):
    ids = [r.id for r in load("text", fixtures / "text").records]
    assert len(ids) == len(set(ids)) and any(i.startswith("corpus.txt/") for i in ids)
