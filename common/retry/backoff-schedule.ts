export interface BackoffBounds {
  /** The first retry after a connection is lost, and the delay every successful connect returns to. */
  minMs: number;
  /** The longest wait between attempts while the broker stays away. */
  maxMs: number;
}

/** Each delay is cut by up to this share at random, so a fleet that lost one broker does not retry in lockstep. */
const JITTER = 0.25;

/** Delays that double from min to max, each cut by up to JITTER at random, back to min on reset(). */
export class BackoffSchedule {
  private base: number;

  constructor(
    private readonly bounds: BackoffBounds,
    private readonly random: () => number = Math.random,
  ) {
    this.base = bounds.minMs;
  }

  /** The delay before the next attempt. */
  current(): number {
    return Math.max(1, Math.round(this.base * (1 - JITTER * this.random())));
  }

  /** An attempt failed: the next delay is twice as long, up to max. */
  lengthen(): void {
    this.base = Math.min(this.bounds.maxMs, this.base * 2);
  }

  reset(): void {
    this.base = this.bounds.minMs;
  }
}
