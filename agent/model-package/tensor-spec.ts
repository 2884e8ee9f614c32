import type { TfliteModel } from '../tflite/model.js';
import { TensorType } from '../tflite/model.js';
import type { TensorSpec } from './manifest.js';

const DTYPE_NAMES: Partial<Record<number, TensorSpec['dtype']>> = {
  [TensorType.INT8]: 'int8',
  [TensorType.UINT8]: 'uint8',
  [TensorType.FLOAT32]: 'float32',
  [TensorType.INT32]: 'int32',
};

/** The manifest's description of one graph input or output, read from the model itself. */
export function tensorSpecOf(model: TfliteModel, which: 'input' | 'output'): TensorSpec {
  const subgraph = model.subgraphs[0]!;
  const index = (which === 'input' ? subgraph.inputs : subgraph.outputs)[0]!;
  const tensor = subgraph.tensors[index]!;
  const dtype = DTYPE_NAMES[tensor.type];
  if (!dtype) throw new Error(`tensor ${tensor.name} has a type (${tensor.type}) that packages do not carry`);
  const spec: TensorSpec = { shape: [...tensor.shape], dtype };
  const q = tensor.quantization;
  if (q && q.scale.length > 0) {
    spec.scale = q.scale[0]!;
    spec.zeroPoint = q.zeroPoint[0] ?? 0;
  }
  return spec;
}

/** Differences between two specs, in words; empty when they agree. */
export function describeSpecMismatch(expected: TensorSpec, actual: TensorSpec): string[] {
  const problems: string[] = [];
  if (expected.shape.join('x') !== actual.shape.join('x')) problems.push(`shape ${actual.shape.join('x')} (expected ${expected.shape.join('x')})`);
  if (expected.dtype !== actual.dtype) problems.push(`type ${actual.dtype} (expected ${expected.dtype})`);
  if (expected.scale !== actual.scale) problems.push(`scale ${actual.scale} (expected ${expected.scale})`);
  if (expected.zeroPoint !== actual.zeroPoint) problems.push(`zero point ${actual.zeroPoint} (expected ${expected.zeroPoint})`);
  return problems;
}
