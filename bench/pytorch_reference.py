#!/usr/bin/env python3
"""PyTorch reference for `dlkit bench`: the same models, shapes, optimizer (Adam) and thread
count, timed the same way (median of 5 repetitions after one warm-up). Prints JSON records
{workload, batch, rate} whose names match dlkit's, so bench/compare.py can pair them.

    python3 bench/pytorch_reference.py [--threads 2]      (needs `pip install torch`)
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


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


def median_seconds(step, warmup=1, repeats=5):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def train_step_rate(model, channels, batch):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    x, y = torch.randn(batch, channels, 32, 32), torch.arange(batch) % 10

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        if model.l2:
            loss = loss + model.l2 * sum((k * k).sum() for k in model.kernels())
        loss.backward()
        opt.step()

    return batch / median_seconds(step)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = []
    workloads = [
        ("MLP", lambda: Mlp(), 3, [128]),
        ("ResNet-20", lambda: ResNet(20), 3, [64, 128]),
        ("ResNet-44", lambda: ResNet(44), 3, [64, 128]),
        ("MiniGoogLeNet", lambda: MiniGoogLeNet(1), 1, [64]),
        ("MiniGoogLeNet ÷4 (quick mode)", lambda: MiniGoogLeNet(1, 4), 1, [64]),
        ("VGG-style CNN", lambda: VggCnn(), 3, [64]),
    ]
    for name, build, channels, batches in workloads:
        for batch in batches:
            rate = train_step_rate(build(), channels, batch)
            print(f"  {name} batch {batch}: {rate:.1f} samples/s", file=sys.stderr)
            out.append({"workload": f"train step: {name}", "batch": batch, "rate": rate})
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
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
