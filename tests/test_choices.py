"""The unstated choices (issue 20): each one touches exactly the models it names, keeps every other
key, and changes the training the way its name says."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_model

from akt_core import AktError
from akt_core import choices as C
from akt_core import methods as M
from akt_core import train as T
from akt_core.data import load, to_float
from akt_core.evaluate import logits
from akt_core.graph import SOURCE_DEPTHS, VARIANTS, Experiment, walk
from akt_core.results import select_stored

pytestmark = pytest.mark.usefixtures("isolated")
EPS = 16 / 256


def _keys(**kw) -> dict[str, str]:
    e = Experiment("cifar10", "reduced", 0, dataset_variant="v", **kw)
    roots = [e.model(v) for v in VARIANTS] + [e.blackbox_source(d) for d in SOURCE_DEPTHS]
    return {n.name: n.key for n in walk(roots) if n.kind == "model"}


def _moved(**kw) -> set[str]:
    base, other = _keys(), _keys(**kw)
    return {name for name in base if base[name] != other[name]}


def test_the_defaults_are_no_choice_at_all():
    assert Experiment("mnist", "smoke", choices={"decay": "weights", "teacher_view": "cached"}).choices == ()
    assert _keys(choices={"dadv_walk": "random"}) == _keys()


def test_teacher_view_touches_the_three_distilled_students_only():
    assert _moved(choices={"teacher_view": "augmented"}) == {"Res8(dist-cln)", "Res8(dist-adv)", "Res8(adv-trans)"}


def test_dadv_walk_touches_the_dadv_models_and_what_they_teach():
    assert _moved(choices={"dadv_walk": "cycle"}) == {"Res26(adv)", "Res8(adv)", "Res8(adv-trans)", "Res8(dist-adv)"}


def test_decay_touches_every_model_the_paper_trains_but_never_the_held_out_instrument():
    moved = _moved(choices={"decay": "all"})
    assert {f"heldout:Res{d}" for d in SOURCE_DEPTHS}.isdisjoint(moved)
    assert moved == set(_keys()) - {f"heldout:Res{d}" for d in SOURCE_DEPTHS}


def test_the_static_protocol_trains_the_same_targets():
    static = _keys(blackbox="static")
    held = _keys()
    assert all(static[v] == held[v] for v in ("Res26(adv)", "Res8(adv-trans)", "static:Res26", "static:Res8"))
    e = Experiment("cifar10", "reduced", 0, dataset_variant="v", blackbox="static")
    assert e.blackbox_source(20).name == "static:Res20" and e.curve_source().name == "heldout:Res26"


def test_a_choice_is_in_the_touched_models_config_and_params():
    e = Experiment("cifar10", "reduced", 0, choices={"dadv_walk": "cycle", "decay": "all"})
    cfg = e.model("Res26(adv)").config
    assert cfg["choices"] == {"dadv_walk": "cycle", "decay": "all"} and cfg["params"]["source_choice"] == "cycle"
    assert e.model("Res8(self-adv)").config["choices"] == {"decay": "all"}
    assert "choices" not in e.heldout_source(26).config
    assert C.column(cfg) == {"choices": "dadv_walk=cycle;decay=all"} and C.column({}) == {}


@pytest.mark.parametrize("bad, words", [({"decay": "none"}, "weights, all"), ({"teacher": "x"}, "teacher_view"),
                                        ({"blackbox": "static"}, "Experiment.blackbox")])
def test_bad_choices_name_the_valid_ones(bad, words):
    with pytest.raises(AktError, match=words):
        Experiment("mnist", "smoke", choices=bad)


def test_parse_from_the_command_line():
    assert C.parse(["decay=all", "teacher_view=cached"]) == (("decay", "all"),)
    with pytest.raises(AktError, match="NAME=VALUE"):
        C.parse(["decay"])


def test_decay_all_decays_batchnorm_and_biases():
    """One SGD step with zero gradients: only weight decay moves a parameter, p <- p (1 - lr wd)."""
    tr = load("synthetic", "train").subset(64)
    cfg = {"epochs": 1, "batch_size": 64, "lr": 0.5, "momentum": 0.0, "lr_milestones": [2.0, 3.0],
           "weight_decay": 0.1}
    zero = M.Method("zero", lambda model, b, p: 0.0 * model(b.x).sum(), "zero loss")
    for chosen, bn_factor in ((None, 1.0), ("all", 1 - 0.5 * 0.1)):
        model = make_model()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.fill_(2.0)
        bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        w0 = conv.weight.detach().clone()
        c = {**cfg, **({"choices": {"decay": chosen}} if chosen else {})}
        res = T.train_model(model, zero, {}, c, T.TrainInputs(tr, False, EPS), 0, progress=False)
        name = next(k for k, v in model.state_dict().items() if v.data_ptr() == bn.weight.data_ptr())
        conv_name = next(k for k, v in model.state_dict().items() if v.data_ptr() == conv.weight.data_ptr())
        assert torch.allclose(res.state_dict[name], torch.full_like(bn.weight, 2.0 * bn_factor))
        assert torch.allclose(res.state_dict[conv_name], w0 * (1 - 0.05))


@pytest.mark.parametrize("method", ["dist-cln", "adv-trans"])
def test_teacher_view_augmented_reads_the_teacher_on_the_batch_the_student_sees(method):
    tr = load("synthetic", "train").subset(96)
    m = M.get(method)
    teacher = make_model(seed=5).eval()
    g = torch.Generator().manual_seed(3)
    inp = T.TrainInputs(tr, True, EPS, teacher_model=teacher)
    if m.uses_dadv:
        inp.dadv_sign = (torch.randint(0, 3, (2, 96, 3, 32, 32), generator=g) - 1).to(torch.int8)
    b = T.make_batch(make_model(), m, m.params, inp, torch.arange(64), 0, torch.Generator().manual_seed(1), False)
    assert not torch.equal(b.x, to_float(tr.x[:len(b.x)]))  # augmented
    assert torch.allclose(b.t, logits(teacher, b.x), atol=1e-6)
    if m.uses_dadv:
        assert torch.allclose(b.t_adv, logits(teacher, b.x_adv), atol=1e-6)


def test_stored_rows_of_a_choice_are_apart_from_the_defaults():
    e0 = Experiment("synthetic", "smoke", 0, dataset_variant="v")
    e1 = Experiment("synthetic", "smoke", 0, dataset_variant="v", choices={"teacher_view": "augmented"})
    rows = [{"key": e.model(v).key, "model": v, "dataset": "synthetic", "seed": 0, "dataset_variant": "v",
             "blackbox": "held-out", "epoch": 1, "tag": tag}
            for e, tag in ((e0, "default"), (e1, "choice")) for v in ("Res8(cln)", "Res8(dist-cln)")]
    df = pd.DataFrame(rows).drop_duplicates("key")

    def keys_of(e):
        return {e.model(v).key for v in ("Res8(cln)", "Res8(dist-cln)")}

    got = select_stored(df, "curves", "synthetic", "smoke", [0], "held-out", None, keys_of, e1.choices)
    assert sorted(zip(got["model"], got["tag"])) == [("Res8(cln)", "default"), ("Res8(dist-cln)", "choice")]
    got = select_stored(df, "curves", "synthetic", "smoke", [0], "held-out", None, keys_of)
    assert sorted(got["tag"]) == ["default", "default"]


def test_clean_records_serve_both_black_box_protocols():
    """A clean record has no source: its key is the same under either protocol, so the static
    protocol's tables read the clean column the held-out run stored (MNIST's static measurement
    had every attacked cell and no clean one before this)."""
    held = Experiment("synthetic", "smoke", 0, dataset_variant="v")
    static = Experiment("synthetic", "smoke", 0, dataset_variant="v", blackbox="static")
    assert held.record_key("Res8(adv)", "clean", None) == static.record_key("Res8(adv)", "clean", None)
    assert held.record_key("Res8(adv)", "FGSM", 26) != static.record_key("Res8(adv)", "FGSM", 26)
    base = {"model": "Res8(adv)", "dataset": "synthetic", "seed": 0, "dataset_variant": "v"}
    df = pd.DataFrame([
        {**base, "key": held.record_key("Res8(adv)", "clean", None), "attack": "clean", "source": "-",
         "blackbox": "held-out"},
        {**base, "key": held.record_key("Res8(adv)", "FGSM", 26), "attack": "FGSM", "source": "Res26",
         "blackbox": "held-out"},
        {**base, "key": static.record_key("Res8(adv)", "FGSM", 26), "attack": "FGSM", "source": "Res26",
         "blackbox": "static"}])

    def keys_of(e):
        return {e.record_key("Res8(adv)", a, s) for a, s in (("clean", None), ("FGSM", 26))}

    for protocol in ("held-out", "static"):
        got = select_stored(df, "records", "synthetic", "smoke", [0], protocol, None, keys_of)
        assert sorted(zip(got["attack"], got["blackbox"])) == [("FGSM", protocol), ("clean", "held-out")]


@pytest.fixture(scope="module")
def choice_store(tmp_path_factory, tiny_built):
    """The synthetic graph under the 'tiny' profile: seeds 0 and 1 by default, seed 0 with the teacher
    run on the augmented batches."""
    from akt_core import profiles as P
    from akt_core import results as RS
    from akt_core.store import Store

    root = tmp_path_factory.mktemp("choice_store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(P.PROFILES, "tiny", tiny_built["profile"])
        for seed, kw in ((0, {}), (1, {}), (0, {"choices": {"teacher_view": "augmented"}})):
            RS.require("all", "synthetic", "tiny", [seed], compute=True, store=Store(root), progress=False,
                       log=lambda *a: None, **kw)
    return root


def test_cell_moves_are_paired_by_seed_against_the_default_spread(choice_store, tiny_built, monkeypatch):
    from akt_core import profiles as P
    from akt_core.report import unstated
    from akt_core.store import Store

    monkeypatch.setitem(P.PROFILES, "tiny", tiny_built["profile"])
    monkeypatch.setenv("AKT_STORE", str(choice_store))
    store = Store(choice_store)
    m = unstated.moves("teacher_view", "augmented", "synthetic", "tiny", seeds=(0, 1), store=store, spread_store=store)
    assert len(m) == 7 * 5 + 4 * 5 + 4 * 5  # every cell of the three tables
    assert unstated.measured_seeds("teacher_view", "augmented", "synthetic", "tiny", (0, 1), store) == [0]
    recs = Store(choice_store).read("tiny")
    e0 = Experiment("synthetic", "tiny", 0, dataset_variant=recs["dataset_variant"].iloc[0])
    e1 = Experiment("synthetic", "tiny", 0, dataset_variant=e0.dataset_variant, choices={"teacher_view": "augmented"})

    def acc(e, seed, model, attack, src):
        ex = Experiment("synthetic", "tiny", seed, dataset_variant=e.dataset_variant, choices=e.choices)
        return float(recs.loc[recs["key"] == ex.record_key(model, attack, src), "accuracy"].iloc[0])

    row = m[(m["table"] == 2) & (m["model"] == "Res8(adv-trans)") & (m["column"] == "FGSM")].iloc[0]
    assert row["default"] == acc(e0, 0, "Res8(adv-trans)", "FGSM", 26)
    assert row["other"] == acc(e1, 0, "Res8(adv-trans)", "FGSM", 26)
    spread = float(np.std([acc(e0, s, "Res8(adv-trans)", "FGSM", 26) for s in (0, 1)], ddof=1))
    assert row["spread"] == pytest.approx(spread) and row["n_seeds"] == 1
    assert row["moved"] == (abs(row["other"] - row["default"]) > spread)
    untouched = m[m["model"].isin(["Res26(cln)", "Res26(adv)", "Res8(cln)", "Res8(adv)", "Res8(self-adv)"])]
    assert len(untouched) and (untouched["move"] == 0).all() and not untouched["moved"].any()


def test_each_seed_pairs_within_the_first_run_that_measured_it(choice_store, tiny_built, monkeypatch, tmp_path):
    """Runs on two machines: a seed's default and other value come from one run, never one from each;
    a run without the other value's rows is passed over; a seed in two runs is read from the first."""
    import shutil

    from akt_core import profiles as P
    from akt_core.report import unstated
    from akt_core.store import Store

    monkeypatch.setitem(P.PROFILES, "tiny", tiny_built["profile"])
    orig = Store(choice_store)
    src = choice_store / "results" / "tiny"
    copy_root, bare_root = tmp_path / "second", tmp_path / "bare"
    shutil.copytree(src, copy_root / "results" / "tiny")
    # the second run: every record at 0 %, default and other alike (another machine's floats)
    recs = pd.read_csv(copy_root / "results" / "tiny" / "records.csv")
    recs["accuracy"], recs["correct"] = 0.0, 0
    recs.to_csv(copy_root / "results" / "tiny" / "records.csv", index=False)
    second = Store(copy_root)
    # a run that holds only the default rows (it never measured the choice)
    shutil.copytree(src, bare_root / "results" / "tiny")
    b = pd.read_csv(bare_root / "results" / "tiny" / "records.csv")
    b[b["choices"].isna()].to_csv(bare_root / "results" / "tiny" / "records.csv", index=False)
    bare = Store(bare_root)

    args = ("teacher_view", "augmented", "synthetic", "tiny")
    got = unstated.measured_pairs(*args, (0, 1), [bare, second, orig])
    assert [(st.root, seed) for st, seed in got] == [(copy_root, 0)], [(st.root, seed) for st, seed in got]
    assert unstated.measured_runs(*args, (0, 1), [orig, second]) == f"0: {choice_store.name}"
    assert unstated.runs_words([(Store(tmp_path / "choices-2026-12-02"), 0), (Store(tmp_path / "x"), 1)]) == "0: 12-02, 1: x"
    first = unstated.moves(*args, seeds=(0, 1), store=[orig, second], spread_store=orig)
    later = unstated.moves(*args, seeds=(0, 1), store=[bare, second, orig], spread_store=orig)
    assert later["default"].eq(0).all() and later["other"].eq(0).all()  # both values from the second run
    assert first["move"].ne(0).any() and later["move"].eq(0).all()  # paired within it, never across runs
    assert unstated.moves(*args, seeds=(0, 1), store=[bare], spread_store=orig).empty


