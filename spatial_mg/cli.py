"""The ``spatial-mg`` command line: the demo, and each pipeline step on a user's files.

Every step takes flags or a config file (``--config run.toml`` or ``.yaml``) whose keys are
the flag names (``pixel_size_um = 100``); flags given on the command line win. A step never
overwrites an output folder that already holds results unless ``--overwrite`` is given.

Output: the step's result on stdout, as one line; progress (INFO), warnings and errors as
plain lines on stderr. ``--quiet`` keeps warnings and errors only, ``--verbose`` adds debug
lines; third-party deprecation notices are shown with ``--verbose`` only.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from contextlib import contextmanager

from . import __version__
from ._errors import DeviceUnavailableError, RegistrationFailedError

_EPILOG = """\
examples:
  spatial-mg demo                                   # the whole pipeline on synthetic data
  spatial-mg align --visium S1/outs --msi S1/msi.imzML --mz-bins peaks.csv --out S1_aligned
  spatial-mg train --pairs S1_aligned/pairs.h5mu S2_aligned/pairs.h5mu --out model
  spatial-mg train --pairs S*_aligned/pairs.h5mu --n-models 3 --batch-key section --out ensemble
  spatial-mg predict --model model --visium S3/outs --out S3_predicted
  spatial-mg evaluate --pred S3_predicted/predicted.h5ad --truth S3_aligned/pairs.h5mu --out S3_eval
  spatial-mg fetch --list                           # the real datasets that can be downloaded
  spatial-mg fetch sma_mendeley --section V11L12-038_D1
"""


# The values of choice flags; the CLI does not import the packages that define them (tests
# check that they agree): align.STRATEGIES, the model's accelerators, the JAX devices, register's MSI edges.
STRATEGIES = ("spot_mean", "nearest_spot", "transport")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
JAX_DEVICES = ("cpu", "gpu")
MSI_EDGES = ("soft", "hard")
NORMALIZATIONS = ("none", "tic", "rms")
FUSIONS = ("poe", "moe")


class CliError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (what is wrong, and where to look), not the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _OutOfRange(argparse.ArgumentTypeError, ValueError):
    """A flag's value of the right type but outside its range (argparse shows this message as is)."""


def _at_least(minimum: int):
    """A flag type: a whole number >= ``minimum`` (checked for config files too: ``base`` says int)."""

    def whole_number(text) -> int:
        value = int(text)
        if value < minimum:
            raise _OutOfRange(f"must be at least {minimum}, not {value}")
        return value

    whole_number.base = int
    whole_number.__name__ = "whole number"  # argparse names the type in "invalid ... value"
    return whole_number


