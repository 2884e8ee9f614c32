import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { DatasetError, readImageFolder } from '../agent/datasets/image-folder.js';
import { createExitPolicy } from '../agent/exit-policy/policy.js';
import { evaluatePackage } from '../tools/evaluation/evaluate.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import { loadBuildConfig } from '../tools/model-package/build-config.js';
import { buildModelPackage } from '../tools/model-package/build.js';
import { loadModelPackage, ModelPackageError } from '../agent/model-package/load.js';
import { ImageDecodeError, imageFileToRgb } from '../agent/preprocess/image-to-rgb.js';
import { CIFAR_TEST, SHARED, temporaryDir } from './helpers/shared.js';
import { writeTinyConfig } from './helpers/tiny-package.js';

const workDir = temporaryDir('edge-exit-multi-exit-');
const packageDir = path.join(workDir, 'pkg');
const CIFAR = path.join(SHARED, 'data', 'cifar10');

function writeConfig(overrides: Record<string, unknown> = {}, task: Record<string, unknown> = {}): string {
  return writeTinyConfig(workDir, overrides, task);
}

/** A copy of an ImageFolder with only a few images per class, which a test may then damage. */
function smallImageFolder(perClass: number): string {
  const root = temporaryDir('edge-exit-folder-');
  for (const split of ['train', 'test']) {
    for (const name of fs.readdirSync(path.join(CIFAR, split))) {
      fs.mkdirSync(path.join(root, split, name), { recursive: true });
      for (const file of fs.readdirSync(path.join(CIFAR, split, name)).sort().slice(0, perClass)) {
        fs.copyFileSync(path.join(CIFAR, split, name, file), path.join(root, split, name, file));
      }
    }
  }
  return root;
}

test.before(async () => {
  await buildModelPackage(loadBuildConfig(writeConfig()), { outDir: packageDir, cacheDir: path.join(workDir, 'cache') });
});

test('a task build trains one int8 exit head per segment and stores calibrated operating points', (t) => {
  const { manifest } = loadModelPackage(packageDir);
  t.is(manifest.segments.length, 4);
  t.is(manifest.segments.at(-1)!.to, 'block_16');
  t.deepEqual(manifest.segments[0]!.input.shape, [1, 96, 96, 3]);
  t.deepEqual(manifest.labels.cifar10, fs.readdirSync(path.join(CIFAR, 'train')).sort());
  t.deepEqual(manifest.heads.map((h) => h.afterSegment), [0, 1, 2, 3]);
  for (const head of manifest.heads) {
    t.deepEqual(head.output.shape, [1, 10]);
    t.is(head.output.dtype, 'int8');
    t.true(head.floatValidationAccuracy! > 0.1, `${head.name} float ${head.floatValidationAccuracy}`);
    // 150 validation images: one image is 0.67 points.
    t.true(Math.abs(head.int8ValidationAccuracy! - head.floatValidationAccuracy!) <= 0.04, `${head.name} int8 ${head.int8ValidationAccuracy} float ${head.floatValidationAccuracy}`);
  }
  const names = manifest.operatingPoints.map((p) => p.name);
  for (const name of ['balanced', 'full', 'max-probability@-1.0', 'entropy@-2.0', 'patience@-5.0', 'exit-0']) t.true(names.includes(name), name);
  const full = manifest.operatingPoints.find((p) => p.name === 'full')!;
  const balanced = manifest.operatingPoints.find((p) => p.name === 'balanced')!;
  t.true(balanced.validationAccuracy >= full.validationAccuracy - 0.01 - 1e-9);
  t.true(balanced.expectedLatencyMs <= full.expectedLatencyMs);
  t.is(manifest.training!.trainImages, 400);
  t.is(manifest.training!.validationImages, 150);
});

test('the engine stops at the first confident exit, never past maxExit, and hands back the seam for offload', async (t) => {
  const pkg = loadModelPackage(packageDir);
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
  engine.input.data.set(await imageFileToRgb(path.join(CIFAR_TEST, 'cat', '0000.jpg'), { width: 96, height: 96, resize: 'stretch' }));
  const eager = engine.classify(createExitPolicy({ policy: 'max-probability', thresholds: [0, 0, 0, 0] }, 4));
  t.is(eager.exit, 0);
  t.is(eager.segmentMs.length, 1);
  t.is(eager.features.length, 6 * 6 * 64);
  const never = createExitPolicy({ policy: 'max-probability', thresholds: [1, 1, 1, 1] }, 4);
  const capped = engine.classify(never, 2);
  t.is(capped.exit, 2);
  t.is(capped.features.length, 3 * 3 * 160);
  const full = engine.classify(never);
  t.is(full.exit, 3);
  t.is(full.segmentMs.length, 4);
  t.is(full.headMs.length, 4);
  t.true(full.confidence > 0 && full.confidence <= 1);
  t.is(full.probabilities.length, 10);
  t.throws(() => engine.classify(never, 4), { instanceOf: RangeError, message: /maxExit = 4 is outside \[0, 3\]/ });
});

test('a server resuming from an offloaded seam reaches exactly the full model\'s answer', async (t) => {
  const pkg = loadModelPackage(packageDir);
  const gateway = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
  const server = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
  const never = createExitPolicy({ policy: 'max-probability', thresholds: [1, 1, 1, 1] }, 4);
  for (const file of ['cat/0002.jpg', 'ship/0003.jpg', 'frog/0004.jpg']) {
    gateway.input.data.set(await imageFileToRgb(path.join(CIFAR_TEST, file), { width: 96, height: 96, resize: 'stretch' }));
    const full = gateway.classify(never);
    const fullProbabilities = Float32Array.from(full.probabilities);
    for (let cut = 0; cut < 4; cut++) {
      const local = gateway.classify(never, cut);
      const answer = server.finishFrom(cut, Int8Array.from(local.features));
      t.is(answer.label, full.label, `${file} from cut ${cut}`);
      t.deepEqual([...answer.probabilities], [...fullProbabilities]);
    }
  }
  t.throws(() => server.finishFrom(1, new Int8Array(5)), { instanceOf: RangeError, message: /has \d+ values/ });
});

