import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { loadBuildConfig } from '../tools/model-package/build-config.js';
import { buildModelPackage } from '../tools/model-package/build.js';
import { CliProcess } from './helpers/cli-process.js';
import { CAT_PHOTO, IMAGENET_LABELS, MOBILENET_V2, temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

test('classify on a single-exit package (the ImageNet model cut into segments) prints 286 "Egyptian cat" first for the real photo', async (t) => {
  const dir = temporaryDir('edge-exit-classify-');
  const config = path.join(dir, 'imagenet_cut.json');
  fs.writeFileSync(
    config,
    JSON.stringify({ name: 'imagenet_cut', baseModel: { path: MOBILENET_V2 }, labels: { task: 'imagenet', path: IMAGENET_LABELS }, cuts: ['block_6'], resize: 'stretch', latencyRuns: 1 }),
  );
  const out = path.join(dir, 'imagenet_cut');
  await buildModelPackage(loadBuildConfig(config), { outDir: out, cacheDir: path.join(dir, 'cache') });
  const run = new CliProcess(['classify', CAT_PHOTO, '-c', out, '-k', '3']);
  t.is(await run.exited, 0, run.output);
  const lines = run.output.split('\n').filter((line) => /^\s+\d+\s{2}/.test(line));
  t.regex(lines[0]!, /^\s+286\s+Egyptian cat\s+0\.\d{4}$/, run.output);
  t.is(lines.length, 3);
  t.regex(run.output, /ms by segment \(with its exit head\): [\d.]+ \+ [\d.]+$/m, 'one figure per segment');
  // TFLite's own announcement used to land in the middle of progress bars and the status line.
  t.false(run.output.includes('Created TensorFlow Lite XNNPACK delegate'), run.output);
});

test('classify on a multi-exit package reports the exit taken, the confidence at every exit that ran and ms per segment', async (t) => {
  const { modelsDir } = await buildTinyAgentPackage();
  const run = new CliProcess(['classify', CAT_PHOTO, CAT_PHOTO, '-c', 'tiny_cifar10', '--json', '--operating-point', 'full'], { EDGE_EXIT_MODELS_DIR: modelsDir });
  t.is(await run.exited, 0, run.output);
  const report = JSON.parse(run.output.slice(run.output.indexOf('{'))) as {
    results: Array<{ exit: number; top: Array<{ label: string; score: number }>; confidenceByExit: number[]; segmentMs: number[] }>;
  };
  t.is(report.results.length, 2);
  for (const result of report.results) {
    t.is(result.exit, 3, 'full runs to the final exit');
    t.is(result.confidenceByExit.length, 4, 'a confidence at each of the four exits');
    t.is(result.segmentMs.length, 4);
    t.is(result.top.length, 5);
    t.true(result.top[0]!.score >= result.top[1]!.score);
  }
});
