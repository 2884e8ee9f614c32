// Rewrites a uint8 (TF1 quantization-aware, asymmetric) model as a full-integer
// int8 one, the form whose kernels XNNPACK runs through its QS8 path. The bundled
// TFLite's XNNPACK refuses every uint8 (QU8) convolution (docs/benchmarks.md,
// "CPU path"), so a uint8 model would otherwise run its layers on the stock kernels.
//
// Activations are exact: int8 = uint8 - 128 with the zero point moved by 128, the
// scale unchanged. Weights become symmetric per-channel int8 (the int8 scheme has no
// weight zero point): a channel whose centred values fit in [-127, 127] keeps them
// and its scale exactly; a wider one is scaled down to fit, rounding each weight by
// at most half a step, and its bias follows its new scale. The model keeps its uint8
// input and output through QUANTIZE ops at both ends, like a converter's int8 model.
import { BuiltinOperator, TensorType, type Operator, type Tensor, type TfliteModel } from '../../agent/tflite/model.js';

/** Axis of the output channels of each weighted op's filter (TFLite layouts: OHWI, 1HWO, OI). */
const CHANNEL_AXIS = new Map<number, number>([
  [BuiltinOperator.CONV_2D, 0],
  [BuiltinOperator.DEPTHWISE_CONV_2D, 3],
  [BuiltinOperator.FULLY_CONNECTED, 0],
]);

/** Op versions that declare int8 (per-channel) support, as TFLite's converter writes them. */
const INT8_VERSIONS = new Map<number, number>([
  [BuiltinOperator.CONV_2D, 3],
  [BuiltinOperator.DEPTHWISE_CONV_2D, 3],
  [BuiltinOperator.FULLY_CONNECTED, 4],
  [BuiltinOperator.ADD, 2],
  [BuiltinOperator.AVERAGE_POOL_2D, 2],
  [BuiltinOperator.MAX_POOL_2D, 2],
  [BuiltinOperator.SOFTMAX, 2],
  [BuiltinOperator.RESHAPE, 1],
  [BuiltinOperator.CONCATENATION, 2],
  [BuiltinOperator.MEAN, 2],
  [BuiltinOperator.PAD, 2],
  [BuiltinOperator.QUANTIZE, 2],
]);

export class Uint8ConversionError extends Error {}

export interface Uint8ConversionReport {
  /** Weight tensors converted, and how many of their channels had to be rescaled to fit int8. */
  weightTensors: number;
  channels: number;
  rescaledChannels: number;
  /** Largest weight rounding, in steps of the channel's new scale (at most 0.5). */
  maxRoundingSteps: number;
}

function uint8Quantized(tensor: Tensor): boolean {
  return tensor.type === TensorType.UINT8 && (tensor.quantization?.scale.length ?? 0) > 0;
}

function channelSlices(shape: readonly number[], axis: number): { count: number; indexOf: (flat: number) => number } {
  const count = shape[axis]!;
  const inner = shape.slice(axis + 1).reduce((n, d) => n * d, 1);
  return { count, indexOf: (flat) => Math.floor(flat / inner) % count };
}

