import { mergeReadings } from '../combine.js';
import type { BridgeReading, FirmwareBridge, PowerDownRequest } from '../types.js';
import { armRtcWakeAlarm } from './rtc-wake.js';
import { readHwmon } from './hwmon.js';
import { readPowerSupplies } from './power-supply.js';
import { readThermalZones } from './thermal.js';

export interface SysfsBridgeOptions {
  /** sysfs mount point, default /sys; tests point it at a fake tree. */
  root?: string;
  /** power_supply entry of the battery, default the first system battery. */
  battery?: string;
  /** Label of the board's input rail on a hwmon power monitor (e.g. VDD_IN). */
  inputRail?: string;
  /** The RTC whose wake alarm powers the board up after a halt (rtc0 on a Pi 5); none: no wake-up is armed here. */
  rtc?: string;
}

/**
 * What the kernel already knows: battery from power_supply (preferred for voltage/current),
 * the input rail of a hwmon power monitor, thermal zones and hwmon temperatures. Read-only.
 */
export class SysfsBridge implements FirmwareBridge {
  readonly name: string;
  readonly armWake?: (request: PowerDownRequest) => Promise<void>;

  constructor(private readonly options: SysfsBridgeOptions = {}) {
    this.name = `sysfs(${options.root ?? '/sys'})`;
    const rtc = options.rtc;
    if (rtc !== undefined) this.armWake = (request) => armRtcWakeAlarm(options.root ?? '/sys', rtc, request);
  }

  async read(): Promise<BridgeReading> {
    const { root, battery, inputRail } = this.options;
    const parts = await Promise.all([readPowerSupplies({ root, battery }), readHwmon({ root, inputRail }), readThermalZones({ root })]);
    return mergeReadings(parts);
  }

  async close(): Promise<void> {
    // Nothing held open: every read opens and closes its files.
  }
}
