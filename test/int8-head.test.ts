import test from 'ava';
import {
  buildInt8Head,
  denseOutputsFloat,
  floatHeadForward,
  HeadSpecError,
  poolFeaturesFloat,
  poolWindow,
  type DenseLayer,
  type HeadSpec,
} from '../tools/exit-heads/int8-head.js';
import { argmax } from '../agent/inference/top-k.js';
import { TfliteInterpreter } from '../agent/runtime/interpreter.js';
import { BuiltinOperator, builtinOperatorName, TensorType, type TfliteModel } from '../agent/tflite/model.js';
import { readTfliteModel } from '../agent/tflite/reader.js';
import { writeTfliteModel } from '../tools/tflite/writer.js';
import { seededRandom } from '../agent/datasets/split.js';

/** The project's seeded generator: every run sees the same heads and inputs. */
const rng = seededRandom;

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** He-style initial weights, the scale a freshly trained head has. */
function randomLayer(random: () => number, inSize: number, outSize: number, activation: DenseLayer['activation']): DenseLayer {
  const std = Math.sqrt((activation === 'relu' ? 2 : 1) / inSize);
  const weights = new Float32Array(inSize * outSize).map(() => gaussian(random) * std);
  const bias = new Float32Array(outSize).map(() => gaussian(random) * 0.1);
  return { inSize, outSize, weights, bias, activation };
}

/**
 * Random seam tensors shaped like ReLU6 features: each sample gives every
 * channel its own level, so pooled features (and so the classes) differ
 * between samples instead of all averaging to the same value.
 */
function randomSeam(random: () => number, input: HeadSpec['input']): Int8Array {
  const [, h, w, c] = input.shape;
  const levels = Array.from({ length: c }, () => 6 * random() ** 2);
  const out = new Int8Array(h * w * c);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < c; k++) {
      const v = random() < 0.3 ? 0 : Math.min(6, levels[k]! * (0.3 + 1.4 * random()));
      out[p * c + k] = Math.max(-128, Math.min(127, Math.round(v / input.scale) + input.zeroPoint));
    }
  }
  return out;
}

/** Per-layer output ranges over calibration samples, as the training side measures them. */
function calibrate(layers: DenseLayer[], pooled: Float32Array[]): HeadSpec['activationRanges'] {
  const ranges = layers.map(() => ({ min: Infinity, max: -Infinity }));
  for (const x of pooled) {
    denseOutputsFloat(layers, x).forEach((y, i) => {
      for (const v of y) {
        ranges[i]!.min = Math.min(ranges[i]!.min, v);
        ranges[i]!.max = Math.max(ranges[i]!.max, v);
      }
    });
  }
  return ranges;
}

/**
 * Data-dependent init: shifts each layer's biases so its pre-activations have
 * zero mean on the calibration data, as training would. Without it the shared
 * mean of the features decides the class and most inputs land in one class.
 */
function centerBiases(layers: DenseLayer[], pooled: Float32Array[]): void {
  layers.forEach((layer, i) => {
    const mean = new Float64Array(layer.outSize);
    for (const x of pooled) {
      const input = i === 0 ? x : denseOutputsFloat(layers.slice(0, i), x)[i - 1]!;
      for (let o = 0; o < layer.outSize; o++) {
        let acc = 0;
        for (let k = 0; k < layer.inSize; k++) acc += layer.weights[o * layer.inSize + k]! * input[k]!;
        mean[o]! += acc / pooled.length;
      }
    }
    for (let o = 0; o < layer.outSize; o++) layer.bias[o]! -= mean[o]!;
  });
}

function makeHead(seed: number, name: string, input: HeadSpec['input'], grid: number, sizes: number[]): HeadSpec {
  const random = rng(seed);
  const layers = sizes.slice(1).map((out, i) => randomLayer(random, sizes[i]!, out, i < sizes.length - 2 ? 'relu' : 'none'));
  const spec: HeadSpec = { name, input, pool: { grid }, layers, activationRanges: [] };
  const calibration = Array.from({ length: 300 }, () => poolFeaturesFloat(randomSeam(random, input), input, grid));
  centerBiases(layers, calibration);
  spec.activationRanges = calibrate(layers, calibration);
  return spec;
}

