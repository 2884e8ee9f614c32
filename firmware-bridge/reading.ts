import type { BridgeReading } from './types.js';

export function emptyReading(at: number): BridgeReading {
  return { at, temperaturesC: {}, tripPointsC: {}, missing: [] };
}

/**
 * What a gateway's sensors can physically report. A value outside is a driver or wiring fault
 * (an unconnected thermistor reading -273 °C, a gauge returning 0xFFFF), not a measurement.
 */
export const PLAUSIBLE = {
  temperatureC: { min: -60, max: 200, unit: '°C' },
  stateOfChargePercent: { min: 0, max: 100, unit: '%' },
  voltageV: { min: 0, max: 100, unit: 'V' },
  currentA: { min: -100, max: 100, unit: 'A' },
  powerW: { min: -1000, max: 1000, unit: 'W' },
} as const;

export interface Range {
  min: number;
  max: number;
  unit: string;
}

/** Why `value` is not a usable measurement in `range`, or undefined when it is. */
export function implausible(value: number, range: Range): string | undefined {
  if (!Number.isFinite(value)) return `${value} is not a finite number`;
  if (value < range.min || value > range.max) return `${round(value)} ${range.unit} is outside ${range.min}..${range.max} ${range.unit}`;
  return undefined;
}

/** Trims float noise from values shown in messages and readings (e.g. 0.1 + 0.2). */
export function round(value: number, digits = 6): number {
  return Number(value.toFixed(digits));
}
