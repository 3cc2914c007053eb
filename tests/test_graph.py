"""The experiment graph: node identity, dependencies, keys, table layouts, and a mini end-to-end run."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from akt_core import AktError
from akt_core import evaluate as EV
from akt_core import graph as G
from akt_core import provenance as PV
from akt_core import results as RS
from akt_core import runner as RN
from akt_core.store import Store

pytestmark = pytest.mark.usefixtures("isolated")

EXP = G.Experiment("synthetic", "smoke", 0)


def _walk(node):
    yield node
    for d in node.deps:
        yield from _walk(d)


def test_res26_cln_is_static_res26():
    n = EXP.model("Res26(cln)")
    assert n == EXP.static_source(26) and n.key == EXP.static_source(26).key
    assert n.name == "static:Res26" and n.config["method"] == "cln" and n.config["seed"] == 0
    assert EXP.model("Res8(cln)").key == EXP.static_source(8).key


def test_keys_deterministic_across_instances():
    other = G.Experiment("synthetic", "smoke", 0)
    for v in G.VARIANTS:
        assert other.model(v).key == EXP.model(v).key
    assert len({EXP.model(v).key for v in G.VARIANTS}) == len(G.VARIANTS)


def test_heldout_sources():
    for d in G.SOURCE_DEPTHS:
        h, s = EXP.blackbox_source(d), EXP.static_source(d)
        assert h.config["seed"] == 1000 and s.config["seed"] == 0
        assert h.name == f"heldout:Res{d}" and h.config["depth"] == d
        assert h.key != s.key
        assert h.config["curve_source"] is None and h.deps == ()
    assert G.Experiment("synthetic", "smoke", 3).blackbox_source(20).config["seed"] == 1003
    # the curves of the static models are scored on images attacked on the held-out Res26
    assert EXP.static_source(8).config["curve_source"] == EXP.blackbox_source(26).key
    assert EXP.curve_source().key == EXP.blackbox_source(26).key


def test_blackbox_static_uses_static_sources():
    e = G.Experiment("synthetic", "smoke", 0, blackbox="static")
    for d in G.SOURCE_DEPTHS:
        assert e.blackbox_source(d).key == e.static_source(d).key
        assert e.blackbox_source(d).config["seed"] == 0
    # the curves are scored against the held-out Res26 under either protocol, so the protocol never
    # changes how a model is trained: the targets are the held-out protocol's own models
    held = G.Experiment("synthetic", "smoke", 0)
    assert e.static_source(26).config["curve_source"] == held.heldout_source(26).key
    assert all(e.model(v).key == held.model(v).key for v in G.VARIANTS)
    # the only held-out model in the graph is that curve source
    names = {n.name for v in G.VARIANTS for n in _walk(e.model(v))}
    assert {n for n in names if n.startswith("heldout")} == {"heldout:Res26"}


def test_adv_trans_dependencies():
    n = EXP.model("Res8(adv-trans)")
    assert n.config["depth"] == 8 and n.config["method"] == "adv-trans"
    kinds = {d.kind: d for d in n.deps}
    dadv, lg = kinds["dadv"], kinds["logits"]
    assert dadv.key == EXP.dadv().key
    assert [d.key for d in dadv.deps] == [EXP.static_source(d).key for d in (26, 20, 14, 8)]
    assert lg.name == "logits:Res26(adv)+D_adv"
    assert [d.key for d in lg.deps] == [EXP.model("Res26(adv)").key, dadv.key]
    assert n.config["curve_source"] == EXP.blackbox_source(26).key
    assert n.config["deps"] == [d.key for d in n.deps]
    # stage 1 teacher is trained on D_adv and has no teacher
    t = EXP.model("Res26(adv)")
    assert [d.kind for d in t.deps] == ["dadv", "model"] and t.deps[0].key == dadv.key


def test_distillation_baseline_dependencies():
    dc, da = EXP.model("Res8(dist-cln)"), EXP.model("Res8(dist-adv)")
    lc = next(d for d in dc.deps if d.kind == "logits")
    la = next(d for d in da.deps if d.kind == "logits")
    assert [d.key for d in lc.deps] == [EXP.model("Res26(cln)").key]
    assert [d.key for d in la.deps] == [EXP.model("Res26(adv)").key]
    assert not any(d.kind == "dadv" for d in dc.deps + da.deps)
    sa = EXP.model("Res8(self-adv)")
    assert [d.kind for d in sa.deps] == ["model"]  # only its curve source


def test_profile_seed_eps_variant_change_keys():
    base = {v: EXP.model(v).key for v in G.VARIANTS}
    for other in (G.Experiment("synthetic", "reduced", 0), G.Experiment("synthetic", "smoke", 1),
                  G.Experiment("synthetic", "smoke", 0, eps=8 / 256),
                  G.Experiment("synthetic", "smoke", 0, dataset_variant="other"),
                  G.Experiment("cifar10", "smoke", 0)):
        for v in G.VARIANTS:
            assert other.model(v).key != base[v], (other, v)
    # the held-out offset changes what the black-box sources are
    assert G.Experiment("synthetic", "smoke", 0, heldout_offset=7).blackbox_source(26).key != \
        EXP.blackbox_source(26).key


def test_record_keys_distinguish_attack_source_target():
    keys = {EXP.record_key(t, a, s) for t in G.RES8_VARIANTS for a in ("FGSM", "I-FGSM")
            for s in (26, 8)} | {EXP.record_key(t, "clean", None) for t in G.RES8_VARIANTS}
    assert len(keys) == len(G.RES8_VARIANTS) * 5


def test_tables_layout():
    assert sorted(G.TABLES) == list(range(2, 11))
    for n, ds in zip((2, 3, 4), ("mnist", "cifar10", "cifar100")):
        assert G.TABLES[n].dataset == ds and G.TABLES[n + 3].dataset == ds and G.TABLES[n + 6].dataset == ds
    t2 = G.TABLES[2]
    assert t2.group == "variants" and t2.targets == (
        "Res26(cln)", "Res26(adv)", "Res8(cln)", "Res8(adv)", "Res8(dist-cln)", "Res8(dist-adv)", "Res8(adv-trans)")
    assert [c[0] for c in t2.columns] == ["clean", "FGSM", "I-FGSM", "Step-LL", "Iter-LL"]
    assert all(src == 26 for name, _, src in t2.columns[1:]) and t2.columns[0] == ("clean", "clean", None)
    t5 = G.TABLES[5]
    assert t5.group == "sources"
    assert t5.targets == ("Res8(cln)", "Res8(self-adv)", "Res8(adv)", "Res8(adv-trans)")
    assert t5.columns == (("clean", "clean", None), ("FGSM@Res26", "FGSM", 26), ("FGSM@Res20", "FGSM", 20),
                          ("FGSM@Res16", "FGSM", 14), ("FGSM@Res8", "FGSM", 8))
    t8 = G.TABLES[8]
    assert t8.group == "attacks" and t8.targets == t5.targets and t8.columns == t2.columns
    assert G.table_for("sources", "cifar100").number == 7
    syn = G.table_for("attacks", "synthetic")
    assert syn.number == 8 and syn.dataset == "synthetic" and syn.columns == t8.columns
    assert len(G.table_cells(G.TABLES[2])) == 7 * 5
    assert G.FIGURES == {3: "clean_acc", 4: "adv_acc"}


@pytest.mark.parametrize("kwargs,bad,choice", [
    ({"dataset": "imagenet", "profile": "smoke"}, "imagenet", "cifar10"),
    ({"dataset": "mnist", "profile": "huge"}, "huge", "reduced"),
    ({"dataset": "mnist", "profile": "smoke", "blackbox": "gray"}, "gray", "held-out"),
])
def test_bad_experiment_names_choices(kwargs, bad, choice):
    with pytest.raises(AktError) as err:
        G.Experiment(**kwargs)
    assert repr(bad) in str(err.value) and choice in str(err.value)


def test_bad_variant_and_eps_and_group():
    with pytest.raises(AktError) as err:
        EXP.model("Res9(cln)")
    assert "'Res9(cln)'" in str(err.value) and "Res8(adv-trans)" in str(err.value)
    with pytest.raises(AktError, match="eps"):
        G.Experiment("mnist", "smoke", eps=0.0)
    with pytest.raises(AktError, match="'tables'.*variants"):
        G.table_for("tables", "mnist")
    with pytest.raises(AktError, match="'tables'"):
        RS.require("tables", "synthetic", "smoke", store=Store("/nonexistent-never-created"))
    with pytest.raises(AktError, match="'tpu'"):
        PV.resolve_device("tpu")


def test_require_without_compute_on_empty_store(tmp_path):
    with pytest.raises(AktError, match="no stored records"):
        RS.require("attacks", "synthetic", "smoke", compute=False, store=Store(tmp_path))
    with pytest.raises(AktError, match="no stored curves"):
        RS.require("curves", "synthetic", "smoke", compute=False, store=Store(tmp_path))
    assert not tmp_path.joinpath("cache").exists()


PROVENANCE = ("git_commit", "torch_version", "device", "dataset_variant", "profile", "seed", "wall_s")
TRAIN_START = lambda logs: [line.split()[2] for line in logs if line.startswith("[train]") and "epochs" in line]


#: the e2e tests' profile: the tiny pipeline's sizes with two epochs, so curves have more than one point
E2E = "e2e"


def _e2e_profile():
    import dataclasses

    from conftest import tiny_profile

    tiny = tiny_profile()
    return dataclasses.replace(tiny, name=E2E, epochs=dict.fromkeys(tiny.epochs, 2))


@pytest.fixture(scope="module")
def e2e_built(tmp_path_factory):
    """The attacks table (Tables 8-10 layout) on synthetic data under a small two-epoch profile (64
    training images, 40 test images), built once. (The smoke profile's plumbing on real MNIST is
    test_e2e_notebook's.) The profile is registered while building and, through ``e2e``, per test."""
    from conftest import build_under

    tmp = tmp_path_factory.mktemp("e2e_store")
    prof = _e2e_profile()
    logs, df = build_under(prof, "attacks", tmp)
    return {"root": tmp, "store": Store(tmp), "logs": logs, "df": df, "profile": prof}


@pytest.fixture
def e2e(e2e_built, monkeypatch):
    from akt_core import profiles as P

    monkeypatch.setitem(P.PROFILES, E2E, e2e_built["profile"])
    return e2e_built


def _log():
    logs: list[str] = []
    return logs, (lambda *a: logs.append(" ".join(map(str, a))))


def test_e2e_records(e2e):
    df, store, root = e2e["df"], e2e["store"], e2e["root"]
    # held-out Res26, static Res26/20/14/8, Res8(self-adv), Res8(adv), Res26(adv), Res8(adv-trans)
    assert sorted(TRAIN_START(e2e["logs"])) == sorted([
        "heldout:Res26", "static:Res26", "static:Res20", "static:Res14", "static:Res8",
        "Res8(self-adv)", "Res8(adv)", "Res26(adv)", "Res8(adv-trans)"])
    assert len(df) == 4 * 5
    assert set(zip(df["model"], df["attack"], df["source"])) == {
        (m, a, "-" if a == "clean" else "Res26") for m in G.TABLES[8].targets
        for a in ("clean", "FGSM", "I-FGSM", "Step-LL", "Iter-LL")}
    assert df["accuracy"].between(0, 100).all()
    assert (df["accuracy"] == (100 * df["correct"] / df["n_examples"]).round(4)).all()
    assert (df["n_examples"] == 40).all()
    for col in PROVENANCE:
        assert col in df.columns and df[col].notna().all(), col
    assert set(df["profile"]) == {E2E} and set(df["dataset_variant"]) == {"generated"}
    assert set(df["seed"]) == {0} and set(df["blackbox"]) == {"held-out"}
    assert set(df.loc[df["attack"] == "clean", "eps"]) == {0.0}
    assert set(df.loc[df["attack"] != "clean", "eps"]) == {0.0625}
    exp = G.Experiment("synthetic", E2E, 0, dataset_variant="generated")
    assert set(df["model_key"]) == {exp.model(v).key for v in G.TABLES[8].targets}
    assert len(store.read(E2E, "runs")) == 9 + 2  # 9 models, D_adv, teacher logits
    assert set(store.read(E2E, "curves")["epoch"]) == {1, 2}
    assert not list(root.rglob("*.tmp")) and not list((root / "cache" / "partial").glob("*"))


def test_e2e_second_call_is_cached(e2e):
    logs, log = _log()
    df2 = RS.require("attacks", "synthetic", E2E, compute=True, store=e2e["store"], progress=False, log=log)
    assert not [line for line in logs if line.startswith(("[train]", "[craft]", "[attack]"))]
    key = lambda d: d.sort_values("key").reset_index(drop=True)[["key", "accuracy", "correct"]]
    assert key(df2).equals(key(e2e["df"]))
    df3 = RS.require("attacks", "synthetic", E2E, compute=False, store=e2e["store"])
    assert key(df3).equals(key(e2e["df"]))


def test_e2e_curves_need_only_the_distillation_baselines(e2e):
    logs, log = _log()
    cur = RS.require("curves", "synthetic", E2E, compute=True, store=e2e["store"], progress=False, log=log)
    assert set(TRAIN_START(logs)) <= {"Res8(dist-adv)", "Res8(dist-cln)"}
    assert set(cur["model"]) == set(G.RES8_VARIANTS)
    assert cur["clean_acc"].between(0, 100).all() and cur["adv_acc"].between(0, 100).all()
    assert (cur.groupby("model")["epoch"].apply(sorted).map(tuple) == (1, 2)).all()
    logs, log = _log()
    RS.require("curves", "synthetic", E2E, compute=True, store=e2e["store"], progress=False, log=log)
    assert not [line for line in logs if line.startswith("[train]")]


def test_e2e_curves_include_res8_cln(e2e):
    """Res8(cln) is the node 'static:Res8'; its curve must still appear under the variant name (Figs. 3-4)."""
    cur = RS.require("curves", "synthetic", E2E, compute=True, store=e2e["store"], progress=False,
                    log=lambda *a: None)
    assert set(cur["model"]) == set(G.RES8_VARIANTS)
    assert len(cur) == 2 * len(G.RES8_VARIANTS)


def test_tiny_all_tables(tiny):
    df = tiny["df"]
    started = TRAIN_START(tiny["logs"])
    assert len(started) == len(set(started)) == 14  # 11 training-graph models + held-out Res20/14/8
    assert {f"heldout:Res{d}" for d in G.SOURCE_DEPTHS} <= set(started)
    wanted = {(t, a, "-" if s is None else f"Res{s}") for g in G.GROUPS
              for t, a, s in G.table_cells(G.table_for(g, "synthetic"))}
    assert len(wanted) == 7 * 5 + 5 + 4 * 3
    assert set(zip(df["model"], df["attack"], df["source"])) == wanted and len(df) == len(wanted)
    assert (df["n_examples"] == 40).all() and df["accuracy"].between(0, 100).all()
    assert (df["correct"] == (df["accuracy"] * 40 / 100).round()).all()
    # one target scored once per (attack, source): the same number in every table it appears in
    assert not df.duplicated(["model", "attack", "source"]).any()


def test_tiny_cached_second_call(tiny):
    logs, log = _log()
    df2 = RS.require("all", "synthetic", "tiny", compute=True, store=tiny["store"], progress=False, log=log)
    assert not [line for line in logs if line.startswith(("[train]", "[craft]", "[attack]"))]
    key = lambda d: d.sort_values("key").reset_index(drop=True)[["key", "accuracy"]]
    assert key(df2).equals(key(tiny["df"]))


def test_tiny_deleted_artefact_is_rebuilt_identically(tiny):
    """Remove one cached model: only it is retrained, to the same bits (seeded training)."""
    import torch

    exp = G.Experiment("synthetic", "tiny", 0, dataset_variant="generated")
    node = exp.model("Res8(self-adv)")
    before = tiny["store"].load("model", node.key, node.config)
    tiny["store"].remove("model", node.key)
    logs, log = _log()
    runner = RN.Runner(G.Experiment("synthetic", "tiny", 0), tiny["store"], progress=False, log=log)
    runner.model(runner.exp.model("Res8(self-adv)"))
    assert TRAIN_START(logs) == ["Res8(self-adv)"]
    after = tiny["store"].load("model", node.key, node.config)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_tiny_curves_include_res8_cln(tiny):
    """Res8(cln) is the node 'static:Res8'; its curve must still appear under the variant name (Figs. 3-4)."""
    cur = RS.require("curves", "synthetic", "tiny", compute=True, store=tiny["store"], progress=False,
                    log=lambda *a: None)
    assert set(cur["model"]) == set(G.RES8_VARIANTS)
    assert len(cur) == len(G.RES8_VARIANTS)  # one epoch each
    raw = tiny["store"].read("tiny", "curves")
    static8 = raw[raw["model"] == "static:Res8"]
    assert cur.loc[cur["model"] == "Res8(cln)", "clean_acc"].tolist() == static8["clean_acc"].tolist()


def test_tiny_curves_other_variants(tiny):
    cur = RS.require("curves", "synthetic", "tiny", compute=False, store=tiny["store"])
    assert set(cur["model"]) == set(G.RES8_VARIANTS)
    assert (cur["epoch"] == 1).all() and cur["clean_acc"].between(0, 100).all()


def test_tiny_stale_rows_of_an_earlier_profile_definition_are_not_shown(tiny):
    """Rows whose models were trained under other settings (other keys) never reach a table."""
    store = tiny["store"]
    recs = store.read("tiny", "records")
    stale = recs.head(3).assign(key=["stale0", "stale1", "stale2"], correct=[1, 2, 3], model_key="0" * 16)
    stale = stale.assign(accuracy=100.0 * stale["correct"] / stale["n_examples"])
    store.append("tiny", "records", stale.to_dict("records"), unique=("key",))
    try:
        df = RS.require("all", "synthetic", "tiny", store=store)
        assert not df["key"].str.startswith("stale").any()
        assert len(df) == len(tiny["df"])
    finally:
        keep = store.read("tiny", "records")
        keep = keep[~keep["key"].str.startswith("stale")]
        store._csv("tiny", "records").write_text(keep.to_csv(index=False, lineterminator="\n"))


def test_tiny_records_carry_training_settings(tiny):
    df = tiny["df"]
    assert (df["train_images"] == 64).all() and (df["epochs"] == 1).all() and (df["batch_size"] == 32).all()
    from akt_core import report

    assert "trained on 64 images x 1 epoch (batch 32)" in report.label(df)
    assert "; arithmetic: float32; device: cpu: " in report.label(df)  # issue 40: the precision of every label
    from akt_core.report.tables import arithmetic

    assert arithmetic(["cpu: X x2 threads, bf16 autocast", "NVIDIA H200, fp32/tf32", "cpu: X x2 threads"]) == \
        "bf16 autocast and float32 and float32, TF32 convolutions"
    assert arithmetic(["NVIDIA H200, bf16 autocast"]) == "bf16 autocast"


def test_current_keys_match_what_a_runner_writes(tiny):
    recs = tiny["store"].read("tiny", "records")
    assert RS.current_keys("all", "synthetic", "tiny", recs) == set(recs["key"])
    cur = tiny["store"].read("tiny", "curves").query("seed == 0")  # (the held-out sources run as seed 1000)
    want = RS.current_keys("curves", "synthetic", "tiny", cur)
    assert len(want) == len(G.RES8_VARIANTS) and want <= set(cur["key"])


@pytest.mark.parametrize("variant", ["Res8(rslad)", "Res8(iad)"])
def test_tiny_beyond_variant_trains_with_its_live_teacher(tiny, variant):
    """Res8(rslad) and Res8(iad) (a registry entry and a loss, nothing else) depend on the Res26(adv)
    model itself (not cached logits); only the variant is trained."""
    logs, log = _log()
    runner = RN.Runner(G.Experiment("synthetic", "tiny", 0), tiny["store"], progress=False, log=log)
    node = runner.exp.model(variant)
    teacher = runner.exp.model("Res26(adv)")
    assert node.config["teacher"] == teacher.key and node.deps[0].key == teacher.key
    assert "teacher" not in runner.exp.model("Res8(adv-trans)").config  # the paper's keys are unchanged
    model = runner.model(node)
    assert TRAIN_START(logs) == [variant]
    assert 0 <= runner.store.read("tiny", "curves").query(f"model == '{variant}'")["clean_acc"].iloc[-1] <= 100
    assert not model.training


def test_tiny_sa_mdrad_fuses_the_cached_logits_of_three_clean_static_models(tiny):
    logs, log = _log()
    runner = RN.Runner(G.Experiment("synthetic", "tiny", 0), tiny["store"], progress=False, log=log)
    node = runner.exp.model("Res8(sa-mdrad)")
    multi = node.deps[0]
    assert multi.kind == "logits" and [d.name for d in multi.deps] == ["static:Res26", "static:Res20", "static:Res14"]
    runner.model(node)
    assert TRAIN_START(logs) == ["Res8(sa-mdrad)"]  # the three teachers come from the cache
    t = runner.array(multi)
    assert t.shape == (3, 64, 10)
    import torch

    from akt_core.evaluate import logits

    assert torch.equal(t[1], logits(runner.model(multi.deps[1]), runner.train.x, 50).cpu())


def test_tiny_peeraid_trains_a_peer_with_the_student_and_resumes_to_the_same_bits(tiny, tmp_path, monkeypatch):
    """Res8(peeraid) has no teacher in the graph: its Res26 peer is born and trained in the same run.
    A run killed after epoch 1 and resumed (with differently initialised models) gives the same student."""
    import torch

    from akt_core import methods
    from akt_core import train as T

    runner = RN.Runner(G.Experiment("synthetic", "tiny", 0), tiny["store"], progress=False, log=lambda m: None)
    node = runner.exp.model("Res8(peeraid)")
    assert [d.name for d in node.deps] == ["heldout:Res26"]  # only the curve source
    assert node.config["params"]["peer_depth"] == 26
    m = methods.get("peeraid")
    cfg = {**node.config, "epochs": 2}

    def run(init_seed, partial=None):
        torch.manual_seed(init_seed)
        student, peer = runner.new_model(8), runner.new_model(26)
        inp = T.TrainInputs(runner.train, False, runner.exp.eps, peer_model=peer)
        return T.train_model(student, m, m.params, cfg, inp, 0, partial=partial, progress=False), peer

    straight, peer = run(0)
    torch.manual_seed(0)
    fresh = runner.new_model(26).state_dict()
    assert any(not torch.equal(a, fresh[k]) for k, a in peer.state_dict().items())  # the peer was trained
    assert not peer.training

    real_save = T.save_checked

    def killed_at_epoch_two(obj, path):
        if obj["epoch"] == 2:
            raise KeyboardInterrupt
        assert "peer" in obj
        real_save(obj, path)

    monkeypatch.setattr(T, "save_checked", killed_at_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        run(0, tmp_path / "partial.pt")
    monkeypatch.setattr(T, "save_checked", real_save)
    resumed, _ = run(99, tmp_path / "partial.pt")
    assert all(torch.equal(straight.state_dict[k], resumed.state_dict[k]) for k in straight.state_dict)
    with pytest.raises(ValueError, match="peer"):
        T.train_model(runner.new_model(8), m, m.params, cfg, T.TrainInputs(runner.train, False, runner.exp.eps), 0,
                      progress=False)


def test_tiny_neo_kd_exits_are_models_of_their_own(tiny):
    """Res26(neo-kd) trains as one multi-exit model; its exits share its key but get records of their own,
    and exit 3 scores exactly as the whole model does."""

    from akt_core.models import ExitView, MultiExitResNet

    runner = RN.Runner(G.Experiment("synthetic", "tiny", 0), tiny["store"], progress=False, log=lambda m: None)
    e = runner.exp
    node = e.model("Res26(neo-kd)")
    assert {e.model(f"Res26(neo-kd)/exit{k}").key for k in (1, 2, 3)} == {node.key}
    assert len({e.record_key(f"Res26(neo-kd)/exit{k}", "FGSM", 26) for k in (1, 2, 3)}) == 3
    model = runner.model(node)
    assert isinstance(model, MultiExitResNet) and isinstance(runner.target("Res26(neo-kd)/exit1"), ExitView)
    recs = RS.evaluate(runner, [(f"Res26(neo-kd)/exit{k}", a, s) for k in (1, 2, 3) for a, s in (("clean", None), ("FGSM", 26))])
    assert len(recs) == 6 and set(recs["model"]) == {f"Res26(neo-kd)/exit{k}" for k in (1, 2, 3)}
    x, y = runner.test.x, runner.test.y
    from akt_core.evaluate import correct

    want = 100.0 * correct(model, x, y) / len(y)
    got = recs.query("model == 'Res26(neo-kd)/exit3' and attack == 'clean'")["accuracy"].item()
    assert got == pytest.approx(want)
    for k in (1, 2):  # an exit's record is that exit's accuracy
        want = 100.0 * correct(runner.target(f"Res26(neo-kd)/exit{k}"), x, y) / len(y)
        assert recs.query(f"model == 'Res26(neo-kd)/exit{k}' and attack == 'clean'")["accuracy"].item() == pytest.approx(want)


def test_tiny_compare_joins_paper_records_whitebox_records_and_training_time(tiny):
    from akt_core import beyond as R

    df = RS.require("compare", "synthetic", "tiny", compute=True, store=tiny["store"], progress=False,
                   log=lambda m: None, targets=("Res8(adv-trans)", "Res8(sa-mdrad)"))
    assert set(df["model"]) == {"Res8(adv-trans)", "Res8(sa-mdrad)"}
    n_aa = len(tiny["profile"].autoattack_eps) if tiny["profile"].n_autoattack else 0
    aa = ["AutoAttack", R.PGD_ON_AA] * n_aa  # AutoAttack and PGD-20 on its images, per AutoAttack eps
    assert sorted(df.query("model == 'Res8(sa-mdrad)'")["attack"]) == sorted(
        ["clean", "FGSM", "I-FGSM", "Step-LL", "Iter-LL", "PGD-20", "PGD-20", *aa])
    runs_df = tiny["store"].read("tiny", "runs")
    assert (runs_df["cpu_s"] > 0).all()  # every model and crafted set records its CPU seconds beside wall_s
    runs = runs_df.set_index("key")["wall_s"]
    row = df.query("model == 'Res8(sa-mdrad)'").iloc[0]
    assert row["train_s"] == runs[row["model_key"]]
    again = RS.require("compare", "synthetic", "tiny", store=tiny["store"], targets=("Res8(adv-trans)", "Res8(sa-mdrad)"))
    assert len(again) == len(df)
    with pytest.raises(AktError, match="Res8\\(bogus\\)"):
        R.needs("compare", "synthetic", "tiny", ("Res8(bogus)",))


def test_tiny_compare_and_exit_tables_show_the_stored_numbers(tiny):
    from akt_core import report

    targets = ("Res8(adv-trans)", "Res26(neo-kd)/exit1", "Res26(neo-kd)/exit3")
    df = RS.require("compare", "synthetic", "tiny", compute=True, store=tiny["store"], progress=False,
                   log=lambda m: None, targets=targets)
    table = report.compare_table(df)
    assert list(table.index) == list(targets)
    assert list(table.columns[:5]) == ["clean", "FGSM (transfer)", "I-FGSM (transfer)", "Step-LL (transfer)",
                                       "Iter-LL (transfer)"]
    # white-box columns: larger eps first; PGD-20, then PGD-20 on AutoAttack's images, then AutoAttack
    assert [c for c in table.columns if " @ " in c] == ["PGD-20 @ 16/256", "PGD-20 (AA images) @ 16/256",
                                                        "AutoAttack (10 it.) @ 16/256", "PGD-20 @ 8/255"]
    rec = df.query("model == 'Res26(neo-kd)/exit1' and attack == 'PGD-20' and eps_256 == 16")["accuracy"].item()
    assert table.loc["Res26(neo-kd)/exit1", "PGD-20 @ 16/256"] == f"{rec:.2f}"
    train_s = df.loc[df["model"] == "Res8(adv-trans)", "train_s"].iloc[0]
    assert table.loc["Res8(adv-trans)", "train (min)"] == f"{train_s / 60:.1f}"
    ex = report.exit_table(df, "synthetic")
    assert list(ex.index) == ["Res26(neo-kd)/exit1", "Res26(neo-kd)/exit3"]
    assert float(ex.loc["Res26(neo-kd)/exit1", "MMACs"]) < float(ex.loc["Res26(neo-kd)/exit3", "MMACs"])
    assert ex.loc["Res26(neo-kd)/exit3", "clean"] == table.loc["Res26(neo-kd)/exit3", "clean"]


def test_prerequisites_walk_the_graph_and_leave_out_curve_only_models():
    from akt_core import report

    exp = G.Experiment("mnist", "smoke")
    assert exp.prerequisites("Res8(adv-trans)") == [
        "static:Res26", "static:Res20", "static:Res14", "static:Res8", "D_adv", "Res26(adv)"]
    assert exp.prerequisites("Res8(sa-mdrad)") == ["static:Res26", "static:Res20", "static:Res14"]
    assert exp.prerequisites("Res8(cln)") == [] == exp.prerequisites("Res26(neo-kd)/exit2")
    assert report.trained_after("Res8(dist-cln)") == "static Res26 (clean)"
    assert report.trained_after("Res8(peeraid)") == "nothing (its Res26 peer trains in the same run)"


def test_reruns_are_joined_to_the_published_records_by_key(tmp_path):
    """A rerun store holding two of three published keys (one moved by +2.5 points, one by -0.25) and a
    key the published store lacks: the table and sentence show exactly the joined pairs."""

    from akt_core import report
    from akt_core.store import Store

    cols = ["key", "dataset", "model", "attack", "source", "accuracy"]
    pub = [("k1", "mnist", "Res8(cln)", "FGSM", "Res26", 60.0), ("k2", "mnist", "Res8(cln)", "clean", "-", 98.0),
           ("k3", "mnist", "Res8(adv)", "FGSM", "Res14", 90.0), ("k4", "cifar10", "Res8(cln)", "clean", "-", 60.0)]
    again = [("k1", "mnist", "Res8(cln)", "FGSM", "Res26", 62.5), ("k3", "mnist", "Res8(adv)", "FGSM", "Res14", 89.75),
             ("k9", "mnist", "Res8(adv)", "clean", "-", 97.0)]
    def rows(cells):  # whole records (the schema is checked on every write)
        return [{**dict(zip(cols, r)), "eps": 0.0625, "correct": round(r[-1] * 100), "n_examples": 10000,
                 "model_key": "m" + r[0], "profile": "reduced", "seed": 0, "dataset_variant": "original",
                 "blackbox": "held-out", "git_commit": "abc"} for r in cells]

    store = Store(tmp_path)
    store.append("reduced", "records", rows(pub), unique=("key",))
    Store(tmp_path / "reruns" / "other-cpu").append("reduced", "records", rows(again), unique=("key",))
    spread = report.reruns("mnist", "reduced", store)
    assert sorted(spread["delta"]) == [-0.25, 2.5] and set(spread["rerun"]) == {"other-cpu"}
    table = report.rerun_table(spread, "other-cpu")  # Tables 2-4 cells only: k3 (from a Res14) is left out
    assert table.to_dict() == {"FGSM": {"Res8(cln)": "60.00 / 62.50 (+2.50)"}}
    assert report.rerun_summary(spread, "other-cpu") == (
        "2 records of 2 models recomputed (seed 0). Absolute difference: median 1.38 points; "
        "more than 1 point for 1 of the 2; largest +2.50 points (Res8(cln), FGSM from the Res26: 60.00 % "
        "published, 62.50 % again).")
    assert len(report.reruns("cifar10", "reduced", store)) == 0
    # beside the seed spread of the same cells (one rule): k1 moved 2.5 points; k3 (from a Res14) is no Table 2-4 cell
    cells = pd.DataFrame({"model": ["Res8(cln)", "Res8(cln)"], "column": ["FGSM", "clean"], "spread": [3.0, 0.5]})
    assert report.rerun_noise(spread, "other-cpu", cells) == {
        "cells": 1, "median_delta": 2.5, "largest_delta": 2.5, "median_spread": 3.0, "largest_spread": 3.0, "within": True}
    tighter = cells.assign(spread=[2.0, 0.5])
    assert report.rerun_noise(spread, "other-cpu", tighter)["within"] is False
    assert "**beyond the seed noise**" in report.rerun_noise_words(report.rerun_noise(spread, "other-cpu", tighter),
                                                                    ["seed 0", "seed 1"])
    assert report.rerun_noise(spread, "other-cpu", cells.iloc[1:]) is None
    # a rerun in another arithmetic says so (from the rows' device)
    Store(tmp_path / "reruns" / "x-bf16").append("reduced", "records", [
        {**rows(again[:1])[0], "device": "cpu: X (AVX512) x2 threads, bf16 autocast"}], unique=("key",))
    both = report.reruns("mnist", "reduced", store)
    assert report.rerun_summary(both, "x-bf16").startswith(
        "1 records of 1 model recomputed (seed 0; in bf16 autocast, the published records in float32).")
    assert "arithmetic" not in report.rerun_summary(both, "other-cpu")
    spread = both[both["rerun"] == "other-cpu"]
    # a second seed recomputed too: one row per model and seed, never two cells in one
    seed1 = [{**r, "key": r["key"] + "s1", "seed": 1, "accuracy": r["accuracy"] - 1, "correct": r["correct"] - 100}
             for r in rows(pub[:1])]
    store.append("reduced", "records", seed1, unique=("key",))
    Store(tmp_path / "reruns" / "other-cpu").append("reduced", "records", [{**seed1[0], "accuracy": 58.0,
                                                                            "correct": 5800}], unique=("key",))
    spread = report.reruns("mnist", "reduced", store)
    assert report.rerun_table(spread, "other-cpu").to_dict() == {
        "FGSM": {"Res8(cln), seed 0": "60.00 / 62.50 (+2.50)", "Res8(cln), seed 1": "59.00 / 58.00 (-1.00)"}}
    assert report.rerun_summary(spread, "other-cpu").startswith("3 records of 2 models recomputed (seeds 0, 1).")


def test_models_to_train_are_what_build_all_trains(tiny):
    trained = [line.split()[2] for line in tiny["logs"] if line.startswith("[train] synthetic ")]
    assert len(trained) == len(set(trained))  # each model trained once
    assert sorted(trained) == sorted(n.name for n in G.Experiment("synthetic", "tiny").models_to_train())
    names = [n.name for n in G.Experiment("mnist", "paper").models_to_train()]
    assert len(names) == 14 and names.index("static:Res8") < names.index("Res26(adv)")  # D_adv's sources first


def test_bf16_autocast_is_used_on_the_cpu_only_when_asked_and_named_in_the_device(tiny):
    """Issue 40: bf16 autocast on the CPU (opt-in); every row's ``device`` says so, and the machine kind
    keeps the arithmetic (a bf16 run never counts as bit-for-bit with a float32 one)."""
    quiet = dict(device="cpu", log=lambda *a: None)
    assert RN.Runner(G.Experiment("synthetic", "tiny"), tiny["store"], **quiet).bf16 is False
    runner = RN.Runner(G.Experiment("synthetic", "tiny"), tiny["store"], bf16=True, **quiet)
    assert runner.bf16 is True and runner.provenance()["device"].endswith(" threads, bf16 autocast")
    fp32 = PV.device_name(torch.device("cpu"))
    assert not fp32.endswith("autocast") and PV.machine_kind(fp32) + ", bf16 autocast" == \
        PV.machine_kind(PV.device_name(torch.device("cpu"), bf16=True))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1, bias=False), torch.nn.Flatten())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 1 / 3, 0.0], [0.0, 0.0, 1.0]]).view(2, 3, 1, 1))
    x = torch.tensor([1.0, 1.0, 0.0]).view(1, 3, 1, 1)  # 1 + 1/3: float32 keeps it to 1e-7, bf16 does not
    assert abs(float(EV.logits(model, x)[0, 0]) - 4 / 3) < 1e-6
    assert abs(float(EV.logits(model, x, bf16=True)[0, 0]) - 4 / 3) > 1e-3


