// Turns a float-trained exit head (pooling + dense layers + softmax) into a
// fully int8 TFLite model that reads the int8 seam tensor of the backbone
// directly. Only AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED and SOFTMAX are
// emitted, all quantized as TFLite's int8 spec asks, so the Edge TPU compiler
// can map the whole head.
import { int32Bytes, ModelAssembler, perTensor } from '../tflite/assembler.js';
import { BuiltinOperator, TensorType, type TfliteModel } from '../../agent/tflite/model.js';
import { ActivationFunctionType, makeOptions, Padding } from '../../agent/tflite/options.js';

export interface DenseLayer {
  inSize: number;
  outSize: number;
  /** Row-major [outSize][inSize], the layout TFLite's FULLY_CONNECTED stores. */
  weights: Float32Array;
  bias: Float32Array;
  activation: 'relu' | 'none';
}

export interface HeadSpec {
  name: string;
  /** The int8 seam tensor the head reads. */
  input: { shape: [1, number, number, number]; scale: number; zeroPoint: number };
  /** Average-pool the HxW map to grid x grid cells first (1 = global average; ignored when H = W = 1). */
  pool: { grid: number };
  layers: DenseLayer[];
  /** Float ranges of each layer's output on calibration data (for the last layer: the logits). */
  activationRanges: { min: number; max: number }[];
}

/** A head that cannot be built as asked; the message names the field and the fix. */
export class HeadSpecError extends Error {
  override name = 'HeadSpecError';
}

/** One spatial axis of the pooling: VALID windows `filter` wide, `stride` apart. */
export interface PoolWindow {
  filter: number;
  stride: number;
}

// TFLite int8 range of activations; weights use the symmetric [-127, 127].
const QMIN = -128;
const QMAX = 127;
const WEIGHT_QMAX = 127;
// The spec fixes the int8 softmax output to cover [0, 1) exactly.
export const SOFTMAX_SCALE = 1 / 256;
export const SOFTMAX_ZERO_POINT = -128;

/**
 * VALID pooling windows that cut `size` positions into `grid` cells. Windows
 * are as wide as needed to cover every position (ceil(size/grid)) and may
 * overlap when size is not a multiple of grid (7 -> 2 gives filter 4, stride 3);
 * among the choices that cover the whole axis the one with least overlap wins.
 */
export function poolWindow(size: number, grid: number): PoolWindow {
  if (!Number.isInteger(size) || size < 1) throw new HeadSpecError(`pooling: axis size must be a positive integer, got ${size}`);
  if (!Number.isInteger(grid) || grid < 1) throw new HeadSpecError(`pool.grid must be a positive integer, got ${grid}`);
  if (grid > size) throw new HeadSpecError(`pool.grid ${grid} is larger than the feature map side ${size}; use a grid of at most ${size}`);
  if (grid === 1) return { filter: size, stride: size };
  let best: (PoolWindow & { covered: number }) | undefined;
  for (let filter = Math.ceil(size / grid); filter <= size; filter++) {
    // Strides above the filter would skip positions, so they are not considered.
    for (let stride = 1; stride <= filter; stride++) {
      if (Math.floor((size - filter) / stride) + 1 !== grid) continue;
      const covered = filter + (grid - 1) * stride;
      const better =
        !best ||
        covered > best.covered ||
        (covered === best.covered && filter - stride < best.filter - best.stride) ||
        (covered === best.covered && filter - stride === best.filter - best.stride && filter < best.filter);
      if (better) best = { filter, stride, covered };
    }
  }
  if (!best) throw new HeadSpecError(`pooling: no VALID window splits ${size} positions into ${grid} cells`);
  return { filter: best.filter, stride: best.stride };
}

interface PoolPlan {
  /** Undefined when no pooling op is needed (1x1 map, or grid equal to the map). */
  h?: PoolWindow;
  w?: PoolWindow;
  outH: number;
  outW: number;
  channels: number;
}

function checkInput(input: HeadSpec['input']): void {
  const { shape, scale, zeroPoint } = input;
  if (!Array.isArray(shape) || shape.length !== 4 || shape[0] !== 1 || shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new HeadSpecError(`input.shape must be [1, H, W, C] with positive integers, got [${String(shape)}]`);
  }
  if (!(Number.isFinite(scale) && scale > 0)) throw new HeadSpecError(`input.scale must be a positive number, got ${scale}`);
  if (!Number.isInteger(zeroPoint) || zeroPoint < QMIN || zeroPoint > QMAX) {
    throw new HeadSpecError(`input.zeroPoint must be an integer in [-128, 127] (int8), got ${zeroPoint}`);
  }
}

