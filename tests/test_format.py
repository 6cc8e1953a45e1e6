"""medrepro.data.format: templates, loss masking, packing without cross-document attention."""
import pytest
import torch
from medrepro.core import MedreproError
from medrepro.data.format import (IGNORE, MaskingError, PairTemplate, collate, encode_document, encode_pair,
                                  encode_records, pack, packed_logits_match, render_pair, tokenize_and_pack)
from medrepro.data.records import MCQ, Document, Pair
from medrepro.models import load_causal_lm, load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny")


@pytest.fixture(scope="module")
def model():
    return load_causal_lm("tiny").eval()


def test_huatuo_and_alpaca_templates():
    p = Pair("1", "什么是高血压？", "动脉血压持续升高。")
    assert render_pair(p, "huatuo") == ("<问>：什么是高血压？\n<答>：", "动脉血压持续升高。")
    prompt, ans = render_pair(Pair("2", "Summarise.", "Short.", input="Text."), "alpaca")
    assert "### Input:\nText." in prompt and prompt.endswith("### Response:\n") and ans == "Short."
    prompt, _ = render_pair(Pair("3", "Q?", "A"), "mmed")
    assert prompt.endswith("### Answer:\n")


def test_chat_template_uses_tokenizer(tok):
    prompt, ans = render_pair(Pair("1", "头痛怎么办？", "休息。"), "chat", tok)
    assert prompt.startswith("<|user|>\n头痛怎么办？") and prompt.endswith("<|assistant|>\n")
    with pytest.raises(MedreproError, match="chat template"):
        render_pair(Pair("1", "q", "a"), "chat", None)


@pytest.mark.parametrize("template", ["alpaca", "huatuo", "mmed", "raw", "chat"])
def test_labels_cover_exactly_answer_and_eos(tok, template):
    p = Pair("7", "Dose of aspirin for pain?", "500 mg every 6 hours")
    e = encode_pair(p, tok, template)
    prompt, answer = render_pair(p, template, tok)
    n = len(tok(prompt)["input_ids"])
    assert e["labels"][:n] == [IGNORE] * n
    assert e["labels"][n:] == e["input_ids"][n:]
    assert e["input_ids"][-1] == tok.eos_token_id
    assert tok.decode(e["input_ids"][n:-1]) == answer


def test_masking_error_when_prompt_tokenises_differently(tok):
    bad = PairTemplate("bad", "Question: {instruction}\nAnswer: ")  # trailing space glues to the answer in BPE
    with pytest.raises(MaskingError, match="tokenises differently"):
        encode_pair(Pair("q7", "Which?", "A"), tok, bad)


def test_masking_error_when_nothing_trainable(tok):
    with pytest.raises(MaskingError, match="empty answer"):
        encode_pair(Pair("e", "Q?", "   "), tok, "alpaca")
    with pytest.raises(MaskingError, match="no trainable token"):
        encode_pair(Pair("t", "A long question " * 10, "answer"), tok, "alpaca", max_length=8)


def test_masked_tokens_get_zero_gradient(tok, model):
    e = encode_pair(Pair("g", "Dose of heparin?", "5000 units"), tok, "huatuo")
    ids, labels = torch.tensor([e["input_ids"]]), torch.tensor([e["labels"]])
    out = model(input_ids=ids, labels=labels)
    out.logits.retain_grad()
    out.loss.backward()
    g = out.logits.grad[0].abs().sum(-1)      # gradient on each position's logits
    predicts_masked = labels[0, 1:] == IGNORE  # position t predicts label t+1
    assert (g[:-1][predicts_masked] == 0).all() and (g[-1] == 0)
    assert (g[:-1][~predicts_masked] > 0).all()
    model.zero_grad()


def test_mcq_pairs_use_the_evaluation_prompt(tok):
    from medrepro.data.prompts import mcq_prompt
    q = MCQ("m1", "Which drug is a thiazide?", {"A": "Hydrochlorothiazide", "B": "Digoxin"}, "A",
            explanation="Hydrochlorothiazide is a thiazide.")
    for style in ("answer", "explanation"):
        e = encode_records([q], tok, "alpaca", mcq_style=style)[0]
        n = sum(1 for l in e["labels"] if l == IGNORE)
        assert tok.decode(e["input_ids"][:n]) == mcq_prompt(q)
        assert tok.decode(e["input_ids"][n:-1]).startswith(" A")
    e = encode_records([q], tok, "chat")[0]  # chat models: the evaluator's chat-wrapped prompt
    n = sum(1 for l in e["labels"] if l == IGNORE)
    assert tok.decode(e["input_ids"][:n]) == mcq_prompt(q, chat_tokenizer=tok)


