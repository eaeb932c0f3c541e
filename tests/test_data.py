"""Reading structures from files, directories and databases; the on-disk graph cache."""

from __future__ import annotations

import gzip
import logging
import shutil

import numpy as np
import pytest
import torch
from ase import Atoms

import ase_negnn.data as data_mod
from ase_negnn.data import GraphDataset, load_graph_dataset, read_structures, split_indices
from ase_negnn.graph import CrystalGraphConverter

from conftest import CIF_DIR, MP_SMALL


def assert_same_structures(a: list[Atoms], b: list[Atoms], atol: float = 1e-6) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.get_chemical_formula() == y.get_chemical_formula()
        np.testing.assert_allclose(x.positions, y.positions, atol=atol)
        np.testing.assert_allclose(x.cell.array, y.cell.array, atol=atol)
        assert (x.pbc == y.pbc).all()


# -- reading -----------------------------------------------------------------------------------------------------
def test_read_extxyz(mp_structures):
    images = read_structures(MP_SMALL)
    assert len(images) == 40
    assert images[0].info["mp_id"] == "mp-1" and len(images[0]) == 1
    assert all({"mp_id", "formation_energy_per_atom", "band_gap"} <= set(a.info) for a in images)
    assert all(a.pbc.all() for a in images)
    assert_same_structures(images, mp_structures)


def test_read_str_path_and_passthrough(si):
    assert len(read_structures(str(MP_SMALL))) == 40
    assert read_structures(si)[0] is si
    assert read_structures([si, si]) == [si, si]


