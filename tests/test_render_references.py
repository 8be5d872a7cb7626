import numpy as np
import pytest

from dhlive.render.references import select_references


def test_references_span_opening_and_pose():
    rng = np.random.default_rng(0)
    n = 500
    aperture = np.abs(rng.normal(0, 0.2, n))
    euler = np.column_stack([rng.normal(0, 8, n), rng.normal(0, 4, n), rng.normal(0, 2, n)])
    idx = select_references(aperture, euler, 5)
    assert len(set(idx.tolist())) == 5
    assert idx[0] == np.argmax(aperture)  # the most open mouth first
    assert aperture[idx].min() < np.percentile(aperture, 20)  # and a (nearly) closed one
    yaw = euler[idx, 0]
    assert yaw.max() - yaw.min() > np.percentile(euler[:, 0], 90) - np.percentile(euler[:, 0], 10)
    assert np.array_equal(idx, select_references(aperture, euler, 5))  # deterministic


def test_too_few_distinct_frames_repeat_and_bad_calls_fail():
    idx = select_references(np.array([0.1, 0.1, 0.3]), np.zeros((3, 3)), 5)
    assert len(idx) == 5 and set(idx.tolist()) == {0, 2} and idx[0] == 2
    with pytest.raises(ValueError):
        select_references(np.zeros(0), np.zeros((0, 3)), 5)
