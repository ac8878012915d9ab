"""Schedulers: ASHA's promotion rule on hand-computed cases, the stop-only variant, random search."""
import math
import random

import pytest

from albert.errors import AlbertError
from albert.tune.asha import ASHA, AsyncHyperBand, Job, RandomSearch, make_rungs, make_scheduler


def test_rungs_are_geometric_and_end_at_max_resource():
    assert make_rungs(1, 27, 3) == [1, 3, 9, 27]
    assert make_rungs(1, 10, 3) == [1, 3, 9, 10]
    assert make_rungs(2, 16, 2) == [2, 4, 8, 16]
    assert make_rungs(5, 5, 3) == [5]
    for bad in [(0, 9, 3), (4, 3, 3), (1, 9, 1)]:
        with pytest.raises(AlbertError):
            make_rungs(*bad)
    with pytest.raises(AlbertError, match="mode"):
        ASHA(1, 9, 3, mode="maximise")
    with pytest.raises(AlbertError, match="scheduler"):
        make_scheduler("bohb", 1, 9)


def new(asha: ASHA) -> None:
    assert asha.suggest() == Job("new", None, 0, asha.rungs[0])


def test_asha_promotes_top_third_hand_computed():
    asha = ASHA(1, 9, eta=3, mode="max")  # rungs 1, 3, 9
    new(asha)
    asha.report(0, 1, 0.5)
    asha.report(1, 1, 0.7)
    # 2 results at rung 0 with eta 3: floor(2/3) = 0, nobody is promoted.
    new(asha)
    asha.report(2, 1, 0.6)
    # 3 results: the best one (trial 1) goes up.
    assert asha.suggest() == Job("promote", 1, 1, 3)
    new(asha)  # trial 1 is promoted once only
    for tid, m in [(3, 0.9), (4, 0.1), (5, 0.2)]:
        asha.report(tid, 1, m)
    # 6 results: top 2 = trials 3 and 1; 1 already went up, so 3.
    assert asha.suggest() == Job("promote", 3, 1, 3)
    new(asha)
    asha.report(1, 3, 0.8)
    asha.report(3, 3, 0.95)
    new(asha)  # 2 results at rung 1: none promoted
    for tid, m in [(6, 0.3), (7, 0.65), (8, 0.4)]:
        asha.report(tid, 1, m)
    # 9 results at rung 0: top 3 = 3, 1, 7.
    assert asha.suggest() == Job("promote", 7, 1, 3)
    for tid, m in [(9, 0.8), (10, 0.05), (11, 0.05)]:
        asha.report(tid, 1, m)
    asha.report(7, 3, 0.5)
    # Rung 1 has 3 results (top 1 = trial 3) and rung 0 has 12 (top 4 = 3, 9, 1, 7: trial 9 waits).
    # Higher rungs are served first.
    assert asha.suggest() == Job("promote", 3, 3, 9)
    assert asha.suggest() == Job("promote", 9, 1, 3)
    new(asha)
    asha.report(3, 9, 0.97)
    assert asha.suggest(allow_new=False) is None  # nothing left to promote, no new trials allowed


def test_asha_minimise_and_ties_go_to_older_trial():
    asha = ASHA(1, 4, eta=2, mode="min")  # rungs 1, 2, 4
    asha.report(5, 1, 0.3)
    asha.report(2, 1, 0.3)
    assert asha.suggest() == Job("promote", 2, 1, 2)  # tie: lower trial id first
    asha.report(7, 1, 0.1)
    asha.report(8, 1, 0.9)
    # 4 results, top 2 by smallest: 7 (0.1), then 2 (0.3, promoted).
    assert asha.suggest() == Job("promote", 7, 1, 2)
    assert asha.suggest() == Job("new", None, 0, 1)


def test_asha_nan_trial_is_stopped_and_never_promoted():
    asha = ASHA(1, 9, eta=3)
    assert asha.should_stop(0, 1, math.nan)
    assert asha.should_stop(1, 1, math.inf)
    assert not asha.should_stop(2, 1, 0.1)
    asha.report(0, 1, math.nan)
    asha.report(1, 1, math.inf)  # +inf is not "best" in max mode: non-finite ranks last
    asha.report(2, 1, 0.1)
    assert asha.suggest() == Job("promote", 2, 1, 3)
    asha2 = ASHA(1, 9, eta=3)
    for tid in range(3):
        asha2.report(tid, 1, math.nan)
    assert asha2.suggest(allow_new=False) is None  # the top third is a NaN trial: not promoted


