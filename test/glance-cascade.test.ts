// A glance network ahead of the multi-exit chain, end to end on real CIFAR-10
// images: the real PyTorch trainer for both networks, the int8 export into one
// package, and the real TFLite runtime running it the way the agent does.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { trainCommand, type TrainReport } from '../tools/cli/train.js';
import { parseAgentConfig } from '../agent/config/agent-config.js';
import { deviceProfile } from '../agent/energy/device-profiles.js';
import { createExitPolicy } from '../agent/exit-policy/policy.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import { BuildConfigError } from '../tools/model-package/build-config.js';
import { loadModelPackage, ModelPackageError, type ModelPackage } from '../agent/model-package/load.js';
import { AgentLink } from '../agent/mqtt/agent-link.js';
import type { OffloadAnswer } from '../agent/mqtt/offload-codec.js';
import { Offloader } from '../agent/offload/offloader.js';
import { areaDownsample } from '../agent/preprocess/area-downsample.js';
import { imageFileToRgb } from '../agent/preprocess/image-to-rgb.js';
import { TfliteInterpreter } from '../agent/runtime/interpreter.js';
import type { Frame } from '../agent/sources/frame-source.js';
import { loadCascadeConfig } from '../tools/training/cascade-config.js';
import { OffloadServer } from '../server/offload-server.js';
import { startAedes } from './helpers/brokers.js';
import { CIFAR_TEST, MOBILENET_V2, SHARED, temporaryDir } from './helpers/shared.js';
import { waitFor } from './helpers/wait.js';

function writeConfig(dir: string, name: string, body: Record<string, unknown>): string {
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({ name, ...body }));
  return file;
}

function tinyNetwork(inputSize: number, cuts: string[], task: Record<string, unknown> = {}, training: Record<string, unknown> = {}) {
  return {
    baseModel: { path: MOBILENET_V2 },
    inputSize,
    cuts,
    latencyRuns: 2,
    task: { name: 'cifar10', dataset: path.join(SHARED, 'data', 'cifar10'), trainPerClass: 6, validationPerClass: 3, testPerClass: 2, ...task },
    training: { maxSteps: 3, batchSize: 12, headWidth: 16, batchnormInitImages: 24, calibrationImages: 24, seed: 3, ...training },
  };
}

test('area downsampling averages whole blocks, rounding to nearest, and refuses a factor that does not divide', (t) => {
  // 4x2 pixels of 1 channel, shrunk by 2: blocks {0,1,4,5}->2.5->3 and {2,3,6,7}->4.5->5.
  const target = new Uint8Array(2);
  areaDownsample(Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 4, 2, 1, 2, target);
  t.deepEqual([...target], [3, 5]);
  const rgb = new Uint8Array(3);
  areaDownsample(Uint8Array.from([10, 20, 30, 20, 30, 40, 30, 40, 50, 40, 50, 60]), 2, 2, 3, 2, rgb);
  t.deepEqual([...rgb], [25, 35, 45]);
  // Other factors take the general loop: 0..15 average 7.5, rounded to 8; 0..8 average 4.
  const one = new Uint8Array(1);
  areaDownsample(Uint8Array.from({ length: 16 }, (_, i) => i), 4, 4, 1, 4, one);
  t.is(one[0], 8);
  areaDownsample(Uint8Array.from({ length: 9 }, (_, i) => i), 3, 3, 1, 3, one);
  t.is(one[0], 4);
  t.throws(() => areaDownsample(new Uint8Array(27), 3, 3, 3, 2, new Uint8Array(3)), { message: /cannot shrink 3x3 by 2/ });
});

