#!/usr/bin/python3
"""Joint fine-tuning of a MobileNetV2 backbone and its exit heads.

Reads a float graph (agent/training/FLOAT-GRAPH.md) that the TypeScript side
dequantized from the pretrained int8 model, and uint8 image tensors that the
agent's own preprocessing decoded. Trains every exit together (weighted loss,
optional self-distillation from the final exit), checkpoints and resumes, then
folds batch norm back into the convolutions and hands the trained float graph,
with activation ranges measured on calibration images, back to TypeScript,
which quantizes it to int8 TFLite.

Progress goes to stdout as one JSON object per line; everything else to stderr.
Run by `edge-exit train`; see `--help` for running it by hand.
"""
import argparse
import json
import math
import os
import random
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as error:  # pragma: no cover - reported to the TypeScript side
    print(json.dumps({"event": "missing-dependency", "module": error.name}), flush=True)
    sys.exit(3)

GRAPH_FORMAT = "edge-exit/float-graph"
BN_EPS = 1e-3


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


BFLOAT16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # x86 (flags) and Arm (Features) spellings


def bfloat16_steps(config):
    """Whether steps run under bfloat16 autocast, and why not when asked for.

    The recipe asks for bfloat16 to buy epochs; a processor without bfloat16
    instructions emulates it, many times slower than float32, so there the
    steps stay float32. EDGE_EXIT_CPUINFO names another /proc/cpuinfo (tests).
    """
    if not config.get("bfloat16"):
        return False, None
    cpuinfo = os.environ.get("EDGE_EXIT_CPUINFO", "/proc/cpuinfo")
    try:
        with open(cpuinfo) as f:
            text = f.read()
    except OSError:  # no /proc (not Linux): nothing to go by, so the recipe stands
        return True, None
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    if flags & BFLOAT16_FLAGS:
        return True, None
    return False, (f"training.bfloat16 is set, but this processor has no bfloat16 instructions ({', '.join(sorted(BFLOAT16_FLAGS))} "
                   f"absent from {cpuinfo}), where emulated bfloat16 steps are several times slower than float32 ones: "
                   "training in float32 instead")


def load_graph(directory):
    with open(os.path.join(directory, "graph.json")) as f:
        spec = json.load(f)
    if spec.get("format") != GRAPH_FORMAT or spec.get("version") != 1:
        raise SystemExit(f"{directory}/graph.json is not an {GRAPH_FORMAT} v1 file")
    flat = np.fromfile(os.path.join(directory, "weights.bin"), dtype="<f4")

    def weight(name):
        entry = spec["weights"][name]
        count = int(np.prod(entry["shape"]))
        return torch.from_numpy(flat[entry["offset"]:entry["offset"] + count].copy()).reshape(entry["shape"])

    return spec, weight


