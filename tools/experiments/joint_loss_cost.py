#!/usr/bin/python3
"""What the joint loss costs the final exit, in a short proxy run.

Usage: /usr/bin/python3 tools/experiments/joint_loss_cost.py <work dir of `edge-exit train`> [steps] [head epochs]
Trains the work directory's recipe twice from the same start, each in its own scratch directory
beside it (the base graph and decoded images are linked, not copied):
  joint       the recipe's exit weights and distillation, as they are;
  final-first early exits weighted 0 (the backbone serves the final exit alone), then a heads phase
              of the given epochs (default 1) that trains the early exits on the result.
Both use the recipe's settings otherwise, with the learning rates of the 128 and 160 recipes, the step
count given (default: 2 epochs) and the layers through block_2 frozen, so that the pair fits in about
half an hour at 96x96. Prints the
validation accuracy per exit of each, from the trainer's own report.
"""
import json
import os
import shutil
import subprocess
import sys

TRAINER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train", "train_multi_exit.py")


def run(work, name, changes):
    scratch = os.path.join(os.path.dirname(os.path.abspath(work)), f"{os.path.basename(work)}-proxy-{name}")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    for part in ("base", "data"):
        os.symlink(os.path.abspath(os.path.join(work, part)), os.path.join(scratch, part))
    with open(os.path.join(work, "train-config.json")) as f:
        config = json.load(f)
    config.update(changes)
    with open(os.path.join(scratch, "train-config.json"), "w") as f:
        json.dump(config, f, indent=1)
    print(f"{name}: training in {scratch}", flush=True)
    subprocess.run([sys.executable, TRAINER, "--work", scratch], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(scratch, "trained", "float-report.json")) as f:
        report = json.load(f)
    return report


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    work = sys.argv[1]
    with open(os.path.join(work, "train-config.json")) as f:
        recipe = json.load(f)
    with open(os.path.join(work, "data", "train.labels"), "rb") as f:
        images = len(f.read()) // 4
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 2 * (images // recipe["batchSize"])
    head_epochs = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    common = {"maxSteps": steps, "freezeThrough": "block_2", "learningRate": 0.02, "backboneLrScale": 0.5, "headWarmupEpochs": 0.25, "headEpochs": 0}
    exits = len(recipe["exitWeights"])
    results = {
        "joint": run(work, "joint", common),
        "final-first": run(work, "final-first", {**common, "exitWeights": [0] * (exits - 1) + [1], "headEpochs": head_epochs}),
    }
    for name, report in results.items():
        print(f"{name:12s} validation per exit {[round(a, 2) for a in report['validationAccuracy']]}  "
              f"train {report['trainSeconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
