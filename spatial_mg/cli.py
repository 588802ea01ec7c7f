"""The ``spatial-mg`` command line."""

from __future__ import annotations

import argparse
import sys

from . import __version__

_DEMO_PLAN = """\
spatial-mg demo: the whole pipeline on the built-in synthetic Vicari-type dataset.

  1. write synthetic serial sections in their real formats (spaceranger outs/ + imzML)
  2. read them back (read_visium, read_imzml), in micrometres
  3. register the MSI pixels onto the Visium spots with moscot, and pair them
  4. train the PoE-VAE (negative-binomial RNA, Gaussian metabolites) on the paired sections
  5. predict the metabolite maps of a held-out section from its RNA alone, with uncertainty
  6. score them (Pearson, Spearman) against the truth and the baselines, and draw the maps

Steps 3-6 land with the alignment, model and pipeline stages; this build runs step 1-2
only when asked with --write-data PATH.
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spatial-mg",
        description="Spatial multi-omics: register MALDI-MSI onto Visium, integrate with a PoE-VAE, "
        "predict metabolite maps from RNA.",
    )
    parser.add_argument("--version", action="version", version=f"spatial-mg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the main job on the built-in synthetic dataset")
    demo.add_argument("--write-data", metavar="PATH", help="write the synthetic sections to PATH in their real formats")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the synthetic data (default 0)")
    return parser


def _demo(args: argparse.Namespace) -> int:
    print(_DEMO_PLAN)
    if args.write_data:
        from .datasets import synthetic_vicari

        data = synthetic_vicari(seed=args.seed)
        data.write(args.write_data)
        names = ", ".join(section.name for section in data.sections)
        print(f"wrote sections {names} to {args.write_data} (spaceranger outs/, msi/*.imzML, truth/)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return {"demo": _demo}[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
