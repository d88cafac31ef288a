"""Ranking and top-k streamed over item chunks against the materialized scores they replace."""

from pathlib import Path

import numpy as np
import pytest
import torch

from igrsr.data import leave_one_out, load_dataset, pad_left, trim_left_padding
from igrsr.eval import MaterializedScores, SeenItems, TableScores, model_ranks, ranks_from_scores, target_ranks, top_k
from igrsr.eval.scores import MIN_PRODUCT_WIDTH
from igrsr.eval.streaming import item_chunks, streamed_ranks
from igrsr.models import IGRSR, SSEPT, BERT4Rec, LightRec, Popularity, ReaRecERL, ReaRecPRL, SASRec

BEAUTY = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "Beauty.txt"
USERS = 300
MAX_LEN = 20
# Chunk sizes: a few that do not divide Beauty's 12,102 columns, and the whole catalog.
CHUNK_SIZES = (997, 4096, 5000, 12102)


@pytest.fixture(scope="module")
def beauty():
    if not BEAUTY.exists():
        pytest.skip(f"{BEAUTY} is not here")
    return leave_one_out(load_dataset(BEAUTY))


def materialized_ranks(score, histories, targets, users, num_items, batch_size):
    """Today's ranking, written out: the batches of target_ranks, a dense history mask, ranks_from_scores."""
    by_length = np.argsort([min(len(h), MAX_LEN) for h in histories], kind="stable")
    ranks = torch.empty(len(targets), dtype=torch.long)
    for start in range(0, len(targets), batch_size):
        batch = by_length[start : start + batch_size]
        history = trim_left_padding({"history": pad_left([histories[i] for i in batch], MAX_LEN)})["history"]
        scores = score(history, torch.from_numpy(users[batch]))
        exclude = torch.zeros_like(scores, dtype=torch.bool)
        for row, user in enumerate(batch):
            exclude[row, torch.from_numpy(histories[user])] = True
        ranks[torch.from_numpy(batch)] = ranks_from_scores(scores, torch.from_numpy(targets[batch]), exclude)
    return ranks


