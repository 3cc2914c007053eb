"""The `akt` command line: exit code 2 with a one-line message naming the bad value."""
from __future__ import annotations

import pytest

from akt_core import __version__
from akt_core.cli import main

pytestmark = pytest.mark.usefixtures("isolated")


def _fail(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    return err


def test_unknown_dataset(capsys, tmp_path):
    err = _fail(capsys, ["build", "attacks", "--dataset", "imagenet", "--store", str(tmp_path)])
    assert err.startswith("akt: error:") and "'imagenet'" in err and "cifar10" in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_profile(capsys, tmp_path):
    err = _fail(capsys, ["build", "attacks", "--dataset", "synthetic", "--profile", "huge", "--store", str(tmp_path)])
    assert "'huge'" in err and "smoke" in err and "reduced" in err and "paper" in err


def test_unknown_variant(capsys, tmp_path):
    err = _fail(capsys, ["train", "Res9(cln)", "--dataset", "synthetic", "--store", str(tmp_path)])
    assert "'Res9(cln)'" in err and "Res8(adv-trans)" in err
    assert not (tmp_path / "cache").exists()


def test_unknown_result_name(capsys, tmp_path):
    err = _fail(capsys, ["build", "table5", "--dataset", "synthetic", "--store", str(tmp_path)])
    assert "'table5'" in err and "variants" in err and "curves" in err and "sweep" in err


def test_unknown_target_and_targets_on_a_paper_table(capsys, tmp_path):
    err = _fail(capsys, ["build", "compare", "--dataset", "synthetic", "--targets", "Res8(ard)", "Res9(x)",
                         "--store", str(tmp_path)])
    assert "'Res9(x)'" in err and "Res8(peeraid)" in err and "Res26(neo-kd)/exit2" in err
    err = _fail(capsys, ["build", "variants", "--dataset", "synthetic", "--targets", "Res8(cln)", "--store", str(tmp_path)])
    assert "--targets" in err and "'variants'" in err and "compare" in err
    assert not (tmp_path / "cache").exists()


def test_unknown_blackbox_and_device(capsys, tmp_path):
    err = _fail(capsys, ["build", "attacks", "--dataset", "synthetic", "--blackbox", "gray", "--store", str(tmp_path)])
    assert "'gray'" in err and "held-out" in err
    err = _fail(capsys, ["train", "Res8(cln)", "--dataset", "synthetic", "--device", "tpu", "--store", str(tmp_path)])
    assert "'tpu'" in err


def test_missing_data_root(capsys, tmp_path):
    root = tmp_path / "no-such-root"
    err = _fail(capsys, ["build", "attacks", "--dataset", "mnist", "--data-root", str(root),
                         "--store", str(tmp_path / "store"), "--device", "cpu", "--quiet"])
    assert str(root) in err and "prepare-data" in err and "'mnist'" in err
    assert not (tmp_path / "store" / "cache").exists()


def test_prepare_data_missing_source(capsys, tmp_path):
    err = _fail(capsys, ["prepare-data", "--source", str(tmp_path / "src"), "--root", str(tmp_path / "root"),
                         "--datasets", "cifar10"])
    assert f"--source {tmp_path / 'src'} is not a folder" in err and not (tmp_path / "root").exists()
    (tmp_path / "src").mkdir()
    err = _fail(capsys, ["prepare-data", "--source", str(tmp_path / "src"), "--root", str(tmp_path / "root"),
                         "--datasets", "cifar10"])
    assert "cifar10.zip" in err
    err = _fail(capsys, ["prepare-data", "--source", str(tmp_path), "--root", str(tmp_path / "root"),
                         "--datasets", "svhn"])
    assert "'svhn'" in err


def test_profiles_lists_all(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["profiles"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["smoke", "reduced", "full-data", "paper"]
    assert "batch 256" in out[2] and "batch 256" in out[3]


def test_usage_errors_and_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out


def test_show_on_empty_store(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["show", "--store", str(tmp_path)])
    assert exc.value.code == 0
    assert "(0 entries)" in capsys.readouterr().out


def test_bf16_is_opt_in():
    from akt_core.cli import build_parser

    assert build_parser().parse_args(["build", "all"]).bf16 is False
    assert build_parser().parse_args(["train", "Res8(cln)", "--bf16"]).bf16 is True


def test_jobs_must_be_positive_and_do_not_apply_to_the_forensics(capsys, tmp_path):
    err = _fail(capsys, ["build", "all", "--dataset", "synthetic", "--jobs", "0", "--store", str(tmp_path)])
    assert "--jobs 0" in err
    err = _fail(capsys, ["build", "forensics", "--dataset", "cifar100", "--jobs", "2", "--store", str(tmp_path)])
    assert "'forensics'" in err and "--jobs 2" in err
    err = _fail(capsys, ["build", "forensics", "--dataset", "cifar100", "--scheduler", "tcp://127.0.0.1:9",
                         "--store", str(tmp_path)])
    assert "'forensics'" in err and "--scheduler" in err
    assert not (tmp_path / "cache").exists()


def test_a_results_folder_that_cannot_be_written_is_found_before_any_training(capsys, tmp_path, monkeypatch):
    from akt_core import runner

    monkeypatch.setattr(runner, "train_model", lambda *a, **k: pytest.fail("trained before checking the store"))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "smoke").write_text("a file where the results folder should be")
    err = _fail(capsys, ["train", "Res8(cln)", "--dataset", "synthetic", "--profile", "smoke", "--store", str(tmp_path)])
    assert f"{tmp_path / 'results' / 'smoke'} cannot be written" in err and "nothing was trained" in err


def test_a_full_disk_is_reported_as_no_space(capsys, tmp_path, monkeypatch):
    import shutil

    import torch

    from akt_core import cli, store

    def full(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(store.torch, "save", full)
    monkeypatch.setattr(store.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 0))
    monkeypatch.setattr(cli, "run", lambda argv: store.atomic_torch_save(torch.zeros(1), tmp_path / "x.pt"))
    err = _fail(capsys, ["train", "Res8(cln)"])
    assert err.startswith(f"akt: error: no space left on the device writing {tmp_path / 'x.pt'}")
    assert not list(tmp_path.iterdir())  # no temporary file is left behind


def test_weights_lists_the_published_models_with_and_without_filters(capsys):
    """`akt weights` with no filter lists every manifest row (it raised a KeyError without filters)."""
    from pathlib import Path

    import pandas as pd

    data = Path(__file__).resolve().parent.parent / "data"
    manifest = pd.read_csv(data / "weights" / "manifest.csv")
    for argv, n in ((["weights"], len(manifest)),
                    (["weights", "--dataset", "cifar10"], int((manifest["dataset"] == "cifar10").sum()))):
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--store", str(data)])
        assert exc.value.code == 0
        assert capsys.readouterr().out.splitlines()[-1].startswith(f"{n} models, ")


def test_a_closed_pipe_ends_quietly_with_the_sigpipe_status():
    """`akt weights | head -1`: the reader leaves early; no BrokenPipeError traceback on stderr. The reader
    here is `true`, which leaves before akt has imported torch, so every run closes the pipe first."""
    import subprocess
    import sys
    from pathlib import Path

    data = Path(__file__).resolve().parent.parent / "data"
    proc = subprocess.run(f"'{sys.executable}' -m akt_core.cli weights --store '{data}' | true; "
                          "echo ${PIPESTATUS[0]}", shell=True, capture_output=True, text=True, executable="/bin/bash")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "141"  # 128 + SIGPIPE, as `head`'s writer would report