def test_a_model_waits_for_every_dependency_but_its_curve_source():
    """Issue 21's critical path: heldout:Res26 only scores the static sources' adversarial curves, so
    they start beside it (``runner.start_deps``, the rule ``cluster.build`` submits by); D_adv and every
    model trained from a model still wait for what they are trained from."""
    exp = G.Experiment("cifar10", "paper")
    nodes = {n.name: n for n in G.walk(exp.models_to_train())}
    curve = nodes["heldout:Res26"]
    for name in ("static:Res26", "static:Res8", "Res8(self-adv)"):
        assert [d.name for d in RN.start_deps(nodes[name])] == [] and RN.curve_source(nodes[name]).key == curve.key
    assert [d.name for d in RN.start_deps(nodes["D_adv"])] == ["static:Res26", "static:Res20", "static:Res14", "static:Res8"]
    assert [d.name for d in RN.start_deps(nodes["Res26(adv)"])] == ["D_adv"]
    assert RN.start_deps(curve) == [] and RN.curve_source(curve) is None  # the held-out sources score no curve


def test_gpu_critical_path_follows_the_schedule_of_the_cluster_build(monkeypatch):
    """benchmarks/gpu.py's longest chain uses the rule of ``cluster.build`` (``runner.start_deps``): the
    static sources train beside heldout:Res26, and a model is stored no earlier than its curve source."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import gpu

    keys = {n.name: n.key for n in G.walk(G.Experiment("mnist", "paper").models_to_train())}

    def path(**secs: float) -> float:
        return gpu.critical_path_s([{"key": keys[k], "train_s": s} for k, s in secs.items()], "mnist")

    assert path(**{"heldout:Res26": 100}) == 100
    assert path(**{"heldout:Res26": 100, "static:Res26": 60}) == 100  # 160 if the static source waited
    # a model is stored once its curve is scored, so D_adv (crafted on the static sources, counted free)
    # and Res26(adv) start when both Res26 are done: 100 + 50 (210 when the static source waited)
    assert path(**{"heldout:Res26": 100, "static:Res26": 60, "Res26(adv)": 50}) == 150
    assert path(**{"heldout:Res26": 60, "static:Res26": 100, "Res26(adv)": 50}) == 150
