"""Is a difference in cost per accepted outcome larger than the noise?

Cost per accepted outcome of an arm is a ratio of two sums over its tasks,
R = sum(cost) / sum(accepted). Its standard error follows from the delta method
(the linearisation used for ratio estimators in survey sampling): with n tasks,
K accepted and per-task residuals c_i - R * a_i,

    SE(R) = sqrt(n / (n - 1) * sum((c_i - R * a_i)^2)) / K

and sum((c_i - R a_i)^2) = sum(c^2) - 2 R sum(c * a) + R^2 K needs only sums,
so ClickHouse computes them in one pass. Two independent arms differ beyond
the noise when the 95% interval of R_a - R_b excludes zero. Statistics are
float; the cost per accepted outcome itself stays Decimal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from pipeline.pricing.engine import MONEY

Z_95 = 1.959963984540054
A_MORE = "A costs more"
B_MORE = "B costs more"
WITHIN_NOISE = "within noise"
# Below this many accepted outcomes per arm the normal approximation is not
# trusted: the answer is "too few", never a verdict.
MIN_ACCEPTED = 30


@dataclass(frozen=True)
class ArmSums:
    """What an arm's tasks add up to: all the ratio estimator needs."""

    tasks: int
    accepted: int
    cost: Decimal
    accepted_cost: Decimal  # sum of cost over accepted tasks = sum(c * a)
    cost_squared: float  # sum of cost^2
    # Tasks with a call the price book could not price: their cost counts that call
    # as 0, so every cost figure of the arm is a lower bound when this is not 0.
    unpriced_tasks: int = 0

    @classmethod
    def none(cls) -> ArmSums:
        return cls(0, 0, Decimal(0), Decimal(0), 0.0)

    def __add__(self, other: ArmSums) -> ArmSums:
        return ArmSums(
            self.tasks + other.tasks,
            self.accepted + other.accepted,
            MONEY.add(self.cost, other.cost),
            MONEY.add(self.accepted_cost, other.accepted_cost),
            self.cost_squared + other.cost_squared,
            self.unpriced_tasks + other.unpriced_tasks,
        )

    @property
    def cost_per_accepted_outcome(self) -> Decimal | None:
        return self.cost / self.accepted if self.accepted else None

    def standard_error(self) -> float | None:
        if self.accepted == 0 or self.tasks < 2:
            return None
        ratio = float(self.cost) / self.accepted
        residual = (
            self.cost_squared
            - 2 * ratio * float(self.accepted_cost)
            + ratio * ratio * self.accepted
        )
        # Cancellation can leave a tiny negative where the true value is 0.
        residual = max(residual, 0.0)
        return math.sqrt(self.tasks / (self.tasks - 1) * residual) / self.accepted


@dataclass(frozen=True)
class Difference:
    """R_a - R_b with its 95% interval; ``verdict`` says what can be concluded."""

    difference: float | None
    low: float | None
    high: float | None
    verdict: str

    @property
    def outside_noise(self) -> bool:
        return self.verdict in (A_MORE, B_MORE)


def compare_arms(a: ArmSums, b: ArmSums, min_accepted: int = MIN_ACCEPTED) -> Difference:
    se_a, se_b = a.standard_error(), b.standard_error()
    ra, rb = a.cost_per_accepted_outcome, b.cost_per_accepted_outcome
    if ra is None or rb is None or se_a is None or se_b is None:
        return Difference(None, None, None, "no accepted outcome in an arm")
    difference = float(ra - rb)
    half = Z_95 * math.sqrt(se_a * se_a + se_b * se_b)
    low, high = difference - half, difference + half
    if min(a.accepted, b.accepted) < min_accepted:
        verdict = f"too few accepted outcomes (fewer than {min_accepted} in an arm)"
    elif low > 0:
        verdict = A_MORE
    elif high < 0:
        verdict = B_MORE
    else:
        verdict = WITHIN_NOISE
    return Difference(difference, low, high, verdict)