def same_padding(size, kernel, stride):
    """TensorFlow's SAME: the output is ceil(size / stride); the odd pixel of padding goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def relu6(x):
    # torch 1.13 has no bfloat16 backward for hardtanh (relu6) on the CPU; clamp computes the same function.
    return x.clamp(0, 6) if x.dtype == torch.bfloat16 else F.relu6(x)


class ConvUnit(nn.Module):
    """A convolution with bias, then batch norm while training, then the fused activation."""

    def __init__(self, weight, bias, stride, padding, groups, activation):
        super().__init__()
        out_channels, in_per_group, kh, kw = weight.shape
        self.conv = nn.Conv2d(in_per_group * groups, out_channels, (kh, kw), stride=stride, groups=groups, bias=True)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(bias)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.padding = padding
        self.activation = activation
        # Pretrained units start with batch norm bypassed, until init_batchnorm sets it to the identity.
        self.bn_active = False
        self.stats = None
        self.rescale = None

    def forward(self, x):
        kh, kw = self.conv.kernel_size
        stride = self.conv.stride[0]
        if self.padding == "same":
            top, bottom = same_padding(x.shape[2], kh, stride)
            left, right = same_padding(x.shape[3], kw, stride)
            if top == bottom and left == right:
                y = F.conv2d(x, self.conv.weight, self.conv.bias, stride, (top, left), 1, self.conv.groups)
            else:
                y = self.conv(F.pad(x, (left, right, top, bottom)))
        else:
            y = self.conv(x)
        if self.stats is not None:
            dims = (0, 2, 3)
            y64 = y.detach().double()
            self.stats[0] += y64.mean(dims) * y.shape[0]
            self.stats[1] += (y64 ** 2).mean(dims) * y.shape[0]
            self.stats[2] += y.shape[0]
            # Later units must see the pretrained activations while their statistics are gathered.
            y = y * self.rescale.reshape(1, -1, 1, 1)
        if self.bn_active:
            y = self.bn(y)
        return relu6(y) if self.activation == "relu6" else y

    def fold(self):
        """Batch norm (inference form) merged into the convolution's weights and bias."""
        if self.bn_active:
            bn = self.bn
            factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            with torch.no_grad():
                self.conv.weight.mul_(factor.reshape(-1, 1, 1, 1))
                self.conv.bias.copy_((self.conv.bias - bn.running_mean) * factor + bn.bias)
        self.bn_active = False


class MultiExitNet(nn.Module):
    def __init__(self, spec, weight, cuts, classes, head_width, dropout):
        super().__init__()
        self.spec = spec
        self.units = nn.ModuleDict()
        for node in spec["nodes"]:
            if node["op"] == "conv2d":
                self.units[node["name"]] = ConvUnit(weight(node["weight"]), weight(node["bias"]), node["stride"],
                                                    node["padding"], node["groups"], node["activation"])
        boundaries = {b["name"]: b["tensor"] for b in spec["boundaries"]}
        missing = [c for c in cuts if c not in boundaries]
        if missing:
            raise SystemExit(f"cuts {missing} are not boundaries of the graph; valid: {sorted(boundaries)}")
        self.cuts = cuts
        self.cut_tensors = [boundaries[c] for c in cuts]
        self.pooled = boundaries["pooled"]
        self.channels = self._channels()
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList()
        for tensor in self.cut_tensors:
            hidden = ConvUnit(torch.empty(head_width, self.channels[tensor], 1, 1), torch.zeros(head_width), 1, "valid", 1, "relu6")
            nn.init.kaiming_normal_(hidden.conv.weight, mode="fan_out")
            hidden.bn_active = True
            classifier = nn.Conv2d(head_width, classes, 1)
            self.heads.append(nn.ModuleDict({"hidden": hidden, "classifier": classifier}))
        self.final = nn.Conv2d(self.channels[self.pooled], classes, 1)
        for conv in [h["classifier"] for h in self.heads] + [self.final]:
            nn.init.normal_(conv.weight, 0, 0.01)
            nn.init.zeros_(conv.bias)

    def _channels(self):
        channels = {self.spec["input"]["tensor"]: self.spec["input"]["channels"]}
        for node in self.spec["nodes"]:
            if node["op"] == "conv2d":
                channels[node["output"]] = self.units[node["name"]].conv.out_channels
            else:
                channels[node["output"]] = channels[node["inputs"][0]]
        return channels

    def backbone(self, x, record=None):
        values = {self.spec["input"]["tensor"]: x}
        for node in self.spec["nodes"]:
            if node["op"] == "conv2d":
                y = self.units[node["name"]](values[node["inputs"][0]])
            elif node["op"] == "add":
                y = values[node["inputs"][0]] + values[node["inputs"][1]]
                if node["activation"] == "relu6":
                    y = relu6(y)
            else:
                y = values[node["inputs"][0]].mean((2, 3), keepdim=True)
            values[node["output"]] = y
            if record is not None:
                record(node["output"], y)
        return values

    def forward(self, x, record=None):
        return self.exits(self.backbone(x, record), record)

    def exits(self, values, record=None, final=None):
        """Every exit's logits from the backbone's tensors; `final` given (the heads phase) is used as is."""
        logits = []
        for i, (tensor, head) in enumerate(zip(self.cut_tensors, self.heads)):
            hidden = head["hidden"](values[tensor])
            pooled = hidden.mean((2, 3), keepdim=True)
            out = head["classifier"](self.dropout(pooled))
            if record is not None:
                record(f"exit{i}.hidden", hidden)
                record(f"exit{i}.pooled", pooled)
                record(f"exit{i}.logits", out)
            logits.append(out.flatten(1))
        if final is None:
            final = self.final(self.dropout(values[self.pooled]))
            if record is not None:
                record("final.logits", final)
        logits.append(final.flatten(1))
        return logits

    def head_step_outputs(self, x):
        """The heads phase: the fine-tuned backbone and final exit run as they are, without gradients
        (batch norm fixed), so only the early heads learn, at about the cost of inference."""
        with torch.no_grad():
            values = self.backbone(x)
            final = self.final(values[self.pooled])
        return self.exits(values, final=final)

    def heads_phase_mode(self):
        self.train()
        for unit in self.units.values():
            unit.eval()
        for p in list(self.units.parameters()) + list(self.final.parameters()):
            p.requires_grad_(False)


