#!/usr/bin/python3
"""The package's network in PyTorch, exported to ONNX for the peers bench.

Reads the float graph and peer-head.json that tools/bench/peer-network.ts wrote
(the backbone to the final exit's boundary, then that exit's average pool and
dense layers), builds it with the trainer's own units, checks it, and writes
model-float32.onnx. The input is the model input as edge-exit feeds it: uint8
NHWC pixels; the output is the final exit's logits.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from train_multi_exit import ConvUnit, load_graph  # noqa: E402


class PeerNetwork(nn.Module):
    def __init__(self, spec, weight, flat, head):
        super().__init__()
        self.spec = spec
        self.head = head
        self.units = nn.ModuleDict()
        # Only the nodes up to the head's input tensor: the rest of the backbone is not part of the package.
        self.nodes = []
        for node in spec["nodes"]:
            self.nodes.append(node)
            if node["op"] == "conv2d":
                self.units[node["name"]] = ConvUnit(weight(node["weight"]), weight(node["bias"]), node["stride"],
                                                    node["padding"], node["groups"], node["activation"])
            if node["output"] == head["input"]:
                break
        else:
            raise SystemExit(f"the graph never produces the head's input {head['input']}")
        self.dense = nn.ParameterList()
        for layer in head["layers"]:
            for part in ("weight", "bias"):
                entry = layer[part]
                count = 1
                for d in entry["shape"]:
                    count *= d
                values = torch.from_numpy(flat[entry["offset"]:entry["offset"] + count].copy()).reshape(entry["shape"])
                self.dense.append(nn.Parameter(values, requires_grad=False))
        scale = spec["input"]["pixelScale"]
        zero = spec["input"]["pixelZeroPoint"]
        self.register_buffer("pixel_scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer("pixel_zero", torch.tensor(zero, dtype=torch.float32))

    def forward(self, pixels):
        x = ((pixels.float() - self.pixel_zero) * self.pixel_scale).permute(0, 3, 1, 2)
        values = {self.spec["input"]["tensor"]: x}
        for node in self.nodes:
            if node["op"] == "conv2d":
                y = self.units[node["name"]](values[node["inputs"][0]])
            elif node["op"] == "add":
                y = values[node["inputs"][0]] + values[node["inputs"][1]]
                if node["activation"] == "relu6":
                    y = F.relu6(y)
            else:
                y = values[node["inputs"][0]].mean((2, 3), keepdim=True)
            values[node["output"]] = y
        y = values[self.head["input"]]
        pool = self.head.get("pool")
        if pool:
            y = F.avg_pool2d(y, pool["filter"], pool["stride"])
        # TFLite flattens NHWC: height, width, then channels.
        y = y.permute(0, 2, 3, 1).reshape(y.shape[0], -1)
        for i, layer in enumerate(self.head["layers"]):
            y = F.linear(y, self.dense[2 * i], self.dense[2 * i + 1])
            if layer["activation"] == "relu":
                y = F.relu(y)
        return y


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--graph", required=True, help="directory with graph.json, weights.bin and peer-head.json")
    parser.add_argument("--out", required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--width", type=int, required=True)
    args = parser.parse_args()
    spec, weight = load_graph(args.graph)
    flat = np.fromfile(os.path.join(args.graph, "weights.bin"), dtype="<f4")
    with open(os.path.join(args.graph, "peer-head.json")) as f:
        head = json.load(f)
    model = PeerNetwork(spec, weight, flat, head).eval()
    example = torch.randint(0, 256, (1, args.height, args.width, 3), dtype=torch.uint8)
    with torch.no_grad():
        logits = model(example)
    if logits.shape != (1, len(head["classes"])):
        raise SystemExit(f"the network gives {tuple(logits.shape)}, not (1, {len(head['classes'])})")
    os.makedirs(args.out, exist_ok=True)
    torch.onnx.export(model, example, os.path.join(args.out, "model-float32.onnx"), input_names=["pixels"],
                      output_names=["logits"], opset_version=13, do_constant_folding=True)
    notes = ["float32: exported from PyTorch %s (torch.onnx, opset 13)" % torch.__version__]
    with open(os.path.join(args.out, "notes.json"), "w") as f:
        json.dump(notes, f)
    print(json.dumps({"event": "exported", "files": os.listdir(args.out)}))


if __name__ == "__main__":
    main()
