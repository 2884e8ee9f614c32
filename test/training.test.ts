// The fine-tuning path end to end on a few real CIFAR-10 images: the real
// PyTorch trainer (Debian's python3-torch), the real int8 export and the real
// TFLite runtime on the package it writes.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { trainCommand } from '../tools/cli/train.js';
import { createExitPolicy } from '../agent/exit-policy/policy.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import { BuildConfigError } from '../tools/model-package/build-config.js';
import { loadModelPackage } from '../agent/model-package/load.js';
import { trainingCurveTitle, type EpochAccuracy } from '../tools/plots/training-curve-plot.js';
import { imageFileToRgb } from '../agent/preprocess/image-to-rgb.js';
import { readTfliteModel } from '../agent/tflite/reader.js';
import { dequantizeBackbone } from '../tools/training/dequantize-backbone.js';
import { readFloatGraph, weightOf } from '../tools/training/float-graph.js';
import { planTrainingWork, prepareTrainingWork } from '../tools/training/prepare-work.js';
import { checkPythonDependencies, choosePython, previewAugmentation, runTrainer, TrainerError, type TrainerEvent } from '../tools/training/python-trainer.js';
import { quantizeConvWeight } from '../tools/training/quantize-graph.js';
import { loadTrainConfig } from '../tools/training/train-config.js';
import { CIFAR_TEST, MOBILENET_V2, SHARED, temporaryDir } from './helpers/shared.js';
import { fakeCompilerDir } from './helpers/fake-edgetpu.js';
import { checkEdgeTpu, formatEdgeTpuReport } from '../tools/tflite/edgetpu-check.js';

const CUTS = ['block_3', 'block_9'];

function convWeights(graph: ReturnType<typeof readFloatGraph>, name: string): Float32Array {
  const node = graph.spec.nodes.find((n) => n.name === name);
  if (node?.op !== 'conv2d') throw new Error(`${name} is not a convolution of the graph`);
  return weightOf(graph, node.weight).data;
}

