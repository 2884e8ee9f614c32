// Lays out the trainer's work directory: the dequantized starting graph, the
// decoded image tensors of each split, and the recipe. The directory is keyed
// by everything that shapes the training, so a rerun with the same inputs
// finds its checkpoint and resumes.
import fs from 'node:fs';
import path from 'node:path';
import { balancedSubset, checkSameClasses, readImageFolder, type LabelledImage } from '../../agent/datasets/image-folder.js';
import { splitTrainValidation } from '../../agent/datasets/split.js';
import { sha256Hex } from '../../agent/model-package/sha256.js';
import { readTfliteModel } from '../../agent/tflite/reader.js';
import { resizeModelInput } from '../tflite/shape-inference.js';
import { writeDatasetTensors } from './dataset-tensors.js';
import { dequantizeBackbone } from './dequantize-backbone.js';
import { GRAPH_FILE, writeFloatGraph } from './float-graph.js';
import type { ResolvedTrainConfig } from './train-config.js';

export interface TrainingWork {
  dir: string;
  classes: string[];
  split: { train: LabelledImage[]; validation: LabelledImage[]; test: LabelledImage[] };
  baseSha256: string;
}

export const TRAINER_CONFIG_FILE = 'train-config.json';

export function planTrainingWork(config: ResolvedTrainConfig, cacheRoot: string): TrainingWork {
  const task = config.task;
  const folder = readImageFolder(path.join(config.datasetPath, task.trainSplit));
  const { train, validation } = splitTrainValidation(folder.samples, {
    validationFraction: task.validationFraction,
    trainPerClass: task.trainPerClass,
    validationPerClass: task.validationPerClass,
    seed: config.training.seed,
  });
  const testRoot = path.join(config.datasetPath, task.testSplit);
  let test: LabelledImage[] = [];
  if (fs.existsSync(testRoot)) {
    const testFolder = readImageFolder(testRoot);
    checkSameClasses(folder.classes, testFolder.classes, testRoot);
    test = task.testPerClass ? balancedSubset(testFolder, task.testPerClass) : testFolder.samples;
  }
  if (!fs.existsSync(config.baseModelPath)) {
    throw new Error(`Base model not found at ${config.baseModelPath} (baseModel.path in ${config.configFile}); set EDGE_EXIT_SHARED_DIR or fix the path.`);
  }
  const baseSha256 = sha256Hex(fs.readFileSync(config.baseModelPath));
  const files = (images: LabelledImage[]) => images.map((s) => path.relative(config.datasetPath, s.file));
  const { configFile: _c, baseModelPath: _b, datasetPath: _d, latencyRuns: _l, python: _p, ...shaping } = config;
  // Calibration settings only shape the export, which reruns on every `edge-exit train`: changing them must not retrain.
  const { calibrationDeltas: _cd, balancedConfidenceZ: _bz, ...trainedTask } = shaping.task;
  const key = sha256Hex(JSON.stringify({ baseSha256, shaping: { ...shaping, task: trainedTask }, classes: folder.classes, train: files(train), validation: files(validation) })).slice(0, 16);
  return { dir: path.join(cacheRoot, `${config.name}-${key}`), classes: folder.classes, split: { train, validation, test }, baseSha256 };
}

/** Writes what the trainer reads; every part is skipped when already there. */
export async function prepareTrainingWork(
  config: ResolvedTrainConfig,
  work: TrainingWork,
  onProgress?: (stage: string, done: number, total: number) => void,
): Promise<void> {
  const baseDir = path.join(work.dir, 'base');
  if (!fs.existsSync(path.join(baseDir, GRAPH_FILE))) {
    onProgress?.('dequantize base model', 0, 1);
    const model = resizeModelInput(readTfliteModel(fs.readFileSync(config.baseModelPath)), config.inputSize, config.inputSize);
    writeFloatGraph(baseDir, dequantizeBackbone(model));
    onProgress?.('dequantize base model', 1, 1);
  }
  const target = { width: config.inputSize, height: config.inputSize, resize: config.resize };
  for (const [name, images] of Object.entries(work.split)) {
    if (images.length === 0) continue;
    await writeDatasetTensors(images, target, path.join(work.dir, 'data', name), (done, total) => onProgress?.(`decode ${name} images`, done, total), (config.frameSize ?? config.inputSize) / config.inputSize);
  }
  const trainerConfig = {
    ...config.training,
    exitWeights: config.training.exitWeights ?? Array.from({ length: config.cuts.length + 1 }, () => 1),
    maxSteps: config.training.maxSteps ?? null,
    freezeThrough: config.training.freezeThrough ?? null,
    headEpochs: config.training.headEpochs ?? 0,
    cuts: config.cuts,
    classes: work.classes,
  };
  fs.writeFileSync(path.join(work.dir, TRAINER_CONFIG_FILE), `${JSON.stringify(trainerConfig, null, 2)}\n`);
}
