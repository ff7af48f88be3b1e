"""One call's candidate list: a route's targets in the order its strategy gives.

* ``failover``: as configured.
* ``weighted``: a weighted random order (the first pick is random by weight, then the
  next among the rest, and so on), so load spreads by weight and failover still has
  somewhere to go.
* ``latency``: lowest recent time to first byte first (:mod:`aigw.routing.health`);
  a target never measured counts as fastest so it gets measured, and with
  probability :data:`EXPLORE` a random target goes first so that a target that
  recovered from being slow is noticed.
* ``cost``: cheapest for this call first (the price table), unpriced targets last.

Then failover never moves to a pricier target than the first unless the route says
``allow_pricier_fallback``: the others are dropped, each with its reason, which the
ledger records. An unpriced target counts as pricier than a priced first choice.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from aigw.pricing import Price
from aigw.routing.targets import ModelRoute, Target
from aigw.usage import Usage

EXPLORE = 0.05
# Output tokens assumed when comparing prices for a call that sets no max_tokens.
TYPICAL_OUTPUT = 512

PRICIER = "pricier"  # skipped: costs more than the first choice

Lookup = Callable[[str, str], Price | None]
Latency = Callable[[str], float | None]


def call_cost(price: Price | None, prompt_tokens: int, max_output: int | None) -> int | None:
    """What the call would cost at ``price`` (nano-USD), for comparing targets."""
    if price is None:
        return None
    return price.cost_nusd(Usage(prompt_tokens, max_output or TYPICAL_OUTPUT))


def order(
    route: ModelRoute,
    *,
    targets: Sequence[Target] | None = None,
    strategy: str | None = None,
    prices: Lookup,
    latency: Latency,
    prompt_tokens: int,
    max_output: int | None,
    rng: random.Random,
) -> tuple[list[Target], list[tuple[Target, str]]]:
    """The call's candidates in order, and the targets skipped with the reason.

    ``targets``: the route's targets this call may use (all when None); ``strategy``:
    one that replaces the route's (the request's ``x-aigw-route`` preference)."""
    targets = list(route.targets if targets is None else targets)
    strategy = strategy or route.strategy
    costs: dict[Target, int | None] = {
        t: call_cost(prices(t.provider.name, t.upstream_model), prompt_tokens, max_output)
        for t in targets
    }
    if strategy == "weighted":
        # Efraimidis-Spirakis: sorting by u ** (1 / w) is a weighted random order.
        targets.sort(key=lambda t: rng.random() ** (1.0 / t.weight), reverse=True)
    elif strategy == "latency":
        if rng.random() < EXPLORE:
            rng.shuffle(targets)
        else:
            targets.sort(key=lambda t: latency(t.id) or 0.0)
    elif strategy == "cost":
        targets.sort(key=lambda t: (costs[t] is None, costs[t] or 0))
    if route.allow_pricier_fallback:
        return targets, []
    first_cost = costs[targets[0]]
    if first_cost is None:
        return targets, []  # nothing to compare against
    kept, skipped = [targets[0]], []
    for t in targets[1:]:
        cost = costs[t]
        if cost is None or cost > first_cost:
            skipped.append((t, PRICIER))
        else:
            kept.append(t)
    return kept, skipped
