import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { redactUrl } from '../config/agent-config.js';
import { throttledWarning } from '../log/throttled.js';
import type { RgbTarget } from '../preprocess/image-to-rgb.js';
import { BackoffSchedule } from '../retry/backoff-schedule.js';
import type { Frame, FrameSource } from './frame-source.js';

/*
 * USB (V4L2) cameras, RTSP/HTTP streams and video files through one long-running
 * ffmpeg. ffmpeg decodes and scales to the model's input, and writes raw RGB: no frame
 * is JPEG-encoded and decoded again. The source keeps only the latest frame: a slow
 * consumer gets the newest one, and the frames it missed are counted, never queued.
 */

export interface StreamSourceOptions {
  /** A video file, a V4L2 device (/dev/video0), or an rtsp:// or http(s):// URL. */
  url: string;
  target: RgbTarget;
  /** Files: start again at the end. */
  loop: boolean;
  /** Files: deliver at the file's own frame rate (true) or as fast as they decode (false). */
  realtime: boolean;
  /** No frame for this long: the stream is stalled, and ffmpeg is restarted. */
  stallTimeoutMs: number;
  /** The ffmpeg program (found on PATH by default). */
  ffmpeg?: string;
  restartBackoff?: { minMs: number; maxMs: number };
  /** The environment ffmpeg runs in (its PATH is where it is looked for). */
  env?: NodeJS.ProcessEnv;
}

export interface StreamStats {
  frames: number;
  /** Frames overwritten by a newer one before the agent took them. */
  dropped: number;
  restarts: number;
}

export class StreamSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamSourceError';
  }
}

type InputKind = 'device' | 'network' | 'file';

function inputKind(url: string): InputKind {
  if (url.startsWith('/dev/')) return 'device';
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? 'network' : 'file';
}

/** The ffmpeg arguments: input by kind, then scale (and crop) to the model input as raw RGB on stdout. */
export function ffmpegArguments(options: Pick<StreamSourceOptions, 'url' | 'target' | 'loop' | 'realtime'>): string[] {
  const { width, height, resize } = options.target;
  const kind = inputKind(options.url);
  const input =
    kind === 'device'
      ? ['-f', 'v4l2', '-i', options.url]
      : kind === 'network'
        ? [...(options.url.startsWith('rtsp') ? ['-rtsp_transport', 'tcp'] : []), '-i', options.url]
        : [...(options.realtime ? ['-re'] : []), ...(options.loop ? ['-stream_loop', '-1'] : []), '-i', options.url];
  const scale =
    resize === 'center-crop'
      ? `scale=${width}:${height}:force_original_aspect_ratio=increase:flags=area,crop=${width}:${height}`
      : `scale=${width}:${height}:flags=area`;
  return ['-hide_banner', '-loglevel', 'error', '-nostdin', ...input, '-an', '-vf', scale, '-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1'];
}

/** What ffmpeg's last words mean for the operator, with the fix. */
function explainFailure(url: string, stderr: string): string {
  const shown = redactUrl(url);
  if (/401|Unauthorized|authorization failed/i.test(stderr)) return `the camera at ${shown} refused the credentials: check the user and password in source.url`;
  if (/Connection refused|No route to host|timed out|Network is unreachable/i.test(stderr)) return `cannot reach ${shown}: is the camera on and the address right?`;
  if (/No such file or directory/i.test(stderr)) return `${shown} does not exist`;
  if (/Permission denied/i.test(stderr)) return `no permission to read ${shown}: add the agent's user to the video group`;
  const last = stderr.trim().split('\n').at(-1) ?? '';
  return `ffmpeg stopped reading ${shown}${last ? `: ${last.replaceAll(url, shown)}` : ''}`;
}

function onPath(program: string, env: NodeJS.ProcessEnv): boolean {
  if (program.includes('/')) return fs.existsSync(program);
  return (env.PATH ?? '').split(path.delimiter).some((dir) => dir !== '' && fs.existsSync(path.join(dir, program)));
}

export class StreamSource implements FrameSource {
  readonly name: string;
  readonly stats: StreamStats = { frames: 0, dropped: 0, restarts: 0 };
  private readonly frameBytes: number;
  private child: ChildProcess | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private latest: Frame | undefined;
  private waiter: ((frame: Frame | undefined) => void) | undefined;
  private ended = false;
  private closed = false;
  private lastFrameAt = 0;
  private readonly backoff: BackoffSchedule;
  private stallTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private problem: string | undefined;
  /** A camera that fails, recovers and fails again would otherwise say so at every restart. */
  private readonly warn = throttledWarning(60_000);

