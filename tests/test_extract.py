"""Hand-written tests of every answer-extraction strategy on Chinese and English outputs."""
import pytest
from medrepro.core import UnknownNameError
from medrepro.data.records import MCQ
from medrepro.eval.extract import EXTRACTORS, extract, letter_groups, option_text_hits, statement_letters

ZH = MCQ("z", "下列属于水溶性维生素的是", {"A": "维生素A", "B": "维生素B1", "C": "维生素C", "D": "维生素D", "E": "维生素B12"}, "BC", language="zh")
EN = MCQ("e", "Which vitamin deficiency causes scurvy?", {"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D", "D": "Vitamin K"}, "B")
NESTED = MCQ("n", "Which drug?", {"A": "aspirin", "B": "aspirin and clopidogrel", "C": "heparin", "D": "warfarin"}, "B")


def run(q, out, name):
    e = extract(out, q, name)
    return e.answer, e.step


# (question, output, extractor) -> (answer, step)
CASES = [
    # letters with and without punctuation, lower case, full width
    (EN, "B", "guo2023", ("B", "letter")), (EN, "B.", "guo2023", ("B", "letter")), (EN, "(B)", "guo2023", ("B", "letter")),
    (EN, "b", "guo2023", ("B", "letter")), (EN, "b.", "mmedbench", ("B", "letter")), (ZH, "Ｃ", "guo2023", ("C", "letter")),
    (EN, "B", "huatuo2", ("B", "letter")), (EN, "b", "huatuo2", ("B", "letter")), (EN, "B", "mmedbench", ("B", "letter")),
    # multi-answer
    (ZH, "答案是BC", "guo2023", ("BC", "letter")), (ZH, "答案是BC", "huatuo2", ("BC", "statement")),
    (ZH, "答案是BC", "mmedbench", ("BC", "statement")), (ZH, "答案是BC", "cmexam", ("BC", "match")),
    (ZH, "正确答案为：B、C", "huatuo2", ("BC", "statement")), (ZH, "B,C", "mmedbench", ("BC", "letter")),
    (ZH, "BC", "guo2023", ("BC", "letter")), (EN, "Answer: A and C", "mmedbench", ("AC", "statement")),
    (ZH, "CB", "guo2023", ("BC", "letter")),
    # explicit statements, English and Chinese, lower case after a statement
    (EN, "The answer is (b).", "huatuo2", ("B", "statement")), (EN, "Answer: b", "mmedbench", ("B", "statement")),
    (ZH, "根据题意，故选C。", "huatuo2", ("C", "statement")), (EN, "The correct option is D", "huatuo2", ("D", "statement")),
    (EN, "Réponse : C", "mmedbench", ("C", "statement")), (EN, "Respuesta: D", "mmedbench", ("D", "statement")),
    (EN, "Ответ: A", "mmedbench", ("A", "statement")),
    # option texts that contain letters: the letter inside an option's text is not a choice of that option
    (ZH, "维生素C", "guo2023", ("C", "option_text")), (ZH, "维生素C", "huatuo2", ("C", "option_text")),
    (ZH, "应补充维生素B1和维生素C", "guo2023", ("BC", "option_text")),
    (EN, "vitamin c", "guo2023", ("B", "option_text")), (EN, "Vitamin K deficiency is wrong; answer is C", "guo2023", ("C", "letter")),
    # option texts that contain each other: the longer match wins
    (ZH, "维生素B12", "guo2023", ("E", "option_text")), (ZH, "维生素B12", "huatuo2", ("E", "option_text")),
    (NESTED, "Give aspirin and clopidogrel.", "guo2023", ("B", "option_text")), (NESTED, "aspirin alone", "huatuo2", ("A", "option_text")),
    # answers in the middle of a long rationale
    (EN, "A 45-year-old sailor has bleeding gums. Collagen synthesis needs ascorbate, so the answer is B. Vitamin K affects clotting.", "huatuo2", ("B", "statement")),
    (EN, "A 45-year-old sailor has bleeding gums. Collagen synthesis needs ascorbate, so the answer is B. Vitamin K affects clotting.", "guo2023", ("B", "letter")),
    (EN, "A 45-year-old sailor has bleeding gums. Collagen synthesis needs ascorbate, so the answer is B. Vitamin K affects clotting.", "mmedbench", ("B", "statement")),
    (ZH, "分析：维生素A和D是脂溶性的，不选。答案：B、C。", "guo2023", ("BC", "letter")),
    (ZH, "分析：维生素A和D是脂溶性的，不选。答案：B、C。", "huatuo2", ("BC", "statement")),
    (EN, "I think it relates to collagen. The best choice here: B because of collagen.", "huatuo2", ("B", "letter")),
    (EN, "I think it relates to collagen. The best choice here: B because of collagen.", "mmedbench", (None, "unparsed")),
    # nothing to read: unparsed, except guo2023's documented Levenshtein fall-back
    (EN, "", "guo2023", (None, "unparsed")), (EN, "   \n ", "huatuo2", (None, "unparsed")), (ZH, "", "cmexam", (None, "unparsed")),
    (EN, "", "mmedbench", (None, "unparsed")), (EN, "I am not sure.", "huatuo2", (None, "unparsed")),
    (EN, "I am not sure.", "mmedbench", (None, "unparsed")), (EN, "vitamn K", "guo2023", ("D", "levenshtein")),
    (EN, "The DNA of the patient", "huatuo2", (None, "unparsed")),
]


@pytest.mark.parametrize("q,out,name,want", CASES)
def test_extraction_cases(q, out, name, want):
    assert run(q, out, name) == want


def test_cmexam_reference_parser_quirks():
    # the reference matches any capital option letter anywhere, and the first word of each option text
    assert run(ZH, "DNA合成", "cmexam") == ("AD", "match")
    assert run(ZH, "应补充维生素B1和维生素C", "cmexam") == ("BC", "match")  # letters B, C occur; no option's text does
    # with "解释" only the first line is read
    assert run(ZH, "C\n解释：维生素A和D不对", "cmexam") == ("C", "match")
    assert run(ZH, "b", "cmexam") == (None, "unparsed")  # no lower-case letters, no guessing


def test_levenshtein_tie_is_recorded_not_hidden():
    e = extract("维生素", ZH, "guo2023")
    assert e.step == "levenshtein_tie"


def test_unknown_extractor_lists_close_names():
    with pytest.raises(UnknownNameError, match="huatuo2"):
        extract("B", EN, "huatuo")


def test_building_blocks():
    assert letter_groups("DNA, CD4 and B12 levels", EN.options) == []
    assert [g for _, g in letter_groups("A 45-year-old man. Choose A, C and D", {k: "x" for k in "ABCDE"})] == [frozenset("ACD")]
    assert option_text_hits("aspirin and clopidogrel", NESTED.options) == {"B"}
    assert statement_letters("The answer is a vitamin deficiency", EN.options) is None


def test_every_registered_extractor_is_tested():
    assert set(EXTRACTORS.names()) == {n for _, _, n, _ in CASES} | {"cmexam"}
