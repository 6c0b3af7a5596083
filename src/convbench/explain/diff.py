"""Why a converted op departs: its hyperparameters, kind and place against the source layer's.

Each framework names a convolution's geometry its own way (PyTorch `padding`, Keras "same",
ONNX `pads`, MIL `pad_type`/`pad`, NeuralNetwork `valid.paddingAmounts`); `geometry` reads them
all into one vocabulary so that the two sides compare field by field.
"""

from __future__ import annotations

import math
from typing import Any

from convbench.explain.trace import Node

#: Op kinds by family, across PyTorch, Keras, ONNX, MIL and NeuralNetwork names.
FAMILIES = {
    "conv": {"conv1d", "conv2d", "conv3d", "conv", "convolution", "depthwiseconv2d",
             "separableconv2d", "groupconvolution", "conv_2d", "depthwise_conv_2d"},
    "dense": {"linear", "dense", "gemm", "matmul", "innerproduct", "batchedmatmul",
              "matmul_linear", "fully_connected", "batch_matmul"},
    "maxpool": {"maxpool1d", "maxpool2d", "maxpooling1d", "maxpooling2d", "maxpool", "max_pool",
                "globalmaxpooling2d", "globalmaxpool", "max_pool_2d"},
    "avgpool": {"avgpool1d", "avgpool2d", "averagepooling1d", "averagepooling2d", "averagepool",
                "avg_pool", "globalaveragepooling2d", "globalaveragepool",
                "adaptiveavgpool2d", "reduce_mean", "reducemean", "average_pool_2d", "mean"},
    "batchnorm": {"batchnorm1d", "batchnorm2d", "batchnormalization", "batch_norm",
                  "batchnorm"},
    "transpose": {"transpose", "permute"},
    "reshape": {"reshape", "reshapestatic", "flatten", "view", "squeeze", "unsqueeze",
                "reshape_static"},
    "softmax": {"softmax", "softmaxnd"},
    "add": {"add", "iadd"},
    "pad": {"pad", "padding", "zeropadding2d"},
    "scale": {"mul", "div", "sub", "scale", "multiply", "real_div", "divide", "subtract"},
}
ACTIVATIONS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "gelu": "gelu",
               "elu": "elu", "selu": "selu", "silu": "silu", "swish": "silu",
               "hardswish": "hardswish", "hard_swish": "hardswish", "hardsigmoid": "hardsigmoid",
               "sigmoid_hard": "hardsigmoid", "leakyrelu": "leakyrelu",
               "leaky_relu": "leakyrelu", "relu6": "relu6", "softplus": "softplus",
               "softsign": "softsign", "linear": "linear", "prelu": "prelu",
               "erf": "erf", "clip": "clip", "hardtanh": "clip", "logistic": "sigmoid"}
LAYOUT_FAMILIES = {"transpose", "reshape", "pad", "scale"}


def family(node: Node) -> str:
    """A node's kind in convbench's cross-framework vocabulary ("conv", "relu", ...)."""
    k = node.kind.lower()
    if k in ("activation",):  # Keras Activation layers and NeuralNetwork activation layers
        act = node.attrs.get("activation")
        if isinstance(act, str):
            return ACTIVATIONS.get(act.lower(), act.lower())
        for key in node.attrs:  # NeuralNetwork: the chosen oneof (ReLU, sigmoid, ...)
            name = key.split(".")[0].lower()
            if name in ACTIVATIONS:
                return ACTIVATIONS[name]
        return "activation"
    if k in ACTIVATIONS:
        return ACTIVATIONS[k]
    if k == "pooling":  # NeuralNetwork pooling: MAX = 0, AVERAGE = 1
        return "avgpool" if node.attrs.get("type") in (1, "AVERAGE") else "maxpool"
    for fam, names in FAMILIES.items():
        if k in names:
            return fam
    return k


def is_activation(fam: str) -> bool:
    return fam in set(ACTIVATIONS.values())


def _pair(v, n: int = 2) -> list[int]:
    if isinstance(v, (list, tuple)):
        v = [int(x) for x in v]
        return v * n if len(v) == 1 else v
    return [int(v)] * n


