// A structured, JSON-friendly description of a model and its terminal rendering,
// for `edge-exit inspect`.
import { findCutPoints } from '../segmenter/cut-points.js';
import { operatorMacsList } from './macs.js';
import { BuiltinOperator, operatorCodeName, tensorTypeName, type Tensor, type TfliteModel } from '../../agent/tflite/model.js';

export interface TensorDescription {
  index: number;
  name: string;
  shape: number[];
  type: string;
  /** Per-tensor or per-channel parameters, when the tensor is quantized. */
  quantization?: { scale: number[]; zeroPoint: number[]; quantizedDimension: number };
}

export interface OperatorDescription {
  index: number;
  op: string;
  outputName: string;
  outputShape: number[];
  outputType: string;
  macs: number;
}

export interface CutPointDescription {
  name: string;
  afterOp: number;
  tensorName: string;
  shape: number[];
  type: string;
  scale?: number;
  zeroPoint?: number;
  macsBefore: number;
  macsFraction: number;
  labeled: boolean;
}

export interface ModelDescription {
  version: number;
  description?: string;
  subgraphs: number;
  tensors: number;
  buffers: number;
  constantBytes: number;
  metadata: string[];
  inputs: TensorDescription[];
  outputs: TensorDescription[];
  opHistogram: Array<{ op: string; count: number }>;
  ops: OperatorDescription[];
  totalMacs: number;
  customOps: string[];
  cutPoints: CutPointDescription[];
}

function describeTensor(tensor: Tensor, index: number): TensorDescription {
  const d: TensorDescription = { index, name: tensor.name, shape: [...tensor.shape], type: tensorTypeName(tensor.type) };
  const q = tensor.quantization;
  if (q && q.scale.length > 0) d.quantization = { scale: [...q.scale], zeroPoint: [...q.zeroPoint], quantizedDimension: q.quantizedDimension };
  return d;
}

/** Describes the main subgraph (the one a runtime executes). */
export function describeModel(model: TfliteModel): ModelDescription {
  const sg = model.subgraphs[0] ?? { tensors: [], inputs: [], outputs: [], operators: [] };
  const macs = operatorMacsList(model);
  const histogram = new Map<string, number>();
  const ops = sg.operators.map((op, index): OperatorDescription => {
    const name = operatorCodeName(model.operatorCodes[op.opcodeIndex]!);
    histogram.set(name, (histogram.get(name) ?? 0) + 1);
    const out = sg.tensors[op.outputs[0] ?? -1];
    return {
      index,
      op: name,
      outputName: out?.name ?? '',
      outputShape: out ? [...out.shape] : [],
      outputType: out ? tensorTypeName(out.type) : '',
      macs: macs[index] ?? 0,
    };
  });
  const description: ModelDescription = {
    version: model.version,
    subgraphs: model.subgraphs.length,
    tensors: sg.tensors.length,
    buffers: model.buffers.length,
    constantBytes: model.buffers.reduce((n, b) => n + b.length, 0),
    metadata: model.metadata.map((m) => m.name),
    inputs: sg.inputs.map((i) => describeTensor(sg.tensors[i]!, i)),
    outputs: sg.outputs.map((i) => describeTensor(sg.tensors[i]!, i)),
    opHistogram: [...histogram].map(([op, count]) => ({ op, count })).sort((a, b) => b.count - a.count || a.op.localeCompare(b.op)),
    ops,
    totalMacs: macs.reduce((a, b) => a + b, 0),
    customOps: model.operatorCodes.filter((c) => c.builtinCode === BuiltinOperator.CUSTOM).map((c) => c.customCode ?? '(unnamed)'),
    cutPoints: findCutPoints(model).map((p) => {
      const c: CutPointDescription = {
        name: p.name,
        afterOp: p.afterOp,
        tensorName: p.tensorName,
        shape: p.shape,
        type: tensorTypeName(p.type),
        macsBefore: p.macsBefore,
        macsFraction: p.macsFraction,
        labeled: p.labeled,
      };
      if (p.quantization && p.quantization.scale.length === 1) {
        c.scale = p.quantization.scale[0]!;
        c.zeroPoint = p.quantization.zeroPoint[0] ?? 0;
      }
      return c;
    }),
  };
  if (model.description !== undefined) description.description = model.description;
  return description;
}