def _above(minimum: float, *, or_equal: bool = False):
    """A flag type: a finite number > ``minimum`` (>= with ``or_equal``)."""

    def number(text) -> float:
        value = float(text)
        if not (math.isfinite(value) and (value >= minimum if or_equal else value > minimum)):
            raise _OutOfRange(f"must be a finite number {'of at least' if or_equal else 'above'} {minimum:g}, not {value}")
        return value

    number.base = float
    return number


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spatial-mg",
        description="Spatial multi-omics: register MALDI-MSI onto Visium, train a PoE-VAE on the pairs, "
        "and predict metabolite maps of sections that have RNA only.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"spatial-mg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback when a step fails")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true", help="show only the result, warnings and errors")
    loudness.add_argument("-v", "--verbose", action="store_true", help="show debug lines and third-party notices too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser("demo", help="run the whole pipeline on the built-in synthetic dataset")
    demo.add_argument("--out", default="spatial_mg_demo", help="output folder (default ./spatial_mg_demo)")
    demo.add_argument("--data-dir", help="where the synthetic input files go (default: a cache folder)")
    demo.add_argument("--smoke", action="store_true", help="tiny sizes and few epochs: a check that it runs")
    demo.add_argument("--epochs", type=_at_least(1), help="training epochs (default: chosen from the data size)")
    demo.add_argument("--seed", type=_at_least(0), default=0, help="random seed of the synthetic data and model")
    _accelerator(demo)
    demo.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    demo.add_argument("--write-data", metavar="PATH", help="only write the synthetic sections to PATH and stop")
    _debug(demo)

    align = sub.add_parser("align", help="register an MSI section onto its Visium section and pair them")
    _config(align)
    align.add_argument("--visium", help="spaceranger outs/ folder, or a SpatialData .zarr store (spatialdata-io's)")
    align.add_argument("--name", help="the section's name (default: the folder holding outs/)")
    align.add_argument("--msi", help=".imzML file (with its .ibd), SMA .csv export, or a SpatialData .zarr (msi_table)")
    align.add_argument("--mz-bins", help="peak list: a csv with an 'mz' column, or a text file of m/z values")
    align.add_argument("--ppm", type=_above(0.0), default=10.0, help="peak tolerance in ppm (default 10)")
    align.add_argument("--bin-width", type=_above(0.0), help="uniform m/z bins of this width instead of a peak list")
    align.add_argument("--pixel-size-um", type=_above(0.0), help="MSI raster step in um (required for csv exports)")
    align.add_argument(
        "--landmarks",
        help="csv of point pairs instead of moscot: msi_x, msi_y, rna_x, rna_y in um, or an SMA/MAGPIE "
        "landmarks_noHE.csv as published (X_left, Y_left on the MSI grid; X_right, Y_right in Visium hires pixels)",
    )
    align.add_argument(
        "--normalize",
        default="none",
        choices=NORMALIZATIONS,
        help="divide each MSI pixel by its total ion count (tic) or spectrum RMS (rms) (default none)",
    )
    align.add_argument("--strategy", default="spot_mean", choices=STRATEGIES, help="how a spot gathers its pixels (default spot_mean)")
    align.add_argument("--device", choices=JAX_DEVICES, help="JAX device for moscot (default: the GPU if JAX sees one)")
    align.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 2, writing nothing) when the registration's confidence is low, naming the reasons",
    )
    align.add_argument(
        "--tissue-image",
        default="auto",
        choices=["auto", "none"],
        help="the RNA side's tissue outline: from the H&E image when it fits the spots (auto, default) or from the spot centres (none)",
    )
    align.add_argument(
        "--msi-edge",
        default="soft",
        choices=MSI_EDGES,
        help="MSI edge pixels counted by the share of tissue their signal shows (soft, default) or as 0 / 1 (hard)",
    )
    align.add_argument(
        "--no-content",
        action="store_true",
        help="keep the outlines' pose: do not move it towards where the RNA best explains the MSI content",
    )
    align.add_argument(
        "--msi-scale",
        default="log1p",
        choices=["log1p", "linear"],
        help="MSI values in pairs.h5mu: log1p of the intensities (default; what the model fits best) or the intensities",
    )
    _output(align)

    train = sub.add_parser("train", help="train the PoE-VAE on paired sections")
    _config(train)
    defaults = _training_defaults()
    train.add_argument("--pairs", nargs="+", help="pairs.h5mu files written by 'spatial-mg align'")
    train.add_argument("--n-latent", type=_at_least(1), help=f"latent dimensions (default {defaults['n_latent']})")
    train.add_argument("--epochs", type=_at_least(1), help="maximum epochs (default: chosen from the data size, with early stopping)")
    train.add_argument("--batch-size", type=_at_least(1), help=f"cells per step (default {defaults['batch_size']})")
    _accelerator(train)
    train.add_argument("--seed", type=_at_least(0), default=defaults["seed"], help=f"random seed (default {defaults['seed']})")
    train.add_argument(
        "--n-models",
        type=_at_least(1),
        default=1,
        help="train an ensemble of this many models (seeds SEED, SEED+1, ...); predict uses all (default 1)",
    )
    train.add_argument(
        "--mix-matrices",
        action="store_true",
        help="train on sections of different MALDI matrices or ion modes (refused by default: they measure "
        "different molecules)",
    )
    train.add_argument(
        "--batch-key",
        default="auto",
        help="obs column of the batch covariate (default auto: the section, when training on two or more sections; "
        "'none' for no batch covariate)",
    )
    train.add_argument(
        "--no-calibration",
        dest="calibrate",
        action="store_false",
        help="skip calibrating the intervals across sections (which trains one more model per section)",
    )
    train.add_argument("--fusion", choices=FUSIONS, default=defaults["fusion"], help=f"how the modalities' posteriors combine (default {defaults['fusion']})")
    train.add_argument(
        "--batch-mmd-weight",
        type=_above(0.0, or_equal=True),
        default=None,
        help=f"weight of the MMD that aligns the batches of --batch-key (default {defaults['section_mmd_weight']:g} "
        f"when the section is the batch, else {defaults['batch_mmd_weight']:g})",
    )
    train.add_argument(
        "--context-radius-um",
        type=_above(0.0),
        default=None,
        help="give the RNA encoder each spot's neighbourhood: the mean RNA of the spots within this radius "
        "(um) in its section, e.g. 150 for a Visium spot and its six neighbours (default: none)",
    )
    train.add_argument(
        "--modality-mmd-weight",
        type=_above(0.0, or_equal=True),
        default=defaults["modality_mmd_weight"],
        help=f"weight of the MMD between a spot's RNA and MSI latents (default {defaults['modality_mmd_weight']:g})",
    )
    train.add_argument("--checkpoint-dir", help="write a checkpoint there after every epoch (one subfolder per seed for --n-models > 1)")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    train.add_argument(
        "--strategy",
        choices=["auto", "single", "ddp"],
        default="auto",
        help="ddp: data-parallel on torch.distributed, in --devices local processes or as the ranks of a torchrun "
        "launch (default auto: ddp under torchrun or with --devices > 1, else one process)",
    )
    train.add_argument(
        "--devices",
        type=_at_least(1),
        help="processes to start for --strategy ddp, one per GPU (accelerator gpu) or CPU share (cpu, gloo); "
        "leave out under torchrun",
    )
    train.add_argument(
        "--on-disk",
        action="store_true",
        help="keep the pairs on disk: stack them a section at a time into scratch files beside --out and train "
        "reading a chunk of spots at a time (atlases larger than memory; needs --no-calibration)",
    )
    _output(train)

    predict = sub.add_parser("predict", help="predict metabolite maps of an RNA-only section")
    _config(predict)
    predict.add_argument("--model", help="model folder written by 'spatial-mg train'")
    predict.add_argument("--visium", help="spaceranger outs/ folder of the RNA-only section, or its SpatialData .zarr store")
    predict.add_argument("--rna", help="or: an .h5ad of spots x genes (raw counts, obsm['spatial'] in um)")
    predict.add_argument("--name", help="the section's name (default: the folder holding outs/); evaluate checks it")
    _accelerator(predict)
    _output(predict)

    evaluate = sub.add_parser("evaluate", help="score predicted maps against measured ones")
    _config(evaluate)
    evaluate.add_argument("--pred", help="predicted.h5ad written by 'spatial-mg predict'")
    evaluate.add_argument("--truth", help="measured metabolites: pairs.h5mu from 'spatial-mg align', or an .h5ad")
    _output(evaluate)

    fetch = sub.add_parser("fetch", help="download, verify and unpack a real dataset (see --list)")
    fetch.add_argument("name", nargs="?", help="dataset name, as shown by --list")
    fetch.add_argument("--section", help="fetch only this section where the record allows, and show its files")
    fetch.add_argument("--cache-dir", help="where datasets are kept (default $SPATIAL_MG_DATA or ~/.cache/spatial_mg)")
    fetch.add_argument("--list", action="store_true", help="list the datasets with their licence and size, and stop")
    _debug(fetch)
    return parser


