import { PLAUSIBLE, emptyReading, implausible, round } from '../reading.js';
import type { BridgeReading } from '../types.js';
import { hex, readRegister, toSigned16, type I2cBus } from './i2c-bus.js';

/** MAX17048 single-cell fuel gauge (ModelGauge: state of charge without a current-sense resistor). */
export const MAX17048 = {
  defaultAddress: 0x36,
  registers: { VCELL: 0x02, SOC: 0x04, CRATE: 0x16 },
  /** Fields this chip can fill, listed as missing together when it does not answer. */
  provides: ['stateOfCharge', 'voltageV', 'charging'],
} as const;

const VOLTS_PER_VCELL_LSB = 78.125e-6;
const PERCENT_PER_SOC_LSB = 1 / 256;
const PERCENT_PER_HOUR_PER_CRATE_LSB = 0.208;
/** Below this charge rate the cell is idle (or full on mains) and the sign is noise. */
const IDLE_CHARGE_RATE_PERCENT_PER_HOUR = 1;
/** ModelGauge can run a little past 100 % at the top of charge; beyond this the register is garbage. */
const MAX_SOC_PERCENT = 105;

export function vcellVolts(register: number): number {
  return register * VOLTS_PER_VCELL_LSB;
}

export function socPercent(register: number): number {
  return register * PERCENT_PER_SOC_LSB;
}

/** Signed: positive while charging. */
export function chargeRatePercentPerHour(register: number): number {
  return toSigned16(register) * PERCENT_PER_HOUR_PER_CRATE_LSB;
}

export interface Max17048Options {
  address?: number;
  /** Read CRATE (0x16) to tell charging from discharging; MAX17043/44 have no such register. */
  readChargeRate?: boolean;
}

export async function readMax17048(bus: I2cBus, options: Max17048Options = {}): Promise<BridgeReading> {
  const address = options.address ?? MAX17048.defaultAddress;
  const reading = emptyReading(Date.now());
  const where = (name: string, register: number) => `max17048 at ${hex(address)} register ${name} (${hex(register)})`;
  const read = async (field: string, name: keyof typeof MAX17048.registers): Promise<number | undefined> => {
    const register = MAX17048.registers[name];
    try {
      return await readRegister(bus, address, register);
    } catch (error) {
      reading.missing.push({ reading: field, reason: `${where(name, register)}: read failed (${(error as Error).message})` });
      return undefined;
    }
  };

  const vcell = await read('voltageV', 'VCELL');
  if (vcell !== undefined) {
    const volts = vcellVolts(vcell);
    const problem = implausible(volts, { ...PLAUSIBLE.voltageV, max: 5 });
    if (problem) reading.missing.push({ reading: 'voltageV', reason: `${where('VCELL', MAX17048.registers.VCELL)} = ${hex(vcell)}: ${problem}` });
    else reading.voltageV = round(volts);
  }

  const soc = await read('stateOfCharge', 'SOC');
  if (soc !== undefined) {
    const percent = socPercent(soc);
    const problem = implausible(percent, { ...PLAUSIBLE.stateOfChargePercent, max: MAX_SOC_PERCENT });
    if (problem) reading.missing.push({ reading: 'stateOfCharge', reason: `${where('SOC', MAX17048.registers.SOC)} = ${hex(soc)}: ${problem}` });
    else reading.stateOfCharge = Math.min(1, percent / 100);
  }

  if (options.readChargeRate ?? true) {
    const crate = await read('charging', 'CRATE');
    if (crate !== undefined) {
      const rate = chargeRatePercentPerHour(crate);
      if (Math.abs(rate) >= IDLE_CHARGE_RATE_PERCENT_PER_HOUR) reading.charging = rate > 0;
      else {
        const shown = round(rate, 3);
        reading.missing.push({
          reading: 'charging',
          reason: `${where('CRATE', MAX17048.registers.CRATE)}: ${shown} %/h is within ±${IDLE_CHARGE_RATE_PERCENT_PER_HOUR} %/h, too small to tell charging from discharging`,
        });
      }
    }
  } else {
    reading.missing.push({ reading: 'charging', reason: `max17048 at ${hex(address)}: charge rate not read (readChargeRate: false)` });
  }
  return reading;
}
