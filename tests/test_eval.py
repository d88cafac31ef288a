"""igrsr.eval: target ranks (ties, exclusion), metrics, and the batched full-ranking loop."""

import importlib
import math

import numpy as np
import pytest
import torch
from conftest import requires_cuda

from igrsr.eval import (
    MaterializedScores,
    evaluate,
    metrics_from_ranks,
    parse_metric,
    per_user_metric,
    ranks_from_scores,
    target_ranks,
)

# --- metrics ---------------------------------------------------------------------------------


def test_metrics_equal_hand_computed_values():
    metrics = metrics_from_ranks(torch.tensor([0, 3, 12, 25]), ks=(5, 10, 20))
    # rank 0: NDCG 1/log2(2) = 1, MRR 1; rank 3: NDCG 1/log2(5), MRR 1/4; rank 12: NDCG 1/log2(14),
    # MRR 1/13, only within K = 20; rank 25 is beyond every K.
    ndcg_rank_3 = 0.43067655807339306
    ndcg_rank_12 = 0.26264953503719357
    expected = {
        "HR@5": 2 / 4,
        "NDCG@5": (1 + ndcg_rank_3) / 4,
        "MRR@5": (1 + 1 / 4) / 4,
        "HR@10": 2 / 4,
        "NDCG@10": (1 + ndcg_rank_3) / 4,
        "MRR@10": (1 + 1 / 4) / 4,
        "HR@20": 3 / 4,
        "NDCG@20": (1 + ndcg_rank_3 + ndcg_rank_12) / 4,
        "MRR@20": (1 + 1 / 4 + 1 / 13) / 4,
    }
    assert list(metrics) == list(expected)
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-12), name
        assert isinstance(metrics[name], float)


def test_metrics_accept_numpy_and_reject_empty():
    assert metrics_from_ranks(np.array([0, 9]), ks=(10,))["HR@10"] == 1.0
    with pytest.raises(ValueError, match="no ranks"):
        metrics_from_ranks(torch.tensor([], dtype=torch.long))


@pytest.mark.parametrize("metric", ["NDCG@10", "HR@5", "MRR@20"])
def test_named_metrics_are_the_per_user_values_that_average_to_the_metric(metric):
    ranks = torch.tensor([0, 3, 7, 12, 40])
    assert per_user_metric(ranks, *parse_metric(metric)).mean().item() == metrics_from_ranks(ranks)[metric]


@pytest.mark.parametrize("metric", ["NDCG10", "ndcg@10", "NDCG@0", "NDCG@x", "AUC@10", ""])
def test_parse_metric_rejects_malformed_names(metric):
    with pytest.raises(ValueError, match="like NDCG@10"):
        parse_metric(metric)


# --- ranks -----------------------------------------------------------------------------------


def test_rank_counts_higher_candidates_and_ignores_padding():
    scores = torch.tensor([[100.0, 0.1, 0.5, 0.9, 0.3]])  # column 0 is padding
    assert ranks_from_scores(scores, torch.tensor([2])).tolist() == [1]
    assert ranks_from_scores(scores, torch.tensor([3])).tolist() == [0]
    assert ranks_from_scores(scores, torch.tensor([1])).tolist() == [3]


def test_ties_count_against_the_target():
    num_items = 6
    constant = torch.zeros(2, num_items + 1)
    assert ranks_from_scores(constant, torch.tensor([1, 6])).tolist() == [num_items - 1] * 2
    scores = torch.tensor([[0.0, 0.2, 0.5, 0.5, 0.5, 0.9]])
    # Above: item 5; tied with the target: the two other 0.5 items.
    assert ranks_from_scores(scores, torch.tensor([3])).tolist() == [3]


def test_excluded_items_are_not_candidates_but_the_target_always_is():
    scores = torch.tensor([[0.0, 0.9, 0.8, 0.5, 0.1]])
    exclude = torch.tensor([[False, True, False, True, False]])  # items 1 and 3 were in the history
    # Target 3 is excluded yet still ranked: only item 2 is a candidate above it.
    assert ranks_from_scores(scores, torch.tensor([3]), exclude).tolist() == [1]
    # Target 4: items 1 and 3 score higher but are excluded; only item 2 counts.
    assert ranks_from_scores(scores, torch.tensor([4]), exclude).tolist() == [1]
    assert exclude.tolist() == [[False, True, False, True, False]]  # the input mask is unchanged


def test_constant_scorer_with_exclusion_ranks_last_among_the_remaining():
    exclude = torch.zeros(1, 11, dtype=torch.bool)
    exclude[0, [2, 3, 4]] = True
    assert ranks_from_scores(torch.zeros(1, 11), torch.tensor([7]), exclude).tolist() == [10 - 3 - 1]


