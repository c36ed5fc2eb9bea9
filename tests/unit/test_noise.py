"""The noise test of costflow compare: calibrated on simulated arms, against a bootstrap."""

from __future__ import annotations

import random
from decimal import Decimal

from pipeline.query.noise import A_MORE, WITHIN_NOISE, ArmSums, compare_arms


def _arm(rng: random.Random, n: int, scale: float, accept_p: float) -> list[tuple[Decimal, bool]]:
    # Heavy-tailed cost per task, like real traffic; acceptance independent of cost.
    return [
        (
            Decimal(round(rng.lognormvariate(0, 1.0) * scale * 10_000)).scaleb(-6),
            rng.random() < accept_p,
        )
        for _ in range(n)
    ]


def _sums(tasks: list[tuple[Decimal, bool]]) -> ArmSums:
    return ArmSums(
        tasks=len(tasks),
        accepted=sum(a for _, a in tasks),
        cost=sum((c for c, _ in tasks), Decimal(0)),
        accepted_cost=sum((c for c, a in tasks if a), Decimal(0)),
        cost_squared=sum(float(c) ** 2 for c, _ in tasks),
    )


def test_same_arms_are_within_noise_about_95_percent_of_the_time() -> None:
    rng = random.Random(11)
    runs = 400
    covered = sum(
        compare_arms(_sums(_arm(rng, 300, 1.0, 0.7)), _sums(_arm(rng, 300, 1.0, 0.7))).verdict
        == WITHIN_NOISE
        for _ in range(runs)
    )
    # Binomial(400, 0.95) lies in [366, 393] with probability above 0.999.
    assert 366 <= covered <= 393, covered


def test_a_real_difference_is_found() -> None:
    rng = random.Random(12)
    found = sum(
        compare_arms(_sums(_arm(rng, 400, 1.6, 0.7)), _sums(_arm(rng, 400, 1.0, 0.7))).verdict
        == A_MORE
        for _ in range(100)
    )
    assert found >= 90, found


def test_standard_error_agrees_with_a_bootstrap() -> None:
    rng = random.Random(13)
    tasks = _arm(rng, 500, 1.0, 0.6)
    se = _sums(tasks).standard_error()
    assert se is not None
    ratios = []
    for _ in range(800):
        sample = [rng.choice(tasks) for _ in tasks]
        accepted = sum(a for _, a in sample)
        ratios.append(float(sum(c for c, _ in sample)) / accepted)
    mean = sum(ratios) / len(ratios)
    bootstrap = (sum((r - mean) ** 2 for r in ratios) / (len(ratios) - 1)) ** 0.5
    assert abs(se - bootstrap) / bootstrap < 0.12, (se, bootstrap)


def test_too_few_or_no_accepted_outcomes_give_no_verdict() -> None:
    rng = random.Random(14)
    small = _sums(_arm(rng, 20, 1.0, 0.5))
    big = _sums(_arm(rng, 500, 3.0, 0.9))
    assert compare_arms(small, big).verdict.startswith("too few accepted outcomes")
    none = _sums([(Decimal(1), False)] * 10)
    result = compare_arms(none, big)
    assert result.difference is None and result.verdict == "no accepted outcome in an arm"