// ---- terminal rendering ----

/** Converters join fused op names with ';'; the first part names the op's own layer. */
function shortName(name: string, max = 64): string {
  const first = name.split(';')[0] ?? name;
  return first.length > max ? `${first.slice(0, max - 1)}…` : first;
}

function formatMacs(macs: number): string {
  if (macs === 0) return '0';
  if (macs >= 1e6) return `${(macs / 1e6).toFixed(2)}M`;
  if (macs >= 1e3) return `${(macs / 1e3).toFixed(1)}k`;
  return String(macs);
}

function formatQuantization(q: TensorDescription['quantization']): string {
  if (!q) return 'not quantized';
  if (q.scale.length === 1) return `scale ${q.scale[0]!.toPrecision(6)}, zero point ${q.zeroPoint[0] ?? 0}`;
  return `per-channel (${q.scale.length} scales, axis ${q.quantizedDimension})`;
}

/** Lays rows out in columns; columns listed in `right` are right-aligned (numbers). */
function table(header: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (c === cells.length - 1 ? cell : right.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

const indent = (lines: string[]) => lines.map((l) => `  ${l}`);
const shape = (s: number[]) => (s.length ? s.join('x') : 'scalar');

export function formatModelDescription(d: ModelDescription): string {
  const out: string[] = [];
  out.push(
    `TFLite model, schema version ${d.version}${d.description ? ` ("${d.description}")` : ''}`,
    `  ${d.subgraphs} subgraph(s), ${d.ops.length} operators, ${d.tensors} tensors, ${d.buffers} buffers (${(d.constantBytes / 1e6).toFixed(2)} MB of constants)`,
  );
  if (d.metadata.length) out.push(`  metadata: ${d.metadata.join(', ')}`);

  const ioRows = (list: TensorDescription[]) => list.map((t) => [String(t.index), shortName(t.name, 40), shape(t.shape), t.type, formatQuantization(t.quantization)]);
  out.push('', 'Inputs:', ...indent(table(['#', 'name', 'shape', 'type', 'quantization'], ioRows(d.inputs), new Set([0]))));
  out.push('', 'Outputs:', ...indent(table(['#', 'name', 'shape', 'type', 'quantization'], ioRows(d.outputs), new Set([0]))));

  out.push('', `Operators: ${d.opHistogram.map((h) => `${h.op} x${h.count}`).join(', ')}`);
  out.push(`Custom ops: ${d.customOps.length ? d.customOps.join(', ') : 'none'}`);
  const opRows = d.ops.map((o) => [String(o.index), o.op, shape(o.outputShape), o.outputType, formatMacs(o.macs), shortName(o.outputName)]);
  out.push('', ...indent(table(['#', 'op', 'output', 'type', 'MACs', 'output tensor'], opRows, new Set([0, 4]))));
  out.push('', `Total: ${formatMacs(d.totalMacs)} MACs (${d.totalMacs.toLocaleString('en-US')})`);
  if (d.customOps.length) out.push('  (work inside custom ops is not counted)');

  out.push('', 'Candidate cut points (one tensor live across the cut):');
  if (d.cutPoints.length === 0) {
    out.push('  none');
  } else {
    const cutRows = d.cutPoints.map((c) => [
      c.name,
      String(c.afterOp),
      shape(c.shape),
      c.type,
      c.scale !== undefined ? `${c.scale.toPrecision(4)} / ${c.zeroPoint}` : '-',
      formatMacs(c.macsBefore),
      `${(c.macsFraction * 100).toFixed(1)}%`,
      shortName(c.tensorName, 48),
    ]);
    out.push(...indent(table(['name', 'after op', 'shape', 'type', 'scale / zp', 'MACs before', 'of total', 'tensor'], cutRows, new Set([1, 5, 6]))));
    out.push("  block_N names go in a build config's cuts; pooled always ends the last segment; op_N marks other single-tensor positions.");
  }
  return out.join('\n');
}
