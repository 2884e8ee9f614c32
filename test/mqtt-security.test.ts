import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { parseAgentConfig } from '../agent/config/agent-config.js';
import type { ModelPackage } from '../agent/model-package/load.js';
import { readTlsFiles } from '../agent/mqtt/connection-errors.js';
import { encodeOffload, parseOffloadAnswer } from '../agent/mqtt/offload-codec.js';
import type { ConfigState } from '../agent/mqtt/payloads.js';
import { deviceTopics } from '../agent/mqtt/topics.js';
import { AgentProcess, type AgentPackage } from './helpers/agent-process.js';
import { mosquittoTest, startMosquitto } from './helpers/brokers.js';
import { CliProcess } from './helpers/cli-process.js';
import { MqttWatch } from './helpers/mqtt-watch.js';
import { addAccount, makePasswordFile, makeTestPki, type TestPki } from './helpers/pki.js';
import { CIFAR_TEST } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';
import { waitFor } from './helpers/wait.js';

/** Digits only: from the environment it must still reach the broker as text. Long enough to never match by chance. */
const GATE_PASSWORD = '4711081547110815';
const WRONG_PASSWORD = 'not-the-gate-password-93b1';
const MONITOR_PASSWORD = 'monitor-password-5c2e';
const LATE_PASSWORD = 'late-gate-password-0f3a';
const SERVER_PASSWORD = 'offload-server-password-7d21';

let pkg: ModelPackage;
let agentPackage: AgentPackage;
let pki: TestPki;
let passwordFile: string;
let broker: Awaited<ReturnType<typeof startMosquitto>>;
const withTls = mosquittoTest('openssl', 'mosquitto_passwd');

test.before(async () => {
  ({ pkg, ...agentPackage } = await buildTinyAgentPackage());
});

/** One broker for the file: a TLS listener that requires client certificates of the test CA, and a password file. */
async function tlsBroker(): Promise<typeof broker> {
  if (broker) return broker;
  pki = makeTestPki();
  passwordFile = makePasswordFile(pki.dir, { 'gate-3': GATE_PASSWORD, monitor: MONITOR_PASSWORD, 'offload-server': SERVER_PASSWORD });
  broker = await startMosquitto({ tls: { caFile: pki.caFile, certFile: pki.serverCertFile, keyFile: pki.serverKeyFile }, passwordFile });
  return broker;
}
test.after.always(() => broker?.stop());

/** The operator's view of the broker, through its own account. */
function watch(topics: string[]): Promise<MqttWatch> {
  return MqttWatch.connect(broker.url, topics, {
    ca: fs.readFileSync(pki.caFile),
    cert: fs.readFileSync(pki.clientCertFile),
    key: fs.readFileSync(pki.clientKeyFile),
    username: 'monitor',
    password: MONITOR_PASSWORD,
  });
}

/** The agent's mqtt section: TLS files and the username from the config file; the password comes from the environment. */
function gateMqtt(overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { url: broker.url, username: 'gate-3', caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile, ...overrides };
}

/** A short agent run: nothing offloaded, so any traffic is the agent's own state. */
function startAgent(deviceId: string, mqtt: Record<string, string | undefined>, password: string): AgentProcess {
  return AgentProcess.start(agentPackage, { deviceId, mqtt, offload: { minConfidence: 0 } }, { env: { EDGE_EXIT__MQTT__PASSWORD: password } });
}

withTls('with the CA, a client certificate and a password from the environment the agent connects over TLS; the password is in no log, retained state or file it writes', async (t) => {
  await tlsBroker();
  const topics = deviceTopics('tls-gw');
  const operator = await watch([topics.availability, topics.configState]);
  t.teardown(() => operator.close());
  const agent = startAgent('tls-gw', gateMqtt(), GATE_PASSWORD);
  t.teardown(() => agent.stop());

  await agent.waitForOutput(/mqtt: connected to mqtts:\/\/127\.0\.0\.1:\d+ as tls-gw/);
  await operator.waitFor('availability online', (m) => m.topic === topics.availability && m.payload.toString() === 'online');
  const state = await operator.waitFor('the retained config/state', (m) => m.topic === topics.configState);
  t.false(state.payload.includes(GATE_PASSWORD), 'not in the retained config/state');
  const mqtt = (JSON.parse(state.payload.toString()) as ConfigState).config.mqtt as Record<string, unknown>;
  t.like(mqtt, { password: '[redacted]', username: 'gate-3', caFile: pki.caFile });
  await waitFor('frames logged', () => agent.inferences().length >= 5);
  t.is(await agent.stop(), 0, agent.output);
  await operator.waitFor('availability offline on a clean stop', (m) => m.topic === topics.availability && m.payload.toString() === 'offline');

  t.false(agent.output.includes(GATE_PASSWORD), 'not in the agent\'s log output');
  // The SQLite log, the outbox, the status file, the config file: none holds the password.
  for (const name of fs.readdirSync(agent.dir)) t.false(fs.readFileSync(path.join(agent.dir, name)).includes(GATE_PASSWORD), name);
});

