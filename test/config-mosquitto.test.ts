import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import type { ModelPackage } from '../agent/model-package/load.js';
import { decodeOffload } from '../agent/mqtt/offload-codec.js';
import { deviceTopics } from '../agent/mqtt/topics.js';
import type { ConfigResponse, ConfigState, Telemetry } from '../agent/mqtt/payloads.js';
import { OffloadServer } from '../server/offload-server.js';
import { AgentProcess, type AgentPackage } from './helpers/agent-process.js';
import { mosquittoTest, startMosquitto } from './helpers/brokers.js';
import { MqttWatch } from './helpers/mqtt-watch.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';
import { waitFor } from './helpers/wait.js';

let pkg: ModelPackage;
let agentPackage: AgentPackage;
const withMosquitto = mosquittoTest('mosquitto_pub', 'mosquitto_sub');
test.before(async () => {
  ({ pkg, ...agentPackage } = await buildTinyAgentPackage());
});

const json = <T>(payload: Buffer) => JSON.parse(payload.toString()) as T;

/** A config/set as an operator sends it, with mosquitto_pub. */
function publishSet(port: string, topic: string, message: unknown): void {
  execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-q', '1', '-t', topic, '-m', JSON.stringify(message)]);
}

/** The retained config/state as any operator reads it, with a fresh mosquitto_sub. */
function retainedState(port: string, topic: string): ConfigState {
  return json<ConfigState>(execFileSync('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-t', topic, '-C', '1', '-W', '30']));
}

withMosquitto('mosquitto_pub on config/set changes the thresholds live: the retained state, the SQLite log and the exit histogram follow', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const port = new URL(broker.url).port;
  const topics = deviceTopics('cfg-gw');
  const watch = await MqttWatch.connect(broker.url, [topics.configState, topics.configResponse, topics.telemetry]);
  t.teardown(() => watch.close());
  const agent = AgentProcess.start(agentPackage, {
    deviceId: 'cfg-gw',
    mqtt: { url: broker.url },
    // Thresholds of 0 are always met: every frame leaves at the first exit. Nothing is offloaded.
    policy: { policy: 'max-probability', thresholds: [0, 0, 0, 0] },
    offload: { minConfidence: 0 },
    telemetryIntervalMs: 300,
  });
  t.teardown(() => agent.stop());
  const telemetry = (from: number) => watch.messages.filter((m) => m.topic === topics.telemetry && m.index >= from).map((m) => json<Telemetry>(m.payload));
  const onlyExit = (exit: number) => (m: { topic: string; payload: Buffer }) =>
    m.topic === topics.telemetry && json<Telemetry>(m.payload).exitHistogram.every((n, i) => (i === exit ? n > 0 : n === 0));

  await watch.waitFor('retained config/state at version 0', (m) => m.topic === topics.configState && json<ConfigState>(m.payload).version === 0);
  await watch.waitFor('telemetry of frames all at exit 0', onlyExit(0));
  await waitFor('10 frames logged', () => agent.inferences().length >= 10);

  const publish = (message: unknown) => publishSet(port, topics.configSet, message);
  const mark = watch.messages.length;
  publish({ id: 'late-exits', set: { policy: { thresholds: [1, 1, 1, 1] } } });
  const response = json<ConfigResponse>((await watch.waitFor('config/response late-exits', (m) => m.topic === topics.configResponse && json<ConfigResponse>(m.payload).id === 'late-exits')).payload);
  t.like(response, { id: 'late-exits', status: 'ok', version: 1 });

  const retained = retainedState(port, topics.configState);
  t.is(retained.version, 1);
  t.deepEqual((retained.config as { policy: { thresholds: number[] } }).policy.thresholds, [1, 1, 1, 1]);

  // Thresholds of 1 are never met: from the change on, every frame runs to the final exit.
  await watch.waitFor('telemetry of frames all at the final exit', onlyExit(3), { after: mark });
  const changedAt = agent.inferences().length;
  await waitFor('10 more frames logged', () => agent.inferences().length >= changedAt + 10);

  // An invalid change is refused with the reason and changes nothing.
  publish({ id: 'too-high', set: { policy: { thresholds: [1.5, 1, 1, 1] } } });
  const refused = json<ConfigResponse>((await watch.waitFor('config/response too-high', (m) => m.topic === topics.configResponse && json<ConfigResponse>(m.payload).id === 'too-high')).payload);
  t.is(refused.status, 'error');
  t.regex(refused.reason ?? '', /thresholds/);
  t.is(retainedState(port, topics.configState).version, 1);

  // Thresholds the schema accepts but this package cannot use (4 exits, 2 thresholds) are refused up front: nothing is saved.
  const saved = fs.readFileSync(path.join(agent.dir, 'remote-config.json'), 'utf8');
  publish({ id: 'two-thresholds', set: { policy: { thresholds: [0.5, 0.5] } } });
  const miscounted = json<ConfigResponse>((await watch.waitFor('config/response two-thresholds', (m) => m.topic === topics.configResponse && json<ConfigResponse>(m.payload).id === 'two-thresholds')).payload);
  t.like(miscounted, { status: 'error', version: 1 });
  t.regex(miscounted.reason ?? '', /policy\.thresholds: this package has 4 exits, so it takes 4 thresholds \(one per exit\), got 2; nothing was changed/);
  t.notRegex(miscounted.reason ?? '', /applying it live failed/);
  t.is(fs.readFileSync(path.join(agent.dir, 'remote-config.json'), 'utf8'), saved, 'the saved overrides are untouched');
  t.is(retainedState(port, topics.configState).version, 1);
  t.is(await agent.stop(), 0, agent.output);

  // The log: the exits switch once, from all first to all final, and stay there.
  const exits = agent.inferences().map((row) => row.exit);
  const switchAt = exits.indexOf(3);
  t.true(switchAt >= 10, `${switchAt} frames at exit 0 before the change`);
  t.deepEqual([...new Set(exits.slice(0, switchAt))], [0]);
  t.deepEqual([...new Set(exits.slice(switchAt))], [3]);
  t.true(exits.length - switchAt >= 10, `${exits.length - switchAt} frames at exit 3 after the change`);
  t.true(telemetry(mark).some((m) => m.exitHistogram[3]! > 0));
  // ... and the config changes, accepted and refused, with their versions and reasons.
  const changes = agent.configChanges();
  t.like(changes[0], { source: 'mqtt', version: '1', accepted: true, diff: { policy: { thresholds: [1, 1, 1, 1] } } });
  t.like(changes[1], { source: 'mqtt', version: '1', accepted: false });
  t.regex(changes[1]?.reason ?? '', /thresholds/);
  t.like(changes[2], { source: 'mqtt', version: '1', accepted: false });
  t.regex(changes[2]?.reason ?? '', /takes 4 thresholds/);
  t.is(changes.length, 3);
});

