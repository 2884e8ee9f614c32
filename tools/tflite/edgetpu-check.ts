// Checks a model against Coral's documented requirements for the Edge TPU
// ("TensorFlow models on the Edge TPU"), without the compiler: 8-bit quantized
// tensors, sizes fixed at compile time, parameters constant, only the 3
// innermost dimensions larger than 1, and the supported operations with their
// limitations. The compiler maps ops in execution order up to the first it
// cannot, and that op and everything after it run on the CPU; this says which
// op that is, and why.
import { EDGETPU_CUSTOM_OP, isEdgeTpuModel, operatorCodeName, TensorType, tensorTypeName, type Operator, type Tensor, type TfliteModel } from '../../agent/tflite/model.js';

export interface EdgeTpuOpVerdict {
  index: number;
  op: string;
  onTpu: boolean;
  /** Why this op stays on the CPU; for ops after the split, that they come after it. */
  reason?: string;
}

export interface EdgeTpuReport {
  /** Reasons the compiler would refuse the whole model. */
  blockers: string[];
  /** Things worth knowing that do not keep an op off the TPU. */
  notes: string[];
  ops: EdgeTpuOpVerdict[];
  /** Index of the first op left on the CPU: where the compiler splits the graph. */
  splitAt?: number;
  onTpu: number;
  onCpu: number;
  /** Bytes of constant data (weights, biases) of the ops the TPU would run. */
  parameterBytes: number;
  /** Whether the whole model would run on the Edge TPU. */
  passes: boolean;
}

/** Roughly what of the Edge TPU's 8 MB of SRAM the compiler can give parameters (it reports about 7-8 MiB free on an empty device). */
const ON_CHIP_PARAMETER_BYTES = 7 * 2 ** 20;
const SOFTMAX_MAX_ELEMENTS = 16_000;

type OpCheck = (op: Operator, model: TfliteModel) => string | undefined;

const tensorsOf = (model: TfliteModel) => model.subgraphs[0]!.tensors;
const isConstant = (model: TfliteModel, index: number) => (model.buffers[tensorsOf(model)[index]?.buffer ?? 0]?.length ?? 0) > 0;
/** Dimensions larger than 1. */
const bigDims = (shape: readonly number[]) => shape.filter((d) => d > 1).length;

const noFusedActivation: OpCheck = (op) => {
  const fused = (op.builtinOptions as { fusedActivationFunction?: number } | undefined)?.fusedActivationFunction ?? 0;
  return fused !== 0 ? 'has a fused activation function, which the Edge TPU does not take on this op' : undefined;
};

const sameDilation: OpCheck = (op) => {
  const o = op.builtinOptions as { dilationWFactor?: number; dilationHFactor?: number } | undefined;
  return (o?.dilationWFactor ?? 1) !== (o?.dilationHFactor ?? 1) ? `uses dilation ${o?.dilationWFactor}x${o?.dilationHFactor}; x and y must be the same` : undefined;
};

/** The constant int32 axes of a reduction, when it has them. */
function axesOf(op: Operator, model: TfliteModel): number[] | undefined {
  const index = op.inputs[1];
  if (index === undefined || index < 0 || !isConstant(model, index)) return undefined;
  const data = model.buffers[tensorsOf(model)[index]!.buffer]!;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return Array.from({ length: data.byteLength / 4 }, (_, i) => view.getInt32(i * 4, true));
}

/** Reductions: not over the batch; a reduction over channels (z) needs them in multiples of 4. */
const reduction: OpCheck = (op, model) => {
  const input = tensorsOf(model)[op.inputs[0]!]!;
  const rank = input.shape.length;
  const axes = axesOf(op, model);
  if (!axes) return 'its axes are not constant at compile time';
  const normalized = axes.map((a) => (a < 0 ? a + rank : a));
  if (normalized.includes(0) && rank > 1) return 'reduces over the batch dimension';
  if (normalized.includes(rank - 1) && input.shape[rank - 1]! % 4 !== 0) return `reduces over ${input.shape[rank - 1]} channels, not a multiple of 4`;
  return undefined;
};

const notOnBatch = (what: string): OpCheck => (op, model) => {
  const input = tensorsOf(model)[op.inputs[0]!]!;
  const output = tensorsOf(model)[op.outputs[0]!]!;
  return input.shape[0] !== output.shape[0] ? `${what} along the batch dimension` : undefined;
};

