"""The zoo in Keras 3, layer for layer as in `torch_zoo` (inputs NHWC, outputs softmax).

Where a layer's defaults differ from PyTorch's, they are set to PyTorch's: batch norm epsilon
1e-5 and momentum 0.9 (PyTorch's 0.1), and stride-2 convolutions pad 1 on every side (Keras'
'same' would pad only bottom/right).
"""

from __future__ import annotations

import keras
from keras import layers as L

from convbench.models.spec import VGG16_CFG


def _w(base: int, width: float) -> int:
    return max(1, round(base * width))


def _image_input(input_shape):
    c, h, w = input_shape
    return keras.Input((h, w, c), name="input")


def _finish(inp, logits, name):
    return keras.Model(inp, L.Softmax(name="probabilities")(logits), name=name)


def lenet5(input_shape, num_classes, width=1.0):
    inp = _image_input(input_shape)
    x = L.Conv2D(_w(6, width), 5, padding="same", activation="relu")(inp)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(_w(16, width), 5, activation="relu")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Flatten()(x)
    x = L.Dense(_w(120, width), activation="relu")(x)
    x = L.Dense(_w(84, width), activation="relu")(x)
    return _finish(inp, L.Dense(num_classes)(x), "lenet5")


def _conv_bn(x, cout, stride=1, k=3):
    if stride != 1 and k > 1:
        x = L.ZeroPadding2D(k // 2)(x)
        x = L.Conv2D(cout, k, stride, padding="valid", use_bias=False)(x)
    else:
        x = L.Conv2D(cout, k, stride, padding="same", use_bias=False)(x)
    return L.BatchNormalization(epsilon=1e-5, momentum=0.9)(x)


def _block(x, cin, cout, stride):
    y = L.ReLU()(_conv_bn(x, cout, stride))
    y = _conv_bn(y, cout)
    short = _conv_bn(x, cout, stride, k=1) if stride != 1 or cin != cout else x
    return L.ReLU()(L.Add()([y, short]))


def resnet18(input_shape, num_classes, width=1.0):
    widths = [_w(64, width) * m for m in (1, 2, 4, 8)]
    inp = _image_input(input_shape)
    x, cin = L.ReLU()(_conv_bn(inp, widths[0])), widths[0]
    for i, w in enumerate(widths):
        x = _block(x, cin, w, 1 if i == 0 else 2)
        x = _block(x, w, w, 1)
        cin = w
    x = L.GlobalAveragePooling2D()(x)
    return _finish(inp, L.Dense(num_classes)(x), "resnet18")


def vgg16(input_shape, num_classes, width=1.0):
    inp = _image_input(input_shape)
    x = inp
    for v in VGG16_CFG:
        x = L.MaxPooling2D(2)(x) if v == "M" else L.ReLU()(_conv_bn(x, _w(v, width)))
    x = L.Flatten()(x)
    return _finish(inp, L.Dense(num_classes)(x), "vgg16")


def _recurrent(cell, name, input_shape, num_classes, vocab, embed, hidden, layers):
    inp = keras.Input(input_shape, dtype="int64", name="input")
    x = L.Embedding(vocab, embed)(inp)
    for i in range(layers):
        x = cell(hidden, return_sequences=i < layers - 1)(x)
    return _finish(inp, L.Dense(num_classes)(x), name)


def lstm(input_shape, num_classes, vocab, embed=64, hidden=256, layers=2):
    return _recurrent(L.LSTM, "lstm", input_shape, num_classes, vocab, embed, hidden, layers)


def gru(input_shape, num_classes, vocab, embed=64, hidden=256, layers=2):
    return _recurrent(L.GRU, "gru", input_shape, num_classes, vocab, embed, hidden, layers)