test('a cascade config refuses a glance that cannot share the frame or the validation split', (t) => {
  const dir = temporaryDir('edge-exit-cascade-config-');
  writeConfig(dir, 'main', tinyNetwork(64, ['block_3']));
  writeConfig(dir, 'glance_48', tinyNetwork(48, ['block_9']));
  writeConfig(dir, 'glance_seed', { ...tinyNetwork(32, ['block_9'], {}, { seed: 4 }), frameSize: 64 });
  writeConfig(dir, 'glance_unshrunk', tinyNetwork(32, ['block_9']));
  writeConfig(dir, 'glance_odd_frame', { ...tinyNetwork(32, ['block_9']), frameSize: 80 });
  const bad = (glance: string) => writeConfig(dir, `cascade_${glance}`, { main: 'main', glance });
  t.throws(() => loadCascadeConfig(bad('glance_48')), { instanceOf: BuildConfigError, message: /inputSize 48 must divide the main network's 64/ });
  t.throws(() => loadCascadeConfig(bad('glance_seed')), { message: /training\.seed differs \(4 and 3\)/ });
  t.throws(() => loadCascadeConfig(bad('missing')), { message: /missing\.json/ });
  writeConfig(dir, 'glance_ok', { ...tinyNetwork(32, ['block_9']), frameSize: 64 });
  const reserved = loadCascadeConfig(writeConfig(dir, 'cascade_reserved', { main: 'main', glance: 'glance_ok', balancedConfidenceZ: 3 }));
  t.is(reserved.main.task.balancedConfidenceZ, 3, "the cascade's reserve replaces the main config's for its calibration");
  t.is(loadCascadeConfig(writeConfig(dir, 'cascade_plain', { main: 'main', glance: 'glance_ok' })).main.task.balancedConfidenceZ, 1.96);
  t.throws(() => loadCascadeConfig(bad('glance_unshrunk')), { message: /set "frameSize": 64 in its config/ });
  t.throws(() => loadCascadeConfig(bad('glance_odd_frame')), { message: /frameSize: 80 is not a whole multiple of inputSize 32/ });
});

let trained: { dir: string; out: string; report: TrainReport; pkg: ModelPackage; frameFile: string; frame: Buffer };
test.before(async () => {
  const dir = temporaryDir('edge-exit-cascade-');
  writeConfig(dir, 'tiny_main', tinyNetwork(64, ['block_3']));
  writeConfig(dir, 'tiny_glance', { ...tinyNetwork(32, ['block_9']), frameSize: 64 });
  const cascade = writeConfig(dir, 'tiny_cascade', { main: 'tiny_main', glance: 'tiny_glance.json' });
  const out = path.join(dir, 'package');
  const report = await trainCommand({ config: cascade, out, cacheDir: path.join(dir, 'cache') });
  const frameFile = path.join(CIFAR_TEST, 'ship', '0000.jpg');
  const frame = await imageFileToRgb(frameFile, { width: 64, height: 64, resize: 'stretch' });
  trained = { dir, out, report, pkg: loadModelPackage(out), frameFile, frame };
});

test('a cascade trains both networks into one package: the glance first, its final exit as exit 0', (t) => {
  const { report, pkg } = trained;
  t.deepEqual(report.exits, ['glance 32x32', 'block_3', 'pooled']);
  t.is(report.steps, 6, 'three steps for each network');
  t.is(report.int8.validationAccuracy.length, 3);
  t.is(report.glance?.config, 'tiny_glance');
  // The glance trained on the main network's frames, shrunk exactly as the engine shrinks them.
  const data = (name: string) => {
    const work = fs.readdirSync(path.join(trained.dir, 'cache')).find((d) => d.startsWith(`${name}-`))!;
    return fs.readFileSync(path.join(trained.dir, 'cache', work, 'data', 'validation.u8'));
  };
  const [mainFrames, glanceFrames] = [data('tiny_main'), data('tiny_glance')];
  const shrunk = Buffer.alloc(glanceFrames.length);
  for (let n = 0; n < mainFrames.length / (64 * 64 * 3); n++) {
    areaDownsample(mainFrames.subarray(n * 64 * 64 * 3, (n + 1) * 64 * 64 * 3), 64, 64, 3, 2, shrunk.subarray(n * 32 * 32 * 3, (n + 1) * 32 * 32 * 3));
  }
  t.true(shrunk.equals(glanceFrames));
  const m = pkg.manifest;
  t.is(m.name, 'tiny_cascade');
  t.deepEqual(m.segments.map((s) => `${s.from}->${s.to}`), ['input->glance', 'input->block_3', 'block_3->pooled']);
  t.deepEqual(m.segments[0]!.input.shape, [1, 32, 32, 3]);
  t.deepEqual(m.heads.map((h) => [h.name, h.afterSegment]), [['cifar10-glance', 0], ['cifar10-exit-0', 1], ['cifar10-exit-1', 2]]);
  // "full" does not pay for the glance: it costs exactly the chain's segments and heads.
  const full = m.operatingPoints.find((p) => p.name === 'full')!;
  const chainMs = [1, 2].reduce((sum, i) => sum + m.segments[i]!.latencyMs['xnnpack-1t']! + m.heads[i]!.latencyMs['xnnpack-1t']!, 0);
  t.true(Math.abs(full.expectedLatencyMs - chainMs) < 1e-9, `${full.expectedLatencyMs} vs ${chainMs}`);
});

test('the glance reads the shrunk frame, is left out when switched off, and cannot be resumed from', (t) => {
  const { pkg, frame } = trained;
  const m = pkg.manifest;
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
  t.deepEqual(engine.branchExits, [0]);
  engine.input.data.set(frame);
  const all = engine.runAllExits();

  // The glance's exit reads the frame shrunk 2x: the same as running its files by hand on that.
  const glanceSegment = TfliteInterpreter.fromBytes(pkg.files.get(m.segments[0]!.file)!, 'glance', { backend: 'xnnpack', threads: 1 });
  const glanceHead = TfliteInterpreter.fromBytes(pkg.files.get(m.heads[0]!.file)!, 'glance head', { backend: 'xnnpack', threads: 1 });
  areaDownsample(frame, 64, 64, 3, 2, glanceSegment.input().data as Uint8Array);
  glanceSegment.invoke();
  glanceHead.input().data.set(glanceSegment.output().data);
  glanceHead.invoke();
  const q = glanceHead.output().quantization!;
  const byHand = Array.from(glanceHead.output().data as Int8Array, (v) => (v - q.zeroPoint) * q.scale);
  byHand.forEach((p, i) => t.true(Math.abs(p - all.probabilities[0]![i]!) < 1e-6));

  const off = engine.classify(createExitPolicy({ policy: 'max-probability', thresholds: [1, 1, 1] }, 3));
  t.is(off.exit, 2);
  t.deepEqual([off.segmentMs[0], off.headMs[0]], [0, 0], 'an exit switched off leaves its glance segment unrun');
  t.deepEqual([...off.probabilities], [...all.probabilities[2]!]);
  t.true(off.segmentMs[1]! > 0);

  const atGlance = engine.classify(createExitPolicy({ policy: 'max-probability', thresholds: [0, 1, 1] }, 3));
  t.is(atGlance.exit, 0);
  t.false(atGlance.resumable, "the glance's output is no seam of the chain");
  t.deepEqual([...atGlance.probabilities], [...all.probabilities[0]!]);
  t.true(atGlance.segmentMs[0]! > 0);
  const atBlock3 = engine.classify(createExitPolicy({ policy: 'max-probability', thresholds: [1, 0, 1] }, 3));
  t.true(atBlock3.exit === 1 && atBlock3.resumable);
  // Patience counts the glance's vote, so it always runs it.
  const patience = engine.classify(createExitPolicy({ policy: 'patience', thresholds: [1, 1, 1], patience: 2 }, 3));
  t.true(patience.segmentMs[0]! > 0);

  t.throws(() => engine.finishFrom(0, new Int8Array(atGlance.features.length)), { message: /segment 1 reads the image.*send the image instead/ });
  const resumed = engine.finishFrom(1, Int8Array.from(atBlock3.features));
  t.deepEqual([...resumed.probabilities], [...all.probabilities[2]!]);
});

test('a frame unsure at the glance is offloaded as its image even in features mode, and the server answers with the full model', async (t) => {
  const { pkg, frame, frameFile } = trained;
  const broker = await startAedes();
  t.teardown(() => broker.close());
  const server = await OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 4 });
  t.teardown(() => server.close());
  const config = parseAgentConfig({ deviceId: 'glance-gw', offload: { mode: 'features', minConfidence: 1, deadlineMs: 5000 } });
  const answers: OffloadAnswer[] = [];
  const link = await new AgentLink({ url: broker.url, deviceId: 'glance-gw', config, protocolVersion: 4, handlers: { onAnswer: (_id, answer) => answers.push(answer) } }).start();
  t.teardown(() => link.stop());
  await waitFor("the server's retained availability", () => link.offloadServers === 1, 5000);

  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
  engine.input.data.set(frame);
  const full = engine.classify(createExitPolicy({ policy: 'max-probability', thresholds: [1, 1, 1] }, 3));
  const fullLabel = pkg.manifest.labels.cifar10![full.label];
  engine.input.data.set(frame);
  const atGlance = engine.classify(createExitPolicy({ policy: 'max-probability', thresholds: [1, 1, 1] }, 3), 0);
  t.is(atGlance.exit, 0);
  const offloader = new Offloader(link, pkg, config.offload, deviceProfile('pi4'));
  const seam = engine.chain.segments[0]!.output();
  const jpeg: Frame = { id: 'f1', origin: frameFile, bytes: fs.readFileSync(frameFile), capturedAt: Date.now() };
  t.is(offloader.consider(jpeg, atGlance, seam, 0, true)?.kind, 'image');
  await waitFor('the server\'s answer', () => answers.length === 1, 10_000);
  t.is(answers[0]!.label, fullLabel!);
  // A frame that is no encoded image has nothing a server could finish from.
  t.is(offloader.consider({ ...jpeg, bytes: Buffer.from(frame) }, atGlance, seam, 0, true), undefined);
});

test('a glance that reads the frame at a size no whole factor reaches, or a segment that reads no seam, is refused by name', (t) => {
  const copy = path.join(trained.dir, 'bad-package');
  fs.cpSync(trained.out, copy, { recursive: true });
  const manifest = JSON.parse(fs.readFileSync(path.join(copy, 'manifest.json'), 'utf8'));
  manifest.segments[0].input.shape = [1, 48, 48, 3];
  manifest.segments[2].from = 'block_9';
  fs.writeFileSync(path.join(copy, 'manifest.json'), JSON.stringify(manifest));
  const error = t.throws(() => loadModelPackage(copy), { instanceOf: ModelPackageError });
  t.regex(error.message, /segment 0 reads the image at 48x48, which is not the package input 64x64 divided by a whole number/);
  t.regex(error.message, /segment 2 starts at block_9, which is neither "input" nor where segment 1 ends/);
});
