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
import ase_negnn.readers as readers_mod
from ase_negnn.data import GraphDataset, load_graph_dataset
from ase_negnn.readers import read_structures
from ase_negnn.splits import split_indices
from ase_negnn.graph import CrystalGraphConverter

from conftest import CIF_DIR, DATA_DIR, MP_SMALL


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


# -- magnetic CIFs (MAGNDATA .mcif) ------------------------------------------------------------------------------
MCIF_DIR = DATA_DIR / "mcifs"

# |moment| (μB) of single atoms, as in the paper's magmom.csv (rows `<id>_<formula>_<element>_<Z>_<site>,<|m|>`;
# its site counts from 1 in pymatgen's CifParser(path).parse_structures(primitive=False)[0] order: atom = site - 1).
PAPER_MAGMOMS = {
    "1.160": [(0, "U", 1.7)],  # 1.160_UP_U_92_1,1.7
    "0.9": [(0, "Gd", 7.14177849), (1, "Gd", 7.14177849)],  # 0.9_GdB4_Gd_64_1,7.14177849 and 0.9_GdB4_Gd_64_2
    "0.609": [(4, "Mn", 1.710116955)],  # 0.609_NdMnO3_Mn_25_5,1.710116955
    "0.633": [(4, "Fe", 1.967706332)],  # 0.633_KFeS2_Fe_26_5,1.967706332 (monoclinic, beta = 113.3°)
    "1.34": [(0, "Ho", 6.683561925)],  # 1.34_HoAuGe_Ho_67_1,6.683561925 (gamma = 120°, a = 2b)
}


def unit_axes(atoms: Atoms) -> np.ndarray:
    cell = atoms.cell.array
    return cell / np.linalg.norm(cell, axis=1)[:, None]


@pytest.mark.parametrize("mid", sorted(PAPER_MAGMOMS))
def test_read_magnetic_cif_matches_paper_magmoms(mid):
    atoms = readers_mod.read_magnetic_cif(MCIF_DIR / f"{mid}.mcif")
    assert atoms.info["id"] == mid and atoms.pbc.all()
    magmoms, vectors = atoms.arrays["magmoms"], atoms.arrays["magmom_vectors"]
    assert magmoms.shape == (len(atoms),) and vectors.shape == (len(atoms), 3)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), magmoms)
    for index, element, expected in PAPER_MAGMOMS[mid]:
        assert atoms[index].symbol == element
        assert magmoms[index] == pytest.approx(expected, abs=1e-6)
        # one magnetic species: all its atoms are symmetry-equivalent here, the others carry no moment
        magnetic = np.array(atoms.get_chemical_symbols()) == element
        np.testing.assert_allclose(magmoms[magnetic], expected, atol=1e-6)
        assert (magmoms[~magnetic] == 0).all()


def test_read_magnetic_cif_non_orthogonal_cells():
    # magCIF gives the moment in μB along the unit crystal axes; its Cartesian length needs the cell's angles.
    kfes2 = readers_mod.read_magnetic_cif(MCIF_DIR / "0.633.mcif")  # Fe1 0.85(21) 0.00000 -1.47(17), beta = 113.3°
    a, _, c = unit_axes(kfes2)
    np.testing.assert_allclose(kfes2.arrays["magmom_vectors"][4], 0.85 * a - 1.47 * c, atol=1e-9)
    assert kfes2.arrays["magmoms"][4] - np.hypot(0.85, 1.47) > 0.25  # ignoring the angle would give 1.698 μB
    # HoAuGe: Ho1 -3.4 -1.7 6. with a = 2b, gamma = 120°. Operation 2 (-x+1/2,-2x+y,z+1/2) mixes a and b; the paper's
    # row 1.34_HoAuGe_Ho_67_3,7.498666548 came from a pymatgen that applied it to the unit-axis components (fixed in
    # pymatgen-core PR #76). A symmetry operation cannot change a moment's length: all four Ho atoms have 6.6836 μB.
    hoauge = readers_mod.read_magnetic_cif(MCIF_DIR / "1.34.mcif")
    a, b, c = unit_axes(hoauge)
    ho = hoauge.arrays["magmom_vectors"][:4]
    np.testing.assert_allclose(ho[0], -3.4 * a - 1.7 * b + 6.0 * c, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(ho, axis=1), 6.683561925, atol=1e-6)
    # all four are ±(-2.55, -1.47) in the plane and ±6 along c: one axis, only the signs change
    np.testing.assert_allclose(np.abs(ho), np.abs(ho[[0, 0, 0, 0]]), atol=1e-9)


def test_read_structures_mcif_directory():
    from ase_negnn.labels import extract_labels

    images = read_structures(MCIF_DIR)
    assert [a.info["id"] for a in images] == ["0.609", "0.633", "0.9", "1.160", "1.34"]
    assert [len(a) for a in images] == [20, 16, 20, 8, 12]
    assert all("magmoms" in a.arrays and "magmom_vectors" in a.arrays for a in images)
    by_id = {a.info["id"]: a for a in images}
    for mid, sites in PAPER_MAGMOMS.items():
        for index, _, expected in sites:
            assert by_id[mid].arrays["magmoms"][index] == pytest.approx(expected, abs=1e-6)
    single = read_structures(MCIF_DIR / "0.9.mcif")
    assert len(single) == 1 and single[0].arrays["magmoms"][0] == pytest.approx(7.14177849, abs=1e-6)
    labels = extract_labels(images, "magmoms", "site")
    assert labels.task == "site" and [len(y) for y in labels.y] == [len(a) for a in images]
    for y, atoms in zip(labels.y, images):
        np.testing.assert_allclose(y, atoms.arrays["magmoms"])
    with pytest.raises(FileNotFoundError):
        readers_mod.read_magnetic_cif(MCIF_DIR / "missing.mcif")


