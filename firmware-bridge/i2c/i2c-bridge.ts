import { logger } from '../../common/log/logger.js';
import { mergeReadings } from '../combine.js';
import { emptyReading } from '../reading.js';
import type { BridgeReading, FirmwareBridge } from '../types.js';
import { hex, type I2cBus } from './i2c-bus.js';
import { INA219, readIna219, type Ina219Options } from './ina219.js';
import { MAX17048, readMax17048, type Max17048Options } from './max17048.js';

export type I2cDevice = ({ chip: 'max17048' } & Max17048Options) | ({ chip: 'ina219' } & Ina219Options);

export interface I2cBridgeOptions {
  /** Opens the bus on first read (and again after a failure); tests hand in a fake bus. */
  openBus: () => Promise<I2cBus>;
  /** Read in this order; for a value two chips give (voltage), the first one wins. */
  devices: I2cDevice[];
  /** Shown in the bridge's name and in reasons, e.g. /dev/i2c-1. */
  busLabel: string;
}

/** Fuel gauge and power monitor chips on one I2C bus. A chip that does not answer is listed as missing. */
export class I2cBridge implements FirmwareBridge {
  readonly name: string;
  private bus: I2cBus | undefined;
  private openFailure: string | undefined;

  constructor(private readonly options: I2cBridgeOptions) {
    this.name = `i2c(${options.busLabel}: ${options.devices.map(describeDevice).join(', ')})`;
  }

  async read(): Promise<BridgeReading> {
    const bus = await this.openOnce();
    if (!bus) {
      const reading = emptyReading(Date.now());
      for (const device of this.options.devices) {
        for (const field of chipOf(device).provides) reading.missing.push({ reading: field, reason: this.openFailure! });
      }
      return reading;
    }
    // One transaction at a time: the chips share the bus.
    const readings: BridgeReading[] = [];
    for (const device of this.options.devices) {
      readings.push(device.chip === 'max17048' ? await readMax17048(bus, device) : await readIna219(bus, device));
    }
    return mergeReadings(readings);
  }

  async close(): Promise<void> {
    const bus = this.bus;
    this.bus = undefined;
    await bus?.close();
  }

  private async openOnce(): Promise<I2cBus | undefined> {
    if (this.bus) return this.bus;
    try {
      this.bus = await this.options.openBus();
      this.openFailure = undefined;
      return this.bus;
    } catch (error) {
      const message = (error as Error).message;
      if (message !== this.openFailure) logger.warn({ bus: this.options.busLabel, err: message }, 'I2C bus unavailable');
      this.openFailure = message;
      return undefined;
    }
  }
}

function chipOf(device: I2cDevice): { provides: readonly string[]; defaultAddress: number } {
  return device.chip === 'max17048' ? MAX17048 : INA219;
}

function describeDevice(device: I2cDevice): string {
  return `${device.chip} at ${hex(device.address ?? chipOf(device).defaultAddress)}`;
}
