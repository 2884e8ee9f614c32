import path from 'node:path';
import { loadBuildConfig } from '../../model-package/build-config.js';
import { loadModelPackage } from '../../model-package/load.js';
import { sharedDir } from '../../config/paths.js';
import { formatModelBench, runModelBench } from '../../../tools/bench/model-bench.js';
import { writeBenchSection, BENCHMARKS_FILE } from '../../../tools/bench/results-file.js';
import { buildConfigPath, ensureModelPackage } from './build-model.js';
import { progressBar } from '../progress.js';

export async function benchCommand(options: { config: string; imagesPerClass: string; threads: string; write: boolean }): Promise<void> {
  const built = await ensureModelPackage(options.config);
  const pkg = loadModelPackage(built.dir);
  const config = loadBuildConfig(buildConfigPath(options.config));
  const threads = options.threads.split(',').map(Number);
  const imagesPerClass = Number(options.imagesPerClass);
  const bar = progressBar('bench');
  const result = await runModelBench({
    pkg,
    baseModelPath: config.baseModelPath,
    sharedDir: sharedDir(),
    imagesPerClass,
    threads,
    onProgress: (done, total) => bar.update(done, total),
  });
  bar.stop();
  const labels = pkg.manifest.labels[pkg.manifest.heads[0]!.task]!;
  const table = formatModelBench(result, labels);
  console.log(table);
  if (options.write) {
    const how =
      `Produced by \`edge-exit bench --images-per-class ${imagesPerClass} --threads ${options.threads}\` on ${new Date().toISOString().slice(0, 10)}, ` +
      `Node ${process.version}, ${process.arch}, package ${path.basename(pkg.dir)} (cuts ${pkg.manifest.segments.map((s) => s.to).join(', ')}). ` +
      'Times are wall-clock per image from writing the input to reading the final output, seam copies included.';
    writeBenchSection('model', 'Runtime: stock vs XNNPACK, monolithic vs segment chain', `${how}\n\n${table}`);
    console.log(`\nWritten to ${BENCHMARKS_FILE}`);
  }
}
