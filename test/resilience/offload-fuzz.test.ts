import test from 'ava';
import mqtt from 'mqtt';
import { MultiExitEngine } from '../../agent/inference/multi-exit-engine.js';
import type { ModelPackage } from '../../agent/model-package/load.js';
import { encodeOffload, parseOffloadAnswer } from '../../agent/mqtt/offload-codec.js';
import { deviceTopics } from '../../agent/mqtt/topics.js';
import type { OffloadServerStats } from '../../server/offload-server.js';
import type { AgentPackage } from '../helpers/agent-process.js';
import { mosquittoTest } from '../helpers/brokers.js';
import { assertNoSecrets, recordFigures, runSeed, securedBroker, seededRandom, startServerProcess } from '../helpers/resilience.js';
import { buildTinyAgentPackage } from '../helpers/tiny-package.js';
import { waitFor } from '../helpers/wait.js';

/*
 * 2,000 offload frames, most of them malformed or hostile, sent to a running
 * `edge-exit server` through a real broker, with MQTT 5 response topics and
 * correlation data of every sort. Each must be answered on the requesting device's
 * own topic, or refused and counted; the server must stay up and log a bounded number
 * of warnings.
 */

const FRAMES = 2000;
const DEVICE = 'fuzz-gw';
let pkg: ModelPackage;
let agentPackage: AgentPackage;
const withMosquitto = mosquittoTest('mosquitto_passwd');
test.before(async () => {
  const built = await buildTinyAgentPackage();
  pkg = built.pkg;
  agentPackage = { modelsDir: built.modelsDir, buildConfig: built.buildConfig };
});

interface FuzzedFrame {
  kind: string;
  topic: string;
  payload: Buffer;
  properties?: { responseTopic?: string; correlationData?: Buffer };
  /** Answered on this topic, when the frame is one the server must answer. */
  answerTopic?: string;
}

