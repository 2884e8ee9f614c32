import path from 'node:path';
import { sharedDir } from '../../config/paths.js';
import { balancedSubset, readImageFolder } from '../../datasets/image-folder.js';
import { MultiExitEngine } from '../../inference/multi-exit-engine.js';
import { loadBuildConfig } from '../../model-package/build-config.js';
import { loadModelPackage } from '../../model-package/load.js';
import { formatExitBench, runExitBench } from '../../../tools/bench/exit-bench.js';
import { formatModelBench, runModelBench } from '../../../tools/bench/model-bench.js';
import { BENCHMARKS_FILE, writeBenchSection } from '../../../tools/bench/results-file.js';
import { progressBar } from '../progress.js';
import { buildConfigPath, ensureModelPackage } from './build-model.js';

export interface BenchOptions {
  config: string;
  taskConfig: string;
  suites: string;
  imagesPerClass: string;
  threads: string;
  write: boolean;
}

const today = () => new Date().toISOString().slice(0, 10);

async function runtimeSuite(options: BenchOptions): Promise<void> {
  const built = await ensureModelPackage(options.config);
  const pkg = loadModelPackage(built.dir);
  const config = loadBuildConfig(buildConfigPath(options.config));
  const threads = options.threads.split(',').map(Number);
  const imagesPerClass = Number(options.imagesPerClass);
  const bar = progressBar('bench runtime');
  const result = await runModelBench({
    pkg,
    baseModelPath: config.baseModelPath,
    sharedDir: sharedDir(),
    imagesPerClass,
    threads,
    onProgress: (done, total) => bar.update(done, total),
  });
  bar.stop();
  const table = formatModelBench(result, pkg.manifest.labels[pkg.manifest.heads[0]!.task]!);
  console.log(`${table}\n`);
  if (options.write) {
    const how =
      `Produced by \`edge-exit bench --suites runtime --images-per-class ${imagesPerClass} --threads ${options.threads}\` on ${today()}, ` +
      `Node ${process.version}, ${process.arch}, package ${path.basename(pkg.dir)} (cuts ${pkg.manifest.segments.map((s) => s.to).join(', ')}). ` +
      'Times are wall-clock per image from writing the input to reading the final output, seam copies included.';
    writeBenchSection('model', 'Runtime: stock vs XNNPACK, monolithic vs segment chain', `${how}\n\n${table}`);
  }
}

async function exitsSuite(options: BenchOptions): Promise<void> {
  const config = loadBuildConfig(buildConfigPath(options.taskConfig));
  if (!config.task || !config.datasetPath) throw new Error(`Build config ${config.configFile} has no task, so it has no exits to measure.`);
  const built = await ensureModelPackage(options.taskConfig);
  const pkg = loadModelPackage(built.dir);
  const folder = readImageFolder(path.join(config.datasetPath, config.task.testSplit));
  const images = balancedSubset(folder, Number(options.imagesPerClass));
  const points = pkg.manifest.operatingPoints.filter((p) => !/^exit-\d+$/.test(p.name));
  for (const threads of options.threads.split(',').map(Number)) {
    const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads }, config.task.name);
    const bar = progressBar(`bench exits (${threads}t)`);
    const result = await runExitBench(engine, points, images, { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize }, threads, (d, t) =>
      bar.update(d, t),
    );
    bar.stop();
    const table = formatExitBench(result);
    console.log(`${table}\n`);
    if (options.write) {
      const how =
        `Produced by \`edge-exit bench --suites exits --images-per-class ${options.imagesPerClass} --threads ${threads}\` on ${today()}, Node ${process.version}, ${process.arch}, ` +
        `package ${pkg.manifest.name} (input ${pkg.manifest.input.width}x${pkg.manifest.input.height}, exits after ${pkg.manifest.segments.map((s) => s.to).join(', ')}). ` +
        '"full" runs every segment and answers at the final exit; the others stop at the first exit their policy trusts.';
      writeBenchSection(`exits-${threads}t`, `Operating points vs the full model, ${threads} thread(s)`, `${how}\n\n${table}`);
    }
  }
}

export async function benchCommand(options: BenchOptions): Promise<void> {
  const suites = options.suites.split(',');
  if (suites.includes('runtime')) await runtimeSuite(options);
  if (suites.includes('exits')) await exitsSuite(options);
  if (options.write) console.log(`Written to ${BENCHMARKS_FILE}`);
}
