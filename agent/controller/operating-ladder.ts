import type { OperatingPoint } from '../model-package/manifest.js';

/** The points the controller names: the top of the ladder and the calibrator's pick. */
const ANCHORS = new Set(['full', 'balanced']);

/** Another point is at least as accurate and cheaper, so choosing this one would only waste energy. */
function dominated(point: OperatingPoint, points: readonly OperatingPoint[]): boolean {
  return points.some((other) => other.validationAccuracy >= point.validationAccuracy && other.expectedLatencyMs < point.expectedLatencyMs);
}

/**
 * The package's calibrated operating points that the controller may choose
 * from, most accurate (and most expensive) first. Static single-exit points
 * are baselines for evaluation, not choices for a running agent, and a point
 * that another beats on both accuracy and cost is left off (in a glance
 * cascade, patience points always run the glance and are such points).
 */
export function operatingLadder(points: readonly OperatingPoint[], maxAccuracyDropPoints: number): OperatingPoint[] {
  const full = points.find((p) => p.name === 'full');
  if (!full) throw new RangeError('The package has no "full" operating point: rebuild it with `edge-exit build-model`');
  const floor = full.validationAccuracy - maxAccuracyDropPoints / 100;
  const candidates = points.filter((p) => !/^exit-\d+$/.test(p.name) && p.validationAccuracy >= floor - 1e-9);
  return candidates
    .filter((p) => ANCHORS.has(p.name) || !dominated(p, candidates))
    .sort((a, b) => b.expectedLatencyMs - a.expectedLatencyMs || b.validationAccuracy - a.validationAccuracy);
}
