"""The anomaly strategies on plain histories (no Spark)."""

from __future__ import annotations

import math

from etl.quality.anomaly import Verdict, online_normal, relative_rate_of_change


def test_relative_rate_of_change_compares_with_the_previous_value():
    history = [1000.0, 1010.0, 990.0]
    assert relative_rate_of_change(history, 400.0, max_rate_decrease=0.5) == Verdict(
        True, 495.0, math.inf, "400 outside [495, inf] (previous 990)")
    assert relative_rate_of_change(history, 1900.0, max_rate_decrease=0.5,
                                   max_rate_increase=2.0) == Verdict(
        False, 495.0, 1980.0, "1900 within [495, 1980] (previous 990)")
    assert relative_rate_of_change([], 5.0, max_rate_increase=2.0) == Verdict(
        None, -math.inf, math.inf, "not enough history: 0 of 1 runs")


def test_online_normal_uses_mean_and_sample_stddev_of_history():
    history = [100.0, 102.0, 98.0, 101.0, 99.0]  # mean 100, sample stddev sqrt(2.5)
    verdict = online_normal(history, 105.0, lower_deviations=3.0, upper_deviations=3.0)
    assert verdict.anomalous is True
    assert (round(verdict.lower, 4), round(verdict.upper, 4)) == (95.2566, 104.7434)
    assert online_normal(history, 104.0).anomalous is False
    assert online_normal(history, 96.0, lower_deviations=2.0).anomalous is True


def test_online_normal_leaves_earlier_anomalies_out_of_the_baseline():
    with_spike = [100.0, 102.0, 98.0, 5000.0, 101.0, 99.0]
    assert online_normal(with_spike, 100.0) == online_normal(
        [100.0, 102.0, 98.0, 101.0, 99.0], 100.0)


def test_online_normal_needs_min_history():
    assert online_normal([1.0, 2.0], 1.5) == Verdict(
        None, -math.inf, math.inf, "not enough history: 2 of 3 runs")
    assert online_normal([1.0, 2.0], 1.5, min_history=2).anomalous is False
