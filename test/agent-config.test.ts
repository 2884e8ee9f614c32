import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { ConfigError, loadAgentConfig, parseAgentConfig } from '../agent/config/agent-config.js';
import { temporaryDir } from './helpers/shared.js';

function configFile(content: string): string {
  const file = path.join(temporaryDir('edge-exit-config-'), 'edge-exit.config.json');
  fs.writeFileSync(file, content);
  return file;
}

test('no config file means every default, and the defaults are the offline demo', (t) => {
  const { config, file } = loadAgentConfig(undefined, {});
  t.is(file, undefined);
  t.is(config.source.kind, 'demo');
  t.is(config.bridge.kind, 'simulated');
  t.is(config.policy.operatingPoint, 'balanced');
});

test('environment overrides reach nested fields and are validated like the file', (t) => {
  const file = configFile(JSON.stringify({ deviceId: 'gw-1', controller: { maxTemperatureC: 80 } }));
  const { config } = loadAgentConfig(file, { EDGE_EXIT__CONTROLLER__MAX_TEMPERATURE_C: '65', EDGE_EXIT__DEVICE_ID: 'gw-2' });
  t.is(config.controller.maxTemperatureC, 65);
  t.is(config.deviceId, 'gw-2');
  const error = t.throws(() => loadAgentConfig(file, { EDGE_EXIT__CONTROLLER__MAX_TEMPERATURE_C: '500' }), { instanceOf: ConfigError });
  t.regex(error!.message, /controller\.maxTemperatureC: .*<=110.*\(got 500\)/);
});

test('an invalid config stops start-up naming each field, its allowed range and the value', (t) => {
  const file = configFile(JSON.stringify({ deviceId: 'bad/id+', maxFrameRate: 0, controller: { minBatteryReserve: 2 }, source: { kind: 'webcam' } }));
  const error = t.throws(() => loadAgentConfig(file, {}), { instanceOf: ConfigError });
  t.regex(error!.message, new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  t.regex(error!.message, /deviceId: letters, digits, _ and - only.*\(got "bad\/id\+"\)/);
  t.regex(error!.message, /maxFrameRate: .*>0.*\(got 0\)/);
  t.regex(error!.message, /controller\.minBatteryReserve: .*<=0\.9.*\(got 2\)/);
  t.regex(error!.message, /source\.kind/);
});

test('a config file that is not JSON, or cannot be read, says which file and why', (t) => {
  t.throws(() => loadAgentConfig(configFile('{ "deviceId": '), {}), { instanceOf: ConfigError, message: /is not valid JSON/ });
  t.throws(() => loadAgentConfig('/nonexistent/edge-exit.json', {}), { instanceOf: ConfigError, message: /Cannot read config file \/nonexistent\/edge-exit\.json/ });
});

test('thresholds given by hand must lie in [0, 1]', (t) => {
  t.throws(() => parseAgentConfig({ policy: { policy: 'entropy', thresholds: [0.2, 1.4] } }), { instanceOf: ConfigError, message: /policy\.thresholds\.1: .*<=1/ });
});

test('credentials never reach the published config state or the logged broker URL', async (t) => {
  const { RemoteConfig } = await import('../agent/mqtt/remote-config.js');
  const { redactUrl } = await import('../agent/config/agent-config.js');
  const base = parseAgentConfig({ mqtt: { url: 'mqtts://gate:s3cret@broker.local:8883', username: 'gate', password: 's3cret' } });
  const dir = temporaryDir('edge-exit-secrets-');
  const remote = RemoteConfig.open({ base, overridesFile: path.join(dir, 'remote.json') });
  const state = remote.stateMessage().toString();
  t.false(state.includes('s3cret'), state);
  t.true(state.includes('[redacted]'));
  t.is(remote.config.mqtt.password, 's3cret', 'the agent itself still has it');
  t.is(redactUrl('mqtts://gate:s3cret@broker.local:8883'), 'mqtts://gate:***@broker.local:8883');
  t.is(redactUrl('mqtt://127.0.0.1:1884'), 'mqtt://127.0.0.1:1884');
});

test('credentials from the environment stay text, and an invalid one is named but never shown', (t) => {
  const { config } = loadAgentConfig(undefined, { EDGE_EXIT__MQTT__USERNAME: '1234', EDGE_EXIT__MQTT__PASSWORD: '4711081547110815', EDGE_EXIT_CONFIG: configFile('{}') });
  t.is(config.mqtt.username, '1234');
  t.is(config.mqtt.password, '4711081547110815', 'a password of digits is not read as a number');
  const error = t.throws(() => parseAgentConfig({ mqtt: { password: 4711081547110815 } }), { instanceOf: ConfigError, message: /mqtt\.password: .*\(got \[redacted\]\)/ });
  t.false(error.message.includes('4711081547110815'));
  const url = t.throws(() => parseAgentConfig({ mqtt: { url: 'http://gate:s3cret@broker.local' } }), { instanceOf: ConfigError, message: /mqtt\.url/ });
  t.false(url.message.includes('s3cret'), url.message);
});

test('TLS files need a TLS broker URL: a plain-text scheme, or none (the embedded broker), is refused naming mqtt.url and the fix', (t) => {
  const refused: Array<[Record<string, string>, RegExp]> = [
    [{ url: 'mqtt://broker.local:1883', caFile: '/etc/ca.pem' }, /mqtt\.url: mqtt:\/\/ is not encrypted, so mqtt\.caFile would be ignored: use mqtts:\/\//],
    [{ url: 'tcp://broker.local:1883', certFile: 'c.pem', keyFile: 'k.pem' }, /mqtt\.url: tcp:\/\/ is not encrypted, so mqtt\.certFile and mqtt\.keyFile would be ignored: use mqtts:\/\//],
    [{ url: 'ws://broker.local/mqtt', caFile: '/etc/ca.pem' }, /mqtt\.url: ws:\/\/ is not encrypted, .*use wss:\/\//],
    [{ caFile: '/etc/ca.pem' }, /mqtt\.url: not set, so the embedded plain-text broker is used and mqtt\.caFile would be ignored/],
  ];
  for (const [mqtt, message] of refused) t.throws(() => parseAgentConfig({ mqtt }), { instanceOf: ConfigError, message }, JSON.stringify(mqtt));
  for (const url of ['mqtts://broker.local:8883', 'ssl://broker.local:8883', 'wss://broker.local/mqtt']) t.notThrows(() => parseAgentConfig({ mqtt: { url, caFile: '/etc/ca.pem' } }), url);
  t.notThrows(() => parseAgentConfig({ mqtt: { url: 'mqtt://broker.local:1883', username: 'gate' } }), 'a plain URL without TLS files');
});

test('reconnect delays: 1 s to 30 s by default, and the longest may not be shorter than the first', (t) => {
  t.like(parseAgentConfig({}).mqtt, { reconnectMinMs: 1000, reconnectMaxMs: 30_000 });
  t.throws(() => parseAgentConfig({ mqtt: { reconnectMinMs: 5000, reconnectMaxMs: 2000 } }), { instanceOf: ConfigError, message: /mqtt\.reconnectMaxMs: must be at least mqtt\.reconnectMinMs \(5000\)/ });
});
