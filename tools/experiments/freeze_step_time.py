#!/usr/bin/python3
"""Seconds per training step with and without the early layers frozen (training.freezeThrough).

Usage: /usr/bin/python3 tools/experiments/freeze_step_time.py <work dir of `edge-exit train`>
Times forward, backward and an SGD step on random batches of 96 at 128 and 160 pixels (the graph is
fully convolutional, so one work directory serves both sizes), for nothing frozen and frozen through
block_2 and block_3. The trainer's own freeze() does the freezing.
"""
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import train_multi_exit as trainer  # noqa: E402


def step_seconds(spec, weight, config, size, freeze_through, steps=4):
    torch.manual_seed(0)
    model = trainer.MultiExitNet(spec, weight, config["cuts"], len(config["classes"]), config["headWidth"], config["dropout"])
    model = model.to(memory_format=torch.channels_last)
    for unit in model.units.values():
        unit.bn_active = True
    trainer.freeze(model, trainer.frozen_units(spec, freeze_through))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    x = torch.randn(96, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, len(config["classes"]), (96,))
    times = []
    for _ in range(steps + 1):
        started = time.time()
        loss = trainer.joint_loss(model(x), y, config, config["exitWeights"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.time() - started)
    return float(np.median(times[1:]))  # the first step warms up the allocator


def main():
    work = sys.argv[1]
    with open(os.path.join(work, "train-config.json")) as f:
        config = json.load(f)
    torch.set_num_threads(config["threads"])
    spec, weight = trainer.load_graph(os.path.join(work, "base"))
    print("| input | frozen through | s/step | images/s |\n| --- | --- | --- | --- |")
    for size in (128, 160):
        for freeze_through in (None, "block_2", "block_3"):
            seconds = step_seconds(spec, weight, config, size, freeze_through)
            print(f"| {size} | {freeze_through or '-'} | {seconds:.2f} | {96 / seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
