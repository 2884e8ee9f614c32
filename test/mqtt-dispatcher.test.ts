import path from 'node:path';
import test from 'ava';
import { parseAgentConfig } from '../agent/config/agent-config.js';
import { ConfigOwners } from '../agent/config/config-owners.js';
import { CONFIG_SECTIONS, configPatchSchema, type ConfigSection } from '../agent/config/config-patch.js';
import { AgentLink } from '../agent/mqtt/agent-link.js';
import { topicMatches } from '../agent/mqtt/dispatcher.js';
import { MqttTransport } from '../agent/mqtt/transport.js';
import { EdgeExitApp } from '../agent/app/edge-exit-app.js';
import { freePort } from '../tools/mqtt/mosquitto.js';
import { startAedes } from './helpers/brokers.js';
import { CIFAR_TEST, temporaryDir } from './helpers/shared.js';
import { buildTinyPackage } from './helpers/tiny-package.js';
import { MqttWatch } from './helpers/mqtt-watch.js';

const waitFor = async (what: string, done: () => boolean, ms = 5000) => {
  const until = Date.now() + ms;
  while (!done()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

test('the registry takes one owner per section of the config/set patch schema, and refuses a section the schema lacks', (t) => {
  t.deepEqual([...CONFIG_SECTIONS].sort(), Object.keys(configPatchSchema.shape).sort(), 'the sections are the patch schema keys');
  const owners = new ConfigOwners();
  owners.register({ name: 'a', sections: ['policy', 'controller'], apply: () => {} });
  t.throws(() => owners.register({ name: 'b', sections: ['policy'], apply: () => {} }), { message: /"policy" is already owned by a/ });
  t.throws(() => owners.register({ name: 'c', sections: ['deviceProfile' as ConfigSection], apply: () => {} }), { message: /"deviceProfile" is not a section/ });
  t.true(owners.unowned.includes('gate'));
  t.throws(() => owners.checkComplete(), { message: /without an owner: .*gate/ });
});

test("the running app's owners cover every section of the patch schema exactly once", async (t) => {
  const pkg = await buildTinyPackage();
  const dir = temporaryDir('edge-exit-owners-');
  const config = parseAgentConfig({
    model: { package: 'tiny_cifar10', backend: 'xnnpack', threads: 1 },
    source: { kind: 'replay', dataset: CIFAR_TEST, loop: false, seed: 1 },
    logs: { path: path.join(dir, 'log.db') },
    mqtt: { embeddedPort: await freePort() },
    web: { port: 0 },
  });
  const app = new EdgeExitApp({ config, pkg });
  await app.start();
  t.teardown(() => app.stop());
  t.deepEqual([...app.configOwners.keys()].sort(), Object.keys(configPatchSchema.shape).sort());
});

test('a change reaches only the owners of the sections it changed, and each owner judges only what the patch names', (t) => {
  const owners = new ConfigOwners();
  const calls: string[] = [];
  owners.register({ name: 'control', sections: ['policy', 'controller'], judge: () => void calls.push('judge control'), apply: (_c, change) => void calls.push(`apply control ${[...change.sections].join(',')}`) });
  owners.register({ name: 'rest', sections: CONFIG_SECTIONS.filter((s) => s !== 'policy' && s !== 'controller'), judge: () => void calls.push('judge rest'), apply: () => void calls.push('apply rest') });
  const config = parseAgentConfig({});
  t.is(owners.take(config, config, { controller: { minDwellS: 3 } }, ['controller.minDwellS']), undefined);
  t.deepEqual(calls, ['judge control', 'apply control controller']);
});

test('a refusal by a later owner puts the owners already applied back, and a change that cannot be saved is undone', (t) => {
  const owners = new ConfigOwners();
  const applied: number[] = [];
  owners.register({ name: 'rate', sections: ['maxFrameRate'], apply: (c) => void applied.push(c.maxFrameRate) });
  owners.register({ name: 'strict', sections: CONFIG_SECTIONS.filter((s) => s !== 'maxFrameRate'), judge: (_c, patch) => { if (patch.offload) throw new Error('offload: not here'); }, apply: () => {} });
  const before = parseAgentConfig({ maxFrameRate: 10 });
  const after = parseAgentConfig({ maxFrameRate: 20 });
  t.throws(() => owners.take(before, after, { maxFrameRate: 20, offload: { enabled: false } }, ['maxFrameRate']), { message: 'offload: not here' });
  t.deepEqual(applied, [20, 10], 'applied, then put back to the previous rate');
  owners.take(before, after, { maxFrameRate: 20 }, ['maxFrameRate']);
  owners.revert(before, ['maxFrameRate']);
  t.deepEqual(applied, [20, 10, 20, 10]);
});

test('MQTT filters match topics as a broker matches them', (t) => {
  t.true(topicMatches('a/+/c', 'a/b/c'));
  t.false(topicMatches('a/+/c', 'a/b/c/d'));
  t.true(topicMatches('a/#', 'a'));
  t.true(topicMatches('a/#', 'a/b/c'));
  t.false(topicMatches('a/b', 'a/b/c'));
});

test('the dispatcher routes each topic to its handler on a real broker: routes added before the connect are subscribed with it, one added later at once, a removed one no more', async (t) => {
  const broker = await startAedes();
  const config = parseAgentConfig({ deviceId: 'dispatch-gw', mqtt: { url: broker.url } });
  const transport = new MqttTransport({ url: broker.url, deviceId: 'dispatch-gw', mqtt: config.mqtt, protocolVersion: 4 });
  const watch = await MqttWatch.connect(broker.url, ['test/none'], { protocolVersion: 4 });
  t.teardown(async () => {
    await transport.stop();
    await watch.close();
    await broker.close();
  });
  const seen: string[] = [];
  transport.route('test/one/+', (topic, payload) => void seen.push(`one ${topic} ${payload.toString()}`));
  t.false(transport.connected, 'constructing and routing does not connect');
  transport.start();
  await waitFor('the connect', () => transport.connected);
  await new Promise((resolve) => setTimeout(resolve, 100));
  await watch.publish('test/one/x', 'a');
  await waitFor('the first message', () => seen.length === 1);
  const unroute = transport.route('test/two', () => void seen.push('two'));
  await new Promise((resolve) => setTimeout(resolve, 100));
  await watch.publish('test/two', 'b');
  await waitFor('the late route', () => seen.includes('two'));
  unroute();
  await new Promise((resolve) => setTimeout(resolve, 100));
  await watch.publish('test/two', 'c');
  await watch.publish('test/one/y', 'd');
  await waitFor('the last message', () => seen.length === 3);
  t.deepEqual(seen, ['one test/one/x a', 'two', 'one test/one/y d']);
});

test('the link is a set of units: none connects before start, and the health extension answers on its topic', async (t) => {
  const broker = await startAedes();
  const config = parseAgentConfig({ deviceId: 'units-gw', mqtt: { url: broker.url } });
  const link = new AgentLink({ url: broker.url, deviceId: 'units-gw', config, protocolVersion: 4, handlers: { onAnswer: () => {}, onHealthRequest: () => Buffer.from('{"status":"ok"}') } });
  t.deepEqual(link.units.map((u) => u.name), ['mqtt results', 'mqtt health', 'offload client', 'mqtt transport']);
  const watch = await MqttWatch.connect(broker.url, [link.topics.healthResponse, link.topics.availability], { protocolVersion: 4 });
  t.teardown(async () => {
    await link.stop();
    await watch.close();
    await broker.close();
  });
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.false(link.connected);
  await link.start();
  await watch.waitFor('availability online', (m) => m.topic === link.topics.availability && m.payload.toString() === 'online');
  await watch.publish(link.topics.healthRequest, '{}');
  const answer = await watch.waitFor('the health answer', (m) => m.topic === link.topics.healthResponse);
  t.is(answer.payload.toString(), '{"status":"ok"}');
});
