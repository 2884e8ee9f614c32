import type { Readable, Writable } from 'node:stream';
import { logger } from '../../common/log/logger.js';
import { emptyReading, round } from '../reading.js';
import type { BridgeReading, FirmwareBridge, PowerDownRequest, WakeReason } from '../types.js';
import { FrameDecoder, type DecoderCounts } from './frame-decoder.js';
import { MAX_SLEEP_SECONDS, PROTOCOL_VERSION, SENTENCE, formatCommand, formatSleep, parseAck, parseStatus, type Actuator, type DeviceAck, type DeviceStatus } from './messages.js';

export interface SerialBridgeOptions {
  /** Shown in the bridge's name and in reasons, e.g. /dev/ttyAMA0. */
  name?: string;
  /** The last good status is used until it is this old (ms); then its readings are listed as missing. */
  staleAfterMs?: number;
  /** Key of the device's temperature in `temperaturesC`. */
  temperatureName?: string;
  /** Clock (ms since epoch); tests pass a manual one. */
  now?: () => number;
  /** How long a sleep command waits for the device's acknowledgement. */
  sleepAckTimeoutMs?: number;
}

export interface SerialStats extends DecoderCounts {
  statusFrames: number;
  /** Frames whose version field is not PROTOCOL_VERSION. */
  unsupportedVersion: number;
  /** Sentence types this host does not know (a later firmware's diagnostics): ignored. */
  unknownSentences: number;
  /** Good checksum, but a field breaks the protocol (out of range, not an integer, too few). */
  invalidFields: number;
  /** Status frames never received, from gaps in their sequence numbers. */
  lostFrames: number;
  /** The sequence number went back to 0: the device rebooted and actuator states were sent again. */
  deviceRestarts: number;
  acks: number;
  refusals: number;
}

const SEQ_MODULUS = 0x10000;
const SERIAL_READINGS = ['stateOfCharge', 'voltageV', 'currentA', 'powerW', 'charging'] as const;

/**
 * The power-management microcontroller's line protocol (SERIAL-PROTOCOL.md) over any byte stream:
 * a tty opened with `serialport`, or a PassThrough in tests. Bad frames are counted and skipped.
 */
export class SerialBridge implements FirmwareBridge {
  readonly name: string;
  private readonly decoder = new FrameDecoder();
  private readonly extra = { statusFrames: 0, unsupportedVersion: 0, unknownSentences: 0, invalidFields: 0, lostFrames: 0, deviceRestarts: 0, acks: 0, refusals: 0 };
  private readonly staleAfterMs: number;
  private readonly temperatureName: string;
  private readonly now: () => number;
  private last: { status: DeviceStatus; receivedAt: number } | undefined;
  private lastInvalid: string | undefined;
  private problem: string | undefined;
  private input: Readable | undefined;
  private output: Writable | undefined;
  private detach: (() => void) | undefined;
  private commandSeq = 0;
  /** What the host last asked for, sent again after a device restart or a reconnect. */
  private readonly wanted = new Map<Actuator, number>();
  private readonly closeHooks: (() => Promise<void>)[] = [];
  /** Commands whose acknowledgement someone waits for (a sleep must be confirmed before the host halts). */
  private readonly awaitingAck = new Map<number, (ack: DeviceAck) => void>();
  private readonly sleepAckTimeoutMs: number;

  constructor(options: SerialBridgeOptions = {}) {
    this.name = `serial(${options.name ?? 'stream'})`;
    this.staleAfterMs = options.staleAfterMs ?? 5000;
    this.temperatureName = options.temperatureName ?? 'ups';
    this.now = options.now ?? Date.now;
    this.sleepAckTimeoutMs = options.sleepAckTimeoutMs ?? 3000;
  }

  get stats(): SerialStats {
    return { ...this.decoder.counts, ...this.extra };
  }