def test_asha_promotions_respect_top_fraction_under_random_traffic():
    """Invariant over random asynchronous runs: a trial leaves rung k only while it is in the top
    floor(n_k / eta) of rung k, only once, and only when no higher rung has a trial to promote.
    (Rung k may send up more than floor(n_k / eta) in total: a trial promoted early can later
    drop out of the top, as the paper notes.)"""
    for seed in range(5):
        rng = random.Random(seed)
        asha = ASHA(1, 27, eta=3)
        inflight, next_id = [], 0
        for _ in range(300):
            if inflight and rng.random() < 0.5:
                job = inflight.pop(rng.randrange(len(inflight)))
                asha.report(job.trial_id, job.to_resource, rng.random())
                continue
            before = [set(p) for p in asha.promoted]
            higher_ready = [bool(asha.promotable(j)) for j in range(len(asha.rungs) - 1)]
            job = asha.suggest()
            if job.kind == "new":
                assert not any(higher_ready)
                job = job._replace(trial_id=next_id)
                next_id += 1
            else:
                k = asha.rungs.index(job.from_resource)
                assert job.to_resource == asha.rungs[k + 1]
                quota = len(asha.results[k]) // asha.eta
                assert job.trial_id in asha.top(k, quota)
                assert job.trial_id not in before[k]
                assert not any(higher_ready[k + 1:])
                # and it was the best of the waiting ones
                waiting = [t for t in asha.top(k, quota) if t not in before[k]]
                assert job.trial_id == waiting[0]
            inflight.append(job)


def test_asha_is_deterministic_given_reports():
    def run(seed_metrics):
        asha, jobs = ASHA(1, 9, 3), []
        rng = random.Random(seed_metrics)
        tid = 0
        for _ in range(60):
            job = asha.suggest()
            if job.kind == "new":
                job = job._replace(trial_id=tid)
                tid += 1
            jobs.append(job)
            asha.report(job.trial_id, job.to_resource, round(rng.random(), 2))
        return jobs

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_async_hyperband_cuts_below_quantile_of_earlier_results():
    ahb = AsyncHyperBand(1, 9, eta=3, mode="max")  # decisions at rungs 1 and 3
    assert ahb.suggest() == Job("new", None, 0, 9)
    assert not ahb.should_stop(0, 1, 0.5)  # first result at a rung: nothing to compare with
    assert ahb.should_stop(1, 1, 0.4)  # cutoff = quantile([0.5], 2/3) = 0.5
    assert not ahb.should_stop(2, 1, 0.6)  # cutoff = quantile([0.5, 0.4], 2/3) = 0.4667
    assert ahb.should_stop(3, 1, 0.45)  # cutoff = quantile([0.5, 0.4, 0.6], 2/3) = 0.5333
    assert not ahb.should_stop(0, 2, 0.1)  # between rungs, already judged at rung 1: no new decision
    assert ahb.should_stop(1, 2, 0.9)  # a stopped trial stays stopped
    assert not ahb.should_stop(2, 3, 0.7)
    assert ahb.should_stop(0, 3, 0.65)  # cutoff at rung 3 = 0.7
    assert not ahb.should_stop(2, 9, 0.1)  # the top rung decides nothing
    assert ahb.should_stop(4, 1, math.nan)


def test_async_hyperband_minimise_and_replay():
    events = [(0, 1, 0.5), (1, 1, 0.6), (2, 1, 0.4), (3, 1, 0.48), (0, 3, 0.3), (2, 3, 0.35)]
    live = AsyncHyperBand(1, 9, eta=3, mode="min")
    decisions = [live.should_stop(*e) for e in events]
    assert decisions == [False, True, False, True, False, True]  # cutoffs 0.5, 0.4333, 0.4667 (q = 1/3), then 0.3
    # Rung results replayed through report() (as after a crash) rebuild the same state.
    replay = AsyncHyperBand(1, 9, eta=3, mode="min")
    for e in events:
        replay.report(*e)
    assert replay.dead == live.dead and replay.results == live.results


def test_random_search_runs_every_trial_to_max():
    rs = RandomSearch(1, 27, 3)
    assert rs.suggest() == Job("new", None, 0, 27)
    assert rs.suggest(allow_new=False) is None
    assert not rs.should_stop(0, 5, 0.1) and rs.should_stop(1, 5, math.nan)


def test_drain_finishes_one_trial_when_the_budget_leaves_rungs_short():
    """6 configurations, eta 3: rung 1 promotes 2, rung 3 (2 results) promotes none by the rule.
    Once the budget is spent, drain promotes the best of the highest rung until one trial reaches the top."""
    from albert.tune.asha import ASHA

    s = ASHA(min_resource=1, max_resource=9, eta=3, mode="max")
    assert s.rungs == [1, 3, 9]
    metrics = {1: 0.1, 2: 0.5, 3: 0.3, 4: 0.9, 5: 0.2, 6: 0.4}
    for tid, m in metrics.items():
        s.report(tid, 1, m)
    first, second = s.suggest(allow_new=False), s.suggest(allow_new=False)
    assert (first.trial_id, second.trial_id) == (4, 2)  # floor(6/3) = 2: the best two
    assert s.suggest(allow_new=False) is None
    s.report(4, 3, 0.6)
    s.report(2, 3, 0.7)
    assert s.suggest(allow_new=False) is None  # 2 results at rung 3 < eta: the rule promotes nothing
    job = s.drain()
    assert (job.kind, job.trial_id, job.from_resource, job.to_resource) == ("promote", 2, 3, 9)
    s.report(2, 9, 0.8)
    assert s.drain() is None  # a trial reached max_resource: done
