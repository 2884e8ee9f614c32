/**
 * Turning an exit head's output tensor into a probability vector, and the
 * confidence scores the exit policies read from it.
 */

// One argmax for the whole agent, so exits and the final classifier break ties the same way.
export { argmax } from '../inference/top-k.js';

type QuantizedData = Int8Array | Uint8Array;

function checkQuantization(scale: number, zeroPoint: number): void {
  if (!(Number.isFinite(scale) && scale > 0)) throw new RangeError(`scale = ${scale} is not a finite number > 0`);
  if (!Number.isFinite(zeroPoint)) throw new RangeError(`zeroPoint = ${zeroPoint} is not a finite number`);
}

function outputFor(length: number, out: Float32Array | undefined): Float32Array {
  if (out === undefined) return new Float32Array(length);
  if (out.length !== length) throw new RangeError(`out has length ${out.length}, expected ${length}`);
  return out;
}

/**
 * Probabilities from a head whose last op is an int8/uint8 softmax. The
 * dequantized values sum to 1 only up to rounding (±K/2 steps of `scale`), so
 * they are renormalized: otherwise a head's confidence would depend on its
 * class count and quantization and one threshold would mean different things at
 * different exits.
 */
export function dequantizeSoftmax(data: QuantizedData, scale: number, zeroPoint: number, out?: Float32Array): Float32Array {
  checkQuantization(scale, zeroPoint);
  const result = outputFor(data.length, out);
  let sum = 0;
  for (let i = 0; i < data.length; i++) {
    const value = Math.max(0, scale * (data[i]! - zeroPoint));
    result[i] = value;
    sum += value;
  }
  if (sum > 0) for (let i = 0; i < result.length; i++) result[i] = result[i]! / sum;
  else result.fill(1 / Math.max(1, result.length)); // every class quantized to 0: no information, so uniform
  return result;
}

/**
 * Probabilities from a head that outputs logits (quantized, or float with the
 * default scale 1 and zero point 0). Subtracting the largest logit first keeps
 * exp() from overflowing; sums are taken in float64.
 */
export function softmaxFromLogits(
  data: QuantizedData | Float32Array,
  scale = 1,
  zeroPoint = 0,
  out?: Float32Array,
): Float32Array {
  checkQuantization(scale, zeroPoint);
  const result = outputFor(data.length, out);
  if (data.length === 0) return result;
  let largest = -Infinity;
  for (let i = 0; i < data.length; i++) largest = Math.max(largest, scale * (data[i]! - zeroPoint));
  if (!Number.isFinite(largest)) throw new RangeError(`logits hold a non-finite value (${largest})`);
  const exps = new Float64Array(data.length);
  let sum = 0;
  for (let i = 0; i < data.length; i++) {
    exps[i] = Math.exp(scale * (data[i]! - zeroPoint) - largest);
    sum += exps[i]!;
  }
  for (let i = 0; i < data.length; i++) result[i] = exps[i]! / sum;
  return result;
}

export function maxProbability(probabilities: ArrayLike<number>): number {
  let largest = 0;
  for (let i = 0; i < probabilities.length; i++) largest = Math.max(largest, probabilities[i]!);
  return largest;
}

/**
 * Shannon entropy divided by its maximum ln(K): 0 for a one-hot vector, 1 for
 * the uniform one, whatever the class count.
 */
export function normalizedEntropy(probabilities: ArrayLike<number>): number {
  const classes = probabilities.length;
  if (classes <= 1) return 0;
  let entropy = 0;
  for (let i = 0; i < classes; i++) {
    const p = probabilities[i]!;
    if (p > 0) entropy -= p * Math.log(p);
  }
  // Float32 rounding can put the sum a hair outside the range.
  return Math.min(1, Math.max(0, entropy / Math.log(classes)));
}