  /** Reads frames from `input`; commands go to `output` (the same stream for a serial port). */
  attach(input: Readable, output?: Writable): void {
    this.detach?.();
    this.input = input;
    this.output = output;
    this.problem = undefined;
    const onData = (chunk: Buffer | string) => {
      for (const fields of this.decoder.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk)) this.onFrame(fields);
    };
    const onError = (error: Error) => this.reportProblem(`serial stream error: ${error.message}`);
    // 'close' follows 'error': keep the error, which says more.
    const onEnd = () => this.problem === undefined && this.reportProblem('serial stream closed');
    input.on('data', onData);
    input.on('error', onError);
    input.on('end', onEnd);
    input.on('close', onEnd);
    this.detach = () => {
      input.off('data', onData);
      input.off('error', onError);
      input.off('end', onEnd);
      input.off('close', onEnd);
      this.detach = undefined;
    };
    void this.sendWanted();
  }

  /** Why no frames can arrive right now (port gone, not openable); shown in `missing` reasons. */
  reportProblem(reason: string): void {
    if (reason !== this.problem) logger.warn({ bridge: this.name, reason }, 'serial bridge problem');
    this.problem = reason;
  }

  onClose(hook: () => Promise<void>): void {
    this.closeHooks.push(hook);
  }

  async read(): Promise<BridgeReading> {
    const now = this.now();
    const last = this.last;
    const age = last ? now - last.receivedAt : Infinity;
    if (!last || age > this.staleAfterMs) {
      const reading = emptyReading(now);
      const why = last
        ? `last good status frame on ${this.name} is ${round(age / 1000, 1)} s old (stale after ${round(this.staleAfterMs / 1000, 1)} s)`
        : `no good status frame on ${this.name} yet`;
      const reason = [why, this.problem, this.errorSummary()].filter(Boolean).join('; ');
      for (const field of [...SERIAL_READINGS, `temperaturesC.${this.temperatureName}`]) reading.missing.push({ reading: field, reason });
      return reading;
    }

    const { status, receivedAt } = last;
    const reading = emptyReading(receivedAt);
    const empty = (field: string, protocolField: string) =>
      reading.missing.push({ reading: field, reason: `${this.name}: the device sent an empty ${protocolField} field` });
    if (status.stateOfCharge !== undefined) reading.stateOfCharge = status.stateOfCharge;
    else empty('stateOfCharge', 'soc');
    if (status.voltageV !== undefined) reading.voltageV = status.voltageV;
    else empty('voltageV', 'mv');
    if (status.currentA !== undefined) reading.currentA = status.currentA;
    else empty('currentA', 'ma');
    if (status.voltageV !== undefined && status.currentA !== undefined) reading.powerW = round(status.voltageV * status.currentA);
    else empty('powerW', 'mv or ma');
    if (status.charging !== undefined) reading.charging = status.charging;
    else empty('charging', 'chg');
    if (status.temperatureC !== undefined) reading.temperaturesC[this.temperatureName] = status.temperatureC;
    else empty(`temperaturesC.${this.temperatureName}`, 'temp');
    return reading;
  }

  async setFan(duty: number): Promise<void> {
    if (!(duty >= 0 && duty <= 1)) throw new RangeError(`fan duty must be 0..1, got ${duty}`);
    await this.command('FAN', Math.round(duty * 100));
  }

  async setLed(on: boolean): Promise<void> {
    await this.command('LED', on ? 1 : 0);
  }

  async setLowBatteryAlert(on: boolean): Promise<void> {
    await this.command('ALERT', on ? 1 : 0);
  }

  /**
   * Asks the device to power the board down after `graceSeconds` and up again after `seconds`
   * (or on motion). Resolves once the device says OK; rejects when it refuses or does not answer,
   * and then the host must not halt: nothing would wake it.
   */
  async armWake(request: PowerDownRequest): Promise<void> {
    if (!(Number.isInteger(request.seconds) && request.seconds >= 1 && request.seconds <= MAX_SLEEP_SECONDS)) {
      throw new RangeError(`sleep seconds must be an integer in 1..${MAX_SLEEP_SECONDS}, got ${request.seconds}`);
    }
    if (!(Number.isInteger(request.graceSeconds) && request.graceSeconds >= 0 && request.graceSeconds <= 600)) {
      throw new RangeError(`grace seconds must be an integer in 0..600, got ${request.graceSeconds}`);
    }
    const output = this.output;
    if (!output) throw new Error(`${this.name}: no link to the device, so no wake-up can be armed`);
    const seq = this.commandSeq;
    this.commandSeq = (this.commandSeq + 1) % SEQ_MODULUS;
    const acked = new Promise<DeviceAck>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.awaitingAck.delete(seq);
        reject(new Error(`${this.name}: the device did not acknowledge the sleep command within ${this.sleepAckTimeoutMs} ms`));
      }, this.sleepAckTimeoutMs);
      this.awaitingAck.set(seq, (ack) => {
        clearTimeout(timer);
        resolve(ack);
      });
    });
    await new Promise<void>((resolve, reject) => output.write(formatSleep(seq, request), 'latin1', (error) => (error ? reject(error) : resolve())));
    const ack = await acked;
    if (!ack.ok) throw new Error(`${this.name}: the device refused the sleep command (${ack.code || 'no code'})`);
  }

  /** From the device's status frames (EXB's wake field); undefined before one or from older firmware. */
  wakeReason(): WakeReason | undefined {
    return this.last?.status.wake;
  }

  async close(): Promise<void> {
    this.detach?.();
    const input = this.input;
    this.input = undefined;
    this.output = undefined;
    for (const hook of this.closeHooks.splice(0)) await hook();
    input?.destroy();
  }

  private onFrame(fields: string[]): void {
    const [sentence, version] = fields;
    if (Number(version) !== PROTOCOL_VERSION) {
      this.extra.unsupportedVersion += 1;
      return;
    }
    if (sentence === SENTENCE.status) this.onStatus(fields);
    else if (sentence === SENTENCE.ack) this.onAck(fields);
    else this.extra.unknownSentences += 1;
  }

  private onStatus(fields: string[]): void {
    const parsed = parseStatus(fields);
    if (!parsed.ok) {
      this.extra.invalidFields += 1;
      this.lastInvalid = parsed.error;
      return;
    }
    const status = parsed.value;
    const previous = this.last?.status.seq;
    if (previous !== undefined) {
      // Firmware starts counting at 0 on boot; 65535 → 0 is only the counter wrapping.
      if (status.seq === 0 && previous !== SEQ_MODULUS - 1) {
        this.extra.deviceRestarts += 1;
        void this.sendWanted();
      } else {
        const gap = (status.seq - previous - 1 + SEQ_MODULUS) % SEQ_MODULUS;
        // A huge gap is a repeated or reordered frame, not thousands of lost ones.
        if (gap < SEQ_MODULUS / 2) this.extra.lostFrames += gap;
      }
    }
    this.extra.statusFrames += 1;
    this.last = { status, receivedAt: this.now() };
  }

  private onAck(fields: string[]): void {
    const parsed = parseAck(fields);
    if (!parsed.ok) {
      this.extra.invalidFields += 1;
      this.lastInvalid = parsed.error;
    } else if (parsed.value.ok) {
      this.extra.acks += 1;
      this.awaitingAck.get(parsed.value.seq)?.(parsed.value);
      this.awaitingAck.delete(parsed.value.seq);
    } else {
      this.awaitingAck.get(parsed.value.seq)?.(parsed.value);
      this.awaitingAck.delete(parsed.value.seq);
      this.extra.refusals += 1;
      logger.warn({ bridge: this.name, seq: parsed.value.seq, code: parsed.value.code }, 'device refused a command');
    }
  }

  private async command(actuator: Actuator, value: number): Promise<void> {
    this.wanted.set(actuator, value);
    await this.write(actuator, value);
  }

  /** Without a writable stream the state is only remembered, and sent once one is attached. */
  private async write(actuator: Actuator, value: number): Promise<void> {
    const output = this.output;
    if (!output) return;
    const frame = formatCommand(this.commandSeq, actuator, value);
    this.commandSeq = (this.commandSeq + 1) % SEQ_MODULUS;
    await new Promise<void>((resolve, reject) => output.write(frame, 'latin1', (error) => (error ? reject(error) : resolve())));
  }

  private async sendWanted(): Promise<void> {
    try {
      for (const [actuator, value] of this.wanted) await this.write(actuator, value);
    } catch (error) {
      this.reportProblem(`could not send actuator states: ${(error as Error).message}`);
    }
  }

  private errorSummary(): string {
    const stats = this.stats;
    const parts = [
      stats.badChecksum && `${stats.badChecksum} bad checksums`,
      stats.truncated && `${stats.truncated} truncated`,
      stats.overlong && `${stats.overlong} overlong`,
      stats.malformed && `${stats.malformed} malformed`,
      stats.garbageBytes && `${stats.garbageBytes} garbage bytes`,
      stats.unsupportedVersion && `${stats.unsupportedVersion} of another protocol version`,
      stats.invalidFields && `${stats.invalidFields} with invalid fields (last: ${this.lastInvalid})`,
    ].filter(Boolean);
    return parts.length ? `received ${parts.join(', ')}` : '';
  }
}
