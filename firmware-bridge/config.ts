import { z } from 'zod';
import { describeIssues, strictSection } from '../common/config-issues.js';

/** A number in [min, max]; the message names the range, e.g. "must be 0..1 (fraction)". */
function within(min: number, max: number, unit = '') {
  const range = `must be ${min}..${max}${unit ? ` ${unit}` : ''}`;
  return z.number({ error: `${range}, as a number` }).min(min, range).max(max, range);
}

function wholeWithin(min: number, max: number, unit = '') {
  return within(min, max, unit).int(`must be a whole number ${min}..${max}${unit ? ` ${unit}` : ''}`);
}

/** 7-bit I2C address, as a number or a "0x36" string (JSON has no hex literals). */
function i2cAddress(defaultAddress: number, min = 0x08, max = 0x77) {
  const range = `must be an I2C address 0x${min.toString(16)}..0x${max.toString(16)}`;
  return z
    .preprocess((value) => (typeof value === 'string' && /^0x[0-9a-f]{1,2}$/i.test(value) ? parseInt(value, 16) : value), z.number({ error: range }).int(range).min(min, range).max(max, range))
    .default(defaultAddress);
}

/** BCM GPIO numbers on the 40-pin header. */
const bcmPin = wholeWithin(0, 27, '(BCM GPIO number)').optional();

const tripPoint = strictSection({
  type: z.enum(['passive', 'active', 'hot', 'critical'], { error: 'must be passive, active, hot or critical' }),
  temperatureC: within(0, 200, '°C'),
});

export const simulatedConfigSchema = z
  .strictObject({
    kind: z.literal('simulated'),
    capacityWh: within(0.1, 100_000, 'Wh').default(37),
    initialStateOfCharge: within(0, 1, '(fraction)').default(1),
    idlePowerW: within(0, 500, 'W').default(2.7),
    fanPowerW: within(0, 50, 'W').default(0.5),
    cellsInSeries: wholeWithin(1, 16).default(1),
    ambientC: within(-40, 60, '°C').default(25),
    initialTemperatureC: within(-40, 150, '°C').optional(),
    thermalResistanceCPerW: within(0.01, 100, '°C/W').default(8),
    fanThermalResistanceCPerW: within(0.01, 100, '°C/W').default(3),
    thermalTimeConstantS: within(1, 86_400, 's').default(120),
    tripPointsC: z.array(tripPoint).default([
      { type: 'passive', temperatureC: 70 },
      { type: 'critical', temperatureC: 85 },
    ]),
    charging: z.boolean().default(false),
    chargePowerW: within(0, 1000, 'W').default(10),
    solar: z
      .strictObject({
        peakW: within(0, 10_000, 'W'),
        sunriseHour: within(0, 24, 'h').default(6),
        sunsetHour: within(0, 24, 'h').default(18),
      })
      .refine((solar) => solar.sunriseHour < solar.sunsetHour, { error: 'sunriseHour must be before sunsetHour', path: ['sunsetHour'] })
      .optional(),
    startAt: wholeWithin(0, 8.64e15, 'ms since epoch').optional(),
    clock: z.enum(['real', 'manual'], { error: 'must be real or manual' }).default('real'),
    timeScale: within(0.001, 1_000_000, 'simulated s per real s').default(1),
    /** Powered down with the wake-up armed, and a boot to a running agent (used by power cycles). */
    offPowerW: within(0, 50, 'W').default(0.05),
    bootS: within(0, 600, 's').default(30),
    bootPowerW: within(0, 100, 'W').default(3),
    /** Simulated seconds at which a motion sensor fires: they end a sleep that wakes on motion. */
    motionAtS: z.array(within(0, 1e9, 's')).max(100_000).default([]),
  })
  .refine((c) => c.fanThermalResistanceCPerW <= c.thermalResistanceCPerW, {
    error: 'must not exceed thermalResistanceCPerW: the fan cools, it does not insulate',
    path: ['fanThermalResistanceCPerW'],
  });

export const sysfsConfigSchema = strictSection({
  kind: z.literal('sysfs'),
  root: z.string().min(1, 'must be a directory path').default('/sys'),
  battery: z.string().min(1).optional(),
  inputRail: z.string().min(1).optional(),
  /** The RTC whose wake alarm wakes the board after a power-down (rtc0 on a Raspberry Pi 5). */
  rtc: z.string().regex(/^rtc\d+$/, 'an RTC name such as rtc0').optional(),
});

