import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { modelsDir } from '../agent/config/paths.js';
import { RECOMMENDED_PACKAGE, releasesDir } from '../agent/model-package/locate.js';
import { readTfliteModel } from '../agent/tflite/reader.js';
import { writeTfliteModel } from '../tools/tflite/writer.js';
import { CliProcess } from './helpers/cli-process.js';
import { recordedRun } from './helpers/recorded-run.js';
import { CAT_PHOTO, IMAGENET_LABELS, MOBILENET_V2, MOBILENET_V2_UINT8, temporaryDir } from './helpers/shared.js';
import { writeTinyConfig } from './helpers/tiny-package.js';

/*
 * How every command finds what it is told to open: a release before a build, a path
 * as a path (a package directory or a plain .tflite), and a missing package named
 * with the command that builds it; never a stack trace.
 */

/** A models folder as a fresh clone has it: the configs and the committed release, no builds and no cache. */
function freshCloneModels(): string {
  const dir = path.join(temporaryDir('edge-exit-clone-'), 'models');
  fs.mkdirSync(dir);
  fs.symlinkSync(path.join(modelsDir(), 'configs'), path.join(dir, 'configs'));
  fs.symlinkSync(releasesDir(), path.join(dir, 'releases'));
  return dir;
}

const noStackTrace = (output: string) => !/^\s+at .+:\d+:\d+\)?$/m.test(output);

test('3: `bench --suites exits` runs the released cascade on a clone that has only the release', async (t) => {
  if (!fs.existsSync(path.join(releasesDir(), RECOMMENDED_PACKAGE))) return t.pass('no release committed');
  const bench = new CliProcess(['bench', '--suites', 'exits', '--images-per-class', '1', '--threads', '1', '--no-write'], { EDGE_EXIT_MODELS_DIR: freshCloneModels() });
  t.is(await bench.exited, 0, bench.output);
  t.notRegex(bench.output, /edge-exit train|does not exist yet/);
  t.regex(bench.output, /\| full \|/, bench.output);
});

test('run with a missing package says which, where it looked and the command that builds it, exits 78 (a config error systemd does not restart) and loads nothing under tools/', (t) => {
  const dir = temporaryDir('edge-exit-missing-');
  const buildConfig = writeTinyConfig(dir);
  const empty = path.join(dir, 'models');
  fs.mkdirSync(empty);
  const config = path.join(dir, 'agent.json');
  fs.writeFileSync(config, JSON.stringify({ model: { package: buildConfig }, logs: { path: path.join(dir, 'log.db') }, mqtt: { embeddedPort: 20_000 + Math.floor(Math.random() * 20_000) } }));
  const run = recordedRun(['run', '-c', config, '--frames', '3'], { EDGE_EXIT_MODELS_DIR: empty });
  const output = run.output;
  t.is(run.status, 78, output);
  t.true(output.includes(`No model package "tiny_cifar10": looked for ${path.join(empty, 'releases', 'tiny_cifar10')}${path.sep} and ${path.join(empty, 'tiny_cifar10')}${path.sep}`), output);
  t.true(output.includes(`\`edge-exit build-model -c ${buildConfig}\``), output);
  t.true(noStackTrace(output), output);
  t.true(run.projectModules.includes('cli/open-package.ts'), 'the recorder sees the opener');
  t.deepEqual(run.projectModules.filter((file) => file.startsWith('tools/')), []);
  t.false(fs.existsSync(path.join(empty, 'tiny_cifar10')), 'nothing was built');
});

test('4: classify -c with an absolute path to a missing .tflite reports that path, not models/releases/<path>', async (t) => {
  const missing = path.join(temporaryDir('edge-exit-nomodel-'), 'model.tflite');
  const run = new CliProcess(['classify', CAT_PHOTO, '-c', missing]);
  t.is(await run.exited, 78, run.output);
  t.true(run.output.includes(`${missing} does not exist`), run.output);
  t.false(run.output.includes('releases'), run.output);
  t.true(noStackTrace(run.output), run.output);
});

