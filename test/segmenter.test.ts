import fs from 'node:fs';
import test from 'ava';
import { findCutPoints, labelBoundaries } from '../tools/segmenter/cut-points.js';
import { cutModel, CutError } from '../tools/segmenter/segment.js';
import { modelMacs } from '../tools/tflite/macs.js';
import { TensorType, type TfliteModel } from '../agent/tflite/model.js';
import { readTfliteModel } from '../agent/tflite/reader.js';
import { writeTfliteModel } from '../tools/tflite/writer.js';
import { imageToRgb } from './helpers/images.js';
import { ModelRunner } from './helpers/run-model.js';
import { argmax } from '../agent/inference/top-k.js';
import { CAT_PHOTO, EDGETPU_MODEL, EGYPTIAN_CAT, MOBILENET_V2, cifarSamples } from './helpers/shared.js';

const original = new Uint8Array(fs.readFileSync(MOBILENET_V2));
const model = readTfliteModel(original);
const sg = model.subgraphs[0]!;
const points = findCutPoints(model);
const named = points.filter((p) => p.labeled);

// Blocks whose output is a residual ADD (Keras numbering), per the MobileNetV2 architecture.
const RESIDUAL = new Set([2, 4, 5, 7, 8, 9, 11, 12, 14, 15]);

test('block boundaries are block_0..block_16 then pooled, in graph order', (t) => {
  t.deepEqual(
    named.map((p) => p.name),
    [...Array.from({ length: 17 }, (_, i) => `block_${i}`), 'pooled'],
  );
  for (let i = 1; i < named.length; i++) t.true(named[i]!.afterOp > named[i - 1]!.afterOp);
  t.is(labelBoundaries(model).size, 18);
});

test('block labels agree with the converter tensor names', (t) => {
  // This model names Keras block N "expanded_conv_{N+1}"; fused names list the
  // op's own layer first.
  for (const p of named.filter((p) => p.name.startsWith('block_'))) {
    const n = Number(p.name.slice('block_'.length));
    const own = p.tensorName.split(';')[0]!;
    t.true(own.startsWith(`MobileNetV2/expanded_conv_${n + 1}/`), `${p.name}: ${own}`);
    t.true(own.includes(RESIDUAL.has(n) ? '/add/' : '/project/'), `${p.name}: ${own}`);
  }
  const pooled = named.at(-1)!;
  t.deepEqual(pooled.shape, [1, 1, 1, 1280]);
  t.regex(pooled.tensorName, /GlobalPool\/Mean/);
});

test('cut points carry shape, int8 type, quantization and MAC fractions', (t) => {
  const total = modelMacs(model);
  const block6 = points.find((p) => p.name === 'block_6')!;
  t.deepEqual(block6.shape, [1, 14, 14, 64]);
  t.is(block6.type, TensorType.INT8);
  t.deepEqual(block6.quantization, sg.tensors[block6.tensor]!.quantization);
  t.is(block6.macsFraction, block6.macsBefore / total);
  for (let i = 1; i < points.length; i++) t.true(points[i]!.macsBefore >= points[i - 1]!.macsBefore);
  const pooled = points.find((p) => p.name === 'pooled')!;
  t.true(pooled.macsFraction > 0.99 && pooled.macsFraction < 1);
  // Inside a residual block two tensors are live, so there is no cut there.
  const block2 = points.find((p) => p.name === 'block_2')!;
  t.false(points.some((p) => p.afterOp > block2.afterOp - 4 && p.afterOp < block2.afterOp));
});

function tensorSpec(m: TfliteModel, which: 'inputs' | 'outputs') {
  const s = m.subgraphs[0]!;
  const { shape, type, quantization } = s.tensors[s[which][0]!]!;
  return { shape, type, quantization };
}

const CUTS = ['block_6', 'block_10', 'block_13'];

