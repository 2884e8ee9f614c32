import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import mqtt from 'mqtt';
import { deviceTopics } from '../../agent/mqtt/topics.js';
import { AgentProcess } from '../helpers/agent-process.js';
import { mosquittoTest } from '../helpers/brokers.js';
import {
  assertNoSecrets,
  GATEWAY_USER,
  HEAP_PROBE_ENV,
  heapReadings,
  type HeapReading,
  OFFLOAD_EVERY_FRAME,
  readProcess,
  recordFigures,
  securedBroker,
  startServerProcess,
  type ProcessReading,
  tinyAgentPackageForFile,
} from '../helpers/resilience.js';

/*
 * A short soak: the agent classifies, offloads every frame and takes a config change
 * every few seconds, beside a server, for SOAK_SECONDS (EDGE_EXIT_SOAK_SECONDS; longer
 * runs by hand). After warm-up, memory, threads and open descriptors must not grow.
 *
 * Memory is judged in two parts, from the heap probe: the live V8 heap after a full
 * collection, and what lies outside the V8 heap. RSS itself is recorded, not judged: it
 * swings by tens of MiB in a few minutes as V8 sizes its heap, with no leak at all.
 */

const SOAK_SECONDS = Number(process.env.EDGE_EXIT_SOAK_SECONDS ?? 120);
const SAMPLE_EVERY_MS = 2000;
const withMosquitto = mosquittoTest('mosquitto_passwd');
const tinyPackage = tinyAgentPackageForFile();

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** Growth after warm-up: the median of the last quarter against the median of the second. */
function growth(values: number[]): { start: number; end: number; max: number } {
  const quarter = Math.max(1, Math.floor(values.length / 4));
  const round = (value: number) => Number(value.toFixed(1));
  return { start: round(median(values.slice(quarter, 2 * quarter))), end: round(median(values.slice(-quarter))), max: round(Math.max(...values.slice(quarter))) };
}

withMosquitto(`a ${SOAK_SECONDS} s soak with offload and config changes: RSS, threads and descriptors level after warm-up`, async (t) => {
  t.timeout((SOAK_SECONDS + 120) * 1000);
  const broker = await securedBroker(t);
  const server = await startServerProcess(t, broker, tinyPackage(), undefined, HEAP_PROBE_ENV);
  const agent = AgentProcess.start(
    tinyPackage(),
    { deviceId: GATEWAY_USER, mqtt: { url: broker.gatewayUrl }, maxFrameRate: 30, telemetryIntervalMs: 1000, ...OFFLOAD_EVERY_FRAME },
    { env: HEAP_PROBE_ENV },
  );
  t.teardown(() => agent.kill());
  await agent.waitForOutput(/offload server resilience-rack is up/);
  const operator = await mqtt.connectAsync(broker.url, { ...broker.adminLogin, protocolVersion: 5 });
  t.teardown(() => operator.endAsync());
  const topics = deviceTopics(GATEWAY_USER);

  const agentReadings: ProcessReading[] = [];
  const serverReadings: ProcessReading[] = [];
  const started = Date.now();
  let changes = 0;
  while (Date.now() - started < SOAK_SECONDS * 1000) {
    const at = (Date.now() - started) / 1000;
    agentReadings.push({ t: at, ...readProcess(agent.pid) });
    serverReadings.push({ t: at, ...readProcess(server.pid) });
    // A config change every other sample: what an operator or Home Assistant does.
    if (agentReadings.length % 2 === 0) {
      changes += 1;
      await operator.publishAsync(topics.configSet, JSON.stringify({ id: `soak-${changes}`, set: { telemetryIntervalMs: 1000 + (changes % 5) * 100 } }), { qos: 1 });
    }
    await sleep(SAMPLE_EVERY_MS);
  }
  const rows = agent.inferences();
  t.is(await agent.stop(), 0, agent.output);

  const field = (readings: ProcessReading[], name: 'rssMiB' | 'threads' | 'fds') => readings.map((reading) => reading[name]);
  const memory = (readings: HeapReading[]) => ({
    liveHeapMiB: growth(readings.map((r) => r.liveHeapMiB)),
    outsideHeapMiB: growth(readings.map((r) => r.outsideHeapMiB)),
  });
  const agentRss = growth(field(agentReadings, 'rssMiB'));
  const agentFds = growth(field(agentReadings, 'fds'));
  const agentThreads = growth(field(agentReadings, 'threads'));
  const serverRss = growth(field(serverReadings, 'rssMiB'));
  const serverFds = growth(field(serverReadings, 'fds'));
  const agentMemory = memory(heapReadings(agent.output));
  const serverMemory = memory(heapReadings(server.output));
  // A leak grows with every frame (30 a second here): 1 KiB a frame is 3.5 MiB in 120 s.
  // After a full collection the live heap varies by a few hundred KiB; native memory by a few MiB.
  for (const [who, used] of [['agent', agentMemory], ['server', serverMemory]] as const) {
    t.true(used.liveHeapMiB.end - used.liveHeapMiB.start < 2, `${who} live heap ${used.liveHeapMiB.start} → ${used.liveHeapMiB.end} MiB`);
    t.true(used.outsideHeapMiB.end - used.outsideHeapMiB.start < 10, `${who} memory outside the V8 heap ${used.outsideHeapMiB.start} → ${used.outsideHeapMiB.end} MiB`);
  }
  t.true(agentFds.max - agentFds.start <= 4, `agent descriptors ${agentFds.start} → max ${agentFds.max}`);
  t.true(agentThreads.max - agentThreads.start <= 2, `agent threads ${agentThreads.start} → max ${agentThreads.max}`);
  t.true(serverFds.max - serverFds.start <= 4, `server descriptors ${serverFds.start} → max ${serverFds.max}`);
  const offloaded = rows.filter((row) => row.offloaded);
  const answered = offloaded.filter((row) => row.serverLabel !== null);

  const searched = await assertNoSecrets(t, { outputs: { agent: agent.output, server: server.output }, dirs: [agent.dir], exclude: [agent.configFile], broker });
  // The probe reads every 5 s from the process's start; the soak's clock starts a little later, which the plot can bear.
  const timed = (readings: HeapReading[]) => readings.map((reading, i) => ({ t: (i + 1) * 5, liveHeapMiB: reading.liveHeapMiB, outsideHeapMiB: reading.outsideHeapMiB }));
  const round = (reading: ProcessReading) => ({ t: Number(reading.t.toFixed(1)), rssMiB: Number(reading.rssMiB.toFixed(1)), threads: reading.threads, fds: reading.fds });
  // The CI-length run and a longer one by hand are kept apart in the report.
  recordFigures(t, SOAK_SECONDS === 120 ? 'soak' : 'soak-long', {
    seconds: SOAK_SECONDS,
    frames: rows.length,
    offloaded: offloaded.length,
    answered: answered.length,
    configChanges: changes,
    agent: { rssMiB: agentRss, ...agentMemory, fds: agentFds, threads: agentThreads },
    server: { rssMiB: serverRss, ...serverMemory, fds: serverFds },
    secretSearch: { placesSearched: searched, leaks: 0 },
    agentReadings: agentReadings.map(round),
    serverReadings: serverReadings.map(round),
    agentHeapReadings: timed(heapReadings(agent.output)),
    serverHeapReadings: timed(heapReadings(server.output)),
  });
});