def test_summary_names_the_largest_move_and_the_flipped_verdicts(monkeypatch):
    from akt_core.report import unstated

    hand = pd.DataFrame({"table": [3, 3, 6], "model": ["Res8(adv)", "Res8(cln)", "Res8(adv)"],
                         "column": ["FGSM", "clean", "FGSM@Res26"], "default": [40.0, 60.0, 50.0],
                         "other": [36.0, 60.5, 51.0], "spread": [1.0, 2.0, 0.5], "n_seeds": 1})
    hand["move"] = hand["other"] - hand["default"]
    hand["moved"] = hand["move"].abs() > hand["spread"]
    flips = pd.DataFrame({"claim": ["C1", "C3"], "default": ["supported", "within noise"],
                          "other": ["supported", "contradicted"]})
    monkeypatch.setattr(unstated, "moves", lambda *a, **k: hand)
    monkeypatch.setattr(unstated, "verdicts", lambda *a, **k: flips)
    monkeypatch.setattr(unstated, "measured_pairs", lambda *a, **k: [(unstated.choices_mod.measured_store(), 0)])
    s = unstated.summary()
    row = s[(s["choice"] == "dadv_walk")].iloc[0]
    assert row["cells moved"] == "2 of 3"  # -4 beyond 1, +1 beyond 0.5; +0.5 within 2
    assert row["largest move"] == "-4.0 (Table 3, Res8(adv), FGSM)"
    assert row["verdicts that change"] == "C3: within noise → contradicted"
    assert row["median seed spread"] == 1.0 and row["seeds"] == "0"
    assert list(s["choice"]) == [n for n, _, ds in unstated.choices_mod.MEASURED for _ in ds]