test('segments and head: seams keep the original int8 tensors and their quantization', (t) => {
  const { segments, head } = cutModel(model, CUTS);
  t.is(segments.length, CUTS.length + 1);
  t.deepEqual(tensorSpec(segments[0]!, 'inputs'), tensorSpec(model, 'inputs'));
  t.deepEqual(tensorSpec(head, 'outputs'), tensorSpec(model, 'outputs'));
  const chain = [...segments, head];
  for (let k = 0; k + 1 < chain.length; k++) {
    const out = tensorSpec(chain[k]!, 'outputs');
    t.deepEqual(tensorSpec(chain[k + 1]!, 'inputs'), out);
    t.is(out.type, TensorType.INT8);
    const cut = points.find((p) => p.name === (CUTS[k] ?? 'pooled'))!;
    t.deepEqual(out.quantization, sg.tensors[cut.tensor]!.quantization);
    t.deepEqual(out.shape, cut.shape);
  }
  t.deepEqual(tensorSpec(head, 'inputs').shape, [1, 1, 1, 1280]);
  // The first segment keeps the uint8 -> int8 QUANTIZE; the head ends with the int8 -> uint8 one.
  t.is(segments[0]!.operatorCodes[segments[0]!.subgraphs[0]!.operators[0]!.opcodeIndex]!.builtinCode, 114);
  // Every op lands in exactly one part, and MACs add up.
  t.is(chain.reduce((n, m) => n + m.subgraphs[0]!.operators.length, 0), sg.operators.length);
  t.is(chain.reduce((n, m) => n + modelMacs(m), 0), modelMacs(model));
});

test('each part holds only the tensors, buffers and operator codes it uses', (t) => {
  const { segments, head } = cutModel(model, CUTS);
  for (const part of [...segments, head]) {
    const s = part.subgraphs[0]!;
    const usedTensors = new Set([...s.inputs, ...s.outputs, ...s.operators.flatMap((op) => [...op.inputs, ...op.outputs])]);
    t.is(usedTensors.size, s.tensors.length);
    const usedBuffers = new Set([0, ...s.tensors.map((x) => x.buffer), ...part.metadata.map((m) => m.buffer)]);
    t.is(usedBuffers.size, part.buffers.length);
    t.is(new Set(s.operators.map((op) => op.opcodeIndex)).size, part.operatorCodes.length);
    t.deepEqual(part.metadata.map((m) => m.name), ['min_runtime_version']);
    t.deepEqual(readTfliteModel(writeTfliteModel(part)), part);
  }
});

test('the segment chain is bit-identical to the whole model on real images', async (t) => {
  const whole = new ModelRunner(original);
  const images = [await imageToRgb(CAT_PHOTO), ...(await Promise.all(cifarSamples(6).map((f) => imageToRgb(f))))];
  for (const cuts of [CUTS, ['block_0'], ['block_2', 'block_16'], []]) {
    const { segments, head } = cutModel(model, cuts);
    const chain = [...segments, head].map((m) => new ModelRunner(writeTfliteModel(m)));
    images.forEach((image, i) => {
      const expected = whole.run(image);
      let x: Uint8Array | Int8Array | Float32Array | Int32Array = image;
      for (const part of chain) x = part.run(x);
      t.deepEqual(x, expected, `cuts [${cuts.join(', ')}], image ${i}`);
      if (i === 0) t.is(argmax(x), EGYPTIAN_CAT);
    });
  }
});

test('bad cut lists are refused with the valid names', (t) => {
  const unknown = t.throws(() => cutModel(model, ['block_6', 'block_99']), { instanceOf: CutError });
  t.regex(unknown!.message, /unknown cut point "block_99".*block_0, block_1, .*block_16/);
  const order = t.throws(() => cutModel(model, ['block_10', 'block_6']), { instanceOf: CutError });
  t.regex(order!.message, /"block_6" must come after "block_10".*block_0/);
  t.throws(() => cutModel(model, ['block_6', 'block_6']), { instanceOf: CutError, message: /must come after/ });
  t.throws(() => cutModel(model, ['pooled']), { instanceOf: CutError, message: /always the end of the last segment/ });
  t.throws(() => cutModel(model, ['op_65']), { instanceOf: CutError, message: /after "pooled"/ });
});

test('a model without MobileNetV2 structure cannot be cut', (t) => {
  const tpu = readTfliteModel(new Uint8Array(fs.readFileSync(EDGETPU_MODEL)));
  t.deepEqual(findCutPoints(tpu), []);
  t.throws(() => cutModel(tpu, []), { instanceOf: CutError, message: /no "pooled" boundary/ });
});
