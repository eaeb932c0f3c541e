"""ASE calculator: a NEGNN potential (energy, forces, stress) plus any number of NEGNN property models.

>>> from ase.build import bulk
>>> from ase_negnn.calculator import NEGNNCalculator
>>> atoms = bulk("NaCl", "rocksalt", a=5.64)
>>> atoms.calc = NEGNNCalculator(models=["mp-eform", "mp-gap"])
>>> atoms.calc.get_property("band_gap", atoms)  # doctest: +SKIP

Units are ASE's: eV, eV/Å, stress in eV/Å³ as Voigt (xx, yy, zz, yz, xz, xy), magnetic moments in μB. Property
models add their target as a property name (``formation_energy_per_atom`` in eV/atom, ``band_gap`` in eV, …); a
per-atom model of ``magmoms`` provides ``magmoms`` (N,) and ``magmom`` (their sum). ``descriptors`` returns the SSAR
(per-atom embeddings of the chosen encoder layers).
"""

from __future__ import annotations

import threading

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.outputs import Properties, all_outputs
from ase.stress import full_3x3_to_voigt_6_stress

__all__ = ["CALCULATOR_NAME", "NEGNNCalculator", "register_calculator"]

#: The calculator's name for ASE (``get_calculator_class``, the ``calculator`` column of an ASE db, the plugin).
CALCULATOR_NAME = "negnn"

_POTENTIAL_PROPERTIES = ("energy", "free_energy", "forces", "stress")
_POTENTIAL_OUTPUTS = (*_POTENTIAL_PROPERTIES, "energies")  # energies: per-atom energies (eV), summing to energy
_MAGMOM_TARGETS = ("magmoms", "magmom", "initial_magmoms")


def _describe(model) -> str:
    return model if isinstance(model, str) else str(getattr(model, "target", model))


