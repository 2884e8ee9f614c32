import { spawn } from 'node:child_process';
import { BackoffSchedule } from '../../common/retry/backoff-schedule.js';
import { logger } from '../../common/log/logger.js';
import type { Frame, FrameSource } from './frame-source.js';

/** The legacy stack's raspistill is kept open instead (raspistill-source.ts). */
export type CameraCommand = 'rpicam-still' | 'libcamera-still';

export interface CameraOptions {
  command: CameraCommand | 'auto';
  width: number;
  height: number;
  timeoutMs: number;
  /** Backoff after a failed capture: starts here, doubles, capped. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** PATH to search, for tests that put a fake camera program first. */
  env?: NodeJS.ProcessEnv;
}

/** Arguments for one JPEG still on stdout, without preview, as each tool spells them. */
function captureArgs(width: number, height: number): string[] {
  return ['-o', '-', '--width', String(width), '--height', String(height), '-t', '1', '-n', '--encoding', 'jpg'];
}

export class CameraError extends Error {
  override name = 'CameraError';
}

/**
 * Stills from the Raspberry Pi camera through a child process: rpicam-still on
 * current Raspberry Pi OS, libcamera-still on Bullseye. A capture that fails or hangs past the timeout is killed and
 * retried with exponential backoff; the agent keeps running meanwhile.
 */
export class CameraSource implements FrameSource {
  readonly name: string;
  readonly continuousScene = true;
  private command: CameraCommand | undefined;
  private frameNumber = 0;
  private failures = 0;
  private readonly backoff: BackoffSchedule;
  private closed = false;

  constructor(private readonly options: CameraOptions) {
    this.backoff = new BackoffSchedule({ minMs: options.retryBaseMs ?? 500, maxMs: options.retryMaxMs ?? 30_000 });
    this.name = `camera:${options.command}`;
  }

  private capture(command: CameraCommand): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, captureArgs(this.options.width, this.options.height), {
        env: this.options.env ?? process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const chunks: Buffer[] = [];
      let stderr = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new CameraError(`${command} did not finish within ${this.options.timeoutMs} ms (killed)`));
      }, this.options.timeoutMs);
      child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-500)));
      child.on('error', (error) => {
        clearTimeout(timer);
        reject(new CameraError(`${command} cannot be started: ${error.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const bytes = Buffer.concat(chunks);
        if (code === 0 && bytes.length > 2 && bytes[0] === 0xff && bytes[1] === 0xd8) resolve(bytes);
        else reject(new CameraError(`${command} exited with ${signal ?? `code ${code}`} and ${bytes.length} bytes of output: ${stderr.trim() || 'no message'}`));
      });
    });
  }

  private async resolveCommand(): Promise<CameraCommand> {
    if (this.command) return this.command;
    const order: CameraCommand[] = this.options.command === 'auto' ? ['rpicam-still', 'libcamera-still'] : [this.options.command];
    const reasons: string[] = [];
    for (const command of order) {
      try {
        const probe = await this.capture(command);
        if (probe.length > 0) {
          this.command = command;
          return command;
        }
      } catch (error) {
        reasons.push((error as Error).message);
      }
    }
    throw new CameraError(`no camera command works (${reasons.join('; ')}). On Raspberry Pi OS install rpicam-apps; on the legacy stack install libraspberrypi-bin (raspistill) and enable the camera with raspi-config.`);
  }

  async next(): Promise<Frame | undefined> {
    while (!this.closed) {
      try {
        const command = await this.resolveCommand();
        const bytes = await this.capture(command);
        this.failures = 0;
        this.backoff.reset();
        return { id: `cam-${this.frameNumber++}`, origin: command, bytes, capturedAt: Date.now() };
      } catch (error) {
        this.failures++;
        const delay = this.backoff.current();
        this.backoff.lengthen();
        logger.warn(`camera capture failed (${(error as Error).message}); retry ${this.failures} in ${delay} ms`);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
    return undefined;
  }

  /** Consecutive failed captures, for the status line. */
  get consecutiveFailures(): number {
    return this.failures;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
