/**
 * Measures what frozen int8 MobileNetV2 features are worth at each candidate
 * exit, for several input sizes and pooling grids, with a linear and a
 * one-hidden-layer head: the measurements behind docs/exits.md.
 * Choices are made on a validation split carved from the training images; the
 * test split is not read.
 * Usage: tsx tools/experiments/probe-exits.ts [trainPerClass] [validationPerClass] [sizes] [grids]
 */
import fs from 'node:fs';
import path from 'node:path';
import { sharedDir } from '../../agent/config/paths.js';
import { readImageFolder } from '../../agent/datasets/image-folder.js';
import { splitTrainValidation } from '../../agent/datasets/split.js';
import { extractFeatures } from '../exit-heads/extract-features.js';
import { trainHead } from '../exit-heads/train-head.js';
import { TfliteInterpreter } from '../../agent/runtime/interpreter.js';
import { cutBackbone } from '../segmenter/segment.js';
import { readTfliteModel } from '../../agent/tflite/reader.js';
import { resizeModelInput } from '../tflite/shape-inference.js';
import { writeTfliteModel } from '../tflite/writer.js';

const trainPerClass = Number(process.argv[2] ?? 500);
const validationPerClass = Number(process.argv[3] ?? 100);
const sizes = (process.argv[4] ?? '224,160,128').split(',').map(Number);
const grids = (process.argv[5] ?? '1,2').split(',').map(Number);
const exits = ['block_6', 'block_10', 'block_13', 'block_16'];

const base = readTfliteModel(fs.readFileSync(path.join(sharedDir(), 'models', 'tf2_mobilenet_v2_1.0_224_ptq.tflite')));
const { train, validation } = splitTrainValidation(readImageFolder(path.join(sharedDir(), 'data', 'cifar10', 'train')).samples, {
  validationFraction: 0.1,
  trainPerClass,
  validationPerClass,
  seed: 1,
});
const training = { epochs: 30, batchSize: 128, learningRate: 0.001, l2: 1e-4, dropout: 0.3, seed: 1 };

for (const size of sizes) {
  const segments = cutBackbone(resizeModelInput(base, size, size), exits, 'pooled').map((segment, i) =>
    TfliteInterpreter.fromBytes(writeTfliteModel(segment), `segment ${i}`, { backend: 'xnnpack', threads: 2 }),
  );
  const target = { width: size, height: size, resize: 'stretch' as const };
  for (const grid of grids) {
    // Exits read segments 0..3 (blocks 6, 10, 13, 16) at this grid; the pooled 1280 features have no grid.
    const taps = [...exits.map((_, segment) => ({ segment, grid })), ...(grid === 1 ? [{ segment: exits.length, grid: 1 }] : [])];
    const started = performance.now();
    const trainSets = await extractFeatures(segments, train, taps, target);
    const msPerImage = (performance.now() - started) / train.length;
    const validationSets = await extractFeatures(segments, validation, taps, target);
    const rows: string[] = [];
    for (let i = 0; i < taps.length; i++) {
      const linear = await trainHead(trainSets[i]!, validationSets[i]!, 10, { ...training, hidden: 0 });
      const mlp = await trainHead(trainSets[i]!, validationSets[i]!, 10, { ...training, hidden: 256 });
      const name = i < exits.length ? exits[i] : 'pooled';
      rows.push(`${name} dim ${trainSets[i]!.dim}: linear ${(linear.validationAccuracy * 100).toFixed(1)} mlp ${(mlp.validationAccuracy * 100).toFixed(1)}`);
    }
    console.log(`size ${size} grid ${grid} (${msPerImage.toFixed(2)} ms/img extract):\n  ${rows.join('\n  ')}`);
  }
}
