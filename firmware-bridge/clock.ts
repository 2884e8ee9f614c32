import type { Clock } from './types.js';

/**
 * Monotonic milliseconds (performance.now(): from the process start, never stepped). A Raspberry Pi
 * has no RTC, so NTP or an operator steps the wall clock, backwards too: intervals, pacing, stall
 * checks, timeouts and durations are measured on this clock; only stamps use the wall clock.
 */
export const monotonicMs = (): number => performance.now();

/** The wall-clock time of an instant on the monotonic clock: how long ago it was, before now. */
export const wallAtMs = (monoMs: number): number => Date.now() - (monotonicMs() - monoMs);

export const realClock: Clock = {
  kind: 'wall',
  nowMs: monotonicMs,
  wallMs: () => Date.now(),
  wait: (ms) => (ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve()),
};

/** A wall-clock step smaller than this is jitter or NTP slewing, not a step. */
const STEP_THRESHOLD_MS = 2000;

/**
 * Notices steps of the wall clock: between two looks the wall clock should move as far as the
 * monotonic one, and a difference is a step (NTP's first sync on a board without an RTC, an operator's `date -s`).
 */
export class ClockStepWatcher {
  private last = { wall: Date.now(), mono: monotonicMs() };
  private count = 0;
  private latest: { ms: number; atWall: number } | undefined;

  /** The step since the last look, ms (negative: backwards), when there was one; undefined otherwise. */
  check(): number | undefined {
    const now = { wall: Date.now(), mono: monotonicMs() };
    const step = now.wall - this.last.wall - (now.mono - this.last.mono);
    this.last = now;
    if (Math.abs(step) < STEP_THRESHOLD_MS) return undefined;
    this.count++;
    this.latest = { ms: step, atWall: now.wall };
    return step;
  }

  /** For status and health: the latest step and how many there were; undefined before the first. */
  get note(): string | undefined {
    if (!this.latest) return undefined;
    return `${describeStep(this.latest.ms)} at ${new Date(this.latest.atWall).toISOString()} (${this.count} step${this.count === 1 ? '' : 's'} since the start; timing runs on the monotonic clock)`;
  }
}

export function describeStep(stepMs: number): string {
  return `wall clock stepped ${stepMs < 0 ? 'back' : 'forward'} by ${Math.round(Math.abs(stepMs) / 1000)} s`;
}