/** Coral's supported operations and their documented limitations. */
const SUPPORTED: Record<string, OpCheck | undefined> = {
  ADD: undefined,
  AVERAGE_POOL_2D: noFusedActivation,
  CONCATENATION: (op, model) => {
    const fused = noFusedActivation(op, model);
    if (fused) return fused;
    const constant = op.inputs.filter((i) => i >= 0 && isConstant(model, i));
    if (constant.length > 0 && op.inputs.length !== 2) return 'has a constant input among more than 2 inputs (only a 2-input zero padding is taken)';
    return undefined;
  },
  CONV_2D: sameDilation,
  DEPTHWISE_CONV_2D: sameDilation,
  EXPAND_DIMS: undefined,
  FULLY_CONNECTED: (op, model) => {
    const format = (op.builtinOptions as { weightsFormat?: number } | undefined)?.weightsFormat ?? 0;
    if (format !== 0) return 'uses a non-default weights format';
    const output = tensorsOf(model)[op.outputs[0]!]!;
    return bigDims(output.shape) > 1 ? `outputs ${output.shape.join('x')}; the output must be one-dimensional` : undefined;
  },
  L2_NORMALIZATION: undefined,
  LOGISTIC: undefined,
  LSTM: undefined,
  UNIDIRECTIONAL_SEQUENCE_LSTM: undefined,
  MAXIMUM: undefined,
  MAX_POOL_2D: noFusedActivation,
  MEAN: reduction,
  MINIMUM: undefined,
  MUL: undefined,
  PACK: notOnBatch('packs'),
  PAD: notOnBatch('pads'),
  PRELU: undefined,
  QUANTIZE: undefined,
  REDUCE_MAX: reduction,
  REDUCE_MIN: reduction,
  RELU: undefined,
  RELU6: undefined,
  RELU_N1_TO_1: undefined,
  RESHAPE: undefined,
  RESIZE_BILINEAR: undefined,
  RESIZE_NEAREST_NEIGHBOR: undefined,
  RSQRT: undefined,
  SLICE: undefined,
  SOFTMAX: (op, model) => {
    const input = tensorsOf(model)[op.inputs[0]!]!;
    const elements = input.shape.reduce((n, d) => n * d, 1);
    if (bigDims(input.shape) > 1) return `has input ${input.shape.join('x')}; only a one-dimensional input is taken`;
    return elements > SOFTMAX_MAX_ELEMENTS ? `has ${elements} elements; at most ${SOFTMAX_MAX_ELEMENTS}` : undefined;
  },
  SPACE_TO_DEPTH: undefined,
  SPLIT: undefined,
  SQUARED_DIFFERENCE: undefined,
  SQUEEZE: undefined,
  STRIDED_SLICE: undefined,
  SUB: undefined,
  SUM: reduction,
  TANH: undefined,
  TRANSPOSE: undefined,
  TRANSPOSE_CONV: undefined,
};

/** Ops whose weights and bias the compiler must see as constants. */
const PARAMETERIZED = new Set(['CONV_2D', 'DEPTHWISE_CONV_2D', 'FULLY_CONNECTED', 'TRANSPOSE_CONV']);
const EIGHT_BIT = new Set<number>([TensorType.INT8, TensorType.UINT8]);

function describe(tensor: Tensor): string {
  return `${tensor.name || 'unnamed'} (${tensorTypeName(tensor.type)} ${tensor.shape.join('x') || 'scalar'})`;
}

/** Why the Edge TPU cannot run this op, or undefined when it can. */
function opProblem(op: Operator, model: TfliteModel): string | undefined {
  const name = operatorCodeName(model.operatorCodes[op.opcodeIndex]!);
  if (!(name in SUPPORTED)) return `${name} is not among the operations the Edge TPU supports`;
  const tensors = tensorsOf(model);
  const used = [...op.inputs, ...op.outputs].filter((i) => i >= 0);
  for (const i of used) {
    const tensor = tensors[i]!;
    // Constant int32 tensors (biases, shapes, axes) are parameters, not data.
    if (isConstant(model, i) && tensor.type === TensorType.INT32) continue;
    if (!EIGHT_BIT.has(tensor.type)) return `works on ${describe(tensor)}: the Edge TPU takes only 8-bit quantized tensors`;
    if (!tensor.quantization || tensor.quantization.scale.length === 0) return `${describe(tensor)} is not quantized`;
  }
  // The rank rule is about the data flowing through (filters are 4-D by nature).
  for (const i of used.filter((t) => !isConstant(model, t))) {
    const shape = tensors[i]!.shape;
    if (shape.length > 3 && shape.slice(0, -3).some((d) => d > 1)) return `${describe(tensors[i]!)} has a dimension larger than 1 outside the 3 innermost`;
  }
  if (PARAMETERIZED.has(name)) {
    const parameter = op.inputs.slice(1).find((i) => i >= 0 && !isConstant(model, i));
    if (parameter !== undefined) return `its parameter ${describe(tensors[parameter]!)} is not constant at compile time`;
  }
  return SUPPORTED[name]?.(op, model);
}