def test_read_gzip(tmp_path, mp_structures):
    gz = tmp_path / "mp_small.extxyz.gz"
    with open(MP_SMALL, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    images = read_structures(gz)
    assert_same_structures(images, mp_structures)
    assert [a.info["mp_id"] for a in images] == [a.info["mp_id"] for a in mp_structures]


def test_read_cif_directory(mp_structures):
    images = read_structures(CIF_DIR)
    stems = sorted(p.stem for p in CIF_DIR.glob("*.cif"))
    assert len(images) == 3 and [a.info["id"] for a in images] == stems
    by_id = {a.info["mp_id"]: a for a in mp_structures}
    for a in images:
        ref = by_id[a.info["id"]]
        assert a.get_chemical_formula() == ref.get_chemical_formula()
        np.testing.assert_allclose(a.cell.cellpar(), ref.cell.cellpar(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(a.get_volume(), ref.get_volume(), rtol=1e-5)


def test_read_ase_database(tmp_path, mp_structures):
    from ase.db import connect

    path = tmp_path / "structures.db"
    with connect(path) as db:
        for a in mp_structures[:5]:
            db.write(a, mp_id=a.info["mp_id"], band_gap=a.info["band_gap"])
    images = read_structures(path)
    assert_same_structures(images, mp_structures[:5])
    assert [a.info["mp_id"] for a in images] == [a.info["mp_id"] for a in mp_structures[:5]]
    assert [a.info["id"] for a in images] == [1, 2, 3, 4, 5]
    assert images[3].info["band_gap"] == pytest.approx(mp_structures[3].info["band_gap"], abs=1e-12)


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.extxyz"):
        read_structures(tmp_path / "nothere.extxyz")
    with pytest.raises(FileNotFoundError, match="nothere"):
        load_graph_dataset(tmp_path / "nothere", CrystalGraphConverter())


def test_malformed_file_names_it(tmp_path):
    bad = tmp_path / "broken.extxyz"
    bad.write_text("3\nLattice=\"1 0 0 0 1 0 0 0 1\" Properties=species:S:1:pos:R:3\nCu 0 0\n")
    with pytest.raises(ValueError, match="broken.extxyz"):
        read_structures(bad)


@pytest.mark.parametrize(
    "text", ["this is not a CIF at all\n", "data_nothing\n_cell_length_a 4.0\n"], ids=["garbage", "no-atoms"]
)
def test_malformed_file_in_directory_names_it(tmp_path, text):
    """A file of a directory that is unreadable, or holds no structure, is an error naming it (not skipped)."""
    shutil.copy(CIF_DIR / "mp-12782.cif", tmp_path / "good.cif")
    (tmp_path / "zzz_bad.cif").write_text(text)
    with pytest.raises(ValueError, match="zzz_bad.cif"):
        read_structures(tmp_path)
    (tmp_path / "zzz_bad.cif").unlink()
    assert len(read_structures(tmp_path)) == 1


def test_file_without_structures(tmp_path):
    empty = tmp_path / "empty.cif"
    empty.write_text("data_nothing\n_cell_length_a 4.0\n")
    with pytest.raises(ValueError, match="empty.cif holds no structures"):
        read_structures(empty)


def test_empty_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("no structures here")
    with pytest.raises(ValueError, match="holds no structure files"):
        read_structures(tmp_path)


# -- graph cache -------------------------------------------------------------------------------------------------
@pytest.fixture
def counting_reader(monkeypatch):
    """Count calls to read_structures made by load_graph_dataset."""
    calls = []
    real = data_mod.read_structures

    def reader(source):
        calls.append(source)
        return real(source)

    monkeypatch.setattr(data_mod, "read_structures", reader)
    return calls


def test_dataset_matches_converter(tmp_path, mp_structures):
    conv = CrystalGraphConverter()
    ds = load_graph_dataset(MP_SMALL, conv, tmp_path, progress=False)
    assert len(ds) == 40 and ds.meta["skipped"] == 0
    assert ds.meta["ids"] == [a.info["mp_id"] for a in mp_structures]
    for i in (0, 17, 39):
        g, ref = ds[i], conv(mp_structures[i])
        assert g.num_nodes == ref.num_nodes and int(g.idx) == i
        for key in ("z", "pos", "cell", "edge_index", "edge_shift"):
            assert torch.equal(getattr(g, key), getattr(ref, key)), key


def test_cache_is_reused(tmp_path, monkeypatch):
    conv = CrystalGraphConverter()
    first = load_graph_dataset(MP_SMALL, conv, tmp_path, progress=False)
    files = list(tmp_path.glob("*.graphs.pt"))
    assert len(files) == 1 and files[0].name.startswith("mp_small-")

    def fail(source):
        raise AssertionError("read_structures called although a valid cache exists")

    monkeypatch.setattr(data_mod, "read_structures", fail)
    second = load_graph_dataset(MP_SMALL, conv, tmp_path, progress=False)
    assert len(second) == len(first) and second.meta["ids"] == first.meta["ids"]
    for key in GraphDataset._KEYS:
        assert torch.equal(second.arrays[key], first.arrays[key]), key


def test_cache_with_other_settings_not_reused(tmp_path, counting_reader):
    ds8 = load_graph_dataset(MP_SMALL, CrystalGraphConverter(8.0), tmp_path, progress=False)
    ds6 = load_graph_dataset(MP_SMALL, CrystalGraphConverter(6.0), tmp_path, progress=False)
    ds_all = load_graph_dataset(MP_SMALL, CrystalGraphConverter(8.0, None), tmp_path, progress=False)
    assert len(counting_reader) == 3
    assert len(list(tmp_path.glob("*.graphs.pt"))) == 3
    assert ds6.meta["graph"]["cutoff"] == 6.0 and ds_all.meta["graph"]["max_neighbors"] is None
    assert ds6.arrays["edge_index"].shape[1] < ds8.arrays["edge_index"].shape[1] < ds_all.arrays["edge_index"].shape[1]
    load_graph_dataset(MP_SMALL, CrystalGraphConverter(6.0), tmp_path, progress=False)
    assert len(counting_reader) == 3  # the 6 Å cache is found again


def test_cache_of_changed_file_not_reused(tmp_path, counting_reader, mp_structures):
    import ase.io

    src = tmp_path / "s.extxyz"
    ase.io.write(src, mp_structures[:4])
    cache = tmp_path / "cache"
    assert len(load_graph_dataset(src, CrystalGraphConverter(), cache, progress=False)) == 4
    ase.io.write(src, mp_structures[:6])
    assert len(load_graph_dataset(src, CrystalGraphConverter(), cache, progress=False)) == 6
    assert len(counting_reader) == 2


def test_corrupted_cache_is_rebuilt(tmp_path, counting_reader, caplog):
    conv = CrystalGraphConverter()
    first = load_graph_dataset(MP_SMALL, conv, tmp_path, progress=False)
    (cache,) = tmp_path.glob("*.graphs.pt")
    cache.write_bytes(b"this is not a torch file" * 10)
    with caplog.at_level(logging.WARNING, logger="ase_negnn.data"):
        rebuilt = load_graph_dataset(MP_SMALL, conv, tmp_path, progress=False)
    assert len(counting_reader) == 2
    assert "corrupt" in caplog.text and "rebuilding" in caplog.text
    assert torch.equal(rebuilt.arrays["edge_index"], first.arrays["edge_index"])
    assert len(GraphDataset.load(cache)) == 40  # the file was rewritten and is valid again


def test_cache_load_errors(tmp_path):
    path = tmp_path / "x.graphs.pt"
    torch.save({"version": 999, "meta": {}, "arrays": {}}, path)
    with pytest.raises(ValueError, match="unknown layout"):
        GraphDataset.load(path)
    path.write_bytes(b"\x00\x01")
    with pytest.raises(ValueError, match="unreadable or corrupt"):
        GraphDataset.load(path)
    with pytest.raises(ValueError, match="lack"):
        GraphDataset({"z": torch.zeros(1)})


def test_unconvertible_structures_are_skipped(tmp_path, si, nacl):
    import ase.io

    overlap = Atoms("Cu2", positions=[[0, 0, 0], [0.02, 0, 0]], cell=[5, 5, 5], pbc=True)
    src = tmp_path / "mixed.extxyz"
    ase.io.write(src, [si, overlap, nacl])
    with pytest.warns(UserWarning, match=r"skipped 1 structure.*1: atoms 0 and 1 overlap"):
        ds = load_graph_dataset(src, CrystalGraphConverter(), None, progress=False)
    assert len(ds) == 2 and ds.meta["skipped"] == 1 and ds.meta["ids"] == ["0", "2"]
    ase.io.write(src, [overlap])
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no usable structures"):
        load_graph_dataset(src, CrystalGraphConverter(), None, progress=False)


def test_split_indices():
    train, val = split_indices(40, 0.05, seed=0)
    assert len(val) == 2 and len(train) == 38
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(40))
    again = split_indices(40, 0.05, seed=0)
    assert (again[0] == train).all() and (again[1] == val).all()
    assert len(split_indices(2, 0.01)[1]) == 1 and len(split_indices(3, 0.99)[0]) == 1
    with pytest.raises(ValueError, match="at least 2"):
        split_indices(1, 0.5)
    with pytest.raises(ValueError, match="val_fraction"):
        split_indices(10, 1.0)