function writeTinyTrainConfig(dir: string, training: Record<string, unknown> = {}, task: Record<string, unknown> = {}): string {
  const file = path.join(dir, `train-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(
    file,
    JSON.stringify({
      name: 'tiny_finetuned',
      baseModel: { path: MOBILENET_V2 },
      inputSize: 64,
      cuts: CUTS,
      latencyRuns: 2,
      task: { name: 'cifar10', dataset: path.join(SHARED, 'data', 'cifar10'), trainPerClass: 6, validationPerClass: 3, testPerClass: 2, ...task },
      training: { maxSteps: 4, batchSize: 12, headWidth: 16, batchnormInitImages: 24, calibrationImages: 24, seed: 3, ...training },
    }),
  );
  return file;
}

/** Trains a tiny config to its end in its own work directory under `dir`, and reads the trained float graph. */
async function trainTiny(dir: string, training: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env) {
  const config = loadTrainConfig(writeTinyTrainConfig(dir, training));
  const work = planTrainingWork(config, path.join(dir, 'cache'));
  await prepareTrainingWork(config, work);
  const events: TrainerEvent[] = [];
  const done = await runTrainer(choosePython(undefined), work.dir, (event) => events.push(event), undefined, env);
  return { done, events, trained: readFloatGraph(path.join(work.dir, 'trained')) };
}

/** A /proc/cpuinfo of one x86 core with the given flags, for the trainer's bfloat16 check. */
function fakeCpuinfo(dir: string, flags: string): NodeJS.ProcessEnv {
  const file = path.join(dir, `cpuinfo-${flags.split(' ').length}`);
  fs.writeFileSync(file, `processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: ${flags}\n\n`);
  return { ...process.env, EDGE_EXIT_CPUINFO: file };
}
const AVX2_FLAGS = 'fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma';

test('the dequantized backbone keeps every pretrained weight within half a quantization step, in PyTorch layout', (t) => {
  const model = readTfliteModel(fs.readFileSync(MOBILENET_V2));
  const graph = dequantizeBackbone(model);
  const conv = graph.spec.nodes.filter((n) => n.op === 'conv2d');
  t.is(conv.length, 52, 'all convolutions up to pooled, the ImageNet classifier left out');
  t.deepEqual(graph.spec.boundaries.map((b) => b.name).slice(-2), ['block_16', 'pooled']);
  const depthwise = conv.find((n) => n.op === 'conv2d' && n.groups > 1)!;
  t.true(depthwise.op === 'conv2d');
  if (depthwise.op !== 'conv2d') return;
  const weight = weightOf(graph, depthwise.weight);
  t.deepEqual(weight.shape, [32, 1, 3, 3]);
  // Quantizing it again with per-channel scales gives back codes within one step of the original ones.
  const requantized = quantizeConvWeight(weight, true);
  t.deepEqual(requantized.shape, [1, 3, 3, 32]);
  const original = model.subgraphs[0]!.tensors[model.subgraphs[0]!.operators[2]!.inputs[1]!]!;
  const codes = new Int8Array(model.buffers[original.buffer]!.buffer, model.buffers[original.buffer]!.byteOffset, 288);
  let worst = 0;
  codes.forEach((code, i) => {
    const c = i % 32;
    const value = original.quantization!.scale[c]! * code;
    worst = Math.max(worst, Math.abs(requantized.codes[i]! * requantized.quantization.scale[c]! - value) / requantized.quantization.scale[c]!);
  });
  t.true(worst <= 0.5 + 1e-3, `worst re-quantization error ${worst} steps`);
});

test('a missing Python module is reported with what to install', (t) => {
  const python = choosePython(undefined);
  const error = t.throws(() => checkPythonDependencies(python, ['numpy', 'edge_exit_no_such_module']), { instanceOf: TrainerError });
  t.regex(error!.message, /edge_exit_no_such_module/);
  t.regex(error!.message, /apt-get install python3-torch/);
  t.throws(() => checkPythonDependencies('/nonexistent/python3'), { instanceOf: TrainerError, message: /Cannot run \/nonexistent\/python3.*EDGE_EXIT_PYTHON/s });
});

test('a test split whose classes differ from the training classes is refused by name', (t) => {
  const dir = temporaryDir('edge-exit-classes-');
  for (const [split, names] of [['train', ['cat', 'dog']], ['test', ['cat', 'horse']]] as const) {
    for (const name of names) {
      fs.mkdirSync(path.join(dir, split, name), { recursive: true });
      for (let i = 0; i < 3; i++) fs.copyFileSync(path.join(CIFAR_TEST, name, '0000.jpg'), path.join(dir, split, name, `${i}.jpg`));
    }
  }
  const config = loadTrainConfig(writeTinyTrainConfig(dir, {}, { dataset: dir, trainPerClass: undefined, validationPerClass: undefined, testPerClass: undefined, validationFraction: 0.34 }));
  const error = t.throws(() => planTrainingWork(config, path.join(dir, 'cache')));
  t.regex(error!.message, /missing: dog; not in the model: horse/);
});

test('exit weights are checked against the cuts, and the final exit must train', (t) => {
  const dir = temporaryDir('edge-exit-weights-');
  t.throws(() => loadTrainConfig(writeTinyTrainConfig(dir, { exitWeights: [1, 1] })), { instanceOf: BuildConfigError, message: /2 cuts make 3 exits, so give 3 weights, not 2/ });
  t.throws(() => loadTrainConfig(writeTinyTrainConfig(dir, { exitWeights: [1, 1, 0] })), { instanceOf: BuildConfigError, message: /the final exit's weight \(the last\) must be above 0.*training\.headEpochs/ });
  t.deepEqual(loadTrainConfig(writeTinyTrainConfig(dir, { exitWeights: [0, 0, 1] })).training.exitWeights, [0, 0, 1]);
});

test('training a few steps exports a valid multi-exit package that the engine runs', async (t) => {
  const dir = temporaryDir('edge-exit-train-');
  const out = path.join(dir, 'package');
  // The export goes through the same Edge TPU step as build-model, here under the fake compiler.
  process.env.PATH = `${fakeCompilerDir()}${path.delimiter}${process.env.PATH}`;
  const report = await trainCommand({ config: writeTinyTrainConfig(dir), out, cacheDir: path.join(dir, 'cache'), edgetpu: true });
  t.is(report.steps, 4);
  t.is(report.float.validationAccuracy.length, 3);
  t.is(report.int8.validationAccuracy.length, 3);
  const pkg = loadModelPackage(out);
  const m = pkg.manifest;
  t.deepEqual(m.segments.map((s) => `${s.from}->${s.to}`), ['input->block_3', 'block_3->block_9', 'block_9->pooled']);
  t.is(m.heads.length, 3);
  t.deepEqual(m.labels.cifar10, fs.readdirSync(CIFAR_TEST).sort());
  t.truthy(m.operatingPoints.find((p) => p.name === 'balanced'));
  t.deepEqual([m.input.width, m.input.height], [64, 64]);
  // Per-channel weights where the Edge TPU compiler and XNNPACK take them.
  const segment = readTfliteModel(fs.readFileSync(path.join(out, m.segments[1]!.file)));
  const filters = segment.subgraphs[0]!.tensors.filter((tensor) => tensor.name.endsWith('/weights'));
  t.true(filters.length > 0 && filters.every((f) => f.quantization!.scale.length === f.shape[f.quantization!.quantizedDimension]));

  // Every file of the export meets the Edge TPU's requirements, and its segments have compiled variants.
  for (const file of [...m.segments, ...m.heads].map((part) => part.file)) {
    const check = checkEdgeTpu(readTfliteModel(fs.readFileSync(path.join(out, file))));
    t.true(check.passes, `${file}: ${formatEdgeTpuReport(file, check)}`);
  }
  t.is(m.edgetpu?.compilerVersion, '16.0.384591198');
  t.true(m.segments.every((s) => s.edgetpu?.compiledFrom === s.sha256 && s.edgetpu.opsOnCpu === 0));

  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
  engine.input.data.set(await imageFileToRgb(path.join(CIFAR_TEST, 'ship', '0000.jpg'), { width: 64, height: 64, resize: 'stretch' }));
  const result = engine.classify(createExitPolicy({ policy: 'max-probability', thresholds: [1, 1, 1] }, 3));
  t.is(result.exit, 2);
  t.is(result.probabilities.length, 10);
  t.true(fs.existsSync(path.join(out, 'training-report.json')));

  // A second package for other classes may not silently replace this one.
  const otherClasses = temporaryDir('edge-exit-other-');
  for (const name of ['cat', 'dog']) {
    fs.mkdirSync(path.join(otherClasses, 'train', name), { recursive: true });
    for (let i = 0; i < 4; i++) fs.copyFileSync(path.join(CIFAR_TEST, name, '0000.jpg'), path.join(otherClasses, 'train', name, `${i}.jpg`));
  }
  const other = writeTinyTrainConfig(dir, {}, { dataset: otherClasses, trainPerClass: undefined, validationPerClass: undefined, testPerClass: undefined, validationFraction: 0.5 });
  await t.throwsAsync(trainCommand({ config: other, out, cacheDir: path.join(dir, 'cache') }), { message: /classes \[cat, dog\].*Use an ImageFolder with the same class sub-folders/s });
});

test('an interrupted training resumes from its checkpoint, weight average included, and finishes the same number of steps', async (t) => {
  const dir = temporaryDir('edge-exit-resume-');
  const config = loadTrainConfig(writeTinyTrainConfig(dir, { maxSteps: 12, batchSize: 6, checkpointMinutes: 0.0001, weightAverage: { decay: 0.9 } }));
  const work = planTrainingWork(config, path.join(dir, 'cache'));
  await prepareTrainingWork(config, work);
  const python = choosePython(undefined);
  const stop = new AbortController();
  const checkpoint = path.join(work.dir, 'checkpoint.pt');
  const interrupted = runTrainer(python, work.dir, (event) => {
    if (event.event === 'progress' && Number(event.step) >= 2 && fs.existsSync(checkpoint)) stop.abort();
  }, stop.signal);
  await t.throwsAsync(interrupted, { instanceOf: TrainerError, message: /interrupted.*Run the same command again to resume/s });
  t.true(fs.existsSync(checkpoint));

  const events: TrainerEvent[] = [];
  const done = await runTrainer(python, work.dir, (event) => events.push(event));
  const resumed = events.find((e) => e.event === 'resumed');
  t.truthy(resumed, 'the second run starts from the checkpoint');
  // The checkpoint on disk when the abort lands may be from step 1 (a loaded machine lags the progress events): any step short of the end is a resume.
  t.true(Number(resumed!.step) >= 1 && Number(resumed!.step) < 12, `resumed at step ${String(resumed!.step)}`);
  t.is(done.steps, 12);
  t.true(fs.existsSync(path.join(work.dir, 'trained', 'graph.json')));
});

test('layers frozen through a boundary keep their pretrained weights, through a weight average too, while later layers train', async (t) => {
  const dir = temporaryDir('edge-exit-freeze-');
  const config = loadTrainConfig(writeTinyTrainConfig(dir, { maxSteps: 3, freezeThrough: 'block_2', learningRate: 0.1, weightAverage: { decay: 0.9 } }));
  const work = planTrainingWork(config, path.join(dir, 'cache'));
  await prepareTrainingWork(config, work);
  await runTrainer(choosePython(undefined), work.dir, () => {});
  const base = readFloatGraph(path.join(work.dir, 'base'));
  const trained = readFloatGraph(path.join(work.dir, 'trained'));
  const block2 = base.spec.boundaries.find((b) => b.name === 'block_2')!.tensor;
  const lastFrozen = base.spec.nodes.findIndex((n) => n.output === block2);
  const changed = (node: (typeof base.spec.nodes)[number]) => {
    if (node.op !== 'conv2d') return false;
    const after = trained.spec.nodes.find((n) => n.name === node.name);
    if (after?.op !== 'conv2d') throw new Error(`${node.name} missing from the trained graph`);
    const before = weightOf(base, node.weight).data;
    return !weightOf(trained, after.weight).data.every((v, i) => v === before[i]);
  };
  const frozen = base.spec.nodes.slice(0, lastFrozen + 1).filter((n) => n.op === 'conv2d');
  t.true(frozen.length >= 6, 'stem and blocks 0-2');
  t.deepEqual(frozen.filter(changed).map((n) => n.name), []);
  t.true(base.spec.nodes.slice(lastFrozen + 1).filter(changed).length > 0, 'the layers after block_2 trained');

  const wrong = loadTrainConfig(writeTinyTrainConfig(dir, { maxSteps: 1, freezeThrough: 'block_99' }));
  const wrongWork = planTrainingWork(wrong, path.join(dir, 'cache'));
  await prepareTrainingWork(wrong, wrongWork);
  await t.throwsAsync(runTrainer(choosePython(undefined), wrongWork.dir, () => {}), { instanceOf: TrainerError, message: /freezeThrough 'block_99' is not a boundary.*block_2/s });
});

test('the heads phase trains only the early exits: the backbone and final exit leave it bit for bit as the joint phase left them', async (t) => {
  const dir = temporaryDir('edge-exit-heads-phase-');
  // Early exits weigh 0: the joint phase trains the backbone for the final exit alone.
  const config = loadTrainConfig(writeTinyTrainConfig(dir, { maxSteps: 2, exitWeights: [0, 0, 1], learningRate: 0.1 }));
  const work = planTrainingWork(config, path.join(dir, 'cache'));
  await prepareTrainingWork(config, work);
  const python = choosePython(undefined);
  await runTrainer(python, work.dir, () => {});
  const joint = readFloatGraph(path.join(work.dir, 'trained'));
  // The same run given a heads phase resumes from its checkpoint at the end of the joint phase.
  const trainerConfig = path.join(work.dir, 'train-config.json');
  fs.writeFileSync(trainerConfig, JSON.stringify({ ...JSON.parse(fs.readFileSync(trainerConfig, 'utf8')), headEpochs: 1 }));
  const stages = new Set<string>();
  const done = await runTrainer(python, work.dir, (event) => {
    if (event.event === 'progress') stages.add(String(event.stage));
  });
  const heads = readFloatGraph(path.join(work.dir, 'trained'));
  t.true(stages.has('train heads'));
  t.is((done.history as Array<{ phase: string }>).at(-1)!.phase, 'heads');
  const same = (name: string) => convWeights(joint, name).every((v, i) => v === convWeights(heads, name)[i]);
  const backbone = joint.spec.nodes.filter((n) => n.op === 'conv2d' && !n.name.startsWith('exit') && !n.name.startsWith('final')).map((n) => n.name);
  t.true(backbone.length >= 52);
  t.deepEqual(backbone.filter((name) => !same(name)), [], 'backbone convolutions');
  t.true(same('final.logits'));
  t.false(same('exit0.hidden'), 'the first early head trained');
  t.false(same('exit1.logits'), 'the second early head trained');
});

/**
 * The first `count` training images augmented by a tiny config's recipe, then again with one
 * recipe field taken out of the prepared trainer config: the same images, seed and crops.
 */
async function previewWithAndWithout(dir: string, training: Record<string, unknown>, field: string, count: number) {
  const config = loadTrainConfig(writeTinyTrainConfig(dir, training));
  const work = planTrainingWork(config, path.join(dir, 'cache'));
  await prepareTrainingWork(config, work);
  const python = choosePython(undefined);
  const withField = previewAugmentation(python, work.dir, count);
  const trainerConfig = path.join(work.dir, 'train-config.json');
  const { [field]: _removed, ...without } = JSON.parse(fs.readFileSync(trainerConfig, 'utf8'));
  fs.writeFileSync(trainerConfig, JSON.stringify(without));
  return { work, withField, without: previewAugmentation(python, work.dir, count) };
}

test('cutout blanks one square per training image, of the configured side, and leaves the rest of the augmented image as it was', async (t) => {
  const count = 12;
  const {
    withField: { pixels: cut },
    without: { pixels: plain },
    work,
  } = await previewWithAndWithout(temporaryDir('edge-exit-cutout-'), { cutout: 0.5 }, 'cutout', count);
  t.is(cut.length, count * 3 * 64 * 64);
  t.is(plain.length, cut.length);

  const fill = readFloatGraph(path.join(work.dir, 'base')).spec.input.pixelZeroPoint;
  const plane = 64 * 64;
  for (let n = 0; n < count; n++) {
    // Where the two differ must be one rectangle, every channel at the fill value there.
    let [top, bottom, left, right] = [64, -1, 64, -1];
    let changed = 0;
    for (let i = 0; i < plane; i++) {
      const at = (c: number) => n * 3 * plane + c * plane + i;
      if ([0, 1, 2].some((c) => cut[at(c)] !== plain[at(c)])) {
        const [y, x] = [Math.floor(i / 64), i % 64];
        [top, bottom, left, right] = [Math.min(top, y), Math.max(bottom, y), Math.min(left, x), Math.max(right, x)];
        changed++;
      }
    }
    const [height, width] = [bottom - top + 1, right - left + 1];
    // Side 32, centred anywhere: at least half of it stays inside the image on each axis.
    t.true(height >= 16 && height <= 32 && width >= 16 && width <= 32, `image ${n}: ${height}x${width}`);
    const notFilled: string[] = [];
    for (let y = top; y <= bottom; y++) {
      for (let x = left; x <= right; x++) {
        for (let c = 0; c < 3; c++) if (cut[n * 3 * plane + c * plane + y * 64 + x] !== fill) notFilled.push(`(${y}, ${x}) channel ${c}`);
      }
    }
    t.deepEqual(notFilled, [], `image ${n}: pixels of the square not at the fill value ${fill}`);
    // Pixels already at the fill value inside the square count as unchanged, so allow a few.
    t.true(changed > height * width * 0.9, `image ${n}: ${changed} of ${height * width} changed`);
  }
});

test('CutMix pastes one box from each image\'s partner in the batch, keeps each label by its area, and changes what a run learns', async (t) => {
  const dir = temporaryDir('edge-exit-cutmix-');
  const count = 12;
  const { withField: mixed, without: plain } = await previewWithAndWithout(dir, { cutMix: { probability: 1 } }, 'cutMix', count);
  t.is(plain.cutMix, null);
  const partner = mixed.cutMix?.partner;
  if (!partner) return t.fail(`a batch with CutMix probability 1 stayed unmixed: ${JSON.stringify(mixed.cutMix)}`);
  t.deepEqual([...partner].sort((a, b) => a - b), Array.from({ length: count }, (_, i) => i), 'partners are a shuffle of the batch');

  const side = 64;
  const plane = side * side;
  const at = (n: number, c: number, i: number) => n * 3 * plane + c * plane + i;
  // The box is wherever any image differs from itself unmixed.
  let [top, bottom, left, right] = [side, -1, side, -1];
  for (let n = 0; n < count; n++) {
    for (let i = 0; i < plane; i++) {
      if ([0, 1, 2].some((c) => mixed.pixels[at(n, c, i)] !== plain.pixels[at(n, c, i)])) {
        const [y, x] = [Math.floor(i / side), i % side];
        [top, bottom, left, right] = [Math.min(top, y), Math.max(bottom, y), Math.min(left, x), Math.max(right, x)];
      }
    }
  }
  t.true(bottom >= top, 'no image changed');
  const boxArea = (bottom - top + 1) * (right - left + 1);
  t.true(Math.abs(mixed.cutMix!.keptArea - (1 - boxArea / plane)) < 1e-9, `kept ${mixed.cutMix!.keptArea}, box ${boxArea} of ${plane} pixels`);
  // Inside the box every image shows its partner, outside it itself.
  const wrong: string[] = [];
  for (let n = 0; n < count; n++) {
    for (let i = 0; i < plane; i++) {
      const [y, x] = [Math.floor(i / side), i % side];
      const source = y >= top && y <= bottom && x >= left && x <= right ? partner[n]! : n;
      for (let c = 0; c < 3; c++) if (mixed.pixels[at(n, c, i)] !== plain.pixels[at(source, c, i)]) wrong.push(`image ${n} (${y}, ${x}) channel ${c}`);
    }
  }
  t.deepEqual(wrong.slice(0, 5), []);

  // Same seed, same batches: a run that mixes them ends at other weights than one that does not.
  const withCutMix = await trainTiny(dir, { maxSteps: 2, learningRate: 0.05, cutMix: { probability: 1 } });
  const without = await trainTiny(dir, { maxSteps: 2, learningRate: 0.05 });
  t.is(withCutMix.done.steps, 2);
  const classifier = convWeights(withCutMix.trained, 'final.logits');
  t.true(classifier.every(Number.isFinite));
  t.false(classifier.every((v, i) => v === convWeights(without.trained, 'final.logits')[i]));
});

test('progressive resizing is checked against the input size and the epochs, so the network always ends at the size it runs at', (t) => {
  const dir = temporaryDir('edge-exit-low-resolution-');
  const low = (lowResolution: { inputSize: number; epochs: number }) => writeTinyTrainConfig(dir, { epochs: 4, lowResolution });
  t.throws(() => loadTrainConfig(low({ inputSize: 64, epochs: 2 })), { instanceOf: BuildConfigError, message: /lowResolution\.inputSize: 64 is not below inputSize 64/ });
  t.throws(() => loadTrainConfig(low({ inputSize: 32, epochs: 4 })), { instanceOf: BuildConfigError, message: /lowResolution\.epochs: 4 leaves none of the 4 epochs at inputSize 64.*give fewer/s });
  t.deepEqual(loadTrainConfig(low({ inputSize: 32, epochs: 3 })).training.lowResolution, { inputSize: 32, epochs: 3 });
});

test('progressive resizing trains its first epochs on shrunk images, the rest at the model input size, and exports a package of that size', async (t) => {
  const dir = temporaryDir('edge-exit-progressive-');
  // 60 images in batches of 6: 10 steps an epoch, progress every 10 steps.
  const config = loadTrainConfig(writeTinyTrainConfig(dir, { maxSteps: undefined, batchSize: 6, epochs: 3, lowResolution: { inputSize: 32, epochs: 2 } }));
  const work = planTrainingWork(config, path.join(dir, 'cache'));
  await prepareTrainingWork(config, work);
  const events: TrainerEvent[] = [];
  const done = await runTrainer(choosePython(undefined), work.dir, (event) => events.push(event));
  t.is(done.steps, 30);
  const stages = events.filter((e) => e.event === 'progress' && e.stage !== 'export').map((e) => `${e.step} ${e.stage}`);
  t.deepEqual(stages, ['10 train at 32x32', '20 train at 32x32', '30 train']);
  const graph = readFloatGraph(path.join(work.dir, 'trained'));
  t.deepEqual([graph.spec.input.height, graph.spec.input.width], [64, 64]);
});

test('bfloat16 autocast trains (relu6 included) and exports a float32 graph that differs from the float32 run of the same seed', async (t) => {
  const dir = temporaryDir('edge-exit-bfloat16-');
  const float32 = await trainTiny(dir, { maxSteps: 2, learningRate: 0.05 });
  // Emulated here where the processor lacks the instructions; the fake cpuinfo claims them.
  const bfloat16 = await trainTiny(dir, { maxSteps: 2, learningRate: 0.05, bfloat16: true }, fakeCpuinfo(dir, `${AVX2_FLAGS} avx512f avx512_bf16`));
  t.is(bfloat16.done.steps, 2);
  t.is(bfloat16.done.stepPrecision, 'bfloat16');
  t.is(float32.done.stepPrecision, 'float32');
  const classifier = convWeights(bfloat16.trained, 'final.logits');
  t.true(classifier.every(Number.isFinite));
  // Same seed, same batches: only the arithmetic of the steps differs, so differing weights show autocast was on.
  t.false(classifier.every((v, i) => v === convWeights(float32.trained, 'final.logits')[i]));
});

test('a bfloat16 recipe on a processor without bfloat16 instructions trains in float32 and says so', async (t) => {
  const dir = temporaryDir('edge-exit-bfloat16-absent-');
  const avx2 = fakeCpuinfo(dir, AVX2_FLAGS);
  const float32 = await trainTiny(dir, { maxSteps: 2, learningRate: 0.05 }, avx2);
  const asked = await trainTiny(dir, { maxSteps: 2, learningRate: 0.05, bfloat16: true }, avx2);
  t.is(asked.done.stepPrecision, 'float32');
  const notices = asked.events.filter((event) => event.event === 'notice').map((event) => String(event.message));
  t.is(notices.length, 1);
  t.regex(notices[0]!, /training\.bfloat16.*avx512_bf16.*float32/);
  t.deepEqual(float32.events.filter((event) => event.event === 'notice'), []);
  // Same seed and batches, and now the same arithmetic: the same weights.
  t.deepEqual(convWeights(asked.trained, 'final.logits'), convWeights(float32.trained, 'final.logits'));
});

test('the weight average replaces the last weights at the end of the joint phase: decay 0 gives the last step, decay near 1 the start', async (t) => {
  const dir = temporaryDir('edge-exit-weight-average-');
  // Two epochs of 5 steps, so the per-epoch validation of the average swaps it in and out mid-run.
  const trainWith = (training: Record<string, unknown>) => trainTiny(dir, { maxSteps: undefined, epochs: 2, learningRate: 0.05, ...training });
  // A learning rate far below float32's resolution of the weights leaves the classifier at its seeded start.
  const start = convWeights((await trainWith({ learningRate: 1e-12 })).trained, 'final.logits');
  const last = await trainWith({});
  const averagedToLast = await trainWith({ weightAverage: { decay: 0 } });
  const averagedToStart = await trainWith({ weightAverage: { decay: 0.999999 } });
  const maxDifference = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  const lastClassifier = convWeights(last.trained, 'final.logits');
  t.true(maxDifference(lastClassifier, start) > 1e-3, 'the plain run trained the classifier');
  t.is(maxDifference(convWeights(averagedToLast.trained, 'final.logits'), lastClassifier), 0);
  // A backbone convolution has its batch norm folded in at export, so this covers the averaged statistics too.
  const lastBackbone = last.trained.spec.nodes.filter((n) => n.op === 'conv2d' && !/^(exit|final)/.test(n.name)).at(-1)!.name;
  t.is(maxDifference(convWeights(averagedToLast.trained, lastBackbone), convWeights(last.trained, lastBackbone)), 0);
  t.true(maxDifference(convWeights(averagedToStart.trained, 'final.logits'), start) < 1e-4);
  const history = averagedToStart.done.history as Array<{ validationAccuracy: number[]; averageValidationAccuracy?: number[] }>;
  t.is(history.length, 2);
  t.is(history[0]!.averageValidationAccuracy?.length, history[0]!.validationAccuracy.length);
  // By the last epoch's validation the model holds the average, so it has no second figure.
  t.is(history[1]!.averageValidationAccuracy, undefined);
});

test('each epoch validates on the configured sample of the validation split, the final report on all of it', async (t) => {
  const dir = temporaryDir('edge-exit-epoch-validation-');
  t.throws(() => loadTrainConfig(writeTinyTrainConfig(dir, { epochValidationImages: 0 })), { message: /epochValidationImages/ });
  const sampled = 7;
  const { done } = await trainTiny(dir, { maxSteps: undefined, epochs: 1, epochValidationImages: sampled });
  const [epoch] = done.history as Array<{ validationImages: number; validationAccuracy: number[] }>;
  t.is(epoch!.validationImages, sampled);
  const isCountOutOf = (percent: number, count: number) => Math.abs(Math.round((percent * count) / 100) - (percent * count) / 100) < 1e-9;
  t.true(epoch!.validationAccuracy.every((percent) => isCountOutOf(percent, sampled)), `${epoch!.validationAccuracy}`);
  // The whole split is 30 images (3 a class); figures over 30 would mostly leave the grid of 7.
  const final = done.validationAccuracy as number[];
  t.true(final.some((percent) => !isCountOutOf(percent, sampled)), `${final}`);
  const history = done.history as EpochAccuracy[];
  t.regex(trainingCurveTitle('tiny', history, 30), /\(7 of 30 validation images an epoch\)$/);
  t.is(trainingCurveTitle('tiny', history, sampled), 'tiny: validation accuracy per exit while training', 'a sample as large as the split is the split');
});
