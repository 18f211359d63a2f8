#!/usr/bin/env python3
"""Train the same recipes in real Keras (tf.keras 2.x) and in dlkit, on the same images, over
several seeds, and print one table of test accuracies (mean ± sample std, min–max).

The coursework ran TensorFlow 2.x, whose optimizers are `tf_keras.optimizers.legacy.*`
(optimizer_v2); this script uses those (Keras 3's RMSprop, Nadam and Adam differ slightly).

Recipes (each optimizer at its Keras defaults, batch 128, pixels scaled by 1/255, no
augmentation, the weights of the best validation loss kept, as Keras's ModelCheckpoint
keeps by default, and tested on the test images):
  * section 1's MLP (3072 → 1000 → 1000 → 10, ReLU, Glorot-uniform, L2 0.01 on every kernel)
    with AdaGrad, RMSProp, Nadam, AdaDelta and Adam;
  * ResNet-20 v1 (the Keras `cifar10_resnet` example: He-normal convolutions with biases and
    L2 1e-4, batch norm momentum 0.99 and epsilon 1e-3, 1×1 projection shortcuts without batch
    norm) with Adam.

Both systems read one split: `dlkit export` writes the training, validation and test images a
`dlkit train --data-seed 0` run uses, and Keras trains on those files. Model seeds (weights,
shuffling) vary; the split does not.

Needs: `pip install tensorflow-cpu tf-keras` and CIFAR-10 under $DLKIT_DATA.
Results are kept in <out>/results.json as each run ends, so an interrupted run resumes.

    DLKIT_DATA=../shared/data python3 bench/keras_training_parity.py --seeds 3
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MLP_OPTIMIZERS = ["adagrad", "rmsprop", "nadam", "adadelta", "adam"]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def dlkit_binary(out):
    """A copy of the release binary, so that a rebuild during the run cannot change it."""
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "dlkit", "--bin", "dlkit"], cwd=ROOT, check=True)
    copy = os.path.join(out, "dlkit-binary")
    shutil.copy2(os.path.join(ROOT, "target", "release", "dlkit"), copy)
    return copy


def export_split(dlkit, limit, out):
    folder = os.path.join(out, f"data-{limit}")
    if not os.path.exists(os.path.join(folder, "test_labels.npy")):
        subprocess.run([dlkit, "export", "--dataset", "cifar10", "--limit", str(limit), "--seed", "0", "--out", folder],
                       check=True)
    load = lambda name: (np.load(os.path.join(folder, f"{name}_images.npy")).astype("float32") / 255.0,
                         np.load(os.path.join(folder, f"{name}_labels.npy")).astype("int64"))
    return {name: load(name) for name in ["train", "validation", "test"]}


# ---------------------------------------------------------------- Keras side

def keras_mlp(keras):
    l2 = keras.regularizers.l2(0.01)
    dense = lambda units, act: keras.layers.Dense(units, activation=act, kernel_initializer="glorot_uniform",
                                                 kernel_regularizer=l2)
    return keras.Sequential([keras.layers.Input((32, 32, 3)), keras.layers.Flatten(),
                             dense(1000, "relu"), dense(1000, "relu"), dense(10, "softmax")])


def keras_resnet20(keras):
    layers = keras.layers

    def conv(x, filters, kernel=3, strides=1):
        return layers.Conv2D(filters, kernel, strides=strides, padding="same", kernel_initializer="he_normal",
                             kernel_regularizer=keras.regularizers.l2(1e-4))(x)

    bn = lambda x: layers.BatchNormalization(momentum=0.99, epsilon=1e-3)(x)
    inputs = layers.Input((32, 32, 3))
    x = layers.Activation("relu")(bn(conv(inputs, 16)))
    for stage, filters in enumerate([16, 32, 64]):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            y = layers.Activation("relu")(bn(conv(x, filters, strides=strides)))
            y = bn(conv(y, filters))
            if strides != 1 or x.shape[-1] != filters:
                x = conv(x, filters, kernel=1, strides=strides)
            x = layers.Activation("relu")(layers.add([x, y]))
    x = layers.Flatten()(layers.AveragePooling2D(8)(x))
    outputs = layers.Dense(10, activation="softmax", kernel_initializer="he_normal")(x)
    return keras.Model(inputs, outputs)


def keras_run(model_name, optimizer, seed, data, epochs):
    import tf_keras as keras
    keras.utils.set_random_seed(seed)
    model = keras_mlp(keras) if model_name == "mlp" else keras_resnet20(keras)
    opt = {"adagrad": keras.optimizers.legacy.Adagrad, "rmsprop": keras.optimizers.legacy.RMSprop,
           "nadam": keras.optimizers.legacy.Nadam, "adadelta": keras.optimizers.legacy.Adadelta,
           "adam": keras.optimizers.legacy.Adam}[optimizer]()
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class KeepBest(keras.callbacks.Callback):
        """Keras ModelCheckpoint's default choice (lowest val_loss), kept in memory; epoch times."""
        def __init__(self):
            super().__init__()
            self.best, self.weights, self.times = float("inf"), None, []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)  # validation included, as Keras reports
            if logs["val_loss"] < self.best:
                self.best, self.weights = logs["val_loss"], self.model.get_weights()

    keep = KeepBest()
    (x, y), (xv, yv), (xt, yt) = data["train"], data["validation"], data["test"]
    h = model.fit(x, y, batch_size=128, epochs=epochs, validation_data=(xv, yv), shuffle=True, verbose=0,
                  callbacks=[keep])
    model.set_weights(keep.weights)
    test_loss, test_acc = model.evaluate(xt, yt, batch_size=256, verbose=0)
    return {"test_accuracy": float(test_acc), "test_loss": float(test_loss),
            "val_accuracy": [float(v) for v in h.history["val_accuracy"]],
            "epoch_seconds": keep.times}


