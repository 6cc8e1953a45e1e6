"""medrepro.samplers: priority formula (statistical), determinism, resume, rank-disjoint shares."""
import math
from collections import Counter
import numpy as np
import pytest
from medrepro.core import MedreproError
from medrepro.samplers import (SAMPLERS, MixtureSampler, PrioritySampler, ReplaySampler, ShuffleSampler,
                               StagedSampler, build_sampler)

SRC = ["web"] * 20 + ["books"] * 20 + ["sft"] * 10
PRI = {"web": 8.0, "books": 2.0, "sft": 1.0}


def _make(name, sources, **kw):
    extra = {"priority": {"priorities": PRI}, "mixture": {"probs": {"web": 0.5, "books": 0.3, "sft": 0.2}, "num_samples": 60},
             "staged": {"stages": [["web", "books"], "sft"]}, "replay": {"general": "sft", "replay_fraction": 0.2}}
    return build_sampler(name, sources, **extra.get(name, {}), **kw)


def test_priority_order_matches_formula_statistically():
    """Martingale test: sum_t (1[draw t from i] - P_t(i)) over many seeded runs is ~N(0, sum P(1-P))."""
    dev, var = Counter(), Counter()
    per_step = np.zeros((70, 3)); pred = np.zeros((70, 3)); names = ["books", "sft", "web"]
    for seed in range(300):
        s = PrioritySampler(SRC, priorities=PRI, seed=seed)
        probs = s.expected_probs()
        for t, (i, p) in enumerate(zip(s.order(), probs)):
            for k in names:
                hit = float(SRC[i] == k)
                dev[k] += hit - p[k]; var[k] += p[k] * (1 - p[k])
                per_step[t, names.index(k)] += hit; pred[t, names.index(k)] += p[k]
    for k in names:
        assert abs(dev[k]) / math.sqrt(var[k]) < 4, (k, dev[k], var[k])
    # binned per-step shares: empirical vs formula within 0.05 in every bin of 10 steps
    emp, exp_ = per_step.reshape(7, 10, 3).mean(1) / 300, pred.reshape(7, 10, 3).mean(1) / 300
    assert np.abs(emp - exp_).max() < 0.05
    assert exp_[0, names.index("web")] > 0.6 and emp[-1, names.index("sft")] > 0.6  # domain first, SFT last


def test_priority_first_draw_probability_exact():
    n = 4000
    firsts = Counter(SRC[PrioritySampler(SRC, priorities=PRI, seed=s).order()[0]] for s in range(n))
    z = 8 * 20 + 2 * 20 + 1 * 30
    for k, w in [("web", 160 / z), ("books", 40 / z), ("sft", 30 / z)]:
        assert abs(firsts[k] / n - w) < 4 * math.sqrt(w * (1 - w) / n)


def test_priority_sft_epochs_and_beta():
    s = PrioritySampler(SRC, priorities=PRI, seed=0)
    c = Counter(s.order())
    assert all(c[i] == 3 for i in range(40, 50)) and all(c[i] == 1 for i in range(40)) and len(s.order()) == 70
    # beta = 0: uniform over items, so the first draw is sft with probability 30/70
    n = 3000
    hits = sum(SRC[PrioritySampler(SRC, priorities=PRI, beta=0, seed=s).order()[0]] == "sft" for s in range(n))
    assert abs(hits / n - 30 / 70) < 4 * math.sqrt(0.43 * 0.57 / n)
    with pytest.raises(MedreproError, match="no priority"):
        PrioritySampler(SRC, priorities={"web": 1})


@pytest.mark.parametrize("name", ["priority", "mixture", "staged", "replay", "shuffle", "sequential"])
def test_deterministic_resumable_and_rank_disjoint(name):
    a, b = _make(name, SRC, seed=5), _make(name, SRC, seed=5)
    assert a.order() == b.order()
    it = iter(a); head = [next(it) for _ in range(13)]
    c = _make(name, SRC, seed=5); c.load_state_dict(a.state_dict())
    assert head + list(c) == a.order()
    # two ranks: disjoint positions of one global order, together everything (trimmed to a multiple of 2)
    r0, r1 = _make(name, SRC, seed=5, rank=0, world_size=2), _make(name, SRC, seed=5, rank=1, world_size=2)
    p0, p1 = list(r0), list(r1)
    glob = r0.order()
    assert len(p0) == len(p1) == len(glob) // 2 and sorted(p0 + p1) == sorted(glob)
    assert p0 == glob[0::2] and p1 == glob[1::2]
    if name != "sequential":
        assert _make(name, SRC, seed=6).order() != a.order()


def test_resume_refuses_other_order():
    a = PrioritySampler(SRC, priorities=PRI, seed=1)
    b = PrioritySampler(SRC, priorities=PRI, seed=2)
    with pytest.raises(MedreproError, match="another order"):
        b.load_state_dict(a.state_dict())


def test_mixture_staged_replay_semantics():
    m = MixtureSampler(SRC, {"web": 0.7, "sft": 0.3}, num_samples=5000, seed=0)
    sh = m.source_shares(5000)[0]
    assert abs(sh["web"] - 0.7) < 0.03 and sh["books"] == 0
    st = StagedSampler(SRC, stages=["sft", ["web", "books"]], seed=0)
    assert [SRC[i] for i in st.order()[:10]] == ["sft"] * 10 and sorted(st.order()) == list(range(50))
    rp = ReplaySampler(["med"] * 30 + ["general"] * 100, general="general", replay_fraction=0.25, seed=0)
    o = rp.order()
    assert len(o) == 40 and sum(i >= 30 for i in o) == 10 and len(set(i for i in o if i >= 30)) == 10
    with pytest.raises(MedreproError):
        ReplaySampler(["med"] * 3, general="general", replay_fraction=0.2)


def test_replay_epochs_cycle_through_all_general_examples():
    src = ["med"] * 30 + ["general"] * 100
    o = ReplaySampler(src, general="general", replay_fraction=0.25, epochs=20, seed=0).order()
    assert len(o) == 20 * 40
    for e in range(20):  # every epoch: each domain example once, plus its 10 general draws
        ep = o[40 * e:40 * (e + 1)]
        assert sorted(i for i in ep if i < 30) == list(range(30)) and sum(i >= 30 for i in ep) == 10
    counts = [sum(i == g for i in o) for g in range(30, 130)]
    assert min(counts) == max(counts) == 2  # 200 draws over 100 examples: each exactly twice (a fixed subset would not)
    with pytest.raises(MedreproError, match="epochs"):
        ReplaySampler(src, general="general", epochs=0)
    with pytest.raises(MedreproError, match="no stage"):
        StagedSampler(SRC, stages=["web"])
    with pytest.raises(MedreproError, match="no examples"):
        MixtureSampler(SRC, {"nope": 1.0})


def test_source_shares_rise_for_sft():
    s = PrioritySampler(["web"] * 300 + ["sft"] * 100, priorities={"web": 32, "sft": 1}, seed=0)
    sh = [x["sft"] for x in s.source_shares(60)]
    assert sh[0] < 0.1 and sh[-1] > 0.9 and len(sh) == math.ceil(600 / 60)


def test_registry_names():
    assert set(SAMPLERS.names()) >= {"priority", "mixture", "staged", "replay", "shuffle", "sequential"}
    with pytest.raises(MedreproError, match="did you mean"):
        build_sampler("priorty", SRC)
