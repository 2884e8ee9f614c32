import type { MqttClient } from 'mqtt';

/**
 * mqtt.js leaves Nagle's algorithm on: a small request then waits for the
 * broker's delayed ACK (about 40 ms on Linux), which dominates a loopback or
 * LAN round trip. Turned off on every (re)connect's new socket.
 */
export function disableNagle(client: MqttClient): void {
  const apply = () => (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
  apply();
  client.on('connect', apply);
}
