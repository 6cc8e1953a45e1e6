"""The code paths only a real pretrained chat model exercises, on smollm2-135m (SmolLM2-135M-Instruct, ChatML).

Chat templates and stopping at the end-of-turn token, loss masking with the chat template, the papers' extractors
on free text, QLoRA on real layer shapes, DoRA merging, exact resume, and unification through the local HF backend.
Marked `real` (run by CI: about 3 minutes on 2 CPU cores). `MEDREPRO_TEST_DEVICE=cuda` runs them on a GPU.
"""
import os
import pathlib
import pytest
import torch
from medrepro.data.format import IGNORE, encode_pair, encode_records
from medrepro.data.llm import HFBackend
from medrepro.data.records import Document, Pair
from medrepro.data.sources import load_mcq
from medrepro.data.unify import UnifyConfig, language_ok, unify_documents
from medrepro.eval.extract import UNPARSED_STEP, extract, letter_groups, option_text_hits
from medrepro.eval.mcq import EvalConfig, build_prompts, evaluate, rescore
from medrepro.models import is_quantized, load_causal_lm, load_for_training, load_tokenizer, merge_model, trainable_names
from medrepro.train import train_sft, weights_hash

pytestmark = pytest.mark.real
MODEL = "smollm2-135m"
DEVICE = os.environ.get("MEDREPRO_TEST_DEVICE", "cpu")
END = "<|im_end|>"


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(MODEL)


@pytest.fixture(scope="module")
def model():
    return load_causal_lm(MODEL).to(DEVICE).eval()


@pytest.fixture(scope="module")
def mcqs():
    return load_mcq("medqa", pathlib.Path(__file__).parent / "fixtures" / "medqa" / "US_4_options_test.jsonl")


@pytest.fixture(scope="module")
def generated(model, tok, mcqs):
    "Greedy chat answers to the MedQA-USMLE fixture questions, and the raw token rows the greedy decoding loop returned."
    import medrepro.eval.generate as gen
    rows = []
    real = gen._greedy_batch
    def spy(*a, **kw):
        out = real(*a, **kw)
        rows.extend(out)
        return out
    gen._greedy_batch = spy
    try:
        r = evaluate(model, mcqs, EvalConfig(mode="generate", chat=True, max_new_tokens=96, batch_size=4, n_boot=0), tokenizer=tok)
    finally:
        gen._greedy_batch = real
    return r, rows


def test_generation_uses_the_chat_template_and_stops_at_end_of_turn(generated, tok):
    r, rows = generated
    end = tok.convert_tokens_to_ids(END)
    assert tok.eos_token == END and end == tok.eos_token_id  # the decoding loop stops on the eos ids: the end-of-turn token
    for s in r.samples:
        p = s["prompt"]
        assert p.startswith("<|im_start|>system\n") and p.endswith(f"{END}\n<|im_start|>assistant\n")
        assert "<|im_start|>user\n" in p and "Question:" in p
        assert s["output"].strip() and "<|im_start|>" not in s["output"] and END not in s["output"]
    assert len(rows) == len(r.samples)
    for row in rows:  # each row ends its answer with <|im_end|>, well before the token limit, and nothing is decoded after it
        assert row[-1] == end and row.index(end) == len(row) - 1 and len(row) < 96, tok.decode(row)


def test_sft_with_the_chat_template_trains_only_the_answer_and_end_of_turn(tok, mcqs):
    p = Pair("p1", "Which vitamin deficiency causes scurvy?", "Vitamin C deficiency causes scurvy.")
    ex = encode_pair(p, tok, "chat")
    trained = [i for i, l in zip(ex["input_ids"], ex["labels"]) if l != IGNORE]
    masked = [i for i, l in zip(ex["input_ids"], ex["labels"]) if l == IGNORE]
    assert tok.decode(trained) == p.output + END
    assert tok.decode(masked) == tok.apply_chat_template([{"role": "user", "content": p.instruction}], tokenize=False,
                                                         add_generation_prompt=True)  # system, user turn, template tokens
    assert ex["labels"][:len(masked)] == [IGNORE] * len(masked)  # the masked tokens are exactly the prefix
    # an MCQ is trained on the evaluator's own chat prompt, and only its answer letter (+ end of turn) is trained
    q = mcqs[0]
    mex = encode_records([q], tok, template="chat")[0]
    cut = next(i for i, l in enumerate(mex["labels"]) if l != IGNORE)
    assert tok.decode(mex["input_ids"][:cut]) == build_prompts([q], "mcq_en", chat_tokenizer=tok)[0]
    assert tok.decode(mex["input_ids"][cut:]).strip() == q.answer_str + END
    assert all(l != IGNORE for l in mex["labels"][cut:])


