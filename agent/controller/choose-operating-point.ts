import type { AgentConfig } from '../config/agent-config.js';
import { createExitPolicy } from '../exit-policy/policy.js';
import type { OperatingPoint } from '../model-package/manifest.js';

/**
 * The package's calibrated point named in the config, or a custom one when thresholds
 * are given by hand. It also judges what the config schema cannot, the fit to this
 * package (how many exits, which points), so start-up and remote config refuse a
 * mismatch alike; throws Error naming the field, the expected value and the one given.
 */
export function chooseOperatingPoint(config: AgentConfig, calibrated: readonly OperatingPoint[], exitCount: number) {
  const { policy, thresholds, patience, maxExit, operatingPoint } = config.policy;
  if (maxExit !== undefined && maxExit > exitCount - 1) {
    throw new Error(`policy.maxExit: this package's exits are numbered 0 to ${exitCount - 1}, got ${maxExit}`);
  }
  if (thresholds) {
    if (!policy) throw new Error('policy.thresholds needs policy.policy (max-probability, entropy or patience)');
    if (thresholds.length !== exitCount) {
      throw new Error(`policy.thresholds: this package has ${exitCount} exits, so it takes ${exitCount} thresholds (one per exit), got ${thresholds.length}`);
    }
    try {
      createExitPolicy({ policy, thresholds, patience }, exitCount);
    } catch (error) {
      throw new Error(`policy: ${(error as Error).message}`);
    }
    const point: OperatingPoint = {
      name: 'custom',
      policy,
      thresholds,
      patience,
      maxExit: maxExit ?? exitCount - 1,
      validationAccuracy: 0,
      expectedMacs: 0,
      expectedLatencyMs: 0,
      exitHistogram: [],
    };
    return { points: [...calibrated, point], staticPoint: point, custom: true };
  }
  const staticPoint = calibrated.find((p) => p.name === operatingPoint);
  if (!staticPoint) throw new Error(`policy.operatingPoint "${operatingPoint}" is not in the package; it has ${calibrated.map((p) => p.name).join(', ')}`);
  return { points: calibrated, staticPoint: maxExit === undefined ? staticPoint : { ...staticPoint, maxExit: Math.min(maxExit, staticPoint.maxExit) }, custom: false };
}
