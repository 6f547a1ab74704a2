"""The GPU busy fraction: the meter's arithmetic on a fake reading, and add_metrics in a real run."""

from __future__ import annotations

import time

from codeit_plugins.gpu_meter import Meter


def test_the_meter_averages_what_the_driver_reports():
    readings = iter([100.0, 0.0, 50.0] + [50.0] * 1000)
    meter = Meter(lambda: next(readings))
    meter.start()
    while len(meter.samples) < 5:
        time.sleep(0.05)
    busy = meter.stop()
    assert 0.0 < busy < 1.0
    assert busy == sum(meter.samples) / len(meter.samples) / 100
    failing = Meter(lambda: 1 / 0)
    failing.start()
    time.sleep(0.3)
    assert failing.stop() is None
