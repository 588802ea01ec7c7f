"""The pipeline, step by step: plain functions that tutorials, scripts and the command line call.

In memory, one section at a time:

- :func:`read_section`: a section's Visium outs and MSI file -> :class:`Section` (AnnData, micrometres);
- :func:`align_section`: register the MSI onto the spots (moscot) and pair them;
- :func:`stack_sections`: several sections' pairs -> one MuData;
- :func:`stack_sections_on_disk`: the same, a section at a time into files read backed;
- :func:`train_model`: set up and train the PoE-VAE on it;
- :func:`predict_section`: an RNA-only section's metabolite maps, with their std;
- :func:`evaluate_prediction` / :func:`score_methods`: Pearson and Spearman against measured maps.

On files, each step reading and writing an output folder (what ``spatial-mg`` runs):
:func:`run_align`, :func:`run_train`, :func:`run_predict`, :func:`run_evaluate`, and
:func:`run_demo`, all of them on the built-in synthetic sections.
"""

from ._align import align_section, log_msi
from ._demo import DemoConfig, run_demo
from ._evaluate import evaluate_prediction, score_methods
from ._predict import predict_section, predictions_spatialdata
from ._runs import run_align, run_evaluate, run_predict, run_train
from ._sections import Section, read_peak_list, read_section
from ._stack import stack_sections
from ._stack_on_disk import stack_sections_on_disk
from ._train import PAIRED_LIKELIHOODS, train_model

__all__ = [
    "PAIRED_LIKELIHOODS",
    "DemoConfig",
    "Section",
    "align_section",
    "evaluate_prediction",
    "log_msi",
    "predict_section",
    "predictions_spatialdata",
    "read_peak_list",
    "read_section",
    "run_align",
    "run_demo",
    "run_evaluate",
    "run_predict",
    "run_train",
    "score_methods",
    "stack_sections",
    "stack_sections_on_disk",
    "train_model",
]
