import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import mqtt from 'mqtt';
import { parseAgentConfig } from '../agent/config/agent-config.js';
import type { ModelPackage } from '../agent/model-package/load.js';
import { AgentLink } from '../agent/mqtt/agent-link.js';
import { decodeOffload, encodeOffload, parseOffloadAnswer } from '../agent/mqtt/offload-codec.js';
import { deviceTopics } from '../agent/mqtt/topics.js';
import type { InferenceRecord } from '../agent/store/types.js';
import { OffloadServer } from '../server/offload-server.js';
import { AGENT_REPLAY_SEED, AgentProcess, type AgentPackage } from './helpers/agent-process.js';
import { mosquittoTest, startMosquitto } from './helpers/brokers.js';
import { CliProcess } from './helpers/cli-process.js';
import { fullModelLabels, replayedFiles } from './helpers/full-model.js';
import { MqttWatch } from './helpers/mqtt-watch.js';
import { CIFAR_TEST, temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';
import { waitFor } from './helpers/wait.js';

let pkg: ModelPackage;
let agentPackage: AgentPackage;
const withMosquitto = mosquittoTest('mosquitto_pub');
test.before(async () => {
  ({ pkg, ...agentPackage } = await buildTinyAgentPackage());
});

/**
 * Every frame stops at exit 1 (thresholds of 1 are never met) unsure of itself
 * (no confidence reaches 1), so nearly every frame is offloaded.
 */
const OFFLOAD_EVERY_FRAME = { policy: { policy: 'max-probability', thresholds: [1, 1, 1, 1], maxExit: 1 } };

/** Checks the server answers in the log against the full model run here on the same images. */
async function assertFullModelAnswers(t: ExecutionContext, rows: InferenceRecord[], frames: number): Promise<void> {
  const files = await replayedFiles(CIFAR_TEST, AGENT_REPLAY_SEED, frames);
  const unknown = rows.filter((row) => !files.has(row.frameId)).map((row) => row.frameId);
  t.deepEqual(unknown, [], `frame ids beyond the ${frames} frames logged`);
  const expected = await fullModelLabels(pkg, rows.map((row) => files.get(row.frameId)!));
  for (const row of rows) t.is(row.serverLabel, expected.get(files.get(row.frameId)!) ?? null, `${row.requestId} (frame ${row.frameId})`);
}

withMosquitto('one full agent and two server workers on one shared subscription: every offload is answered exactly once, as the full model answers', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const workers = await Promise.all([1, 2].map(() => OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 5, shareGroup: 'edge-exit-servers' })));
  t.teardown(() => Promise.all(workers.map((w) => w.close())));
  const topics = deviceTopics('e2e-gw');
  // A plain (not shared) subscription sees every request the agent publishes and every answer.
  const wire = await MqttWatch.connect(broker.url, [topics.offloadRequest, topics.offloadResponseFilter]);
  t.teardown(() => wire.close());

  const frames = 40;
  const agent = AgentProcess.start(agentPackage, {
    deviceId: 'e2e-gw',
    mqtt: { url: broker.url },
    ...OFFLOAD_EVERY_FRAME,
    offload: { mode: 'features', minConfidence: 1, deadlineMs: 10_000 },
  }, { frames });
  t.teardown(() => agent.stop());
  // --frames ends the run; the agent waits for the answers in flight before it closes.
  t.is(await agent.exited, 0, agent.output);

  // Both workers said so on their retained availability topics (Mosquitto keeps and forwards them).
  t.is(new Set(agent.output.match(/offload server \S+ is up/g)).size, 2, agent.output);
  const rows = agent.inferences();
  t.is(rows.length, frames);
  const offloaded = rows.filter((row) => row.offloaded);
  t.true(offloaded.length >= frames * 0.75, `${offloaded.length} of ${frames} frames offloaded`);
  await wire.waitFor('answering the last request', () => wire.messages.filter((m) => m.topic !== topics.offloadRequest).length >= offloaded.length, { timeoutMs: 30_000 });

  const requests = new Map<string, number>();
  const answers = new Map<string, { label: string; correlation: string }[]>();
  for (const message of wire.messages) {
    if (message.topic === topics.offloadRequest) {
      const decoded = decodeOffload(message.payload);
      if (!decoded.ok) t.fail(decoded.reason);
      else requests.set(decoded.payload.requestId, (requests.get(decoded.payload.requestId) ?? 0) + 1);
      continue;
    }
    const parsed = parseOffloadAnswer(message.payload);
    if (!parsed.ok) t.fail(parsed.reason);
    else answers.set(parsed.answer.requestId, [...(answers.get(parsed.answer.requestId) ?? []), { label: parsed.answer.label, correlation: Buffer.from(message.packet.properties?.correlationData ?? []).toString() }]);
  }
  t.is(requests.size, offloaded.length, 'one request per offloaded frame');
  for (const row of offloaded) {
    const id = row.requestId!;
    // A request resent after 2 s without an answer would show here; on loopback none is.
    t.is(requests.get(id), 1, `${id} was published ${requests.get(id) ?? 0} times`);
    t.is(answers.get(id)?.length, 1, `${id} was answered ${answers.get(id)?.length ?? 0} times`);
    t.is(answers.get(id)?.[0]?.correlation, id, 'MQTT 5 correlation data comes back with the answer');
    t.is(row.serverLabel, answers.get(id)?.[0]?.label ?? null, 'the logged server answer is the one on the wire');
    t.false(row.decidedLocally, `${id} was answered within its deadline`);
  }
  await assertFullModelAnswers(t, offloaded, frames);

  const answered = workers.map((w) => w.stats.answered);
  t.log(`${offloaded.length} of ${frames} frames offloaded; workers answered ${answered.join(' + ')}`);
  t.is(answered[0]! + answered[1]!, offloaded.length, 'one computation per request');
  t.true(answered[0]! > 0 && answered[1]! > 0, `the shared subscription split the work: ${answered.join(' + ')}`);
  t.deepEqual(agent.outboxRequestIds(), [], 'nothing left waiting in the outbox');
});

