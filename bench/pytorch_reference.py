#!/usr/bin/env python3
"""PyTorch reference for `dlkit bench`: the same models, shapes, optimizers and thread count,
timed the same way (median of 5 repetitions after one warm-up): training steps (Adam), the
evaluation forward pass (model.eval() under torch.no_grad()), optimizer updates and whole
quick-mode epochs (DataLoader, per-sample shift + flip, steps, evaluation). Prints JSON records
{workload, batch, rate[, peak_rss_mib, seconds]} whose names match dlkit's, so bench/compare.py
can pair them.

    python3 bench/pytorch_reference.py [--threads 2] [--suite steps,eval,updates,epochs] [--isolate]
    (needs `pip install torch`)
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from resnet_d_reference import ResNetDSE


def conv(cin, cout, k, stride=1, padding="same"):
    if padding == "same":
        padding = k // 2
    elif padding == "valid":
        padding = 0
    return nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=True)


class Mlp(nn.Module):
    l2 = 0.01

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(3072, 1000), nn.Linear(1000, 1000), nn.Linear(1000, 10)])

    def forward(self, x):
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < 2:
                x = F.relu(x)
        return x

    def kernels(self):
        return [l.weight for l in self.layers]


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = conv(cin, cout, 3, stride), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.conv2, self.bn2 = conv(cout, cout, 3), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.projection = conv(cin, cout, 1, stride, padding=0) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.projection(x) if self.projection is not None else x))


class ResNet(nn.Module):
    """Keras cifar10_resnet v1, depth 6n+2."""
    l2 = 1e-4

    def __init__(self, depth):
        super().__init__()
        n = (depth - 2) // 6
        self.stem, self.bn = conv(3, 16, 3), nn.BatchNorm2d(16, eps=1e-3, momentum=0.01)
        blocks, cin = [], 16
        for stage, cout in enumerate([16, 32, 64]):
            for b in range(n):
                blocks.append(Block(cin, cout, 2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(F.avg_pool2d(x, 8).flatten(1))

    def kernels(self):
        return [m.weight for m in self.modules() if isinstance(m, nn.Conv2d)]


class ConvModule(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding="same"):
        super().__init__()
        self.conv, self.bn = conv(cin, cout, k, stride, padding), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class MiniGoogLeNet(nn.Module):
    l2 = 0.0
    BODY = [("i", 32, 32), ("i", 32, 48), ("d", 80), ("i", 112, 48), ("i", 96, 64), ("i", 80, 80),
            ("i", 48, 96), ("d", 96), ("i", 176, 160), ("i", 176, 160)]

    def __init__(self, channels, divisor=1):
        super().__init__()
        w = lambda f: max(1, f // divisor)
        self.stem = ConvModule(channels, w(96), 3)
        c, self.body = w(96), nn.ModuleList()
        for stage in self.BODY:
            if stage[0] == "i":
                a, b = w(stage[1]), w(stage[2])
                self.body.append(nn.ModuleList([ConvModule(c, a, 1), ConvModule(c, b, 3)]))
                c = a + b
            else:
                f = w(stage[1])
                self.body.append(nn.ModuleList([ConvModule(c, f, 3, 2, "valid")]))
                c += f
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.stem(x)
        for m in self.body:
            if len(m) == 2:
                x = torch.cat([m[0](x), m[1](x)], 1)
            else:
                x = torch.cat([m[0](x), F.max_pool2d(x, 3, 2)], 1)
        x = F.dropout(F.avg_pool2d(x, 7), 0.5, self.training)
        return self.fc(x.flatten(1))

    def kernels(self):
        return []


class VggCnn(nn.Module):
    l2 = 0.0

    def __init__(self):
        super().__init__()
        widths = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256)]
        self.convs = nn.ModuleList([conv(a, b, 3) for a, b in widths])
        self.fc = nn.Linear(256 * 4 * 4, 10)

    def forward(self, x):
        for i, c in enumerate(self.convs):
            x = F.relu(c(x))
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
        return self.fc(F.dropout(x, 0.5, self.training).flatten(1))

    def kernels(self):
        return []


class ResNetD(ResNetDSE):
    """Section 07's ResNet-50-D-SE (bench/resnet_d_reference.py); weight decay lives in the optimizer."""
    l2 = 0.0

    def kernels(self):
        return []