def _same(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's "same" padding of one axis (the extra pixel at the end)."""
    total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def geometry(node: Node, spatial: list[int] | None) -> dict[str, Any]:
    """Strides, dilations, groups, kernel and explicit pads (begin..., end... per spatial axis)
    of a conv or pool node, and its epsilon; `spatial` is its input's spatial size."""
    a, k = node.attrs, node.kind.lower()
    g: dict[str, Any] = {}
    n = len(spatial) if spatial else 2
    kernel = a.get("kernel") or a.get("kernel_shape") or a.get("kernel_sizes") or \
        a.get("kernelSize")
    w = node.weights.get("weight")
    if kernel is None and w is not None and w.ndim >= 3:  # MIL conv: (out, in, *kernel)
        kernel = list(w.shape[2:])
    if kernel is not None:
        g["kernel"] = _pair(kernel, n)
    strides = a.get("strides", a.get("stride"))
    if strides is not None:
        g["strides"] = _pair(strides, n)
    elif "kernel" in g and "maxpool" in k.replace("_", ""):
        g["strides"] = g["kernel"]  # PyTorch pools default their stride to the kernel
    dil = a.get("dilations", a.get("dilationFactor"))
    if dil is not None:
        g["dilations"] = _pair(dil, n)
    groups = a.get("groups", a.get("group", a.get("nGroups")))
    if groups is not None:
        g["groups"] = _pair(groups, 1)[0]
    pads = _pads(a, g, spatial, n)
    if pads is not None:
        g["pads"] = pads
    if "epsilon" in a:
        g["epsilon"] = float(a["epsilon"][0] if isinstance(a["epsilon"], list) else
                             a["epsilon"])
    return g


def _explicit_pads(node: Node, n: int) -> list[int] | None:
    """A padding layer's pads as begins then ends (Keras ((t, b), (l, r)), PyTorch (l, r, t, b))."""
    p = node.attrs.get("padding")
    if isinstance(p, list) and p and all(isinstance(q, list) for q in p):
        return [int(q[0]) for q in p] + [int(q[1]) for q in p]
    if isinstance(p, list) and len(p) == 2 * n:  # PyTorch: last axis first
        pairs = [p[2 * i:2 * i + 2] for i in range(n)][::-1]
        return [int(q[0]) for q in pairs] + [int(q[1]) for q in pairs]
    if isinstance(p, int):
        return [p] * 2 * n
    return None


def _pads(a: dict, g: dict, spatial, n: int) -> list[int] | None:
    k, s, d = g.get("kernel"), g.get("strides", [1] * n), g.get("dilations", [1] * n)

    def same(lower: bool = False):
        if not spatial or not k:
            return None
        both = [_same(spatial[i], k[i], s[i], d[i]) for i in range(n)]
        if lower:
            both = [(e, b) for b, e in both]
        return [b for b, _ in both] + [e for _, e in both]

    padding = a.get("padding")
    if isinstance(padding, str):  # Keras, PyTorch
        return [0] * 2 * n if padding == "valid" else same()
    if isinstance(padding, list) and padding and isinstance(padding[0], list):  # Keras pads
        return [int(q[0]) for q in padding] + [int(q[1]) for q in padding]
    if padding is not None and not isinstance(padding, dict):  # PyTorch ints
        p = _pair(padding, n)
        return p + p
    if "pads_begin" in a:  # OpenVINO
        auto = str(a.get("auto_pad", "explicit")).lower()
        if auto in ("same_upper", "same_lower"):
            return same(auto == "same_lower")
        if auto == "valid":
            return [0] * 2 * n
        return [int(v) for v in a["pads_begin"]] + [int(v) for v in a.get("pads_end", [])]
    if "pads" in a or "auto_pad" in a:  # ONNX: begins then ends
        auto = a.get("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            return same(auto == "SAME_LOWER")
        return _pair(a.get("pads", [0] * 2 * n), 2 * n) if auto != "VALID" else [0] * 2 * n
    if "pad_type" in a:  # MIL: pad is [begin0, end0, begin1, end1]
        t = a["pad_type"]
        if t == "valid":
            return [0] * 2 * n
        if t in ("same", "same_lower"):
            return same(t == "same_lower")
        p = _pair(a.get("pad", [0] * 2 * n), 2 * n)
        return p[0::2] + p[1::2]
    border = a.get("valid.paddingAmounts.borderAmounts", a.get("paddingAmounts.borderAmounts"))
    if border is not None:  # NeuralNetwork: [{startEdgeSize, endEdgeSize}] per axis
        return [int(b.get("startEdgeSize", 0)) for b in border] + \
            [int(b.get("endEdgeSize", 0)) for b in border]
    if a.get("valid.paddingAmounts") or a.get("valid"):
        return [0] * 2 * n
    if a.get("same") or "same.asymmetryMode" in a:
        return same(a.get("same.asymmetryMode") in (1, "TOP_LEFT_HEAVY"))
    return None


def hyperparameters(conv: Node, conv_spatial, orig: Node, orig_spatial,
                    padded_by: Node | None = None) -> dict[str, tuple]:
    """The hyperparameters that differ: name -> (original's, converted's). `padded_by`: an
    explicit padding layer before `orig` (converters fold it into the op's pads)."""
    try:
        a, b = geometry(orig, orig_spatial), geometry(conv, conv_spatial)
    except (TypeError, ValueError, IndexError, KeyError):  # attributes of an unknown shape
        a, b = {}, {}
    if padded_by is not None and "pads" in a:
        extra = _explicit_pads(padded_by, len(a["pads"]) // 2)
        if extra:
            a["pads"] = [p + q for p, q in zip(a["pads"], extra)]
    out = {k: (a[k], b[k]) for k in a.keys() & b.keys()
           if (abs(a[k] - b[k]) > 1e-12 * max(abs(a[k]), 1) if k == "epsilon" else a[k] != b[k])}
    fa, fb = family(orig), family(conv)
    if is_activation(fb) and is_activation(fa) and fa != fb:
        out["activation"] = (fa, fb)
    if {fa, fb} == {"maxpool", "avgpool"}:
        out["pooling"] = (fa, fb)
    return out