/** The top-1 line of a classify run: index, label, score. */
const topLine = (output: string) => output.split('\n').find((line) => /^\s+\d+\s{2}/.test(line)) ?? '';

test('4: classify --model x.tflite --labels labels.txt runs a plain int8 model: 286 "Egyptian cat" for the real photo', async (t) => {
  const run = new CliProcess(['classify', CAT_PHOTO, '--model', MOBILENET_V2, '--labels', IMAGENET_LABELS, '-k', '3']);
  t.is(await run.exited, 0, run.output);
  t.regex(topLine(run.output), /^\s+286\s+Egyptian cat\s+0\.\d{4}$/, run.output);
});

test('4: classify -c <path to Coral\'s uint8 .tflite> takes it as a plain model, with "N label" lines as pycoral reads them', async (t) => {
  const dir = temporaryDir('edge-exit-labels-');
  const numbered = path.join(dir, 'labels.txt');
  const labels = fs.readFileSync(IMAGENET_LABELS, 'utf8').split('\n').filter(Boolean);
  fs.writeFileSync(numbered, labels.map((label, i) => `${i}  ${label}`).join('\n'));
  const run = new CliProcess(['classify', CAT_PHOTO, '-c', MOBILENET_V2_UINT8, '--labels', numbered, '--json']);
  t.is(await run.exited, 0, run.output);
  // After the log's JSON lines (XNNPACK's note on uint8 models), the report.
  const report = JSON.parse(run.output.slice(run.output.indexOf('{\n'))) as { model: string; results: Array<{ top: Array<{ index: number; label: string }> }> };
  t.is(report.model, MOBILENET_V2_UINT8);
  t.deepEqual(report.results[0]!.top[0], { ...report.results[0]!.top[0]!, index: 286, label: 'Egyptian cat' });
});

test('4: a file that is not a TFLite model, or labels that do not fit it, get an error naming the file and the fix, not a stack trace', async (t) => {
  const dir = temporaryDir('edge-exit-badmodel-');
  const notModel = path.join(dir, 'notes.tflite');
  fs.writeFileSync(notModel, 'these are notes, not a model\n'.repeat(20));
  const bad = new CliProcess(['classify', CAT_PHOTO, '--model', notModel]);
  t.is(await bad.exited, 1, bad.output);
  t.regex(bad.output, new RegExp(`edge-exit: Cannot load model ${notModel}: not a TFLite model.*A plain model must be an image classification \\.tflite`), bad.output);
  t.true(noStackTrace(bad.output), bad.output);

  // A real flatbuffer TFLite cannot run: the image input made 4 channels wide, which the first convolution refuses.
  const model = readTfliteModel(new Uint8Array(fs.readFileSync(MOBILENET_V2)));
  const graph = model.subgraphs[0]!;
  graph.tensors[graph.inputs[0]!]!.shape = [1, 224, 224, 4];
  const unrunnable = path.join(dir, 'four-channels.tflite');
  fs.writeFileSync(unrunnable, writeTfliteModel(model));
  const failing = new CliProcess(['classify', CAT_PHOTO, '--model', unrunnable]);
  t.is(await failing.exited, 1, failing.output);
  t.regex(failing.output, new RegExp(`edge-exit: TFLite could not prepare model ${unrunnable} [^]*CONV_2D[^]*A plain model must be an image classification \\.tflite`), failing.output);
  t.true(noStackTrace(failing.output), failing.output);

  const short = path.join(dir, 'labels.txt');
  fs.writeFileSync(short, fs.readFileSync(IMAGENET_LABELS, 'utf8').split('\n').slice(1).join('\n'));
  const offByOne = new CliProcess(['classify', CAT_PHOTO, '--model', MOBILENET_V2, '--labels', short]);
  t.is(await offByOne.exited, 1, offByOne.output);
  t.true(offByOne.output.includes(`Labels ${short} has 1000 lines, but the model outputs 1001 classes: pass the labels file made for this model.`), offByOne.output);
  t.true(noStackTrace(offByOne.output), offByOne.output);
});
