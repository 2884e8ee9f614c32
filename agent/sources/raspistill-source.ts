import { logger } from '../../common/log/logger.js';
import { throttledWarning } from '../../common/log/throttled.js';
import { BackoffSchedule } from '../../common/retry/backoff-schedule.js';
import { JpegSplitter, onPath, SourceError, type ChildStreamStats } from './child-stream.js';
import type { Frame, FrameSource } from './frame-source.js';

/*
 * The Pi camera on the legacy stack (Buster and older, raspistill) kept open: node-raspistill
 * runs raspistill in timelapse mode (-tl) writing JPEGs to stdout, so the camera and its
 * exposure stay settled between frames, as rpicam-vid keeps them on current systems.
 * node-raspistill is loaded only here, on a Pi that uses it.
 */

export interface RaspistillSourceOptions {
  width: number;
  height: number;
  frameRate: number;
  stallTimeoutMs: number;
  restartBackoff?: { minMs: number; maxMs: number };
}

/** One timelapse runs this long, then another starts: raspistill needs an end time (-t), and a day is as good as forever. */
const TIMELAPSE_MS = 24 * 3_600_000;

interface RaspistillCamera {
  timelapse(intervalMs: number, execTimeMs: number, onImage: (image: Buffer) => void): Promise<void>;
  stop(): void;
}

export class RaspistillSource implements FrameSource {
  readonly name = 'camera raspistill (kept open)';
  readonly continuousScene = true;
  readonly stats: ChildStreamStats = { frames: 0, dropped: 0, restarts: 0 };
  private latest: Frame | undefined;
  private waiter: ((frame: Frame | undefined) => void) | undefined;
  private closed = false;
  private camera: RaspistillCamera | undefined;
  private readonly backoff: BackoffSchedule;
  private stallTimer: NodeJS.Timeout | undefined;
  private readonly warn = throttledWarning(60_000);
  private readonly running: Promise<void>;
  /** Set by the stall timer, so that the stop it causes is told apart from raspistill failing. */
  private stalled = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly options: RaspistillSourceOptions) {
    // Checked here: a spawn that fails may never report its exit to node-raspistill, which would then wait forever.
    if (!onPath('raspistill')) throw new SourceError('raspistill is not installed, and the legacy camera stack needs it: apt-get install libraspberrypi-bin, or on current Raspberry Pi OS use rpicam-vid (apt-get install rpicam-apps)');
    this.backoff = new BackoffSchedule(options.restartBackoff ?? { minMs: 1000, maxMs: 60_000 });
    this.running = this.run();
  }

  get droppedFrames(): number {
    return this.stats.dropped;
  }

  private async run(): Promise<void> {
    type Module = { Raspistill: new (options: Record<string, unknown>) => RaspistillCamera };
    const loaded = (await import('node-raspistill')) as unknown as Module & { default?: Module };
    const Raspistill = loaded.Raspistill ?? loaded.default!.Raspistill;
    const intervalMs = Math.max(1, Math.round(1000 / this.options.frameRate));
    while (!this.closed) {
      // One splitter per run: node-raspistill cuts images where a stdout chunk starts with a JPEG header, which can join two.
      const splitter = new JpegSplitter();
      const camera = new Raspistill({ noFileSave: true, width: this.options.width, height: this.options.height, encoding: 'jpg', noPreview: true });
      this.camera = camera;
      this.armStallTimer();
      let problem: string;
      try {
        await camera.timelapse(intervalMs, TIMELAPSE_MS, (image) => {
          for (const bytes of splitter.push(image)) this.onImage(bytes);
        });
        problem = 'the timelapse ended';
      } catch (error) {
        problem = this.stalled ? `no frame from raspistill for ${this.options.stallTimeoutMs / 1000} s: the camera stalled` : `raspistill stopped: ${(error as Error).message.trim().split('\n').at(-1)}`;
      }
      clearTimeout(this.stallTimer);
      this.stalled = false;
      if (this.closed) return;
      const delay = this.backoff.current();
      this.backoff.lengthen();
      this.warn(`${problem}; starting raspistill again in ${(delay / 1000).toFixed(1)} s`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.restartTimer = setTimeout(resolve, delay);
      });
      if (this.closed) return;
      this.stats.restarts++;
    }
  }

  private armStallTimer(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      this.stalled = true;
      this.camera?.stop();
    }, this.options.stallTimeoutMs);
    this.stallTimer.unref();
  }

  private onImage(bytes: Buffer): void {
    this.stats.frames++;
    this.backoff.reset();
    this.armStallTimer();
    const frame: Frame = { id: String(this.stats.frames), origin: this.name, bytes, capturedAt: Date.now() };
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter(frame);
      return;
    }
    if (this.latest) this.stats.dropped++;
    this.latest = frame;
  }

  next(): Promise<Frame | undefined> {
    if (this.latest) {
      const frame = this.latest;
      this.latest = undefined;
      return Promise.resolve(frame);
    }
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.stallTimer);
    clearTimeout(this.restartTimer);
    this.wake?.();
    this.camera?.stop();
    this.waiter?.(undefined);
    this.waiter = undefined;
    await this.running.catch((error: Error) => logger.warn(`raspistill: ${error.message}`));
  }
}