function poolPlan(input: HeadSpec['input'], grid: number): PoolPlan {
  checkInput(input);
  const [, height, width, channels] = input.shape;
  if (height === 1 && width === 1) return { outH: 1, outW: 1, channels };
  if (!Number.isInteger(grid) || grid < 1) throw new HeadSpecError(`pool.grid must be a positive integer, got ${grid}`);
  if (grid > height || grid > width) {
    throw new HeadSpecError(`pool.grid ${grid} does not fit the ${height}x${width} feature map of input [${input.shape.join(', ')}]; use a grid of at most ${Math.min(height, width)}`);
  }
  if (grid === height && grid === width) return { outH: grid, outW: grid, channels };
  return { h: poolWindow(height, grid), w: poolWindow(width, grid), outH: grid, outW: grid, channels };
}

/** Number of features the dense layers see after pooling and flattening. */
export function pooledSize(input: HeadSpec['input'], grid: number): number {
  const plan = poolPlan(input, grid);
  return plan.outH * plan.outW * plan.channels;
}

/**
 * Float reference of the pooling: the mean of the dequantized values over the
 * same VALID windows the AVERAGE_POOL_2D op uses, flattened NHWC (cell row,
 * cell column, channel) like the RESHAPE that follows it. The int8 op returns
 * this mean rounded to the input's quantization step (off by at most scale/2).
 */
export function poolFeaturesFloat(int8: Int8Array, spec: HeadSpec['input'], grid: number): Float32Array {
  const plan = poolPlan(spec, grid);
  const [, height, width, channels] = spec.shape;
  if (int8.length !== height * width * channels) {
    throw new HeadSpecError(`poolFeaturesFloat: input has ${int8.length} values, but shape [${spec.shape.join(', ')}] holds ${height * width * channels}`);
  }
  const hWin = plan.h ?? { filter: 1, stride: 1 };
  const wWin = plan.w ?? { filter: 1, stride: 1 };
  const out = new Float32Array(plan.outH * plan.outW * channels);
  const sums = new Float64Array(channels);
  const count = hWin.filter * wWin.filter;
  for (let oy = 0; oy < plan.outH; oy++) {
    for (let ox = 0; ox < plan.outW; ox++) {
      sums.fill(0);
      for (let y = oy * hWin.stride; y < oy * hWin.stride + hWin.filter; y++) {
        for (let x = ox * wWin.stride; x < ox * wWin.stride + wWin.filter; x++) {
          const base = (y * width + x) * channels;
          for (let c = 0; c < channels; c++) sums[c]! += int8[base + c]!;
        }
      }
      const base = (oy * plan.outW + ox) * channels;
      for (let c = 0; c < channels; c++) out[base + c] = (sums[c]! / count - spec.zeroPoint) * spec.scale;
    }
  }
  return out;
}

function checkLayers(spec: HeadSpec, plan: PoolPlan): void {
  const inputSize = plan.outH * plan.outW * plan.channels;
  const { layers, activationRanges } = spec;
  if (!Array.isArray(layers) || layers.length === 0) throw new HeadSpecError(`head ${spec.name}: needs at least one dense layer`);
  let expected = inputSize;
  layers.forEach((layer, i) => {
    const where = `head ${spec.name}: layers[${i}]`;
    if (!Number.isInteger(layer.inSize) || !Number.isInteger(layer.outSize) || layer.inSize < 1 || layer.outSize < 1) {
      throw new HeadSpecError(`${where} has inSize ${layer.inSize} and outSize ${layer.outSize}; both must be positive integers`);
    }
    if (layer.inSize !== expected) {
      const from =
        i === 0
          ? `the pooled input (input [${spec.input.shape.join(', ')}] pooled to ${plan.outH}x${plan.outW} gives ${expected} features)`
          : `layers[${i - 1}].outSize (${expected})`;
      throw new HeadSpecError(`${where} has inSize ${layer.inSize}, which does not match ${from}`);
    }
    if (layer.weights.length !== layer.inSize * layer.outSize) {
      throw new HeadSpecError(`${where} has ${layer.weights.length} weights; [outSize ${layer.outSize}][inSize ${layer.inSize}] needs ${layer.inSize * layer.outSize}`);
    }
    if (layer.bias.length !== layer.outSize) throw new HeadSpecError(`${where} has ${layer.bias.length} biases; outSize needs ${layer.outSize}`);
    if (layer.activation !== 'relu' && layer.activation !== 'none') throw new HeadSpecError(`${where} has activation "${String(layer.activation)}"; use "relu" or "none"`);
    if (!layer.weights.every(Number.isFinite) || !layer.bias.every(Number.isFinite)) throw new HeadSpecError(`${where} has non-finite weights or biases`);
    expected = layer.outSize;
  });
  if (!Array.isArray(activationRanges) || activationRanges.length !== layers.length) {
    throw new HeadSpecError(`head ${spec.name}: activationRanges has ${activationRanges?.length} entries, one per layer needs ${layers.length}`);
  }
  activationRanges.forEach((r, i) => {
    if (!Number.isFinite(r.min) || !Number.isFinite(r.max) || r.min > r.max) {
      throw new HeadSpecError(`head ${spec.name}: activationRanges[${i}] is [${r.min}, ${r.max}]; it must be finite with min <= max`);
    }
  });
}