/** Returns the converted model (a new object; the input is not changed) and what the weights lost. */
export function convertUint8ToInt8(source: TfliteModel): { model: TfliteModel; report: Uint8ConversionReport } {
  const model: TfliteModel = structuredClone(source);
  if (model.subgraphs.length !== 1) throw new Uint8ConversionError(`a uint8 model with ${model.subgraphs.length} subgraphs is not handled (only one)`);
  const graph = model.subgraphs[0]!;
  const report: Uint8ConversionReport = { weightTensors: 0, channels: 0, rescaledChannels: 0, maxRoundingSteps: 0 };
  const builtin = (op: Operator) => model.operatorCodes[op.opcodeIndex]!.builtinCode;
  const readers = new Map<number, number>();
  for (const op of graph.operators) for (const t of op.inputs) if (t >= 0) readers.set(t, (readers.get(t) ?? 0) + 1);

  const done = new Set<number>();
  for (const op of graph.operators) {
    const axis = CHANNEL_AXIS.get(builtin(op));
    const weightsIndex = op.inputs[1] ?? -1;
    const weights = graph.tensors[weightsIndex];
    if (axis === undefined || !weights || !uint8Quantized(weights)) continue;
    if ((readers.get(weightsIndex) ?? 0) > 1) throw new Uint8ConversionError(`weights ${weights.name} are shared by several ops`);
    const input = graph.tensors[op.inputs[0]!]!;
    const q = weights.quantization!;
    if (q.scale.length !== 1) throw new Uint8ConversionError(`uint8 weights ${weights.name} are not per-tensor`);
    const data = model.buffers[weights.buffer];
    if (!data || data.length === 0) throw new Uint8ConversionError(`uint8 weights ${weights.name} are not constant`);
    const zero = q.zeroPoint[0] ?? 0;
    const scale = q.scale[0]!;
    const { count, indexOf } = channelSlices(weights.shape, axis);
    const widest = new Array<number>(count).fill(0);
    data.forEach((v, i) => {
      const c = indexOf(i);
      widest[c] = Math.max(widest[c]!, Math.abs(v - zero));
    });
    const shrink = widest.map((w) => (w > 127 ? 127 / w : 1));
    const out = new Int8Array(data.length);
    data.forEach((v, i) => {
      const exact = (v - zero) * shrink[indexOf(i)]!;
      const rounded = Math.round(exact);
      report.maxRoundingSteps = Math.max(report.maxRoundingSteps, Math.abs(rounded - exact));
      out[i] = rounded;
    });
    model.buffers[weights.buffer] = new Uint8Array(out.buffer);
    const scales = shrink.map((f) => scale / f);
    weights.type = TensorType.INT8;
    weights.quantization = { scale: scales, zeroPoint: scales.map(() => 0), quantizedDimension: axis };
    report.weightTensors += 1;
    report.channels += count;
    report.rescaledChannels += shrink.filter((f) => f !== 1).length;
    done.add(weightsIndex);

    const biasIndex = op.inputs[2] ?? -1;
    const bias = graph.tensors[biasIndex];
    if (bias) {
      if ((readers.get(biasIndex) ?? 0) > 1) throw new Uint8ConversionError(`bias ${bias.name} is shared by several ops`);
      const raw = model.buffers[bias.buffer]!;
      const values = new Int32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      if (values.length !== count) throw new Uint8ConversionError(`bias ${bias.name} has ${values.length} values for ${count} channels`);
      const inputScale = input.quantization!.scale[0]!;
      values.forEach((b, c) => (values[c] = Math.round(b * shrink[c]!)));
      model.buffers[bias.buffer] = new Uint8Array(values.buffer);
      bias.quantization = { scale: scales.map((s) => inputScale * s), zeroPoint: scales.map(() => 0), quantizedDimension: 0 };
      done.add(biasIndex);
    }
  }

  graph.tensors.forEach((tensor, index) => {
    if (done.has(index) || !uint8Quantized(tensor)) return;
    const q = tensor.quantization!;
    if (q.zeroPoint.length > 1) throw new Uint8ConversionError(`uint8 tensor ${tensor.name} is quantized per channel`);
    const data = model.buffers[tensor.buffer];
    if (data && data.length > 0) model.buffers[tensor.buffer] = Uint8Array.from(data, (v) => (v - 128) & 0xff);
    tensor.type = TensorType.INT8;
    tensor.quantization = { ...q, zeroPoint: q.zeroPoint.map((z) => z - 128) };
  });

  // uint8 in and out, as before: QUANTIZE ops convert at the edges.
  let quantizeCode = model.operatorCodes.findIndex((c) => c.builtinCode === BuiltinOperator.QUANTIZE);
  if (quantizeCode < 0) {
    model.operatorCodes.push({ builtinCode: BuiltinOperator.QUANTIZE, version: 2 });
    quantizeCode = model.operatorCodes.length - 1;
  }
  const edge = (index: number, suffix: string): number => {
    const inner = graph.tensors[index]!;
    const q = inner.quantization!;
    graph.tensors.push({ ...structuredClone(inner), name: `${inner.name}_${suffix}`, type: TensorType.UINT8, buffer: 0, quantization: { ...q, zeroPoint: q.zeroPoint.map((z) => z + 128) } });
    return graph.tensors.length - 1;
  };
  const convertedEdge = (index: number) => graph.tensors[index]!.type === TensorType.INT8 && source.subgraphs[0]!.tensors[index]!.type === TensorType.UINT8;
  graph.inputs = graph.inputs.map((index) => {
    if (!convertedEdge(index)) return index;
    const outer = edge(index, 'uint8');
    graph.operators.unshift({ opcodeIndex: quantizeCode, inputs: [outer], outputs: [index], builtinOptions: { type: 'QuantizeOptions' } });
    return outer;
  });
  graph.outputs = graph.outputs.map((index) => {
    if (!convertedEdge(index)) return index;
    const outer = edge(index, 'uint8');
    graph.operators.push({ opcodeIndex: quantizeCode, inputs: [index], outputs: [outer], builtinOptions: { type: 'QuantizeOptions' } });
    return outer;
  });
  for (const code of model.operatorCodes) {
    const version = INT8_VERSIONS.get(code.builtinCode);
    if (version !== undefined) code.version = Math.max(code.version, version);
  }
  return { model, report };
}
