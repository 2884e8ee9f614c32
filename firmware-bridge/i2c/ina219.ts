import { PLAUSIBLE, emptyReading, implausible, round } from '../reading.js';
import type { BridgeReading } from '../types.js';
import { hex, readRegister, toSigned16, type I2cBus } from './i2c-bus.js';

/**
 * INA219 bidirectional current/power monitor. Current comes from the shunt voltage and the
 * shunt's resistance: no calibration register to program, and nothing lost when the chip resets.
 */
export const INA219 = {
  defaultAddress: 0x40,
  registers: { SHUNT_VOLTAGE: 0x01, BUS_VOLTAGE: 0x02 },
  provides: ['voltageV', 'currentA', 'powerW'],
} as const;

const VOLTS_PER_BUS_LSB = 4e-3;
const VOLTS_PER_SHUNT_LSB = 10e-6;
/** ±320 mV, the power-on gain (PGA /8): a reading at the limit means the current is beyond range. */
const SHUNT_FULL_SCALE_LSB = 32000;

/** Bits 15..3 hold the bus voltage; bits 1 and 0 are the conversion-ready and overflow flags. */
export function busVolts(register: number): number {
  return (register >> 3) * VOLTS_PER_BUS_LSB;
}

export function shuntVolts(register: number): number {
  return toSigned16(register) * VOLTS_PER_SHUNT_LSB;
}

export interface Ina219Options {
  address?: number;
  /** Shunt resistance in ohms (0.1 on the common breakout boards). */
  shuntOhms?: number;
  /** Set when the shunt is wired so that drawing current reads negative (e.g. in a battery's charge path). */
  reverseCurrent?: boolean;
}

export async function readIna219(bus: I2cBus, options: Ina219Options = {}): Promise<BridgeReading> {
  const address = options.address ?? INA219.defaultAddress;
  const shuntOhms = options.shuntOhms ?? 0.1;
  const reading = emptyReading(Date.now());
  const where = (name: keyof typeof INA219.registers) => `ina219 at ${hex(address)} register ${name} (${hex(INA219.registers[name])})`;
  const read = async (name: keyof typeof INA219.registers, field: string): Promise<number | undefined> => {
    try {
      return await readRegister(bus, address, INA219.registers[name]);
    } catch (error) {
      reading.missing.push({ reading: field, reason: `${where(name)}: read failed (${(error as Error).message})` });
      return undefined;
    }
  };

  const bus16 = await read('BUS_VOLTAGE', 'voltageV');
  if (bus16 !== undefined) {
    const volts = busVolts(bus16);
    const problem = implausible(volts, { ...PLAUSIBLE.voltageV, max: 32 });
    if (problem) reading.missing.push({ reading: 'voltageV', reason: `${where('BUS_VOLTAGE')} = ${hex(bus16)}: ${problem}` });
    else reading.voltageV = round(volts);
  }

  const shunt16 = await read('SHUNT_VOLTAGE', 'currentA');
  if (shunt16 !== undefined) {
    if (Math.abs(toSigned16(shunt16)) >= SHUNT_FULL_SCALE_LSB) {
      reading.missing.push({ reading: 'currentA', reason: `${where('SHUNT_VOLTAGE')} = ${hex(shunt16)}: at the ±320 mV limit, the current is beyond range` });
    } else {
      reading.currentA = round((shuntVolts(shunt16) / shuntOhms) * (options.reverseCurrent ? -1 : 1));
    }
  }

  if (reading.voltageV !== undefined && reading.currentA !== undefined) {
    reading.powerW = round(reading.voltageV * reading.currentA);
  } else {
    const lacking = reading.missing.map((m) => m.reason).join('; ');
    reading.missing.push({ reading: 'powerW', reason: `bus voltage × current needs both: ${lacking}` });
  }
  return reading;
}
