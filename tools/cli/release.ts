import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { configFileFor, modelsDir, PROJECT_ROOT } from '../../agent/config/paths.js';
import { loadModelPackage } from '../../agent/model-package/load.js';
import { locatePackage, releasesDir } from '../../agent/model-package/locate.js';
import { MANIFEST_FILE } from '../../agent/model-package/manifest.js';
import { describeSteps, type TrainReport } from './train.js';

/** A release is committed to git: it must stay small enough for a repository and a gateway's flash. */
export const MAX_RELEASE_BYTES = 10 * 2 ** 20;

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: PROJECT_ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown (not a git checkout)';
  }
}

/**
 * `edge-exit release <package>`: copies a built or trained package's manifest and .tflite
 * files to models/releases/<name>/ with a README giving its provenance (config, commit,
 * command, figures), so that a gateway runs it without building or training.
 */
export function releaseCommand(name: string, options: { command?: string }): void {
  // A fresh build under models/<name>/ goes first: re-releasing a retrained package must not find the old release.
  const built = path.join(modelsDir(), name);
  const found = locatePackage(name);
  const dir = fs.existsSync(path.join(built, MANIFEST_FILE)) ? built : found.kind === 'package' ? found.dir : undefined;
  if (!dir) throw new Error(`No package "${name}" to release: build or train it first (edge-exit build-model / train -c ${name}).`);
  const pkg = loadModelPackage(dir);
  const files = [MANIFEST_FILE, ...pkg.files.keys()];
  const bytes = files.reduce((sum, file) => sum + fs.statSync(path.join(dir, file)).size, 0);
  if (bytes > MAX_RELEASE_BYTES) throw new Error(`${name} is ${(bytes / 2 ** 20).toFixed(1)} MB; a release may hold at most ${MAX_RELEASE_BYTES / 2 ** 20} MB`);
  const out = path.join(releasesDir(), name);
  if (path.resolve(out) === path.resolve(dir)) throw new Error(`${name} is already the release in ${out}`);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  for (const file of files) fs.copyFileSync(path.join(dir, file), path.join(out, file));
  const reportFile = path.join(dir, 'training-report.json');
  const report = fs.existsSync(reportFile) ? (JSON.parse(fs.readFileSync(reportFile, 'utf8')) as Partial<TrainReport>) : undefined;
  const config = configFileFor(name);
  const figures = report?.exits
    ? ['| exit | int8 validation | int8 test |', '| --- | --- | --- |', ...report.exits.map((exit, i) => `| ${exit} | ${report.int8?.validationAccuracy?.[i]?.toFixed(2) ?? '-'}% | ${report.int8?.testAccuracy?.[i]?.toFixed(2) ?? '-'}% |`)].join('\n')
    : 'No training report: a post-hoc build (see `edge-exit eval`).';
  const readme = `# Release: ${name}

The int8 multi-exit package that \`npm start\` and \`edge-exit run\` use when it is here, so a gateway
never builds or trains. ${files.length - 1} .tflite files and the manifest, ${(bytes / 2 ** 20).toFixed(2)} MB; every file's
sha256 is in \`manifest.json\` and is checked at every load (and by the tests).

## Provenance

- config: \`${path.relative(PROJECT_ROOT, config)}\` (and the configs it names or extends)
- built from: \`${pkg.manifest.source.file}\`, sha256 \`${pkg.manifest.source.sha256}\`
- build key: \`${pkg.manifest.buildKey}\`
- commit of the release: \`${gitCommit()}\`
- command: \`${options.command ?? `node bin/edge-exit.js train -c ${name}`}\`, then \`node bin/edge-exit.js release ${name}\`
${report?.trainSeconds ? `- training time: ${(report.trainSeconds / 60).toFixed(1)} min on this project's 2-core x86-64 machines${report.stepPrecision && report.steps ? `, ${describeSteps({ steps: report.steps, stepPrecision: report.stepPrecision, glance: report.glance })}` : ''}\n` : ''}
## Figures (CIFAR-10, from the training report)

${figures}

Operating points: ${pkg.manifest.operatingPoints.map((p) => `\`${p.name}\``).join(', ')}.
`;
  fs.writeFileSync(path.join(out, 'README.md'), readme);
  console.log(`Released ${name} to ${out} (${(bytes / 2 ** 20).toFixed(2)} MB)`);
}
