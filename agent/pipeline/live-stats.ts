const LATENCY_WINDOW = 200;

/** Rolling figures for the status line and telemetry: frames/s, exit histogram, live accuracy. */
export class LiveStats {
  frames = 0;
  labelled = 0;
  correct = 0;
  skipped = 0;
  /** Frames after a whole-scene change, while the picture settled: neither classified nor let stand. */
  settling = 0;
  gated = 0;
  /** Frames an earlier exit settled by agreeing with a confident previous answer (temporal exit reuse). */
  reused = 0;
  offloaded = 0;
  readonly exitHistogram: number[];
  private readonly recent: number[] = [];
  /** Capture-to-result times of the latest frames, for p50 and p95. */
  private readonly latencies: number[] = [];
  private latencyNext = 0;

  constructor(exitCount: number, private readonly windowMs = 5000) {
    this.exitHistogram = new Array<number>(exitCount).fill(0);
  }

  record(exit: number, correct: boolean | undefined, atMs: number): void {
    this.frames++;
    this.exitHistogram[exit]!++;
    if (correct !== undefined) {
      this.labelled++;
      if (correct) this.correct++;
    }
    this.recent.push(atMs);
    while (this.recent.length > 0 && this.recent[0]! < atMs - this.windowMs) this.recent.shift();
  }

  framesPerSecond(nowMs: number): number {
    const inWindow = this.recent.filter((t) => t >= nowMs - this.windowMs);
    if (inWindow.length < 2) return 0;
    return ((inWindow.length - 1) * 1000) / Math.max(1, inWindow.at(-1)! - inWindow[0]!);
  }

  /** From the frame's capture to its result, in ms. */
  recordLatency(ms: number): void {
    if (this.latencies.length < LATENCY_WINDOW) this.latencies.push(ms);
    else this.latencies[this.latencyNext] = ms;
    this.latencyNext = (this.latencyNext + 1) % LATENCY_WINDOW;
  }

  /** p50 and p95 of capture-to-result over the latest frames; undefined before the first. */
  latency(): { p50: number; p95: number } | undefined {
    if (this.latencies.length === 0) return undefined;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return { p50: at(0.5), p95: at(0.95) };
  }

  accuracy(): number | undefined {
    return this.labelled > 0 ? this.correct / this.labelled : undefined;
  }
}