class Images:
    """uint8 NHWC images decoded by the agent, mapped from disk."""

    def __init__(self, stem, height, width):
        self.labels = np.fromfile(stem + ".labels", dtype="<i4").astype(np.int64)
        self.pixels = np.memmap(stem + ".u8", dtype=np.uint8, mode="r", shape=(len(self.labels), height, width, 3))

    def __len__(self):
        return len(self.labels)

    def batch(self, indices):
        order = np.sort(indices)
        x = torch.from_numpy(np.ascontiguousarray(self.pixels[order])).permute(0, 3, 1, 2)
        return x, torch.from_numpy(self.labels[order])


def to_model_input(pixels, spec):
    scale, zero = spec["input"]["pixelScale"], spec["input"]["pixelZeroPoint"]
    return ((pixels.float() - zero) * scale).contiguous(memory_format=torch.channels_last)


def augment(pixels, pad, generator):
    """Random crop from a reflect-padded image, and a random horizontal flip, per image."""
    n, _, h, w = pixels.shape
    padded = F.pad(pixels.float(), (pad, pad, pad, pad), mode="reflect")
    ys = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    xs = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty((n, 3, h, w))
    for i in range(n):
        crop = padded[i, :, ys[i]:ys[i] + h, xs[i]:xs[i] + w]
        out[i] = crop.flip(2) if flips[i] else crop
    return out


