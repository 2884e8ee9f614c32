import type { MqttClient } from 'mqtt';

export interface BackoffBounds {
  /** The first retry after a connection is lost, and the delay every successful connect returns to. */
  minMs: number;
  /** The longest wait between attempts while the broker stays away. */
  maxMs: number;
}

/** Each delay is cut by up to this share at random, so a fleet that lost one broker does not retry in lockstep. */
const JITTER = 0.25;

/**
 * Exponential reconnect backoff for an mqtt.js client. mqtt.js itself retries at one
 * fixed `reconnectPeriod`, read afresh each time a connection or an attempt closes
 * (its own 'close' listener, registered first, schedules the next attempt). So the
 * period is set here after each close for the attempt after that: min, 2 min, 4 min,
 * ... up to max, and back to min on every successful connect, so the first retry
 * after a broker restart is quick again.
 */
export function attachReconnectBackoff(client: MqttClient, bounds: BackoffBounds, random: () => number = Math.random): void {
  let base = bounds.minMs;
  const schedule = () => {
    client.options.reconnectPeriod = Math.max(1, Math.round(base * (1 - JITTER * random())));
  };
  schedule();
  client.on('connect', () => {
    base = bounds.minMs;
    schedule();
  });
  client.on('close', () => {
    base = Math.min(bounds.maxMs, base * 2);
    schedule();
  });
}
