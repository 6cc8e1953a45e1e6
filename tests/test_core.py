"""medrepro.core: registry, seeding, hashing, secrets and run metadata."""
import json, os, subprocess, sys
import pytest
from medrepro.core import (Registry, UnknownNameError, MedreproError, seed_everything, params_hash, save_json,
                           load_json, scrub_secrets, run_metadata, write_run_metadata, medrepro_home)


def test_registry_suggests_close_names():
    r = Registry("loader")
    r.add("cmexam", 1); r.add("medqa", 2); r.add("medmcqa", 3)
    with pytest.raises(UnknownNameError) as e:
        r.get("medmcq")
    msg = str(e.value)
    assert "unknown loader 'medmcq'" in msg and "did you mean 'medmcqa'" in msg
    with pytest.raises(UnknownNameError, match="known: cmexam, medmcqa, medqa"):
        r.get("zzzz")
    assert r.get("medqa") == 2 and "cmexam" in r and r.names() == ["cmexam", "medmcqa", "medqa"]


def test_registry_refuses_silent_overwrite():
    r = Registry("metric")
    r.add("acc", 1)
    with pytest.raises(MedreproError, match="already registered"):
        r.add("acc", 2)
    r.add("acc", 3, overwrite=True)
    assert r["acc"] == 3


def test_seed_everything_repeats_torch_and_numpy():
    import numpy as np, torch
    seed_everything(11); a = (torch.randn(5), np.random.rand(5))
    seed_everything(11); b = (torch.randn(5), np.random.rand(5))
    seed_everything(12); c = torch.randn(5)
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and not torch.equal(a[0], c)


def test_params_hash_is_order_independent_and_sensitive():
    assert params_hash({"a": 1, "b": 2}) == params_hash({"b": 2, "a": 1})
    assert params_hash({"a": 1}) != params_hash({"a": 2})


def test_run_metadata_content(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", "sk-verysecret-123456")
    params = {"lr": 1e-4, "api_key": "sk-verysecret-123456", "note": "uses sk-verysecret-123456", "api_key_env": "MY_SERVICE_API_KEY"}
    path = write_run_metadata(tmp_path, params, tier="smoke")
    text = path.read_text()
    meta = json.loads(text)
    assert "sk-verysecret" not in text
    assert meta["params"] == {"lr": 1e-4, "note": "uses ***", "api_key_env": "MY_SERVICE_API_KEY"}
    assert len(meta["git_sha"]) == 40 and isinstance(meta["git_dirty"], bool)
    assert meta["versions"]["torch"].startswith("2.") and meta["versions"]["transformers"].startswith("5.")
    assert meta["params_hash"] == params_hash(meta["params"]) and meta["tier"] == "smoke"
    for k in ("host", "time_utc", "python", "platform"):
        assert meta[k]


def test_medrepro_home_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDREPRO_HOME", str(tmp_path / "h"))
    assert medrepro_home() == tmp_path / "h" and (tmp_path / "h").is_dir()


def test_save_json_atomic_roundtrip(tmp_path):
    p = save_json({"k": ["中文", 1]}, tmp_path / "a" / "b.json")
    assert load_json(p) == {"k": ["中文", 1]}
    assert [f.name for f in p.parent.iterdir()] == ["b.json"]  # no temporary files left behind


def test_scrub_secrets_keeps_token_counts():
    kept = scrub_secrets({"max_tokens": 8, "max_new_tokens": 4, "tokenizer": "tiny", "num_tokens": 3,
                          "hf_token": "x", "access_token": "y", "OPENAI_API_KEY": "z", "api_key_env": "OPENAI_API_KEY"})
    assert kept == {"max_tokens": 8, "max_new_tokens": 4, "tokenizer": "tiny", "num_tokens": 3, "api_key_env": "OPENAI_API_KEY"}