const MLP_INPUT: HeadSpec['input'] = { shape: [1, 14, 14, 64], scale: 0.0235294122248888, zeroPoint: -128 };
const POOLED_INPUT: HeadSpec['input'] = { shape: [1, 1, 1, 1280], scale: 0.019077831879258156, zeroPoint: -128 };
const mlpHead = () => makeHead(1, 'exit_mlp', MLP_INPUT, 2, [256, 128, 10]);
const linearHead = () => makeHead(2, 'exit_linear', POOLED_INPUT, 1, [1280, 10]);

const ALLOWED_OPS = new Set<number>([BuiltinOperator.AVERAGE_POOL_2D, BuiltinOperator.RESHAPE, BuiltinOperator.FULLY_CONNECTED, BuiltinOperator.SOFTMAX, BuiltinOperator.CONV_2D]);

interface Agreement {
  agree: number;
  total: number;
  maxAbsDiff: number;
  meanAbsDiff: number;
  classes: number;
  /** Samples whose two largest float probabilities are within 0.05: the ones quantization can flip. */
  close: number;
}

function compareWithFloat(spec: HeadSpec, backend: 'stock' | 'xnnpack', seed: number, samples = 200): Agreement {
  const interpreter = TfliteInterpreter.fromBytes(writeTfliteModel(buildInt8Head(spec)), spec.name, { backend, threads: 1 });
  if (interpreter.backend !== backend) throw new Error(`asked for ${backend}, got ${interpreter.backend}`);
  const input = interpreter.input();
  const output = interpreter.output();
  const q = output.quantization!;
  const random = rng(seed);
  const seen = new Set<number>();
  let agree = 0;
  let maxAbsDiff = 0;
  let sumAbsDiff = 0;
  let close = 0;
  for (let n = 0; n < samples; n++) {
    const seam = randomSeam(random, spec.input);
    input.data.set(seam);
    interpreter.invoke();
    const expected = floatHeadForward(spec, poolFeaturesFloat(seam, spec.input, spec.pool.grid));
    const got = Float32Array.from(output.data, (v) => (v - q.zeroPoint) * q.scale);
    if (argmax(got) === argmax(expected)) agree++;
    seen.add(argmax(expected));
    const [first, second] = [...expected].sort((a, b) => b - a);
    if (first! - second! < 0.05) close++;
    got.forEach((p, i) => {
      const d = Math.abs(p - expected[i]!);
      maxAbsDiff = Math.max(maxAbsDiff, d);
      sumAbsDiff += d;
    });
  }
  return { agree, total: samples, maxAbsDiff, meanAbsDiff: sumAbsDiff / (samples * output.data.length), classes: seen.size, close };
}

for (const backend of ['stock', 'xnnpack'] as const) {
  for (const [label, make, seed] of [
    ['[1,14,14,64] grid 2 -> 256 -> relu 128 -> 10', mlpHead, 11],
    ['[1,1,1,1280] -> 10 linear', linearHead, 12],
  ] as const) {
    test(`${backend}: int8 head ${label} agrees with the float reference`, (t) => {
      const spec = make();
      const r = compareWithFloat(spec, backend, seed);
      t.log(`argmax agreement ${r.agree}/${r.total}, max |dp| ${r.maxAbsDiff.toFixed(4)}, mean |dp| ${r.meanAbsDiff.toFixed(5)}, ${r.classes} distinct float classes, ${r.close} samples with a top-2 gap under 0.05`);
      // Inputs must not all land in one class, or agreement would say nothing.
      t.true(r.classes >= 4, `only ${r.classes} classes predicted`);
      t.true(r.agree / r.total >= 0.97, `agreement ${r.agree}/${r.total}`);
      t.true(r.maxAbsDiff < 0.05, `max abs diff ${r.maxAbsDiff}`);
    });
  }
}

