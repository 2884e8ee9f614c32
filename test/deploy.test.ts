import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { loadAgentConfig } from '../agent/config/agent-config.js';
import { PROJECT_ROOT } from '../agent/config/paths.js';
import { parseBridgeConfig } from '../firmware-bridge/config.js';

const DEPLOY = path.join(PROJECT_ROOT, 'deploy');

test('the example gateway config is a valid agent config with a valid bridge', (t) => {
  const { config } = loadAgentConfig(path.join(DEPLOY, 'gateway.config.json'), {});
  t.is(config.source.kind, 'camera');
  t.true(config.mqtt.url!.startsWith('mqtts://'));
  const bridge = parseBridgeConfig(config.bridge);
  t.is(bridge.kind, 'combined');
});

test('each systemd unit starts a command the CLI has, from the installed checkout', (t) => {
  for (const unit of ['edge-exit-agent.service', 'edge-exit-server.service']) {
    const text = fs.readFileSync(path.join(DEPLOY, 'systemd', unit), 'utf8');
    const execStart = /^ExecStart=(\S+) (\S+) (\S+)/m.exec(text);
    t.truthy(execStart, unit);
    const [, node, cli, command] = execStart!;
    t.is(node, '/usr/bin/node', unit);
    t.is(cli, '/opt/edge-exit/bin/edge-exit.js', 'install.sh rewrites /opt/edge-exit to its PREFIX');
    // The command exists: its help exits 0 and names it.
    const help = execFileSync(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'edge-exit.js'), command!, '--help'], { encoding: 'utf8' });
    t.regex(help, new RegExp(`Usage: edge-exit ${command}`), unit);
    t.regex(text, /^KillSignal=SIGTERM/m, 'the agent flushes its log on SIGTERM');
  }
});

test('install.sh is valid bash and refuses a role it does not know', (t) => {
  const script = path.join(DEPLOY, 'install.sh');
  execFileSync('bash', ['-n', script]);
  const error = t.throws(() => execFileSync('bash', [script, 'gateway'], { encoding: 'utf8', stdio: 'pipe' })) as Error & { stderr: string; status: number };
  t.is(error.status, 2);
  t.regex(error.stderr, /role must be agent, server or both, not 'gateway'/);
});

test('the agent unit is a notify service with a watchdog longer than the stall the agent reports', (t) => {
  const text = fs.readFileSync(path.join(DEPLOY, 'systemd', 'edge-exit-agent.service'), 'utf8');
  t.regex(text, /^Type=notify$/m);
  t.regex(text, /^NotifyAccess=all$/m, 'systemd-notify, a child, sends the messages');
  const watchdogS = Number(/^WatchdogSec=(\d+)$/m.exec(text)?.[1]);
  const stalledAfterS = loadAgentConfig(path.join(DEPLOY, 'gateway.config.json'), {}).config.health.stalledAfterS;
  t.true(watchdogS > stalledAfterS, `WatchdogSec ${watchdogS} s must outlast the stall (${stalledAfterS} s) the agent waits for before it stops the pings`);
  t.regex(text, /^Restart=on-failure$/m);
});

/** A unit file as section -> key -> values (a key may repeat; comments and blank lines dropped). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = new Map();
      sections.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (!section || eq < 0) throw new Error(`not a unit line: ${line}`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

/** The exit status of `edge-exit run` that the units do not restart, as the tests below check the CLI exits with. */
const CONFIG_EXIT_STATUS = 78;

test('each unit does not restart a config or package error and has a start limit that can trip', (t) => {
  for (const unit of ['edge-exit-agent.service', 'edge-exit-server.service']) {
    const sections = parseUnit(fs.readFileSync(path.join(DEPLOY, 'systemd', unit), 'utf8'));
    const value = (section: string, key: string) => sections.get(section)?.get(key)?.at(-1);
    t.is(value('Service', 'Restart'), 'on-failure', unit);
    t.deepEqual(value('Service', 'RestartPreventExitStatus')?.split(/\s+/).includes(String(CONFIG_EXIT_STATUS)), true, `${unit}: RestartPreventExitStatus has ${CONFIG_EXIT_STATUS}`);
    // StartLimit* belong to [Unit]; in [Service] systemd ignores them (with a warning).
    t.is(sections.get('Service')?.has('StartLimitIntervalSec'), false, unit);
    const restartSec = Number(value('Service', 'RestartSec'));
    const intervalS = Number(value('Unit', 'StartLimitIntervalSec'));
    const burst = Number(value('Unit', 'StartLimitBurst'));
    t.true(restartSec > 0 && intervalS > 0 && burst > 1, `${unit}: RestartSec ${restartSec}, StartLimitIntervalSec ${intervalS}, StartLimitBurst ${burst}`);
    // Restarts come RestartSec apart (plus start time): burst of them within the interval must be possible, or the limit never trips.
    t.true(burst * restartSec < intervalS, `${unit}: ${burst} x ${restartSec} s must be under ${intervalS} s`);
  }
});

/** `edge-exit run` on a copy of the released package under a fresh models dir, with one file of it changed by `spoil`. */
function runOnSpoiledRelease(spoil: (dir: string) => void): { status: number | null; stderr: string; name: string } {
  const name = fs.readdirSync(path.join(PROJECT_ROOT, 'models', 'releases')).find((entry) => fs.existsSync(path.join(PROJECT_ROOT, 'models', 'releases', entry, 'manifest.json')))!;
  const models = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-deploy-'));
  const dir = path.join(models, 'releases', name);
  fs.cpSync(path.join(PROJECT_ROOT, 'models', 'releases', name), dir, { recursive: true });
  spoil(dir);
  const config = path.join(models, 'agent.json');
  fs.writeFileSync(config, JSON.stringify({ model: { package: name }, web: { enabled: false } }));
  const result = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'edge-exit.js'), 'run', '-c', config, '--frames', '1'], {
    encoding: 'utf8',
    env: { ...process.env, EDGE_EXIT_MODELS_DIR: models, EDGE_EXIT_CONFIG: '' },
    timeout: 60_000,
  });
  fs.rmSync(models, { recursive: true, force: true });
  return { status: result.status, stderr: result.stderr, name };
}

test('run on a corrupt released package exits with the status the units do not restart, and says to restore the release', (t) => {
  const { status, stderr, name } = runOnSpoiledRelease((dir) => {
    const file = path.join(dir, 'segment-1.tflite');
    const bytes = fs.readFileSync(file);
    const at = bytes.length - 100;
    bytes[at] = bytes[at]! ^ 0xff;
    fs.writeFileSync(file, bytes);
  });
  t.is(status, CONFIG_EXIT_STATUS, stderr);
  t.regex(stderr, /segment-1\.tflite has sha256/);
  t.true(stderr.includes(`git checkout -- models/releases/${name}`), stderr);
  t.false(stderr.includes('build-model --force'), 'a release is restored, not rebuilt');
});

test('run with a package that is missing, or a config that does not parse, exits with the same status', (t) => {
  const missing = runOnSpoiledRelease((dir) => fs.rmSync(path.join(dir, 'manifest.json')));
  t.is(missing.status, CONFIG_EXIT_STATUS, missing.stderr);
  const bad = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'edge-exit.js'), 'run', '-c', path.join(DEPLOY, 'no-such-config.json')], { encoding: 'utf8', timeout: 60_000 });
  t.is(bad.status, CONFIG_EXIT_STATUS, bad.stderr);
  t.regex(bad.stderr, /no-such-config\.json/);
});
