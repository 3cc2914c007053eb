"""Profiles are data: every profile covers every dataset, and its words say what its numbers are."""
import pytest

from akt_core import AktError, data, profiles


@pytest.mark.parametrize("name", list(profiles.PROFILES))
def test_every_profile_covers_every_dataset(name):
    p = profiles.get(name)
    for ds in data.DATASETS:
        cfg = p.as_config(ds)
        assert cfg["epochs"] == p.epochs_for(ds) >= 1
        assert cfg["n_train"] == p.n_train_for(ds)
        assert cfg["batch_size"] == p.batch_size


def test_settings_in_words():
    r = profiles.get("reduced")
    assert r.settings("mnist") == "10,000 training images, 6 epochs, batch 128, full test set"
    assert r.settings("cifar10") == "10,000 training images, 10 epochs, batch 128, full test set"
    assert profiles.get("paper").settings("cifar100") == "all training images, 80 epochs, batch 256, full test set"
    assert profiles.get("smoke").settings("mnist") == "1,000 training images, 1 epoch, batch 128, 300 test images"
    assert r.label_for("cifar10").startswith("REDUCED profile") and "10 epochs" in r.label_for("cifar10")


def test_paper_profile_is_the_papers_protocol():
    p = profiles.get("paper")
    assert [p.epochs_for(d) for d in ("mnist", "cifar10", "cifar100")] == [20, 80, 80]
    assert p.batch_size == 256 and p.n_test is None
    assert all(p.n_train_for(d) is None for d in ("mnist", "cifar10", "cifar100"))


def test_unknown_profile_names_the_choices():
    with pytest.raises(AktError, match="smoke.*reduced.*paper|choose"):
        profiles.get("huge")
