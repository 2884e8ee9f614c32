import { execFileSync } from 'node:child_process';
import test from 'ava';
import { deviceTopics } from '../agent/mqtt/topics.js';
import type { ConfigResponse, ConfigState, Telemetry } from '../agent/mqtt/payloads.js';
import { AgentProcess, type AgentPackage } from './helpers/agent-process.js';
import { mosquittoTest, startMosquitto } from './helpers/brokers.js';
import { MqttWatch } from './helpers/mqtt-watch.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';
import { waitFor } from './helpers/wait.js';

let agentPackage: AgentPackage;
const withMosquitto = mosquittoTest('mosquitto_pub', 'mosquitto_sub');
test.before(async () => {
  agentPackage = await buildTinyAgentPackage();
});

const json = <T>(payload: Buffer) => JSON.parse(payload.toString()) as T;

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

  const publish = (message: unknown) => execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-q', '1', '-t', topics.configSet, '-m', JSON.stringify(message)]);
  const mark = watch.messages.length;
  publish({ id: 'late-exits', set: { policy: { thresholds: [1, 1, 1, 1] } } });
  const response = json<ConfigResponse>((await watch.waitFor('config/response late-exits', (m) => m.topic === topics.configResponse && json<ConfigResponse>(m.payload).id === 'late-exits')).payload);
  t.like(response, { id: 'late-exits', status: 'ok', version: 1 });

  // The retained state as any operator reads it, with a fresh mosquitto_sub.
  const retained = json<ConfigState>(execFileSync('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-t', topics.configState, '-C', '1', '-W', '30']));
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
  const stillRetained = json<ConfigState>(execFileSync('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-t', topics.configState, '-C', '1', '-W', '30']));
  t.is(stillRetained.version, 1);
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
  t.is(changes.length, 2);
});
