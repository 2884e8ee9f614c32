// Cuts a MobileNetV2-like model into a chain of backbone segments plus the
// classifier head. Seams are the original int8 tensors with their original
// quantization, so running the chain reproduces the whole model exactly.
import type { TfliteModel } from '../../agent/tflite/model.js';
import { findCutPoints, POOLED, type CutPoint } from './cut-points.js';
import { extractSubmodel } from './extract.js';

export interface CutResult {
  /** input → cut 1, cut 1 → cut 2, ..., last cut → the end (pooled unless told otherwise). */
  segments: TfliteModel[];
  /** pooled → the original outputs. */
  head: TfliteModel;
}

/** Segments and, when the backbone runs to pooled, the original classifier. */
interface Cut {
  segments: TfliteModel[];
  head: TfliteModel | undefined;
}

export class CutError extends Error {
  override name = 'CutError';
}

/** The whole backbone in segments (input → cuts → pooled), and the original classifier as a head. */
export function cutModel(model: TfliteModel, cutNames: string[]): CutResult {
  const { segments, head } = cut(model, cutNames, POOLED);
  return { segments, head: head! };
}

/**
 * Segments from the input through the cuts to `end`, an earlier point than
 * pooled when task heads read mid-level features and the rest of the backbone
 * would be wasted work.
 */
export function cutBackbone(model: TfliteModel, cutNames: string[], end: string): TfliteModel[] {
  return cut(model, cutNames, end).segments;
}

function cut(model: TfliteModel, cutNames: string[], endName: string): Cut {
  const points = findCutPoints(model);
  const byName = new Map(points.map((p) => [p.name, p]));
  const pooled = byName.get(POOLED);
  const validNames = points.filter((p) => p.labeled && p.name !== POOLED).map((p) => p.name);
  if (!pooled) {
    throw new CutError(
      'the model has no "pooled" boundary (a global MEAN or AVERAGE_POOL_2D after the last inverted-residual block); ' +
        'the segmenter only handles MobileNetV2-style classifiers. Run `edge-exit inspect` on the model to see its structure.',
    );
  }
  const listing = `valid cut names, in order: ${validNames.join(', ')} (or op_N positions listed by \`edge-exit inspect\`)`;

  const cuts: CutPoint[] = cutNames.map((name) => {
    if (name === POOLED) {
      throw new CutError(`"${POOLED}" is always the end of the last segment and cannot be listed as a cut; ${listing}`);
    }
    const point = byName.get(name);
    if (!point) throw new CutError(`unknown cut point "${name}"; ${listing}`);
    if (point.afterOp > pooled.afterOp) throw new CutError(`cut "${name}" lies after "${POOLED}", in the classifier head; ${listing}`);
    return point;
  });
  cuts.forEach((cut, i) => {
    const prev = cuts[i - 1];
    if (prev && cut.afterOp <= prev.afterOp) {
      throw new CutError(`cut "${cut.name}" must come after "${prev.name}": cuts are listed in model order without repeats; ${listing}`);
    }
  });

  const end = byName.get(endName);
  if (!end || (endName !== POOLED && !validNames.includes(endName))) throw new CutError(`unknown end point "${endName}"; ${listing}`);
  const lastCut = cuts.at(-1);
  if (lastCut && end.afterOp <= lastCut.afterOp) throw new CutError(`the end "${endName}" must come after the last cut "${lastCut.name}"; ${listing}`);

  const sg = model.subgraphs[0]!;
  const source = model.description ? ` (from "${model.description}")` : '';
  const boundaries = [...cuts, end];
  const segments = boundaries.map((end, k) => {
    const start = boundaries[k - 1];
    const from = start ? start.name : 'input';
    return extractSubmodel(model, {
      firstOp: start ? start.afterOp + 1 : 0,
      lastOp: end.afterOp,
      inputs: start ? [start.tensor] : [...sg.inputs],
      outputs: [end.tensor],
      description: `edge-exit segment ${k}: ${from} -> ${end.name}${source}`,
    });
  });
  if (end !== pooled) return { segments, head: undefined };
  const head = extractSubmodel(model, {
    firstOp: pooled.afterOp + 1,
    lastOp: sg.operators.length - 1,
    inputs: [pooled.tensor],
    outputs: [...sg.outputs],
    description: `edge-exit head: ${POOLED} -> output${source}`,
  });
  return { segments, head };
}