export function checkEdgeTpu(model: TfliteModel): EdgeTpuReport {
  const sg = model.subgraphs[0]!;
  const blockers: string[] = [];
  const notes: string[] = [];
  if (isEdgeTpuModel(model)) notes.push(`already compiled for the Edge TPU (it holds ${EDGETPU_CUSTOM_OP}); the ops outside it are checked as any others`);
  const dynamic = sg.tensors.filter((t) => t.shapeSignature?.some((d) => d < 0) || t.shape.some((d) => d <= 0));
  if (dynamic.length > 0) {
    blockers.push(
      `dynamic-sized tensors (${dynamic.slice(0, 3).map((t) => `${t.name || 'unnamed'} [${(t.shapeSignature ?? t.shape).join(', ')}]`).join(', ')}${dynamic.length > 3 ? ', ...' : ''}): ` +
        'tensor sizes must be fixed at compile time; convert the model with a fixed input size',
    );
  }
  if (model.subgraphs.length > 1) notes.push(`${model.subgraphs.length - 1} more subgraph(s) (control flow): only the first is considered, and the others run on the CPU`);

  const ops: EdgeTpuOpVerdict[] = [];
  let splitAt: number | undefined;
  let parameterBytes = 0;
  sg.operators.forEach((op, index) => {
    const name = operatorCodeName(model.operatorCodes[op.opcodeIndex]!);
    if (name === EDGETPU_CUSTOM_OP) {
      ops.push({ index, op: name, onTpu: true });
      return;
    }
    if (splitAt !== undefined) {
      ops.push({ index, op: name, onTpu: false, reason: `after the split at op ${splitAt}: the compiler maps one part of the graph only` });
      return;
    }
    const problem = blockers.length > 0 ? 'the model does not compile (see above)' : opProblem(op, model);
    if (problem) {
      splitAt = index;
      ops.push({ index, op: name, onTpu: false, reason: problem });
      return;
    }
    parameterBytes += op.inputs.filter((i) => i >= 0 && isConstant(model, i)).reduce((n, i) => n + model.buffers[sg.tensors[i]!.buffer]!.length, 0);
    ops.push({ index, op: name, onTpu: true });
  });
  if (parameterBytes > ON_CHIP_PARAMETER_BYTES) {
    notes.push(`${(parameterBytes / 2 ** 20).toFixed(1)} MiB of parameters: more than the Edge TPU caches on chip (about 7 MiB), so the rest is streamed from host memory on every inference`);
  }
  const onTpu = ops.filter((o) => o.onTpu).length;
  const report: EdgeTpuReport = { blockers, notes, ops, onTpu, onCpu: ops.length - onTpu, parameterBytes, passes: blockers.length === 0 && onTpu === ops.length };
  if (splitAt !== undefined) report.splitAt = splitAt;
  return report;
}

/** "CONV_2D x8, ADD x1": how many of each op, in order of first appearance. */
function opCounts(ops: readonly EdgeTpuOpVerdict[]): string {
  const counts = new Map<string, number>();
  for (const o of ops) counts.set(o.op, (counts.get(o.op) ?? 0) + 1);
  return [...counts].map(([op, n]) => `${op} x${n}`).join(', ');
}

export function formatEdgeTpuReport(label: string, report: EdgeTpuReport): string {
  const lines: string[] = [];
  const verdict = report.blockers.length > 0 ? 'would not compile' : report.passes ? 'every op would run on the Edge TPU' : `${report.onTpu} of ${report.ops.length} ops on the Edge TPU, ${report.onCpu} left on the CPU`;
  lines.push(`${label}: ${verdict}: ${report.ops.length} op${report.ops.length === 1 ? '' : 's'} (${opCounts(report.ops)}), ${(report.parameterBytes / 1024).toFixed(0)} KiB of parameters on the TPU`);
  for (const b of report.blockers) lines.push(`  refused: ${b}`);
  for (const n of report.notes) lines.push(`  note: ${n}`);
  if (report.splitAt !== undefined) {
    const first = report.ops[report.splitAt]!;
    lines.push(`  split at op ${first.index} (${first.op}): it and the ${report.ops.length - report.splitAt - 1} op(s) after it run on the CPU`);
    lines.push(`    op ${first.index} ${first.op}: ${first.reason}`);
    const after = report.ops.slice(report.splitAt + 1).filter((op) => !op.onTpu);
    const range = after.length === 1 ? `op ${after[0]!.index}` : `ops ${after[0]?.index}-${after.at(-1)?.index}`;
    if (after.length > 0) lines.push(`    ${range} (${opCounts(after)}): after the split, left on the CPU whatever they are`);
  }
  return lines.join('\n');
}
