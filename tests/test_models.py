"""Embedded tokenizer and models: determinism, round-trips, offline save/reload."""
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from medrepro.models import build_tokenizer, build_model, embedded_model_dir, resolve_model_id, load_causal_lm, \
    load_tokenizer, count_parameters, is_embedded_name

TEXTS = ["患者，男，54岁，胸骨后压榨性疼痛两小时。答案：ABD", "Metformin 500 mg b.i.d.; HbA1c 7.2%", "Ⅱ、Ⅲ、aVF 导联（ST↑）",
         "生僻字：龘靐齉 and emoji 🩺", ""]


def test_tokenizer_round_trips_zh_en_exactly():
    tok = load_tokenizer("tiny")
    for s in TEXTS:
        assert tok.decode(tok(s, add_special_tokens=False)["input_ids"]) == s


def test_tokenizer_special_tokens_and_chat_template():
    tok = load_tokenizer("tiny")
    assert tok.pad_token == "<pad>" and tok.eos_token == "</s>" and tok.bos_token == "<s>"
    assert len({tok.pad_token_id, tok.eos_token_id, tok.bos_token_id}) == 3
    text = tok.apply_chat_template([{"role": "user", "content": "头痛"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|user|>\n头痛</s>\n<|assistant|>\n"


def test_same_seed_same_tokenizer_and_weights():
    t1, t2 = build_tokenizer(512), build_tokenizer(512)
    assert t1.get_vocab() == t2.get_vocab() and t1(TEXTS[0])["input_ids"] == t2(TEXTS[0])["input_ids"]
    m1, m2, m3 = build_model("tiny", t1, seed=5), build_model("tiny", t1, seed=5), build_model("tiny", t1, seed=6)
    s1, s2, s3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)


def test_save_reload_offline_with_auto_classes(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = embedded_model_dir("tiny", 0)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    ids = tok("阿司匹林", return_tensors="pt")
    ref = load_causal_lm("medrepro/tiny")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, ref(**ids).logits)
    assert model.config.model_type == "llama"


def test_sizes_and_names():
    assert count_parameters(load_causal_lm("tiny")) < 200_000
    assert 1_000_000 < count_parameters(load_causal_lm("small")) < 10_000_000
    assert is_embedded_name("tiny") and is_embedded_name("medrepro/small:3") and not is_embedded_name("meta-llama/Llama-2-7b-hf")
    assert resolve_model_id("meta-llama/Llama-2-7b-hf") == "meta-llama/Llama-2-7b-hf"
    assert resolve_model_id("tiny:1") != resolve_model_id("tiny")