withTls('refused by the broker, the agent keeps classifying and says once which setting to fix, never showing a password', async (t) => {
  await tlsBroker();
  const cases = [
    {
      what: 'a wrong password',
      mqtt: gateMqtt(),
      password: WRONG_PASSWORD,
      says: /refused the connection as not authorized \(user gate-3\): set mqtt\.username and mqtt\.password \(or EDGE_EXIT__MQTT__USERNAME and EDGE_EXIT__MQTT__PASSWORD\)/,
    },
    {
      what: 'no client certificate',
      mqtt: gateMqtt({ certFile: undefined, keyFile: undefined }),
      password: GATE_PASSWORD,
      says: /refused this device's TLS client certificate \(ERR_SSL_\w+\): set mqtt\.certFile and mqtt\.keyFile to .* \(none is set\)/,
    },
    {
      what: 'a client certificate of a CA the broker does not trust',
      mqtt: gateMqtt({ certFile: pki.rogueClientCertFile, keyFile: pki.rogueClientKeyFile }),
      password: GATE_PASSWORD,
      says: /refused this device's TLS client certificate \(ERR_SSL_\w+\): set mqtt\.certFile and mqtt\.keyFile to .* \(now .*rogue-client\.pem\)/,
    },
    {
      what: 'a broker certificate this device does not trust',
      mqtt: gateMqtt({ caFile: pki.rogueCaFile }),
      password: GATE_PASSWORD,
      says: /the TLS certificate of mqtts:\/\/127\.0\.0\.1:\d+ is not trusted \(.*\): set mqtt\.caFile to the CA certificate .* \(now .*rogue-ca\.pem\)/,
    },
  ];
  const topics = deviceTopics('refused-gw');
  const operator = await watch([topics.availability]);
  t.teardown(() => operator.close());
  for (const refusal of cases) {
    const agent = startAgent('refused-gw', refusal.mqtt, refusal.password);
    t.teardown(() => agent.stop());
    await agent.waitForOutput(refusal.says);
    // The agent classifies without a broker, and retries (after 1 s, then 2 s, ...) meanwhile.
    const refusedAt = agent.inferences().length;
    await waitFor(`frames logged with ${refusal.what}`, () => agent.inferences().length >= refusedAt + 25);
    t.is(await agent.stop(), 0, agent.output);
    const output = agent.output;
    t.is(output.match(new RegExp(refusal.says.source, 'g'))?.length, 1, `${refusal.what}: said once, not on every retry`);
    t.false(output.includes(GATE_PASSWORD) || output.includes(WRONG_PASSWORD), `${refusal.what}: no password in the output`);
    t.false(/mqtt: connected/.test(output), `${refusal.what}: never connected`);
  }
  t.deepEqual(operator.on(topics.availability), [], 'the refused agent never announced itself');
});

withTls('refused for an account the broker does not have yet, the agent gets in once the account exists, without a restart', async (t) => {
  await tlsBroker();
  const topics = deviceTopics('late-gw');
  const operator = await watch([topics.availability]);
  t.teardown(() => operator.close());
  const agent = startAgent('late-gw', gateMqtt({ username: 'late-gate' }), LATE_PASSWORD);
  t.teardown(() => agent.stop());
  await agent.waitForOutput(/refused the connection as not authorized \(user late-gate\)/);
  addAccount(passwordFile, 'late-gate', LATE_PASSWORD);
  await broker.stop();
  await broker.start();
  await agent.waitForOutput(/mqtt: connected to mqtts:\/\/127\.0\.0\.1:\d+ as late-gw/);
  await operator.waitFor('availability online', (m) => m.topic === topics.availability && m.payload.toString() === 'online');
  t.is(await agent.stop(), 0, agent.output);
  t.false(agent.output.includes(LATE_PASSWORD));
});

/** `edge-exit server` on the tiny package, as a service manager starts it: the password only in its environment. */
function startServer(args: string[], env: Record<string, string>): CliProcess {
  return new CliProcess(['server', '-c', agentPackage.buildConfig, '--protocol', '5', ...args], { EDGE_EXIT_MODELS_DIR: agentPackage.modelsDir, ...env });
}