def _training_defaults() -> dict:
    """The model's own defaults, read where they are defined (shown in --help)."""
    from .model import DEFAULT_SEED, ModuleConfig, TrainingConfig  # no torch: the model package imports on first use
    from .pipeline._train import SECTION_MMD_WEIGHT

    return {
        "n_latent": ModuleConfig.n_latent,
        "batch_size": TrainingConfig.batch_size,
        "seed": DEFAULT_SEED,
        "fusion": ModuleConfig.fusion,
        "batch_mmd_weight": ModuleConfig.batch_mmd_weight,
        "section_mmd_weight": SECTION_MMD_WEIGHT,
        "modality_mmd_weight": ModuleConfig.modality_mmd_weight,
    }


def _accelerator(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accelerator", default="auto", choices=ACCELERATORS, help="device of the model (default auto: CUDA if torch sees one)")


def _config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML or YAML file whose keys are this command's flag names")
    _debug(parser)


def _debug(parser: argparse.ArgumentParser) -> None:
    # also after the command (spatial-mg align ... --debug); SUPPRESS keeps the top-level value otherwise
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback on failure")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="show only the result, warnings and errors")
    loudness.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show debug lines too")


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace results already in --out")


def _apply_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> argparse.Namespace:
    """Config-file values fill the flags the command line did not give, each checked as its flag would be."""
    if not getattr(args, "config", None):
        return args
    from .pipeline._config import config_value, read_config

    actions = _config_actions(parser, args.command)
    given = _flags_given(actions, argv)
    for key, value in read_config(args.config).items():
        dest = key.replace("-", "_")
        action = actions.get(dest)
        if action is None:
            raise CliError(f"'{args.config}': unknown setting '{key}' for '{args.command}' (see --help).")
        value = config_value(args.config, key, value, kind=action.type, flag=action.nargs == 0,
                             many=action.nargs in ("+", "*"), choices=action.choices)
        if dest not in given and value is not None:
            setattr(args, dest, value)
    return args


def _config_actions(parser: argparse.ArgumentParser, command: str) -> dict[str, argparse.Action]:
    """The flags of ``command`` that a config file may set, by name (not --help, not --config)."""
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in commands.choices[command]._actions if a.dest not in (argparse.SUPPRESS, "help", "config")}