test('the int8 pooling op computes the windows poolFeaturesFloat uses, to half a quantization step', (t) => {
  for (const [shape, grid] of [
    [[1, 14, 14, 64], 2],
    [[1, 10, 10, 64], 2],
    [[1, 7, 7, 32], 2],
    [[1, 7, 7, 16], 3],
    [[1, 14, 14, 8], 1],
  ] as Array<[[1, number, number, number], number]>) {
    const input = { shape, scale: 0.05, zeroPoint: -3 };
    const channels = shape[3];
    const spec: HeadSpec = {
      name: 'pool_only',
      input,
      pool: { grid },
      layers: [randomLayer(rng(3), grid * grid * channels, 10, 'none')],
      activationRanges: [{ min: -5, max: 5 }],
    };
    // Cut the head after its pooling op so the pooled tensor is the output.
    const model = buildInt8Head(spec);
    const sg = model.subgraphs[0]!;
    t.is(model.operatorCodes[sg.operators[0]!.opcodeIndex]!.builtinCode, BuiltinOperator.AVERAGE_POOL_2D);
    const poolOnly: TfliteModel = { ...model, subgraphs: [{ ...sg, operators: [sg.operators[0]!], outputs: sg.operators[0]!.outputs }] };
    for (const backend of ['stock', 'xnnpack'] as const) {
      const interpreter = TfliteInterpreter.fromBytes(writeTfliteModel(poolOnly), 'pool only', { backend, threads: 1 });
      t.deepEqual([...interpreter.output().shape], [1, grid, grid, channels]);
      const random = rng(4);
      let worst = 0;
      for (let n = 0; n < 20; n++) {
        const seam = new Int8Array(shape[1] * shape[2] * channels).map(() => Math.floor(random() * 256) - 128);
        interpreter.input().data.set(seam);
        interpreter.invoke();
        const expected = poolFeaturesFloat(seam, input, grid);
        interpreter.output().data.forEach((v, i) => {
          worst = Math.max(worst, Math.abs((v - input.zeroPoint) * input.scale - expected[i]!));
        });
      }
      t.true(worst <= input.scale / 2 + 1e-6, `${backend} [${shape.join(',')}] grid ${grid}: worst ${worst}`);
    }
  }
});

test('poolWindow cuts each axis into grid VALID windows covering every position', (t) => {
  t.deepEqual(poolWindow(14, 2), { filter: 7, stride: 7 });
  t.deepEqual(poolWindow(10, 2), { filter: 5, stride: 5 });
  t.deepEqual(poolWindow(7, 2), { filter: 4, stride: 3 });
  t.deepEqual(poolWindow(7, 3), { filter: 3, stride: 2 });
  t.deepEqual(poolWindow(7, 1), { filter: 7, stride: 7 });
  for (let size = 1; size <= 28; size++) {
    for (let grid = 1; grid <= size; grid++) {
      const { filter, stride } = poolWindow(size, grid);
      t.is(Math.floor((size - filter) / stride) + 1, grid, `${size} -> ${grid}`);
      t.is(filter + (grid - 1) * stride, size, `${size} -> ${grid} covers the axis`);
      t.true(stride <= filter);
    }
  }
  t.throws(() => poolWindow(3, 4), { instanceOf: HeadSpecError, message: /larger than the feature map side 3/ });
});

test('poolFeaturesFloat matches a direct average over the expected windows, NHWC order', (t) => {
  const random = rng(5);
  const check = (input: HeadSpec['input'], grid: number, windows: Array<[number, number]>) => {
    const [, h, w, c] = input.shape;
    const seam = new Int8Array(h * w * c).map(() => Math.floor(random() * 256) - 128);
    const got = poolFeaturesFloat(seam, input, grid);
    t.is(got.length, windows.length * windows.length * c);
    let worst = 0;
    windows.forEach(([y0, y1], gy) =>
      windows.forEach(([x0, x1], gx) => {
        for (let k = 0; k < c; k++) {
          let sum = 0;
          let count = 0;
          for (let y = y0; y <= y1; y++) {
            for (let x = x0; x <= x1; x++) {
              sum += (seam[(y * w + x) * c + k]! - input.zeroPoint) * input.scale;
              count++;
            }
          }
          worst = Math.max(worst, Math.abs(got[(gy * windows.length + gx) * c + k]! - sum / count));
        }
      }),
    );
    t.true(worst < 1e-5, `worst ${worst}`);
  };
  check({ shape: [1, 14, 14, 64], scale: 0.02, zeroPoint: -128 }, 2, [[0, 6], [7, 13]]);
  check({ shape: [1, 10, 10, 64], scale: 0.03, zeroPoint: 5 }, 2, [[0, 4], [5, 9]]);
  check({ shape: [1, 7, 7, 3], scale: 0.1, zeroPoint: 0 }, 2, [[0, 3], [3, 6]]);
  check({ shape: [1, 7, 7, 3], scale: 0.1, zeroPoint: 0 }, 1, [[0, 6]]);
  // A 1x1 map is passed through whatever the grid.
  const pooled = new Int8Array(1280).map(() => Math.floor(random() * 256) - 128);
  const flat = poolFeaturesFloat(pooled, POOLED_INPUT, 4);
  t.is(flat.length, 1280);
  t.true(flat.every((v, i) => Math.abs(v - (pooled[i]! - POOLED_INPUT.zeroPoint) * POOLED_INPUT.scale) < 1e-6));
  t.throws(() => poolFeaturesFloat(new Int8Array(10), MLP_INPUT, 2), { instanceOf: HeadSpecError, message: /has 10 values/ });
});

