import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { throttledWarning } from '../../common/log/throttled.js';
import { BackoffSchedule } from '../../common/retry/backoff-schedule.js';
import type { Frame, FrameSource } from './frame-source.js';

/*
 * A camera or stream as one long-running child process that writes frames to its
 * stdout (ffmpeg's raw RGB, rpicam-vid's MJPEG). Only the latest frame is kept: a slow
 * consumer gets the newest one, and the frames it missed are counted, never queued.
 * A child that dies or stalls is started again with backoff, and says why once.
 */

/** Cuts a child's stdout into frames. */
export interface FrameSplitter {
  /** Takes a chunk of output; returns the frames it completed, oldest first. */
  push(chunk: Buffer): Buffer[];
  /** Drops a partial frame (the child was restarted). */
  reset(): void;
}

/** Frames of a fixed size, as ffmpeg's rawvideo writes them. */
export class FixedSizeSplitter implements FrameSplitter {
  /** The frame being filled: chunks are copied straight into it, once. */
  private current: Buffer | undefined;
  private filled = 0;

  constructor(private readonly frameBytes: number) {}

  push(chunk: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    for (let at = 0; at < chunk.length; ) {
      this.current ??= Buffer.allocUnsafe(this.frameBytes);
      const copied = chunk.copy(this.current, this.filled, at, Math.min(chunk.length, at + this.frameBytes - this.filled));
      this.filled += copied;
      at += copied;
      if (this.filled === this.frameBytes) {
        frames.push(this.current);
        this.current = undefined;
        this.filled = 0;
      }
    }
    return frames;
  }

  reset(): void {
    this.current = undefined;
    this.filled = 0;
  }
}

/**
 * JPEG images one after another (MJPEG), cut at the start (FF D8) and end (FF D9) markers.
 * Inside the entropy-coded data a 0xFF byte is always followed by 00 or a restart marker, so
 * FF D9 there is the end of the image.
 */
export class JpegSplitter implements FrameSplitter {
  private buffer: Buffer = Buffer.alloc(0);
  /** Bound on a frame being assembled: garbage without an end marker must not grow without end. */
  constructor(private readonly maxFrameBytes = 16 * 1024 * 1024) {}

  push(chunk: Buffer): Buffer[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const frames: Buffer[] = [];
    for (;;) {
      const start = this.buffer.indexOf(SOI);
      if (start < 0) {
        // Keep a trailing FF: it may begin the next start marker.
        this.buffer = this.buffer.subarray(this.buffer.length - (this.buffer.at(-1) === 0xff ? 1 : 0));
        return frames;
      }
      const end = this.buffer.indexOf(EOI, start + 2);
      if (end < 0) {
        this.buffer = this.buffer.subarray(start);
        if (this.buffer.length > this.maxFrameBytes) this.buffer = Buffer.alloc(0);
        return frames;
      }
      frames.push(Buffer.from(this.buffer.subarray(start, end + 2)));
      this.buffer = this.buffer.subarray(end + 2);
    }
  }

  reset(): void {
    this.buffer = Buffer.alloc(0);
  }
}

const SOI = Buffer.from([0xff, 0xd8]);
const EOI = Buffer.from([0xff, 0xd9]);

export interface ChildStreamOptions {
  /** Shown in logs and status; never holds a password. */
  name: string;
  program: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  splitter: FrameSplitter;
  /** The Frame for a cut-out frame's bytes. */
  toFrame(bytes: Buffer, id: string, capturedAt: number): Frame;
  /** A child that exits cleanly has reached the end (a file read once), rather than failed. */
  endsOnCleanExit: boolean;
  stallTimeoutMs: number;
  restartBackoff?: { minMs: number; maxMs: number };
  /** What the child's last words mean for the operator, with the fix. */
  explainFailure(stderr: string): string;
  /** The fix when the program is not installed. */
  installHint: string;
}

export interface ChildStreamStats {
  frames: number;
  /** Frames overwritten by a newer one before the agent took them. */
  dropped: number;
  restarts: number;
}

export class SourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SourceError';
  }
}

/** Whether a program is found where spawn would look: a path, or PATH in `env`. */
export function onPath(program: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (program.includes('/')) return fs.existsSync(program);
  return (env.PATH ?? '').split(path.delimiter).some((dir) => dir !== '' && fs.existsSync(path.join(dir, program)));
}

export class ChildStreamSource implements FrameSource {
  readonly name: string;
  /** Video: the Pi camera, V4L2, RTSP/HTTP streams, files (the demo camera among them). */
  readonly continuousScene = true;
  readonly stats: ChildStreamStats = { frames: 0, dropped: 0, restarts: 0 };
  private child: ChildProcess | undefined;
  private latest: Frame | undefined;
  private waiter: ((frame: Frame | undefined) => void) | undefined;
  private ended = false;
  private closed = false;
  private readonly backoff: BackoffSchedule;
  private stallTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private problem: string | undefined;
  /** A camera that fails, recovers and fails again would otherwise say so at every restart. */
  private readonly warn = throttledWarning(60_000);

  constructor(private readonly options: ChildStreamOptions) {
    this.name = options.name;
    this.backoff = new BackoffSchedule(options.restartBackoff ?? { minMs: 1000, maxMs: 60_000 });
    if (!onPath(options.program, options.env)) throw new SourceError(`${options.program} is not installed, and ${this.name} needs it: ${options.installHint}`);
    this.start();
  }

  get droppedFrames(): number {
    return this.stats.dropped;
  }

  /** Why frames are not coming, while they are not; undefined while they are. */
  get failure(): string | undefined {
    return this.problem;
  }

  private start(): void {
    const child = spawn(this.options.program, this.options.args, { stdio: ['ignore', 'pipe', 'pipe'], env: this.options.env ?? process.env });
    this.child = child;
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    child.stdout!.on('data', (chunk: Buffer) => {
      for (const bytes of this.options.splitter.push(chunk)) this.onFrame(bytes);
    });
    child.on('error', (error: Error) => (this.problem = `could not start ${this.options.program} for ${this.name}: ${error.message}`));
    child.on('close', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.options.splitter.reset();
      if (this.closed) return;
      if (code === 0 && this.options.endsOnCleanExit) {
        this.ended = true;
        this.resolveWaiter(undefined);
        return;
      }
      // Killed from outside (an OOM kill, an operator): its last words are about something else.
      this.problem ??= signal ? `${this.options.program} for ${this.name} was killed (${signal})` : this.options.explainFailure(stderr);
      this.scheduleRestart();
    });
    this.armStallTimer();
  }

  private scheduleRestart(): void {
    const delay = this.backoff.current();
    this.backoff.lengthen();
    this.warn(`${this.problem}; starting ${this.options.program} again in ${(delay / 1000).toFixed(1)} s`);
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

  private onFrame(bytes: Buffer): void {
    this.stats.frames++;
    this.problem = undefined;
    this.backoff.reset();
    this.armStallTimer();
    const frame = this.options.toFrame(bytes, String(this.stats.frames), Date.now());
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

  /** The newest frame not yet taken, or the next one to arrive; undefined once the stream has ended or the source is closed. */
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
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('close', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  }
}