withTls('edge-exit server connects over TLS with a client certificate and a password from the environment, and answers an offload; a refused login stops it naming the setting; no password is printed', async (t) => {
  await tlsBroker();
  const topics = deviceTopics('tls-offload-gw');
  const gateway = await watch([topics.offloadResponseFilter]);
  t.teardown(() => gateway.close());
  const tlsFlags = ['--ca-file', pki.caFile, '--cert-file', pki.clientCertFile, '--key-file', pki.clientKeyFile];
  const server = startServer(['--broker', broker.url, '--username', 'offload-server', ...tlsFlags], { EDGE_EXIT__MQTT__PASSWORD: SERVER_PASSWORD });
  t.teardown(() => server.stop());
  await server.waitForOutput(/offload server: tiny_cifar10 on mqtts:\/\/127\.0\.0\.1:\d+, subscribed to edge-exit\/\+\/offload\/request/);

  const image = fs.readFileSync(path.join(CIFAR_TEST, 'horse', '0007.jpg'));
  await gateway.publish(topics.offloadRequest, encodeOffload({ packageName: pkg.manifest.name, modelHash: pkg.manifest.buildKey, kind: 'image', requestId: 'tls-1', format: 'jpeg', data: image }));
  const reply = await gateway.waitFor('the answer to tls-1', (m) => m.topic === topics.offloadResponse('tls-1'));
  const answer = parseOffloadAnswer(reply.payload);
  if (!answer.ok) return t.fail(answer.reason);
  t.is(answer.answer.requestId, 'tls-1');
  t.is(answer.answer.modelHash, pkg.manifest.buildKey);
  t.true(pkg.manifest.labels.cifar10!.includes(answer.answer.label), answer.answer.label);
  t.is(await server.stop(), 0, server.output);
  t.false(server.output.includes(SERVER_PASSWORD), 'no password in the server\'s output');

  // Everything from the environment this time, with a wrong password: the TLS handshake passes, the login does not.
  const refused = startServer([], {
    EDGE_EXIT__MQTT__URL: broker.url,
    EDGE_EXIT__MQTT__USERNAME: 'offload-server',
    EDGE_EXIT__MQTT__PASSWORD: WRONG_PASSWORD,
    EDGE_EXIT__MQTT__CA_FILE: pki.caFile,
    EDGE_EXIT__MQTT__CERT_FILE: pki.clientCertFile,
    EDGE_EXIT__MQTT__KEY_FILE: pki.clientKeyFile,
  });
  t.teardown(() => refused.stop());
  t.is(await refused.exited, 1);
  t.regex(refused.output, /edge-exit: mqtt: mqtts:\/\/127\.0\.0\.1:\d+ refused the connection as not authorized \(user offload-server\): set mqtt\.username and mqtt\.password \(or EDGE_EXIT__MQTT__USERNAME and EDGE_EXIT__MQTT__PASSWORD\)/);
  t.false(refused.output.includes(WRONG_PASSWORD), 'no password in the refusal');

  // The shared validation: TLS files with a plain URL stop the server before it loads anything.
  const plain = startServer(['--broker', 'mqtt://127.0.0.1:1', ...tlsFlags], { EDGE_EXIT__MQTT__PASSWORD: SERVER_PASSWORD });
  t.teardown(() => plain.stop());
  t.is(await plain.exited, 78);
  t.regex(plain.output, /mqtt\.url: mqtt:\/\/ is not encrypted, so mqtt\.caFile, mqtt\.certFile and mqtt\.keyFile would be ignored: use mqtts:\/\//);
});

test('a TLS file that cannot be read stops start-up naming the field; a certificate needs its key', async (t) => {
  const agent = AgentProcess.start(agentPackage, { deviceId: 'no-ca-gw', mqtt: { url: 'mqtts://127.0.0.1:1', caFile: '/nonexistent/ca.pem' } }, { frames: 1 });
  t.teardown(() => agent.stop());
  t.is(await agent.exited, 78);
  t.regex(agent.output, /edge-exit: mqtt\.caFile: cannot read \/nonexistent\/ca\.pem \(ENOENT\); it should be the CA certificate \(PEM\) that signed the broker's certificate/);
  const config = parseAgentConfig({ mqtt: { url: 'mqtts://broker.local:8883', certFile: '/etc/edge-exit/client.pem' } });
  t.throws(() => readTlsFiles(config.mqtt), { message: /mqtt\.certFile and mqtt\.keyFile go together: .*only mqtt\.certFile is set/ });
});

test('TLS files with a plain mqtt:// URL stop start-up naming mqtt.url and the fix, instead of connecting unencrypted', async (t) => {
  const agent = AgentProcess.start(agentPackage, { deviceId: 'plain-gw', mqtt: { url: 'mqtt://127.0.0.1:1', caFile: '/etc/edge-exit/ca.pem' } }, { frames: 1 });
  t.teardown(() => agent.stop());
  t.is(await agent.exited, 78);
  t.regex(agent.output, /mqtt\.url: mqtt:\/\/ is not encrypted, so mqtt\.caFile would be ignored: use mqtts:\/\/ \(the broker's TLS listener, usually port 8883\), or remove the TLS files \(got "mqtt:\/\/127\.0\.0\.1:1"\)/);
  t.false(/mqtt: connected/.test(agent.output));
});
