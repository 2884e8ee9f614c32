import type { MqttClient } from 'mqtt';

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

/**
 * Exponential reconnect backoff for an mqtt.js client. mqtt.js itself retries at one
 * fixed `reconnectPeriod`, read afresh each time a connection or an attempt closes
 * (its own 'close' listener, registered first, schedules the next attempt). So the
 * period is set here after each close for the attempt after that: min, 2 min, 4 min,
 * ... up to max, and back to min on every successful connect, so the first retry
 * after a broker restart is quick again.
 */
export function attachReconnectBackoff(client: MqttClient, bounds: BackoffBounds, random: () => number = Math.random): void {
  const backoff = new BackoffSchedule(bounds, random);
  const schedule = () => {
    client.options.reconnectPeriod = backoff.current();
  };
  schedule();
  client.on('connect', () => {
    backoff.reset();
    schedule();
  });
  client.on('close', () => {
    backoff.lengthen();
    schedule();
  });
}
