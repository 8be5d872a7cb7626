import numpy as np
import pytest

from dhlive.eval.metrics import articulation_ratio, best_lag, closed_fraction, jitter, pearson, shifted


def test_pearson_known_values():
    x = np.arange(50, dtype=float)
    assert pearson(x, 3 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert pearson(x, np.ones(50)) == 0.0
    rng = np.random.default_rng(0)
    a, noise = rng.standard_normal(20000), rng.standard_normal(20000)
    assert pearson(a, a + noise) == pytest.approx(1 / np.sqrt(2), abs=0.02)  # known correlation


@pytest.mark.parametrize("lag", [-3, 0, 2, 5])
def test_best_lag_finds_a_known_delay(lag):
    real = np.random.default_rng(1).standard_normal(300)
    gen = np.roll(real, lag)  # gen[t + lag] = real[t]: generated comes `lag` frames late
    found, r = best_lag(gen, real, max_lag=6)
    assert found == lag and r > 0.99
    g, rr = shifted(gen, real, lag)
    assert len(g) == len(rr) == 300 - abs(lag)


def test_articulation_closed_and_jitter():
    real = np.sin(np.linspace(0, 20, 500))
    assert articulation_ratio(0.5 * real + 3, real) == pytest.approx(0.5)
    ap = np.r_[np.zeros(90), np.ones(10)]
    assert closed_fraction(ap, rest=0.0, low=0.0, high=1.0) == pytest.approx(0.9)
    line = np.stack([np.arange(10.0), np.zeros(10)], 1)  # constant velocity: no jitter
    assert jitter(line) == 0.0
    zigzag = line.copy()
    zigzag[::2, 1] = 1.0  # +-1 alternation: second difference of norm 2
    assert jitter(zigzag) == pytest.approx(2.0)
