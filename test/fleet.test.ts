import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { chromium } from 'playwright-core';
import { startEmbeddedBroker } from '../agent/mqtt/embedded-broker.js';
import type { FleetSnapshot } from '../server/fleet/fleet-watcher.js';
import { AgentProcess } from './helpers/agent-process.js';
import { CliProcess } from './helpers/cli-process.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

/*
 * The fleet page of `edge-exit server --web-port`: two real gateways on one broker (aedes),
 * seen by the server as they come and go, in Debian's Chromium.
 */

const CHROMIUM = '/usr/bin/chromium';
const withChromium = fs.existsSync(CHROMIUM) ? test : test.skip;
const SCREENSHOTS = process.env.EDGE_EXIT_SCREENSHOTS ?? path.join(os.tmpdir(), 'edge-exit-screenshots');

withChromium('the fleet page lists every gateway on the broker with its telemetry and state, and the offload worker with its load; a gateway that stops shows offline', async (t) => {
  const pkg = await buildTinyAgentPackage();
  const brokerPort = 20_000 + Math.floor(Math.random() * 20_000);
  const broker = await startEmbeddedBroker(brokerPort);
  t.teardown(() => broker.close());
  const server = new CliProcess(['server', '-c', pkg.buildConfig, '--broker', broker.url, '--protocol', '4', '--server-id', 'fleet-rack', '--web-port', '0'], { EDGE_EXIT_MODELS_DIR: pkg.modelsDir });
  t.teardown(() => server.stop());
  const webPort = (await server.waitForOutput(/fleet page on http:\/\/[^:]+:(\d+)\//))[1]!;
  const gateway = (deviceId: string) =>
    AgentProcess.start(pkg, {
      deviceId,
      mqtt: { url: broker.url, protocolVersion: 4 },
      telemetryIntervalMs: 500,
      maxFrameRate: 10,
      // Every frame leaves exit 0 unsure and goes to the server: the worker has load to show.
      policy: { policy: 'max-probability', thresholds: [1, 1, 1, 1], maxExit: 0 },
      controller: { enabled: false },
      offload: { minConfidence: 1, deadlineMs: 5000 },
    });
  const porch = gateway('porch');
  const barn = gateway('barn');
  t.teardown(() => porch.kill());
  t.teardown(() => barn.kill());

  const fleetNow = async () => (await (await fetch(`http://127.0.0.1:${webPort}/api/fleet`)).json()) as FleetSnapshot;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 480 } });
  await page.goto(`http://127.0.0.1:${webPort}/`);
  // Both online, with telemetry (frames/s) and what each sees; the worker has answered some.
  await page.waitForFunction(
    `[...document.querySelectorAll('#gateways tbody tr.online')].filter((row) => row.cells[3].textContent !== '–' && row.cells[5].textContent !== '–').length === 2`,
    undefined,
    { timeout: 60_000 },
  );
  await page.waitForFunction(`Number(document.querySelector('#workers tr[data-worker="fleet-rack"]')?.cells[1].textContent) > 0`, undefined, { timeout: 30_000 });
  const fleet = await fleetNow();
  t.deepEqual(
    fleet.gateways.map((g) => g.deviceId),
    ['barn', 'porch'],
  );
  for (const g of fleet.gateways) {
    t.true(g.online);
    t.true((g.framesPerSecond ?? 0) > 0, `${g.deviceId} frames/s ${g.framesPerSecond}`);
    t.is(typeof g.state?.label, 'string');
    t.is(g.operatingPoint, 'custom');
  }
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, 'fleet-test.png'), fullPage: true });

  // A gateway that stops says offline, and the page follows without a reload.
  t.is(await barn.stop(), 0, barn.output);
  await page.waitForSelector('#gateways tr.offline[data-device="barn"]', { timeout: 20_000 });
  t.false((await fleetNow()).gateways.find((g) => g.deviceId === 'barn')!.online);
  t.true((await fleetNow()).gateways.find((g) => g.deviceId === 'porch')!.online);

  const metrics = await (await fetch(`http://127.0.0.1:${webPort}/metrics`)).text();
  t.regex(metrics, /^edge_exit_fleet_gateways\{availability="online"\} 1$/m);
  t.regex(metrics, /^edge_exit_server_answered\{worker="fleet-rack"\} [1-9]\d*$/m);
  t.is(await porch.stop(), 0, porch.output);
});
