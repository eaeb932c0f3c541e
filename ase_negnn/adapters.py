"""scikit-learn transformer and matminer-style featurizer around :class:`~ase_negnn.descriptor.SSMR`.

matminer is optional: when it is installed, :class:`SSMRFeaturizer` subclasses its ``BaseFeaturizer`` (so
``featurize_dataframe`` and friends work); otherwise it offers the same core methods on its own.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from . import PAPER_CITATION
from .deprecation import renamed_argument
from .descriptor import SSMR
from .elements import CGCNN_CITATION

__all__ = ["SSMRTransformer", "SSMRFeaturizer"]

try:  # pragma: no cover - depends on the environment
    from matminer.featurizers.base import BaseFeaturizer as _FeaturizerBase
except ImportError:  # pragma: no cover
    _FeaturizerBase = object


class SSMRTransformer(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: a list of structures → SSMR matrix ``(n_structures, n_features)``.

    Parameters
    ----------
    layers : int, str or sequence of int
        Encoder layers (see :func:`~ase_negnn.descriptor.parse_layers`).
    encoder : str or path
        Encoder name or directory (``model=``: deprecated name).
    pooling : {"sum", "mean"}
        Pooling over atoms.
    batch_size : int
        Structures per inference batch.
    device : str
        Torch device.

    Notes
    -----
    Follows the scikit-learn contract: ``__init__`` only stores parameters; the encoder is loaded in
    :meth:`fit` (``descriptor_``), so ``clone``/``set_params`` work, and the transformer can sit in a
    ``Pipeline`` in front of e.g. ``KernelRidge``.
    """

    def __init__(self, *, layers="all", encoder="default", pooling="mean", batch_size=64, device="cpu", model=None):
        self.layers = layers
        self.encoder = encoder
        self.model = model  # deprecated name of encoder (scikit-learn stores every parameter as given)
        self.pooling = pooling
        self.batch_size = batch_size
        self.device = device

    def fit(self, X=None, y=None):
        """Load the encoder (no learning happens: the representation is self-supervised)."""
        encoder = renamed_argument(self.model, "model", self.encoder, "encoder", "default")
        self.descriptor_ = SSMR(self.layers, encoder, self.pooling, self.batch_size, self.device)
        self.n_features_out_ = self.descriptor_.get_number_of_features()
        return self

    def transform(self, X):
        """SSMR of each structure in ``X`` (a list of ``Atoms``/``Structure``)."""
        check_is_fitted(self, "descriptor_")
        return self.descriptor_.create(list(X))

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "descriptor_")
        return np.asarray([f"ssmr_{self.pooling}_{n}" for n in self.descriptor_.feature_labels()], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = False
        tags.requires_fit = True
        return tags


class SSMRFeaturizer(_FeaturizerBase):
    """matminer-style featurizer: ``featurize(structure)`` → list of SSMR values.

    Parameters
    ----------
    layers, encoder, pooling, batch_size, device
        As :class:`SSMRTransformer` (``model=``: deprecated name of ``encoder``).
    """

    def __init__(self, layers="all", encoder="default", pooling="mean", batch_size=64, device="cpu", *, model=None):
        encoder = renamed_argument(model, "model", encoder, "encoder", "default")
        self.layers, self.encoder, self.pooling = layers, encoder, pooling
        self.batch_size, self.device = batch_size, device
        self._descriptor = None

    @property
    def descriptor(self) -> SSMR:
        if self._descriptor is None:
            self._descriptor = SSMR(self.layers, self.encoder, self.pooling, self.batch_size, self.device)
        return self._descriptor

    def fit(self, X=None, y=None, **kwargs):
        """Nothing to learn; present for matminer's API."""
        return self

    def featurize(self, structure) -> list[float]:
        """SSMR of one structure (pymatgen ``Structure`` or ASE ``Atoms``) as a list of floats."""
        return self.descriptor.create(structure).tolist()

    def featurize_many(self, entries, ignore_errors=False, return_errors=False, pbar=True):
        """Batched featurisation of many structures (one encoder pass per batch, not per structure)."""
        if ignore_errors or return_errors:
            return [self._safe(e, return_errors) for e in entries]
        return self.descriptor.create(list(entries), progress=bool(pbar)).tolist()

    def _safe(self, entry, return_errors):
        try:
            row = self.featurize(entry)
            return row + [""] if return_errors else row
        except (ValueError, TypeError) as ex:
            nan = [float("nan")] * self.descriptor.get_number_of_features()
            return nan + [str(ex)] if return_errors else nan

    def feature_labels(self) -> list[str]:
        return [f"ssmr_{self.pooling}_{n}" for n in self.descriptor.feature_labels()]

    def citations(self) -> list[str]:
        return [PAPER_CITATION, CGCNN_CITATION]

    def implementors(self) -> list[str]:
        return ["ase-negnn developers"]
