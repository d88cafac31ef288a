"""Full-ranking evaluation: target ranks, HR/NDCG/MRR@K, and the batched evaluation loop."""

from .full_ranking import evaluate, model_ranks, ranking_metrics, target_ranks
from .metrics import metrics_from_ranks, parse_metric, per_user_metric, ranks_from_scores

__all__ = [
    "evaluate", "metrics_from_ranks", "model_ranks", "parse_metric", "per_user_metric", "ranking_metrics", "ranks_from_scores",
    "target_ranks",
]
