import type { PowerDownRequest, WakeReason } from '../types.js';
import { crc8Hex } from './crc8.js';

/** Major version of SERIAL-PROTOCOL.md; a frame with another version is not read. */
export const PROTOCOL_VERSION = 1;

export const SENTENCE = {
  /** device → host: battery status, about once a second */
  status: 'EXB',
  /** host → device: set an actuator */
  command: 'EXC',
  /** device → host: command acknowledged or refused */
  ack: 'EXA',
  /** host → device: power the board down and wake it later */
  sleep: 'EXS',
} as const;

/** EXB's `wake` field: why the device last powered the board up. */
const WAKE_FIELD: Record<string, WakeReason> = { TIMER: 'timer', MOTION: 'motion', BUTTON: 'button', POWER: 'power' };

/** The longest sleep the protocol carries: a week. */
export const MAX_SLEEP_SECONDS = 604_800;

export type Actuator = 'FAN' | 'LED' | 'ALERT';

/** One EXB frame in SI units; a field the device left empty is undefined. */
export interface DeviceStatus {
  seq: number;
  stateOfCharge?: number;
  voltageV?: number;
  /** Positive while the battery discharges. */
  currentA?: number;
  charging?: boolean;
  temperatureC?: number;
  /** Why the board last powered up (EXB field 9, protocol revision 1.1). */
  wake?: WakeReason;
}

export interface DeviceAck {
  seq: number;
  ok: boolean;
  /** The device's refusal code (RANGE, UNKNOWN, ...). */
  code?: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** `$<fields joined by commas>*<crc8>\r\n`. */
export function formatFrame(fields: (string | number)[]): string {
  const body = fields.join(',');
  return `$${body}*${crc8Hex(body)}\r\n`;
}

export function formatCommand(seq: number, actuator: Actuator, value: number): string {
  return formatFrame([SENTENCE.command, PROTOCOL_VERSION, seq, actuator, value]);
}

/** EXS,<ver>,<seq>,<sleep s>,<wake on motion 0|1>,<grace s>. */
export function formatSleep(seq: number, request: PowerDownRequest): string {
  return formatFrame([SENTENCE.sleep, PROTOCOL_VERSION, seq, Math.round(request.seconds), request.wakeOnMotion ? 1 : 0, Math.round(request.graceSeconds)]);
}

export function formatStatus(status: { seq: number; socTenthsPercent?: number; millivolts?: number; milliamps?: number; charging?: 0 | 1; tempTenthsC?: number; wake?: string }): string {
  const field = (value: number | undefined) => (value === undefined ? '' : value);
  return formatFrame([
    SENTENCE.status,
    PROTOCOL_VERSION,
    status.seq,
    field(status.socTenthsPercent),
    field(status.millivolts),
    field(status.milliamps),
    field(status.charging),
    field(status.tempTenthsC),
    ...(status.wake === undefined ? [] : [status.wake]),
  ]);
}

/** A field that breaks the protocol's rules; the whole frame is then dropped. */
class FieldError extends Error {}

/** An integer field within [min, max]; undefined when empty. */
function integerField(fields: string[], index: number, name: string, min: number, max: number): number | undefined {
  const text = fields[index];
  if (text === undefined || text === '') return undefined;
  if (!/^-?\d+$/.test(text)) throw new FieldError(`${name} '${text}' is not an integer`);
  const value = Number(text);
  if (value < min || value > max) throw new FieldError(`${name} ${value} is outside ${min}..${max}`);
  return value;
}

function requiredSeq(fields: string[]): number {
  const seq = integerField(fields, 2, 'seq', 0, 0xffff);
  if (seq === undefined) throw new FieldError('seq is empty');
  return seq;
}

function parseWith<T>(parse: () => T): Parsed<T> {
  try {
    return { ok: true, value: parse() };
  } catch (error) {
    if (error instanceof FieldError) return { ok: false, error: error.message };
    throw error;
  }
}

/** EXB,<ver>,<seq>,<soc in 0.1 %>,<mV>,<mA>,<chg 0|1>,<temp in 0.1 °C>[,later fields ignored]. */
export function parseStatus(fields: string[]): Parsed<DeviceStatus> {
  return parseWith(() => {
    if (fields.length < 8) throw new FieldError(`EXB needs 8 fields, got ${fields.length}`);
    const status: DeviceStatus = { seq: requiredSeq(fields) };
    const soc = integerField(fields, 3, 'soc', 0, 1000);
    const millivolts = integerField(fields, 4, 'mv', 0, 65535);
    const milliamps = integerField(fields, 5, 'ma', -100_000, 100_000);
    const charging = integerField(fields, 6, 'chg', 0, 1);
    const temperature = integerField(fields, 7, 'temp', -600, 2000);
    if (soc !== undefined) status.stateOfCharge = soc / 1000;
    if (millivolts !== undefined) status.voltageV = millivolts / 1000;
    if (milliamps !== undefined) status.currentA = milliamps / 1000;
    if (charging !== undefined) status.charging = charging === 1;
    if (temperature !== undefined) status.temperatureC = temperature / 10;
    const wake = fields[8];
    if (wake !== undefined && wake !== '') {
      // An unknown word is a later revision's reason: left out, not an error.
      if (WAKE_FIELD[wake] !== undefined) status.wake = WAKE_FIELD[wake];
    }
    return status;
  });
}

/** EXA,<ver>,<command seq>,OK | EXA,<ver>,<command seq>,ERR,<code>. */
export function parseAck(fields: string[]): Parsed<DeviceAck> {
  return parseWith(() => {
    const seq = requiredSeq(fields);
    if (fields[3] === 'OK') return { seq, ok: true };
    if (fields[3] === 'ERR') return { seq, ok: false, code: fields[4] ?? '' };
    throw new FieldError(`EXA result '${fields[3] ?? ''}' is neither OK nor ERR`);
  });
}
