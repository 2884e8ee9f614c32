/*
 * Preloaded into a process under test (NODE_OPTIONS=--import): every few seconds it runs
 * a full garbage collection and prints the memory left, as one `heap-probe {...}` line on
 * stderr. RSS alone swings by tens of MiB as V8 grows and shrinks its heap; the live heap
 * after a full collection, and what lies outside the V8 heap, are what a leak would raise.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc');
const everyMs = Number(process.env.EDGE_EXIT_HEAP_PROBE_MS ?? 5000);
const mib = (bytes) => Number((bytes / 1048576).toFixed(2));

setInterval(() => {
  collectGarbage();
  const memory = process.memoryUsage();
  const reading = { liveHeapMiB: mib(memory.heapUsed), heapTotalMiB: mib(memory.heapTotal), outsideHeapMiB: mib(memory.rss - memory.heapTotal), rssMiB: mib(memory.rss) };
  process.stderr.write(`heap-probe ${JSON.stringify(reading)}\n`);
}, everyMs).unref();
