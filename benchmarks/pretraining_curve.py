"""The learning curve of a pretraining run: held-out masked-task accuracies and losses per epoch, from its metrics.csv.

Copies the run's ``metrics.csv`` next to a PNG and a Markdown table in ``benchmarks/results/`` under ``--name``, so
the curve of the bundled encoder is committed with it (the run folder itself lives outside the work tree).

Command (from the repository root; the v2 default encoder's run)::

    python benchmarks/pretraining_curve.py ~/runs/encoder-v2 --name default_encoder_v2_pretraining
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from _bench import parser, report_header, save_figure, write_csv, write_markdown


def main(argv=None):
    ap = parser(__doc__, "out")
    ap.add_argument("run", type=Path, help="pretraining run directory (metrics.csv, card.json)")
    ap.add_argument("--name", required=True, help="output stem in benchmarks/results/")
    args = ap.parse_args(argv)
    with open(args.run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        sys.exit(f"{args.run / 'metrics.csv'} has no epochs")
    card = json.loads((args.run / "card.json").read_text()) if (args.run / "card.json").exists() else {}
    write_csv(args.out / f"{args.name}.csv", rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    for key, label in (("val_acc_group", "group"), ("val_acc_period", "period"), ("val_acc_edge", "distance bin")):
        a.plot(epochs, [float(r[key]) for r in rows], marker="o", label=label)
    a.set(xlabel="epoch", ylabel="held-out accuracy (masked atoms / edges)", ylim=(0, 1))
    a.legend()
    for key in ("train_loss", "val_loss"):
        b.plot(epochs, [float(r[key]) for r in rows], marker="o", label=key.replace("_", " "))
    b.set(xlabel="epoch", ylabel="loss (sum of cross entropies)")
    b.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    enc = card.get("encoder", {})
    fig.suptitle(f"pretraining {args.name}: {card.get('objective', '?')}, graph "
                 f"{'continuous δ = %s Å' % enc.get('smooth_width') if enc.get('smooth_width') else 'hard'}",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, args.out / f"{args.name}.png", dpi=120)
    plt.close(fig)

    md = [*report_header(f"Pretraining curve: {args.name}", f"{sum(float(r['epoch_seconds']) for r in rows) / 60:.0f} "
                         "min of epochs (from metrics.csv)", argv),
          f"- run: `{args.run}`; data {card.get('data', '?')} ({card.get('n_train', '?')} train / "
          f"{card.get('n_validation', '?')} held out); encoder {json.dumps(enc)}; started from "
          f"{card.get('init_encoder') or 'random weights'}; {card.get('epochs', len(rows))} of "
          f"{card.get('epochs_scheduled', card.get('epochs', len(rows)))} scheduled epochs; {card.get('hardware', '')}",
          "", "| epoch | val acc group | val acc period | val acc distance bin | train loss | val loss | lr | s |",
          "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        md.append(f"| {int(r['epoch']) + 1} | {float(r['val_acc_group']):.3f} | {float(r['val_acc_period']):.3f} | "
                  f"{float(r['val_acc_edge']):.3f} | {float(r['train_loss']):.3f} | {float(r['val_loss']):.3f} | "
                  f"{float(r['lr']):.2e} | {float(r['epoch_seconds']):.0f} |")
    write_markdown(args.out / f"{args.name}.md", md)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