test('a layer whose inSize does not match the pooled size is refused with a clear error', (t) => {
  const spec = mlpHead();
  spec.layers[0] = randomLayer(rng(6), 200, 128, 'relu');
  t.throws(() => buildInt8Head(spec), {
    instanceOf: HeadSpecError,
    message: /layers\[0\] has inSize 200, which does not match the pooled input \(input \[1, 14, 14, 64\] pooled to 2x2 gives 256 features\)/,
  });
  const chained = mlpHead();
  chained.layers[1] = randomLayer(rng(7), 64, 10, 'none');
  t.throws(() => buildInt8Head(chained), { instanceOf: HeadSpecError, message: /layers\[1\] has inSize 64, which does not match layers\[0\]\.outSize \(128\)/ });
  const ranges = mlpHead();
  ranges.activationRanges.pop();
  t.throws(() => buildInt8Head(ranges), { instanceOf: HeadSpecError, message: /activationRanges has 1 entries/ });
  const grid = mlpHead();
  grid.pool.grid = 20;
  t.throws(() => buildInt8Head(grid), { instanceOf: HeadSpecError, message: /pool\.grid 20 does not fit the 14x14 feature map/ });
});

test('the written head reads back unchanged, uses only Edge TPU ops and follows the int8 spec', (t) => {
  for (const spec of [mlpHead(), linearHead()]) {
    const model = buildInt8Head(spec);
    const back = readTfliteModel(writeTfliteModel(model));
    t.deepEqual(back, model);
    const sg = back.subgraphs[0]!;
    const ops = sg.operators.map((op) => back.operatorCodes[op.opcodeIndex]!.builtinCode);
    for (const code of ops) t.true(ALLOWED_OPS.has(code), builtinOperatorName(code));
    t.deepEqual(
      ops.map(builtinOperatorName),
      [...(spec.input.shape[1] > 1 ? ['AVERAGE_POOL_2D'] : []), 'RESHAPE', ...spec.layers.map(() => 'FULLY_CONNECTED'), 'SOFTMAX'],
    );

    const input = sg.tensors[sg.inputs[0]!]!;
    t.deepEqual(input.shape, spec.input.shape);
    t.is(input.type, TensorType.INT8);
    t.deepEqual(input.quantization?.scale, [spec.input.scale]);
    t.deepEqual(input.quantization?.zeroPoint, [spec.input.zeroPoint]);
    const output = sg.tensors[sg.outputs[0]!]!;
    t.is(output.type, TensorType.INT8);
    t.deepEqual(output.quantization?.scale, [1 / 256]);
    t.deepEqual(output.quantization?.zeroPoint, [-128]);

    for (const op of sg.operators) {
      const code = back.operatorCodes[op.opcodeIndex]!.builtinCode;
      const [x, w, b] = op.inputs.map((i) => sg.tensors[i]!);
      const y = sg.tensors[op.outputs[0]!]!;
      if (code === BuiltinOperator.AVERAGE_POOL_2D || code === BuiltinOperator.RESHAPE) {
        t.deepEqual(y.quantization, x!.quantization, 'pooling and reshape keep the quantization');
      }
      if (code === BuiltinOperator.FULLY_CONNECTED) {
        t.is(w!.type, TensorType.INT8);
        t.deepEqual(w!.quantization!.zeroPoint, [0]);
        t.is(w!.quantization!.scale.length, 1);
        const codes = new Int8Array(back.buffers[w!.buffer]!.buffer, back.buffers[w!.buffer]!.byteOffset, back.buffers[w!.buffer]!.length);
        t.true(codes.every((v) => v >= -127));
        t.is(b!.type, TensorType.INT32);
        t.deepEqual(b!.quantization!.zeroPoint, [0]);
        t.true(Math.abs(b!.quantization!.scale[0]! / (x!.quantization!.scale[0]! * w!.quantization!.scale[0]!) - 1) < 1e-6);
        const relu = op.builtinOptions?.type === 'FullyConnectedOptions' && op.builtinOptions.fusedActivationFunction === 1;
        // A fused RELU output starts at 0, so its zero point sits at the bottom of the int8 range.
        if (relu) t.deepEqual(y.quantization!.zeroPoint, [-128]);
      }
    }
  }
});