/** Every layer's float output (after its activation) for one pooled feature vector. */
export function denseOutputsFloat(layers: readonly DenseLayer[], pooled: Float32Array): Float32Array[] {
  const outputs: Float32Array[] = [];
  let x = pooled;
  layers.forEach((layer, i) => {
    if (x.length !== layer.inSize) throw new HeadSpecError(`layers[${i}] takes ${layer.inSize} values, got ${x.length}`);
    const y = new Float32Array(layer.outSize);
    for (let o = 0; o < layer.outSize; o++) {
      let acc = layer.bias[o]!;
      const row = o * layer.inSize;
      for (let k = 0; k < layer.inSize; k++) acc += layer.weights[row + k]! * x[k]!;
      y[o] = layer.activation === 'relu' && acc < 0 ? 0 : acc;
    }
    outputs.push(y);
    x = y;
  });
  return outputs;
}

/** Float reference of the whole head after pooling: dense layers, then softmax. */
export function floatHeadForward(spec: HeadSpec, pooled: Float32Array): Float32Array {
  const outputs = denseOutputsFloat(spec.layers, pooled);
  const logits = outputs[outputs.length - 1];
  if (!logits) throw new HeadSpecError(`head ${spec.name}: needs at least one dense layer`);
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const probs = new Float32Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += probs[i] = Math.exp(logits[i]! - max);
  for (let i = 0; i < probs.length; i++) probs[i]! /= sum;
  return probs;
}

export const roundHalfAway = (v: number) => Math.sign(v) * Math.round(Math.abs(v));
export const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** Asymmetric int8 parameters for a float range; the range is widened to hold 0 so zero is exact. */
export function activationQuantization(range: { min: number; max: number }, relu: boolean): { scale: number; zeroPoint: number } {
  // A fused RELU clamps at 0, so no code is spent on negatives.
  const min = relu ? 0 : Math.min(range.min, 0);
  const max = Math.max(range.max, 0);
  // An output that never moves off 0 still needs a positive scale; any will do.
  // Scales are stored as float32, so everything downstream uses the stored value.
  const scale = Math.fround(max - min > 0 ? (max - min) / (QMAX - QMIN) : 1 / (QMAX - QMIN));
  const zeroPoint = clamp(roundHalfAway(QMIN - min / scale), QMIN, QMAX);
  return { scale, zeroPoint };
}

/** Symmetric per-tensor int8 weights (zero point 0, codes in [-127, 127]). */
function quantizeWeights(weights: Float32Array): { data: Int8Array; scale: number } {
  let maxAbs = 0;
  for (const w of weights) maxAbs = Math.max(maxAbs, Math.abs(w));
  const scale = Math.fround(maxAbs > 0 ? maxAbs / WEIGHT_QMAX : 1);
  const data = new Int8Array(weights.length);
  for (let i = 0; i < weights.length; i++) data[i] = clamp(roundHalfAway(weights[i]! / scale), -WEIGHT_QMAX, WEIGHT_QMAX);
  return { data, scale };
}

/**
 * Builds the int8 TFLite model of a head. Its single input is the seam tensor
 * with the given shape, scale and zero point; its single output is int8
 * probabilities (scale 1/256, zero point -128).
 */