# ---------------------------------------------------------------- dlkit side

def dlkit_run(dlkit, model_name, optimizer, seed, limit, epochs, out):
    folder = os.path.join(out, "dlkit", f"{model_name}-{optimizer}-limit{limit}-epochs{epochs}-seed{seed}")
    cmd = [dlkit, "train", "--dataset", "cifar10", "--model", "resnet20" if model_name == "resnet20" else "mlp",
           "--optimizer", optimizer, "--epochs", str(epochs), "--batch-size", "128", "--limit", str(limit),
           "--seed", str(seed), "--data-seed", "0", "--monitor", "val_loss", "--out", folder]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    name = f"cifar10-{'resnet20' if model_name == 'resnet20' else 'mlp'}-{optimizer}.json"
    with open(os.path.join(folder, name)) as f:
        record = json.load(f)
    epochs_ = record["history"]["epochs"]
    return {"test_accuracy": record["test"]["accuracy"], "test_loss": record["test"]["loss"],
            "val_accuracy": [e["val_acc"] for e in epochs_],
            "epoch_seconds": [e["seconds"] + e.get("eval_seconds", 0.0) for e in epochs_]}


# ---------------------------------------------------------------- table

def summary(values):
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {sd:.3f} ({min(values):.3f}–{max(values):.3f})"


def table(results, recipes, seeds):
    rows = ["| recipe | optimizer | dlkit test accuracy | Keras test accuracy | dlkit − Keras (means) "
            "| s/epoch dlkit | s/epoch Keras |",
            "|---|---|---|---|---|---|---|"]
    for model_name, optimizer, limit, epochs in recipes:
        recipe = (model_name, optimizer, limit, epochs)
        got = {s: [results.get(key(s, recipe, seed)) for seed in seeds] for s in ["dlkit", "keras"]}
        if any(r is None for rs in got.values() for r in rs):
            continue
        acc = {s: [r["test_accuracy"] for r in rs] for s, rs in got.items()}
        sec = {s: statistics.fmean(t for r in rs for t in r["epoch_seconds"]) for s, rs in got.items()}
        diff = statistics.fmean(acc["dlkit"]) - statistics.fmean(acc["keras"])
        label = f"{'MLP' if model_name == 'mlp' else 'ResNet-20'}, {limit} images, {epochs} epochs"
        rows.append(f"| {label} | {optimizer} | {summary(acc['dlkit'])} | {summary(acc['keras'])} | {diff:+.3f} "
                    f"| {sec['dlkit']:.1f} | {sec['keras']:.1f} |")
    return "\n".join(rows)


def key(system, recipe, seed):
    """Results are kept under their whole recipe, so a changed size or length reruns."""
    model_name, optimizer, limit, epochs = recipe
    return f"{system}/{model_name}/{optimizer}/limit{limit}/epochs{epochs}/seed{seed}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="model seeds per recipe and system (1, 2, ...)")
    p.add_argument("--mlp-limit", type=int, default=20000, help="training images for the MLP (a tenth validates)")
    p.add_argument("--mlp-epochs", type=int, default=5)
    p.add_argument("--resnet-limit", type=int, default=10000, help="training images for ResNet-20")
    p.add_argument("--resnet-epochs", type=int, default=3)
    p.add_argument("--only", choices=["mlp", "resnet20"], help="run one recipe family")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "keras-parity"))
    a = p.parse_args()
    if not os.environ.get("DLKIT_DATA"):
        sys.exit("set DLKIT_DATA to the folder holding CIFAR-10 (cifar-10-batches-bin or cifar10-jpg)")
    try:
        import tf_keras  # noqa: F401
        import tensorflow as tf
    except ImportError:
        sys.exit("needs TensorFlow and tf_keras: pip install tensorflow-cpu tf-keras")
    os.makedirs(a.out, exist_ok=True)
    results_path = os.path.join(a.out, "results.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}
    seeds = list(range(1, a.seeds + 1))
    recipes = [("mlp", o, a.mlp_limit, a.mlp_epochs) for o in MLP_OPTIMIZERS if a.only in (None, "mlp")]
    recipes += [("resnet20", "adam", a.resnet_limit, a.resnet_epochs)] if a.only in (None, "resnet20") else []
    dlkit = dlkit_binary(a.out)
    for recipe in recipes:
        model_name, optimizer, limit, epochs = recipe
        data = export_split(dlkit, limit, a.out)
        for seed in seeds:
            for system in ["dlkit", "keras"]:
                k = key(system, recipe, seed)
                if k in results:
                    continue
                start = time.perf_counter()
                if system == "dlkit":
                    results[k] = dlkit_run(dlkit, model_name, optimizer, seed, limit, epochs, a.out)
                else:
                    results[k] = keras_run(model_name, optimizer, seed, data, epochs)
                print(f"{k}: test accuracy {results[k]['test_accuracy']:.4f} ({time.perf_counter() - start:.0f} s)",
                      flush=True)
                tmp = results_path + ".tmp"
                with open(tmp, "w") as f:
                    json.dump(results, f, indent=1)
                os.replace(tmp, results_path)
    print()
    print(f"{cpu_name()}, {os.cpu_count()} threads; TensorFlow {tf.__version__}, tf_keras "
          f"{tf_keras.__version__} (legacy optimizers); seeds {seeds}; split: dlkit export --seed 0")
    print(table(results, recipes, seeds))


if __name__ == "__main__":
    main()
