// Multiply-accumulate counts per operator, from tensor shapes alone: the cost
// model used to place cuts and to compare segments. Ops without a count here
// (reshape, softmax, quantize, ...) are cheap next to convolutions and count 0.
import { BuiltinOperator, elementCount, type Operator, type TfliteModel } from '../../agent/tflite/model.js';

/** MACs of one operator of a subgraph (the main one by default). */
export function operatorMacs(model: TfliteModel, op: Operator, subgraphIndex = 0): number {
  const sg = model.subgraphs[subgraphIndex];
  const code = model.operatorCodes[op.opcodeIndex];
  if (!sg || !code) return 0;
  const shapeOf = (i: number | undefined) => (i === undefined || i < 0 ? undefined : sg.tensors[i]?.shape);
  const input = shapeOf(op.inputs[0]);
  const weights = shapeOf(op.inputs[1]);
  const output = shapeOf(op.outputs[0]);
  if (!output) return 0;

  switch (code.builtinCode) {
    case BuiltinOperator.CONV_2D: {
      // Filter is [outC, kH, kW, inC]; every output element takes kH*kW*inC MACs.
      if (!weights || weights.length !== 4) return 0;
      return elementCount(output) * weights[1]! * weights[2]! * weights[3]!;
    }
    case BuiltinOperator.DEPTHWISE_CONV_2D: {
      // Filter is [1, kH, kW, outC]; each output element sees one kH*kW window of one channel.
      if (!weights || weights.length !== 4) return 0;
      return elementCount(output) * weights[1]! * weights[2]!;
    }
    case BuiltinOperator.FULLY_CONNECTED: {
      // Weights are [out, in]; per batch row, in*out MACs.
      if (!weights || weights.length !== 2) return 0;
      const units = weights[0]!;
      const batch = units > 0 ? elementCount(output) / units : 0;
      return batch * weights[0]! * weights[1]!;
    }
    case BuiltinOperator.MEAN:
    case BuiltinOperator.AVERAGE_POOL_2D:
      return input ? elementCount(input) : 0;
    case BuiltinOperator.ADD:
    case BuiltinOperator.MUL:
      return elementCount(output);
    default:
      return 0;
  }
}

/** MACs of each operator of the main subgraph, in execution order. */
export function operatorMacsList(model: TfliteModel): number[] {
  return (model.subgraphs[0]?.operators ?? []).map((op) => operatorMacs(model, op));
}

/** Total MACs of one inference of the main subgraph. */
export function modelMacs(model: TfliteModel): number {
  return operatorMacsList(model).reduce((a, b) => a + b, 0);
}