def test_rank_input_errors():
    with pytest.raises(ValueError, match="NaN"):
        ranks_from_scores(torch.tensor([[0.0, float("nan"), 1.0]]), torch.tensor([2]))
    with pytest.raises(ValueError, match="item ids in 1..2"):
        ranks_from_scores(torch.zeros(1, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="targets must have shape"):
        ranks_from_scores(torch.zeros(2, 3), torch.tensor([1]))
    with pytest.raises(ValueError, match="exclude"):
        ranks_from_scores(torch.zeros(1, 3), torch.tensor([1]), torch.zeros(1, 2, dtype=torch.bool))


# --- evaluate --------------------------------------------------------------------------------

NUM_ITEMS = 30
MAX_LEN = 4


def random_users(num_users=23, seed=0):
    rng = np.random.default_rng(seed)
    histories = [rng.integers(1, NUM_ITEMS + 1, size=rng.integers(0, 9)) for _ in range(num_users)]
    targets = rng.integers(1, NUM_ITEMS + 1, size=num_users)
    return histories, targets


def table_scorer(table: torch.Tensor):
    """A scorer whose scores are a fixed row per user, so results cannot depend on batching."""
    return lambda history, users: table[users]


def test_evaluate_over_several_batches_equals_one_batch():
    histories, targets = random_users()
    scorer = table_scorer(torch.rand(len(targets), NUM_ITEMS + 1, generator=torch.Generator().manual_seed(1)))
    one_batch = evaluate(scorer, histories, targets, NUM_ITEMS, MAX_LEN, batch_size=1000)
    several = evaluate(scorer, histories, targets, NUM_ITEMS, MAX_LEN, batch_size=5, progress=True)
    assert several == one_batch
    assert one_batch["num_users"] == len(targets)


def test_target_ranks_are_per_user_in_the_order_given_whatever_the_batching():
    histories, targets = random_users()
    table = torch.rand(len(targets), NUM_ITEMS + 1, generator=torch.Generator().manual_seed(2))
    ranks = target_ranks(table_scorer(table), histories, targets, NUM_ITEMS, MAX_LEN, batch_size=3)
    for user in (0, len(targets) // 2, len(targets) - 1):  # users are scored sorted by length
        exclude = torch.zeros(1, NUM_ITEMS + 1, dtype=torch.bool)
        exclude[0, torch.from_numpy(histories[user])] = True
        expected = ranks_from_scores(table[user : user + 1], torch.tensor([targets[user]]), exclude)
        assert ranks[user] == expected[0]
    one_batch = target_ranks(table_scorer(table), histories, targets, NUM_ITEMS, MAX_LEN, batch_size=1000)
    assert torch.equal(ranks, one_batch)


def test_perfect_scorer_hits_every_target():
    histories, targets = random_users()
    perfect = torch.nn.functional.one_hot(torch.from_numpy(targets), NUM_ITEMS + 1).float()
    metrics = evaluate(table_scorer(perfect), histories, targets, NUM_ITEMS, MAX_LEN, batch_size=4)
    assert metrics["HR@5"] == metrics["NDCG@5"] == metrics["MRR@20"] == 1.0


def test_evaluate_excludes_the_full_history_and_passes_the_last_max_len_items():
    histories = [np.array([9, 1, 2, 3, 4, 5])]  # item 9 is older than the last MAX_LEN items
    targets = np.array([7])
    seen = []

    def scorer(history, users):
        seen.append((history.tolist(), users.tolist()))
        scores = torch.zeros(1, NUM_ITEMS + 1)
        scores[0, 9] = 2.0
        scores[0, 7] = 1.0
        return scores

    assert evaluate(scorer, histories, targets, NUM_ITEMS, MAX_LEN, users=np.array([42]))["HR@5"] == 1.0
    assert seen == [([[2, 3, 4, 5]], [42])]
    assert evaluate(scorer, histories, targets, NUM_ITEMS, MAX_LEN, exclude_history=False)["MRR@5"] == 0.5


def test_default_batches_and_chunks_bound_the_scores_held(monkeypatch):
    full_ranking = importlib.import_module("igrsr.eval.full_ranking")
    streaming = importlib.import_module("igrsr.eval.streaming")
    monkeypatch.setattr(full_ranking, "MIN_BATCH_USERS", 3)
    monkeypatch.setattr(full_ranking, "SCORE_BYTES_PER_CHUNK", 2 * (NUM_ITEMS + 1) * 4)  # 2 users: below the minimum
    monkeypatch.setattr(streaming, "SCORE_BYTES_PER_CHUNK", 3 * 10 * 4)  # 10 items of 3 users
    monkeypatch.setattr(streaming, "MIN_PRODUCT_WIDTH", 1)
    histories, targets = random_users(num_users=10)
    table = torch.rand(len(targets), NUM_ITEMS + 1, generator=torch.Generator().manual_seed(3))
    widths = []

    class Recorded(MaterializedScores):
        def chunk(self, start, stop):
            widths.append((self.num_rows, stop - start))
            return super().chunk(start, stop)

    ranks = target_ranks(lambda history, users: Recorded(table[users]), histories, targets, NUM_ITEMS, MAX_LEN)
    assert [rows for rows, _ in widths] == [3] * 4 * 3 + [1] * 2  # 3 batches of 3 users in 4 chunks, then 1 in 2
    assert all(rows * width * 4 <= 3 * 10 * 4 for rows, width in widths)
    assert torch.equal(ranks, target_ranks(table_scorer(table), histories, targets, NUM_ITEMS, MAX_LEN))


def test_evaluate_runs_without_gradients_and_checks_the_score_shape():
    histories, targets = random_users(num_users=3)
    weight = torch.ones(NUM_ITEMS + 1, requires_grad=True)

    def scorer(history, users):
        assert not torch.is_grad_enabled()
        return weight.expand(len(users), -1) * 1.0

    assert math.isclose(evaluate(scorer, histories, targets, NUM_ITEMS, MAX_LEN)["HR@20"], 0.0)
    one_column_short = lambda history, users: torch.zeros(len(users), NUM_ITEMS)  # noqa: E731
    with pytest.raises(ValueError, match="score_fn must return shape"):
        evaluate(one_column_short, histories, targets, NUM_ITEMS, MAX_LEN)


@requires_cuda
@pytest.mark.gpu
def test_scores_on_the_gpu_give_the_cpu_result():
    histories, targets = random_users()
    table = torch.rand(len(targets), NUM_ITEMS + 1)
    on_cpu = evaluate(table_scorer(table), histories, targets, NUM_ITEMS, MAX_LEN, batch_size=5)
    on_gpu = evaluate(table_scorer(table.cuda()), histories, targets, NUM_ITEMS, MAX_LEN, batch_size=5)
    assert on_gpu == pytest.approx(on_cpu)
