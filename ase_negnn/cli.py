"""Command-line interface ``ase-negnn`` (click); commands parse input and call the library."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click
import numpy as np

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ase-negnn")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bars (--no-progress on every command); results, warnings and errors still print.")
@click.pass_context
def cli(ctx, quiet):
    """Self-supervised atomic representations (SSAR/SSMR) and NEGNN models for ASE."""
    if quiet:  # click's own mechanism: defaults for the subcommand's options
        ctx.default_map = {name: {"no_progress": True} for name, command in cli.commands.items()
                           if any(param.name == "no_progress" for param in command.params)}


@cli.command()
@click.option("--data", "data", required=True, type=click.Path(exists=True, path_type=Path),
              help="Structures: any ASE-readable file (extxyz, CIF, …, also .gz/.xz), a directory of CIFs, or an ASE db.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Run directory (checkpoints, metrics.csv, encoder/, card.json).")
@click.option("--objective", type=click.Choice(["predictive", "contrastive"]), default="predictive", show_default=True,
              help="predictive: masked group/period + distance bin; contrastive: two augmented views, NT-Xent.")
@click.option("--atom-target", type=click.Choice(["group_period", "element_vector"]), default="group_period",
              show_default=True, help="Atom head of the predictive objective.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Number of epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True, help="Structures per batch.")
@click.option("--n-layers", type=click.IntRange(min=1), default=5, show_default=True, help="Graph-convolution layers.")
@click.option("--layers", "old_layers", type=click.IntRange(min=1), default=None, hidden=True,
              help="Deprecated name of --n-layers.")
@click.option("--width", type=click.IntRange(min=1), default=64, show_default=True, help="Embedding width.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True, help="Adam learning rate (cosine decay).")
@click.option("--mask-rate", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.15, show_default=True,
              help="Fraction of atoms masked per structure.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              show_default=True, help="Held-out fraction for validation metrics.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (split, init, masks).")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoints/last.ckpt.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Graph cache directory [default: OUT/cache].")
@click.option("--accelerator", default="auto", show_default=True, help="Lightning accelerator (cpu, gpu, auto).")
@click.option("--devices", default="auto", show_default=True, help="Lightning devices (e.g. 4 for four GPUs).")
@click.option("--num-nodes", type=click.IntRange(min=1), default=1, show_default=True, help="Nodes for multi-node DDP.")
@click.option("--strategy", default="auto", show_default=True, help="Lightning strategy (auto, ddp, …).")
@click.option("--num-workers", type=click.IntRange(min=0), default=0, show_default=True, help="DataLoader workers.")
@click.option("--max-structures", type=click.IntRange(min=2), default=None, help="Use only the first N structures (trials).")
@click.option("--graph", "graph", type=click.Choice(["smooth", "hard"]), default="smooth", show_default=True,
              help="smooth: continuous k-nearest graph (C¹ descriptors); hard: the paper's 12 nearest neighbours.")
@click.option("--smooth-width", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Width in Å of the smooth graph's neighbour step [default: 0.25].")
@click.option("--init-encoder", default=None, help="Start from this encoder's weights (bundled name or directory).")
@click.option("--stop-after", type=click.IntRange(min=1), default=None,
              help="Stop after N epochs of the --epochs-long learning-rate schedule (finish later with --resume).")
@click.option("--no-progress", is_flag=True, help="Disable progress bars.")
def pretrain(data, out, objective, atom_target, epochs, batch_size, n_layers, old_layers, width, lr, mask_rate,
             val_fraction, seed,
             resume, cache_dir, accelerator, devices, num_nodes, strategy, num_workers, max_structures, graph,
             smooth_width, init_encoder, stop_after, no_progress):
    """Pretrain an encoder without labels (Kong et al. SSL) and export it to OUT/encoder.

    \b
    Example:
      ase-negnn pretrain --data mp36k.extxyz --out runs/pred --epochs 15
      ase-negnn pretrain --data mp36k.extxyz --out runs/pred --epochs 15 --resume
    Several GPUs / nodes (Lightning DDP):
      ase-negnn pretrain --data mp.extxyz --out runs/ddp --accelerator gpu --devices 4 --strategy ddp
    """
    from .graph import SMOOTH_WIDTH
    from .pretraining import pretrain as run

    devices = int(devices) if str(devices).isdigit() else devices
    if old_layers is not None:
        if n_layers != 5:
            raise click.UsageError("--layers is the deprecated name of --n-layers; give --n-layers only")
        click.echo("warning: pretrain --layers is deprecated and will be removed; use --n-layers (elsewhere --layers "
                   "selects layers, e.g. 0-5)", err=True)
        n_layers = old_layers
    try:
        path = run(data, out, objective=objective, epochs=epochs, batch_size=batch_size, n_layers=n_layers, width=width,
                   lr=lr, mask_rate=mask_rate, atom_target=atom_target, val_fraction=val_fraction, seed=seed,
                   resume=resume, cache_dir=cache_dir, accelerator=accelerator, devices=devices,
                   num_nodes=num_nodes, strategy=strategy, num_workers=num_workers, progress=not no_progress,
                   max_structures=max_structures, init_encoder=init_encoder, stop_after=stop_after,
                   smooth_width=None if graph == "hard" else (smooth_width or SMOOTH_WIDTH))
    except (FileNotFoundError, FileExistsError, ValueError) as ex:
        raise click.ClickException(str(ex)) from ex
    click.echo(f"encoder written to {path}")


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output file: .npy (array) or .csv (with id, and atom columns for --pooling none).")
@click.option("--layers", default="all", show_default=True,
              help="Layers: 'all', a digit string like '012', a range '0-5', a list '0,2,5' or one index.")
@click.option("--pooling", default="mean", show_default=True,
              help="SSMR statistic(s) over atoms: mean, sum, max, min, std, or several joined by '+' "
                   "(e.g. mean+max+min); 'none' writes per-atom SSAR rows.")
@click.option("--encoder", default="default", show_default=True, help="Bundled encoder name or saved encoder directory.")
@click.option("--model", "old_model", default=None, hidden=True, help="Deprecated name of --encoder.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Structures per batch.")
@click.option("--device", default="cpu", show_default=True, help="Torch device (cpu, cuda).")
@click.option("--no-progress", is_flag=True, help="Disable the progress bar.")
def embed(input_path, out, layers, pooling, encoder, old_model, batch_size, device, no_progress):
    """Write SSMR (per structure) or SSAR (per atom, --pooling none) descriptors of INPUT.

    \b
    INPUT is any ASE-readable file, a directory of CIFs or an ASE database.
    Example:
      ase-negnn embed structures.extxyz --layers 0-5 --pooling mean --out ssmr.npy
      ase-negnn embed cifs/ --layers 3 --pooling none --out ssar.csv
    """
    from .readers import read_structures
    from .descriptor import SSAR, SSMR
    from .io import structure_ids, write_table

    if out.suffix.lower() not in (".npy", ".csv"):
        raise click.BadParameter(f"--out must end in .npy or .csv, got {out.name!r}", param_hint="--out")
    if old_model is not None:
        if encoder != "default":
            raise click.UsageError("--model is the deprecated name of --encoder; give --encoder only")
        click.echo("warning: --model is deprecated and will be removed; use --encoder", err=True)
        encoder = old_model
    try:
        images = read_structures(input_path)
        ids = structure_ids(images)
        if pooling == "none":
            desc = SSAR(layers, encoder, batch_size=batch_size, device=device)
            per_atom = desc.create(images, progress=not no_progress)
            values = np.concatenate(per_atom)
            index = [(ids[i], j, atoms[j].symbol) for i, atoms in enumerate(images) for j in range(len(atoms))]
            write_table(out, values, desc.feature_labels(), index, ("id", "atom_index", "symbol"))
        else:
            desc = SSMR(layers, encoder, pooling=pooling, batch_size=batch_size, device=device)
            values = desc.create(images, progress=not no_progress)
            write_table(out, values, desc.feature_labels(), [(i,) for i in ids], ("id",))
    except (FileNotFoundError, ValueError, TypeError) as ex:
        raise click.ClickException(str(ex)) from ex
    click.echo(f"wrote {values.shape[0]} x {values.shape[1]} descriptors to {out}")


def _devices(value):
    return int(value) if str(value).isdigit() else value


@cli.command("install")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("name")
@click.option("--package", is_flag=True,
              help="Write into the package's bundled directory (maintainers: scripts/) instead of the user's.")
def install_cmd(source, name, package):
    """Install a trained encoder or model directory under NAME, so that NAME works wherever a bundled name does.

    \b
    Example:
      ase-negnn install runs/gap/model my-gap       # then: NEGNNCalculator(models=["my-gap"])
    The default place is $ASE_NEGNN_HOME or ~/.local/share/ase_negnn; an installed name shadows a bundled one.
    """
    from . import registry

    try:
        if registry.class_of(source) in ("NEGNN", "KernelModel", "NEGNNEnsemble"):
            from .models import load_model

            load_model(source)  # refuse to install something that does not load
        else:
            from .pretrained import load_encoder

            load_encoder(source)
        dest = registry.install(source, name, registry.bundled_root() if package else None)
    except (FileNotFoundError, ValueError) as ex:
        raise click.ClickException(str(ex)) from ex
    click.echo(f"installed {source} as {name!r} in {dest}")


@cli.command("train")
@click.option("--data", "data", required=True, type=click.Path(exists=True, path_type=Path),
              help="Labelled structures: ASE file (extxyz with info/arrays/calculator results), CIF dir or ASE db.")
@click.option("--target", required=True, help="Label key: atoms.info / calculator result (graph), per-atom array (site); "
              "for potentials the model name (energy and forces are read from the calculator results).")
@click.option("--task", type=click.Choice(["graph", "site", "potential"]), default="graph", show_default=True,
              help="graph: one value per structure; site: per atom (e.g. magmoms, μB); potential: energy/forces/stress.")
@click.option("--method", type=click.Choice(["negnn", "krr"]), default="negnn", show_default=True,
              help="negnn: a GNN on the encoder's SSAR; krr: SSMR + kernel ridge with a calibrated standard deviation "
                   "(<target>_std), hyper-parameters by exact leave-one-out; seconds, best on small data.")
@click.option("--ensemble", type=click.IntRange(min=2), default=None, metavar="N",
              help="Graph task: train N NEGNNs with different initialisations on one split (OUT/members/k) and save "
                   "their ensemble as OUT/model: mean and a <target>_std calibrated on the validation split.")
@click.option("--labels", "labels_csv", type=click.Path(exists=True, path_type=Path), default=None,
              help="CSV with an id column (id, mp_id, material_id) and a TARGET column, joined to structure ids.")
@click.option("--id-column", default=None, help="Id column of --labels [default: first of id, mp_id, material_id].")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Run directory (model/, checkpoints/, metrics.csv, test_metrics.json, parity.png, card.json).")
@click.option("--split", default="0.8,0.1,0.1", show_default=True, help="Train,validation,test fractions.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split and the initialisation.")
@click.option("--max-epochs", type=click.IntRange(min=1), default=100, show_default=True, help="Epoch limit.")
@click.option("--early-stopping", type=click.IntRange(min=0), default=20, show_default=True,
              help="Patience in epochs on the validation MAE (0: off).")
@click.option("--from-scratch", is_flag=True, help="Baseline: identical network with a random, trainable encoder.")
@click.option("--encoder", default="default", show_default=True, help="Bundled encoder name or encoder directory.")
@click.option("--layers", default=None, help="Encoder layers fed to the GNN ('all', '0-5', '0,2', 3) "
              "[default: all; 0 for potentials].")
@click.option("--freeze-encoder", is_flag=True,
              help="Keep the pretrained encoder fixed (the paper's NEGNN); default: fine-tune it with the GNN.")
@click.option("--fine-tune", is_flag=True, hidden=True, help="Deprecated: fine-tuning is the default now.")
@click.option("--n-conv", type=click.IntRange(min=0), default=3, show_default=True, help="Trainable CGConv layers.")
@click.option("--width", type=click.IntRange(min=1), default=64, show_default=True, help="Width of the trainable layers.")
@click.option("--pooling", type=click.Choice(["mean", "sum"]), default="mean", show_default=True,
              help="Graph task: mean (intensive) or sum (extensive) over atoms.")
@click.option("--cutoff", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Potential graph cutoff in Å [default: 5].")
@click.option("--nonnegative", is_flag=True, help="Predictions are never negative (softplus output; e.g. band gaps).")
@click.option("--units", default="", help="Units of the target, recorded in the model card (e.g. eV/atom).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Structures per batch.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="AdamW learning rate (cosine decay to 1 %).")
@click.option("--encoder-lr-scale", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Learning-rate multiplier of the fine-tuned pretrained encoder (e.g. 0.1: it moves 10x slower than "
                   "the new layers); 1 = one rate for all.")
@click.option("--init-from", default=None, metavar="MODEL",
              help="Start from a trained NEGNN (bundled name such as mp-eform, or model directory): its architecture "
                   "and weights, trained further or fine-tuned on a new target of the same task.")
@click.option("--loss", type=click.Choice(["mse", "l1"]), default="mse", show_default=True,
              help="Graph/site loss on the standardised target: squared or absolute error.")
@click.option("--energy-weight", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Potential loss weight of the energy per atom (eV/atom)².")
@click.option("--force-weight", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Potential loss weight of the forces (eV/Å)².")
@click.option("--stress-weight", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Potential loss weight of the stress (eV/Å³)², where structures have one.")
@click.option("--max-train", type=click.IntRange(min=1), default=None, help="Use only N training structures (learning curves).")
@click.option("--allow-missing-sites", is_flag=True,
              help="Site task: NaN per-atom labels mark unlabelled atoms (left out of loss and metrics).")
@click.option("--test-data", type=click.Path(exists=True, path_type=Path), default=None,
              help="Fixed test set (file/dir/db); --split is then train,val of --data (e.g. 0.9,0.1).")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoints/last.ckpt.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Graph cache directory.")
@click.option("--accelerator", default="auto", show_default=True, help="Lightning accelerator (cpu, gpu, auto).")
@click.option("--devices", default="auto", show_default=True, help="Lightning devices.")
@click.option("--strategy", default="auto", show_default=True, help="Lightning strategy (auto, ddp, …).")
@click.option("--num-nodes", type=click.IntRange(min=1), default=1, show_default=True, help="Nodes for multi-node DDP.")
@click.option("--layer-weights", type=click.Choice(["equal", "loo"]), default=None,
              help="--method krr: weigh the SSMR layers equally (the paper; default) or choose a weight per layer "
                   "(per pooling statistic and layer with several statistics; 0-4, 0 drops it) by leave-one-out.")
@click.option("--no-progress", is_flag=True, help="Disable progress bars.")
@click.pass_context
def train_cmd(ctx, data, target, task, method, ensemble, labels_csv, id_column, out, split, seed, max_epochs, early_stopping, from_scratch,
              encoder, layers, freeze_encoder, fine_tune, n_conv, width, pooling, cutoff, nonnegative, units, batch_size, lr, encoder_lr_scale,
              init_from, loss, energy_weight, force_weight, stress_weight, max_train, allow_missing_sites, test_data, resume, cache_dir, accelerator, devices, strategy, num_nodes, layer_weights, no_progress):
    """Train a NEGNN (default) or an SSMR kernel model (--method krr) on labelled structures; writes the model and
    its test MAE/RMSE/R².

    \b
    Examples:
      ase-negnn train --data mp.extxyz --target formation_energy_per_atom --units eV/atom --out runs/eform
      ase-negnn train --data mp.extxyz --target band_gap --from-scratch --out runs/gap-scratch
      ase-negnn train --data cifs/ --labels tc.csv --target Tc --units K --out runs/tc
      ase-negnn train --data measured.extxyz --target band_gap --method krr --units eV --out runs/gap-krr
      ase-negnn train --data Si_training.extxyz --test-data Si_test.extxyz --split 0.9,0.1 \\
                      --task potential --target energy --out runs/si
    """
    if method == "krr" and ensemble:
        raise click.UsageError("--ensemble trains NEGNNs; a kernel model (--method krr) has its own std")
    if method == "krr":
        _train_krr(ctx, data, target, task, labels_csv, id_column, out, split, seed, encoder, layers, pooling, units,
                   test_data, no_progress, layer_weights)
        return
    if layer_weights is not None:
        raise click.UsageError("--layer-weights: a kernel-model option (--method krr), not used by a NEGNN")
    from .training import train as run

    if fine_tune:
        click.echo("warning: --fine-tune is the default now and will be removed; use --freeze-encoder for the "
                   "paper's frozen NEGNN", err=True)
    if fine_tune and freeze_encoder:
        raise click.UsageError("--fine-tune and --freeze-encoder contradict each other")
    if ensemble:
        from .ensemble import train_ensemble

        if task != "graph":
            raise click.UsageError(f"--ensemble is for graph-task property models, not --task {task}")
        run = partial(train_ensemble, n_members=ensemble)
    try:
        card = run(data, target, task=task, out=out, split=split, seed=seed, max_epochs=max_epochs,
                   early_stopping=early_stopping, from_scratch=from_scratch, encoder=encoder, layers=layers,
                   freeze_encoder=freeze_encoder, n_conv=n_conv, width=width, pooling=pooling, cutoff=cutoff,
                   units=units, batch_size=batch_size, lr=lr, labels_csv=labels_csv, id_column=id_column,
                   energy_weight=energy_weight, force_weight=force_weight, stress_weight=stress_weight,
                   max_train=max_train, allow_missing_sites=allow_missing_sites, test_data=test_data, resume=resume, cache_dir=cache_dir, accelerator=accelerator,
                   devices=_devices(devices), strategy=strategy, num_nodes=num_nodes, progress=not no_progress,
                   nonnegative=nonnegative, encoder_lr_scale=encoder_lr_scale, init_from=init_from, loss=loss)
    except (FileNotFoundError, FileExistsError, ValueError) as ex:
        raise click.ClickException(str(ex)) from ex
    if not card:  # a DDP worker process: rank 0 reports
        return
    click.echo(f"model written to {out / 'model'}; test: {format_metrics(card['test_metrics'], card.get('units'))}")
    if ensemble:
        u = card["test_uncertainty"]
        click.echo(f"ensemble of {ensemble}: {target}_std covers {100 * u['coverage_68']:.0f} % (68 % interval) and "
                   f"{100 * u['coverage_90']:.0f} % (90 %) of the test targets, Spearman(|error|, std) {u['spearman']:.2f}")


#: train options that only a NEGNN uses (refused with --method krr rather than silently ignored)
_NEGNN_ONLY = ("max_epochs", "early_stopping", "from_scratch", "freeze_encoder", "fine_tune", "n_conv", "width",
               "cutoff", "nonnegative", "batch_size", "lr", "encoder_lr_scale", "init_from", "loss", "energy_weight", "force_weight", "stress_weight",
               "max_train", "allow_missing_sites", "resume", "cache_dir", "accelerator", "devices", "strategy",
               "num_nodes")


def _train_krr(ctx, data, target, task, labels_csv, id_column, out, split, seed, encoder, layers, pooling, units,
               test_data, no_progress, layer_weights=None):
    from click.core import ParameterSource

    from .kernel import train_kernel_model

    given = [f"--{n.replace('_', '-')}" for n in _NEGNN_ONLY
             if ctx.get_parameter_source(n) not in (ParameterSource.DEFAULT, None)]
    if given:
        raise click.UsageError(f"{', '.join(given)}: NEGNN options, not used by --method krr")
    if task != "graph":
        raise click.UsageError(f"--method krr predicts one value per structure (--task graph), not --task {task}")
    try:
        card = train_kernel_model(data, target, out, encoder=encoder, layers=layers or "all", pooling=pooling,
                                  units=units, split=split, seed=seed, test_data=test_data, labels_csv=labels_csv,
                                  id_column=id_column, layer_weights=layer_weights, progress=not no_progress)
    except (FileNotFoundError, FileExistsError, ValueError) as ex:
        raise click.ClickException(str(ex)) from ex
    u = card["test_uncertainty"]
    if card.get("layer_weights"):
        ls = card["layer_search"]
        click.echo("layer weights (leave-one-out): " + ", ".join(f"{k}: {v:g}" for k, v in card["layer_weights"].items())
                   + f"; LOO MAE on the {ls['rows']} search structures {ls['loo_mae_weighted']:.4g} "
                     f"(equal weights {ls['loo_mae_equal_weights']:.4g})")
    click.echo(f"kernel model ({card['kernel']}, γ {card['gamma']:.0e}, α {card['alpha']:.0e}, "
               f"{card['approximation']}, fitted in {card['fit_seconds']:.1f} s) written to {out / 'model'}; "
               f"test: {format_metrics(card['test_metrics'], card.get('units'))}; {target}_std covers "
               f"{100 * u['coverage_68']:.0f} % (68 % interval) and {100 * u['coverage_90']:.0f} % (90 %) of the test "
               f"targets, Spearman(|error|, std) {u['spearman']:.2f}")


def format_metrics(metrics: dict, units: str | None) -> str:
    """``MAE 0.649 eV, RMSE 1.12 eV, R² 0.439 (n = 40)``: every error with its unit (potentials: eV/atom, eV/Å)."""
    parts, n = [], None
    for key, value in metrics.items():
        prefix, _, stat = key.rpartition("_") if "_" in key else ("", "", key)
        if stat == "n":
            n = n or value
            continue
        unit = {"energy_per_atom": "eV/atom", "force": "eV/Å", "stress": "eV/Å³"}.get(prefix, units or "")
        label = {"mae": "MAE", "rmse": "RMSE", "r2": "R²"}.get(stat, stat)
        name = f"{prefix.replace('_', ' ')} {label}".strip()
        parts.append(f"{name} {value:.4g}" + (f" {unit}" if unit and stat != "r2" else ""))
    return ", ".join(parts) + (f" (n = {n})" if n is not None else "")


@cli.command()
@click.argument("model")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output: .csv (one row per structure, or per atom for site models) or .db (ASE database).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Structures per batch.")
@click.option("--device", default="cpu", show_default=True, help="Torch device (cpu, cuda).")
@click.option("--no-progress", is_flag=True, help="Disable the progress bar.")
def predict(model, input_path, out, batch_size, device, no_progress):
    """Predict with MODEL (bundled name such as mp-eform, or a model directory) for every structure of INPUT.

    \b
    Units are the model's (see its card): e.g. eV/atom for mp-eform, eV for mp-gap; potentials give
    energy (eV), forces (eV/Å, .db only) and stress (eV/Å³, Voigt xx yy zz yz xz xy).
    Elements a potential never saw in training are refused; for property models a warning names them.
    Example:
      ase-negnn predict mp-gap structures.extxyz --out gaps.csv
      ase-negnn predict runs/si/model relaxed.traj --out energies.db
    """
    from .readers import read_structures
    from .io import structure_ids
    from .models import load_model
    from .predict import write_predictions

    if out.suffix.lower() not in (".csv", ".db"):
        raise click.BadParameter(f"--out must end in .csv or .db, got {out.name!r}", param_hint="--out")
    try:
        net = load_model(model, device=device)
        images = read_structures(input_path)
        unseen = {sid: m for sid, a in zip(structure_ids(images), images) if (m := net.unsupported_elements(a.numbers))}
        if unseen:  # no silent extrapolation: a potential has no reference energy for them, property models warn
            sid, missing = next(iter(unseen.items()))
            what = f"structure {sid}: element(s) {', '.join(missing)} are not in this model's training data"
            if net.task == "potential":
                raise ValueError(what)
            click.echo(f"warning: {len(unseen)} structure(s) have elements outside this model's training data "
                       f"(e.g. {what}); their predictions are extrapolations", err=True)
        rows = net.predict(images, batch_size=batch_size, progress=not no_progress)
        write_predictions(out, net, images, rows)
    except (FileNotFoundError, ValueError, TypeError) as ex:
        raise click.ClickException(str(ex)) from ex
    click.echo(f"wrote predictions of {net.target} for {len(images)} structure(s) to {out}")


@cli.command("select")
@click.argument("model")
@click.argument("input_path", metavar="CANDIDATES", type=click.Path(exists=True, path_type=Path))
@click.option("-n", "n", type=click.IntRange(min=1), required=True, help="How many structures to pick.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="CSV of the picks, best first: pick, index (in CANDIDATES), id, prediction and its std.")
@click.option("--structures-out", type=click.Path(path_type=Path), default=None,
              help="Also write the picked structures (extxyz), to label and add to the training data.")
@click.option("--no-progress", is_flag=True, help="Disable the progress bar.")
def select_cmd(model, input_path, n, out, structures_out, no_progress):
    """Pick N of CANDIDATES to label next for the kernel model MODEL (active learning).

    \b
    Greedy integrated variance reduction: each pick is the candidate whose label would most reduce the model's
    expected error summed over all candidates, given the training data and the picks before it. It prefers
    structures that stand for many others over isolated outliers, and spreads a batch out (at most 5,000
    candidates: narrow larger sets with screen --rank PROP:std first).
    Loop: train --method krr on what you have, select, label the picks, add them, train again.
    Example:
      ase-negnn train --data labelled.extxyz --target band_gap --method krr --units eV --out runs/gap-krr
      ase-negnn select runs/gap-krr/model candidates.extxyz -n 50 --out picks.csv --structures-out next.extxyz
    """
    import csv

    import ase.io

    from .io import atomic_open, structure_ids
    from .models import load_model
    from .readers import read_structures

    if out.suffix.lower() != ".csv":
        raise click.BadParameter(f"--out must end in .csv, got {out.name!r}", param_hint="--out")
    try:
        net = load_model(model)
        if not hasattr(net, "select"):
            raise ValueError(f"select needs a kernel model (train --method krr): {model} is a {type(net).__name__}, "
                             "whose predictions carry no posterior covariance to select by")
        images = read_structures(input_path)
        Xs = net.features(images, progress=not no_progress)
        picks = net.select_features(Xs, n)
        mean, std = net.predict_features(Xs[picks])
    except (FileNotFoundError, ValueError, TypeError) as ex:
        raise click.ClickException(str(ex)) from ex
    ids = structure_ids(images)
    with atomic_open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pick", "index", "id", net.target, f"{net.target}_std"])
        for k, (i, m, sd) in enumerate(zip(picks, mean, std), start=1):
            w.writerow([k, int(i), ids[i], f"{m:.6g}", f"{sd:.6g}"])
    if structures_out is not None:
        with atomic_open(structures_out, "w") as fh:
            ase.io.write(fh, [images[i] for i in picks], format="extxyz")
    click.echo(f"picked {len(picks)} of {len(images)} candidate(s) for {net.target} -> {out}"
               + (f" and {structures_out}" if structures_out else ""))


def _model_list(value: str | None) -> list[str]:
    return [m.strip() for m in value.split(",") if m.strip()] if value else []


@cli.command("relax")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option("--potential", required=True, help="NEGNN potential: model directory or bundled name.")
@click.option("--models", default="", help="Property models predicted on each relaxed structure, comma separated "
              "(e.g. mp-eform,mp-gap).")
@click.option("--fmax", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
              help="Force criterion in eV/Å.")
@click.option("--steps", type=click.IntRange(min=1), default=500, show_default=True, help="Maximum optimiser steps.")
@click.option("--cell/--no-cell", default=False, show_default=True, help="Also relax the cell (FrechetCellFilter).")
@click.option("--optimizer", type=click.Choice(["FIRE", "BFGS", "LBFGS"], case_sensitive=False), default="FIRE",
              show_default=True, help="ASE optimiser.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Relaxed structures (extxyz, with energy/forces/stress and predicted properties); trajectories "
                   "go to OUT_STEM_traj/<id>.traj.")
@click.option("--device", default="cpu", show_default=True, help="Torch device.")
@click.option("--no-progress", is_flag=True, help="Disable the progress bar.")
def relax_cmd(input_path, potential, models, fmax, steps, cell, optimizer, out, device, no_progress):
    """Relax every structure of INPUT with a NEGNN potential (ASE optimisers); properties ride along.

    \b
    Example:
      ase-negnn relax POSCAR --potential runs/si/model --cell --fmax 0.02 --out relaxed.extxyz
      ase-negnn relax cifs/ --potential runs/pot/model --models mp-eform,mp-gap --out relaxed.extxyz
    """
    import ase.io
    from tqdm.auto import tqdm

    from .calculator import NEGNNCalculator
    from .readers import read_structures
    from .io import atomic_open, structure_ids
    from .relaxation import relax

    try:
        calc = NEGNNCalculator(potential=potential, device=device)
        riders = NEGNNCalculator(models=_model_list(models), device=device) if models else None
        images = read_structures(input_path)
    except (FileNotFoundError, ValueError) as ex:
        raise click.ClickException(str(ex)) from ex
    traj_dir = out.parent / f"{out.stem}_traj"
    relaxed, failed = [], []
    # one bar over all optimiser steps (each structure at most --steps; a converged one jumps to its end), so the
    # ETA moves step by step even for a single structure
    bar = tqdm(total=steps * len(images), disable=no_progress, desc="relax", unit="step")
    for k, (sid, atoms) in enumerate(zip(structure_ids(images), images)):
        bar.set_postfix_str(f"{sid} ({k + 1}/{len(images)})")

        def step(n, fmax_now, start=k * steps):
            bar.n = start + n
            bar.set_postfix_str(f"{sid} ({k + 1}/{len(images)}) fmax {fmax_now:.3f} eV/Å", refresh=False)
            bar.refresh()

        try:
            res = relax(atoms, calc, fmax=fmax, steps=steps, cell=cell, optimizer=optimizer,
                        trajectory=traj_dir / f"{sid}.traj", property_calculator=riders, callback=step)
        except Exception as ex:  # one bad structure does not stop the others
            failed.append(sid)
            click.echo(f"{sid}: failed: {type(ex).__name__}: {ex}", err=True)
            continue
        final = res.atoms
        final.info.update(id=sid, relax_converged=res.converged, relax_steps=res.steps, relax_fmax=res.fmax,
                          **{k: v for k, v in res.properties.items() if np.ndim(v) == 0})
        relaxed.append(final)
        bar.n = (k + 1) * steps
        bar.refresh()
    bar.close()
    if relaxed:
        with atomic_open(out, "w") as fh:
            ase.io.write(fh, relaxed, format="extxyz")
    click.echo(f"relaxed {len(relaxed)} structure(s) ({sum(a.info['relax_converged'] for a in relaxed)} converged) "
               f"-> {out}; trajectories in {traj_dir}" + (f"; {len(failed)} failed: {failed[:5]}" if failed else ""))
    if failed and not relaxed:
        raise click.ClickException("every structure failed")


@cli.command("phonons")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option("--potential", required=True, help="NEGNN potential: model directory or bundled name.")
@click.option("--supercell", nargs=3, type=click.IntRange(min=1), default=(2, 2, 2), show_default=True,
              help="Supercell multiples along a, b, c.")
@click.option("--mesh", nargs=3, type=click.IntRange(min=1), default=(20, 20, 20), show_default=True,
              help="q-point mesh for DOS and thermal properties.")
@click.option("--displacement", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True,
              help="Displacement amplitude in Å.")
@click.option("--born", type=click.Path(exists=True, path_type=Path), default=None,
              help="phonopy BORN file (non-analytical correction for polar solids).")
@click.option("--t-max", type=click.FloatRange(min=0), default=1000.0, show_default=True,
              help="Highest temperature (K) of the thermal properties.")
@click.option("--cutoff-frequency", type=float, default=None,
              help="THz: modes at or below it are left out of the thermal properties (phonopy) [default: 0].")
@click.option("--exclude-gamma-acoustic", is_flag=True,
              help="Leave the three acoustic modes at Γ out of the thermal properties (phonopy's advice when it "
                   "warns about them).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output folder: band_structure.png, dos.png, thermal_properties.csv, band.yaml, FORCE_CONSTANTS.")
@click.option("--device", default="cpu", show_default=True, help="Torch device.")
@click.option("--no-progress", is_flag=True, help="Disable the progress bar.")
def phonons_cmd(input_path, potential, supercell, mesh, displacement, born, t_max, cutoff_frequency,
                exclude_gamma_acoustic, out, device, no_progress):
    """Phonons of the (first) structure in INPUT from NEGNN forces, with phonopy.

    \b
    Relax the structure with the same potential first for physical frequencies.
    Example:
      ase-negnn phonons POSCAR-unitcell --potential runs/si/model --supercell 2 2 2 --out phonons-si
      ase-negnn phonons NaCl.cif --potential runs/pot/model --born BORN --out phonons-nacl
    """
    from ase_negnn.plugins.phonons import compute_phonons, write_phonon_outputs

    from .calculator import NEGNNCalculator
    from .readers import read_structures

    try:
        atoms = read_structures(input_path)[0]
        calc = NEGNNCalculator(potential=potential, device=device)
        ph = compute_phonons(atoms, calc, supercell=supercell, displacement=displacement, born=born, progress=not no_progress)
        paths = write_phonon_outputs(ph, out, mesh=mesh, t_max=t_max, title=atoms.get_chemical_formula(),
                                     cutoff_frequency=cutoff_frequency, exclude_gamma_acoustic=exclude_gamma_acoustic)
    except (FileNotFoundError, ValueError) as ex:
        raise click.ClickException(str(ex)) from ex
    click.echo(f"phonons of {atoms.get_chemical_formula()} ({len(ph.supercell)}-atom supercell): "
               + ", ".join(str(p) for p in paths.values()))


@cli.command("screen")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option("--models", default="mp-eform,mp-gap", show_default=True,
              help="Property models, comma separated (bundled names or directories).")
@click.option("--potential", default=None, help="Potential model (needed for --relax).")
@click.option("--relax", "do_relax", is_flag=True, help="Relax each structure with --potential before predicting.")
@click.option("--fmax", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
              help="Relaxation force criterion in eV/Å.")
@click.option("--steps", type=click.IntRange(min=1), default=500, show_default=True,
              help="Maximum optimiser steps per structure (as relax).")
@click.option("--cell/--no-cell", default=False, show_default=True,
              help="Also relax the cell (FrechetCellFilter), as relax --cell.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="ASE database (.db); a CSV with the same stem is written next to it. Re-running resumes.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Structures per batch and per database transaction.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N structures of INPUT.")
@click.option("--rank", default=None, metavar="PROP:KIND",
              help="Order the CSV by an acquisition: PROP:ucb[:κ] (high mean + κ·std; κ 2), PROP:lcb[:κ] (low), "
                   "PROP:std (most uncertain first: what to label next), PROP:max, PROP:min, PROP:in:LOW:HIGH "
                   "(probability of lying in the window). ucb/lcb/std/in need a model with PROP_std (--method krr).")
@click.option("--device", default="cpu", show_default=True, help="Torch device.")
@click.option("--no-progress", is_flag=True, help="Disable the progress bar.")
def screen_cmd(input_path, models, potential, do_relax, fmax, steps, cell, out, chunk_size, limit, rank, device,
               no_progress):
    """Predict properties for every structure of INPUT into an ASE database (resumable, errors recorded per item).

    \b
    Example:
      ase-negnn screen candidates.extxyz --models mp-eform,mp-gap --out screen.db
      ase-negnn screen cifs/ --potential runs/pot/model --relax --cell --out screen.db   # re-run to resume
      ase-negnn screen candidates.extxyz --models runs/gap-krr/model --rank band_gap:ucb --out next.db
    """
    from .calculator import NEGNNCalculator
    from .screening import screen

    try:
        calc = NEGNNCalculator(potential=potential, models=_model_list(models), device=device)
        stats = screen(input_path, out, calc, relax=do_relax, fmax=fmax, steps=steps, cell=cell, chunk_size=chunk_size,
                       limit=limit, progress=not no_progress, rank=rank)
    except (FileNotFoundError, ValueError) as ex:
        raise click.ClickException(str(ex)) from ex
    click.echo(f"screened {stats['n_new']} new structure(s) ({stats['n_skipped']} already done, "
               f"{stats['n_errors']} errors) at {stats['structures_per_second']} structures/s -> {out}, {stats['csv']}")


def main():  # pragma: no cover
    cli()
