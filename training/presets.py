"""Named model configurations and the experiment a training command describes. Importing this
module needs no torch (the CLI lists the presets from it)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .experiment import Experiment

PRESETS = {
    # HTNet at the size of the seed AU model (about 0.58M parameters with 3 outputs).
    "edge": dict(model="htnet", model_args=dict(dim=64, heads=4, num_hierarchies=2, block_repeats=(2, 2))),
    # The authors' configuration (about 139.6M parameters).
    "official": dict(model="htnet", model_args=dict(dim=256, heads=3, num_hierarchies=3, block_repeats=(2, 2, 10))),
    # The plain CNN the issue quotes as the scale reference.
    "cnn": dict(model="cnn", model_args=dict(width=32)),
    # L2 logistic regression on 4x4-pooled maps, C chosen by LOSO inside the training subjects.
    "linear": dict(model="linear", model_args=dict(pool=4, features="raw", c_grid=[0.001, 0.01, 0.1, 1.0])),
    # The same on HSV-encoded maps decoded to the colour wheel's chroma plane (models/linear.py).
    "linear-chroma": dict(model="linear", model_args=dict(pool=4, features="chroma",
                                                          c_grid=[0.001, 0.01, 0.1, 1.0])),
}
SETS = {"megc": "emotion", "samm-au": "au"}  # training set -> task


def make_experiment(set_name: str, preset: str = "edge", model_args: Optional[str] = None,
                    **settings) -> "Experiment":
    """The Experiment for training on `set_name` with `preset`; `model_args` is JSON overriding
    the preset's model arguments; `settings` are Experiment fields. Settings that cannot hold
    together are a ValueError naming them."""
    from .experiment import Experiment  # torch: imported when an experiment is made, not for the names
    if set_name not in SETS:
        raise ValueError(f"training set must be one of {sorted(SETS)}, got {set_name!r}")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    chosen = dict(PRESETS[preset])
    if model_args:
        try:
            overrides = json.loads(model_args)
        except ValueError as err:
            raise ValueError(f"--model-args is not JSON: {model_args!r}") from err
        chosen["model_args"] = dict(chosen["model_args"], **overrides)
    return Experiment(task=SETS[set_name], **settings, **chosen)
