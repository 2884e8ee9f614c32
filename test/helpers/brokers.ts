import test from 'ava';
import { startEmbeddedBroker } from '../../agent/mqtt/embedded-broker.js';
import { onPath } from '../../agent/sources/child-stream.js';
import { freePort, MOSQUITTO } from '../../tools/mqtt/mosquitto.js';

export { MOSQUITTO, startMosquitto } from '../../tools/mqtt/mosquitto.js';

/** An aedes broker in this process on a free loopback port: MQTT 3.1.1, no shared subscriptions. */
export async function startAedes(): Promise<{ url: string; close(): Promise<void> }> {
  return startEmbeddedBroker(await freePort());
}

/**
 * `test.serial` when Mosquitto and the given commands (mosquitto_pub, openssl, ...) are
 * installed, else `test.skip`: CI installs them from Debian's packages, and a developer
 * machine without them skips, saying so. Serial because each such test runs its own
 * broker and agent or server processes, and waits on them.
 */
export function mosquittoTest(...commands: string[]): typeof test.serial | typeof test.skip {
  return MOSQUITTO && commands.every((command) => onPath(command)) ? test.serial : test.skip;
}
