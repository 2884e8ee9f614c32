import { combineBridges } from './combine.js';
import { parseBridgeConfig, type BridgeConfig } from './config.js';
import { GpioBridge } from './gpio/gpio-bridge.js';
import { I2cBridge } from './i2c/i2c-bridge.js';
import { openI2cBus } from './i2c/i2c-bus.js';
import { openSerialBridge } from './serial/open-serial-port.js';
import { PirBridge } from './gpio/pir-bridge.js';
import { SimulatedBridge } from './simulated.js';
import { SysfsBridge } from './sysfs/sysfs-bridge.js';
import { realClock } from './clock.js';
import type { EnergySink, FirmwareBridge, Platform } from './types.js';

export type { BridgeReading, Clock, EnergySink, FirmwareBridge, MissingReading, Platform, TripPoint } from './types.js';
export { BridgeConfigError, bridgeConfigSchema, parseBridgeConfig, type BridgeConfig, type BridgeConfigInput } from './config.js';
export { combineBridges, mergeReadings } from './combine.js';
export { ClockStepWatcher, describeStep, monotonicMs, realClock, wallAtMs } from './clock.js';
export { SimulatedBridge, SIMULATED_ZONE, type SimulatedBridgeOptions } from './simulated.js';
export { SysfsBridge, type SysfsBridgeOptions } from './sysfs/sysfs-bridge.js';
export { readPowerRails, type PowerRail } from './sysfs/hwmon.js';
export { I2cBridge, type I2cDevice } from './i2c/i2c-bridge.js';
export { I2cUnavailableError, openI2cBus, type I2cBus } from './i2c/i2c-bus.js';
export { SerialBridge, type SerialStats } from './serial/serial-bridge.js';
export { openSerialBridge } from './serial/open-serial-port.js';
export { GpioBridge, type GpioStatus } from './gpio/gpio-bridge.js';
export { PirBridge } from './gpio/pir-bridge.js';

/**
 * The bridge a plain config describes, e.g. from the agent's config file:
 * `{ kind: 'combined', sources: [{ kind: 'sysfs' }, { kind: 'i2c', devices: [{ chip: 'max17048' }] }, { kind: 'gpio', fanPin: 18 }] }`.
 * Throws BridgeConfigError for a bad config; a source whose hardware is absent still opens and
 * lists its readings as missing, so the agent can run on what is there.
 */
export async function createBridge(config: unknown): Promise<FirmwareBridge> {
  return build(parseBridgeConfig(config));
}

const realEnergy: EnergySink = { consume: () => {}, measuresBoardPower: true };

/**
 * The platform a bridge config describes. With a simulated source (alone or in a
 * combined bridge) its clock, battery and heatsink stand in for the real ones.
 */
export async function createPlatform(config: BridgeConfig, simulation: { computeTimeScale: number }): Promise<Platform> {
  const simulated: SimulatedBridge[] = [];
  const bridge = await build(config, (made) => simulated.push(made));
  const sim = simulated[0];
  if (!sim) return devicePlatform(bridge);
  return { ...simulatedPlatform(sim, simulation.computeTimeScale), bridge };
}

/** A real bridge as a platform: the real clock (monotonic, with the wall clock for stamps), and a battery that the bridge measures. */
export function devicePlatform(bridge: FirmwareBridge): Platform {
  return { bridge, clock: realClock, energy: realEnergy, computeTimeScale: 1, exhausted: () => false };
}

/** A simulated bridge as a platform: its clock, its battery and heatsink as the energy sink. */
export function simulatedPlatform(sim: SimulatedBridge, computeTimeScale: number): Platform {
  return {
    bridge: sim,
    clock: sim.clock,
    energy: { consume: (joules) => sim.consume(joules), measuresBoardPower: false },
    computeTimeScale,
    exhausted: () => sim.stateOfCharge <= 0,
  };
}

async function build(config: BridgeConfig, onSimulated?: (bridge: SimulatedBridge) => void): Promise<FirmwareBridge> {
  switch (config.kind) {
    case 'simulated': {
      const { kind: _kind, ...options } = config;
      const bridge = new SimulatedBridge(options);
      onSimulated?.(bridge);
      return bridge;
    }
    case 'sysfs':
      return new SysfsBridge({ root: config.root, battery: config.battery, inputRail: config.inputRail, rtc: config.rtc });
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
    case 'pir':
      return new PirBridge({ chip: config.chip, line: config.line });
    case 'combined': {
      const parts: FirmwareBridge[] = [];
      try {
        for (const source of config.sources) parts.push(await build(source, onSimulated));
      } catch (error) {
        await Promise.allSettled(parts.map((part) => part.close()));
        throw error;
      }
      return parts.length === 1 ? parts[0]! : combineBridges(parts);
    }
  }
}