withMosquitto('offload mode and deadline and the telemetry interval set over MQTT survive a restart of edge-exit run: retained state and behaviour', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const port = new URL(broker.url).port;
  const topics = deviceTopics('persist-gw');
  const watch = await MqttWatch.connect(broker.url, [topics.configState, topics.configResponse, topics.telemetry, topics.offloadRequest]);
  t.teardown(() => watch.close());
  const first = AgentProcess.start(agentPackage, {
    deviceId: 'persist-gw',
    mqtt: { url: broker.url },
    // Every frame stops at exit 1, unsure of itself, and is offloaded.
    policy: { policy: 'max-probability', thresholds: [1, 1, 1, 1], maxExit: 1 },
    // From the file: feature payloads, a 10 ms deadline, and telemetry once an hour (none within this test).
    offload: { mode: 'features', minConfidence: 1, deadlineMs: 10 },
    telemetryIntervalMs: 3_600_000,
  });
  t.teardown(() => first.stop());
  await watch.waitFor('retained config/state at version 0', (m) => m.topic === topics.configState && json<ConfigState>(m.payload).version === 0);

  const mark = watch.messages.length;
  publishSet(port, topics.configSet, { id: 'persist', set: { offload: { mode: 'image', deadlineMs: 60_000 }, telemetryIntervalMs: 200 } });
  const response = json<ConfigResponse>((await watch.waitFor('config/response persist', (m) => m.topic === topics.configResponse && json<ConfigResponse>(m.payload).id === 'persist')).payload);
  t.like(response, { status: 'ok', version: 1 });
  t.is(response.reason, undefined);
  // Applied live: telemetry starts, and offloads carry the image.
  await watch.waitFor('telemetry after the change', (m) => m.topic === topics.telemetry, { after: mark });
  await watch.waitFor('an image offload after the change', (m) => m.topic === topics.offloadRequest && kindOf(m.payload) === 'image', { after: mark });
  t.is(await first.stop(), 0, first.output);
  const firstLifeFrames = first.inferences().length;

  const restartMark = watch.messages.length;
  const second = first.restart();
  t.teardown(() => second.stop());
  await second.waitForOutput(/mqtt: connected to/);
  // The state the restarted agent publishes on connect, and what a fresh subscriber then reads.
  const republished = json<ConfigState>((await watch.waitFor('config/state from the restarted agent', (m) => m.topic === topics.configState, { after: restartMark })).payload);
  for (const state of [republished, retainedState(port, topics.configState)]) {
    t.is(state.version, 1);
    t.like(state.config, { offload: { mode: 'image', deadlineMs: 60_000 }, telemetryIntervalMs: 200 });
  }

  // Telemetry every 200 ms, not once an hour as the file says.
  await watch.waitFor('telemetry from the restarted agent', (m) => m.topic === topics.telemetry, { after: restartMark });
  // No server yet: the restarted agent's first offloads wait, resent every 2 s.
  const secondLife = () => second.inferences().slice(firstLifeFrames).filter((row) => row.offloaded);
  const waiting = await waitFor('5 offloads by the restarted agent', () => (secondLife().length >= 5 ? secondLife().slice(0, 5) : undefined));
  const server = await OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 5 });
  t.teardown(() => server.close());
  const ids = new Set(waiting.map((row) => row.requestId!));
  const answered = await waitFor('answers to those 5 offloads', () => {
    const rows = secondLife().filter((row) => ids.has(row.requestId!));
    return rows.every((row) => row.serverLabel !== null) ? rows : undefined;
  });
  // With the file's 10 ms these answers, computed only after the server started, would all be late;
  // within the 60 s set over MQTT they replace the local answers.
  t.deepEqual(answered.map((row) => row.decidedLocally), [false, false, false, false, false]);
  t.is(await second.stop(), 0, second.output);

  const restartedRequests = watch.messages.filter((m) => m.index >= restartMark && m.topic === topics.offloadRequest && ids.has(requestIdOf(m.payload)));
  t.true(restartedRequests.length >= 5);
  t.deepEqual([...new Set(restartedRequests.map((m) => kindOf(m.payload)))], ['image'], 'the restarted agent offloads images, not the file\'s features');
});

function kindOf(payload: Buffer): string | undefined {
  const decoded = decodeOffload(payload);
  return decoded.ok ? decoded.payload.kind : undefined;
}

function requestIdOf(payload: Buffer): string {
  const decoded = decodeOffload(payload);
  return decoded.ok ? decoded.payload.requestId : '';
}
