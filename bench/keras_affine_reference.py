"""Reference values for dlkit's Keras-exact augmentation, featurewise statistics and He normal.

Prints the literals pinned in crates/dlkit/tests/keras_augment.rs,
crates/dlkit/tests/batches.rs and crates/dlkit/src/models/init.rs. Run once by hand:

    python -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install keras-preprocessing==1.1.2 scipy numpy
    /tmp/kvenv/bin/pip download --no-deps tf-keras==2.21.0 -d /tmp/tfk
    /tmp/kvenv/bin/python bench/keras_affine_reference.py /tmp/tfk/tf_keras-2.21.0-py3-none-any.whl

(run for dlkit with keras-preprocessing 1.1.2, tf-keras 2.21.0, scipy 1.17.1, numpy 2.4.6).

With `--random N FILE` it instead writes N random cases per Keras code (image sizes, angles,
shifts, shears, zooms, flips, fill modes, many of them landing exactly on the border) with
Keras's outputs to FILE as JSON, for the ignored test `matches_keras_on_random_cases`:

    python bench/keras_affine_reference.py WHEEL --random 2000 /tmp/keras_cases.json
    DLKIT_KERAS_CASES=/tmp/keras_cases.json cargo test -p dlkit --test keras_augment -- --ignored

Two Keras codes are compared, since the geometry changed between them:
- `legacy`: keras_preprocessing 1.1.2 `apply_affine_transform` (what tf.keras <= 2.8 calls);
- `tf_keras`: the copy in keras >= 2.9 / tf_keras (tf_keras/src/preprocessing/image.py), read
  out of the wheel and executed with numpy and scipy only (no TensorFlow needed).
Both call scipy.ndimage.affine_transform(order=1) per channel.
"""
import re
import sys
import zipfile

import numpy as np
import scipy
from scipy import ndimage, stats
from keras_preprocessing.image import affine_transformations as legacy
from keras_preprocessing.image import ImageDataGenerator


def load_tf_keras(wheel):
    """transform_matrix_offset_center and apply_affine_transform from the tf_keras wheel."""
    with zipfile.ZipFile(wheel) as z:
        src = z.read("tf_keras/src/preprocessing/image.py").decode()
    ns = {"np": np, "scipy": scipy, "ndimage": ndimage}
    for name in ["transform_matrix_offset_center", "apply_affine_transform"]:
        m = re.search(r"^def %s\(.*?(?=^(?:def |@|class )|\Z)" % name, src, re.S | re.M)
        exec(m.group(0), ns)
    return ns["apply_affine_transform"]


def rust(name, a):
    """A Rust `const NAME: [f32; N]` literal, row-major, shortest float32 repr."""
    flat = np.asarray(a, dtype=np.float32).ravel()
    body = ", ".join(np.format_float_positional(v, unique=True, trim="0") for v in flat)
    print("const %s: [f32; %d] = [%s];" % (name, flat.size, body))


def image(channels):
    """5×7 test image, channel-last: channel 0 holds 1..35 in a scrambled order
    v(r, c) = (17·(7r + c) mod 35) + 1, channel 1 holds v² / 10."""
    r, c = np.meshgrid(np.arange(5), np.arange(7), indexing="ij")
    v = ((7 * r + c) * 17 % 35 + 1).astype(np.float32)
    planes = [v, v * v / 10.0][:channels]
    return np.stack(planes, axis=-1).astype(np.float32)


def transform(apply, x, p, fill, cval):
    """Keras ImageDataGenerator.apply_transform with these parameters (affine, then flips)."""
    y = apply(x, p.get("theta", 0), p.get("tx", 0), p.get("ty", 0), p.get("shear", 0),
              p.get("zx", 1), p.get("zy", 1), row_axis=0, col_axis=1, channel_axis=2,
              fill_mode=fill, cval=cval, order=1)
    if p.get("flip_horizontal"):
        y = y[:, ::-1, :]
    if p.get("flip_vertical"):
        y = y[::-1, :, :]
    return np.moveaxis(y, -1, 0)  # channels first, as dlkit stores images


CASES = [
    # name, parameters, fill_mode, cval, channels
    ("ROTATE_90_CONSTANT", dict(theta=90.0), "constant", -1.0, 1),
    ("ROTATE_30_NEAREST", dict(theta=30.0), "nearest", 0.0, 1),
    ("SHIFT_NEAREST", dict(tx=1.5, ty=-0.75), "nearest", 0.0, 1),
    ("SHIFT_CONSTANT", dict(tx=-0.4, ty=2.25), "constant", 0.0, 1),
    ("ZOOM_IN_NEAREST", dict(zx=0.8, zy=0.8), "nearest", 0.0, 1),
    ("ZOOM_OUT_CONSTANT", dict(zx=1.25, zy=1.25), "constant", -1.0, 1),
    ("ZOOM_MIXED_NEAREST", dict(zx=0.8, zy=1.25), "nearest", 0.0, 1),
    ("FLIP_AFTER_ROTATE", dict(theta=30.0, flip_horizontal=True), "constant", -1.0, 1),
    ("VERTICAL_FLIP_AFTER_SHIFT", dict(tx=1.0, flip_vertical=True), "constant", -1.0, 1),
    ("EVERYTHING_TWO_CHANNELS",
     dict(theta=-20.0, tx=0.6, ty=-1.3, shear=10.0, zx=0.9, zy=1.1, flip_horizontal=True),
     "constant", 0.5, 2),
]