  constructor(private readonly options: StreamSourceOptions) {
    this.name = `stream ${redactUrl(options.url)}`;
    this.frameBytes = options.target.width * options.target.height * 3;
    this.backoff = new BackoffSchedule(options.restartBackoff ?? { minMs: 1000, maxMs: 60_000 });
    if (inputKind(options.url) === 'device' && !fs.existsSync(options.url)) {
      throw new StreamSourceError(`no camera at ${options.url}: is it plugged in? (ls /dev/video* lists the ones there are; set source.url to one)`);
    }
    const program = options.ffmpeg ?? 'ffmpeg';
    if (!onPath(program, options.env ?? process.env)) throw new StreamSourceError(`ffmpeg is not installed, and ${this.name} needs it: apt-get install ffmpeg`);
    if (inputKind(options.url) === 'file' && !fs.existsSync(options.url)) throw new StreamSourceError(`video file ${options.url} does not exist: set source.url to a video file, a /dev/video device or a stream URL`);
    this.start();
  }

  /** Why frames are not coming, while they are not; undefined while they are. */
  get failure(): string | undefined {
    return this.problem;
  }

  private start(): void {
    const program = this.options.ffmpeg ?? 'ffmpeg';
    const child = spawn(program, ffmpegArguments(this.options), { stdio: ['ignore', 'pipe', 'pipe'], env: this.options.env ?? process.env });
    this.child = child;
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    child.stdout!.on('data', (chunk: Buffer) => this.onData(chunk));
    child.on('error', (error: NodeJS.ErrnoException) => {
      this.problem =
        error.code === 'ENOENT' ? `ffmpeg is not installed, and ${this.name} needs it: apt-get install ffmpeg` : `could not start ffmpeg for ${this.name}: ${error.message}`;
    });
    child.on('close', (code) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.pending = [];
      this.pendingBytes = 0;
      if (this.closed) return;
      // A file that was read to its end (and not looped) is a source that has ended.
      if (code === 0 && inputKind(this.options.url) === 'file' && !this.options.loop) {
        this.ended = true;
        this.resolveWaiter(undefined);
        return;
      }
      this.problem ??= explainFailure(this.options.url, stderr);
      this.scheduleRestart();
    });
    this.armStallTimer();
  }

  private scheduleRestart(): void {
    const delay = this.backoff.current();
    this.backoff.lengthen();
    this.warn(`${this.problem}; starting ffmpeg again in ${(delay / 1000).toFixed(1)} s`);
    clearTimeout(this.stallTimer);
    this.restartTimer = setTimeout(() => {
      this.stats.restarts++;
      this.problem = undefined;
      this.start();
    }, delay);
  }

  private armStallTimer(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      if (this.closed || !this.child) return;
      this.problem = `no frame from ${this.name} for ${this.options.stallTimeoutMs / 1000} s: the stream stalled`;
      this.child.kill('SIGKILL');
    }, this.options.stallTimeoutMs);
    this.stallTimer.unref();
  }

  private onData(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    while (this.pendingBytes >= this.frameBytes) {
      const joined = Buffer.concat(this.pending, this.pendingBytes);
      const pixels = Buffer.from(joined.subarray(0, this.frameBytes));
      const rest = joined.subarray(this.frameBytes);
      this.pending = rest.length > 0 ? [rest] : [];
      this.pendingBytes = rest.length;
      this.onFrame(pixels);
    }
  }

  private onFrame(pixels: Buffer): void {
    this.stats.frames++;
    this.lastFrameAt = Date.now();
    this.problem = undefined;
    this.backoff.reset();
    this.armStallTimer();
    const frame: Frame = { id: String(this.stats.frames), origin: this.name, bytes: Buffer.alloc(0), pixels, capturedAt: this.lastFrameAt };
    if (this.waiter) {
      this.resolveWaiter(frame);
      return;
    }
    if (this.latest) this.stats.dropped++;
    this.latest = frame;
  }

  private resolveWaiter(frame: Frame | undefined): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.(frame);
  }

  /** The newest frame not yet taken, or the next one to arrive; undefined once a file has ended or the source is closed. */
  next(): Promise<Frame | undefined> {
    if (this.latest) {
      const frame = this.latest;
      this.latest = undefined;
      return Promise.resolve(frame);
    }
    if (this.ended || this.closed) return Promise.resolve(undefined);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.stallTimer);
    clearTimeout(this.restartTimer);
    this.resolveWaiter(undefined);
    const child = this.child;
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('close', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  }
}
