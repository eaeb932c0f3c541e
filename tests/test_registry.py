"""One registry for encoders and models: installed in the user's directory (never site-packages), found by name."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ase_negnn import registry
from ase_negnn.cli import cli
from ase_negnn.models import available_models, load_model
from ase_negnn.pretrained import available_encoders, load_encoder


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASE_NEGNN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_install_puts_an_encoder_in_the_user_directory_and_finds_it_by_name(home, encoder_dir):
    bundled_before = sorted(p.name for p in registry.bundled_root().iterdir())
    res = CliRunner().invoke(cli, ["install", str(encoder_dir), "my-encoder"])
    assert res.exit_code == 0, res.output
    assert (home / "my-encoder" / "model.pt").exists()
    assert sorted(p.name for p in registry.bundled_root().iterdir()) == bundled_before  # the package is untouched
    assert "my-encoder" in available_encoders() and "my-encoder" not in available_models()
    assert load_encoder("my-encoder").n_layers == load_encoder(encoder_dir).n_layers
    from ase_negnn.io import directory_mode

    assert (home / "my-encoder").stat().st_mode & 0o777 == directory_mode()


def test_installed_name_shadows_a_bundled_one_and_models_resolve_too(home, property_model_dirs):
    registry.install(property_model_dirs["band_gap"], "mp-gap")
    assert registry.resolve("mp-gap", "NEGNN") == home / "mp-gap"
    assert load_model("mp-gap").target == "band_gap"
    assert "mp-eform" in available_models()  # the bundled one is still listed


def test_install_refuses_what_does_not_load_and_unknown_names_list_the_known(home, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in registry.MODEL_FILES:
        (bad / f).write_bytes(b"garbage")
    res = CliRunner().invoke(cli, ["install", str(bad), "x"])
    assert res.exit_code == 1 and "Error" in res.output and not (home / "x").exists()
    with pytest.raises(ValueError, match=r"unknown encoder 'nope'; known: \[.*'default'"):
        load_encoder("nope")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_saved_model_directories_follow_the_umask(tmp_path, umask):
    """mkdtemp makes 0o700 directories; a saved encoder must be as readable as the umask says (shared run folders)."""
    import os

    from ase_negnn.pretrained import random_encoder

    old = os.umask(umask)
    try:
        random_encoder(0, n_layers=1, width=4).save(tmp_path / "enc")
        registry.install(tmp_path / "enc", "copy", tmp_path / "root")
    finally:
        os.umask(old)
    for d in (tmp_path / "enc", tmp_path / "root" / "copy"):
        assert d.stat().st_mode & 0o777 == 0o777 & ~umask, d
        assert (d / "model.pt").stat().st_mode & 0o777 == 0o666 & ~umask, d