def random_cases(tf_keras, n, path):
    """n random cases per Keras code, with Keras's outputs, as JSON."""
    import json
    rng = np.random.default_rng(0)
    cases = []
    for trial in range(n):
        h, w = [(32, 32), (5, 7), (7, 5), (8, 8), (6, 9)][trial % 5]
        x = (rng.random((h, w, 3)) * 10).astype(np.float32)
        pick = lambda *options: float(options[rng.integers(len(options))])
        p = dict(theta=pick(0, rng.uniform(-180, 180), 90, -90, 180, 45, 270, 30),
                 tx=pick(0, rng.uniform(-3, 3), 1.0, -2.0, 0.5, -1.5, 3.0),
                 ty=pick(0, rng.uniform(-3, 3), 0.5, -1.0),
                 shear=pick(0, 0, rng.uniform(-20, 20)),
                 zx=pick(1, rng.uniform(0.7, 1.3), 0.8, 1.25, 0.5, 2.0),
                 zy=pick(1, rng.uniform(0.7, 1.3), 1.25, 0.8),
                 flip_horizontal=bool(rng.integers(2)), flip_vertical=bool(rng.integers(2)))
        fill, cval = [("nearest", 0.0), ("constant", -3.0)][trial % 2]
        for version, apply in [("KerasPreprocessing", legacy.apply_affine_transform),
                               ("TfKeras", tf_keras)]:
            out = transform(apply, x, p, fill, cval)
            # Parameters as exact decimal strings: JSON number parsers may round them
            # (serde_json's default parser can be one unit in the last place off).
            exact = {k: (repr(v) if isinstance(v, float) else v) for k, v in p.items()}
            cases.append(dict(keras=version, height=h, width=w, params=exact, fill=fill, cval=cval,
                              image=np.moveaxis(x, -1, 0).ravel().tolist(),
                              expected=out.ravel().tolist()))
    with open(path, "w") as f:
        json.dump(cases, f)
    print("wrote", len(cases), "cases to", path)


def main():
    tf_keras = load_tf_keras(sys.argv[1])
    if len(sys.argv) > 2 and sys.argv[2] == "--random":
        return random_cases(tf_keras, int(sys.argv[3]), sys.argv[4])
    print("// numpy", np.__version__, "scipy", scipy.__version__)
    x1 = image(1)
    rust("IMAGE", np.moveaxis(image(2), -1, 0))
    for convention, apply in [("LEGACY", legacy.apply_affine_transform), ("TF_KERAS", tf_keras)]:
        for name, p, fill, cval, channels in CASES:
            print("// %s %s fill=%s cval=%s" % (convention, p, fill, cval))
            rust("%s_%s" % (convention, name), transform(apply, image(channels), p, fill, cval))
    # Identity parameters: Keras skips the transform, the image comes back unchanged.
    assert np.array_equal(tf_keras(x1, row_axis=0, col_axis=1, channel_axis=2), x1)

    # Featurewise statistics: ImageDataGenerator(featurewise_center=True,
    # featurewise_std_normalization=True, rescale=1/255).fit(x) on two 2×2 RGB images (u8).
    x = np.array([[[[0, 10, 255], [51, 20, 0]], [[102, 30, 255], [255, 40, 0]]],
                  [[[0, 50, 255], [51, 60, 255]], [[102, 70, 255], [255, 80, 255]]]],
                 dtype=np.uint8)  # N, H, W, C
    gen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True,
                             rescale=1 / 255.0)
    gen.fit(x)
    print("// featurewise mean", gen.mean.ravel().tolist(), "std", gen.std.ravel().tolist())
    test = np.array([[[[255, 0, 128]]]], dtype=np.float32)  # one 1×1 test image, raw pixels
    print("// standardize(test image (255, 0, 128))", gen.standardize(test.copy()).ravel().tolist())

    # He normal: tf_keras VarianceScaling(scale=2, fan_in, truncated_normal) divides by
    # truncnorm(-2, 2).std(); P(|z| <= 1 | |z| <= 2) pins the truncated shape.
    print("// truncnorm(-2, 2).std() =", repr(float(stats.truncnorm.std(-2, 2))))
    within1 = (stats.norm.cdf(1) - stats.norm.cdf(-1)) / (stats.norm.cdf(2) - stats.norm.cdf(-2))
    print("// P(|z| <= 1 | |z| <= 2) =", repr(float(within1)))


if __name__ == "__main__":
    main()
