import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import type { LabelledImage } from '../../agent/datasets/image-folder.js';
import { createExitPolicy } from '../../agent/exit-policy/policy.js';
import type { MultiExitEngine } from '../../agent/inference/multi-exit-engine.js';
import type { ModelPackage } from '../../agent/model-package/load.js';
import { decodeOffload, encodeOffload, parseOffloadAnswer } from '../../agent/mqtt/offload-codec.js';
import { deviceTopics } from '../../agent/mqtt/topics.js';
import { disableNagle } from '../../agent/mqtt/no-delay.js';
import { imageFileToRgb } from '../../agent/preprocess/image-to-rgb.js';
import { summarizeTimings, type TimingSummary } from '../stats/summary.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'edge-exit.js');

export interface OffloadBenchResult {
  roundTrip: { kind: 'features' | 'image'; bytes: number; summary: TimingSummary }[];
  throughput: { workers: number; answersPerSecond: number; requests: number }[];
}

/** Starts `edge-exit server` with N worker processes on a shared subscription and waits until all are subscribed. */
async function startServer(config: string, brokerUrl: string, workers: number): Promise<ChildProcess> {
  const child = fork(CLI, ['server', '-c', config, '--broker', brokerUrl, '--workers', String(workers), '--share-group', 'bench', '--protocol', '5'], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let subscribed = 0;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('offload server workers did not subscribe within 60 s')), 60_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      subscribed += (chunk.toString().match(/subscribed to/g) ?? []).length;
      if (subscribed >= workers) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return child;
}

async function stopServer(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Frames as a gateway would send them: the seam after the first exit, and the JPEG. */
async function frames(pkg: ModelPackage, engine: MultiExitEngine, images: readonly LabelledImage[]) {
  const never = createExitPolicy({ policy: 'max-probability', thresholds: new Array<number>(engine.exitCount).fill(1) }, engine.exitCount);
  const { width, height, resize } = pkg.manifest.input;
  const out: { features: Buffer; image: Buffer }[] = [];
  for (const [i, image] of images.entries()) {
    engine.input.data.set(await imageFileToRgb(image.file, { width, height, resize }));
    const local = engine.classify(never, 0);
    const seam = engine.chain.segments[0]!.output();
    const common = { packageName: pkg.manifest.name, modelHash: pkg.manifest.buildKey };
    out.push({
      features: encodeOffload({ ...common, kind: 'features', requestId: `f${i}`, segment: 1, dtype: 'int8', shape: [...seam.shape], scale: seam.quantization!.scale, zeroPoint: seam.quantization!.zeroPoint, data: Int8Array.from(local.features) }),
      image: encodeOffload({ ...common, kind: 'image', requestId: `i${i}`, format: 'jpeg', data: readFileSync(image.file) }),
    });
  }
  return out;
}

/** The same frame under a fresh request id, so the server's de-duplication never answers from its cache. */
function withId(frame: Buffer, requestId: string): Buffer {
  const decoded = decodeOffload(frame);
  if (!decoded.ok) throw new Error(decoded.reason);
  const { modelHashPrefix, ...payload } = decoded.payload;
  return encodeOffload({ ...payload, requestId, modelHash: modelHashPrefix });
}

/**
 * Offload round trips over loopback (agent → broker → server → broker →
 * agent, server compute included) per payload kind, one request at a time;
 * then throughput with 1 and 2 server worker processes, 16 requests in flight.
 */
export async function runOffloadBench(options: {
  pkg: ModelPackage;
  engine: MultiExitEngine;
  images: readonly LabelledImage[];
  brokerUrl: string;
  config: string;
  requests: number;
}): Promise<OffloadBenchResult> {
  const payloads = await frames(options.pkg, options.engine, options.images);
  const topics = deviceTopics('bench-gw');
  const client: MqttClient = await mqtt.connectAsync(options.brokerUrl, { protocolVersion: 5 });
  disableNagle(client);
  const waiting = new Map<string, () => void>();
  client.on('message', (_topic, payload) => {
    const parsed = parseOffloadAnswer(payload);
    if (parsed.ok) waiting.get(parsed.answer.requestId)?.();
  });
  await client.subscribeAsync(topics.offloadResponseFilter, { qos: 1 });
  let sequence = 0;
  const send = (kind: 'features' | 'image', n: number) => {
    const id = `${kind[0]}-${sequence++}`;
    const frame = withId(payloads[n % payloads.length]![kind], id);
    const answered = new Promise<void>((resolve) => waiting.set(id, resolve));
    client.publish(topics.offloadRequest, frame, { qos: 1, properties: { responseTopic: topics.offloadResponse(id), correlationData: Buffer.from(id) } });
    return answered.then(() => waiting.delete(id));
  };

  const result: OffloadBenchResult = { roundTrip: [], throughput: [] };
  for (const workers of [1, 2]) {
    const server = await startServer(options.config, options.brokerUrl, workers);
    try {
      for (let i = 0; i < 10; i++) await send('features', i);
      if (workers === 1) {
        for (const kind of ['features', 'image'] as const) {
          const times: number[] = [];
          for (let i = 0; i < options.requests; i++) {
            const start = process.hrtime.bigint();
            await send(kind, i);
            times.push(Number(process.hrtime.bigint() - start) / 1e6);
          }
          const bytes = Math.round(payloads.reduce((sum, p) => sum + p[kind].length, 0) / payloads.length);
          result.roundTrip.push({ kind, bytes, summary: summarizeTimings(times) });
        }
      }
      const started = performance.now();
      let next = 0;
      const lane = async () => {
        while (next < options.requests * 2) await send('image', next++);
      };
      await Promise.all(Array.from({ length: 16 }, lane));
      result.throughput.push({ workers, requests: options.requests * 2, answersPerSecond: (options.requests * 2 * 1000) / (performance.now() - started) });
    } finally {
      await stopServer(server);
    }
  }
  await client.endAsync();
  return result;
}

export function formatOffloadBench(result: OffloadBenchResult): string {
  return [
    '| payload | bytes (mean) | p50 ms | p95 ms | mean ms |',
    '| --- | --- | --- | --- | --- |',
    ...result.roundTrip.map((r) => `| ${r.kind} | ${r.bytes} | ${r.summary.medianMs.toFixed(2)} | ${r.summary.p95Ms.toFixed(2)} | ${r.summary.meanMs.toFixed(2)} |`),
    '',
    '| server workers | requests | answers/s (image payloads, 16 in flight) |',
    '| --- | --- | --- |',
    ...result.throughput.map((r) => `| ${r.workers} | ${r.requests} | ${r.answersPerSecond.toFixed(1)} |`),
  ].join('\n');
}