def test_word_level_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {w: i for i, w in enumerate(["<pad>", "<s>", "</s>", "<unk>", "Q", "A", ":", "drug", "dose", "5", "mg", "?"])}
    t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    wt = PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    e = encode_pair(Pair("w", "drug dose ?", "5 mg"), wt, PairTemplate("qa", "Q : {instruction} A :", answer_prefix=" "))
    assert [wt.convert_ids_to_tokens(i) for i, l in zip(e["input_ids"], e["labels"]) if l != IGNORE] == ["5", "mg", "</s>"]


def test_pack_keeps_order_resets_positions_and_splits():
    exs = [{"input_ids": list(range(100 + 10 * k, 100 + 10 * k + n)), "labels": list(range(100 + 10 * k, 100 + 10 * k + n))}
           for k, n in enumerate((5, 7, 3, 9))]
    pk = pack(exs, 8, pad_id=0, split=True)
    flat = [i for r in pk.rows for i, p in zip(r["input_ids"], r["position_ids"]) if i != 0]
    assert flat == [i for e in exs for i in e["input_ids"]]       # order kept, nothing lost
    assert pk.rows[0]["position_ids"] == [0, 1, 2, 3, 4, 0, 1, 2]
    assert pk.rows[0]["labels"][0] == IGNORE and pk.rows[0]["labels"][5] == IGNORE  # no cross-document target
    assert pk.pad_tokens == 0  # 24 tokens fill 3 rows exactly
    assert pk.efficiency == 1.0 and pk.row_lengths == [8, 8, 8]


def test_pack_without_split_pads_and_rejects_too_long():
    exs = [{"input_ids": [5] * n, "labels": [5] * n, "id": f"e{n}"} for n in (6, 3, 4)]
    pk = pack(exs, 8, pad_id=0, split=False)
    assert pk.row_examples == [[0], [1, 2]] and pk.pad_tokens == 2 + 1 and pk.row_lengths == [6, 7]
    assert pk.rows[0]["labels"][6:] == [IGNORE, IGNORE] and pk.rows[0]["position_ids"][6:] == [0, 1]
    with pytest.raises(MaskingError, match="more than seq_len"):
        pack([{"input_ids": [5] * 9, "labels": [5] * 9, "id": "long"}], 8, 0, split=False)


def test_packed_document_equals_document_alone(tok, model):
    texts = ["Aspirin inhibits cyclooxygenase.", "高血压的一线用药是噻嗪类利尿剂。", "Insulin lowers glucose."]
    assert packed_logits_match(model, tok, texts)


def test_plain_concatenation_would_leak(tok, model):
    """Negative control: without position resets the second document's logits change (the check can fail)."""
    a, b = (encode_document(Document(str(i), t), tok) for i, t in enumerate(["Aspirin inhibits COX.", "Insulin lowers glucose."]))
    with torch.no_grad():
        cat = model(input_ids=torch.tensor([a["input_ids"] + b["input_ids"]]), use_cache=False).logits[0]
        alone = model(input_ids=torch.tensor([b["input_ids"]]), use_cache=False).logits[0]
    assert not torch.allclose(cat[len(a["input_ids"]):], alone, atol=1e-5)


def test_collate_packed_and_padded(tok):
    rows = pack([{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}], 4, tok.pad_token_id).rows
    b = collate(rows, tok.pad_token_id)
    assert set(b) == {"input_ids", "labels", "position_ids"}  # no attention mask: packed-sequence detection stays on
    b = collate([{"input_ids": [5, 6], "labels": [-100, 6]}, {"input_ids": [5], "labels": [5]}], tok.pad_token_id)
    assert b["attention_mask"].tolist() == [[1, 1], [1, 0]] and b["labels"].tolist() == [[-100, 6], [5, -100]]


def test_tokenize_and_pack_dataset(tok):
    from datasets import Dataset
    ds = Dataset.from_dict({"text": [f"Drug {i} is given at {i} mg." for i in range(200)]})
    rows = tokenize_and_pack(ds, tok, 64, batch_size=100)
    assert all(len(r) == 64 for r in rows["input_ids"])
    n_tokens = sum(len(tok(t)["input_ids"]) + 1 for t in ds["text"])
    real = sum(sum(1 for x in r if x != tok.pad_token_id) for r in rows["input_ids"])
    assert real == n_tokens
