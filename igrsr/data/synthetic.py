"""The embedded default dataset: synthetic sequences with planted latent intents (docs/design.md §2).

How a sequence is generated:

* The catalog is cut into clusters of items, each with a fixed order (a cluster is a series:
  item 1, item 2, ...). Item ids are shuffled, so the order is not visible in the ids.
* An intent is a distribution over a few clusters; clusters are shared between intents.
* A user draws a few intents and keeps, for each cluster, a reading position that starts at a
  random item. The sequence is a series of runs: each run picks one of the user's intents
  (not the one just used, if the user has several) and emits a few items; each item comes
  from a cluster drawn from the intent, and is the next item at the user's position in that
  cluster.
* With probability ``noise`` an item is replaced by a uniformly random one.

So there is sequential structure (continue along a cluster), and the user's *set* of intents
matters beyond the last few items: after a switch the next item comes from an intent last
seen several steps back, at the position where the user left its clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .interactions import InteractionData

# Each intent spreads over this many clusters; the catalog has CATALOG_CLUSTERS_PER_INTENT
# clusters per intent, so intents share clusters and one cluster does not identify an intent.
CLUSTERS_PER_INTENT = 3
CATALOG_CLUSTERS_PER_INTENT = 2
MIN_CLUSTER_SIZE = 2
# Mean number of items in a run before the user switches to another intent.
MEAN_RUN_LENGTH = 3.0


def make_synthetic(
    num_users: int = 1000,
    num_items: int = 500,
    num_intents: int = 8,
    intents_per_user: tuple[int, int] = (2, 3),
    seq_len: tuple[int, int] = (8, 20),
    noise: float = 0.1,
    seed: int = 0,
) -> InteractionData:
    """Generate sequences with planted intents; ranges ``(low, high)`` are inclusive.

    Deterministic in ``seed``. Users are ``1..num_users``; items ``1..num_items``.
    """
    _check_arguments(num_users, num_items, num_intents, intents_per_user, seq_len, noise)
    rng = np.random.default_rng(seed)
    world = _World.draw(rng, num_items, num_intents)
    sequences = [world.draw_user_sequence(rng, intents_per_user, seq_len, noise) for _ in range(num_users)]
    return InteractionData(
        sequences=sequences,
        num_items=num_items,
        user_ids=list(range(1, num_users + 1)),
        item_ids=np.arange(num_items + 1, dtype=np.int64),
        name="synthetic",
    )


def _check_arguments(num_users, num_items, num_intents, intents_per_user, seq_len, noise) -> None:
    if num_users < 1:
        raise ValueError(f"num_users must be positive, got {num_users}")
    if num_intents < 2:
        raise ValueError(f"num_intents must be at least 2, got {num_intents}")
    min_items = MIN_CLUSTER_SIZE * CATALOG_CLUSTERS_PER_INTENT * num_intents
    if num_items < min_items:
        raise ValueError(f"num_items must be at least {min_items} for {num_intents} intents, got {num_items}")
    if not 1 <= intents_per_user[0] <= intents_per_user[1] <= num_intents:
        raise ValueError(f"intents_per_user must satisfy 1 <= low <= high <= num_intents, got {intents_per_user}")
    if not 1 <= seq_len[0] <= seq_len[1]:
        raise ValueError(f"seq_len must satisfy 1 <= low <= high, got {seq_len}")
    if not 0 <= noise < 1:
        raise ValueError(f"noise must be in [0, 1), got {noise}")


@dataclass
class _World:
    """Clusters (series of items, stored back to back) and intents (distributions over clusters)."""

    num_items: int
    cluster_items: np.ndarray  # every cluster's items in series order, back to back
    cluster_start: np.ndarray  # (C,) offset of each cluster in cluster_items
    cluster_size: np.ndarray  # (C,)
    intent_clusters: np.ndarray  # (I, CLUSTERS_PER_INTENT) the clusters of each intent
    intent_cumulative_weights: np.ndarray  # (I, CLUSTERS_PER_INTENT) their cumulative probabilities

    @classmethod
    def draw(cls, rng: np.random.Generator, num_items: int, num_intents: int) -> "_World":
        num_clusters = CATALOG_CLUSTERS_PER_INTENT * num_intents
        # Shuffled ids, so a cluster's order is not visible in the ids.
        cluster_items = rng.permutation(num_items).astype(np.int64) + 1
        cluster_size = np.array([len(part) for part in np.array_split(cluster_items, num_clusters)])
        intent_clusters = np.stack(
            [rng.choice(num_clusters, size=CLUSTERS_PER_INTENT, replace=False) for _ in range(num_intents)]
        )
        weights = rng.dirichlet(np.ones(CLUSTERS_PER_INTENT), size=num_intents)
        return cls(
            num_items=num_items,
            cluster_items=cluster_items,
            cluster_start=np.cumsum(cluster_size) - cluster_size,
            cluster_size=cluster_size,
            intent_clusters=intent_clusters,
            intent_cumulative_weights=np.cumsum(weights, axis=1),
        )

    def draw_user_sequence(self, rng: np.random.Generator, intents_per_user, seq_len, noise) -> np.ndarray:
        length = rng.integers(seq_len[0], seq_len[1] + 1)
        num_user_intents = rng.integers(intents_per_user[0], intents_per_user[1] + 1)
        user_intents = rng.choice(len(self.intent_clusters), size=num_user_intents, replace=False)
        step_intents = user_intents[self._intent_of_each_step(rng, length, num_user_intents)]
        step_clusters = self._draw_clusters(rng, step_intents)
        sequence = self._read_clusters(rng, step_clusters)
        noisy = rng.random(length) < noise
        sequence[noisy] = rng.integers(1, self.num_items + 1, size=int(noisy.sum()))
        return sequence

    @staticmethod
    def _intent_of_each_step(rng: np.random.Generator, length: int, num_user_intents: int) -> np.ndarray:
        """Index (into the user's intents) of the intent behind each step: runs, switching intent."""
        run_lengths = rng.geometric(1 / MEAN_RUN_LENGTH, size=length)  # length runs always suffice
        # Adding 1..k-1 modulo k moves to a uniformly chosen *other* intent (k = 1 stays put).
        moves = rng.integers(1, max(num_user_intents, 2), size=length)
        run_intents = (rng.integers(num_user_intents) + np.cumsum(moves) - moves[0]) % num_user_intents
        return np.repeat(run_intents, run_lengths)[:length]

    def _draw_clusters(self, rng: np.random.Generator, step_intents: np.ndarray) -> np.ndarray:
        """Draw each step's cluster from its intent's distribution (inverse transform sampling)."""
        uniform = rng.random(len(step_intents))
        cumulative = self.intent_cumulative_weights[step_intents]
        member = np.minimum((uniform[:, None] >= cumulative).sum(axis=1), CLUSTERS_PER_INTENT - 1)
        return self.intent_clusters[step_intents, member]

    def _read_clusters(self, rng: np.random.Generator, step_clusters: np.ndarray) -> np.ndarray:
        """The item at each step: the next one of its cluster, from a random starting point per cluster."""
        start_point = rng.integers(0, self.cluster_size)
        # How many earlier steps used the same cluster: a rank within groups of a stable sort.
        by_cluster = np.argsort(step_clusters, kind="stable")
        sorted_clusters = step_clusters[by_cluster]
        earlier_uses = np.empty(len(step_clusters), dtype=np.int64)
        first_use_in_sorted = np.searchsorted(sorted_clusters, sorted_clusters)
        earlier_uses[by_cluster] = np.arange(len(step_clusters)) - first_use_in_sorted
        position = (start_point[step_clusters] + earlier_uses) % self.cluster_size[step_clusters]
        return self.cluster_items[self.cluster_start[step_clusters] + position]