withMosquitto(`${FRAMES.toLocaleString('en')} fuzzed offload frames with MQTT 5 properties: each answered on its own topic or refused and counted, the server up throughout`, async (t) => {
  const seed = runSeed();
  t.log(`seed ${seed} (EDGE_EXIT_RESILIENCE_SEED=${seed} replays it)`);
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const broker = await securedBroker(t);
  const server = await startServerProcess(t, broker, agentPackage, 'fuzz-rack');
  const topics = deviceTopics(DEVICE);

  // A real seam: the features after segment 1 of a real image, as a gateway would send them.
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 }, 'cifar10');
  const seam = engine.chain.segments[1]!.output();
  const common = { packageName: pkg.manifest.name, modelHash: pkg.manifest.buildKey };
  const features = (requestId: string, overrides: Partial<{ segment: number; shape: number[]; data: Int8Array; packageName: string; modelHash: string }> = {}) =>
    encodeOffload({
      ...common,
      kind: 'features',
      requestId,
      segment: 2,
      dtype: 'int8',
      shape: [...seam.shape],
      scale: seam.quantization!.scale,
      zeroPoint: seam.quantization!.zeroPoint,
      data: Int8Array.from({ length: seam.data.length }, () => Math.floor(random() * 256) - 128),
      ...overrides,
    });
  const answeredIds: string[] = [];

  function fuzzedFrame(n: number): FuzzedFrame {
    const requestId = `r-${n}`;
    const own = topics.offloadResponse(requestId);
    const valid = (): FuzzedFrame => {
      answeredIds.push(requestId);
      return { kind: 'valid', topic: topics.offloadRequest, payload: features(requestId), properties: { responseTopic: own, correlationData: Buffer.from(`c-${n}`) }, answerTopic: own };
    };
    const kinds: Array<() => FuzzedFrame> = [
      valid,
      () => {
        answeredIds.push(requestId);
        return { kind: 'valid, no MQTT 5 properties', topic: topics.offloadRequest, payload: features(requestId), answerTopic: own };
      },
      () => {
        answeredIds.push(requestId);
        return { kind: 'valid, large correlation data', topic: topics.offloadRequest, payload: features(requestId), properties: { responseTopic: own, correlationData: Buffer.alloc(32 * 1024, n % 256) }, answerTopic: own };
      },
      () => ({
        kind: 'foreign response topic',
        topic: topics.offloadRequest,
        payload: features(requestId),
        properties: { responseTopic: pick(['x/#', 'edge-exit/victim/config/set', 'elsewhere/topic', 'edge-exit/other-gw/offload/response/r-1', `${own}/+`, '$SYS/x']), correlationData: Buffer.from('c') },
      }),
      () => ({ kind: 'random bytes', topic: topics.offloadRequest, payload: Buffer.from(Array.from({ length: 1 + Math.floor(random() * 2000) }, () => Math.floor(random() * 256))) }),
      () => {
        const whole = features(requestId);
        return { kind: 'truncated', topic: topics.offloadRequest, payload: whole.subarray(0, Math.floor(random() * whole.length)) };
      },
      () => ({ kind: 'past the last segment', topic: topics.offloadRequest, payload: features(requestId, { segment: pkg.manifest.segments.length, shape: [10], data: new Int8Array(10) }) }),
      () => ({ kind: 'wrong tensor size', topic: topics.offloadRequest, payload: features(requestId, { shape: [1, 7], data: new Int8Array(7) }) }),
      () => ({ kind: 'another model', topic: topics.offloadRequest, payload: features(requestId, pick([{ packageName: 'other_model' }, { modelHash: '0123456789abcdef' }])) }),
      () => ({ kind: 'garbage image', topic: topics.offloadRequest, payload: encodeOffload({ ...common, kind: 'image', requestId, format: pick(['jpeg', 'png', 'webp', 'bmp'] as const), data: Buffer.from(Array.from({ length: 200 }, () => Math.floor(random() * 256))) }) }),
      () => ({ kind: 'bad device in topic', topic: `edge-exit/${pick(['bad device', 'x'.repeat(100), '..', 'dev$ice'])}/offload/request`, payload: features(requestId) }),
      () => ({ kind: 'empty payload', topic: topics.offloadRequest, payload: Buffer.alloc(0) }),
    ];
    return pick(kinds)();
  }

  // Everything the server publishes, anywhere: answers must go only where they belong.
  const watcher = await mqtt.connectAsync(broker.url, { ...broker.adminLogin, protocolVersion: 5 });
  t.teardown(() => watcher.endAsync());
  const published: { topic: string; payload: Buffer; correlationData?: Buffer }[] = [];
  watcher.on('message', (topic, payload, packet) => {
    if (!topic.endsWith('/offload/request')) published.push({ topic, payload, correlationData: packet.properties?.correlationData as Buffer | undefined });
  });
  await watcher.subscribeAsync('#', { qos: 1 });
  const client = await mqtt.connectAsync(broker.url, { ...broker.adminLogin, protocolVersion: 5 });
  t.teardown(() => client.endAsync());

  const sent: FuzzedFrame[] = [];
  const started = Date.now();
  for (let n = 0; n < FRAMES; n += 1) {
    const frame = fuzzedFrame(n);
    sent.push(frame);
    await client.publishAsync(frame.topic, frame.payload, { qos: 1, ...(frame.properties ? { properties: frame.properties } : {}) });
    // Every 100, a resend of an answered request: the server answers it again from its cache.
    if (n % 100 === 99 && answeredIds.length > 0) {
      const repeat = sent.find((s) => s.answerTopic !== undefined && s.kind === 'valid, no MQTT 5 properties');
      if (repeat) {
        sent.push({ ...repeat, kind: 'resend of an answered request' });
        await client.publishAsync(repeat.topic, repeat.payload, { qos: 1 });
      }
    }
  }
  const expectedAnswers = sent.filter((s) => s.answerTopic !== undefined).length;
  await waitFor(`${expectedAnswers} answers`, () => published.filter((m) => m.topic.includes('/offload/response/')).length >= expectedAnswers, 60_000, 50).catch(() => undefined);
  const seconds = (Date.now() - started) / 1000;

  const answers = published.filter((m) => m.topic.includes('/offload/response/'));
  t.is(answers.length, expectedAnswers, 'every valid frame and every resend answered, once each');
  const strays = published.filter((m) => !m.topic.startsWith(`edge-exit/${DEVICE}/offload/response/`) && !m.topic.startsWith('edge-exit/servers/'));
  t.deepEqual(strays.map((m) => m.topic), [], 'nothing published anywhere but the device\'s own response topics and the server\'s availability');
  for (const answer of answers) t.true(parseOffloadAnswer(answer.payload).ok, answer.topic);
  const correlated = sent.filter((s) => s.kind === 'valid');
  for (const frame of correlated) {
    const answer = answers.find((a) => a.topic === frame.answerTopic);
    t.deepEqual(answer?.correlationData, frame.properties!.correlationData, `correlation data echoed on ${frame.answerTopic}`);
  }

  // A last ordinary request after the storm is answered: the server is up.
  const probeTopic = topics.offloadResponse('after-storm');
  await client.publishAsync(topics.offloadRequest, features('after-storm'), { qos: 1, properties: { responseTopic: probeTopic } });
  await waitFor('the answer after the storm', () => published.some((m) => m.topic === probeTopic), 20_000);
  t.is(await server.stop(), 0, server.output);
  // The server logs JSON lines when its output is not a terminal.
  const messages = server.output.split('\n').map((line) => {
    try {
      return String((JSON.parse(line) as { msg?: unknown }).msg ?? line);
    } catch {
      return line;
    }
  });
  const stats = JSON.parse(messages.map((m) => m.match(/offload server stopped: (\{.*\})/)?.[1]).find(Boolean)!) as OffloadServerStats;
  const total = sent.length + 1;
  t.is(stats.answered + stats.duplicates + stats.rejected, total, `every frame answered or refused: ${JSON.stringify(stats)} for ${total}`);
  t.is(stats.foreignResponseTopics, sent.filter((s) => s.kind === 'foreign response topic').length);
  // Each refusal has its reason, and each kind of bad frame the reason it should.
  const count = (...kinds: string[]) => sent.filter((s) => kinds.includes(s.kind)).length;
  t.deepEqual(stats.rejectedBy, {
    unreadable: count('random bytes', 'truncated', 'empty payload'),
    'no valid device in the topic': count('bad device in topic'),
    'another model': count('another model'),
    'foreign response topic': count('foreign response topic'),
    'could not be computed': count('past the last segment', 'wrong tensor size', 'garbage image'),
  });
  const warningLines = messages.filter((line) => /refused|failed/.test(line)).length;
  t.true(warningLines < 100, `${warningLines} warning lines for ${stats.rejected} refusals: throttled`);

  const kinds: Record<string, number> = {};
  for (const frame of sent) kinds[frame.kind] = (kinds[frame.kind] ?? 0) + 1;
  const searched = await assertNoSecrets(t, { outputs: { server: server.output }, dirs: [], messages: published, broker });
  recordFigures(t, 'offload-fuzz', {
    seed,
    frames: sent.length,
    kinds,
    answeredOnOwnTopic: answers.length,
    publishedElsewhere: strays.length,
    serverStats: stats,
    refusedWithReason: Object.values(stats.rejectedBy).reduce((a, b) => a + b, 0),
    refusedBy: stats.rejectedBy,
    serverWarningLines: warningLines,
    crashes: 0,
    seconds: Number(seconds.toFixed(1)),
    secretSearch: { placesSearched: searched, leaks: 0 },
  });
});
