import test from 'ava';
import mqtt from 'mqtt';
import { controlCommandToPatch } from '../agent/mqtt/home-assistant.js';
import { deviceTopics } from '../agent/mqtt/topics.js';
import { AgentProcess } from './helpers/agent-process.js';
import { mosquittoTest, startMosquitto } from './helpers/brokers.js';
import { MqttWatch } from './helpers/mqtt-watch.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';
import { waitFor } from './helpers/wait.js';

/*
 * Home Assistant discovery against a real Mosquitto, with a test client playing Home
 * Assistant: the configs, the controls going through config/set, republishing after a
 * broker restart and on Home Assistant's `online`, and removal.
 */

const withMosquitto = mosquittoTest();

/** Home Assistant's documented required fields of each MQTT component we use. */
const REQUIRED: Record<string, string[]> = {
  sensor: ['state_topic'],
  select: ['command_topic', 'options'],
  switch: ['command_topic'],
  number: ['command_topic'],
};

type Config = Record<string, unknown> & { device: { identifiers: string[]; name: string; model: string; sw_version: string } };

function configsOf(watch: MqttWatch, after = 0): Map<string, Config> {
  const configs = new Map<string, Config>();
  for (const message of watch.messages.filter((m) => m.index >= after && m.topic.startsWith('homeassistant/') && m.topic.endsWith('/config'))) {
    if (message.payload.length === 0) configs.delete(message.topic);
    else configs.set(message.topic, JSON.parse(message.payload.toString()) as Config);
  }
  return configs;
}

withMosquitto('Home Assistant discovery: valid configs for one device, controls through config/set, republished after a broker restart and on online, removed on request', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const topics = deviceTopics('ha-gw');
  const ha = await MqttWatch.connect(broker.url, ['homeassistant/#', topics.configState, topics.configResponse]);
  t.teardown(() => ha.close());
  const agent = AgentProcess.start({ modelsDir, buildConfig }, { deviceId: 'ha-gw', mqtt: { url: broker.url }, maxFrameRate: 5 });
  t.teardown(() => agent.kill());

  await waitFor('the discovery configs', () => configsOf(ha).size >= 17, 60_000);
  const configs = configsOf(ha);
  const components = new Map<string, number>();
  for (const [topic, config] of configs) {
    const [, component, node, , last] = topic.split('/');
    t.is(last, 'config', topic);
    t.is(node, 'edge-exit_ha-gw', topic);
    components.set(component!, (components.get(component!) ?? 0) + 1);
    for (const field of REQUIRED[component!] ?? ['(unknown component)']) t.not(config[field], undefined, `${topic} lacks ${field}`);
    t.is(config.availability_topic, topics.availability);
    t.regex(String(config.unique_id), /^edge-exit_ha-gw_/);
    t.deepEqual(config.device.identifiers, ['edge-exit_ha-gw']);
    t.is(config.device.model, 'tiny_cifar10');
  }
  t.deepEqual(Object.fromEntries(components), { sensor: 11, select: 1, switch: 2, number: 3 });
  t.is(new Set([...configs.values()].map((c) => c.unique_id)).size, configs.size, 'unique ids');
  const battery = [...configs.values()].find((c) => c.device_class === 'battery');
  t.is(battery?.state_topic, topics.telemetry);

  // Home Assistant turns the controller off and picks an operating point: the same path as config/set.
  const select = [...configs.values()].find((c) => Array.isArray(c.options))!;
  const controller = [...configs.entries()].find(([topic]) => topic.includes('/switch/') && topic.includes('/controller/'))![1];
  const point = (select.options as string[]).at(-1)!;
  const client = await mqtt.connectAsync(broker.url);
  t.teardown(() => client.endAsync());
  const stateAfter = async (index: number, check: (config: { policy: { operatingPoint: string }; controller: { enabled: boolean } }) => boolean, what: string) =>
    ha.waitFor(what, (m) => m.topic === topics.configState && check(JSON.parse(m.payload.toString()).config), { after: index, timeoutMs: 20_000 });
  let index = ha.messages.length;
  await client.publishAsync(String(controller.command_topic), 'OFF', { qos: 1 });
  await stateAfter(index, (c) => c.controller.enabled === false, 'the controller off in config/state');
  index = ha.messages.length;
  await client.publishAsync(String(select.command_topic), point, { qos: 1 });
  await stateAfter(index, (c) => c.policy.operatingPoint === point, `operating point ${point} in config/state`);
  // A bad value gets the answer config/set gives, with the reason.
  index = ha.messages.length;
  const number = [...configs.values()].find((c) => c.min === 30)!;
  await client.publishAsync(String(number.command_topic), '500', { qos: 1 });
  const refused = await ha.waitFor('the refusal', (m) => m.topic === topics.configResponse && JSON.parse(m.payload.toString()).status === 'error', { after: index });
  t.regex(JSON.parse(refused.payload.toString()).reason, /controller\.maxTemperatureC.*<=110/);

  // The broker restarts (and forgets everything: no persistence): the agent says it all again.
  await broker.stop();
  await broker.start();
  index = ha.messages.length;
  await waitFor('the configs again after the broker restart', () => configsOf(ha, index).size >= 17, 30_000);
  // Home Assistant restarts: `online` on its status topic brings the configs again.
  index = ha.messages.length;
  await client.publishAsync('homeassistant/status', 'online', { qos: 1 });
  await waitFor('the configs again on online', () => configsOf(ha, index).size >= 17, 20_000);

  // Removing the device from Home Assistant: its retained configs are deleted.
  await client.publishAsync(topics.configSet, JSON.stringify({ id: 'remove', set: { homeassistant: { enabled: false } } }), { qos: 1 });
  await waitFor('the configs deleted', () => ha.messages.filter((m) => m.topic.startsWith('homeassistant/') && m.payload.length === 0).length >= 17, 20_000);
  const late = await MqttWatch.connect(broker.url, ['homeassistant/+/edge-exit_ha-gw/#']);
  t.teardown(() => late.close());
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.deepEqual(late.messages.map((m) => m.topic), [], 'nothing retained for the device');
  // With discovery off its controls are no longer taken: a command left over in Home Assistant changes nothing.
  index = ha.messages.length;
  await client.publishAsync(String(controller.command_topic), 'ON', { qos: 1 });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.deepEqual(ha.messages.slice(index).filter((m) => m.topic === topics.configResponse || m.topic === topics.configState).map((m) => m.topic), [], 'no answer and no new config');
  t.is(await agent.stop(), 0, agent.output);
});

test('control commands become config/set changes, or a reason', (t) => {
  const topics = deviceTopics('gw');
  const command = (object: string, payload: string) => controlCommandToPatch(topics, `edge-exit/gw/ha/${object}/set`, Buffer.from(payload));
  t.deepEqual(command('operating_point', 'eco'), { set: { policy: { operatingPoint: 'eco' } } });
  t.deepEqual(command('offload', 'OFF'), { set: { offload: { enabled: false } } });
  t.deepEqual(command('controller', 'ON'), { set: { controller: { enabled: true } } });
  t.deepEqual(command('max_temperature', '70'), { set: { controller: { maxTemperatureC: 70 } } });
  t.deepEqual(command('battery_reserve', '0.2'), { set: { controller: { minBatteryReserve: 0.2 } } });
  t.like(command('offload', 'maybe'), { error: 'offload: expected ON or OFF, got "maybe"' });
  t.like(command('max_temperature', 'hot'), { error: 'Max temperature: expected a number, got "hot"' });
  t.like(command('self_destruct', '1'), { error: 'unknown Home Assistant control "self_destruct"' });
});
