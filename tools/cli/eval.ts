import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../agent/config/paths.js';
import { balancedSubset, checkSameClasses, readImageFolder } from '../../agent/datasets/image-folder.js';
import { evaluatePackage, type EvaluationReport } from '../evaluation/evaluate.js';
import { evaluationPlots } from '../evaluation/report-plots.js';
import { MultiExitEngine } from '../../agent/inference/multi-exit-engine.js';
import { progressBar } from './progress.js';
import { openOrBuildPackage, openTaskPackage, type TaskPackage } from './build-model.js';

function fullLatency(report: EvaluationReport): number {
  return report.points.find((point) => point.name === 'full')?.meanLatencyMs ?? Number.NaN;
}

export function formatEvaluation(report: EvaluationReport): string {
  const lines = [
    `${report.package} on ${report.images} test images`,
    '',
    '| exit | accuracy | MMACs to reach |',
    '| --- | --- | --- |',
    ...report.exitAccuracy.map((a, i) => `| ${i} | ${(a * 100).toFixed(2)}% | ${(report.cumulativeMacs[i]! / 1e6).toFixed(1)} |`),
    '',
    '| operating point | policy | test accuracy | validation accuracy | mean MMACs | mean ms | exit histogram |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...report.points.map(
      (p) =>
        `| ${p.name} | ${p.policy} | ${(p.accuracy * 100).toFixed(2)}% | ${(p.validationAccuracy * 100).toFixed(2)}% | ${(p.meanMacs / 1e6).toFixed(1)} | ${p.meanLatencyMs.toFixed(2)} | ${p.exitHistogram.join(' / ')} |`,
    ),
    '',
    `Oracle bound (every image stops at the first exit that answers it correctly): ${(report.oracle.accuracy * 100).toFixed(2)}%, ` +
      `${(report.oracle.meanMacs / 1e6).toFixed(1)} MMACs, ${report.oracle.meanLatencyMs.toFixed(2)} ms, ` +
      `${(fullLatency(report) / report.oracle.meanLatencyMs).toFixed(2)}x the full model; exit histogram ${report.oracle.exitHistogram.join(' / ')}`,
  ];
  return lines.join('\n');
}

/** The package and the ImageFolder to evaluate it on: --test-dir, else its task's test split. */
async function packageAndTestDir(config: string, testDir: string | undefined): Promise<TaskPackage> {
  if (testDir === undefined) return openTaskPackage(config);
  const pkg = await openOrBuildPackage(config);
  return { pkg, taskName: Object.keys(pkg.manifest.labels)[0]!, testDir: path.resolve(testDir) };
}

export async function evalCommand(options: { config: string; limit?: string; threads: string; out?: string; testDir?: string }): Promise<void> {
  const { pkg, taskName, testDir } = await packageAndTestDir(options.config, options.testDir);
  const folder = readImageFolder(testDir);
  const labels = pkg.manifest.labels[taskName]!;
  checkSameClasses(labels, folder.classes, `The test split ${testDir}`);
  const images = options.limit ? balancedSubset(folder, Math.ceil(Number(options.limit) / folder.classes.length)) : folder.samples;
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: Number(options.threads) }, taskName);
  const bar = progressBar('eval');
  const report = await evaluatePackage(engine, pkg.manifest.operatingPoints, images, { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize }, (d, t) =>
    bar.update(d, t),
  );
  bar.stop();
  const outDir = path.resolve(options.out ?? path.join(PROJECT_ROOT, 'docs', 'results', pkg.manifest.name));
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'eval.json'), `${JSON.stringify(report, null, 2)}\n`);
  for (const [file, svg] of Object.entries(await evaluationPlots(report))) fs.writeFileSync(path.join(outDir, file), svg);
  console.log(formatEvaluation(report));
  console.log(`\nReport and plots written to ${outDir}`);
}
