"""medrepro.train: learning, exact resume, checkpoints, logs, one-stage order, bad configs, custom tokenizers."""
import csv
import pytest
import torch
from medrepro.core import MedreproError
from medrepro.data.records import Pair
from medrepro.samplers import PrioritySampler
from medrepro.train import (CONFIGS, OneStageConfig, SFTConfig, config_help, make_config, toy_records, train_full,
                            train_one_stage, train_pretrain, train_sft, train_two_stage, weights_hash)


def _state(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_loss_falls_on_learnable_task(tmp_path):
    r = train_sft(toy_records("pairs", 32), model="tiny", output_dir=str(tmp_path), method="full", lr=3e-3,
                  batch_size=8, epochs=3)
    losses = r.losses()
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5
    with open(r.loss_log) as f: rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"step", "epoch", "loss", "learning_rate", "grad_norm"} and [int(x["step"]) for x in rows] == list(range(1, 13))
    assert r.figure.exists() and (r.output_dir / "run.json").exists() and (r.model_dir / "config.json").exists()


def test_checkpoints_at_chosen_steps(tmp_path):
    r = train_pretrain(toy_records("documents", 24), model="tiny", output_dir=str(tmp_path), seq_len=32, batch_size=2,
                       max_steps=5, save_steps=[2, 4], save_every=0)
    assert [p.name for p in r.checkpoints] == ["checkpoint-2", "checkpoint-4"]
    assert (r.checkpoints[0] / "medrepro_sampler.json").exists() and r.metrics["packing_efficiency"] > 0.9


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    kw = dict(model="tiny", method="full", lr=3e-3, batch_size=4, max_steps=6, seed=3, epochs=2)
    data = toy_records("pairs", 24)
    full = train_sft(data, output_dir=str(tmp_path / "a"), **kw)
    part = train_sft(data, output_dir=str(tmp_path / "b"), stop_after=3, **kw)
    assert part.metrics["stopped_early"] and part.metrics["steps"] == 3 and part.checkpoints[-1].name == "checkpoint-3"
    res = train_sft(data, output_dir=str(tmp_path / "b"), resume_from="latest", **kw)
    assert res.metrics["steps"] == 6
    a, b = _state(full.model), _state(res.model)
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
    assert [round(x, 5) for x in res.losses()] == [round(x, 5) for x in full.losses()]  # log continued seamlessly
    # resuming from an earlier checkpoint than the newest rewinds the loss log to it
    again = train_sft(data, output_dir=str(tmp_path / "b"), resume_from=str(tmp_path / "b" / "checkpoint-3"), **kw)
    with open(again.loss_log) as f: assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(MedreproError, match="different data order"):
        train_sft(data, output_dir=str(tmp_path / "b"), resume_from=str(tmp_path / "b" / "checkpoint-3"), **{**kw, "seed": 4})


def test_one_stage_packs_in_priority_order_and_never_reshuffles(tmp_path):
    web = toy_records("pairs", 24, source="web")
    sft = toy_records("pairs", 4, source="sft", seed=1)
    cfg = OneStageConfig(model="tiny", output_dir=str(tmp_path), priorities={"web": 32, "sft": 1}, seq_len=64,
                         batch_size=4, method="lora", lr=1e-3, record_data=True, seed=7)
    r = train_one_stage(web + sft, cfg)
    lines = [l.split("\t") for l in (tmp_path / "data_rank0.txt").read_text().splitlines()]
    assert [int(i) for i, _ in lines] == list(range(len(lines)))  # rows consumed in sequence, never reshuffled
    recs = web + sft
    want = PrioritySampler([p.source for p in recs], priorities={"web": 32, "sft": 1}, epochs={"sft": 3}, seed=7).order()
    assert sum(1 for i in want if i >= 24) == 12  # SFT repeated 3 times
    got = [x for _, ids in lines for x in ids.split(",")]
    assert got == [recs[i].id for i in want]  # the packed rows hold the sampled examples in the sampled order
    with open(r.source_shares) as f: shares = list(csv.DictReader(f))
    assert float(shares[0]["web"]) > 0.5 and float(shares[-1]["sft"]) == 1.0
    assert r.metrics["packing_efficiency"] > 0.5


