#!/usr/bin/python3
"""Seconds per training step in float32 and under bfloat16 autocast, side by side.

Usage: /usr/bin/python3 tools/experiments/bf16_step_time.py <work dir of `edge-exit train`> [threads]
Times forward, backward and an SGD step on random batches of the config's size at the model's input
size and, with progressive resizing, at the low resolution too; float32 and bfloat16 steps alternate,
so that a busy machine slows both alike. The layers the config freezes stay frozen. It also prints how
far the bfloat16 loss is from the float32 one on the same batch, since a faster step is of no use if
it learns something else. Worth a look where the processor has bfloat16 instructions (avx512_bf16, AMX).
"""
import contextlib
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import train_multi_exit as trainer  # noqa: E402


def build(spec, weight, config):
    torch.manual_seed(0)
    model = trainer.MultiExitNet(spec, weight, config["cuts"], len(config["classes"]), config["headWidth"], config["dropout"])
    model = model.to(memory_format=torch.channels_last)
    for unit in model.units.values():
        unit.bn_active = True
    trainer.freeze(model, trainer.frozen_units(spec, config["freezeThrough"]))
    return model


def main():
    work = sys.argv[1]
    with open(os.path.join(work, "train-config.json")) as f:
        config = json.load(f)
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else config["threads"])
    spec, weight = trainer.load_graph(os.path.join(work, "base"))
    sizes = [spec["input"]["height"]] + ([config["lowResolution"]["inputSize"]] if config.get("lowResolution") else [])
    batch = config["batchSize"]
    weights = config["exitWeights"]
    print("| input | float32 s/step | bfloat16 s/step | speed-up | loss float32 | loss bfloat16 |\n| --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        models = {"float32": build(spec, weight, config), "bfloat16": build(spec, weight, config)}
        optimizers = {k: torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.01, momentum=0.9) for k, m in models.items()}
        x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, len(config["classes"]), (batch,))
        times = {k: [] for k in models}
        first_loss = {}
        for _ in range(4):
            for kind, model in models.items():
                context = torch.autocast("cpu", dtype=torch.bfloat16) if kind == "bfloat16" else contextlib.nullcontext()
                started = time.time()
                with context:
                    outputs = model(x)
                loss = trainer.joint_loss([o.float() for o in outputs], y, config, weights)
                optimizers[kind].zero_grad()
                loss.backward()
                optimizers[kind].step()
                times[kind].append(time.time() - started)
                first_loss.setdefault(kind, float(loss))
        # The first step of each warms up the allocator and oneDNN's kernels.
        f32, b16 = (float(np.median(times[k][1:])) for k in ("float32", "bfloat16"))
        print(f"| {size} | {f32:.2f} | {b16:.2f} | {f32 / b16:.2f}x | {first_loss['float32']:.4f} | {first_loss['bfloat16']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
