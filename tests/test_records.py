"""Typed records: letter sets, validation, round trips."""
import pytest
from medrepro.core import MedreproError
from medrepro.data.records import LETTERS, MCQ, Document, Pair, RecordError, parse_letters


@pytest.mark.parametrize("s,want", [("ABD", "ABD"), ("A,C", "AC"), ("(BD)", "BD"), ("b d", "BD"), ("（A、C）", "AC")])
def test_parse_letters(s, want):
    assert parse_letters(s) == frozenset(want)


@pytest.mark.parametrize("s", ["", "A1", "AA", "答案A", None])
def test_parse_letters_rejects(s):
    with pytest.raises(RecordError):
        parse_letters(s)


def test_record_error_message_names_file_and_row():
    e = RecordError("empty question", "data/x.csv", "row 3 (line 5)")
    assert str(e) == "data/x.csv:row 3 (line 5): empty question" and isinstance(e, MedreproError) and isinstance(e, ValueError)
    assert str(RecordError("bad")) == "bad"


def test_mcq_validation():
    ok = MCQ(7, "Q?", {"A": "a", "B": "b", "C": "c"}, "AC")
    assert ok.id == "7" and ok.is_multi and ok.answer_str == "AC" and ok.letters == ["A", "B", "C"] and ok.validate() is ok
    cases = [(MCQ(0, " ", {"A": "a", "B": "b"}, "A"), "empty question"),
             (MCQ(0, "Q", {"A": "a"}, "A"), "only 1 option"),
             (MCQ(0, "Q", {"A": "a", "B": ""}, "A"), "have no text"),
             (MCQ(0, "Q", {"A": "a", "B": "b"}, "C"), "not among options AB"),
             (MCQ(0, "Q", {"A": "a", "b": "b"}, "A"), "not single capital letters"),
             (MCQ(0, "Q", {"A": "a", "B": "b"}, frozenset()), "no gold answer")]
    for q, msg in cases:
        with pytest.raises(RecordError, match=msg):
            q.validate()


def test_round_trips():
    q = MCQ("x", "Q", {"A": "a", "B": "b"}, "B", "because", "zh", "cmexam", {"k": 1})
    assert MCQ.from_dict(q.to_dict()) == q and q.to_dict()["answer"] == "B"
    p = Pair("p", "ins", "out", "in", "web", "en", 32.0, {"doc": "d1"})
    assert Pair.from_dict(p.to_dict()) == p
    d = Document("d", "text", "books")
    assert Document.from_dict(d.to_dict()) == d
    with pytest.raises(RecordError, match="priority"):
        Pair("p", "i", "o", priority=0).validate()
    with pytest.raises(RecordError, match="empty document"):
        Document("d", " ").validate()
    assert LETTERS.startswith("ABCDE")
