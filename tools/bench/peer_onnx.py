#!/usr/bin/python3
"""The package's network in PyTorch, exported to ONNX for the peers bench.

Reads the float graph and peer-head.json that tools/bench/peer-network.ts wrote
(the backbone to the final exit's boundary, then that exit's average pool and
dense layers) and writes model-float32.onnx and, quantized by PyTorch's own
post-training static quantization on calibration images, model-int8.onnx. Both
take the model input as edge-exit feeds it (uint8 NHWC pixels) and give the
final exit's logits. notes.json says how each was made, or why int8 was not.
"""
import argparse
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.ao.quantization import DeQuantStub, MinMaxObserver, QConfig, QuantStub  # noqa: E402

from train_multi_exit import load_graph, same_padding  # noqa: E402


class PeerNetwork(nn.Module):
    """Paddings fixed for one input size, so that the graph is static; `int8_ready` shapes it for eager quantization."""

    def __init__(self, spec, weight, flat, head, height, width, int8_ready=False):
        super().__init__()
        self.spec = spec
        self.head = head
        self.nodes = []
        self.convs = nn.ModuleDict()
        self.adds = nn.ModuleDict()
        self.relu6 = set()
        size = {spec["input"]["tensor"]: (height, width)}
        for node in spec["nodes"]:
            self.nodes.append(node)
            if node["op"] == "conv2d":
                w, b = weight(node["weight"]), weight(node["bias"])
                out_channels, in_per_group, kh, kw = w.shape
                stride = node["stride"]
                h, wd = size[node["inputs"][0]]
                top, bottom = same_padding(h, kh, stride) if node["padding"] == "same" else (0, 0)
                left, right = same_padding(wd, kw, stride) if node["padding"] == "same" else (0, 0)
                symmetric = top == bottom and left == right
                conv = nn.Conv2d(in_per_group * node["groups"], out_channels, (kh, kw), stride=stride, groups=node["groups"],
                                 padding=(top, left) if symmetric else 0)
                with torch.no_grad():
                    conv.weight.copy_(w)
                    conv.bias.copy_(b)
                layers = []
                if not symmetric:
                    # TensorFlow's odd SAME padding goes after; quantized tensors cannot be padded in an ONNX export, so int8 pads in float.
                    layers += [DeQuantStub(), nn.ZeroPad2d((left, right, top, bottom)), QuantStub()] if int8_ready else [nn.ZeroPad2d((left, right, top, bottom))]
                layers.append(conv)
                if node["activation"] == "relu6":
                    # int8: ReLU fused into the convolution, its output range capped at 6 (as TFLite quantizes RELU6); float: ReLU6.
                    layers.append(nn.ReLU() if int8_ready else nn.ReLU6())
                    self.relu6.add(node["name"])
                self.convs[node["name"]] = nn.Sequential(*layers)
                size[node["output"]] = ((h + top + bottom - kh) // stride + 1, (wd + left + right - kw) // stride + 1)
            elif node["op"] == "add":
                if node["activation"] != "none":
                    raise SystemExit(f"{node['name']}: an add with an activation is not exported")
                self.adds[node["name"]] = nn.quantized.FloatFunctional()
                size[node["output"]] = size[node["inputs"][0]]
            else:
                size[node["output"]] = (1, 1)
            if node["output"] == head["input"]:
                break
        else:
            raise SystemExit(f"the graph never produces the head's input {head['input']}")
        self.dense = nn.ModuleList()
        for layer in head["layers"]:
            out_features, in_features = layer["weight"]["shape"]
            linear = nn.Linear(in_features, out_features)
            with torch.no_grad():
                for param, entry in ((linear.weight, layer["weight"]), (linear.bias, layer["bias"])):
                    count = int(np.prod(entry["shape"]))
                    param.copy_(torch.from_numpy(flat[entry["offset"]:entry["offset"] + count].copy()).reshape(entry["shape"]))
            self.dense.append(linear)
        self.quant = QuantStub()
        self.dequant = DeQuantStub()
        self.register_buffer("pixel_scale", torch.tensor(spec["input"]["pixelScale"], dtype=torch.float32))
        self.register_buffer("pixel_zero", torch.tensor(spec["input"]["pixelZeroPoint"], dtype=torch.float32))

    def forward(self, pixels):
        x = self.quant(((pixels.float() - self.pixel_zero) * self.pixel_scale).permute(0, 3, 1, 2))
        values = {self.spec["input"]["tensor"]: x}
        for node in self.nodes:
            if node["op"] == "conv2d":
                y = self.convs[node["name"]](values[node["inputs"][0]])
            elif node["op"] == "add":
                y = self.adds[node["name"]].add(values[node["inputs"][0]], values[node["inputs"][1]])
            else:
                y = values[node["inputs"][0]].mean((2, 3), keepdim=True)
            values[node["output"]] = y
        # The head stays in float: its reshape cannot be exported quantized, and it is 0.1% of the work.
        y = self.dequant(values[self.head["input"]])
        pool = self.head.get("pool")
        if pool:
            y = F.avg_pool2d(y, pool["filter"], pool["stride"])
        # TFLite flattens NHWC: height, width, then channels.
        y = y.permute(0, 2, 3, 1).reshape(y.shape[0], -1)
        for i, layer in enumerate(self.head["layers"]):
            y = self.dense[i](y)
            if layer["activation"] == "relu":
                y = F.relu(y)
        return y


def export(model, example, path):
    torch.onnx.export(model, example, path, input_names=["pixels"], output_names=["logits"], opset_version=13, do_constant_folding=True)


class UpToSix(MinMaxObserver):
    """The observed range of a ReLU6 output, capped at 6: quantizing to it clips as ReLU6 does (TFLite's way)."""

    def calculate_qparams(self):
        self.max_val.clamp_(max=6.0)
        return super().calculate_qparams()


def quantize(model, calibration):
    """PyTorch's eager post-training static quantization: per-channel int8 weights, uint8 activations at their min/max on the calibration images (as TFLite calibrates)."""
    engine = "qnnpack" if "qnnpack" in torch.backends.quantized.supported_engines else "fbgemm"
    torch.backends.quantized.engine = engine
    base = QConfig(activation=MinMaxObserver.with_args(dtype=torch.quint8), weight=torch.ao.quantization.default_per_channel_weight_observer)
    model.qconfig = base
    six = QConfig(activation=UpToSix.with_args(dtype=torch.quint8), weight=base.weight)
    for name, layers in model.convs.items():
        if name in model.relu6:
            n = len(layers)
            torch.ao.quantization.fuse_modules(layers, [[str(n - 2), str(n - 1)]], inplace=True)
            layers[n - 2].qconfig = six
    for linear in model.dense:
        linear.qconfig = None
    prepared = torch.ao.quantization.prepare(model)
    with torch.no_grad():
        for i in range(calibration.shape[0]):
            prepared(calibration[i:i + 1])
    return torch.ao.quantization.convert(prepared), engine


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--graph", required=True, help="directory with graph.json, weights.bin and peer-head.json")
    parser.add_argument("--out", required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--calibration", help="uint8 NHWC images, one after another, to quantize on (int8 is skipped without)")
    args = parser.parse_args()
    spec, weight = load_graph(args.graph)
    flat = np.fromfile(os.path.join(args.graph, "weights.bin"), dtype="<f4")
    with open(os.path.join(args.graph, "peer-head.json")) as f:
        head = json.load(f)
    build = lambda int8_ready: PeerNetwork(spec, weight, flat, head, args.height, args.width, int8_ready).eval()  # noqa: E731
    model = build(False)
    example = torch.randint(0, 256, (1, args.height, args.width, 3), dtype=torch.uint8)
    with torch.no_grad():
        logits = model(example)
    if logits.shape != (1, len(head["classes"])):
        raise SystemExit(f"the network gives {tuple(logits.shape)}, not (1, {len(head['classes'])})")
    os.makedirs(args.out, exist_ok=True)
    export(model, example, os.path.join(args.out, "model-float32.onnx"))
    notes = [f"float32: exported from PyTorch {torch.__version__} (torch.onnx, opset 13)."]
    if args.calibration:
        pixels = np.fromfile(args.calibration, dtype=np.uint8).reshape(-1, args.height, args.width, 3)
        try:
            quantized, engine = quantize(build(True), torch.from_numpy(pixels))
            export(quantized, example, os.path.join(args.out, "model-int8.onnx"))
            notes.append(
                f"int8: onnxruntime's own quantizer is a Python package (onnxruntime.quantization) that cannot be installed here (no PyPI; Debian has no onnxruntime), "
                f"so PyTorch quantized it ({engine}, eager post-training static quantization on {pixels.shape[0]} CIFAR-10 training images: per-channel int8 weights, min/max "
                "uint8 activations, ReLU6 as ReLU with its observed output range capped at 6, the odd TensorFlow paddings and the head in float) "
                "and exported it as QuantizeLinear/DequantizeLinear around QLinearConv, which onnxruntime runs with its int8 kernels. "
                "Its quantization is PyTorch's, not the package's: top-1 agreement shows how close it comes.")
        except Exception:  # noqa: BLE001 - the reason goes into the notes, the float32 export stands
            notes.append("int8: PyTorch's quantization or its ONNX export failed here: " + traceback.format_exc().strip().splitlines()[-1])
    with open(os.path.join(args.out, "notes.json"), "w") as f:
        json.dump(notes, f)
    print(json.dumps({"event": "exported", "files": sorted(os.listdir(args.out))}))


if __name__ == "__main__":
    main()
