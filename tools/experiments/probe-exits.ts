/**
 * Measures what frozen int8 MobileNetV2 features are worth at each candidate
 * exit, for a few input sizes and head shapes, to choose the package's exits.
 * Usage: tsx tools/experiments/probe-exits.ts [trainPerClass] [testPerClass] [sizes]
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { readTfliteModel } from '../../agent/tflite/reader.js';
import { writeTfliteModel } from '../../agent/tflite/writer.js';
import { findCutPoints } from '../../agent/segmenter/cut-points.js';
import { TfliteInterpreter } from '../../agent/runtime/interpreter.js';
import { imageFileToRgb } from '../../agent/preprocess/image-to-rgb.js';
import { balancedSubset, readImageFolder } from '../../agent/datasets/image-folder.js';
import { sharedDir } from '../../agent/config/paths.js';

const trainPerClass = Number(process.argv[2] ?? 1000);
const testPerClass = Number(process.argv[3] ?? 200);
const sizes = (process.argv[4] ?? '224,160,128').split(',').map(Number);
const exits = ['block_6', 'block_10', 'block_13', 'block_16', 'pooled'];

await tf.setBackend('wasm');
const base = readTfliteModel(fs.readFileSync(path.join(sharedDir(), 'models', 'tf2_mobilenet_v2_1.0_224_ptq.tflite')));
const cuts = findCutPoints(base);
const train = balancedSubset(readImageFolder(path.join(sharedDir(), 'data', 'cifar10', 'train')), trainPerClass);
const test = balancedSubset(readImageFolder(path.join(sharedDir(), 'data', 'cifar10', 'test')), testPerClass);

function gap(data: Int8Array, scale: number, zp: number, channels: number, grid: number, hw: number): Float32Array {
  const out = new Float32Array(grid * grid * channels);
  const cell = hw / grid;
  for (let y = 0; y < hw; y++) for (let x = 0; x < hw; x++) {
    const g = Math.min(grid - 1, Math.floor(y / cell)) * grid + Math.min(grid - 1, Math.floor(x / cell));
    for (let c = 0; c < channels; c++) out[g * channels + c] += (data[(y * hw + x) * channels + c]! - zp) * scale;
  }
  const per = (hw / grid) ** 2;
  for (let i = 0; i < out.length; i++) out[i] /= per;
  return out;
}

async function extract(size: number, files: { file: string }[], grid: number) {
  const model = structuredClone(base);
  const sg = model.subgraphs[0]!;
  sg.tensors[sg.inputs[0]!]!.shape = [1, size, size, 3];
  sg.outputs = exits.map((name) => cuts.find((c) => c.name === name)!.tensor);
  const it = TfliteInterpreter.fromBytes(writeTfliteModel(model), `probe-${size}`, { backend: 'xnnpack', threads: 2 });
  const feats: Float32Array[][] = exits.map(() => []);
  const t0 = performance.now();
  for (const { file } of files) {
    it.setInput(await imageFileToRgb(file, { width: size, height: size, resize: 'stretch' }));
    it.invoke();
    exits.forEach((_, e) => {
      const o = it.output(e);
      const hw = o.shape[1]!;
      feats[e]!.push(gap(o.data as Int8Array, o.quantization!.scale, o.quantization!.zeroPoint, o.shape[3]!, hw === 1 ? 1 : grid, hw));
    });
  }
  return { feats, msPerImage: (performance.now() - t0) / files.length };
}

async function fit(xs: Float32Array[], ys: number[], tx: Float32Array[], ty: number[], hidden: number, epochs: number) {
  const d = xs[0]!.length;
  const mean = new Float32Array(d), std = new Float32Array(d);
  for (const x of xs) for (let i = 0; i < d; i++) mean[i] += x[i]! / xs.length;
  for (const x of xs) for (let i = 0; i < d; i++) std[i] += (x[i]! - mean[i]!) ** 2 / xs.length;
  for (let i = 0; i < d; i++) std[i] = Math.sqrt(std[i]!) + 1e-6;
  const toT = (a: Float32Array[]) => { const b = new Float32Array(a.length * d); a.forEach((x, n) => { for (let i = 0; i < d; i++) b[n * d + i] = (x[i]! - mean[i]!) / std[i]!; }); return tf.tensor2d(b, [a.length, d]); };
  const X = toT(xs), TX = toT(tx);
  const Y = tf.oneHot(tf.tensor1d(ys, 'int32'), 10);
  tf.util.seedrandom?.('1');
  const m = tf.sequential();
  if (hidden > 0) { m.add(tf.layers.dense({ units: hidden, activation: 'relu', inputShape: [d], kernelRegularizer: tf.regularizers.l2({ l2: 1e-4 }) })); m.add(tf.layers.dropout({ rate: 0.3 })); }
  m.add(tf.layers.dense({ units: 10, activation: 'softmax', ...(hidden > 0 ? {} : { inputShape: [d] }), kernelRegularizer: tf.regularizers.l2({ l2: 1e-4 }) }));
  m.compile({ optimizer: tf.train.adam(1e-3), loss: 'categoricalCrossentropy' });
  await m.fit(X, Y, { epochs, batchSize: 128, shuffle: true, verbose: 0 });
  const pred = (m.predict(TX) as tf.Tensor).argMax(-1).dataSync();
  let ok = 0; pred.forEach((p, i) => { if (p === ty[i]) ok++; });
  tf.dispose([X, TX, Y]); m.dispose();
  return ok / ty.length;
}

for (const size of sizes) {
  for (const grid of [1, 2]) {
    const tr = await extract(size, train, grid);
    const te = await extract(size, test, grid);
    const row: string[] = [];
    for (let e = 0; e < exits.length; e++) {
      if (grid === 2 && exits[e] === 'pooled') continue;
      const t0 = performance.now();
      const lin = await fit(tr.feats[e]!, train.map((s) => s.label), te.feats[e]!, test.map((s) => s.label), 0, 30);
      const mlp = await fit(tr.feats[e]!, train.map((s) => s.label), te.feats[e]!, test.map((s) => s.label), 256, 30);
      row.push(`${exits[e]} dim ${tr.feats[e]![0]!.length}: linear ${(lin * 100).toFixed(1)} mlp ${(mlp * 100).toFixed(1)} (${((performance.now() - t0) / 1000).toFixed(0)}s)`);
    }
    console.log(`size ${size} grid ${grid} (${tr.msPerImage.toFixed(2)} ms/img extract):\n  ${row.join('\n  ')}`);
  }
}
