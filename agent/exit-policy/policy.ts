/**
 * When to stop at an exit head. Every policy has one threshold in [0, 1] per
 * exit; the last exit always stops, so its threshold is validated but unused.
 *
 * The extreme thresholds switch an exit off: 1 for max-probability and
 * patience, 0 for entropy. Without that, "never exit early" could not be
 * written down, because a saturated int8 softmax does produce exact one-hot
 * vectors (max p = 1, entropy = 0) that would pass `p >= 1` or `H <= 0`.
 */
import { argmax, maxProbability, normalizedEntropy } from './probabilities.js';

export const EXIT_POLICY_NAMES = ['max-probability', 'entropy', 'patience'] as const;
export type ExitPolicyName = (typeof EXIT_POLICY_NAMES)[number];

export interface ExitPolicyConfig {
  policy: ExitPolicyName;
  thresholds: readonly number[];
  /** patience only: how many consecutive exits (this one included) must agree on the top-1 class. */
  patience?: number;
}

export interface ExitState {
  /** 0-based index of the exit whose head just ran. */
  exitIndex: number;
  probabilities: Float32Array;
  /** top-1 class of each earlier exit, in order. */
  history: readonly number[];
}

export interface ExitPolicy {
  readonly name: ExitPolicyName;
  readonly thresholds: readonly number[];
  readonly patience: number | undefined;
  readonly exitCount: number;
  /** true: stop here and answer with this exit's top-1. */
  decide(state: ExitState): boolean;
  /** Whether this exit can never stop a sample (its threshold is the "exit off" value). */
  switchedOff(exitIndex: number): boolean;
}

/** What the rules look at, computed once per exit. */
export interface ExitEvidence {
  maxProbability: number;
  normalizedEntropy: number;
  top1: number;
  /** Length of the run of exits ending at this one that share its top-1. */
  agreeingRun: number;
}

export function exitEvidence(probabilities: Float32Array, history: readonly number[]): ExitEvidence {
  const top1 = argmax(probabilities);
  let agreeingRun = 1;
  for (let i = history.length - 1; i >= 0 && history[i] === top1; i--) agreeingRun++;
  return {
    maxProbability: maxProbability(probabilities),
    normalizedEntropy: normalizedEntropy(probabilities),
    top1,
    agreeingRun,
  };
}

/**
 * The stopping rule of a policy at a non-final exit. Exported so that
 * calibration tests candidate thresholds with exactly the comparisons the
 * runtime makes.
 */
export function meetsExitRule(
  rule: { policy: ExitPolicyName; patience?: number | undefined },
  evidence: ExitEvidence,
  threshold: number,
): boolean {
  switch (rule.policy) {
    case 'max-probability':
      return threshold < 1 && evidence.maxProbability >= threshold;
    case 'entropy':
      return threshold > 0 && evidence.normalizedEntropy <= threshold;
    case 'patience':
      return evidence.agreeingRun >= rule.patience! && threshold < 1 && evidence.maxProbability >= threshold;
  }
}

export function validateThresholds(thresholds: readonly number[], exitCount?: number): void {
  if (exitCount !== undefined && thresholds.length !== exitCount) {
    throw new RangeError(`expected ${exitCount} thresholds (one per exit), got ${thresholds.length}`);
  }
  if (thresholds.length === 0) throw new RangeError('expected one threshold per exit, got none');
  thresholds.forEach((value, index) => {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new RangeError(`threshold[${index}] = ${value} is not a finite number in [0, 1]`);
    }
    if (value < 0 || value > 1) throw new RangeError(`threshold[${index}] = ${value} is outside [0, 1]`);
  });
}

/**
 * Builds a policy from its config. `exitCount`, when given, is the number of
 * exits of the model it will run with, and the thresholds must match it.
 */
export function createExitPolicy(config: ExitPolicyConfig, exitCount?: number): ExitPolicy {
  if (!(EXIT_POLICY_NAMES as readonly string[]).includes(config.policy)) {
    throw new RangeError(`policy "${config.policy}" is not one of ${EXIT_POLICY_NAMES.join(', ')}`);
  }
  validateThresholds(config.thresholds, exitCount);
  let patience: number | undefined;
  if (config.policy === 'patience') {
    patience = config.patience;
    if (typeof patience !== 'number' || !Number.isInteger(patience) || patience < 1) {
      throw new RangeError(`patience = ${config.patience} is not an integer >= 1`);
    }
  }
  const thresholds = Object.freeze([...config.thresholds]);
  const rule = { policy: config.policy, patience };
  const lastExit = thresholds.length - 1;
  return {
    name: config.policy,
    thresholds,
    patience,
    exitCount: thresholds.length,
    switchedOff(exitIndex: number): boolean {
      const threshold = thresholds[exitIndex]!;
      return exitIndex !== lastExit && (rule.policy === 'entropy' ? threshold <= 0 : threshold >= 1);
    },
    decide(state: ExitState): boolean {
      const { exitIndex } = state;
      if (!Number.isInteger(exitIndex) || exitIndex < 0 || exitIndex > lastExit) {
        throw new RangeError(`exitIndex = ${exitIndex} is outside [0, ${lastExit}]`);
      }
      if (exitIndex === lastExit) return true;
      return meetsExitRule(rule, exitEvidence(state.probabilities, state.history), thresholds[exitIndex]!);
    },
  };
}

/**
 * Exits a run leaves out, segment and head: branch exits (a glance network
 * whose output nothing downstream reads) that the policy has switched off,
 * before `maxExit`. Patience counts every exit's vote, so it leaves none out.
 * Leaving them out changes no answer, only the cost.
 */
export function skippedExits(policy: ExitPolicy, branchExits: readonly number[], maxExit: number): number[] {
  if (policy.name === 'patience') return [];
  return branchExits.filter((exit) => exit < maxExit && policy.switchedOff(exit));
}

export interface SimulatedExits {
  /** Per sample, the 0-based exit it stopped at. */
  exitTaken: number[];
  /** Per sample, the top-1 class of that exit. */
  predictions: number[];
}

/**
 * Replays recorded head outputs ([sample][exit]) through a policy, stopping
 * at `maxExit` at the latest, so that calibration and evaluation need not run
 * the model again.
 */
export function simulateExits(
  policy: ExitPolicy,
  perExitProbabilities: readonly (readonly Float32Array[])[],
  maxExit: number,
): SimulatedExits {
  if (!Number.isInteger(maxExit) || maxExit < 0 || maxExit >= policy.exitCount) {
    throw new RangeError(`maxExit = ${maxExit} is outside [0, ${policy.exitCount - 1}]`);
  }
  const exitTaken: number[] = [];
  const predictions: number[] = [];
  perExitProbabilities.forEach((exits, sample) => {
    if (exits.length <= maxExit) {
      throw new RangeError(`sample ${sample} has outputs for ${exits.length} exits, maxExit ${maxExit} needs ${maxExit + 1}`);
    }
    const history: number[] = [];
    for (let exitIndex = 0; exitIndex <= maxExit; exitIndex++) {
      const probabilities = exits[exitIndex]!;
      if (exitIndex === maxExit || policy.decide({ exitIndex, probabilities, history })) {
        exitTaken.push(exitIndex);
        predictions.push(argmax(probabilities));
        return;
      }
      history.push(argmax(probabilities));
    }
  });
  return { exitTaken, predictions };
}
