"""The refusals of the limits engine, as the client reads them: 429 and 403 with
``Retry-After``.

The messages follow OpenAI's own rate-limit errors ("Limit 60, Used 60, Requested 1.
Please try again in 1s.") so SDKs and people recognise them; the headers carry the
wait in whole seconds and, for the OpenAI SDKs, in milliseconds.
"""

from __future__ import annotations

import math

from aigw.errors import GatewayError
from aigw.limits.budgets import money
from aigw.limits.gcra import go_duration


def retry_after(seconds: float) -> dict[str, str]:
    """Retry-After in whole seconds (rounded up) and, for the OpenAI SDKs, in ms."""
    return {
        "Retry-After": str(max(1, math.ceil(seconds - 1e-9))),
        "retry-after-ms": str(max(1, math.ceil(seconds * 1000 - 1e-6))),
    }


def subject(kind: str, name: str, team: str) -> str:
    """'team NAME' or 'key ID (team NAME)'."""
    return f"team {name}" if kind == "team" else f"key {name} (team {team})"


def rate_limited(
    who: str,
    what: str,
    limit: int,
    used: int,
    asked: int,
    wait: float,
    headers: dict[str, str],
) -> GatewayError:
    """A requests- or tokens-per-minute limit (``what``) is used up for ``wait`` s."""
    unit = "RPM" if what == "requests" else "TPM"
    return GatewayError(
        429,
        f"Rate limit reached for {who} on {what} per minute ({unit}): "
        f"Limit {limit}, Used {used}, Requested {asked}. "
        f"Please try again in {go_duration(wait)}.",
        type=what,
        code="rate_limit_exceeded",
        headers={**headers, **retry_after(wait)},
    )


def too_many_parallel(who: str, limit: int) -> GatewayError:
    return GatewayError(
        429,
        f"Too many concurrent requests for {who}: at most {limit} may be in "
        "flight at once. Please try again when one has finished.",
        type="requests",
        code="rate_limit_exceeded",
        headers=retry_after(1.0),
    )


def unpriced(model: str, provider: str, upstream_model: str, budget_of: str) -> GatewayError:
    """A budget applies but the model's cost cannot be known."""
    return GatewayError(
        403,
        f"The model '{model}' has no known price, so its cost cannot be "
        f"checked against the budget of {budget_of}. Add a "
        f'[prices."{provider}/{upstream_model}"] entry to the '
        'gateway\'s config.toml (or set [budgets] unpriced = "allow").',
        type="insufficient_quota",
        code="budget_unpriced_model",
        param="model",
    )


def over_budget(
    who: str,
    budget: int,
    period_kind: str,
    spent: int,
    reserved: int,
    worst: int,
    resets: str,
    until_reset: float,
    max_output_set: bool,
) -> GatewayError:
    """The call's worst case does not fit in what is left of the budget."""
    left = max(0, budget - spent - reserved)
    message = (
        f"Budget exceeded for {who}: this request could cost up to {money(worst)} and "
        f"{money(left)} of the {money(budget)} {period_kind} budget is left "
        f"({money(spent)} spent, {money(reserved)} held by requests in flight). "
    )
    if spent + worst <= budget:
        # Only the reservations of calls still running are in the way.
        message += "It may fit once requests in flight finish; try again shortly."
        wait = 1.0
    else:
        message += f"The budget resets at {resets}."
        if not max_output_set:
            message += " Setting max_tokens lowers the worst case."
        wait = max(1.0, until_reset)
    return GatewayError(
        429,
        message,
        type="insufficient_quota",
        code="budget_exceeded",
        headers=retry_after(wait),
    )


def quota_wait_too_long(provider: str, model: str, eta: float, max_wait: float) -> GatewayError:
    """The provider quota's queue would hold the call longer than ``max_wait``."""
    eta = max(eta, 0.001)
    return GatewayError(
        429,
        f"The organisation's quota at provider '{provider}' for '{model}' is used up "
        f"and the wait ({go_duration(eta)}) is longer than this gateway queues "
        f"({max_wait:g} s). Please try again in {go_duration(eta)}.",
        type="requests",
        code="upstream_quota_exceeded",
        headers={
            "Retry-After": str(max(1, math.ceil(eta))),
            "retry-after-ms": str(math.ceil(eta * 1000)),
        },
    )
