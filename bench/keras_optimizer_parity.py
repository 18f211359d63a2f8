#!/usr/bin/env python3
"""Record real tf.keras 2.x optimizer steps for dlkit's parity test.

    pip install tensorflow-cpu tf-keras
    python3 bench/keras_optimizer_parity.py     # writes crates/dlkit/tests/data/keras_optimizer_steps.json

The coursework's semantics are tf.keras 2.x's optimizer_v2 classes, which live on as
`tf_keras.optimizers.legacy.*`. Each configuration below starts a float64 variable at W0 and
applies the gradients GRADS (the same start and gradients as crates/dlkit/tests/optimizers.rs),
one `apply_gradients` per step, and records the weights after every step. The Rust test
`keras_recorded_steps_match` runs dlkit's optimizer with the same hyperparameters and compares.
"""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras
from tf_keras.optimizers import legacy

W0 = [0.5, -1.0, 2.0, 0.0]
GRADS = [[0.3, -0.7, 1.2, 0.05], [-0.4, 0.2, 0.9, -1.5], [0.1, -0.6, -0.8, 2.0]]

# name -> (legacy class, keyword arguments); every other hyperparameter is Keras's default.
CONFIGS = {
    "sgd": (legacy.SGD, {"learning_rate": 0.1}),
    "sgd-momentum": (legacy.SGD, {"learning_rate": 0.1, "momentum": 0.9}),
    "sgd-nesterov": (legacy.SGD, {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    "adagrad": (legacy.Adagrad, {"learning_rate": 0.1}),
    "rmsprop": (legacy.RMSprop, {"learning_rate": 0.01}),
    "rmsprop-momentum-centered": (legacy.RMSprop, {"learning_rate": 0.01, "momentum": 0.9, "centered": True}),
    "adam": (legacy.Adam, {"learning_rate": 0.01}),
    "adam-amsgrad": (legacy.Adam, {"learning_rate": 0.01, "amsgrad": True}),
    "nadam": (legacy.Nadam, {"learning_rate": 0.01}),
    "adadelta": (legacy.Adadelta, {"learning_rate": 1.0}),
}


def steps(cls, kwargs):
    """The weights after each of the len(GRADS) steps, as lists of float."""
    var = tf.Variable(np.array(W0, dtype=np.float64))
    opt = cls(**kwargs)
    out = []
    for g in GRADS:
        opt.apply_gradients([(tf.constant(np.array(g, dtype=np.float64)), var)])
        out.append([float(x) for x in var.numpy()])
    return out


def main():
    runs = {name: {"class": f"tf_keras.optimizers.legacy.{cls.__name__}", "kwargs": kwargs, "steps": steps(cls, kwargs)}
            for name, (cls, kwargs) in CONFIGS.items()}
    record = {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__, "w0": W0, "grads": GRADS, "runs": runs}
    path = Path(__file__).resolve().parent.parent / "crates/dlkit/tests/data/keras_optimizer_steps.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)
    print(f"wrote {path} (TensorFlow {tf.__version__}, tf_keras {tf_keras.__version__}, {len(runs)} configurations)")


if __name__ == "__main__":
    main()
