"""``python -m ase_negnn``: the ``ase-negnn`` command line."""

from .cli import cli

if __name__ == "__main__":
    cli(prog_name="ase-negnn")