def cut_out(pixels, side, fill, generator):
    """Cutout: per image, one square of side `side` (a fraction of the image), centred anywhere and
    clipped at the borders, set to `fill`, the pixel value that the model input maps to 0."""
    n, _, h, w = pixels.shape
    size = max(1, round(side * min(h, w)))
    top = (torch.randint(0, h, (n,), generator=generator) - size // 2).view(n, 1, 1)
    left = (torch.randint(0, w, (n,), generator=generator) - size // 2).view(n, 1, 1)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return pixels.masked_fill(inside.unsqueeze(1), fill)


def training_pixels(pixels, config, spec, seed):
    """The augmented batch, from the batch's seed alone, so a resumed run sees the same pixels."""
    generator = torch.Generator().manual_seed(seed)
    x = augment(pixels, config["augmentPad"], generator)
    if config.get("cutout"):
        x = cut_out(x, config["cutout"], float(spec["input"]["pixelZeroPoint"]), generator)
    return x


def cut_mix(pixels, settings, seed):
    """CutMix: with probability settings["probability"], one box, the same for the whole batch, is pasted
    into every image from its partner in a shuffled copy of the batch; the box covers about 1 - lam of
    the image, lam ~ Beta(alpha, alpha), clipped at the borders. Returns the pixels, each image's partner
    (None when the batch stays unmixed) and the share of the image its own label keeps. Drawn from the
    batch's seed alone, so a resumed run mixes the same batches the same way."""
    rng = np.random.default_rng(seed)
    if rng.random() >= settings["probability"]:
        return pixels, None, 1.0
    n, _, h, w = pixels.shape
    lam = rng.beta(settings["alpha"], settings["alpha"])
    box_h, box_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    top, bottom = max(cy - box_h // 2, 0), min(cy + box_h // 2, h)
    left, right = max(cx - box_w // 2, 0), min(cx + box_w // 2, w)
    partner = torch.from_numpy(rng.permutation(n))
    mixed = pixels.clone()
    mixed[:, :, top:bottom, left:right] = pixels[partner, :, top:bottom, left:right]
    return mixed, partner, 1 - (bottom - top) * (right - left) / (h * w)


def training_size(config, epoch):
    """The side the batch is shrunk to in this epoch of progressive resizing, or None for the model's own."""
    low = config.get("lowResolution")
    return low["inputSize"] if low and epoch < low["epochs"] else None


def shrink(x, size):
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def evaluate(model, images, spec, batch=250, indices=None):
    # Each module's mode is given back as it was: in the heads phase the backbone stays in eval mode.
    modes = {module: module.training for module in model.modules()}
    model.eval()
    indices = np.arange(len(images)) if indices is None else indices
    correct = None
    with torch.no_grad():
        for start in range(0, len(indices), batch):
            x, y = images.batch(indices[start:start + batch])
            outs = model(to_model_input(x, spec))
            hits = [int((o.argmax(1) == y).sum()) for o in outs]
            correct = hits if correct is None else [a + b for a, b in zip(correct, hits)]
    for module, training in modes.items():
        module.train(training)
    return [100.0 * c / len(indices) for c in correct]


def epoch_validation_indices(count, limit):
    """The images every epoch's validation reads: all, or the first `limit` (the split is shuffled, so a random sample)."""
    return np.arange(count if limit is None else min(count, limit))


def frozen_units(spec, freeze_through):
    """Names of the convolutions from the input through the boundary `freeze_through` (none if it is None)."""
    if freeze_through is None:
        return set()
    boundaries = {b["name"]: b["tensor"] for b in spec["boundaries"]}
    if freeze_through not in boundaries:
        raise SystemExit(f"freezeThrough {freeze_through!r} is not a boundary of the graph; valid: {sorted(boundaries)}")
    names = set()
    for node in spec["nodes"]:
        if node["op"] == "conv2d":
            names.add(node["name"])
        if node["output"] == boundaries[freeze_through]:
            break
    return names


def freeze(model, names):
    """Frozen units keep their pretrained weights and run without batch norm, so they compute exactly
    the pretrained activations, and backward stops before them (the high-resolution early layers
    are about half the cost of a training step)."""
    for name in names:
        unit = model.units[name]
        unit.bn_active = False
        for p in unit.parameters():
            p.requires_grad_(False)


def init_batchnorm(model, images, spec, count):
    """Batch norm starts as the identity on the pretrained activations, so step 0 is the pretrained network."""
    units = [unit for unit in model.units.values() if any(p.requires_grad for p in unit.parameters())]
    with torch.no_grad():
        for unit in units:
            # Unit-norm filters: under batch norm a filter's scale only sets its effective
            # learning rate, and the folded pretrained scales vary by orders of magnitude.
            norm = unit.conv.weight.flatten(1).norm(dim=1)
            # Dead filters (all weights ~0) keep their scale rather than blowing up.
            norm = torch.where(norm > 1e-4, norm, torch.ones_like(norm))
            unit.conv.weight.div_(norm.reshape(-1, 1, 1, 1))
            unit.conv.bias.div_(norm)
            unit.stats = [0, 0, 0]
            unit.rescale = norm
    model.eval()
    with torch.no_grad():
        for start in range(0, count, 128):
            x, _ = images.batch(np.arange(start, min(start + 128, count)))
            model.backbone(to_model_input(x, spec))
    for unit in units:
        mean = unit.stats[0] / unit.stats[2]
        var = (unit.stats[1] / unit.stats[2] - mean ** 2).clamp_min(1e-6).float()
        mean = mean.float()
        with torch.no_grad():
            unit.bn.running_mean.copy_(mean)
            unit.bn.running_var.copy_(var)
            # Batch norm gives back the filter's scale, so its output is the pretrained activation.
            unit.bn.weight.copy_(torch.sqrt(var + BN_EPS) * unit.rescale)
            unit.bn.bias.copy_(mean * unit.rescale)
        unit.stats = None
        unit.bn_active = True
    model.train()


def learning_rate(config, step, total):
    warmup = max(1, int(total * config["warmupFraction"]))
    if step < warmup:
        return config["learningRate"] * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return config["learningRate"] * 0.5 * (1 + math.cos(math.pi * progress))


def joint_loss(outputs, labels, config, weights, pasted_labels=None, kept=1.0):
    """Weighted cross-entropy over the exits, plus self-distillation from the final exit into
    every early exit that takes part; an exit of weight 0 takes no part at all. A CutMix batch
    weighs each image's own label and its pasted partner's by the area each keeps."""
    smoothing = config["labelSmoothing"]

    def cross_entropy(o):
        own = F.cross_entropy(o, labels, label_smoothing=smoothing)
        if pasted_labels is None:
            return own
        return kept * own + (1 - kept) * F.cross_entropy(o, pasted_labels, label_smoothing=smoothing)

    loss = sum(w * cross_entropy(o) for w, o in zip(weights, outputs) if w > 0)
    distill = config["distillation"]
    if distill["weight"] > 0:
        t = distill["temperature"]
        teacher = F.softmax(outputs[-1].detach() / t, dim=1)
        for w, o in zip(weights[:-1], outputs[:-1]):
            if w > 0:
                loss = loss + distill["weight"] * t * t * F.kl_div(F.log_softmax(o / t, dim=1), teacher, reduction="batchmean")
    return loss


class WeightAverage:
    """An exponential moving average of the weights and batch-norm statistics over the joint phase.
    The average of the last few thousand steps generalizes a little better than the last step's weights,
    at no cost beyond one multiply-add per weight per step."""

    def __init__(self, model, decay, averaged=None):
        self.decay = decay
        # Only what training changes: averaging a frozen weight with itself could still move its last bit.
        learned = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        learned += [(k, b) for k, b in model.named_buffers() if b.dtype.is_floating_point]
        self.averaged = averaged if averaged is not None else {k: v.detach().clone() for k, v in learned}

    @torch.no_grad()
    def update(self, model):
        for k, v in model.state_dict().items():
            if k in self.averaged:
                self.averaged[k].mul_(self.decay).add_(v, alpha=1 - self.decay)

    def swap(self, model):
        """Gives the model the averaged weights and keeps its own in their place, so calling it twice restores it."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.averaged}
        model.load_state_dict(self.averaged, strict=False)
        self.averaged = own


def save_checkpoint(path, model, optimizer, epoch, step_in_epoch, global_step, history, elapsed, average):
    temporary = path + ".tmp"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                "stepInEpoch": step_in_epoch, "globalStep": global_step, "history": history, "elapsedSeconds": elapsed,
                "bnActive": {k: u.bn_active for k, u in model.units.items()},
                "weightAverage": average.averaged if average is not None else None}, temporary)
    os.replace(temporary, path)


def export(model, spec, calibration, classes, out_dir, calibration_count):
    """Folds batch norm, measures activation ranges, and writes the trained float graph."""
    model.eval()
    for unit in list(model.units.values()) + [h["hidden"] for h in model.heads]:
        unit.fold()
    ranges = {}

    def record(name, value):
        lo, hi = float(value.min()), float(value.max())
        old = ranges.get(name)
        ranges[name] = [min(lo, old[0]), max(hi, old[1])] if old else [lo, hi]

    with torch.no_grad():
        for start in range(0, min(calibration_count, len(calibration)), 100):
            x, _ = calibration.batch(np.arange(start, min(start + 100, calibration_count, len(calibration))))
            model(to_model_input(x, spec), record)

    parts, offset, weights = [], 0, {}

    def add(name, tensor):
        nonlocal offset
        data = tensor.detach().contiguous().float().numpy().ravel()
        weights[name] = {"offset": offset, "shape": list(tensor.shape)}
        parts.append(data)
        offset += data.size
        return name

    nodes = []
    for node in spec["nodes"]:
        node = dict(node)
        if node["op"] == "conv2d":
            conv = model.units[node["name"]].conv
            node["weight"] = add(node["name"] + ".weight", conv.weight)
            node["bias"] = add(node["name"] + ".bias", conv.bias)
        nodes.append(node)
    exits = []

    def conv_node(name, source, output, conv, activation):
        return {"op": "conv2d", "name": name, "inputs": [source], "output": output,
                "weight": add(name + ".weight", conv.weight), "bias": add(name + ".bias", conv.bias),
                "stride": 1, "padding": "valid", "groups": 1, "activation": activation}

    for i, (cut, tensor, head) in enumerate(zip(model.cuts, model.cut_tensors, model.heads)):
        head_nodes = [
            conv_node(f"exit{i}.hidden", tensor, f"exit{i}.hidden", head["hidden"].conv, "relu6"),
            {"op": "mean", "name": f"exit{i}.pooled", "inputs": [f"exit{i}.hidden"], "output": f"exit{i}.pooled"},
            conv_node(f"exit{i}.logits", f"exit{i}.pooled", f"exit{i}.logits", head["classifier"], "none"),
        ]
        nodes.extend(head_nodes)
        exits.append({"after": cut, "logits": f"exit{i}.logits", "nodes": [n["name"] for n in head_nodes]})
    final = conv_node("final.logits", model.pooled, "final.logits", model.final, "none")
    nodes.append(final)
    exits.append({"after": "pooled", "logits": "final.logits", "nodes": ["final.logits"]})

    os.makedirs(out_dir, exist_ok=True)
    np.concatenate(parts).astype("<f4").tofile(os.path.join(out_dir, "weights.bin"))
    trained = dict(spec, nodes=nodes, weights=weights, exits=exits, classes=classes, ranges=ranges,
                   description="fine-tuned by tools/train/train_multi_exit.py from " + spec.get("description", "a float graph"))
    with open(os.path.join(out_dir, "graph.json"), "w") as f:
        json.dump(trained, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="work directory prepared by `edge-exit train`")
    parser.add_argument("--preview-augmentation", type=int, metavar="COUNT",
                        help="write the first COUNT training images, augmented as in training (seeded by the run's "
                             "seed), to augmentation-preview.u8 (uint8 NCHW) in the work directory, and stop")
    args = parser.parse_args()
    with open(os.path.join(args.work, "train-config.json")) as f:
        config = json.load(f)
    torch.set_num_threads(config["threads"])
    use_bfloat16, bfloat16_refusal = bfloat16_steps(config)
    if bfloat16_refusal:
        emit("notice", message=bfloat16_refusal)
    random.seed(config["seed"])
    np.random.seed(config["seed"])
    torch.manual_seed(config["seed"])

    spec, weight = load_graph(os.path.join(args.work, "base"))
    h, w = spec["input"]["height"], spec["input"]["width"]
    train = Images(os.path.join(args.work, "data", "train"), h, w)
    validation = Images(os.path.join(args.work, "data", "validation"), h, w)
    test_stem = os.path.join(args.work, "data", "test")
    test = Images(test_stem, h, w) if os.path.exists(test_stem + ".labels") else None
    monitored = epoch_validation_indices(len(validation), config.get("epochValidationImages"))
    if args.preview_augmentation:
        pixels, _ = train.batch(np.arange(min(args.preview_augmentation, len(train))))
        preview = training_pixels(pixels, config, spec, config["seed"])
        mix = None
        if config.get("cutMix"):
            preview, partner, kept = cut_mix(preview, config["cutMix"], config["seed"])
            mix = {"partner": None if partner is None else partner.tolist(), "keptArea": kept}
        preview.round().clamp(0, 255).to(torch.uint8).numpy().tofile(os.path.join(args.work, "augmentation-preview.u8"))
        with open(os.path.join(args.work, "augmentation-preview.json"), "w") as f:
            json.dump({"cutMix": mix}, f)
        return
    classes = config["classes"]
    model = MultiExitNet(spec, weight, config["cuts"], len(classes), config["headWidth"], config["dropout"])
    model = model.to(memory_format=torch.channels_last)
    freeze(model, frozen_units(spec, config["freezeThrough"]))

    # Heads may learn faster than the pretrained backbone, and alone at first, so
    # their random early gradients do not wreck the pretrained features.
    groups = []
    for part in ("backbone", "heads"):
        for decayed in (True, False):
            params = [p for name, p in model.named_parameters()
                      if p.requires_grad and (name.startswith("units.") == (part == "backbone")) and ((p.ndim > 1) == decayed)]
            groups.append({"params": params, "weight_decay": config["weightDecay"] if decayed else 0, "part": part})
    optimizer = torch.optim.SGD(groups, lr=config["learningRate"], momentum=0.9, nesterov=True)
    batch = config["batchSize"]
    steps_per_epoch = len(train) // batch
    joint_steps = config["maxSteps"] or steps_per_epoch * config["epochs"]
    # The heads phase follows the joint one: early heads only, on the fine-tuned backbone.
    head_steps = round(config["headEpochs"] * steps_per_epoch)
    total_steps = joint_steps + head_steps
    epochs = math.ceil(total_steps / steps_per_epoch)
    joint_weights = config["exitWeights"]
    head_weights = [1.0] * (len(joint_weights) - 1) + [0.0]

    checkpoint_path = os.path.join(args.work, "checkpoint.pt")
    epoch, step_in_epoch, global_step, history, elapsed_before = 0, 0, 0, [], 0.0
    saved_average = None
    if os.path.exists(checkpoint_path):
        state = torch.load(checkpoint_path)
        for key, active in state["bnActive"].items():
            model.units[key].bn_active = active
        model.load_state_dict(state["model"])
        # A finished run needs no optimizer state, so a package can be re-exported after the trainer changed.
        if state["globalStep"] < total_steps:
            try:
                optimizer.load_state_dict(state["optimizer"])
            except ValueError as error:
                raise SystemExit(f"The checkpoint {checkpoint_path} was written by an older trainer whose optimizer differs ({error}); "
                     "delete it to train again from the start.")
        epoch, step_in_epoch, global_step, history = state["epoch"], state["stepInEpoch"], state["globalStep"], state["history"]
        saved_average = state.get("weightAverage")
        elapsed_before = state.get("elapsedSeconds", 0.0)
        emit("resumed", epoch=epoch, step=global_step, steps=total_steps)
    else:
        init_batchnorm(model, train, spec, min(len(train), config["batchnormInitImages"]))

    # The average lives through the joint phase only; once the model holds it, the checkpoint stores none.
    average = None
    if config.get("weightAverage") and global_step < joint_steps:
        average = WeightAverage(model, config["weightAverage"]["decay"], saved_average)

    def checkpoint():
        save_checkpoint(checkpoint_path, model, optimizer, epoch, step_in_epoch, global_step, history,
                        elapsed_before + time.time() - started, average)

    started = time.time()
    last_checkpoint = time.time()
    seen = 0
    model.train()
    # The heads phase sets its modes once, at its first step (in a resumed run too); evaluate() keeps them.
    heads_mode_set = False
    while global_step < total_steps:
        # Each epoch's order depends only on the seed and the epoch, so a resumed run replays it exactly.
        order = np.random.default_rng(config["seed"] * 1000 + epoch).permutation(len(train))
        generator = torch.Generator().manual_seed(config["seed"] * 1000 + epoch)
        for s in range(steps_per_epoch):
            pixels_seed = torch.randint(0, 2**31, (1,), generator=generator)
            if s < step_in_epoch:
                continue
            if global_step >= total_steps:
                break
            x, y = train.batch(order[s * batch:(s + 1) * batch])
            heads_phase = global_step >= joint_steps
            x = training_pixels(x, config, spec, int(pixels_seed))
            # The heads phase learns from the final exit's answers on whole images, so it mixes nothing.
            partner, kept = None, 1.0
            if config.get("cutMix") and not heads_phase:
                x, partner, kept = cut_mix(x, config["cutMix"], int(pixels_seed))
            size = training_size(config, epoch)
            if size is not None:
                x = shrink(x, size)
            x = to_model_input(x, spec)
            if heads_phase:
                if not heads_mode_set:
                    model.heads_phase_mode()
                    heads_mode_set = True
                lr = learning_rate(config, global_step - joint_steps, head_steps)
            else:
                lr = learning_rate(config, global_step, joint_steps)
            warming_heads = global_step < config["headWarmupEpochs"] * steps_per_epoch
            for group in optimizer.param_groups:
                backbone = group["part"] == "backbone"
                group["lr"] = (0.0 if warming_heads or heads_phase else lr * config["backboneLrScale"]) if backbone else lr
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bfloat16):
                outputs = model.head_step_outputs(x) if heads_phase else model(x)
            loss = joint_loss([o.float() for o in outputs], y, config, head_weights if heads_phase else joint_weights,
                              None if partner is None else y[partner], kept)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config["clipGradNorm"])
            optimizer.step()
            global_step += 1
            if average is not None:
                average.update(model)
                if global_step == joint_steps:
                    average.swap(model)
                    average = None
            seen += len(y)
            step_in_epoch = s + 1
            if global_step % 10 == 0 or global_step == total_steps:
                stage = "train heads" if heads_phase else "train" if size is None else f"train at {size}x{size}"
                emit("progress", stage=stage, epoch=epoch + 1, epochs=epochs, step=global_step, steps=total_steps,
                     loss=round(float(loss), 4), lr=round(lr, 6), imagesPerSecond=round(seen / (time.time() - started), 1))
            if time.time() - last_checkpoint > config["checkpointMinutes"] * 60:
                checkpoint()
                last_checkpoint = time.time()
        if step_in_epoch >= steps_per_epoch:
            accuracy = evaluate(model, validation, spec, indices=monitored)
            entry = {"epoch": epoch + 1, "step": global_step, "phase": "heads" if global_step > joint_steps else "joint",
                     "validationImages": len(monitored), "validationAccuracy": accuracy}
            if average is not None:
                average.swap(model)
                entry["averageValidationAccuracy"] = evaluate(model, validation, spec, indices=monitored)
                average.swap(model)
            history.append(entry)
            emit("epoch", epoch=epoch + 1, epochs=epochs, **{k: [round(a, 2) for a in v] for k, v in entry.items() if k.endswith("Accuracy")})
            epoch, step_in_epoch = epoch + 1, 0
        checkpoint()
        last_checkpoint = time.time()

    emit("progress", stage="export", step=0, steps=1)
    export(model, spec, train, classes, os.path.join(args.work, "trained"), config["calibrationImages"])
    report = {"history": history, "trainSeconds": round(elapsed_before + time.time() - started, 1), "steps": global_step,
              "stepPrecision": "bfloat16" if use_bfloat16 else "float32",
              "validationAccuracy": evaluate(model, validation, spec)}
    if test is not None:
        report["testAccuracy"] = evaluate(model, test, spec)
    with open(os.path.join(args.work, "trained", "float-report.json"), "w") as f:
        json.dump(report, f, indent=1)
    emit("done", **report)


if __name__ == "__main__":
    main()