withMosquitto('`edge-exit server --workers 2 --server-id rack` runs two workers that announce rack-1 and rack-2, and both are forgotten when it stops', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const config = parseAgentConfig({ deviceId: 'roll-call-gw' });
  const link = await new AgentLink({ url: broker.url, deviceId: 'roll-call-gw', config, protocolVersion: 5, handlers: { onAnswer: () => {} } }).start();
  t.teardown(() => link.stop());
  const server = new CliProcess(['server', '-c', agentPackage.buildConfig, '--broker', broker.url, '--workers', '2', '--share-group', 'roll-call', '--server-id', 'rack'], { EDGE_EXIT_MODELS_DIR: agentPackage.modelsDir });
  t.teardown(() => server.stop());
  await waitFor('both workers announcing themselves', () => link.offloadServers === 2, 60_000);
  t.deepEqual(link.offloadClient.offloadServerIds, ['rack-1', 'rack-2']);
  t.is(await server.stop(), 0, server.output);
  await waitFor('both workers being forgotten', () => link.offloadServers === 0, 5000);
});

withMosquitto('mosquitto_pub can send an image offload that the server answers on the 3.1.1 response topic', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const server = await OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 5 });
  t.teardown(() => server.close());
  const topics = deviceTopics('gate-9');
  const listener = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
  t.teardown(() => listener.endAsync());
  const got: string[] = [];
  listener.on('message', (_t, payload) => {
    const parsed = parseOffloadAnswer(payload);
    if (parsed.ok) got.push(parsed.answer.label);
  });
  await listener.subscribeAsync(topics.offloadResponseFilter, { qos: 1 });
  const file = path.join(temporaryDir('edge-exit-pub-'), 'frame.bin');
  writeFileSync(file, encodeOffload({ packageName: pkg.manifest.name, modelHash: pkg.manifest.buildKey, kind: 'image', requestId: 'cli-1', format: 'jpeg', data: readFileSync(path.join(CIFAR_TEST, 'horse', '0007.jpg')) }));
  const port = new URL(broker.url).port;
  execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-q', '1', '-t', topics.offloadRequest, '-f', file]);
  await waitFor('the answer to the mosquitto_pub request', () => got.length > 0, 10_000, 50);
  t.is(got.length, 1);
  t.true(pkg.manifest.labels.cifar10!.includes(got[0]!));
});

withMosquitto('a broker restart while a full agent streams offloads loses no request: those of the outage are decided locally and resolved after reconnect', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const server = await OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 5 });
  t.teardown(() => server.close());
  const agent = AgentProcess.start(agentPackage, {
    deviceId: 'restart-gw',
    mqtt: { url: broker.url },
    ...OFFLOAD_EVERY_FRAME,
    // Auto picks the cheaper payload (the JPEG, here). The deadline is shorter than the outage, the expiry much longer.
    offload: { mode: 'auto', minConfidence: 1, deadlineMs: 1000, queueExpiryMs: 300_000 },
  });
  t.teardown(() => agent.stop());
  const offloaded = () => agent.inferences().filter((row) => row.offloaded);
  const answeredCount = () => offloaded().filter((row) => row.serverLabel !== null).length;

  await agent.waitForOutput(/mqtt: connected to/);
  await waitFor('10 offloads answered before the restart', () => answeredCount() >= 10);
  const beforeOutage = offloaded().length;
  await broker.stop();
  // The log is written in batches, so some of these frames may predate the stop; most do not.
  await waitFor('30 more offloads while the broker is away', () => offloaded().length >= beforeOutage + 30);
  const restartedAt = Date.now();
  await broker.start();
  const atRestart = offloaded().length;
  await waitFor('every offload made before the restart answered', () => answeredCount() >= atRestart, 90_000);
  t.is(await agent.stop(), 0, agent.output);

  const rows = offloaded();
  const unanswered = rows.filter((row) => row.serverLabel === null).map((row) => row.requestId!);
  // Only requests still in flight at the stop may lack an answer, and they wait in the outbox for the next start.
  const waiting = new Set(agent.outboxRequestIds());
  t.deepEqual(unanswered.filter((id) => !waiting.has(id)), [], 'no request is lost');
  const resolvedAfterReconnect = rows.filter((row) => row.decidedLocally && row.serverLabel !== null && row.answeredAt! >= restartedAt);
  t.true(resolvedAfterReconnect.length >= 10, `${resolvedAfterReconnect.length} frames were decided locally during the outage and resolved after reconnect`);
  t.log(`${rows.length} offloads, ${resolvedAfterReconnect.length} resolved after reconnect, ${unanswered.length} in flight at the stop; server computed ${server.stats.answered}, repeats ${server.stats.duplicates}`);
  t.true(server.stats.answered <= rows.length, 'a request resent after the restart is not computed twice');
  await assertFullModelAnswers(t, rows.filter((row) => row.serverLabel !== null), agent.inferences().length);
});
