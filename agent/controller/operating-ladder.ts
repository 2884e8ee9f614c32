import type { OperatingPoint } from '../model-package/manifest.js';

/**
 * The package's calibrated operating points that the controller may choose
 * from, most accurate (and most expensive) first. Static single-exit points
 * are baselines for evaluation, not choices for a running agent.
 */
export function operatingLadder(points: readonly OperatingPoint[], maxAccuracyDropPoints: number): OperatingPoint[] {
  const full = points.find((p) => p.name === 'full');
  if (!full) throw new RangeError('The package has no "full" operating point: rebuild it with `edge-exit build-model`');
  const floor = full.validationAccuracy - maxAccuracyDropPoints / 100;
  return points
    .filter((p) => !/^exit-\d+$/.test(p.name) && p.validationAccuracy >= floor - 1e-9)
    .sort((a, b) => b.expectedLatencyMs - a.expectedLatencyMs || b.validationAccuracy - a.validationAccuracy);
}
