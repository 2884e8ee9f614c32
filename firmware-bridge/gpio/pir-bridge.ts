import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { throttledWarning } from '../../common/log/throttled.js';
import { BackoffSchedule } from '../../common/retry/backoff-schedule.js';
import { emptyReading } from '../reading.js';
import type { BridgeReading, FirmwareBridge } from '../types.js';

export interface PirBridgeOptions {
  /** The GPIO chip (gpiochip0 on a Pi 4; the header is gpiochip4 on a Pi 5 with older kernels, gpiochip0 with newer ones). */
  chip: string;
  /** The line (BCM number on a Pi) the sensor's output is wired to. */
  line: number;
  env?: NodeJS.ProcessEnv;
  restartBackoff?: { minMs: number; maxMs: number };
}

/** libgpiod 1.x and 2.x spell gpiomon's options differently (Debian bookworm has 1.6, trixie 2.x). */
export function gpiomonArguments(version: 1 | 2, chip: string, line: number): string[] {
  return version === 1 ? ['--rising-edge', chip, String(line)] : ['--edges=rising', '--chip', chip, String(line)];
}

/** Which libgpiod's gpiomon this is; undefined when there is none. */
function gpiomonVersion(env: NodeJS.ProcessEnv): 1 | 2 | undefined {
  const said = spawnSync('gpiomon', ['--version'], { env, encoding: 'utf8', timeout: 5000 });
  if ((said.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined;
  return /v?2\.\d/.test(`${said.stdout}`.split('\n')[0] ?? '') ? 2 : 1;
}

/**
 * A PIR motion sensor on a GPIO line, read through libgpiod's `gpiomon` (no root needed, only
 * access to /dev/gpiochip*): every rising edge is motion. It feeds the motion gate (a frame
 * after a PIR edge is classified however still the picture looks) and, through a
 * microcontroller's input, wakes a powered-down board.
 */
export class PirBridge implements FirmwareBridge {
  readonly name: string;
  private child: ChildProcess | undefined;
  private lastMotion: number | undefined;
  private edges = 0;
  private closed = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly backoff: BackoffSchedule;
  private readonly warn = throttledWarning(60_000);
  private readonly args: string[];
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly options: PirBridgeOptions) {
    this.name = `pir(${options.chip} line ${options.line})`;
    this.env = options.env ?? process.env;
    const version = gpiomonVersion(this.env);
    if (version === undefined) throw new Error(`${this.name}: gpiomon is not installed: apt-get install gpiod`);
    this.backoff = new BackoffSchedule(options.restartBackoff ?? { minMs: 1000, maxMs: 60_000 });
    this.args = gpiomonArguments(version, options.chip, options.line);
    this.start();
  }

  /** Rising edges seen since start. */
  get motionEdges(): number {
    return this.edges;
  }

  lastMotionAt(): number | undefined {
    return this.lastMotion;
  }

  private start(): void {
    const child = spawn('gpiomon', this.args, { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let stderr = '';
    let pending = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk.toString()).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (!/rising/i.test(line)) continue;
        this.edges++;
        this.lastMotion = Date.now();
        this.backoff.reset();
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    child.on('error', (error) => (stderr += error.message));
    child.on('close', (code, signal) => {
      if (this.child !== child || this.closed) return;
      this.child = undefined;
      const delay = this.backoff.current();
      this.backoff.lengthen();
      const why = stderr.trim().split('\n').at(-1) || (signal ? `killed (${signal})` : `exit code ${code}`);
      const hint = /permission/i.test(stderr) ? ' (add the agent\'s user to the gpio group)' : /chip|line|offset/i.test(stderr) ? ' (check chip and line: gpioinfo lists them)' : '';
      this.warn(`${this.name}: gpiomon stopped: ${why}${hint}; starting it again in ${(delay / 1000).toFixed(1)} s`);
      this.restartTimer = setTimeout(() => this.start(), delay);
    });
  }

  async read(): Promise<BridgeReading> {
    return emptyReading(Date.now());
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('close', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  }
}