const max17048Schema = strictSection({
  chip: z.literal('max17048'),
  address: i2cAddress(0x36),
  readChargeRate: z.boolean().default(true),
});

const ina219Schema = strictSection({
  chip: z.literal('ina219'),
  address: i2cAddress(0x40, 0x40, 0x4f),
  shuntOhms: within(0.0001, 10, 'Ω').default(0.1),
  reverseCurrent: z.boolean().default(false),
});

export const i2cConfigSchema = strictSection({
  kind: z.literal('i2c'),
  bus: wholeWithin(0, 255, '(/dev/i2c-N)').default(1),
  devices: z
    .array(z.discriminatedUnion('chip', [max17048Schema, ina219Schema], { error: 'must be max17048 or ina219' }))
    .min(1, 'must list at least one chip'),
});

export const serialConfigSchema = strictSection({
  kind: z.literal('serial'),
  path: z.string({ error: 'must be the tty path, e.g. /dev/ttyAMA0' }).min(1, 'must be the tty path, e.g. /dev/ttyAMA0'),
  baudRate: wholeWithin(300, 4_000_000, 'baud').default(115_200),
  staleAfterMs: wholeWithin(100, 600_000, 'ms').default(5000),
  temperatureName: z.string().min(1).default('ups'),
  reopenAfterMs: wholeWithin(100, 3_600_000, 'ms').default(10_000),
});

export const gpioConfigSchema = z
  .strictObject({
    kind: z.literal('gpio'),
    fanPin: bcmPin,
    fanPwmHz: wholeWithin(1, 30_000_000, 'Hz').default(25_000),
    ledPin: bcmPin,
    alertPin: bcmPin,
    alertActiveLow: z.boolean().default(false),
  })
  .refine((c) => c.fanPin !== undefined || c.ledPin !== undefined || c.alertPin !== undefined, { error: 'needs at least one of fanPin, ledPin, alertPin' });

/** A PIR motion sensor on a GPIO line, read with libgpiod's gpiomon. */
export const pirConfigSchema = strictSection({
  kind: z.literal('pir'),
  chip: z.string().regex(/^gpiochip\d+$/, 'a GPIO chip such as gpiochip0 (gpioinfo lists them)').default('gpiochip0'),
  line: wholeWithin(0, 511, '(line offset; the BCM number on a Pi)'),
});

const KINDS = 'simulated, sysfs, i2c, serial, gpio, pir or combined';
const sourceSchema = z.discriminatedUnion('kind', [simulatedConfigSchema, sysfsConfigSchema, i2cConfigSchema, serialConfigSchema, gpioConfigSchema, pirConfigSchema], {
  error: 'must be simulated, sysfs, i2c, serial, gpio or pir (a combined source cannot nest)',
});

export const combinedConfigSchema = strictSection({
  kind: z.literal('combined'),
  /** In order of preference: for a value several give, the first one wins. */
  sources: z.array(sourceSchema).min(1, 'must list at least one source'),
});

export const bridgeConfigSchema = z.discriminatedUnion('kind', [simulatedConfigSchema, sysfsConfigSchema, i2cConfigSchema, serialConfigSchema, gpioConfigSchema, pirConfigSchema, combinedConfigSchema], {
  error: `must be ${KINDS}`,
});

export type BridgeConfig = z.infer<typeof bridgeConfigSchema>;
export type BridgeConfigInput = z.input<typeof bridgeConfigSchema>;

export class BridgeConfigError extends Error {
  constructor(
    message: string,
    readonly problems: string[],
  ) {
    super(message);
    this.name = 'BridgeConfigError';
  }
}

/** Validates a bridge config; throws BridgeConfigError naming each bad field and its allowed range. */
export function parseBridgeConfig(input: unknown, origin = 'bridge'): BridgeConfig {
  const parsed = bridgeConfigSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = describeIssues(parsed.error, input).map((line) => (line.startsWith('(root)') ? origin + line.slice('(root)'.length) : `${origin}.${line}`));
  throw new BridgeConfigError(`Invalid ${origin} config:\n${problems.map((p) => `  - ${p}`).join('\n')}`, problems);
}
