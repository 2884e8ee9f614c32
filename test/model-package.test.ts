import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { loadBuildConfig, BuildConfigError } from '../tools/model-package/build-config.js';
import { buildModelPackage } from '../tools/model-package/build.js';
import { loadModelPackage, ModelPackageError } from '../agent/model-package/load.js';
import { SegmentChain } from '../agent/inference/segment-chain.js';
import { argmax } from '../agent/inference/top-k.js';
import { imageFileToRgb } from '../agent/preprocess/image-to-rgb.js';
import { TfliteInterpreter } from '../agent/runtime/interpreter.js';
import { CAT_PHOTO, EGYPTIAN_CAT, IMAGENET_LABELS, MOBILENET_V2, cifarSamples, temporaryDir } from './helpers/shared.js';

const workDir = temporaryDir('edge-exit-package-');
const packageDir = path.join(workDir, 'pkg');

function writeConfig(name: string, overrides: Record<string, unknown> = {}): string {
  const file = path.join(workDir, `${name}.json`);
  const config = {
    name,
    baseModel: { path: MOBILENET_V2 },
    labels: { task: 'imagenet', path: IMAGENET_LABELS },
    cuts: ['block_6', 'block_10', 'block_13'],
    latencyRuns: 2,
    ...overrides,
  };
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}

/** A copy of the built package that a test may damage. */
function copyOfPackage(): string {
  const dir = temporaryDir('edge-exit-damaged-');
  for (const file of fs.readdirSync(packageDir)) fs.copyFileSync(path.join(packageDir, file), path.join(dir, file));
  return dir;
}

test.before(async () => {
  await buildModelPackage(loadBuildConfig(writeConfig('test_pkg')), { outDir: packageDir });
});

test('build writes segments, the ImageNet head and a manifest with hashes, MACs and latency', (t) => {
  const pkg = loadModelPackage(packageDir);
  const m = pkg.manifest;
  t.is(m.segments.length, 4);
  t.deepEqual(m.segments.map((s) => `${s.from}->${s.to}`), ['input->block_6', 'block_6->block_10', 'block_10->block_13', 'block_13->pooled']);
  t.deepEqual(m.segments[0]!.input.shape, [1, 224, 224, 3]);
  t.is(m.segments[0]!.input.dtype, 'uint8');
  for (const s of m.segments.slice(1)) t.is(s.input.dtype, 'int8');
  t.is(m.segments.at(-1)!.output.shape.at(-1), 1280);
  t.is(m.heads[0]!.output.shape.at(-1), 1001);
  t.is(m.labels.imagenet!.length, 1001);
  for (const part of [...m.segments, ...m.heads]) {
    t.regex(part.sha256, /^[0-9a-f]{64}$/);
    t.true(part.latencyMs['xnnpack-1t']! > 0);
    t.true(part.latencyMs['xnnpack-2t']! > 0);
  }
  for (const s of m.segments) t.true(s.macs > 1e6);
  t.deepEqual(m.operatingPoints, []);
});

test('a second build with the same inputs is served from the cache', async (t) => {
  const again = await buildModelPackage(loadBuildConfig(writeConfig('test_pkg')), { outDir: packageDir });
  t.true(again.cached);
});

test('the segment chain gives output bit-identical to the monolithic model on real images', async (t) => {
  const pkg = loadModelPackage(packageDir);
  const chain = SegmentChain.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
  const whole = TfliteInterpreter.fromFile(MOBILENET_V2, { backend: 'xnnpack', threads: 1 });
  const size = { width: 224, height: 224, resize: 'stretch' as const };
  for (const file of [CAT_PHOTO, ...cifarSamples(5)]) {
    const rgb = await imageFileToRgb(file, size);
    chain.input.data.set(rgb);
    const pieces = chain.runToEnd('imagenet');
    whole.setInput(rgb);
    whole.invoke();
    t.deepEqual(Buffer.from(pieces.data.buffer, pieces.data.byteOffset, pieces.data.byteLength), Buffer.from(whole.output().data.buffer), file);
    if (file === CAT_PHOTO) t.is(argmax(pieces.data), EGYPTIAN_CAT);
  }
});

test('a package file whose hash does not match is named, with the fix', (t) => {
  const dir = copyOfPackage();
  const file = path.join(dir, 'segment-1.tflite');
  const bytes = fs.readFileSync(file);
  const at = bytes.length - 100;
  bytes[at] = bytes[at]! ^ 0xff;
  fs.writeFileSync(file, bytes);
  const error = t.throws(() => loadModelPackage(dir), { instanceOf: ModelPackageError });
  t.regex(error!.message, /segment 1 file segment-1\.tflite has sha256 [0-9a-f]{64}, but the manifest says/);
  t.regex(error!.message, /edge-exit build-model --force/);
});

test('a missing package file, shape drift and label count drift are all listed', (t) => {
  const dir = copyOfPackage();
  fs.rmSync(path.join(dir, 'segment-2.tflite'));
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  manifest.segments[0].output.scale *= 2;
  manifest.labels.imagenet.pop();
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  const error = t.throws(() => loadModelPackage(dir), { instanceOf: ModelPackageError });
  t.regex(error!.message, /segment-2\.tflite is missing/);
  t.regex(error!.message, /segment-0\.tflite: its output has scale/);
  t.regex(error!.message, /outputs 1001 classes but task imagenet has 1000 labels/);
});

test('a manifest that is not JSON, or breaks the schema, says where', (t) => {
  const dir = copyOfPackage();
  fs.writeFileSync(path.join(dir, 'manifest.json'), '{"formatVersion": 1, ');
  t.throws(() => loadModelPackage(dir), { instanceOf: ModelPackageError, message: /not valid JSON/ });
  const manifest = JSON.parse(fs.readFileSync(path.join(packageDir, 'manifest.json'), 'utf8'));
  manifest.segments[0].sha256 = 'abc';
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  t.throws(() => loadModelPackage(dir), { instanceOf: ModelPackageError, message: /field segments\.0\.sha256/ });
  t.throws(() => loadModelPackage(temporaryDir()), { instanceOf: ModelPackageError, message: /manifest\.json is missing/ });
});

test('a build config with a wrong base model path or no cuts is refused by field', async (t) => {
  const missing = loadBuildConfig(writeConfig('bad_base', { baseModel: { path: '/nonexistent/base.tflite' } }));
  await t.throwsAsync(buildModelPackage(missing, { outDir: temporaryDir() }), { instanceOf: BuildConfigError, message: /\/nonexistent\/base\.tflite.*baseModel\.path/ });
  t.throws(() => loadBuildConfig(writeConfig('no_cuts', { cuts: [] })), { instanceOf: BuildConfigError, message: /cuts/ });
  const unknown = loadBuildConfig(writeConfig('bad_cut', { cuts: ['block_99'] }));
  await t.throwsAsync(buildModelPackage(unknown, { outDir: temporaryDir() }), { message: /block_99/ });
});
