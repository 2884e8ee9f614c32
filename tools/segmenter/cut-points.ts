// Candidate places to cut a model, with MobileNetV2's block boundaries named
// from the graph's structure (tensor names from converters are fused and
// unreliable, so they are not used to find blocks).
import { BuiltinOperator, type Operator, type Quantization, type TfliteModel } from '../../agent/tflite/model.js';
import { operatorMacsList } from '../tflite/macs.js';
import { ActivationFunctionType } from '../../agent/tflite/options.js';
import { liveAfterEachOp } from './liveness.js';

export interface CutPoint {
  /** `block_N` (output of inverted-residual block N, Keras numbering), `pooled`, or `op_I` for an unnamed position. */
  name: string;
  /** The cut lies between operator afterOp and afterOp + 1 of the main subgraph. */
  afterOp: number;
  /** Index of the one tensor live across the cut. */
  tensor: number;
  tensorName: string;
  shape: number[];
  type: number;
  quantization: Quantization | undefined;
  /** MACs of operators 0..afterOp. */
  macsBefore: number;
  /** macsBefore over the model's total MACs. */
  macsFraction: number;
  /** True for structural labels (blocks, pooled), false for `op_I` positions. */
  labeled: boolean;
}

export const POOLED = 'pooled';

/** Every position where exactly one tensor is live, in operator order. */
export function findCutPoints(model: TfliteModel): CutPoint[] {
  const sg = model.subgraphs[0];
  if (!sg) return [];
  const live = liveAfterEachOp(model);
  const labels = labelBoundaries(model);
  const macs = operatorMacsList(model);
  const total = macs.reduce((a, b) => a + b, 0);
  const points: CutPoint[] = [];
  let macsBefore = 0;
  // The position after the last operator is the graph's end, not a cut.
  for (let i = 0; i < sg.operators.length - 1; i++) {
    macsBefore += macs[i]!;
    const across = live[i]!;
    if (across.length !== 1) continue;
    const tensor = across[0]!;
    const t = sg.tensors[tensor]!;
    const label = labels.get(tensor);
    points.push({
      name: label ?? `op_${i}`,
      afterOp: i,
      tensor,
      tensorName: t.name,
      shape: [...t.shape],
      type: t.type,
      quantization: t.quantization && structuredClone(t.quantization),
      macsBefore,
      macsFraction: total > 0 ? macsBefore / total : 0,
      labeled: label !== undefined,
    });
  }
  return points;
}

/**
 * Names block outputs by structure. An inverted-residual block ends in a 1x1
 * CONV_2D with no activation (the linear "project") fed by a depthwise conv;
 * a residual block adds its input to that, and the ADD output is the block's
 * output. After the last block, the first global MEAN/AVERAGE_POOL_2D output
 * is `pooled`, the end of the backbone.
 */
export function labelBoundaries(model: TfliteModel): Map<number, string> {
  const labels = new Map<number, string>();
  const sg = model.subgraphs[0];
  if (!sg) return labels;
  const codeOf = (op: Operator) => model.operatorCodes[op.opcodeIndex]?.builtinCode;
  const producer = new Map<number, Operator>();
  const consumers = new Map<number, Operator[]>();
  for (const op of sg.operators) {
    for (const t of op.outputs) producer.set(t, op);
    for (const t of op.inputs) {
      if (t >= 0) consumers.set(t, [...(consumers.get(t) ?? []), op]);
    }
  }

  let block = 0;
  let lastBlockOp = -1;
  sg.operators.forEach((op, i) => {
    if (!isProjectConv(model, op, sg.tensors)) return;
    const input = producer.get(op.inputs[0]!);
    if (!input || codeOf(input) !== BuiltinOperator.DEPTHWISE_CONV_2D) return;
    const projected = op.outputs[0]!;
    const users = consumers.get(projected) ?? [];
    const add = users.length === 1 && codeOf(users[0]!) === BuiltinOperator.ADD ? users[0]! : undefined;
    labels.set(add ? add.outputs[0]! : projected, `block_${block++}`);
    lastBlockOp = add ? sg.operators.indexOf(add) : i;
  });
  if (lastBlockOp < 0) return labels;

  for (let i = lastBlockOp + 1; i < sg.operators.length; i++) {
    const op = sg.operators[i]!;
    const code = codeOf(op);
    if (code === BuiltinOperator.MEAN || code === BuiltinOperator.AVERAGE_POOL_2D) {
      labels.set(op.outputs[0]!, POOLED);
      break;
    }
  }
  return labels;
}

function isProjectConv(model: TfliteModel, op: Operator, tensors: TfliteModel['subgraphs'][number]['tensors']): boolean {
  if (model.operatorCodes[op.opcodeIndex]?.builtinCode !== BuiltinOperator.CONV_2D) return false;
  const options = op.builtinOptions;
  if (options?.type !== 'Conv2DOptions' || options.fusedActivationFunction !== ActivationFunctionType.NONE) return false;
  const filter = tensors[op.inputs[1] ?? -1]?.shape;
  return filter !== undefined && filter.length === 4 && filter[1] === 1 && filter[2] === 1;
}
