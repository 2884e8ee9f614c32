// Structural checks on an in-memory model: every index must point at something
// that exists. The reader runs them so a damaged file is refused rather than
// returned half-valid; the writer runs them so a bad edit fails at write time
// with a readable message instead of in the TFLite runtime.
import { TensorType, type TfliteModel } from './model.js';

const KNOWN_TYPES = new Set<number>(Object.values(TensorType));

const MAX_PROBLEMS = 10;

export function findModelProblems(model: TfliteModel): string[] {
  const problems: string[] = [];
  const add = (p: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };
  const nBuffers = model.buffers.length;
  if (model.subgraphs.length === 0) add('the model has no subgraphs');
  if (nBuffers > 0 && model.buffers[0]!.length !== 0) add('buffers[0] must be the empty sentinel buffer');

  model.subgraphs.forEach((sg, s) => {
    const nTensors = sg.tensors.length;
    const tensorRef = (i: number, where: string, optional: boolean) => {
      if (!Number.isInteger(i) || i >= nTensors || (i < 0 && !(optional && i === -1))) {
        add(`subgraphs[${s}].${where} refers to tensor ${i}, but there are ${nTensors}`);
      }
    };
    sg.tensors.forEach((t, i) => {
      if (!Number.isInteger(t.buffer) || t.buffer < 0 || t.buffer >= Math.max(nBuffers, 1)) {
        add(`subgraphs[${s}].tensors[${i}] (${t.name}) refers to buffer ${t.buffer}, but there are ${nBuffers}`);
      }
      if (t.shape.some((d) => !Number.isInteger(d))) add(`subgraphs[${s}].tensors[${i}] (${t.name}) has a non-integer shape`);
      if (!KNOWN_TYPES.has(t.type)) add(`subgraphs[${s}].tensors[${i}] (${t.name}) has unknown element type ${t.type}`);
      const q = t.quantization;
      if (q && q.zeroPoint.length !== 0 && q.zeroPoint.length !== q.scale.length) {
        add(`subgraphs[${s}].tensors[${i}] (${t.name}) has ${q.scale.length} scales but ${q.zeroPoint.length} zero points`);
      }
    });
    sg.inputs.forEach((i, k) => tensorRef(i, `inputs[${k}]`, false));
    sg.outputs.forEach((i, k) => tensorRef(i, `outputs[${k}]`, false));
    sg.operators.forEach((op, o) => {
      if (!Number.isInteger(op.opcodeIndex) || op.opcodeIndex < 0 || op.opcodeIndex >= model.operatorCodes.length) {
        add(`subgraphs[${s}].operators[${o}] uses operator code ${op.opcodeIndex}, but there are ${model.operatorCodes.length}`);
      }
      op.inputs.forEach((i, k) => tensorRef(i, `operators[${o}].inputs[${k}]`, true));
      op.outputs.forEach((i, k) => tensorRef(i, `operators[${o}].outputs[${k}]`, false));
      op.intermediates?.forEach((i, k) => tensorRef(i, `operators[${o}].intermediates[${k}]`, false));
    });
  });

  model.metadata.forEach((m, i) => {
    if (m.buffer < 0 || m.buffer >= nBuffers) add(`metadata[${i}] (${m.name}) refers to buffer ${m.buffer}, but there are ${nBuffers}`);
  });
  model.metadataBuffer?.forEach((b, i) => {
    if (b < 0 || b >= nBuffers) add(`metadata_buffer[${i}] refers to buffer ${b}, but there are ${nBuffers}`);
  });
  model.signatureDefs?.forEach((sig, i) => {
    const sg = model.subgraphs[sig.subgraphIndex];
    if (!sg) {
      add(`signature_defs[${i}] (${sig.signatureKey}) refers to subgraph ${sig.subgraphIndex}, but there are ${model.subgraphs.length}`);
      return;
    }
    for (const m of [...sig.inputs, ...sig.outputs]) {
      if (m.tensorIndex < 0 || m.tensorIndex >= sg.tensors.length) {
        add(`signature_defs[${i}] (${sig.signatureKey}) maps ${m.name} to tensor ${m.tensorIndex}, but there are ${sg.tensors.length}`);
      }
    }
  });
  return problems;
}
