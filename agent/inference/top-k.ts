import type { TensorData } from '../runtime/interpreter.js';

/** Index of the largest value; ties go to the lowest index, as in TFLite's reference classifiers. */
export function argmax(values: TensorData): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}
