import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { PROJECT_ROOT } from '../agent/config/paths.js';
import { deviceTopics } from '../agent/mqtt/topics.js';
import { AgentProcess, type AgentPackage } from './helpers/agent-process.js';
import { mosquittoTest, startMosquitto } from './helpers/brokers.js';
import { CliProcess } from './helpers/cli-process.js';
import { MqttWatch } from './helpers/mqtt-watch.js';
import { makePasswordFile } from './helpers/pki.js';
import { temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';
import { waitFor } from './helpers/wait.js';

let agentPackage: AgentPackage;
test.before(async () => {
  const built = await buildTinyAgentPackage();
  agentPackage = { modelsDir: built.modelsDir, buildConfig: built.buildConfig };
});
const withMosquitto = mosquittoTest('mosquitto_passwd', 'mosquitto_pub');

/** A real Mosquitto with the shipped ACL and these accounts, stopped when the test ends. */
async function aclBroker(t: ExecutionContext, accounts: Record<string, string>): Promise<{ url: string }> {
  const dir = temporaryDir('edge-exit-acl-');
  // Mosquitto drops to its own user before reading these.
  fs.chmodSync(dir, 0o755);
  const acl = path.join(dir, 'edge-exit.acl');
  fs.copyFileSync(path.join(PROJECT_ROOT, 'deploy', 'mosquitto', 'edge-exit.acl'), acl);
  fs.chmodSync(acl, 0o644);
  const broker = await startMosquitto({ passwordFile: makePasswordFile(dir, accounts), aclFile: acl });
  t.teardown(() => broker.stop());
  return broker;
}

withMosquitto('deploy/mosquitto/edge-exit.acl lets a gateway, an offload server and an operator do all they need, and a gateway nothing of another gateway', async (t) => {
  const broker = await aclBroker(t, { 'gate-7': 'gate-7-pass', 'gate-8': 'gate-8-pass', 'offload-server': 'server-pass', operator: 'operator-pass' });

  const server = new CliProcess(['server', '-c', agentPackage.buildConfig, '--broker', broker.url, '--username', 'offload-server', '--server-id', 'acl-rack', '--web-port', '0'], {
    EDGE_EXIT_MODELS_DIR: agentPackage.modelsDir,
    EDGE_EXIT__MQTT__PASSWORD: 'server-pass',
  });
  t.teardown(() => server.stop());
  await server.waitForOutput(/subscribed to/);
  const fleetPort = (await server.waitForOutput(/fleet page on http:\/\/[^:]+:(\d+)\//))[1]!;

  const operator = await MqttWatch.connect(broker.url, ['edge-exit/#'], { username: 'operator', password: 'operator-pass' });
  t.teardown(() => operator.close());
  const topics = deviceTopics('gate-7');
  const agent = AgentProcess.start(
    agentPackage,
    {
      deviceId: 'gate-7',
      mqtt: { url: broker.url, username: 'gate-7' },
      policy: { policy: 'max-probability', thresholds: [1, 1, 1, 1], maxExit: 1 },
      controller: { enabled: false },
      offload: { mode: 'features', minConfidence: 1, deadlineMs: 10_000 },
    },
    { env: { EDGE_EXIT__MQTT__PASSWORD: 'gate-7-pass' } },
  );
  t.teardown(() => agent.stop());
  await agent.waitForOutput(/offload server acl-rack is up/);
  // Offloads are answered through the ACL, and the operator sees the gateway's state and telemetry.
  await operator.waitFor('an offload answer', (m) => m.topic.startsWith(`${topics.prefix}/gate-7/offload/response/`));
  await operator.waitFor('retained config state', (m) => m.topic === topics.configState);
  await operator.waitFor('telemetry', (m) => m.topic === topics.telemetry);
  // The operator can change the config; the gateway answers.
  const set = await MqttWatch.connect(broker.url, [topics.configResponse], { username: 'operator', password: 'operator-pass' });
  t.teardown(() => set.close());
  await set.publish(topics.configSet, JSON.stringify({ id: 'acl-1', set: { telemetryIntervalMs: 1000 } }));
  const response = await set.waitFor('the config response', (m) => m.topic === topics.configResponse && JSON.parse(m.payload.toString()).id === 'acl-1');
  t.is(JSON.parse(response.payload.toString()).status, 'ok');
  // The operator asks for the gateway's health; the gateway answers.
  const health = await MqttWatch.connect(broker.url, [topics.healthResponse], { username: 'operator', password: 'operator-pass' });
  t.teardown(() => health.close());
  await health.publish(topics.healthRequest, JSON.stringify({ id: 'acl-health' }));
  const answer = await health.waitFor('the health answer', (m) => m.topic === topics.healthResponse && JSON.parse(m.payload.toString()).id === 'acl-health');
  t.is(JSON.parse(answer.payload.toString()).checks.mqtt, 'ok', 'nothing the ACL denies the gateway');
  // The server's login reads what the fleet page shows: the gateway's availability and telemetry, its own load.
  let fleet: { gateways: Array<{ deviceId: string; online?: boolean; framesPerSecond?: number }>; workers: Array<{ serverId: string; answered: number }> } = { gateways: [], workers: [] };
  for (let i = 0; i < 100; i++) {
    fleet = (await (await fetch(`http://127.0.0.1:${fleetPort}/api/fleet`)).json()) as typeof fleet;
    if (fleet.gateways.some((g) => g.deviceId === 'gate-7' && g.online && g.framesPerSecond !== undefined) && fleet.workers.some((w) => w.answered > 0)) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.like(fleet.gateways.find((g) => g.deviceId === 'gate-7'), { online: true });
  t.true(fleet.workers.some((w) => w.serverId === 'acl-rack' && w.answered > 0), JSON.stringify(fleet.workers));
  t.false(server.output.includes('refused'), server.output);

  // Another gateway's account cannot write gate-7's config.
  const intruder = await MqttWatch.connect(broker.url, ['edge-exit/gate-8/config/set'], { username: 'gate-8', password: 'gate-8-pass' });
  t.teardown(() => intruder.close());
  const before = operator.messages.length;
  await intruder.publish(topics.configSet, JSON.stringify({ id: 'intruder', set: { maxFrameRate: 1 } })).catch(() => undefined);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.false(operator.messages.slice(before).some((m) => m.topic === topics.configSet), 'the broker dropped the intruder\'s message');
});

withMosquitto('a server whose login is accepted but whose availability topic the ACL denies exits 1 naming the problem, instead of hanging', async (t) => {
  const broker = await aclBroker(t, { 'gate-9': 'gate-9-pass' });
  // A gateway's account: it may not announce a server.
  const server = new CliProcess(['server', '-c', agentPackage.buildConfig, '--broker', broker.url, '--username', 'gate-9', '--server-id', 'denied'], {
    EDGE_EXIT_MODELS_DIR: agentPackage.modelsDir,
    EDGE_EXIT__MQTT__PASSWORD: 'gate-9-pass',
  });
  t.teardown(() => server.stop());
  const code = await Promise.race([server.exited, new Promise((resolve) => setTimeout(() => resolve('still running after 30 s'), 30_000))]);
  t.is(code, 1, server.output);
  t.regex(server.output, /not authori[sz]ed/i);
  t.false(server.output.includes('gate-9-pass'));
});

withMosquitto('an agent logged in with another device\'s account shows the authorization failure in its status file, with the topic and the fix', async (t) => {
  const broker = await aclBroker(t, { 'gate-1': 'gate-1-pass' });
  const agent = AgentProcess.start(agentPackage, { deviceId: 'gate-2', mqtt: { url: broker.url, username: 'gate-1' }, statusIntervalMs: 200 }, { env: { EDGE_EXIT__MQTT__PASSWORD: 'gate-1-pass' } });
  t.teardown(() => agent.stop());
  await agent.waitForOutput(/MQTT FAILING/);
  const status = await waitFor('a status file naming the problem', () => {
    try {
      const parsed = JSON.parse(fs.readFileSync(path.join(agent.dir, 'status.json'), 'utf8')) as { mqtt?: string };
      return parsed.mqtt;
    } catch {
      return undefined;
    }
  });
  t.regex(status, /could not publish on edge-exit\/gate-2\/availability.*not authori[sz]ed/i);
  t.regex(status, /edge-exit\.acl/);
  t.false(status.includes('gate-1-pass'));
});
