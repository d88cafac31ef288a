"""Full-ranking evaluation: target ranks, HR/NDCG/MRR@K, the batched evaluation loop, and the
streamed top-k that recommendation builds on."""

from .full_ranking import evaluate, model_ranks, ranking_metrics, target_ranks
from .metrics import metrics_from_ranks, parse_metric, per_user_metric, ranks_from_scores
from .scores import ItemScores, MaterializedScores, TableScores
from .streaming import SeenItems, streamed_ranks, top_k

__all__ = [
    "ItemScores",
    "MaterializedScores",
    "SeenItems",
    "TableScores",
    "evaluate",
    "metrics_from_ranks",
    "model_ranks",
    "parse_metric",
    "per_user_metric",
    "ranking_metrics",
    "ranks_from_scores",
    "streamed_ranks",
    "target_ranks",
    "top_k",
]