def _evidence(output: str, q, letters: frozenset, step: str) -> bool:
    "Whether the text shows what the extractor read: its letters standing alone, or its options' texts."
    if step == "option_text": return letters <= option_text_hits(output, q.options)
    groups = {x for _, g in letter_groups(output, q.options, ignore_case=True) for x in g}
    return letters <= groups


@pytest.mark.parametrize("extractor", ["guo2023", "huatuo2"])
def test_extractors_parse_real_outputs_and_count_the_rest(generated, mcqs, extractor):
    r, _ = generated
    by_id = {q.id: q for q in mcqs}
    res = rescore(mcqs, {s["id"]: s["output"] for s in r.samples}, extractor, n_boot=0)
    parsed = [s for s in res.samples if s["pred"] is not None]
    assert parsed, [s["output"] for s in res.samples]  # the papers' rules read this model's answers
    for s in res.samples:
        e = extract(s["output"], by_id[s["id"]], extractor)
        if e.letters is None: assert e.step == UNPARSED_STEP and s["pred"] is None and not s["correct"]
        elif e.step in ("letter", "statement", "option_text"):
            assert _evidence(s["output"], by_id[s["id"]], e.letters, e.step), (extractor, s["output"], e)
    m = res.metrics
    assert m["unparsed"] == sum(s["pred"] is None for s in res.samples) and sum(m["steps"].values()) == m["n"] == len(mcqs)
    # a reply with no letter and no option text is counted as unparsed, never given a letter
    empty = extract("I am not sure what the question means.", mcqs[0], "huatuo2")
    assert empty.letters is None and empty.step == UNPARSED_STEP


def test_qlora_changes_only_the_adapter_and_the_loss_falls(tmp_path, tok):
    data = [Pair(f"q{i}", f"What is the usual adult dose of drug number {i}?", f"{10 * (i + 1)} mg twice a day.")
            for i in range(4)]
    # four examples, batch 4: every step sees the same batch (the shuffle only reorders it)
    r = train_sft(data, model=MODEL, method="qlora", template="chat", output_dir=str(tmp_path), seq_len=128,
                  batch_size=4, epochs=6, lr=2e-3, lora_r=8, lora_alpha=16, merge=False, seed=0,
                  use_cpu=DEVICE == "cpu")
    losses = r.losses()
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0], losses
    trained = r.model
    assert is_quantized(trained)
    from bitsandbytes.nn import Linear4bit
    assert any(isinstance(m, Linear4bit) for m in trained.modules())
    assert trainable_names(trained) and all("lora_" in n for n in trainable_names(trained))
    torch.manual_seed(0)
    fresh = load_for_training(MODEL, "qlora", r=8, alpha=16).state_dict()
    now = {k: v.detach().to("cpu") for k, v in trained.state_dict().items()}
    assert set(now) == set(fresh)
    changed = {k for k in now if not torch.equal(now[k], fresh[k].to("cpu"))}
    assert changed and all("lora_" in k for k in changed), sorted(k for k in changed if "lora_" not in k)[:5]
    assert any("lora_B" in k for k in changed)  # lora_B starts at zero: training moved it


