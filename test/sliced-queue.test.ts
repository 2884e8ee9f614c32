import test from 'ava';
import { SlicedQueue } from '../agent/mqtt/sliced-queue.js';

/** Busy-waits: a handler that costs real time, as parsing and answering a config/set does. */
function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

test('a burst is handled in order, in slices that let timers run between them; beyond the limit items overflow at once', async (t) => {
  const handled: number[] = [];
  const overflowed: number[] = [];
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const queue = new SlicedQueue<number>({
    limit: 300,
    sliceMs: 2,
    pauseMs: 8,
    handle: (n) => {
      spin(0.1);
      handled.push(n);
      if (handled.length === 300) done();
    },
    overflow: (n) => overflowed.push(n),
  });
  // A frame timer due every 10 ms while the burst is handled: it must keep firing.
  let ticks = 0;
  const frameTimer = setInterval(() => (ticks += 1), 10);
  t.teardown(() => clearInterval(frameTimer));
  for (let n = 0; n < 350; n += 1) queue.push(n);
  t.deepEqual(overflowed, Array.from({ length: 50 }, (_, i) => 300 + i), 'the 50 past the limit overflow, synchronously');
  t.is(handled.length, 0, 'nothing is handled inside push');
  const started = performance.now();
  await finished;
  const elapsed = performance.now() - started;
  t.deepEqual(handled, Array.from({ length: 300 }, (_, i) => i));
  t.is(queue.waiting, 0);
  // 300 × 0.1 ms of work at ≤ 2 ms per 10 ms takes about 150 ms, and the timer ran throughout.
  t.true(elapsed > 100, `${elapsed.toFixed(0)} ms: the work was spread out`);
  t.true(ticks >= elapsed / 10 / 2, `${ticks} frame ticks in ${elapsed.toFixed(0)} ms`);
});
