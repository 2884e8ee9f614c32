/**
 * Temporal exit reuse, after Temporal Decisions: on video, consecutive frames mostly show
 * the same thing. When the motion gate saw only a small change and the previous answer was
 * confident, the first exit that agrees with that answer is trusted, where the operating
 * point would have gone deeper. An exit that disagrees changes nothing: the operating
 * point's own rule decides, so a new object is still classified as deep as before.
 */
import type { ExitPolicy, ExitState } from './policy.js';

export interface TemporalReuseSettings {
  temporalReuse: boolean;
  /** The largest changed share of the frame (the gate's reading) that counts as a small change. */
  temporalMaxChange: number;
  /** The previous answer must have been at least this confident. */
  temporalMinConfidence: number;
}

export interface PreviousAnswer {
  /** Class index. */
  label: number;
  confidence: number;
}

function top1(probabilities: Float32Array): number {
  let best = 0;
  for (let i = 1; i < probabilities.length; i++) if (probabilities[i]! > probabilities[best]!) best = i;
  return best;
}

/** A policy for one frame that also stops where an exit agrees with the previous answer; `reused` says whether that stopped it. */
export interface TemporalPolicy extends ExitPolicy {
  readonly reused: boolean;
}

/**
 * The policy for this frame: `base` itself, or, after a small change and a confident
 * previous answer, `base` that also stops at the first exit agreeing with that answer.
 */
export function withTemporalReuse(base: ExitPolicy, settings: TemporalReuseSettings, changedShare: number, previous: PreviousAnswer | undefined): ExitPolicy | TemporalPolicy {
  if (!settings.temporalReuse || !previous || previous.confidence < settings.temporalMinConfidence || changedShare > settings.temporalMaxChange) return base;
  let reused = false;
  return {
    name: base.name,
    thresholds: base.thresholds,
    patience: base.patience,
    exitCount: base.exitCount,
    switchedOff: (exitIndex: number) => base.switchedOff(exitIndex),
    decide(state: ExitState): boolean {
      if (base.decide(state)) return true;
      reused = top1(state.probabilities) === previous.label;
      return reused;
    },
    get reused() {
      return reused;
    },
  };
}

export function reusedEarlierExit(policy: ExitPolicy | TemporalPolicy): boolean {
  return 'reused' in policy && policy.reused;
}