test('evaluation replays every operating point on test images and reports accuracy, cost and histograms', async (t) => {
  const pkg = loadModelPackage(packageDir);
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
  const folder = readImageFolder(CIFAR_TEST);
  const images = folder.samples.filter((_, i) => i % 250 === 0);
  const report = await evaluatePackage(engine, pkg.manifest.operatingPoints, images, { width: 96, height: 96, resize: 'stretch' });
  t.is(report.images, images.length);
  t.is(report.exitAccuracy.length, 4);
  const full = report.points.find((p) => p.name === 'full')!;
  const exit0 = report.points.find((p) => p.name === 'exit-0')!;
  t.deepEqual(full.exitHistogram, [0, 0, 0, images.length]);
  t.deepEqual(exit0.exitHistogram, [images.length, 0, 0, 0]);
  t.is(full.accuracy, report.exitAccuracy[3]!);
  t.true(exit0.meanMacs < full.meanMacs);
  t.true(exit0.meanLatencyMs < full.meanLatencyMs);
  for (const point of report.points) t.is(point.exitHistogram.reduce((a, b) => a + b, 0), images.length);
  // The oracle is right wherever any exit is, and no point as accurate as the final exit is cheaper.
  t.true(report.oracle.accuracy >= Math.max(...report.exitAccuracy));
  t.is(report.oracle.exitHistogram.reduce((a, b) => a + b, 0), images.length);
  for (const point of report.points) if (point.accuracy >= full.accuracy) t.true(point.meanMacs >= report.oracle.meanMacs - 1e-6, point.name);
});

test('a threshold outside [0, 1] or labels that disagree with the heads make the package refuse to load', (t) => {
  const dir = temporaryDir('edge-exit-damaged-');
  for (const file of fs.readdirSync(packageDir)) fs.copyFileSync(path.join(packageDir, file), path.join(dir, file));
  const manifestFile = path.join(dir, 'manifest.json');
  const original = fs.readFileSync(manifestFile, 'utf8');
  const manifest = JSON.parse(original);
  manifest.operatingPoints[0].thresholds[1] = 1.5;
  fs.writeFileSync(manifestFile, JSON.stringify(manifest));
  t.throws(() => loadModelPackage(dir), { instanceOf: ModelPackageError, message: /operatingPoints\.0\.thresholds\.1/ });
  const relabelled = JSON.parse(original);
  relabelled.labels.cifar10.push('unicorn');
  fs.writeFileSync(manifestFile, JSON.stringify(relabelled));
  t.throws(() => loadModelPackage(dir), { instanceOf: ModelPackageError, message: /outputs 10 classes but task cifar10 has 11 labels/ });
});

test('an empty, missing or unreadable dataset folder is refused with what is expected', async (t) => {
  const empty = temporaryDir('edge-exit-empty-');
  fs.mkdirSync(path.join(empty, 'train'));
  t.throws(() => readImageFolder(path.join(empty, 'train')), { instanceOf: DatasetError, message: /no class sub-folders/ });
  t.throws(() => readImageFolder(path.join(empty, 'nowhere')), { instanceOf: DatasetError, message: /Cannot read dataset folder/ });
  const config = loadBuildConfig(writeConfig({ name: 'empty_task' }, { dataset: empty }));
  await t.throwsAsync(buildModelPackage(config, { outDir: temporaryDir() }), { instanceOf: DatasetError, message: /no class sub-folders/ });
});

test('a class folder with no images names the folder', (t) => {
  const root = smallImageFolder(2);
  for (const file of fs.readdirSync(path.join(root, 'train', 'frog'))) fs.rmSync(path.join(root, 'train', 'frog', file));
  t.throws(() => readImageFolder(path.join(root, 'train')), { instanceOf: DatasetError, message: /frog has no images/ });
});

test('a corrupt image in the training set stops the build and names the file', async (t) => {
  const root = smallImageFolder(12);
  const victim = path.join(root, 'train', 'ship', fs.readdirSync(path.join(root, 'train', 'ship')).sort()[3]!);
  fs.writeFileSync(victim, fs.readFileSync(victim).subarray(0, 40));
  await t.throwsAsync(imageFileToRgb(victim, { width: 96, height: 96, resize: 'stretch' }), { instanceOf: ImageDecodeError });
  const config = loadBuildConfig(writeConfig({ name: 'corrupt_task' }, { dataset: root, trainPerClass: 10, validationPerClass: 2 }));
  const error = await t.throwsAsync(buildModelPackage(config, { outDir: temporaryDir(), cacheDir: temporaryDir() }), { instanceOf: ImageDecodeError });
  t.true(error!.message.includes(victim), error!.message);
});

test('a build config whose heads do not match the segments is refused by field', (t) => {
  t.throws(() => loadBuildConfig(writeConfig({}, { heads: [{ grid: 2, hidden: 0 }] })), { message: /task\.heads: 3 cuts make 4 segments, so give 4 heads/ });
  t.throws(() => loadBuildConfig(writeConfig({}, { heads: [{ grid: 0, hidden: 0 }, { grid: 2, hidden: 0 }, { grid: 2, hidden: 0 }, { grid: 2, hidden: 0 }] })), { message: /task\.heads\.0\.grid/ });
});
