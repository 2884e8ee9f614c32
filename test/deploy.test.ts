import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
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
