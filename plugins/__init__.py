"""Integration glue (ASE plugin entry point, phonopy, matgl), installed as ``ase_negnn.plugins``."""
