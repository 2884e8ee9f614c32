// Copies a contiguous run of operators out of a model's main subgraph into a
// model of its own, keeping only the tensors, buffers and operator codes that
// run uses, re-indexed densely.
import type { Metadata, Operator, OperatorCode, Tensor, TfliteModel } from '../../agent/tflite/model.js';

export interface ExtractRange {
  /** First and last operator (inclusive) of the main subgraph to keep. */
  firstOp: number;
  lastOp: number;
  /** Original tensor indices of the new model's inputs and outputs. */
  inputs: number[];
  outputs: number[];
  description: string;
}

// Only metadata that stays true for any part of the model is carried over:
// TFLITE_METADATA, for one, describes the whole model's inputs and outputs.
const KEPT_METADATA = new Set(['min_runtime_version']);

export function extractSubmodel(model: TfliteModel, range: ExtractRange): TfliteModel {
  const sg = model.subgraphs[0]!;
  const ops = sg.operators.slice(range.firstOp, range.lastOp + 1);
  checkSelfContained(model, ops, range);

  const tensorMap = new Map<number, number>();
  const used = new Set<number>([...range.inputs, ...range.outputs]);
  for (const op of ops) {
    for (const t of [...op.inputs, ...op.outputs, ...(op.intermediates ?? [])]) if (t >= 0) used.add(t);
  }
  // Original order, so the sub-model reads like the original.
  const tensorOrder = [...used].sort((a, b) => a - b);
  tensorOrder.forEach((t, i) => tensorMap.set(t, i));

  const buffers: Uint8Array[] = [new Uint8Array(0)];
  const bufferMap = new Map<number, number>();
  const mapBuffer = (b: number): number => {
    const data = model.buffers[b];
    // Activations point at the sentinel: an empty buffer means "no constant data".
    if (!data || data.length === 0) return 0;
    let mapped = bufferMap.get(b);
    if (mapped === undefined) {
      mapped = buffers.length;
      buffers.push(data);
      bufferMap.set(b, mapped);
    }
    return mapped;
  };
  const tensors: Tensor[] = tensorOrder.map((t) => {
    const copy = structuredClone(sg.tensors[t]!);
    copy.buffer = mapBuffer(copy.buffer);
    return copy;
  });

  const codeMap = new Map<number, number>();
  const operatorCodes: OperatorCode[] = [];
  for (const op of ops) {
    if (!codeMap.has(op.opcodeIndex)) {
      codeMap.set(op.opcodeIndex, operatorCodes.length);
      operatorCodes.push({ ...model.operatorCodes[op.opcodeIndex]! });
    }
  }
  const remap = (t: number) => (t < 0 ? t : tensorMap.get(t)!);
  const operators: Operator[] = ops.map((op) => {
    const copy: Operator = {
      opcodeIndex: codeMap.get(op.opcodeIndex)!,
      inputs: op.inputs.map(remap),
      outputs: op.outputs.map(remap),
    };
    if (op.builtinOptions) copy.builtinOptions = structuredClone(op.builtinOptions);
    if (op.customOptions) copy.customOptions = op.customOptions;
    if (op.intermediates) copy.intermediates = op.intermediates.map(remap);
    return copy;
  });

  const metadata: Metadata[] = [];
  for (const m of model.metadata) {
    if (KEPT_METADATA.has(m.name)) {
      metadata.push({ name: m.name, buffer: buffers.length });
      buffers.push(model.buffers[m.buffer]!);
    }
  }

  const out: TfliteModel = {
    version: model.version,
    description: range.description,
    operatorCodes,
    subgraphs: [
      {
        ...(sg.name !== undefined ? { name: sg.name } : {}),
        tensors,
        inputs: range.inputs.map(remap),
        outputs: range.outputs.map(remap),
        operators,
      },
    ],
    buffers,
    metadata,
  };
  return out;
}

/** Every activation an operator reads must come from inside the range or be a declared input. */
function checkSelfContained(model: TfliteModel, ops: Operator[], range: ExtractRange): void {
  const sg = model.subgraphs[0]!;
  const available = new Set(range.inputs);
  for (const op of ops) {
    for (const t of op.inputs) {
      if (t < 0 || available.has(t)) continue;
      if ((model.buffers[sg.tensors[t]!.buffer]?.length ?? 0) > 0) continue;
      throw new Error(
        `cannot cut operators ${range.firstOp}..${range.lastOp} out on their own: operator reads tensor ${t} (${sg.tensors[t]!.name.split(';')[0]}) from outside the range`,
      );
    }
    for (const t of op.outputs) available.add(t);
  }
  for (const t of range.outputs) {
    if (!available.has(t)) throw new Error(`operators ${range.firstOp}..${range.lastOp} do not produce output tensor ${t}`);
  }
}