def _flags_given(actions: dict[str, argparse.Action], argv: list[str]) -> set[str]:
    """The names of the flags on the command line, also where abbreviated as argparse allows (--epo 5)."""
    given = {d for d, a in actions.items() for o in a.option_strings if not o.startswith("--") and o in argv}  # -q, -v
    for token in (t.split("=", 1)[0] for t in argv if t.startswith("--")):
        matches = {d for d, a in actions.items() for o in a.option_strings if o == token}
        matches = matches or {d for d, a in actions.items() for o in a.option_strings if o.startswith(token)}
        given |= matches if len(matches) == 1 else set()
    return given


def _require(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) in (None, [], "")]
    if missing:
        raise CliError(f"'{args.command}' needs {', '.join(missing)} (on the command line or in --config).")


def _demo(args: argparse.Namespace) -> int:
    if args.write_data:
        from .sim import synthetic_vicari

        data = synthetic_vicari(seed=args.seed)
        data.write(args.write_data, overwrite=args.overwrite)
        names = ", ".join(section.name for section in data.sections)
        print(f"wrote sections {names} to {args.write_data} (spaceranger outs/, msi/*.imzML, truth/)")
        return 0
    from dataclasses import replace

    from .pipeline import DemoConfig, run_demo

    config = DemoConfig.smoke(args.seed) if args.smoke else DemoConfig(seed=args.seed)
    if args.epochs is not None:
        config = replace(config, max_epochs=args.epochs)
    run_demo(args.out, config=config, data_dir=args.data_dir, overwrite=args.overwrite, accelerator=args.accelerator)
    return 0


def _align(args: argparse.Namespace) -> int:
    _require(args, "visium", "msi", "out")
    from .pipeline import run_align

    run_align(
        visium=args.visium,
        msi=args.msi,
        out=args.out,
        name=args.name,
        mz_bins=args.mz_bins,
        ppm=args.ppm,
        bin_width=args.bin_width,
        pixel_size_um=args.pixel_size_um,
        landmarks=args.landmarks,
        strategy=args.strategy,
        msi_scale=args.msi_scale,
        device=args.device,
        normalize=None if args.normalize == "none" else args.normalize,
        strict=args.strict,
        overwrite=args.overwrite,
        register_kwargs=_register_options(args),
    )
    return 0


def _register_options(args: argparse.Namespace) -> dict:
    """The options of ``spatial_mg.align.register`` that align's flags set."""
    return {
        "tissue_image": None if args.tissue_image == "none" else args.tissue_image,
        "msi_edge": args.msi_edge,
        "content": not args.no_content,
    }


def _train(args: argparse.Namespace) -> int:
    _require(args, "pairs", "out")
    from .model._distributed import end_group
    from .pipeline import run_train

    try:
        run_train(
            pairs=args.pairs,
            out=args.out,
            n_latent=args.n_latent,
            max_epochs=args.epochs,
            batch_size=args.batch_size,
            accelerator=args.accelerator,
            seed=args.seed,
            batch_key=None if args.batch_key in (None, "none") else args.batch_key,
            calibrate=args.calibrate,
            fusion=args.fusion,
            batch_mmd_weight=args.batch_mmd_weight,
            modality_mmd_weight=args.modality_mmd_weight,
            context_radius_um=args.context_radius_um,
            checkpoint_dir=args.checkpoint_dir,
            resume=args.resume,
            n_models=args.n_models,
            mix_matrices=args.mix_matrices,
            overwrite=args.overwrite,
            strategy=args.strategy,
            devices=args.devices,
            on_disk=args.on_disk,
        )
    finally:  # a rank of a torchrun launch leaves the process group it joined
        end_group()
    return 0


