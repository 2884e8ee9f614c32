/** One encoded frame from a camera, a folder or a dataset, before preprocessing. */
export interface Frame {
  id: string;
  /** Where it came from: a file path, or the camera command. */
  origin: string;
  /** The encoded image (JPEG, PNG, WebP or BMP), as an image offload would send it; empty when the source gives pixels. */
  bytes: Buffer;
  /** RGB already at the model's input size (a stream decoded and scaled by ffmpeg): used as is, nothing decoded. */
  pixels?: Buffer;
  /** The class name, when the source knows it (a labelled replay). */
  trueLabel?: string;
  capturedAt: number;
}

/**
 * Every frame source: the agent asks for the next frame when its pacing says
 * a frame is due; `undefined` means the source has ended (a replay that does
 * not loop). Sources that wait for the world (a watched folder) resolve when
 * a frame arrives or `close()` is called.
 */
export interface FrameSource {
  readonly name: string;
  /**
   * Whether the frames are one scene going on (a camera, a video stream): each frame is the one
   * before plus what changed. False for sources of unrelated images (a dataset replay, a watched
   * folder): there the motion gate would take each new image for a lighting change and events
   * would have no scene to happen in, so neither runs on them.
   */
  readonly continuousScene: boolean;
  next(): Promise<Frame | undefined>;
  close(): Promise<void>;
  /** Streams: frames a newer one replaced before the agent took them (latest-frame semantics). */
  readonly droppedFrames?: number;
}

/** Sleeps until the next frame slot of a frame rate that may change between frames. */
export class FramePacer {
  private nextAt = 0;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Milliseconds to wait before the next frame at `frameRate`; records the slot taken. */
  delayFor(frameRate: number): number {
    const interval = 1000 / frameRate;
    const now = this.now();
    if (this.nextAt < now - interval) this.nextAt = now;
    const wait = Math.max(0, this.nextAt - now);
    this.nextAt = Math.max(this.nextAt, now) + interval;
    return wait;
  }
}
