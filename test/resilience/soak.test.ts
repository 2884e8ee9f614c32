import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import mqtt from 'mqtt';
import { deviceTopics } from '../../agent/mqtt/topics.js';
import { AgentProcess } from '../helpers/agent-process.js';
import { mosquittoTest } from '../helpers/brokers.js';
import {
  assertNoSecrets,
  GATEWAY_USER,
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
 * runs by hand). After warm-up, RSS, threads and open descriptors must not grow.
 */

const SOAK_SECONDS = Number(process.env.EDGE_EXIT_SOAK_SECONDS ?? 120);
const SAMPLE_EVERY_MS = 2000;
const withMosquitto = mosquittoTest('mosquitto_passwd');
const tinyPackage = tinyAgentPackageForFile();

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** Growth after warm-up: the median of the last quarter against the median of the second. */
function growth(readings: ProcessReading[], field: 'rssMiB' | 'threads' | 'fds'): { start: number; end: number; max: number } {
  const quarter = Math.max(1, Math.floor(readings.length / 4));
  const values = readings.map((reading) => reading[field]);
  const round = (value: number) => Number(value.toFixed(1));
  return { start: round(median(values.slice(quarter, 2 * quarter))), end: round(median(values.slice(-quarter))), max: round(Math.max(...values.slice(quarter))) };
}

withMosquitto(`a ${SOAK_SECONDS} s soak with offload and config changes: RSS, threads and descriptors level after warm-up`, async (t) => {
  t.timeout((SOAK_SECONDS + 120) * 1000);
  const broker = await securedBroker(t);
  const server = await startServerProcess(t, broker, tinyPackage());
  const agent = AgentProcess.start(tinyPackage(), { deviceId: GATEWAY_USER, mqtt: { url: broker.gatewayUrl }, maxFrameRate: 30, telemetryIntervalMs: 1000, ...OFFLOAD_EVERY_FRAME });
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

  const agentRss = growth(agentReadings, 'rssMiB');
  const agentFds = growth(agentReadings, 'fds');
  const agentThreads = growth(agentReadings, 'threads');
  const serverRss = growth(serverReadings, 'rssMiB');
  const serverFds = growth(serverReadings, 'fds');
  // Allocators and V8 settle in steps; a leak grows with every frame (30 a second here).
  t.true(agentRss.end - agentRss.start < 20, `agent RSS ${agentRss.start.toFixed(1)} → ${agentRss.end.toFixed(1)} MiB`);
  t.true(agentFds.max - agentFds.start <= 4, `agent descriptors ${agentFds.start} → max ${agentFds.max}`);
  t.true(agentThreads.max - agentThreads.start <= 2, `agent threads ${agentThreads.start} → max ${agentThreads.max}`);
  t.true(serverRss.end - serverRss.start < 20, `server RSS ${serverRss.start.toFixed(1)} → ${serverRss.end.toFixed(1)} MiB`);
  t.true(serverFds.max - serverFds.start <= 4, `server descriptors ${serverFds.start} → max ${serverFds.max}`);
  const offloaded = rows.filter((row) => row.offloaded);
  const answered = offloaded.filter((row) => row.serverLabel !== null);

  const searched = await assertNoSecrets(t, { outputs: { agent: agent.output, server: server.output }, dirs: [agent.dir], exclude: [agent.configFile], broker });
  const round = (reading: ProcessReading) => ({ t: Number(reading.t.toFixed(1)), rssMiB: Number(reading.rssMiB.toFixed(1)), threads: reading.threads, fds: reading.fds });
  // The CI-length run and a longer one by hand are kept apart in the report.
  recordFigures(t, SOAK_SECONDS === 120 ? 'soak' : 'soak-long', {
    seconds: SOAK_SECONDS,
    frames: rows.length,
    offloaded: offloaded.length,
    answered: answered.length,
    configChanges: changes,
    agent: { rssMiB: agentRss, fds: agentFds, threads: agentThreads },
    server: { rssMiB: serverRss, fds: serverFds },
    secretSearch: { placesSearched: searched, leaks: 0 },
    agentReadings: agentReadings.map(round),
    serverReadings: serverReadings.map(round),
  });
});