def test_one_stage_domain_epochs_repeat_the_other_sources(tmp_path):
    web, sft = toy_records("pairs", 6, source="web"), toy_records("pairs", 2, source="sft", seed=1)
    r = train_one_stage(web + sft, model="tiny", output_dir=str(tmp_path), priorities={"web": 4, "sft": 1}, domain_epochs=3,
                        sft_epochs=2, seq_len=64, batch_size=4, record_data=True, seed=3)
    got = [x for l in (tmp_path / "data_rank0.txt").read_text().splitlines() for x in l.split("\t")[1].split(",")]
    assert sorted(got) == sorted([p.id for p in web] * 3 + [p.id for p in sft] * 2)  # web 3 passes, sft 2, one order
    assert r.metrics["steps"] >= 1


def test_mcq_sft_with_reasoning_and_full_adafactor(tmp_path):
    r = train_full(toy_records("mcqs", 8), model="tiny", output_dir=str(tmp_path), mcq_style="explanation",
                   batch_size=4, max_steps=2, gradient_checkpointing=True)
    assert r.metrics["steps"] == 2 and r.model_dir == r.final_dir
    assert make_config("full").optim == "adafactor"


def test_two_stage_dora_merge_qlora(tmp_path):
    r = train_two_stage(toy_records("pairs", 8), toy_records("mcqs", 8), model="tiny", output_dir=str(tmp_path),
                        max_steps=2, batch_size=4)
    s1, s2 = r.stages
    import json
    assert json.loads((s1.final_dir / "adapter_config.json").read_text())["use_dora"] is True
    cfg2 = json.loads((s2.final_dir / "adapter_config.json").read_text())
    assert cfg2["r"] == 16 and cfg2["lora_alpha"] == 8 and cfg2["base_model_name_or_path"] == str(s1.model_dir)
    assert r.model_dir == s2.model_dir and (r.model_dir / "model.safetensors").exists()


def test_local_folder_with_word_level_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    words = ["<pad>", "<s>", "</s>", "<unk>"] + "Dose of aspirin warfarin insulin heparin digoxin atropine morphine lidocaine ? mg".split() + [str(i) for i in range(10)]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, bos_token_id=1,
                                 eos_token_id=2)).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    data = [Pair(str(i), f"Dose of {d} ?", f"{i % 10} mg") for i, d in enumerate(words[4:12] * 3)]
    from medrepro.data.format import MaskingError
    with pytest.raises(MaskingError, match="tokenises differently"):  # raw: "?" + "0 mg" -> "?0" is one (unknown) word
        train_sft(data, model=str(tmp_path / "m"), output_dir=str(tmp_path / "run"), template="raw")
    r = train_sft(data, model=str(tmp_path / "m"), output_dir=str(tmp_path / "run"), method="full", lr=1e-2,
                  batch_size=8, epochs=4, template="alpaca")
    assert r.losses()[-1] < r.losses()[0]


@pytest.mark.parametrize("bad, msg", [
    ({"seq_length": 64}, "unknown SFTConfig key.*did you mean 'seq_len'"),
    ({"method": "full", "merge_dtype": "4bit"}, "quantised"),
    ({"dtype": "fp16", "use_cpu": True}, "fp16 mixed precision needs a CUDA GPU"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"sampler": "weighted"}, "unknown sampler"),
    ({"warmup_ratio": 1.5}, "warmup_ratio"),
])
def test_bad_configs_fail_before_training(tmp_path, bad, msg):
    with pytest.raises(MedreproError, match=msg):
        train_sft(toy_records("pairs", 4), model="tiny", output_dir=str(tmp_path), **bad)
    assert not (tmp_path / "run.json").exists()


def test_missing_data_fails_before_training(tmp_path):
    with pytest.raises(MedreproError, match="no pairs or MCQs"):
        train_sft([], model="tiny", output_dir=str(tmp_path))
    with pytest.raises(MedreproError, match="no documents"):
        train_pretrain([], model="tiny", output_dir=str(tmp_path))
    with pytest.raises(MedreproError, match="stage-2"):
        train_two_stage(toy_records("pairs", 2), [], model="tiny", output_dir=str(tmp_path))
    with pytest.raises(MedreproError, match="not a checkpoint"):
        train_sft(toy_records("pairs", 4), model="tiny", output_dir=str(tmp_path), resume_from=str(tmp_path / "nope"))
    assert not (tmp_path / "run.json").exists()


def test_every_config_field_has_help():
    for name in CONFIGS.names():
        text = config_help(CONFIGS.get(name))
        assert all(not line.endswith("|  |") for line in text.splitlines()), name


