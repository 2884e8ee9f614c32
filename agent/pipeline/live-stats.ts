/** Rolling figures for the status line and telemetry: frames/s, exit histogram, live accuracy. */
export class LiveStats {
  frames = 0;
  labelled = 0;
  correct = 0;
  skipped = 0;
  gated = 0;
  offloaded = 0;
  readonly exitHistogram: number[];
  private readonly recent: number[] = [];

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

  accuracy(): number | undefined {
    return this.labelled > 0 ? this.correct / this.labelled : undefined;
  }
}
