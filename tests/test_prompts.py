"""Prompt templates: rendering, targets, training pairs and the chat wrapping."""
import pytest
from medrepro.core import MedreproError, UnknownNameError
from medrepro.data.prompts import (PROMPTS, apply_chat, get_template, mcq_prompt, mcq_target, mcq_to_pair,
                                   question_block, template_for_language)
from medrepro.data.records import MCQ, RecordError


def _q(**kw):
    d = dict(id="q1", question="Which vitamin deficiency causes scurvy?",
             options={"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D", "D": "Vitamin K"}, answer="B")
    d.update(kw)
    return MCQ(**d)


def test_required_templates_registered_and_unknown_fails():
    for name in ("mcq_en", "mcq_zh", "pubmedqa_en"):
        assert name in PROMPTS
    with pytest.raises(UnknownNameError, match="mcq_en"):
        get_template("mcq_eng")


def test_short_templates_are_the_standard_wording_without_the_instruction():
    for lang in ("en", "zh"):
        full, short = mcq_prompt(_q(language=lang), f"mcq_{lang}"), mcq_prompt(_q(language=lang), f"mcq_{lang}_short")
        assert short == full[len(get_template(f"mcq_{lang}").instruction) + 2:]  # no instruction, no leading blank line
        assert get_template(f"mcq_{lang}_short").fingerprint != get_template(f"mcq_{lang}").fingerprint


def test_prompt_lists_options_in_order_and_ends_with_cue():
    p = mcq_prompt(_q())
    lines = p.splitlines()
    assert lines[0] == get_template("mcq_en").instruction
    assert lines[-5:] == ["A. Vitamin A", "B. Vitamin C", "C. Vitamin D", "D. Vitamin K", "Answer:"]
    assert "Vitamin C" in p and not p.endswith(" ")


def test_shots_carry_their_answers_and_question_has_none():
    shot = _q(id="s", question="Insulin comes from?", options={"A": "alpha", "B": "beta"}, answer="B")
    p = mcq_prompt(_q(), shots=[shot, shot])
    assert p.count("Answer: B") == 2 and p.endswith("Answer:")
    assert p.index("Insulin comes from?") < p.index("scurvy")


def test_targets_each_style_and_language():
    q = _q(explanation="Collagen needs vitamin C.")
    assert mcq_target(q) == " B"
    assert mcq_target(q, "explanation") == " B\nExplanation: Collagen needs vitamin C."
    assert mcq_target(q, "explanation_first").endswith("Therefore, the answer is B.")
    zq = _q(language="zh", answer="CA", explanation="解析文字")
    assert mcq_target(zq) == "AC"  # Chinese: no delimiter, sorted letters
    assert mcq_target(zq, "explanation_first") == "解析文字\n所以答案是AC。"
    with pytest.raises(MedreproError, match="unknown target style"):
        mcq_target(q, "reasoning")


def test_explanation_target_without_explanation_is_an_error_naming_the_question():
    with pytest.raises(RecordError, match="q7"):
        mcq_target(_q(id="q7"), "explanation")


def test_pair_instruction_is_the_eval_prompt():
    zq = _q(language="zh", answer="BC")
    pair = mcq_to_pair(zq)
    assert pair.instruction == mcq_prompt(zq, "mcq_zh") and pair.output == "BC"
    assert pair.meta["template"] == "mcq_zh" and pair.meta["template_fingerprint"] == get_template("mcq_zh").fingerprint
    assert mcq_to_pair(_q()).output == "B"  # delimiter dropped; formatters add their own separator


def test_pubmedqa_context_from_meta():
    q = _q(options={"A": "yes", "B": "no", "C": "maybe"}, answer="A", meta={"contexts": ["First para.", "Second."]})
    block = question_block(q, "pubmedqa_en")
    assert block.startswith("Abstract: First para.\nSecond.\nQuestion:")
    assert "Abstract" not in question_block(q, "mcq_en")


def test_fingerprint_changes_with_wording():
    import dataclasses
    t = get_template("mcq_en")
    assert dataclasses.replace(t, answer_cue="A:").fingerprint != t.fingerprint


def test_language_default_and_chat_wrapping():
    assert template_for_language("zh") == "mcq_zh" and template_for_language("xx") == "mcq_en"
    from medrepro.models import load_tokenizer
    tok = load_tokenizer("tiny")
    wrapped = mcq_prompt(_q(), chat_tokenizer=tok)
    assert wrapped == apply_chat(mcq_prompt(_q()), tok)
    assert wrapped.startswith("<|user|>\n") and wrapped.endswith("<|assistant|>\n")
