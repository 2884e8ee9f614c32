import fs from 'node:fs';
import path from 'node:path';
import { modelsDir } from '../../config/paths.js';
import { loadModelPackage, ModelPackageError } from '../../model-package/load.js';
import { readFloatGraph } from '../../training/float-graph.js';
import { readDecodedImages, writeFineTunedPackage } from '../../training/finetuned-package.js';
import { checkSameClasses } from '../../datasets/image-folder.js';
import { planTrainingWork, prepareTrainingWork } from '../../training/prepare-work.js';
import { checkPythonDependencies, choosePython, runTrainer, type TrainerEvent } from '../../training/python-trainer.js';
import { loadTrainConfig } from '../../training/train-config.js';
import { trainingCurveSvg, type EpochAccuracy } from '../../plots/training-curve-plot.js';
import { progressBar } from '../progress.js';
import { buildConfigPath } from './build-model.js';

export const DEFAULT_TRAIN_CONFIG = 'mobilenet_v2_cifar10_finetuned';

export interface TrainReport {
  package: string;
  trainSeconds: number;
  steps: number;
  exits: string[];
  float: { validationAccuracy: number[]; testAccuracy?: number[] };
  int8: { validationAccuracy: number[]; testAccuracy?: number[] };
  history: unknown[];
}

/** A package already at the destination must be for the same classes, unless --force replaces it. */
function checkExistingPackage(dir: string, taskName: string, classes: string[]): void {
  if (!fs.existsSync(path.join(dir, 'manifest.json'))) return;
  let existing: string[] | undefined;
  try {
    existing = loadModelPackage(dir).manifest.labels[taskName];
  } catch (error) {
    if (error instanceof ModelPackageError) return;
    throw error;
  }
  if (existing) checkSameClasses(existing, classes, `The dataset for ${dir}`);
}

export async function trainCommand(options: { config: string; out?: string; force?: boolean; cacheDir?: string }): Promise<TrainReport> {
  const config = loadTrainConfig(buildConfigPath(options.config));
  const outDir = path.resolve(options.out ?? path.join(modelsDir(), config.name));
  const work = planTrainingWork(config, options.cacheDir ?? path.join(modelsDir(), '.cache', 'train'));
  if (!options.force) checkExistingPackage(outDir, config.task.name, work.classes);
  const python = choosePython(config.python);
  checkPythonDependencies(python);

  const prepareBar = progressBar(`preparing ${config.name}`);
  try {
    await prepareTrainingWork(config, work, (stage, done, total) => prepareBar.update(done, total, stage));
  } finally {
    prepareBar.stop();
  }

  const trainBar = progressBar(`training ${config.name}`);
  let done: TrainerEvent;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    done = await runTrainer(
      python,
      work.dir,
      (event) => {
        if (event.event === 'progress') {
          const loss = event.loss !== undefined ? ` loss ${event.loss} ${event.imagesPerSecond} img/s` : '';
          trainBar.update(Number(event.step), Number(event.steps), `${event.stage} epoch ${event.epoch ?? '-'}/${event.epochs ?? '-'}${loss}`);
        } else if (event.event === 'epoch') {
          process.stderr.write(`\nepoch ${event.epoch}/${event.epochs}: validation accuracy per exit ${JSON.stringify(event.validationAccuracy)}\n`);
        } else if (event.event === 'resumed') {
          process.stderr.write(`resuming from the checkpoint at step ${event.step} of ${event.steps}\n`);
        }
      },
      stop.signal,
    );
  } finally {
    trainBar.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const graph = readFloatGraph(path.join(work.dir, 'trained'));
  const data = path.join(work.dir, 'data');
  const exportBar = progressBar(`exporting ${config.name}`);
  let result;
  try {
    result = writeFineTunedPackage(
      config,
      graph,
      {
        validation: readDecodedImages(path.join(data, 'validation')),
        test: work.split.test.length > 0 ? readDecodedImages(path.join(data, 'test')) : undefined,
        trainImages: work.split.train.length,
      },
      { outDir, baseSha256: work.baseSha256, floatValidationAccuracy: done.validationAccuracy as number[], onProgress: (p) => exportBar.update(p.done, p.total, p.stage) },
    );
  } finally {
    exportBar.stop();
  }
  const report: TrainReport = {
    package: result.dir,
    trainSeconds: Number(done.trainSeconds),
    steps: Number(done.steps),
    exits: [...config.cuts, 'pooled'],
    float: { validationAccuracy: done.validationAccuracy as number[], ...(done.testAccuracy ? { testAccuracy: done.testAccuracy as number[] } : {}) },
    int8: result.int8,
    history: done.history as unknown[],
  };
  fs.writeFileSync(path.join(result.dir, 'training-report.json'), `${JSON.stringify(report, null, 2)}\n`);
  const curve = await trainingCurveSvg(report.history as EpochAccuracy[], report.exits, `${config.name}: validation accuracy per exit while training`);
  fs.writeFileSync(path.join(result.dir, 'training-curve.svg'), curve);
  printReport(report);
  return report;
}

function printReport(report: TrainReport): void {
  const fmt = (values: number[] | undefined, i: number) => (values ? values[i]!.toFixed(2).padStart(7) : '      -');
  console.log(`Trained in ${(report.trainSeconds / 60).toFixed(1)} min (${report.steps} steps); package: ${report.package}`);
  console.log('exit after     float val  int8 val  float test  int8 test');
  report.exits.forEach((name, i) => {
    console.log(`${name.padEnd(12)} ${fmt(report.float.validationAccuracy, i)}  ${fmt(report.int8.validationAccuracy, i)}   ${fmt(report.float.testAccuracy, i)}    ${fmt(report.int8.testAccuracy, i)}`);
  });
}
