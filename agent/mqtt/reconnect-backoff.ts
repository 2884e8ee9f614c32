import type { MqttClient } from 'mqtt';

import { BackoffSchedule, type BackoffBounds } from '../../common/retry/backoff-schedule.js';

export { BackoffSchedule, type BackoffBounds };

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