export function buildInt8Head(spec: HeadSpec): TfliteModel {
  const plan = poolPlan(spec.input, spec.pool.grid);
  const features = plan.outH * plan.outW * plan.channels;
  checkLayers(spec, plan);

  const m = new ModelAssembler();

  const { zeroPoint: inZero } = spec.input;
  const inScale = Math.fround(spec.input.scale);
  const input = m.tensor({ name: `${spec.name}/input`, shape: [...spec.input.shape], type: TensorType.INT8, quantization: perTensor(inScale, inZero) });
  let current = input;

  if (plan.h && plan.w) {
    // int8 average pooling must keep its input's scale and zero point.
    const pooled = m.tensor({
      name: `${spec.name}/pool`,
      shape: [1, plan.outH, plan.outW, plan.channels],
      type: TensorType.INT8,
      quantization: perTensor(inScale, inZero),
    });
    m.operator(BuiltinOperator.AVERAGE_POOL_2D, 2, {
      inputs: [current],
      outputs: [pooled],
      builtinOptions: makeOptions('Pool2DOptions', {
        padding: Padding.VALID,
        strideH: plan.h.stride,
        strideW: plan.w.stride,
        filterHeight: plan.h.filter,
        filterWidth: plan.w.filter,
        fusedActivationFunction: ActivationFunctionType.NONE,
      }),
    });
    current = pooled;
  }

  // Shape given as a constant input, the form the converter emits; RESHAPE also keeps quantization.
  const shape = m.tensor({ name: `${spec.name}/flatten/shape`, shape: [2], type: TensorType.INT32 }, int32Bytes([1, features]));
  const flat = m.tensor({ name: `${spec.name}/flatten`, shape: [1, features], type: TensorType.INT8, quantization: perTensor(inScale, inZero) });
  m.operator(BuiltinOperator.RESHAPE, 1, { inputs: [current, shape], outputs: [flat] });
  current = flat;
  let currentScale = inScale;

  spec.layers.forEach((layer, i) => {
    const prefix = `${spec.name}/dense${i}`;
    const relu = layer.activation === 'relu';
    const w = quantizeWeights(layer.weights);
    const weights = m.tensor(
      { name: `${prefix}/weights`, shape: [layer.outSize, layer.inSize], type: TensorType.INT8, quantization: perTensor(w.scale, 0) },
      new Uint8Array(w.data.buffer),
    );
    // The kernel adds the bias to the int32 accumulator, hence its scale.
    const biasScale = Math.fround(currentScale * w.scale);
    const bias = new Int32Array(layer.outSize);
    for (let o = 0; o < layer.outSize; o++) bias[o] = clamp(roundHalfAway(layer.bias[o]! / biasScale), -0x7fffffff, 0x7fffffff);
    const biasTensor = m.tensor(
      { name: `${prefix}/bias`, shape: [layer.outSize], type: TensorType.INT32, quantization: perTensor(biasScale, 0) },
      int32Bytes(bias),
    );
    const q = activationQuantization(spec.activationRanges[i]!, relu);
    const out = m.tensor({ name: `${prefix}/${i === spec.layers.length - 1 ? 'logits' : 'output'}`, shape: [1, layer.outSize], type: TensorType.INT8, quantization: perTensor(q.scale, q.zeroPoint) });
    m.operator(BuiltinOperator.FULLY_CONNECTED, 4, {
      inputs: [current, weights, biasTensor],
      outputs: [out],
      builtinOptions: makeOptions('FullyConnectedOptions', {
        fusedActivationFunction: relu ? ActivationFunctionType.RELU : ActivationFunctionType.NONE,
      }),
    });
    current = out;
    currentScale = q.scale;
  });

  const classes = spec.layers[spec.layers.length - 1]!.outSize;
  const probs = m.tensor({ name: `${spec.name}/probabilities`, shape: [1, classes], type: TensorType.INT8, quantization: perTensor(SOFTMAX_SCALE, SOFTMAX_ZERO_POINT) });
  m.operator(BuiltinOperator.SOFTMAX, 2, { inputs: [current], outputs: [probs], builtinOptions: makeOptions('SoftmaxOptions', { beta: 1 }) });

  return m.model(spec.name, `edge-exit int8 exit head ${spec.name}`, [input], [probs]);
}