def test_reading_says_what_moved_and_what_is_not_measured():
    from akt_core.report import unstated

    s = pd.DataFrame([{"choice": "decay", "default": "weights", "other": "all", "dataset": "cifar10", "seeds": "0, 1",
                       "cells moved": "3 of 75", "largest move": "+6.0 (Table 3, Res8(adv), FGSM)",
                       "median seed spread": 1.25, "verdicts that change": "none"},
                      {"choice": "blackbox", "default": "held-out", "other": "static", "dataset": "mnist",
                       "seeds": "not measured yet"}])
    text = unstated.reading(s)
    assert text.startswith("**decay = all** (cifar10, seeds 0, 1): 3 of 75 cells move beyond their seed spread "
                           "(median spread 1.2 points); the largest move is +6.0 (Table 3, Res8(adv), FGSM); no "
                           "verdict changes.")
    assert text.endswith("Not measured yet: blackbox = static on mnist.")


def test_protocols_sit_beside_the_papers_numbers_in_the_papers_order(monkeypatch):
    from akt_core.report import unstated

    hand = pd.DataFrame({"table": 2, "model": ["Res8(cln)", "Res26(cln)", "Res26(cln)"],
                         "column": ["FGSM", "I-FGSM", "FGSM"], "default": [95.0, 96.0, 93.0],
                         "other": [40.0, 10.0, 20.0]})
    monkeypatch.setattr(unstated, "moves", lambda *a, **k: hand)
    grid = unstated.protocols_grid(unstated.protocols("mnist"), "mnist")
    assert list(grid.index) == [(m, k) for m in ("Res26(cln)", "Res8(cln)") for k in ("paper", "held-out", "static")]
    assert list(grid.columns) == ["FGSM", "I-FGSM"]  # the paper's column order, only the columns measured
    assert grid.loc[("Res26(cln)", "paper"), "FGSM"] == 25.56  # Table 2, MNIST (data/paper_tables.csv)
    assert grid.loc[("Res26(cln)", "static"), "FGSM"] == 20.0 and grid.loc[("Res26(cln)", "held-out"), "I-FGSM"] == 96.0
    assert pd.isna(grid.loc[("Res8(cln)", "static"), "I-FGSM"])  # not measured: left empty, never filled


