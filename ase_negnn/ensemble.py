"""NEGNN deep ensembles: the mean of independently initialised members, with their spread as a standard deviation
calibrated on the validation split.

The model class is :class:`ase_negnn.models.NEGNNEnsemble` and its training :func:`ase_negnn.training.train_ensemble`
(``ase-negnn train --ensemble N``); this module gathers both names.
"""

from __future__ import annotations

from .models import NEGNNEnsemble
from .training import train_ensemble

__all__ = ["NEGNNEnsemble", "train_ensemble"]