def beauty_models(split):
    torch.manual_seed(0)
    num_items = split.num_items
    sasrec = SASRec(num_items, max_len=MAX_LEN)
    bert4rec = BERT4Rec(num_items, max_len=MAX_LEN)
    torch.nn.init.normal_(bert4rec.output_bias)  # a bias that matters
    popularity = Popularity(num_items, max_len=MAX_LEN)
    # Counts with many ties: the pessimistic tie rule decides most ranks.
    popularity.counts.copy_(torch.from_numpy(np.bincount(np.concatenate(split.train), minlength=num_items + 1) // 5))
    return {
        "sasrec": sasrec,
        "bert4rec": bert4rec,
        "ssept": SSEPT(num_items, split.num_users, max_len=MAX_LEN),
        "rearec-erl": ReaRecERL(num_items, max_len=MAX_LEN, reasoning_steps=1),
        "rearec-prl": ReaRecPRL(num_items, max_len=MAX_LEN, reasoning_steps=1),
        "lightrec": LightRec(sasrec, num_codebooks=2, codebook_size=16),
        "igrsr": IGRSR(sasrec, num_intents=2, num_prefix=1),
        "pop": popularity,
    }


@pytest.fixture
def one_thread():
    """The bit-for-bit comparisons run on one thread: with several, the CPU BLAS may split a
    product of one width differently from a product of another and round a score one ulp
    apart, which moves ties between items of equal vectors (LightRec's shared codes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("batch_size", [256, 7])
def test_streamed_ranks_equal_the_materialized_ones_on_beauty(beauty, batch_size, one_thread):
    histories, targets = beauty.test_history[:USERS], beauty.test_target[:USERS]
    users = np.arange(USERS)
    for name, model in beauty_models(beauty).items():
        model.eval()
        with torch.no_grad():
            expected = materialized_ranks(model.score, histories, targets, users, beauty.num_items, batch_size)
            assert len(set(expected.tolist())) > 10, name  # the models rank, not all alike
            for chunk_size in CHUNK_SIZES:
                streamed = target_ranks(
                    model.item_scores, histories, targets, beauty.num_items, MAX_LEN,
                    batch_size=batch_size, users=users, chunk_size=chunk_size,
                )  # fmt: skip
                assert torch.equal(streamed, expected), (name, chunk_size)


def test_model_ranks_stream_a_trained_model_as_materialized_ranking_does(beauty, tmp_path, one_thread):
    lines = BEAUTY.read_text().splitlines()[:USERS]
    path = tmp_path / "beauty_head.txt"
    path.write_text("\n".join(lines) + "\n")
    split = leave_one_out(load_dataset(path))
    torch.manual_seed(1)
    model = SASRec(split.num_items, max_len=MAX_LEN, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = pad_left(split.valid_history, MAX_LEN)
    targets = torch.cat([history[:, 1:], torch.from_numpy(split.valid_target)[:, None]], dim=1)
    for _ in range(5):  # a few full-batch steps: scores a trained model gives
        loss, _ = model.training_loss({"history": history, "targets": targets * (history > 0)})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    users = np.arange(len(split.test_target))
    with torch.no_grad():
        model.eval()
        expected = materialized_ranks(model.score, split.test_history, split.test_target, users, split.num_items, 64)
    for chunk_size in (None, 1, 100, split.num_items // 3 + 1):
        assert torch.equal(model_ranks(model, split, "test", batch_size=64, chunk_size=chunk_size), expected)


def test_chunks_cover_the_catalog_once_and_are_equally_wide():
    for columns, size in [(10, 3), (10, 5), (10, 10), (10, 30), (1, 4)]:
        chunks = list(item_chunks(columns, size))
        assert [item for _, start, stop in chunks for item in range(start, stop)] == list(range(columns))
        assert all(window.start <= start < stop <= window.stop for window, start, stop in chunks)
        assert {window.stop - window.start for window, _, _ in chunks} == {min(max(size, MIN_PRODUCT_WIDTH), columns)}
    assert list(item_chunks(600, 100))[-1] == (slice(600 - MIN_PRODUCT_WIDTH, 600), 500, 600)
    with pytest.raises(ValueError, match="chunk_size"):
        list(item_chunks(10, 0))


def test_ties_count_against_the_target_in_every_chunk():
    scores = torch.tensor([[0.0, 1.0, 2.0, 2.0, 2.0, 1.0, 2.0]])
    seen = SeenItems.from_padded(torch.tensor([[0, 4, 3]]))  # item 3 is seen and is the target
    for chunk_size in range(1, 8):
        ranks = streamed_ranks(MaterializedScores(scores), torch.tensor([3]), seen, chunk_size)
        assert ranks.tolist() == ranks_from_scores(scores, torch.tensor([3]), seen.mask(0, 7)).tolist() == [2]


def test_streamed_ranks_reject_nan_and_bad_targets():
    with pytest.raises(ValueError, match="NaN"):
        streamed_ranks(MaterializedScores(torch.tensor([[0.0, float("nan"), 1.0]])), torch.tensor([2]))
    with pytest.raises(ValueError, match="1..2"):
        streamed_ranks(MaterializedScores(torch.zeros(1, 3)), torch.tensor([3]))


def test_table_scores_of_items_are_the_chunks_bit_for_bit(one_thread):
    generator = torch.Generator().manual_seed(3)
    table, bias = torch.randn(3001, 64, generator=generator), torch.randn(3001, generator=generator)
    for rows in (1, 3, 300, 700):
        scores = TableScores(torch.randn(rows, 64, generator=generator), table, bias)
        items = torch.randint(1, 3001, (rows,), generator=generator)
        whole = scores.chunk(0, 3001)
        assert torch.equal(scores.of(items), whole.gather(1, items[:, None])[:, 0])


# --- top-k ----------------------------------------------------------------------------------


def reference_top_k(scores: torch.Tensor, k: int, exclude: torch.Tensor):
    """Materialized: padding and excluded items at -inf, then a stable sort (ties: lower id first)."""
    masked = scores.float().clone()
    masked[:, 0] = float("-inf")
    masked[exclude] = float("-inf")
    values, items = torch.sort(masked, dim=1, descending=True, stable=True)
    return items[:, :k], values[:, :k]


@pytest.mark.parametrize("chunk_size", [1, 7, 50, 101, None])
def test_top_k_equals_topk_over_materialized_scores(chunk_size):
    generator = torch.Generator().manual_seed(4)
    query, table = torch.randn(9, 16, generator=generator), torch.randn(101, 16, generator=generator)
    scores = TableScores(query, table)
    exclude = torch.randint(0, 101, (9, 12), generator=generator)
    items, values = top_k(scores, 10, exclude, chunk_size)
    whole = scores.chunk(0, 101)
    seen = SeenItems.from_padded(exclude).mask(0, 101)
    expected_values, expected_items = whole.masked_fill(seen, float("-inf"))[:, 1:].topk(10, dim=1)
    assert torch.equal(items, expected_items + 1) and torch.equal(values, expected_values)
    assert not seen.gather(1, items).any() and (items > 0).all()


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 100])
def test_top_k_breaks_ties_by_lower_item_id_whatever_the_chunks(chunk_size):
    scores = torch.tensor([[9.0, 1.0, 2.0, 2.0, 1.0, 2.0, -0.0, 0.0, 2.0], [0.0] + [5.0] * 8])
    exclude = torch.tensor([[3, 0], [0, 0]])
    items, values = top_k(MaterializedScores(scores), 6, exclude, chunk_size)
    expected_items, expected_values = reference_top_k(scores, 6, SeenItems.from_padded(exclude).mask(0, 9))
    assert items.tolist() == expected_items.tolist() == [[2, 5, 8, 1, 4, 6], [1, 2, 3, 4, 5, 6]]
    assert torch.equal(values, expected_values)


def test_top_k_with_fewer_candidates_than_k_ends_in_padding():
    scores = torch.tensor([[0.0, 3.0, float("-inf"), 1.0]])
    items, values = top_k(MaterializedScores(scores), 5, torch.tensor([[3]]), chunk_size=2)
    assert items.tolist() == [[1, 2, 0, 0, 0]]
    assert values[0, :2].tolist() == [3.0, float("-inf")] and values[0, 2:].isneginf().all()
    with pytest.raises(ValueError, match="NaN"):
        top_k(MaterializedScores(torch.tensor([[0.0, 1.0, float("nan")]])), 1)
    with pytest.raises(ValueError, match="k must be positive"):
        top_k(MaterializedScores(scores), 0)


def test_model_recommend_is_topk_of_its_scores_without_the_history():
    torch.manual_seed(5)
    model = BERT4Rec(60, max_len=8)
    torch.nn.init.normal_(model.output_bias)
    model.train()
    history = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 60]])
    items, values = model.recommend(history, 7, chunk_size=16)
    assert model.training  # the mode is restored
    with torch.no_grad():
        scores = model.eval().score(history)
    expected_values, expected_items = scores.scatter(1, history, float("-inf")).topk(7, dim=1)
    assert torch.equal(items, expected_items) and torch.equal(values, expected_values)
    everything, _ = model.recommend(history, 60, exclude=None)
    assert sorted(everything[0].tolist()) == list(range(1, 61))
    with pytest.raises(ValueError, match="exclude"):
        model.recommend(history, 3, exclude="seen")
