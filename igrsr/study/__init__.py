"""The paper's experiments in one call: main table, noise robustness, ablations and sweeps.

* :mod:`.plan`: what a study trains (:class:`StudyPlan`, the ablations, noisy data, run specs);
* :mod:`.runner`: running it (:class:`Study`, :func:`run_study`), resumable run by run;
* :mod:`.merge`: one study of several (seeds trained as separate jobs);
* :mod:`.stats`: means over seeds, the paired bootstrap over test users;
* :mod:`.report`: ``report.md`` and its figures; :mod:`.results_page`: the project's RESULTS.md.

Protocol: each table cell is the test metric's mean ± standard deviation over the seeds;
every model trains with the same options, budget and early stopping on validation NDCG@10.
With learning rates to choose from (``StudyPlan.learning_rates``), each learned model first
trains once per rate (first seed) and keeps, for every run after, the one with the best
validation NDCG@10.  The sweeps and the noise curves are reported on the test set, as in the
paper; nothing here selects hyperparameters on them.
"""

from .merge import merge_studies
from .plan import ABLATION_NAMES, ABLATIONS, ALL_MODELS, StudyPlan, first_users, with_noisy_inputs
from .report import format_paired, main_table, write_report
from .runner import Study, run_study
from .stats import HEADLINE, TABLE_METRICS, paired_bootstrap, summarize

__all__ = [
    "ABLATIONS",
    "ABLATION_NAMES",
    "ALL_MODELS",
    "HEADLINE",
    "TABLE_METRICS",
    "Study",
    "StudyPlan",
    "first_users",
    "format_paired",
    "main_table",
    "merge_studies",
    "paired_bootstrap",
    "run_study",
    "summarize",
    "with_noisy_inputs",
    "write_report",
]