def test_dora_merge_equals_base_plus_adapter(tok):
    # Tolerance: float32 logits agree to 1e-5 of the largest logit. Merging computes m * (W + sBA) / ||W + sBA|| once;
    # the unmerged forward applies W and the adapter separately, so float32 rounding (~6e-8 relative per op) differs
    # through 30 layers; measured here about 5e-5 on logits of about 30 (a relative 2e-6).
    torch.manual_seed(0)
    d = load_for_training(MODEL, "dora", r=8, alpha=16).to(DEVICE).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # an adapter far from its identity start, as after training
        for n, p in d.named_parameters():
            if "lora_B" in n: p.copy_(0.02 * torch.randn(p.shape, generator=g))
            if "magnitude" in n: p.mul_(1 + 0.05 * torch.randn(p.shape, generator=g).to(p.device))
    ids = tok(["A 61-year-old man has crushing chest pain. ECG shows ST elevation in leads II, III and aVF."],
              return_tensors="pt").input_ids.to(DEVICE)
    with torch.no_grad():
        with d.disable_adapter(): base = d(input_ids=ids).logits.float()
        unmerged = d(input_ids=ids).logits.float()
        merged_model = merge_model(d)
        merged = merged_model(input_ids=ids).logits.float()
    tol = 1e-5 * unmerged.abs().max().item()
    assert not any("lora_" in n or "magnitude" in n for n, _ in merged_model.named_parameters())
    assert (unmerged - base).abs().max().item() > 1000 * tol  # the adapter matters, so the comparison can fail
    assert (merged - unmerged).abs().max().item() <= tol, (merged - unmerged).abs().max().item()


def test_resume_is_bit_identical(tmp_path):
    data = [Pair(f"r{i}", f"Name a symptom of disease {i}.", f"Symptom number {i} is fever.") for i in range(8)]
    kw = dict(model=MODEL, method="lora", template="chat", seq_len=64, batch_size=2, max_steps=4, lr=1e-3, seed=3,
              lora_r=4, lora_alpha=8, merge=False, use_cpu=DEVICE == "cpu")
    # on a GPU, bit-identity needs deterministic kernels (atomic-add reductions differ run to run); gpu_check.sh sets
    # CUBLAS_WORKSPACE_CONFIG, which deterministic cuBLAS requires
    det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(DEVICE.startswith("cuda") or det)
    try:
        full = train_sft(data, output_dir=str(tmp_path / "a"), **kw)
        part = train_sft(data, output_dir=str(tmp_path / "b"), stop_after=2, **kw)
        res = train_sft(data, output_dir=str(tmp_path / "b"), resume_from="latest", **kw)
    finally:
        torch.use_deterministic_algorithms(det)
    assert part.metrics["stopped_early"] and part.checkpoints[-1].name == "checkpoint-2"
    assert res.metrics["steps"] == full.metrics["steps"] == 4
    assert weights_hash(res.model) == weights_hash(full.model)
    assert weights_hash(res.model) != weights_hash(part.model)  # the hash sees the two steps after the checkpoint
    assert res.losses() == full.losses()


def test_unification_through_the_local_model_and_its_cache(tmp_path):
    doc = Document("web-001", "Hypertension is diagnosed when repeated office readings are 140/90 mmHg or higher. "
                   "Lifestyle changes such as reducing salt, losing weight and regular exercise lower blood pressure, "
                   "and drugs are added when the target is not reached.", source="web")
    cfg = UnifyConfig(language="en", max_tokens_question=48, max_tokens_answer=48, retries=2)
    cache = tmp_path / "cache.sqlite"
    b1 = HFBackend(MODEL, cache=cache, device=DEVICE, batch_size=2)
    first = unify_documents([doc], b1, cfg)
    assert first.outcomes[0].status == "ok", first.report
    pair = first.pairs[0]
    assert pair.instruction.strip() and pair.output.strip() and pair.language == "en"
    assert language_ok(pair.instruction, "en") and language_ok(pair.output, "en")
    assert b1.usage.requests >= 2 and b1.usage.succeeded >= 2  # a question call and an answer call, at least
    b1.close()
    b2 = HFBackend(MODEL, cache=cache, device=DEVICE, batch_size=2)
    again = unify_documents([doc], b2, cfg)
    assert b2.usage.requests == 0 and b2._lm is None  # nothing sent, the model never even loaded
    assert b2.usage.cached == b1.usage.succeeded
    assert [vars(p) for p in again.pairs] == [vars(p) for p in first.pairs]
    b2.close()


def test_gpu_check_script_parses_and_its_helper_starts():
    "bench/gpu_check.sh is only run on a GPU machine; here: its shell parses and its Python helper imports and answers."
    import subprocess, sys
    root = pathlib.Path(__file__).resolve().parent.parent
    assert subprocess.run(["bash", "-n", str(root / "bench" / "gpu_check.sh")]).returncode == 0
    p = subprocess.run([sys.executable, str(root / "bench" / "gpu_check.py"), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--dry" in p.stdout, p.stderr[-2000:]
