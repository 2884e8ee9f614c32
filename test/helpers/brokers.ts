import { startEmbeddedBroker } from '../../agent/mqtt/embedded-broker.js';
import { freePort } from '../../tools/mqtt/mosquitto.js';

export { MOSQUITTO, startMosquitto } from '../../tools/mqtt/mosquitto.js';

/** An aedes broker in this process on a free loopback port: MQTT 3.1.1, no shared subscriptions. */
export async function startAedes(): Promise<{ url: string; close(): Promise<void> }> {
  return startEmbeddedBroker(await freePort());
}
