// Which activation tensors are live between consecutive operators of the main
// subgraph. A position with exactly one live tensor is a place where the graph
// can be split into two models joined by that tensor.
import type { Subgraph, TfliteModel } from '../../agent/tflite/model.js';

export interface TensorLifetime {
  /** Index of the producing operator; -1 for a graph input. */
  producer: number;
  /** Index of the last consuming operator; operators.length if it is a graph output. */
  lastUse: number;
}

function isConstant(model: TfliteModel, sg: Subgraph, tensor: number): boolean {
  const t = sg.tensors[tensor];
  return t !== undefined && (model.buffers[t.buffer]?.length ?? 0) > 0;
}

/** Lifetimes of the activations (non-constant tensors) of the main subgraph. */
export function tensorLifetimes(model: TfliteModel): Map<number, TensorLifetime> {
  const sg = model.subgraphs[0];
  const lifetimes = new Map<number, TensorLifetime>();
  if (!sg) return lifetimes;
  for (const t of sg.inputs) lifetimes.set(t, { producer: -1, lastUse: -1 });
  sg.operators.forEach((op, i) => {
    for (const t of op.outputs) lifetimes.set(t, { producer: i, lastUse: i });
  });
  sg.operators.forEach((op, i) => {
    for (const t of op.inputs) {
      const life = lifetimes.get(t);
      if (life && !isConstant(model, sg, t)) life.lastUse = Math.max(life.lastUse, i);
    }
  });
  for (const t of sg.outputs) {
    const life = lifetimes.get(t);
    if (life) life.lastUse = sg.operators.length;
  }
  return lifetimes;
}

/** For each position "after operator i", the tensors live across it (produced at or before i, used after i). */
export function liveAfterEachOp(model: TfliteModel): number[][] {
  const n = model.subgraphs[0]?.operators.length ?? 0;
  const live: number[][] = Array.from({ length: n }, () => []);
  for (const [tensor, { producer, lastUse }] of tensorLifetimes(model)) {
    for (let i = Math.max(producer, 0); i < Math.min(lastUse, n); i++) live[i]!.push(tensor);
  }
  return live;
}
