"""The zoo in PyTorch. Each builder returns a `Classifier` whose forward ends in softmax."""

from __future__ import annotations

import torch
from torch import nn

from convbench.models.spec import VGG16_CFG


class Classifier(nn.Module):
    """`body` computes logits (used for training); `forward` returns class probabilities."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x):
        return torch.softmax(self.body(x), dim=1)


def _w(base: int, width: float) -> int:
    return max(1, round(base * width))


def lenet5(input_shape, num_classes, width=1.0):
    c, h, _ = input_shape
    c1, c2, f1, f2 = _w(6, width), _w(16, width), _w(120, width), _w(84, width)
    side = (h // 2 - 4) // 2
    return Classifier(nn.Sequential(
        nn.Conv2d(c, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(c2 * side * side, f1), nn.ReLU(), nn.Linear(f1, f2), nn.ReLU(),
        nn.Linear(f2, num_classes)))


def _conv_bn(cin, cout, stride=1, k=3):
    return [nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(cout)]


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.main = nn.Sequential(*_conv_bn(cin, cout, stride), nn.ReLU(), *_conv_bn(cout, cout))
        self.short = (nn.Sequential(*_conv_bn(cin, cout, stride, k=1))
                      if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return torch.relu(self.main(x) + self.short(x))


def resnet18(input_shape, num_classes, width=1.0):
    widths = [_w(64, width) * m for m in (1, 2, 4, 8)]
    layers, cin = [*_conv_bn(input_shape[0], widths[0]), nn.ReLU()], widths[0]
    for i, w in enumerate(widths):
        layers += [BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
        cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return Classifier(nn.Sequential(*layers))


def vgg16(input_shape, num_classes, width=1.0):
    layers, cin, side = [], input_shape[0], input_shape[1]
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            side //= 2
        else:
            layers += [*_conv_bn(cin, _w(v, width)), nn.ReLU()]
            cin = _w(v, width)
    layers += [nn.Flatten(), nn.Linear(cin * side * side, num_classes)]
    return Classifier(nn.Sequential(*layers))


class _Recurrent(nn.Module):
    def __init__(self, cell, vocab, embed, hidden, layers, num_classes):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = cell(embed, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x):
        out, _ = self.rnn(self.embed(x))
        return self.fc(out[:, -1])


def lstm(input_shape, num_classes, vocab, embed=64, hidden=256, layers=2):
    return Classifier(_Recurrent(nn.LSTM, vocab, embed, hidden, layers, num_classes))


def gru(input_shape, num_classes, vocab, embed=64, hidden=256, layers=2):
    return Classifier(_Recurrent(nn.GRU, vocab, embed, hidden, layers, num_classes))