def test_weights_hash_sees_changes():
    from medrepro.models import load_causal_lm
    m = load_causal_lm("tiny")
    h = weights_hash(m)
    with torch.no_grad(): next(m.parameters()).add_(1e-3)
    assert weights_hash(m) != h


@pytest.mark.gpu
def test_full_bf16_on_cuda(tmp_path):
    r = train_sft(toy_records("pairs", 16), model="tiny", output_dir=str(tmp_path), method="full", dtype="bf16",
                  max_steps=3, batch_size=4)
    assert r.metrics["steps"] == 3 and torch.cuda.max_memory_allocated() > 0


def test_replay_sampler_takes_epochs_and_other_samplers_refuse_them(tmp_path):
    from medrepro.train import PretrainConfig, _order
    med, gen = toy_records("documents", 12, source="med"), toy_records("documents", 40, source="general", seed=1)
    srcs = [d.source for d in med + gen]
    c = make_config(PretrainConfig, {"sampler": "replay", "epochs": 3, "sampler_args": {"general": "general", "replay_fraction": 0.25}})
    o = _order(c, srcs, med + gen)
    assert len(o) == 3 * (12 + 4) and all(sum(i == k for i in o) == 3 for k in range(12))  # 3 passes over the domain
    with pytest.raises(MedreproError, match="not used by the 'mixture' sampler"):
        train_pretrain(med + gen, model="tiny", output_dir=str(tmp_path / "mx"), epochs=2, sampler="mixture",
                       sampler_args={"probs": {"med": 0.5, "general": 0.5}})


def test_sparse_logits_loss_and_gradients_equal_the_models_own():
    from medrepro.data.format import collate, encode_records
    from medrepro.models import load_causal_lm, load_tokenizer
    from medrepro.train import sparse_causal_lm_loss
    tok, model = load_tokenizer("tiny"), load_causal_lm("tiny")
    enc = encode_records(toy_records("pairs", 4), tok, "alpaca", "answer")  # prompts masked: few positions carry a label
    batch = collate([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in enc], tok.pad_token_id)
    n_labels = int((batch["labels"][:, 1:] != -100).sum())
    assert 0 < n_labels < batch["labels"].numel() // 2
    for n in (None, torch.tensor(n_labels)):
        model.zero_grad(); ref = model(**batch, num_items_in_batch=n).loss; ref.backward()
        g_ref = [p.grad.clone() for p in model.parameters()]
        model.zero_grad(); got = sparse_causal_lm_loss(model, batch, n); got.backward()
        assert torch.allclose(got, ref, atol=1e-5, rtol=1e-5)
        assert all(torch.allclose(p.grad, g, atol=1e-6, rtol=1e-4) for p, g in zip(model.parameters(), g_ref))


def test_sparse_logits_training_equals_dense_training(tmp_path, monkeypatch):
    import medrepro.train as T
    calls, real = [], T.sparse_causal_lm_loss
    monkeypatch.setattr(T, "sparse_causal_lm_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    # plain SGD: Adam's first steps divide by near-zero second moments, which turns float rounding into visible drift
    kw = dict(model="tiny", method="lora", optim="sgd", lr=0.5, batch_size=2, grad_accum=2, max_steps=4, seed=5, template="alpaca")
    data = toy_records("pairs", 16)
    sparse = train_sft(data, output_dir=str(tmp_path / "s"), sparse_logits=True, **kw)
    n_sparse = len(calls)
    dense = train_sft(data, output_dir=str(tmp_path / "d"), sparse_logits=False, **kw)
    assert n_sparse == 8 and len(calls) == 8  # the LoRA model took the sparse path on all 4 x 2 micro-batches; dense never
    assert [round(x, 4) for x in sparse.losses()] == [round(x, 4) for x in dense.losses()]
    a, b = _state(sparse.model), _state(dense.model)
    assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)


def test_adapter_initialisation_follows_the_config_seed(tmp_path):
    kw = dict(model="tiny", method="lora", lr=3e-3, batch_size=4, max_steps=2, seed=11)
    a = train_sft(toy_records("pairs", 8), output_dir=str(tmp_path / "a"), **kw)
    torch.manual_seed(123)  # whatever ran before must not change the adapters' random start
    b = train_sft(toy_records("pairs", 8), output_dir=str(tmp_path / "b"), **kw)
    sa, sb = _state(a.model), _state(b.model)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
