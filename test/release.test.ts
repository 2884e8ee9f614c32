import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { expandPath, PROJECT_ROOT } from '../agent/config/paths.js';
import { readImageFolder } from '../agent/datasets/image-folder.js';
import { createExitPolicy } from '../agent/exit-policy/policy.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import { loadModelPackage, ModelPackageError } from '../agent/model-package/load.js';
import { imageFileToRgb } from '../agent/preprocess/image-to-rgb.js';
import { CliProcess } from './helpers/cli-process.js';
import { CAT_PHOTO, temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';
import { describeSteps } from '../tools/cli/train.js';

const RELEASES = path.join(PROJECT_ROOT, 'models', 'releases');
const released = fs.existsSync(RELEASES) ? fs.readdirSync(RELEASES) : [];

/** Each committed release: its hashes hold, it is small enough, it says where it came from, and it classifies. */
for (const name of released) {
  test(`release ${name}: hashes match, at most 10 MB, provenance given, and it classifies a real photo`, async (t) => {
    const dir = path.join(RELEASES, name);
    const pkg = loadModelPackage(dir);
    const bytes = fs.readdirSync(dir).reduce((sum, file) => sum + fs.statSync(path.join(dir, file)).size, 0);
    t.true(bytes <= 10 * 2 ** 20, `${bytes} bytes`);
    t.regex(fs.readFileSync(path.join(dir, 'README.md'), 'utf8'), /## Provenance[\s\S]*config:[\s\S]*commit[\s\S]*command:/);
    const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
    const { width, height, resize } = pkg.manifest.input;
    engine.input.data.set(await imageFileToRgb(CAT_PHOTO, { width, height, resize }));
    const full = createExitPolicy({ policy: 'max-probability', thresholds: Array.from({ length: engine.exitCount }, () => 1) }, engine.exitCount);
    const result = engine.classify(full);
    // The labels are the training set's classes in order, so an index means what it meant in training; the photo is of a cat.
    t.truthy(pkg.manifest.training, 'a release says what it was trained on');
    t.deepEqual(engine.labels, readImageFolder(path.join(expandPath(pkg.manifest.training!.dataset, dir), 'train')).classes);
    t.is(engine.labels[result.label], 'cat', `label ${result.label} of [${engine.labels.join(', ')}]`);
    t.true(result.confidence > 0 && result.confidence <= 1);
  });
}
if (released.length === 0) test.skip('no release is committed under models/releases/ yet: nothing to check', () => {});

test('`edge-exit release` copies a package with its provenance, and a tampered copy is refused at load', async (t) => {
  const { modelsDir } = await buildTinyAgentPackage();
  const release = new CliProcess(['release', 'tiny_cifar10', '--command', 'built by the test'], { EDGE_EXIT_MODELS_DIR: modelsDir });
  t.is(await release.exited, 0, release.output);
  const dir = path.join(modelsDir, 'releases', 'tiny_cifar10');
  const readme = fs.readFileSync(path.join(dir, 'README.md'), 'utf8');
  t.regex(readme, /command: `built by the test`/);
  t.regex(readme, /build key: `[0-9a-f]{64}`/);
  const again = new CliProcess(['release', 'tiny_cifar10', '--command', 'built again'], { EDGE_EXIT_MODELS_DIR: modelsDir });
  t.is(await again.exited, 0, `a retrained package is released over its earlier release: ${again.output}`);
  t.regex(fs.readFileSync(path.join(dir, 'README.md'), 'utf8'), /command: `built again`/);
  const pkg = loadModelPackage(dir);
  t.true(pkg.files.size >= 2);

  const tampered = temporaryDir('edge-exit-tampered-');
  for (const file of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, file), path.join(tampered, file));
  const victim = [...pkg.files.keys()][0]!;
  const bytes = fs.readFileSync(path.join(tampered, victim));
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
  fs.writeFileSync(path.join(tampered, victim), bytes);
  t.throws(() => loadModelPackage(tampered), { instanceOf: ModelPackageError, message: new RegExp(victim.replace('.', '\\.')) });
});

test('a cascade whose glance trained in float32 and main network in bfloat16 says so per network', (t) => {
  const glance = { config: 'glance', trainSeconds: 1, steps: 4914, stepPrecision: 'float32', history: [] };
  t.is(describeSteps({ steps: 10062, stepPrecision: 'bfloat16', glance }), '5148 main-network steps in bfloat16, 4914 glance steps in float32');
  t.is(describeSteps({ steps: 10062, stepPrecision: 'float32', glance }), '10062 steps in float32');
  t.is(describeSteps({ steps: 500, stepPrecision: 'bfloat16' }), '500 steps in bfloat16');
});
