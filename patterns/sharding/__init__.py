"""A sharded, replicated key-value store: placement strategies, quorums, rebalancing."""