def test_protocol_gap_says_whether_the_static_protocol_closes_the_gap_to_the_paper(monkeypatch):
    from akt_core.report import unstated

    hand = pd.DataFrame({"table": 2, "model": ["Res8(cln)", "Res26(cln)", "Res26(cln)"],
                         "column": ["FGSM", "I-FGSM", "FGSM"], "default": [95.0, 96.0, 93.0],
                         "other": [40.0, 10.0, 20.0]})
    monkeypatch.setattr(unstated, "moves", lambda *a, **k: hand)

    def gap() -> str:
        return unstated.protocol_gap(unstated.protocols("mnist"), "mnist")

    # ours - paper (19.83, 2.92, 25.56): held-out +75.17, +93.08, +67.44; static +20.17, +7.08, -5.56
    assert gap() == (
        "Table 2 (mnist): over the 3 attacked cells more than 5 points from the paper's under the held-out "
        "protocol (Res26(cln), Res8(cln)), ours minus the paper's is a median of +75.2 points under the held-out "
        "protocol and +7.1 under the static one; 3 of them come closer to the paper under the static protocol. "
        "The static protocol closes most of the gap.")
    monkeypatch.setattr(unstated, "moves", lambda *a, **k: hand.assign(other=hand["default"] + 1))
    assert gap().endswith("0 of them come closer to the paper under the static "
                                                    "protocol. The static protocol does not close the gap.")
    monkeypatch.setattr(unstated, "moves", lambda *a, **k: hand.iloc[:0])
    assert gap() == ""
    near = hand.assign(column="clean", default=[99.5, 99.5, 99.5], other=[99.0, 99.0, 99.0])  # not attacked
    monkeypatch.setattr(unstated, "moves", lambda *a, **k: near)
    assert gap() == ""
