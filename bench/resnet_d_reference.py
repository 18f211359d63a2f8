#!/usr/bin/env python3
"""PyTorch reference values for section 07's library pieces, pinned in dlkit's tests.

    python3 bench/resnet_d_reference.py        (needs `pip install torch`)

Prints:
1. parameter counts of ResNet-50-D-SE for 32x32 inputs (an independent PyTorch model written
   here from the papers: He et al. 2019 "Bag of Tricks" ResNet-D, Hu et al. 2018 SE), for stem
   width 64/128 and SE reduction 4/16, plus the reduced quick-mode model; trainable counts are
   `p.numel()` over `parameters()`, non-trainable ones over the BN running mean/var buffers;
2. torch.optim.SGD(lr, momentum, nesterov, weight_decay) on the optimizer tests' weights/gradients;
3. CosineAnnealingLR, CosineAnnealingWarmRestarts and MultiStepLR learning rates, stepped per epoch.
"""
import torch
import torch.nn as nn


class ConvBn(nn.Sequential):
    def __init__(self, cin, cout, k, stride=1):
        super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class SE(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(c, max(1, c // r)), nn.Linear(max(1, c // r), c)

    def forward(self, x):
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3))))))
        return x * s[:, :, None, None]


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride, r):
        super().__init__()
        cout = 4 * width
        self.main = nn.Sequential(ConvBn(cin, width, 1), nn.ReLU(), ConvBn(width, width, 3, stride), nn.ReLU(),
                                  ConvBn(width, cout, 1), SE(cout, r))
        if stride != 1 or cin != cout:
            pool = [nn.AvgPool2d(2, 2)] if stride != 1 else []
            self.short = nn.Sequential(*pool, ConvBn(cin, cout, 1))
        else:
            self.short = nn.Identity()

    def forward(self, x):
        return torch.relu(self.main(x) + self.short(x))


class ResNetDSE(nn.Module):
    def __init__(self, stem=64, r=16, blocks=(3, 4, 6, 3), divisor=1, classes=10, dropout=0.2):
        super().__init__()
        s = stem // divisor
        layers = [ConvBn(3, s // 2, 3), nn.ReLU(), ConvBn(s // 2, s // 2, 3), nn.ReLU(), ConvBn(s // 2, s, 3), nn.ReLU()]
        c = s
        for stage, (w, n) in enumerate(zip((64, 128, 256, 512), blocks)):
            w //= divisor
            for b in range(n):
                layers.append(Bottleneck(c, w, 2 if stage > 0 and b == 0 else 1, r))
                c = 4 * w
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, classes))

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


def counts(model):
    trainable = sum(p.numel() for p in model.parameters())
    running = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return trainable, running


def rates(make, epochs):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make(opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def main():
    print("== parameter counts (trainable, BN running statistics) ==")
    for stem in (64, 128):
        for r in (4, 16):
            m = ResNetDSE(stem, r)
            assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
            print(f"stem {stem:3} r {r:2}: {counts(m)}")
    print(f"reduced (blocks 1,1,1,1, widths / 4, stem 64, r 16): {counts(ResNetDSE(64, 16, (1, 1, 1, 1), 4))}")

    print("== SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), 3 steps ==")
    w = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64, requires_grad=True)
    grads = [[0.3, -0.7, 1.2, 0.05], [-0.4, 0.2, 0.9, -1.5], [0.1, -0.6, -0.8, 2.0]]
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    for g in grads:
        opt.zero_grad()
        (w * torch.tensor(g, dtype=torch.float64)).sum().backward()
        opt.step()
        print([float(f"{v:.17g}") for v in w.tolist()])


    S = torch.optim.lr_scheduler
    print("== CosineAnnealingLR(T_max=10, eta_min=0.001), base 0.1, epochs 0..24 ==")
    print(rates(lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 25))
    print("== CosineAnnealingWarmRestarts(T_0=3, T_mult=2, eta_min=0.001), base 0.1, epochs 0..22 ==")
    print(rates(lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001), 23))
    print("== CosineAnnealingWarmRestarts(T_0=4, T_mult=1), base 0.1, epochs 0..9 ==")
    print(rates(lambda o: S.CosineAnnealingWarmRestarts(o, T_0=4), 10))
    print("== MultiStepLR(milestones=[3, 6, 6, 9], gamma=0.5), base 0.1, epochs 0..10 ==")
    print(rates(lambda o: S.MultiStepLR(o, milestones=[3, 6, 6, 9], gamma=0.5), 11))


if __name__ == "__main__":
    main()
