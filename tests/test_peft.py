"""medrepro.models training loaders: only adapters train, QLoRA stays 4-bit, merges equal adapters, 4-bit merges refused."""
import pytest
import torch
from medrepro.core import MedreproError
from medrepro.models import is_quantized, load_causal_lm, load_for_training, merge_adapter, merge_model, trainable_names
from medrepro.train import make_config, toy_records, train_sft

X = torch.tensor([[5, 17, 33, 60, 91, 120]])


def _logits(m):
    with torch.no_grad(): return m(input_ids=X).logits


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_only_adapters_change_and_merge_matches(tmp_path, method):
    base = {k: v.clone() for k, v in load_causal_lm("tiny").state_dict().items()}
    r = train_sft(toy_records("pairs", 16), model="tiny", output_dir=str(tmp_path / method), method=method,
                  lora_r=4, lora_alpha=8, lr=1e-2, batch_size=8, epochs=2)
    m = r.model
    assert trainable_names(m) and all("lora_" in n for n in trainable_names(m))
    state = m.get_base_model().state_dict()
    for k, v in base.items():  # every base weight is exactly unchanged (peft keeps it under base_layer)
        kk = k if k in state else k.replace(".weight", ".base_layer.weight")
        assert torch.equal(state[kk], v), k
    lora_b = [p for n, p in m.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # B starts at zero: non-zero means the adapters trained
    merged = load_causal_lm(r.model_dir)
    assert not torch.allclose(_logits(merged), _logits(load_causal_lm("tiny")), atol=1e-4)
    assert torch.allclose(_logits(m.eval()), _logits(merged), atol=1e-4)


def test_qlora_base_stays_4bit_and_frozen(tmp_path):
    m0 = load_for_training("tiny", "qlora", r=4, alpha=8)
    q_before = {n: p.detach().clone() for n, p in m0.named_parameters() if p.dtype == torch.uint8}
    r = train_sft(toy_records("pairs", 8), model="tiny", output_dir=str(tmp_path / "q"), method="qlora",
                  lora_r=4, lora_alpha=8, lr=1e-2, batch_size=4, max_steps=2)
    m = r.model
    assert is_quantized(m)
    layer = m.get_base_model().model.layers[0].self_attn.q_proj.base_layer
    assert type(layer).__name__ == "Linear4bit" and layer.weight.dtype == torch.uint8
    assert all("lora_" in n for n in trainable_names(m))
    q_after = {n: p for n, p in m.named_parameters() if p.dtype == torch.uint8}
    assert q_before.keys() == q_after.keys() and all(torch.equal(q_before[n], q_after[n]) for n in q_before)
    assert r.model_dir.name == "merged" and not is_quantized(load_causal_lm(r.model_dir))  # merged into full precision


def test_merge_into_4bit_refused(tmp_path):
    q = load_for_training("tiny", "qlora", r=4, alpha=8)
    with pytest.raises(MedreproError, match="quantised"):
        merge_model(q)
    with pytest.raises(MedreproError, match="quantised"):
        make_config("sft", {"merge_dtype": "nf4"})
    with pytest.raises(MedreproError, match="4-bit"):
        make_config("two_stage", {"stage1_method": "qlora"})
    with pytest.raises(MedreproError, match="adapter_config"):
        merge_adapter("tiny", tmp_path, tmp_path / "out")


def test_target_modules_and_checkpointing():
    m = load_for_training("tiny", "lora", r=2, alpha=4, target_modules=["q_proj"], gradient_checkpointing=True)
    names = trainable_names(m)
    assert names and all("q_proj" in n for n in names)
    m.train()
    loss = m(input_ids=X, labels=X).loss
    loss.backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if p.requires_grad)
    with pytest.raises(MedreproError, match="unknown training method"):
        load_for_training("tiny", "ia3")


@pytest.mark.gpu
def test_qlora_bf16_on_cuda(tmp_path):
    assert torch.cuda.is_available()
    r = train_sft(toy_records("pairs", 16), model="tiny", output_dir=str(tmp_path / "g"), method="qlora", lora_r=4,
                  lora_alpha=8, dtype="bf16", compute_dtype="bfloat16", max_steps=3, batch_size=4)
    assert r.metrics["steps"] == 3 and next(r.model.parameters()).is_cuda
