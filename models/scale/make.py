#!/usr/bin/python3
"""Large generated models for `bench/run scale` (issue 18): residual FFN blocks with weights in external data.

    /usr/bin/python3 models/scale/make.py [--out DIR] [--blocks N] [--d D] [--hidden H] [--dtype float32|float16] [--name NAME]

Default: the issue's 671M-parameter float32 model, 10 blocks 4096 -> 8192 -> 4096 (2.5 GiB of weights),
written as DIR/NAME.onnx + DIR/NAME.onnx.data. `--preset 3b-fp16` makes the ~3B-parameter fp16 variant
(22 blocks 4096 -> 16384 -> 4096, ~5.5 GiB). Each block: y = x + W2 · relu(W1 · x + b1) + b2, as
MatMul/Add/ReLU nodes (opset 17); input `x` float32 [batch, D], output `y` float32 [batch, D].
Weights are random normal / sqrt(fan_in), seeded; the tensors are written one at a time, so making the
model needs about one weight tensor of memory. DIR defaults to models/scale/out/ (git-ignored).
"""
import argparse
import os

import numpy as np

# Debian 12 has no python3-onnx, so the few ONNX protobuf messages used here are encoded by hand
# (field numbers from onnx/onnx.proto).
FLOAT, FLOAT16 = 1, 10


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len(field, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _int(field, v):
    return _varint(field << 3) + _varint(v)


def tensor_proto(name, dt, dims, location, offset, length):
    b = b"".join(_int(1, d) for d in dims) + _int(2, dt) + _len(8, name)
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        b += _len(13, _len(1, k) + _len(2, v))
    return b + _int(14, 1)


def node_proto(op, inputs, outputs, name="", **ints):
    b = b"".join(_len(1, i) for i in inputs) + b"".join(_len(2, o) for o in outputs)
    if name:
        b += _len(3, name)
    b += _len(4, op)
    for k, v in ints.items():
        b += _len(5, _len(1, k) + _int(3, v) + _int(20, 2))
    return b


def value_info(name, dt, dims):
    shape = b"".join(_len(1, _len(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    return _len(1, name) + _len(2, _len(1, _int(1, dt) + _len(2, shape)))

PRESETS = {
    "671m": dict(blocks=10, d=4096, hidden=8192, dtype="float32", name="ffn671m"),
    "3b-fp16": dict(blocks=22, d=4096, hidden=16384, dtype="float16", name="ffn3b_fp16"),
    "small": dict(blocks=2, d=256, hidden=512, dtype="float32", name="ffn_small"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="671m", choices=sorted(PRESETS))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    ap.add_argument("--blocks", type=int)
    ap.add_argument("--d", type=int)
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--dtype", choices=["float32", "float16"])
    ap.add_argument("--name")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    cfg = dict(PRESETS[a.preset])
    for k in ("blocks", "d", "hidden", "dtype", "name"):
        if getattr(a, k) is not None:
            cfg[k] = getattr(a, k)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, cfg["name"] + ".onnx")
    data_name = cfg["name"] + ".onnx.data"
    np_dt = np.float16 if cfg["dtype"] == "float16" else np.float32
    onnx_dt = FLOAT16 if cfg["dtype"] == "float16" else FLOAT
    rng = np.random.default_rng(a.seed)
    D, H = cfg["d"], cfg["hidden"]
    inits, nodes = [], []
    offset = 0
    params = 0
    with open(os.path.join(a.out, data_name), "wb") as data:
        def weight(name, shape, fan_in):
            nonlocal offset, params
            w = (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(fan_in)).astype(np_dt)
            pad = (-offset) % 4096
            data.write(b"\0" * pad)
            offset += pad
            b = w.tobytes()
            data.write(b)
            inits.append(tensor_proto(name, onnx_dt, shape, data_name, offset, len(b)))
            offset += len(b)
            params += w.size
            return name

        x = "x"
        for i in range(cfg["blocks"]):
            p = f"b{i}."
            w1 = weight(p + "fc1.weight", [D, H], D)
            b1 = weight(p + "fc1.bias", [H], D * 64)
            w2 = weight(p + "fc2.weight", [H, D], H)
            b2 = weight(p + "fc2.bias", [D], H * 64)
            xin = x
            if cfg["dtype"] == "float16":
                nodes.append(node_proto("Cast", [x], [p + "x16"], to=FLOAT16))
                xin = p + "x16"
            nodes.append(node_proto("MatMul", [xin, w1], [p + "h0"], name=p + "fc1"))
            nodes.append(node_proto("Add", [p + "h0", b1], [p + "h1"]))
            nodes.append(node_proto("Relu", [p + "h1"], [p + "h2"], name=p + "act"))
            nodes.append(node_proto("MatMul", [p + "h2", w2], [p + "h3"], name=p + "fc2"))
            nodes.append(node_proto("Add", [p + "h3", b2], [p + "h4"]))
            if cfg["dtype"] == "float16":
                nodes.append(node_proto("Cast", [p + "h4"], [p + "h5"], to=FLOAT))
                nodes.append(node_proto("Add", [x, p + "h5"], [p + "y"]))
            else:
                nodes.append(node_proto("Add", [x, p + "h4"], [p + "y"]))
            x = p + "y"
        nodes.append(node_proto("Identity", [x], ["y"]))
    graph = (b"".join(_len(1, n) for n in nodes) + _len(2, cfg["name"]) + b"".join(_len(5, t) for t in inits)
             + _len(11, value_info("x", FLOAT, ["batch", D])) + _len(12, value_info("y", FLOAT, ["batch", D])))
    model = _int(1, 8) + _len(2, "models/scale/make.py") + _len(7, graph) + _len(8, _len(1, "") + _int(2, 17))
    with open(path, "wb") as f:
        f.write(model)
    print(f"{path}: {params / 1e6:.1f}M params, {offset / 2**30:.2f} GiB of {cfg['dtype']} weights in {data_name}")


if __name__ == "__main__":
    main()
