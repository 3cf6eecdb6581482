"""Charts get at most 2k points per line, and the downsampled line keeps the first and last points and the spikes;
the web process checks a training config without loading the ML engine."""

import subprocess
import sys

import numpy as np

from tests.conftest import ROOT
from training_app.downsample import lttb


def test_a_million_points_shrink_to_2000_keeping_the_ends_and_the_spikes():
    rng = np.random.default_rng(0)
    x = np.arange(1_000_000)
    y = 2.0 * np.exp(-x / 300_000) + rng.normal(0, 0.01, x.size)
    y[123_457] = 9.0  # a loss spike
    y[876_543] = -3.0  # a dip
    x2, y2 = lttb(x, y, 2000)
    assert len(x2) == len(y2) == 2000
    assert (x2[0], x2[-1]) == (0, 999_999)
    assert np.all(np.diff(x2) > 0)
    assert y2.max() == 9.0 and y2.min() == -3.0


def test_short_series_come_back_unchanged():
    x2, y2 = lttb([1, 2, 3], [0.5, 0.4, 0.3], 2000)
    assert list(x2) == [1, 2, 3] and list(y2) == [0.5, 0.4, 0.3]


def test_the_web_process_validates_a_train_config_without_importing_torch():
    code = (
        "import sys; from training_app.engine_config import train_config_module as m; "
        "c = m().TrainConfig.from_dict({'base_model_path': 'a', 'output_dir': 'b', 'train_file': 'c', 'lr': -1}); "
        "print(sorted(c.problems()), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "['lr'] False"