def _edit_mcif(src: str, old: str, new: str) -> str:
    text = (MCIF_DIR / src).read_text()
    assert old in text
    return text.replace(old, new, 1)


def test_read_magnetic_cif_survives_typos_before_the_cell(tmp_path):
    # MAGNDATA files with a broken comment (e.g. 0.220: an orphan ';' text field in a loop; 1.666: an unclosed one)
    # are read from _cell_length_a on, which holds everything the structure needs.
    reference = readers_mod.read_magnetic_cif(MCIF_DIR / "1.160.mcif")
    cases = {
        "orphan": _edit_mcif("1.160.mcif", "_exptl_crystal_magnetic_properties_details\n", ""),
        "unclosed": _edit_mcif("1.160.mcif", "1k-maximal magnetic symmetry (3 possible)\n;\n",
                               "1k-maximal magnetic symmetry (3 possible)\n"),
        "kvector": _edit_mcif("1.160.mcif", "k1 [0 0 1]", "k1 [0 0 1 ]"),
    }
    for name, text in cases.items():
        path = tmp_path / f"{name}.mcif"
        path.write_text(text)
        atoms = readers_mod.read_magnetic_cif(path)
        assert atoms.info["id"] == name
        np.testing.assert_allclose(atoms.positions, reference.positions)
        np.testing.assert_allclose(atoms.arrays["magmom_vectors"], reference.arrays["magmom_vectors"])


@pytest.mark.parametrize("case", ["empty", "truncated", "typo", "unknown_label", "disordered", "partial", "bad_cell",
                                  "no_moments"])
def test_read_magnetic_cif_refuses_bad_files(tmp_path, case):
    text = (MCIF_DIR / "1.160.mcif").read_text()
    texts = {
        "empty": "",
        "truncated": text[: text.index("_atom_site_fract_x")],
        "typo": _edit_mcif("1.160.mcif", "_cell_length_a                 5.58900", "_cell_length_a    5..58900"),
        "unknown_label": text.rstrip() + "\nP9 0.0 0.0 1.0 0,0,mz\n",
        "disordered": _edit_mcif("1.160.mcif", "P1 P 0.50000 0.50000 0.50000 1",
                                 "P1 P 0.50000 0.50000 0.50000 0.5\nS1 S 0.50000 0.50000 0.50000 0.5"),
        "partial": _edit_mcif("1.160.mcif", "P1 P 0.50000 0.50000 0.50000 1", "P1 P 0.50000 0.50000 0.50000 0.5"),
        "bad_cell": _edit_mcif("1.160.mcif", "_cell_angle_gamma              90.00", "_cell_angle_gamma   100.00"),
        "no_moments": text[: text.index("loop_\n_atom_site_moment")],
    }
    reasons = {"empty": "empty", "truncated": "invalid CIF", "typo": "5..58900", "unknown_label": "P9",
               "disordered": "share one position", "partial": "partially occupied", "bad_cell": "contradict",
               "no_moments": "not a magnetic CIF|no _atom_site_moment"}
    path = tmp_path / f"{case}.mcif"
    path.write_text(texts[case])
    with pytest.raises(ValueError, match=f"{case}.mcif") as info:
        readers_mod.read_magnetic_cif(path)
    assert info.match(reasons[case])
    with pytest.raises(ValueError, match=f"{case}.mcif"):
        read_structures(tmp_path)


def test_read_magnetic_cif_refuses_disagreeing_pymatgen(monkeypatch):
    # stands in for a pymatgen that transforms the moments differently (releases before pymatgen-core PR #76)
    original = readers_mod._mcif_moments
    monkeypatch.setattr(readers_mod, "_mcif_moments", lambda *args: original(*args) * 1.1)
    with pytest.raises(ValueError, match=r"1\.160\.mcif: pymatgen .* expands the moments differently"):
        readers_mod.read_magnetic_cif(MCIF_DIR / "1.160.mcif")


def test_graph_memo_converts_each_structure_once_and_never_serves_a_stale_graph(mp_structures, encoder):
    """Same structures again: hits, identical graphs; a moved atom or another graph setting: a new graph."""
    import torch

    from ase_negnn.data import GraphMemo, build_graphs
    from ase_negnn.graph import CrystalGraphConverter

    memo = GraphMemo()
    conv = encoder.graph_converter()
    first = build_graphs(mp_structures[:6], conv, memo=memo)
    again = build_graphs(mp_structures[:6], conv, memo=memo)
    assert (memo.built, memo.hits) == (6, 6)
    assert all(torch.equal(first.arrays[k], again.arrays[k]) for k in first.arrays)
    moved = mp_structures[0].copy()
    moved.positions[0] += 0.01
    memo.get(moved, conv)
    hard = CrystalGraphConverter(smooth_width=None)
    memo.get(mp_structures[0], hard)
    assert memo.built == 8 and len(memo) == 8
    fresh = conv(moved)
    assert torch.equal(memo.get(moved, conv).edge_index, fresh.edge_index)


def test_readers_old_home_warns_and_answers():
    """read_magnetic_cif / example_structures moved from ase_negnn.data to ase_negnn.readers: the old name still works
    for one release, with a DeprecationWarning naming the new place; an unknown name is still an AttributeError."""
    with pytest.warns(DeprecationWarning, match=r"ase_negnn\.readers\.read_magnetic_cif"):
        old = data_mod.read_magnetic_cif
    assert old is readers_mod.read_magnetic_cif
    with pytest.warns(DeprecationWarning, match="example_structures"):
        assert len(data_mod.example_structures()) == len(readers_mod.example_structures())
    with pytest.raises(AttributeError):
        data_mod.no_such_reader  # noqa: B018
