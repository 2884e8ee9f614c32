import { combineBridges } from './combine.js';
import { parseBridgeConfig, type BridgeConfig } from './config.js';
import { GpioBridge } from './gpio/gpio-bridge.js';
import { I2cBridge } from './i2c/i2c-bridge.js';
import { openI2cBus } from './i2c/i2c-bus.js';
import { openSerialBridge } from './serial/open-serial-port.js';
import { SimulatedBridge } from './simulated.js';
import { SysfsBridge } from './sysfs/sysfs-bridge.js';
import type { FirmwareBridge } from './types.js';

export type { BridgeReading, FirmwareBridge, MissingReading, TripPoint } from './types.js';
export { BridgeConfigError, bridgeConfigSchema, parseBridgeConfig, type BridgeConfig, type BridgeConfigInput } from './config.js';
export { combineBridges, mergeReadings } from './combine.js';
export { SimulatedBridge, SIMULATED_ZONE, type SimulatedBridgeOptions } from './simulated.js';
export { SysfsBridge, type SysfsBridgeOptions } from './sysfs/sysfs-bridge.js';
export { readPowerRails, type PowerRail } from './sysfs/hwmon.js';
export { I2cBridge, type I2cDevice } from './i2c/i2c-bridge.js';
export { I2cUnavailableError, openI2cBus, type I2cBus } from './i2c/i2c-bus.js';
export { SerialBridge, type SerialStats } from './serial/serial-bridge.js';
export { openSerialBridge } from './serial/open-serial-port.js';
export { GpioBridge, type GpioStatus } from './gpio/gpio-bridge.js';

/**
 * The bridge a plain config describes, e.g. from the agent's config file:
 * `{ kind: 'combined', sources: [{ kind: 'sysfs' }, { kind: 'i2c', devices: [{ chip: 'max17048' }] }, { kind: 'gpio', fanPin: 18 }] }`.
 * Throws BridgeConfigError for a bad config; a source whose hardware is absent still opens and
 * lists its readings as missing, so the agent can run on what is there.
 */
export async function createBridge(config: unknown): Promise<FirmwareBridge> {
  return build(parseBridgeConfig(config));
}

async function build(config: BridgeConfig): Promise<FirmwareBridge> {
  switch (config.kind) {
    case 'simulated': {
      const { kind: _kind, ...options } = config;
      return new SimulatedBridge(options);
    }
    case 'sysfs':
      return new SysfsBridge({ root: config.root, battery: config.battery, inputRail: config.inputRail });
    case 'i2c':
      return new I2cBridge({ openBus: () => openI2cBus(config.bus), busLabel: `/dev/i2c-${config.bus}`, devices: config.devices });
    case 'serial': {
      const { kind: _kind, ...options } = config;
      return openSerialBridge(options);
    }
    case 'gpio': {
      const { kind: _kind, ...options } = config;
      return new GpioBridge(options);
    }
    case 'combined': {
      const parts: FirmwareBridge[] = [];
      try {
        for (const source of config.sources) parts.push(await build(source));
      } catch (error) {
        await Promise.allSettled(parts.map((part) => part.close()));
        throw error;
      }
      return parts.length === 1 ? parts[0]! : combineBridges(parts);
    }
  }
}
