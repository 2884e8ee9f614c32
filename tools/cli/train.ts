import fs from 'node:fs';
import path from 'node:path';
import { modelsDir } from '../../agent/config/paths.js';
import { loadModelPackage, ModelPackageError } from '../../agent/model-package/load.js';
import { isCascadeConfigFile, loadCascadeConfig } from '../training/cascade-config.js';
import { readFloatGraph, type FloatGraph } from '../training/float-graph.js';
import { readDecodedImages, writeFineTunedPackage } from '../training/finetuned-package.js';
import { checkSameClasses } from '../../agent/datasets/image-folder.js';
import { planTrainingWork, prepareTrainingWork, type TrainingWork } from '../training/prepare-work.js';
import { checkPythonDependencies, choosePython, runTrainer, type TrainerEvent } from '../training/python-trainer.js';
import { loadTrainConfig, type ResolvedTrainConfig } from '../training/train-config.js';
import { trainingCurveSvg, trainingCurveTitle, type EpochAccuracy } from '../plots/training-curve-plot.js';
import { progressBar } from './progress.js';
import { addEdgeTpuVariants, buildConfigPath } from './build-model.js';
import { formatEdgeTpuSummary, requireEdgeTpuCompiler } from '../model-package/edgetpu-compile.js';


export interface TrainReport {
  package: string;
  trainSeconds: number;
  steps: number;
  exits: string[];
  float: { validationAccuracy: number[]; testAccuracy?: number[] };
  int8: { validationAccuracy: number[]; testAccuracy?: number[] };
  /** What the steps computed in: bfloat16 only where asked for and the processor has the instructions. */
  stepPrecision: string;
  history: unknown[];
  /** A cascade's glance network: how it trained (its final exit is exit 0 above). */
  glance?: { config: string; trainSeconds: number; steps: number; stepPrecision: string; history: unknown[] };
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

interface TrainedWork {
  config: ResolvedTrainConfig;
  work: TrainingWork;
  done: TrainerEvent;
  graph: FloatGraph;
}

/** Prepares the work directory and runs (or resumes) the trainer; its trained float graph is read back. */
async function trainNetwork(config: ResolvedTrainConfig, python: string, cacheDir: string | undefined): Promise<TrainedWork> {
  const work = planTrainingWork(config, cacheDir ?? path.join(modelsDir(), '.cache', 'train'));
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
          const averaged = event.averageValidationAccuracy ? `, weight average ${JSON.stringify(event.averageValidationAccuracy)}` : '';
          process.stderr.write(`\nepoch ${event.epoch}/${event.epochs}: validation accuracy per exit ${JSON.stringify(event.validationAccuracy)}${averaged}\n`);
        } else if (event.event === 'notice') {
          process.stderr.write(`\n${config.name}: ${event.message}\n`);
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
  return { config, work, done, graph: readFloatGraph(path.join(work.dir, 'trained')) };
}

/** Quantizes and packages a trained network, with a trained glance network ahead of it when given. */
async function packageTrained(main: TrainedWork, outDir: string, glance?: TrainedWork, name = main.config.name): Promise<TrainReport> {
  const data = path.join(main.work.dir, 'data');
  const exportBar = progressBar(`exporting ${name}`);
  let result;
  try {
    result = writeFineTunedPackage(
      { config: main.config, graph: main.graph, floatValidationAccuracy: main.done.validationAccuracy as number[] },
      {
        validation: readDecodedImages(path.join(data, 'validation')),
        test: main.work.split.test.length > 0 ? readDecodedImages(path.join(data, 'test')) : undefined,
        trainImages: main.work.split.train.length,
      },
      {
        outDir,
        name,
        baseSha256: main.work.baseSha256,
        ...(glance ? { glance: { config: glance.config, graph: glance.graph, floatValidationAccuracy: glance.done.validationAccuracy as number[] } } : {}),
        onProgress: (p) => exportBar.update(p.done, p.total, p.stage),
      },
    );
  } finally {
    exportBar.stop();
  }
  const finalOf = (values: unknown) => (values as number[] | undefined)?.at(-1);
  const withGlance = (values: unknown, glanceValue: number | undefined): number[] | undefined =>
    values === undefined ? undefined : glance ? [glanceValue ?? Number.NaN, ...(values as number[])] : (values as number[]);
  const floatTest = withGlance(main.done.testAccuracy, finalOf(glance?.done.testAccuracy));
  const report: TrainReport = {
    package: result.dir,
    trainSeconds: Number(main.done.trainSeconds) + Number(glance?.done.trainSeconds ?? 0),
    steps: Number(main.done.steps) + Number(glance?.done.steps ?? 0),
    exits: [...(glance ? [`glance ${glance.config.inputSize}x${glance.config.inputSize}`] : []), ...main.config.cuts, 'pooled'],
    float: { validationAccuracy: withGlance(main.done.validationAccuracy, finalOf(glance?.done.validationAccuracy))!, ...(floatTest ? { testAccuracy: floatTest } : {}) },
    int8: result.int8,
    stepPrecision: String(main.done.stepPrecision),
    history: main.done.history as unknown[],
    ...(glance
      ? {
          glance: {
            config: glance.config.name,
            trainSeconds: Number(glance.done.trainSeconds),
            steps: Number(glance.done.steps),
            stepPrecision: String(glance.done.stepPrecision),
            history: glance.done.history as unknown[],
          },
        }
      : {}),
  };
  fs.writeFileSync(path.join(result.dir, 'training-report.json'), `${JSON.stringify(report, null, 2)}\n`);
  const history = report.history as EpochAccuracy[];
  const title = trainingCurveTitle(main.config.name, history, main.work.split.validation.length);
  const curve = await trainingCurveSvg(history, [...main.config.cuts, 'pooled'], title);
  fs.writeFileSync(path.join(result.dir, 'training-curve.svg'), curve);
  printReport(report);
  return report;
}

export async function trainCommand(options: { config: string; out?: string; force?: boolean; cacheDir?: string; edgetpu?: boolean }): Promise<TrainReport> {
  // Known before hours of training, not after.
  if (options.edgetpu) requireEdgeTpuCompiler();
  const report = await trainPackage(options);
  if (options.edgetpu) console.log(formatEdgeTpuSummary(addEdgeTpuVariants(report.package, loadModelPackage(report.package).manifest, true)).join('\n'));
  return report;
}

async function trainPackage(options: { config: string; out?: string; force?: boolean; cacheDir?: string }): Promise<TrainReport> {
  const file = buildConfigPath(options.config);
  const cascade = isCascadeConfigFile(file) ? loadCascadeConfig(file) : undefined;
  const config = cascade ? cascade.main : loadTrainConfig(file);
  const name = cascade?.name ?? config.name;
  const outDir = path.resolve(options.out ?? path.join(modelsDir(), name));
  const classes = planTrainingWork(config, options.cacheDir ?? path.join(modelsDir(), '.cache', 'train')).classes;
  if (!options.force) checkExistingPackage(outDir, config.task.name, classes);
  const python = choosePython(config.python);
  checkPythonDependencies(python);
  if (!cascade) return packageTrained(await trainNetwork(config, python, options.cacheDir), outDir);
  // The glance first: it is the shorter run, and its own package is worth having on its own.
  const glance = await trainNetwork(cascade.glance, python, options.cacheDir);
  const main = await trainNetwork(config, python, options.cacheDir);
  return packageTrained(main, outDir, glance, name);
}

/** "10062 steps in bfloat16", or per network when a cascade's glance computed in another precision than its main network. */
export function describeSteps(report: Pick<TrainReport, 'steps' | 'stepPrecision' | 'glance'>): string {
  const { glance } = report;
  if (!glance || glance.stepPrecision === report.stepPrecision) return `${report.steps} steps in ${report.stepPrecision}`;
  return `${report.steps - glance.steps} main-network steps in ${report.stepPrecision}, ${glance.steps} glance steps in ${glance.stepPrecision}`;
}

function printReport(report: TrainReport): void {
  const fmt = (values: number[] | undefined, i: number) => (values ? values[i]!.toFixed(2).padStart(7) : '      -');
  console.log(`Trained in ${(report.trainSeconds / 60).toFixed(1)} min (${describeSteps(report)}); package: ${report.package}`);
  console.log('exit after     float val  int8 val  float test  int8 test');
  report.exits.forEach((name, i) => {
    console.log(`${name.padEnd(12)} ${fmt(report.float.validationAccuracy, i)}  ${fmt(report.int8.validationAccuracy, i)}   ${fmt(report.float.testAccuracy, i)}    ${fmt(report.int8.testAccuracy, i)}`);
  });
}
