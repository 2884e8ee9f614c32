import path from 'node:path';
import test from 'ava';
import { parseAgentConfig } from '../agent/config/agent-config.js';
import { AgentLink } from '../agent/mqtt/agent-link.js';
import type { ConfigResponse } from '../agent/mqtt/payloads.js';
import { RemoteConfig } from '../agent/mqtt/remote-config.js';
import { deviceTopics } from '../agent/mqtt/topics.js';
import { startAedes } from './helpers/brokers.js';
import { MqttWatch } from './helpers/mqtt-watch.js';
import { temporaryDir } from './helpers/shared.js';
import { TcpGate } from './helpers/tcp-gate.js';

/** Short bounds, so that the doubling and the cap show within seconds; the defaults are 1 s and 30 s. */
const MIN_MS = 200;
const MAX_MS = 1600;
/** The k-th delay between attempts (from 0), before the jitter takes up to a quarter off. */
const planned = (k: number) => Math.min(MAX_MS, MIN_MS * 2 ** k);
/** Attempts are timed where the gate accepts them, not where the client's timer fired: a little slack for that. */
const SLACK_MS = 30;

const gaps = (times: number[]) => times.slice(1).map((time, i) => Math.round(time - times[i]!));

test('without a broker the link retries with doubling delays up to its cap; it connects once the broker is there, and after a drop starts again from the shortest delay, resubscribed and announced', async (t) => {
  const gate = await TcpGate.listen();
  const config = parseAgentConfig({ deviceId: 'backoff-gw', mqtt: { url: gate.url, reconnectMinMs: MIN_MS, reconnectMaxMs: MAX_MS } });
  const remote = RemoteConfig.open({ base: config, overridesFile: path.join(temporaryDir('edge-exit-backoff-'), 'remote-config.json') });
  const link = await new AgentLink({
    url: gate.url,
    deviceId: 'backoff-gw',
    config,
    protocolVersion: 4,
    handlers: { onAnswer: () => {}, onConfigSet: (bytes) => remote.handleSet(bytes), configState: () => remote.stateMessage() },
  }).start();
  let broker: Awaited<ReturnType<typeof startAedes>> | undefined;
  let watch: MqttWatch | undefined;
  // In this order: a broker waits for its clients to leave before it closes.
  t.teardown(async () => {
    await link.stop();
    await watch?.close();
    await gate.close();
    await broker?.close();
  });

  // The broker is down: 9 attempts, 8 delays.
  await gate.waitForAttempts(9);
  const outage = gaps(gate.attempts.slice(0, 9));
  t.log(`delays between attempts while the broker is down: ${outage.join(', ')} ms`);
  outage.forEach((gap, k) => t.true(gap >= 0.75 * planned(k) - SLACK_MS, `delay ${k} is ${gap} ms, at least ${0.75 * planned(k)} ms planned`));
  t.true(outage[0]! < outage[3]!, 'the delays grow');
  // Uncapped, the last ones would be 6.4 s and 12.8 s (at least 4.8 s and 9.6 s after the jitter).
  for (const k of [5, 6, 7]) t.true(outage[k]! < 2 * MAX_MS, `delay ${k} is ${outage[k]} ms: capped at ${MAX_MS} ms`);

  // The broker appears: the link gets in at its next attempt, announces itself and publishes its state.
  broker = await startAedes();
  const topics = deviceTopics('backoff-gw');
  watch = await MqttWatch.connect(broker.url, [topics.availability, topics.configState, topics.configResponse], { protocolVersion: 4 });
  gate.open(Number(new URL(broker.url).port));
  const online = (after: number) => watch!.waitFor('availability online', (m) => m.topic === topics.availability && m.payload.toString() === 'online', { after });
  await online(0);
  await watch.waitFor('the retained config/state', (m) => m.topic === topics.configState);
  t.true(link.connected);

  // The connection drops: the first retry comes after the shortest delay again, then they double anew.
  const before = gate.attempts.length;
  const mark = watch.messages.length;
  const droppedAt = performance.now();
  gate.shut();
  await gate.waitForAttempts(before + 4);
  const firstRetry = Math.round(gate.attempts[before]! - droppedAt);
  const again = gaps(gate.attempts.slice(before));
  t.log(`after the drop: first retry after ${firstRetry} ms, then ${again.join(', ')} ms`);
  t.true(firstRetry < 0.75 * MAX_MS, `first retry ${firstRetry} ms after the drop: the backoff starts again from ${MIN_MS} ms`);
  again.forEach((gap, k) => t.true(gap >= 0.75 * planned(k + 1) - SLACK_MS, `delay ${k + 1} after the drop is ${gap} ms`));

  // Back again: announced, its state republished, and config/set answered (it subscribed again).
  gate.open(Number(new URL(broker.url).port));
  await online(mark);
  await watch.waitFor('config/state republished', (m) => m.topic === topics.configState, { after: mark });
  await watch.publish(topics.configSet, JSON.stringify({ id: 'after-reconnect', set: { telemetryIntervalMs: 2000 } }));
  const response = await watch.waitFor('config/response after-reconnect', (m) => m.topic === topics.configResponse, { after: mark });
  t.like(JSON.parse(response.payload.toString()) as ConfigResponse, { id: 'after-reconnect', status: 'ok', version: 1 });
});
