"""Installation of ase-negnn: self-supervised atomic representations and NEGNNs for ASE."""

from pathlib import Path

from setuptools import setup

here = Path(__file__).parent
readme = (here / "README.md").read_text(encoding="utf-8") if (here / "README.md").exists() else ""

setup(
    name="ase-negnn",
    version="0.1.0",
    description="Self-supervised atomic representations (SSAR/SSMR) and node-embedding GNNs for ASE",
    long_description=readme,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",  # what CI tests (.ci/run); tests/test_imports.py runs vermin against it
    packages=["ase_negnn", "ase_negnn.plugins"],
    package_dir={"ase_negnn": "ase_negnn", "ase_negnn.plugins": "plugins"},
    package_data={
        "ase_negnn": ["py.typed", "data/*.json", "data/*.md", "data/*.extxyz", "pretrained/*/*.pt", "pretrained/*/*.json"],
    },
    include_package_data=True,
    install_requires=[
        "torch>=2.4",
        "torch-geometric>=2.6",
        "matgl>=4.1",
        "lightning>=2.4",
        "ase>=3.26",
        "pymatgen>=2024.1",
        "phonopy>=2.26",
        "seekpath>=2.1",  # phonopy's automatic band path (auto_band_structure)
        "click>=8.1",
        "numpy>=1.26",
        "scikit-learn>=1.4",
        "tqdm>=4.66",
    ],
    extras_require={
        # The docs packages too: tests/test_docs.py builds the API reference (docs/, warnings as errors).
        "test": ["pytest>=8", "hypothesis>=6.100", "matplotlib>=3.8", "sphinx>=8.1", "sphinx-click>=6.2", "furo>=2025.12",
                 "myst-parser>=5.2", "vermin>=1.6"],
        # API reference: python -m sphinx -W --keep-going -b html docs docs/_build/html
        "docs": ["sphinx>=8.1", "sphinx-click>=6.2", "furo>=2025.12", "myst-parser>=5.2"],
        # Benchmarks only (benchmarks/README.md): peers and plotting, never needed by the library.
        # dscribe 2.1 needs benchmarks/_dscribe_compat.py under ASE >= 3.27; matminer pins pandas < 3.
        "bench": ["vesin>=0.3", "matplotlib>=3.8", "chgnet>=0.3", "dscribe>=2.1", "matminer>=0.9"],
    },
    entry_points={
        "console_scripts": ["ase-negnn = ase_negnn.cli:cli"],
        # ASE's plugin discovery (ase >= 3.26): `ase info --plugins` lists the "negnn" calculator.
        "ase.plugins": ["ase_negnn = ase_negnn.plugins"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Chemistry",
        "Topic :: Scientific/Engineering :: Physics",
    ],
)
