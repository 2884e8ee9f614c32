import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { PROJECT_ROOT } from '../agent/config/paths.js';
import { createExitPolicy } from '../agent/exit-policy/policy.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import { loadModelPackage, ModelPackageError, readManifest, type ModelPackage } from '../agent/model-package/load.js';
import { sha256File } from '../agent/model-package/sha256.js';
import { imageFileToRgb } from '../agent/preprocess/image-to-rgb.js';
import { ModelLoadError } from '../agent/runtime/errors.js';
import { BuiltinOperator, TensorType } from '../agent/tflite/model.js';
import { makeOptions } from '../agent/tflite/options.js';
import { readTfliteModel } from '../agent/tflite/reader.js';
import { ModelAssembler, perTensor } from '../tools/tflite/assembler.js';
import { checkEdgeTpu } from '../tools/tflite/edgetpu-check.js';
import { writeTfliteModel } from '../tools/tflite/writer.js';
import { compileEdgeTpuVariants, EdgeTpuCompilerError, parseCompilerLog } from '../tools/model-package/edgetpu-compile.js';
import { AgentProcess } from './helpers/agent-process.js';
import { readStatusFile, statusFilePath } from '../agent/pipeline/status-file.js';
import { fakeCompilerDir, fakeEdgeTpuSystem } from './helpers/fake-edgetpu.js';
import { cifarSamples, temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

const CLI = path.join(PROJECT_ROOT, 'bin', 'edge-exit.js');
const compilerDir = fakeCompilerDir();
const withCompiler = { ...process.env, PATH: `${compilerDir}${path.delimiter}${process.env.PATH}` };
/** Every exit runs: the full model, so that every segment is invoked on every frame. */
const full = createExitPolicy({ policy: 'max-probability', thresholds: [1, 1, 1, 1] }, 4);

/** The tiny package, built once, then given Edge TPU variants by `edge-exit build-model --edgetpu` under the fake compiler. */
const compiled = (async () => {
  const built = await buildTinyAgentPackage();
  const run = spawnSync(process.execPath, [CLI, 'build-model', '-c', built.buildConfig, '-o', built.pkg.dir, '--edgetpu'], { cwd: PROJECT_ROOT, env: withCompiler, encoding: 'utf8' });
  return { ...built, run, pkg: loadModelPackage(built.pkg.dir) };
})();

/** A copy of a package directory elsewhere, as a package copied to a gateway is. */
function copyPackage(dir: string): string {
  const to = path.join(temporaryDir('edge-exit-gateway-'), path.basename(dir));
  fs.cpSync(dir, to, { recursive: true });
  return to;
}

async function frames(pkg: ModelPackage, count: number): Promise<Buffer[]> {
  const { width, height, resize } = pkg.manifest.input;
  return Promise.all(cifarSamples(count).map((file) => imageFileToRgb(file, { width, height, resize })));
}

function labels(engine: MultiExitEngine, images: Buffer[]): number[] {
  return images.map((rgb) => {
    engine.input.data.set(rgb);
    return engine.classify(full).label;
  });
}

test('build-model --edgetpu under a fake edgetpu_compiler keeps a CPU and a TPU variant of every segment, with their hashes and the log', async (t) => {
  const { pkg, run } = await compiled;
  t.is(run.status, 0, run.stdout + run.stderr);
  t.regex(run.stdout, /edgetpu_compiler 16\.0\.384591198: 4 segments in one call/);
  t.regex(run.stdout, /segment-3_edgetpu\.tflite +\d+ ops on the Edge TPU, 0 on the CPU/);
  const manifest = readManifest(pkg.dir);
  t.is(manifest.edgetpu?.compilerVersion, '16.0.384591198');
  t.is(manifest.edgetpu?.runtimeVersion, 14);
  manifest.segments.forEach((segment, i) => {
    const variant = segment.edgetpu!;
    t.is(segment.file, `segment-${i}.tflite`);
    t.is(variant.file, `segment-${i}_edgetpu.tflite`);
    t.is(sha256File(path.join(pkg.dir, segment.file)), segment.sha256);
    t.is(sha256File(path.join(pkg.dir, variant.file)), variant.sha256);
    t.is(variant.compiledFrom, segment.sha256);
    const ops = readTfliteModel(fs.readFileSync(path.join(pkg.dir, segment.file))).subgraphs[0]!.operators.length;
    t.is(variant.opsOnTpu, ops, 'every op of a MobileNetV2 segment maps');
    t.is(variant.opsOnCpu, 0);
    t.is(variant.operations.reduce((n, o) => n + o.count, 0), ops);
    t.true(variant.operations.some((o) => o.op === 'CONV_2D' && o.onTpu && o.status === 'Mapped to Edge TPU'));
  });
  t.true(manifest.heads.every((head) => !('edgetpu' in head)), 'the heads stay on the CPU');
  // Asked again, the variants are current: the compiler does not run.
  const again = spawnSync(process.execPath, [CLI, 'build-model', '-c', (await compiled).buildConfig, '-o', pkg.dir, '--edgetpu'], { cwd: PROJECT_ROOT, env: withCompiler, encoding: 'utf8' });
  t.is(again.status, 0, again.stderr);
  t.notRegex(again.stdout, /segments in one call/);
});

test('a package with Edge TPU variants, copied to another machine without a TPU, loads and runs its CPU variants there', async (t) => {
  const { pkg } = await compiled;
  const gateway = loadModelPackage(copyPackage(pkg.dir));
  const noTpu = fakeEdgeTpuSystem({ device: false });
  const engine = MultiExitEngine.fromPackage(gateway, { threads: 1, systemRoots: noTpu.roots });
  t.is(engine.backend, 'xnnpack');
  t.regex(engine.backendNote!, /no Coral Edge TPU is present/);
  const images = await frames(gateway, 6);
  const cpuOnly = MultiExitEngine.fromPackage(gateway, { threads: 1, backend: 'xnnpack' });
  t.is(cpuOnly.backendNote, undefined, 'a CPU backend asked for is not a missing TPU');
  t.deepEqual(labels(engine, images), labels(cpuOnly, images));
});

test("the compiler's operation log is read as the real compiler writes it, mapped ops and the reasons others stay on the CPU", (t) => {
  const log = [
    'Edge TPU Compiler version 16.0.384591198',
    'Input: /tmp/work/model.tflite',
    'Output: /tmp/work/out/model_edgetpu.tflite',
    '',
    'Operator                       Count      Status',
    '',
    'CONV_2D                        35         Mapped to Edge TPU',
    'DEPTHWISE_CONV_2D              17         Mapped to Edge TPU',
    'HARD_SWISH                     1          Operation not supported',
    'CONV_2D                        2          More than one subgraph is not supported',
    'RESIZE_BILINEAR                1          Operation is otherwise supported, but not mapped due to some unspecified limitation',
    '',
  ].join('\n');
  const parsed = parseCompilerLog(log);
  t.is(parsed.compilerVersion, '16.0.384591198');
  t.is(parsed.input, '/tmp/work/model.tflite');
  t.is(parsed.output, '/tmp/work/out/model_edgetpu.tflite');
  t.deepEqual(
    parsed.operations.map((o) => [o.op, o.count, o.onTpu]),
    [
      ['CONV_2D', 35, true],
      ['DEPTHWISE_CONV_2D', 17, true],
      ['HARD_SWISH', 1, false],
      ['CONV_2D', 2, false],
      ['RESIZE_BILINEAR', 1, false],
    ],
  );
  t.is(parsed.operations[4]!.status, 'Operation is otherwise supported, but not mapped due to some unspecified limitation');
});

test('a missing or failing edgetpu_compiler is a clear error that names it and the fix, and leaves the package as it was', async (t) => {
  const { pkg } = await compiled;
  const dir = copyPackage(pkg.dir);
  const before = fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8');
  const missing = t.throws(() => compileEdgeTpuVariants(dir, { env: { ...process.env, PATH: '/nonexistent' } }), { instanceOf: EdgeTpuCompilerError });
  t.regex(missing!.message, /edgetpu_compiler is not on PATH/);
  t.regex(missing!.message, /edgetpu-compiler.*docs\/edgetpu\.md/);
  const failing = t.throws(() => compileEdgeTpuVariants(dir, { env: { ...withCompiler, FAKE_EDGETPU_COMPILER_FAIL: '1' } }), { instanceOf: EdgeTpuCompilerError });
  t.regex(failing!.message, /edgetpu_compiler 16\.0\.384591198 failed \(exit 1\) on segment-0\.tflite, segment-1\.tflite/);
  t.regex(failing!.message, /Internal compiler error/);
  t.regex(failing!.message, /edge-exit inspect --edgetpu/);
  t.is(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'), before);
  // Through the command: the error and a non-zero exit, before anything is built.
  const run = spawnSync(process.execPath, [CLI, 'build-model', '-c', (await compiled).buildConfig, '-o', temporaryDir(), '--edgetpu'], { cwd: PROJECT_ROOT, env: { ...process.env, PATH: path.dirname(process.execPath) }, encoding: 'utf8' });
  t.not(run.status, 0);
  t.regex(run.stderr, /edgetpu_compiler is not on PATH/);
});

test('a damaged or stale Edge TPU variant makes the package unusable, with the file and the fix', async (t) => {
  const { pkg } = await compiled;
  const dir = copyPackage(pkg.dir);
  fs.appendFileSync(path.join(dir, 'segment-1_edgetpu.tflite'), 'x');
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  manifest.segments[2].edgetpu.compiledFrom = '0'.repeat(64);
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  const error = t.throws(() => loadModelPackage(dir), { instanceOf: ModelPackageError });
  t.regex(error!.message, /segment 1's Edge TPU variant file segment-1_edgetpu\.tflite has sha256 \w+, but the manifest says/);
  t.regex(error!.message, /segment 2's Edge TPU variant segment-2_edgetpu\.tflite was compiled from another segment-2\.tflite.*build-model --edgetpu/);
});

test('a Coral device and libedgetpu select the TPU variants; without either, or with too old a runtime, the CPU variants run and say why', async (t) => {
  const { pkg } = await compiled;
  const withTpu = MultiExitEngine.fromPackage(pkg, { threads: 1, systemRoots: fakeEdgeTpuSystem({ runtimePackage: 'libedgetpu1-std 16.0' }).roots });
  t.is(withTpu.backend, 'edgetpu');
  t.true(withTpu.chain.segments.every((s) => s.backend === 'edgetpu'));
  t.true([...withTpu.chain.heads.values()].every((h) => h.backend === 'xnnpack'), 'heads on the CPU');
  t.is(withTpu.backendNote, undefined);
  const images = await frames(pkg, 2);
  t.is(labels(withTpu, images).length, 2, 'the fake runtime runs the compiled segments');

  const noLibrary = MultiExitEngine.fromPackage(pkg, { threads: 1, systemRoots: fakeEdgeTpuSystem({ library: false }).roots });
  t.is(noLibrary.backend, 'xnnpack');
  t.regex(noLibrary.backendNote!, /libedgetpu\.so\.1 is not installed.*libedgetpu1-std/);

  const oldRuntime = MultiExitEngine.fromPackage(pkg, { threads: 1, systemRoots: fakeEdgeTpuSystem({ runtimePackage: 'libedgetpu1-std 15.0' }).roots });
  t.is(oldRuntime.backend, 'xnnpack');
  t.regex(oldRuntime.backendNote!, /compiled by edgetpu_compiler 16\.0\.384591198 and need Edge TPU runtime 14 or later, but libedgetpu1-std 15\.0 provides runtime 13/);

  const asked = t.throws(() => MultiExitEngine.fromPackage(pkg, { threads: 1, backend: 'edgetpu', systemRoots: fakeEdgeTpuSystem({ device: false }).roots }), { instanceOf: ModelLoadError });
  t.regex(asked!.message, /Backend "edgetpu" was asked for, but no Coral Edge TPU is present/);
});

test('an Edge TPU that fails mid-run: the frame finishes on the CPU, later frames are classified as on the CPU, and the TPU is looked for again with backoff', async (t) => {
  const { pkg } = await compiled;
  const system = fakeEdgeTpuSystem();
  const images = await frames(pkg, 8);
  const expected = labels(MultiExitEngine.fromPackage(pkg, { threads: 1, backend: 'xnnpack' }), images);
  let now = 0;
  // Ten invokes: two frames of four segments, and the third frame's second segment fails.
  process.env.FAKE_EDGETPU_FAIL_AFTER = '10';
  const engine = MultiExitEngine.fromPackage(pkg, { threads: 1, systemRoots: system.roots, edgetpuProbe: { minMs: 1000, maxMs: 2000 }, now: () => now });
  // A runtime loaded again (the device plugged back in) works.
  delete process.env.FAKE_EDGETPU_FAIL_AFTER;
  const seen: string[] = [];
  const notes: (string | undefined)[] = [];
  const got = images.map((rgb, i) => {
    if (i === 3) system.plug(false); // pulled out: the probes find nothing
    if (i === 6) system.plug(true);
    engine.input.data.set(rgb);
    const label = engine.classify(full).label;
    seen.push(engine.backend);
    notes.push(engine.backendNote);
    // Longer than any probe delay: each frame on the CPU comes at a probe's time.
    now += 2500;
    return label;
  });
  t.deepEqual(seen, ['edgetpu', 'edgetpu', 'xnnpack', 'xnnpack', 'xnnpack', 'xnnpack', 'edgetpu', 'edgetpu']);
  t.regex(notes[2]!, /^the Edge TPU failed: .*USB transfer error.*; looked for again in 1 s$/, 'the third frame fell back within itself');
  t.regex(notes[3]!, /^no Coral Edge TPU is present.*; looked for again in 2 s$/, 'the delay doubles');
  t.regex(notes[5]!, /looked for again in 2 s$/, 'up to its maximum');
  t.is(notes[6], undefined);
  t.deepEqual(got.slice(3, 6), expected.slice(3, 6), 'frames on the CPU variants are those of a CPU engine');
});

test('the agent keeps classifying when its Edge TPU fails, and its status and log say which backend runs', async (t) => {
  const { modelsDir, buildConfig } = await compiled;
  const system = fakeEdgeTpuSystem();
  const agent = AgentProcess.start(
    { modelsDir, buildConfig },
    { model: { package: buildConfig, backend: 'auto', threads: 1 }, maxFrameRate: 50, statusIntervalMs: 200 },
    { frames: 30, env: { EDGE_EXIT_SYSROOT: system.root, LD_LIBRARY_PATH: system.libDir, FAKE_EDGETPU_FAIL_AFTER: '12' } },
  );
  t.is(await agent.exited, 0, agent.output);
  t.regex(agent.output, /the Edge TPU failed: .*USB transfer error.*Segments run on the CPU \(xnnpack\) from this frame on/);
  t.is(agent.inferences().length, 30, 'every frame classified');
  const status = readStatusFile(statusFilePath(agent.logFile))!;
  t.is(status.backend, 'xnnpack');
  t.regex(status.backendNote!, /the Edge TPU failed/);
});

/** A small hand-built int8 graph: uint8 input, QUANTIZE, HARD_SWISH (not an Edge TPU op), ADD. */
function handBuilt(options: { dynamicBatch?: boolean } = {}): Uint8Array {
  const a = new ModelAssembler();
  const shape = [1, 8, 8, 4];
  const input = a.tensor({ name: 'image', shape, type: TensorType.UINT8, quantization: perTensor(1 / 255, 0), ...(options.dynamicBatch ? { shapeSignature: [-1, 8, 8, 4] } : {}) });
  const q = a.tensor({ name: 'q', shape, type: TensorType.INT8, quantization: perTensor(1 / 255, -128) });
  const swish = a.tensor({ name: 'swish', shape, type: TensorType.INT8, quantization: perTensor(1 / 255, -128) });
  const sum = a.tensor({ name: 'sum', shape, type: TensorType.INT8, quantization: perTensor(2 / 255, -128) });
  a.operator(BuiltinOperator.QUANTIZE, 1, { inputs: [input], outputs: [q] });
  a.operator(BuiltinOperator.HARD_SWISH, 1, { inputs: [q], outputs: [swish], builtinOptions: makeOptions('HardSwishOptions', {}) });
  a.operator(BuiltinOperator.ADD, 2, { inputs: [swish, q], outputs: [sum], builtinOptions: makeOptions('AddOptions', { fusedActivationFunction: 0, potScaleInt16: true }) });
  return writeTfliteModel(a.model('main', 'hand-built for the Edge TPU check', [input], [sum]));
}

function inspect(target: string) {
  return spawnSync(process.execPath, [CLI, 'inspect', '--edgetpu', target], { cwd: PROJECT_ROOT, encoding: 'utf8' });
}

test('inspect --edgetpu flags an op the Edge TPU lacks and a dynamic shape, with where the graph splits, and exits 1', (t) => {
  const report = checkEdgeTpu(readTfliteModel(handBuilt()));
  t.false(report.passes);
  t.is(report.splitAt, 1);
  t.deepEqual(report.ops.map((o) => [o.op, o.onTpu]), [['QUANTIZE', true], ['HARD_SWISH', false], ['ADD', false]]);
  t.regex(report.ops[1]!.reason!, /HARD_SWISH is not among the operations the Edge TPU supports/);
  t.regex(report.ops[2]!.reason!, /after the split at op 1/);

  const dir = temporaryDir('edge-exit-inspect-');
  const file = path.join(dir, 'dynamic.tflite');
  fs.writeFileSync(file, handBuilt({ dynamicBatch: true }));
  const run = inspect(file);
  t.is(run.status, 1);
  t.regex(run.stdout, /would not compile/);
  t.regex(run.stdout, /refused: dynamic-sized tensors \(image \[-1, 8, 8, 4\]\).*fixed input size/);
  t.regex(run.stdout, /split at op 0 \(QUANTIZE\)/);
});

test('inspect --edgetpu passes every file of the shipped package, segments, their compiled variants and heads', async (t) => {
  const { pkg } = await compiled;
  const run = inspect(pkg.dir);
  t.is(run.status, 0, run.stdout);
  const files = [...pkg.manifest.segments.flatMap((s) => [s.file, s.edgetpu!.file]), ...pkg.manifest.heads.map((h) => h.file)];
  for (const file of files) t.regex(run.stdout, new RegExp(`^${file.replace('.', '\\.')}: every op would run on the Edge TPU`, 'm'));
});