def keras_bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class PreActUnit(nn.Module):
    """Section 06's pre-activation bottleneck unit, its shortcut always a 1x1 projection (the report's code)."""

    def __init__(self, cin, bottleneck, cout, stride=1):
        super().__init__()
        self.bn1, self.conv1 = keras_bn(cin), conv(cin, bottleneck, 1)
        self.bn2, self.conv2 = keras_bn(bottleneck), conv(bottleneck, bottleneck, 3, stride)
        self.bn3, self.conv3 = keras_bn(bottleneck), conv(bottleneck, cout, 1)
        self.projection = conv(cin, cout, 1, stride, padding=0)

    def forward(self, x):
        y = self.conv1(F.relu(self.bn1(x)))
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        return y + self.projection(x)


class MaskLevel(nn.Module):
    """One level of the soft-mask branch: max-pool, unit, [next level], unit, up-sample (+ a skip unit below the top)."""

    def __init__(self, c, depth, outermost):
        super().__init__()
        self.skip = None if outermost else PreActUnit(c, c // 4, c)
        self.down, self.up = PreActUnit(c, c // 4, c), PreActUnit(c, c // 4, c)
        self.inner = MaskLevel(c, depth - 1, False) if depth > 1 else None

    def forward(self, x):
        m = self.down(F.max_pool2d(x, 2))
        if self.inner is not None:
            m = self.inner(m)
        m = F.interpolate(self.up(m), scale_factor=2, mode="nearest")
        return m if self.skip is None else m + self.skip(x)


class AttentionModule(nn.Module):
    def __init__(self, c, skip):
        super().__init__()
        unit = lambda: PreActUnit(c, c // 4, c)
        self.pre, self.trunk, self.post = unit(), nn.Sequential(unit(), unit()), unit()
        self.mask = MaskLevel(c, skip, True)
        self.mask_convs = nn.Sequential(conv(c, c, 1), conv(c, c, 1))

    def forward(self, x):
        x = self.pre(x)
        m = torch.sigmoid(self.mask_convs(self.mask(x)))
        return self.post((1 + m) * self.trunk(x))


class Attention56Mini(nn.Module):
    """Section 06's Attention-56 mini (stem 5x5 conv + BN + ReLU + max-pool, always-projecting units)."""
    l2 = 0.0

    def __init__(self, divisor=1):
        super().__init__()
        w = lambda c: c // divisor
        self.stem = nn.Sequential(conv(3, w(32), 5), keras_bn(w(32)), nn.ReLU(), nn.MaxPool2d(2))
        self.body = nn.Sequential(
            PreActUnit(w(32), w(32), w(128)), AttentionModule(w(128), 1),
            PreActUnit(w(128), w(64), w(256), 2), AttentionModule(w(256), 1),
            PreActUnit(w(256), w(128), w(512), 2), PreActUnit(w(512), w(128), w(512)), PreActUnit(w(512), w(128), w(512)))
        self.fc = nn.Linear(w(512), 10)

    def forward(self, x):
        return self.fc(F.avg_pool2d(self.body(self.stem(x)), 4).flatten(1))

    def kernels(self):
        return []


def median_seconds(step, warmup=1, repeats=5):
    return median_timing(step, warmup, repeats)[0]


def train_step(model, opt, x, y):
    """One training step as dlkit takes it: cross-entropy plus the model's L2 penalty, backward, update."""
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    if model.l2:
        loss = loss + model.l2 * sum((k * k).sum() for k in model.kernels())
    loss.backward()
    opt.step()


def median_timing(step, warmup=1, repeats=5):
    """Median wall-clock and CPU seconds (this process, all threads) of one repetition."""
    for _ in range(warmup):
        step()
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(times), statistics.median(cpu)


def status_mib(field):
    """A memory figure of this process from /proc/self/status in MiB (VmHWM: the resident-memory
    high-water mark; VmRSS: resident now), as dlkit reads it."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


def train_step_rate(model, channels, batch):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    x, y = torch.randn(batch, channels, 32, 32), torch.arange(batch) % 10

    def step():
        train_step(model, opt, x, y)

    wall, cpu = median_timing(step)
    return batch / wall, cpu


EVALUATION_BATCH = 256


def evaluation_rate(model, channels):
    """Samples/s of the evaluation forward pass: model.eval() under torch.no_grad()."""
    model.eval()
    x = torch.randn(EVALUATION_BATCH, channels, 32, 32)

    def forward():
        with torch.no_grad():
            model(x)

    wall, cpu = median_timing(forward)
    return EVALUATION_BATCH / wall, cpu


class ShiftFlip(torch.utils.data.Dataset):
    """In-memory images with dlkit's augmentation, per sample as a torchvision transform would do
    it: shift by a whole number of pixels in [-4, 4] with zero fill, then flip with p = 0.5."""

    def __init__(self, images, labels, augment):
        self.images, self.labels, self.augment = images, labels, augment

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = self.images[i]
        if self.augment:
            dy, dx = torch.randint(-4, 5, (2,)).tolist()
            x = F.pad(x, (4, 4, 4, 4))[:, 4 - dy:36 - dy, 4 - dx:36 - dx]
            if torch.rand(()) < 0.5:
                x = x.flip(2)
        return x, self.labels[i]


def epoch_seconds(build, make_optimizer, images, held_out, batch, augment):
    """One epoch as a notebook runs it: batches from the in-memory dataset (DataLoader), the
    augmentation, training steps, then evaluation on the held-out images."""
    g = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (images + held_out, 3, 32, 32), dtype=torch.uint8, generator=g).float() / 255
    labels = torch.arange(images + held_out) % 10
    train = torch.utils.data.DataLoader(ShiftFlip(pixels[:images], labels[:images], augment), batch_size=batch, shuffle=True)
    val_x, val_y = pixels[images:], labels[images:]
    model = build()
    opt = make_optimizer(model.parameters())

    def epoch():
        model.train()
        for x, y in train:
            train_step(model, opt, x, y)
        model.eval()
        with torch.no_grad():
            for start in range(0, len(val_y), EVALUATION_BATCH):
                logits = model(val_x[start:start + EVALUATION_BATCH])
                F.cross_entropy(logits, val_y[start:start + EVALUATION_BATCH])
                (logits.argmax(1) == val_y[start:start + EVALUATION_BATCH]).sum()

    return median_timing(epoch)


STEP_WORKLOADS = [
    ("MLP", lambda: Mlp(), 3, 128),
    ("ResNet-20", lambda: ResNet(20), 3, 64),
    ("ResNet-20", lambda: ResNet(20), 3, 128),
    ("ResNet-44", lambda: ResNet(44), 3, 64),
    ("ResNet-44", lambda: ResNet(44), 3, 128),
    ("MiniGoogLeNet", lambda: MiniGoogLeNet(1), 1, 64),
    ("MiniGoogLeNet ÷4 (quick mode)", lambda: MiniGoogLeNet(1, 4), 1, 64),
    ("VGG-style CNN", lambda: VggCnn(), 3, 64),
    ("ResNet-50-D-SE", lambda: ResNetD(), 3, 32),
    ("ResNet-50-D-SE reduced (quick mode)", lambda: ResNetD(blocks=(1, 1, 1, 1), divisor=4), 3, 64),
    ("Attention-56 mini", lambda: Attention56Mini(), 3, 64),
    ("Attention-56 mini ÷4 (quick mode)", lambda: Attention56Mini(4), 3, 64),
]

SUITES = ["steps", "eval", "updates", "epochs"]


def steps(indices):
    out = []
    for i in indices:
        name, build, channels, batch = STEP_WORKLOADS[i]
        base = status_mib("VmRSS")
        rate, cpu = train_step_rate(build(), channels, batch)
        print(f"  {name} batch {batch}: {rate:.1f} samples/s", file=sys.stderr)
        out.append({"workload": f"train step: {name}", "batch": batch, "rate": rate, "seconds": batch / rate, "cpu_seconds": cpu,
                    "peak_rss_mib": status_mib("VmHWM"), "base_rss_mib": base})
    return out


def isolated_steps(threads):
    """Each training-step workload in a child process, so its peak resident memory is its own."""
    out = []
    for i in range(len(STEP_WORKLOADS)):
        child = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--suite", "steps", "--step-index", str(i)],
                               check=True, stdout=subprocess.PIPE, text=True)
        out.extend(json.loads(child.stdout))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--suite", default=",".join(SUITES), help="comma-separated: " + ", ".join(SUITES))
    parser.add_argument("--isolate", action="store_true", help="each training-step workload in its own process")
    parser.add_argument("--step-index", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    suites = args.suite.split(",")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = []
    if "steps" in suites:
        if args.step_index is not None:
            out += steps([args.step_index])
        elif args.isolate:
            out += isolated_steps(args.threads)
        else:
            out += steps(range(len(STEP_WORKLOADS)))
    if "eval" in suites and args.step_index is None:
        seen = set()
        for name, build, channels, _ in STEP_WORKLOADS:
            if name in seen:
                continue
            seen.add(name)
            rate, cpu = evaluation_rate(build(), channels)
            print(f"  evaluate {name}: {rate:.1f} samples/s", file=sys.stderr)
            out.append({"workload": f"evaluate: {name}", "batch": EVALUATION_BATCH, "rate": rate,
                        "seconds": EVALUATION_BATCH / rate, "cpu_seconds": cpu})
    if "updates" in suites and args.step_index is None:
        out += updates()
    if "epochs" in suites and args.step_index is None:
        sections = [
            ("epoch: section 1, MLP + Adam", Mlp, lambda p: torch.optim.Adam(p, lr=1e-3, eps=1e-7), 10_000, 1_000, 128, False),
            ("epoch: section 4, ResNet-20 + RMSProp, shift + flip", lambda: ResNet(20),
             lambda p: torch.optim.RMSprop(p, lr=1e-3, alpha=0.9, eps=1e-7), 1_000, 200, 64, True),
        ]
        for name, build, make_optimizer, images, held_out, batch, augment in sections:
            seconds, cpu = epoch_seconds(build, make_optimizer, images, held_out, batch, augment)
            print(f"  {name}: {seconds:.2f} s", file=sys.stderr)
            out.append({"workload": name, "batch": batch, "rate": images / seconds, "seconds": seconds, "cpu_seconds": cpu})
    json.dump(out, sys.stdout, indent=1)
    print()


def updates():
    out = []
    mlp = Mlp()
    loss = mlp(torch.randn(8, 3, 32, 32)).square().sum()
    loss.backward()
    params = sum(p.numel() for p in mlp.parameters())
    optimizers = {
        "sgd": lambda p: torch.optim.SGD(p, lr=1e-6),
        "momentum": lambda p: torch.optim.SGD(p, lr=1e-6, momentum=0.9),
        "adagrad": lambda p: torch.optim.Adagrad(p, lr=1e-6, initial_accumulator_value=0.1, eps=1e-7),
        "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-6, alpha=0.9, eps=1e-7),
        "nadam": lambda p: torch.optim.NAdam(p, lr=1e-6, eps=1e-7),
        "adadelta": lambda p: torch.optim.Adadelta(p, lr=1e-6, rho=0.95, eps=1e-7),
        "adam": lambda p: torch.optim.Adam(p, lr=1e-6, eps=1e-7),
    }
    for name, make in optimizers.items():
        opt = make(mlp.parameters())
        seconds = median_seconds(opt.step)
        out.append({"workload": f"update: {name} ({params / 1e6:.1f} M params)", "batch": 0, "rate": params / seconds})
    return out


if __name__ == "__main__":
    main()