def _predict(args: argparse.Namespace) -> int:
    _require(args, "model", "out")
    if bool(args.visium) == bool(args.rna):
        raise CliError("'predict' needs the RNA-only section once: --visium OUTS or --rna FILE.h5ad.")
    from .pipeline import run_predict

    run_predict(model=args.model, out=args.out, visium=args.visium, rna=args.rna, name=args.name,
                accelerator=args.accelerator, overwrite=args.overwrite)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    _require(args, "pred", "truth", "out")
    from .pipeline import run_evaluate

    run_evaluate(pred=args.pred, truth=args.truth, out=args.out, overwrite=args.overwrite)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from .datasets import fetch, get_manifest, list_datasets, sma_sections

    if args.list:
        table = list_datasets()[["name", "size", "licence", "title"]]
        widths = {c: max(len(c), *(len(str(v)) for v in table[c])) for c in ("name", "size", "licence")}
        for row in [dict(zip(table.columns, table.columns))] + table.to_dict("records"):
            print("  ".join(str(row[c]).ljust(widths[c]) for c in widths) + "  " + row["title"])
        print("\nEach dataset has its own licence; 'spatial-mg fetch NAME' prints the work to cite.")
        return 0
    if not args.name:
        raise CliError("'fetch' needs a dataset NAME (see 'spatial-mg fetch --list').")
    manifest = get_manifest(args.name)
    try:
        with _pooch_quiet(args.quiet):
            root = fetch(manifest, section=args.section, cache_dir=args.cache_dir, progress=not args.quiet)
    except OSError as err:
        if isinstance(err, FileNotFoundError | FileExistsError | NotADirectoryError):
            raise
        import requests  # pooch's HTTP client

        # Network and disk failures deserve one line, not a traceback.
        hint = " Check the connection and try again." if isinstance(err, requests.RequestException) else ""
        raise CliError(f"fetching '{manifest.name}' failed: {err}.{hint}") from None
    print(f"{manifest.name}: {root}")
    print(f"licence: {manifest.licence}")
    print(f"cite: {manifest.citation}")
    if manifest.layout.get("kind") in ("sma_processed", "magpie"):
        for files in sma_sections(root, section=args.section):
            print(f"{files.name}: visium {files.visium}  msi {files.msi}")
    return 0


@contextmanager
def _pooch_quiet(quiet: bool):
    """pooch's download lines off with --quiet (its logger stands outside the logging tree)."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


_COMMANDS = {
    "demo": _demo,
    "align": _align,
    "train": _train,
    "predict": _predict,
    "evaluate": _evaluate,
    "fetch": _fetch,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        args = _apply_config(parser, args, argv)
        from ._logging import cli_logging

        with cli_logging(_verbosity(args)):
            return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"spatial-mg {args.command}: interrupted; finished outputs are kept", file=sys.stderr)
        return 130
    except Exception as err:  # every failure is one line; --debug shows the traceback
        if args.debug:
            raise
        print(f"spatial-mg {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _verbosity(args: argparse.Namespace) -> int:
    """The logging level that --quiet / --verbose ask for (also from a config file)."""
    if args.quiet and args.verbose:
        raise CliError("--quiet and --verbose exclude each other; give one of them.")
    return logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO


# Failures whose message is written for the user: bad input, missing files, no device.
_USER_ERRORS = (CliError, OSError, ValueError, KeyError, DeviceUnavailableError, RegistrationFailedError)


def _one_line(err: Exception) -> str:
    """The error's message on one line; an unexpected error says so, and how to see more."""
    message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    message = " ".join(str(message).split()) or type(err).__name__
    if isinstance(err, _USER_ERRORS):
        return message
    return f"unexpected {type(err).__name__}: {message} (rerun with --debug for the traceback, and report it if it persists)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