class NEGNNCalculator(Calculator):
    """NEGNN potential and property models as an ASE calculator.

    Parameters
    ----------
    potential : str, path or NEGNN, optional
        A potential-task NEGNN (directory or bundled name). Without it, ``energy``/``forces``/``stress`` are not
        available, and the calculator can ride along with another one for properties only.
    models : sequence of str, path or NEGNN
        Property models (graph or site task), e.g. ``["mp-eform", "mp-gap"]``. Each adds its target as a property.
    device : str
        Torch device, ``"cpu"`` or ``"cuda"``.
    descriptor_layers : int, str or list
        Encoder layers returned by the ``descriptors`` property (see :func:`~ase_negnn.descriptor.parse_layers`).
    encoder : str or path
        Encoder used for ``descriptors`` (bundled name or directory).
    batch_size : int
        Structures per batch in :meth:`predict_many`.

    Notes
    -----
    As ASE's own calculators, the state follows ``parameters``: ``calc.set(models=[...])`` (or ``potential=``,
    ``device=``, ``encoder=``, ``descriptor_layers=``) reloads what changed and clears the results. Results are cached
    by ASE: asking for another property of unchanged atoms reuses them; any change of positions, cell, numbers or pbc
    recomputes. One calculation is done at a time (a lock makes the calculator safe to share between threads). The
    calculator pickles and deep-copies (``copy.deepcopy(atoms)`` with it attached): the copy carries its own models.
    ``import ase_negnn`` registers the name ``negnn`` for ``ase.calculators.calculator.get_calculator_class``.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "magmoms", "magmom",
                              "descriptors"]
    default_parameters = {
        "potential": None,
        "models": (),
        "device": "cpu",
        "descriptor_layers": "all",
        "encoder": "default",
        "batch_size": 32,
    }
    nolabel = True
    _MODEL_PARAMETERS = ("potential", "models", "device")
    _DESCRIPTOR_PARAMETERS = ("descriptor_layers", "encoder", "device")

    def __init__(self, potential=None, models=(), device: str = "cpu", descriptor_layers="all",
                 encoder="default", batch_size: int = 32, **kwargs):
        self._lock = threading.RLock()
        self._instances: dict[str, object] = {}  # NEGNN objects passed in, by the name kept in parameters
        self.potential, self.property_models, self._descriptor, self._ready = None, {}, None, False
        self._derived: dict[str, str] = {}  # extra output (e.g. "band_gap_std") -> its model's property
        Calculator.__init__(self, potential=potential, models=models, device=device,
                            descriptor_layers=descriptor_layers, encoder=encoder, batch_size=batch_size, **kwargs)
        self._load_models()
        self._ready = True

    def _get_name(self) -> str:
        return CALCULATOR_NAME  # the name ASE's db and get_calculator_class use

    def set(self, **kwargs) -> dict:
        """ASE's ``set``: store the parameters, then reload the models or the descriptor if their settings changed."""
        with self._lock:
            kwargs = self._normalise(kwargs)
            changed = Calculator.set(self, **kwargs)
            if self.__dict__.get("_ready"):  # during __init__ the models are loaded once, after all parameters
                if any(k in changed for k in self._MODEL_PARAMETERS):
                    self._load_models()
                if any(k in changed for k in self._DESCRIPTOR_PARAMETERS):
                    self._descriptor = None
            return changed

    def _normalise(self, kwargs: dict) -> dict:
        """Plain, JSON-friendly parameters (names or paths); NEGNN instances are kept aside under their name."""
        out = dict(kwargs)
        if "potential" in out and out["potential"] is not None:
            out["potential"] = self._name_of(out["potential"])
        if "models" in out:
            models = out["models"]
            if isinstance(models, (str, bytes)) or not hasattr(models, "__iter__"):
                models = [models]
            out["models"] = [self._name_of(m) for m in models]
        for key, cast in (("device", str), ("encoder", str), ("batch_size", int)):
            if key in out:
                out[key] = cast(out[key])
        return out

    def _name_of(self, model) -> str:
        if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            return str(model)
        name = _describe(model)
        self._instances[name] = model
        return name

    def _load(self, spec):
        from .models import load_model

        return load_model(self._instances.get(spec, spec), device=self.parameters.device)

    def _load_models(self) -> None:
        """(Re)build the potential and property models from ``parameters``; clears the results."""
        p = self.parameters
        potential = None
        if p.potential is not None:
            potential = self._load(p.potential)
            if potential.task != "potential":
                raise ValueError(f"potential {p.potential!r} is a {potential.task} model, not a potential")
        property_models: dict[str, object] = {}
        for spec in p.models:
            model = self._load(spec)
            if model.task == "potential":
                raise ValueError(f"model {spec!r} is a potential: pass it as potential=…")
            key = "magmoms" if model.task == "site" and model.target in _MAGMOM_TARGETS else model.target
            if key in property_models or key in _POTENTIAL_PROPERTIES:
                raise ValueError(f"two models provide the property {key!r}")
            property_models[key] = model
        # extra outputs (a kernel model's or an ensemble's "<target>_std") answer from their model's calculation
        derived = {f"{key}{name[len(m.target):]}": key for key, m in property_models.items()
                   for name in getattr(m, "outputs", (m.target,)) if name != m.target}
        self.potential, self.property_models, self._derived = potential, property_models, derived
        props = ["descriptors", *property_models, *derived]
        if potential is not None:
            props[:0] = list(_POTENTIAL_OUTPUTS)
        if "magmoms" in property_models:
            props.append("magmom")
        self.implemented_properties = props
        self.reset()

    @property
    def model_outputs(self) -> list[str]:
        """Every property the property models provide, extra outputs included (e.g. ``band_gap``, ``band_gap_std``)."""
        return [name for key in self.property_models
                for name in (key, *(d for d, base in self._derived.items() if base == key))]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_lock", None)  # a lock cannot be copied; the copy gets its own
        state["_descriptor"] = None  # rebuilt on demand
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # -- ASE API ---------------------------------------------------------------------------------------------------
    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        """Compute the requested ``properties`` (all potential outputs together, property models on demand)."""
        properties = ["energy"] if properties is None else list(properties)
        with self._lock:
            Calculator.calculate(self, atoms, properties, system_changes)
            atoms = self.atoms
            unknown = [p for p in properties if p not in self.implemented_properties]
            if unknown:
                raise PropertyNotImplementedError(self._why_missing(unknown[0]))
            if any(p in _POTENTIAL_OUTPUTS for p in properties):
                self._calculate_potential(atoms, "stress" in properties)
            for p in properties:
                if p in ("magmoms", "magmom"):
                    self._calculate_model("magmoms", atoms)
                elif p in self.property_models:
                    self._calculate_model(p, atoms)
                elif p in self._derived:
                    self._calculate_model(self._derived[p], atoms)
                elif p == "descriptors":
                    self.results["descriptors"] = self._descriptors().create(atoms)

    def get_property(self, name, atoms=None, allow_calculation=True):
        """ASE's ``get_property`` under the calculator's lock, with a message saying what a missing property needs.

        ASE compares, resets and stores ``self.atoms``/``self.results`` in ``get_property`` before ``calculate``; both
        must happen under one lock, or a thread can reset the state another thread is calculating with.
        """
        with self._lock:
            if name not in self.implemented_properties:
                raise PropertyNotImplementedError(self._why_missing(name))
            return Calculator.get_property(self, name, atoms, allow_calculation)

    def _why_missing(self, name: str) -> str:
        if name in ("magmoms", "magmom"):
            need = "a per-atom NEGNN of magnetic moments (models=[…], trained with --task site --target magmoms)"
        elif name in _POTENTIAL_OUTPUTS:
            need = "a NEGNN potential (potential=…, trained with --task potential)"
        else:
            need = f"a property model whose target is {name!r} (models=[…])"
        return f"{name!r} needs {need}; this calculator provides {self.implemented_properties}"

    def export_properties(self) -> Properties:
        """ASE's ``Properties`` of the standard results only (custom keys such as ``band_gap`` are not ASE outputs)."""
        return Properties({k: v for k, v in self.results.items() if k in all_outputs})

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _check(self, model, atoms, name: str) -> None:
        from .elements import check_numbers

        check_numbers(atoms.numbers)  # names atomic numbers outside the element table (0 = 'X', > 100)
        missing = model.unsupported_elements(atoms.numbers)
        if missing:
            raise ValueError(f"{name}: element(s) {', '.join(missing)} are not in this model's training data")

    def _calculate_potential(self, atoms, want_stress: bool) -> None:
        periodic = bool(np.all(atoms.pbc))
        if want_stress and not periodic:
            raise PropertyNotImplementedError("stress needs a periodic cell in all three directions")
        self._check(self.potential, atoms, "potential")
        row = self.potential.predict([atoms], batch_size=1, compute_stress=periodic)[0]
        self.results["energy"] = self.results["free_energy"] = float(row["energy"])
        self.results["energies"] = np.asarray(row["energies"], dtype=float)
        self.results["forces"] = np.asarray(row["forces"], dtype=float)
        if periodic:
            self.results["stress"] = full_3x3_to_voigt_6_stress(np.asarray(row["stress"], dtype=float))

    def _calculate_model(self, key: str, atoms) -> None:
        if key not in self.property_models:
            raise PropertyNotImplementedError(f"no model for {key!r}")
        if key in self.results:
            return
        model = self.property_models[key]
        self._check(model, atoms, key)
        row = model.predict([atoms], batch_size=1)[0]
        value = row[model.target]
        if key == "magmoms":
            self.results["magmoms"] = np.asarray(value, dtype=float)
            self.results["magmom"] = float(np.sum(value))
        else:
            self.results.update(self._outputs(key, model, row))

    @staticmethod
    def _outputs(key: str, model, row: dict) -> dict:
        """``{key: value, key + suffix: extra output}`` of one prediction row (suffix e.g. ``_std``)."""
        out = {}
        for name in getattr(model, "outputs", (model.target,)):
            v = row[name]
            out[key + name[len(model.target):]] = float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=float)
        return out

    def _descriptors(self):
        if self._descriptor is None:
            from .descriptor import SSAR

            self._descriptor = SSAR(self.parameters.descriptor_layers, self.parameters.encoder,
                                    device=self.parameters.device)
        return self._descriptor

    def get_descriptors(self, atoms=None) -> np.ndarray:
        """SSAR of ``atoms``: ``(n_atoms, n_features)``."""
        return self.get_property("descriptors", atoms)

    def predict_many(self, structures, properties=None, progress: bool = False) -> list[dict]:
        """Evaluate many structures in batches (faster than one calculator call each).

        Parameters
        ----------
        structures : sequence of ase.Atoms
        properties : sequence of str, optional
            Default: every property model, plus energy/forces/stress when a potential is set.

        Returns
        -------
        list of dict
            One dict per structure with the requested properties (stress as Voigt 6).
        """
        structures = list(structures)
        if properties is None:
            properties = [*self.property_models, *(("energy", "energies", "forces", "stress") if self.potential else ())]
        out = [{} for _ in structures]
        bs = self.parameters.batch_size
        with self._lock:
            if any(p in _POTENTIAL_OUTPUTS for p in properties):
                if self.potential is None:
                    raise PropertyNotImplementedError("no potential model: energy/forces/stress unavailable")
                for s in structures:
                    self._check(self.potential, s, "potential")
                rows = self.potential.predict(structures, batch_size=bs, progress=progress,
                                              compute_stress=all(np.all(s.pbc) for s in structures))
                for d, r in zip(out, rows):
                    d.update(energy=r["energy"], free_energy=r["energy"], energies=r["energies"], forces=r["forces"])
                    if "stress" in r:
                        d["stress"] = full_3x3_to_voigt_6_stress(r["stress"])
            for key in dict.fromkeys(self._derived.get(k, k) for k in properties):
                if key in _POTENTIAL_OUTPUTS:
                    continue
                key = "magmoms" if key == "magmom" else key
                if key not in self.property_models:
                    raise PropertyNotImplementedError(f"no model for {key!r}; models: {list(self.property_models)}")
                model = self.property_models[key]
                for s in structures:
                    self._check(model, s, key)
                for d, r in zip(out, model.predict(structures, batch_size=bs, progress=progress)):
                    if key == "magmoms":
                        d[key] = r[model.target]
                        d["magmom"] = float(np.sum(r[model.target]))
                    else:
                        d.update(self._outputs(key, model, r))
        return out


def register_calculator() -> None:
    """Make ``ase.calculators.calculator.get_calculator_class("negnn")`` return :class:`NEGNNCalculator`.

    ASE's name lookup ignores plugins; ``import ase_negnn`` calls this (idempotent; nothing here imports torch).
    """
    from ase.calculators import calculator as ase_calculator

    if CALCULATOR_NAME not in ase_calculator.external_calculators:
        ase_calculator.register_calculator_class(CALCULATOR_NAME, NEGNNCalculator)
