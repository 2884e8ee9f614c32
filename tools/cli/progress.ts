import cliProgress from 'cli-progress';

/**
 * A progress bar on stderr. Off a terminal (CI, logs) it prints a line every
 * few seconds instead of redrawing.
 */
export function progressBar(label: string): { update(done: number, total: number, stage?: string): void; stop(): void } {
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% {value}/{total} {stage}`,
      stream: process.stderr,
      noTTYOutput: true,
      notTTYSchedule: 5000,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, stage = '') {
      if (!started) {
        bar.start(total, done, { stage });
        started = true;
      }
      bar.setTotal(total);
      bar.update(done, { stage });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/**
 * Lets the progress bar draw: it redraws on a timer, which a benchmark's synchronous
 * loop would hold off until the end. Call it between timed sections, never inside one.
 */
export function letProgressDraw(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
