/**
 * The README's screenshots, from running programs: two gateways on the default demo
 * (the first with its embedded broker and offload server, the second on that broker), an
 * `edge-exit server --web-port` fleet page beside them, and Debian's Chromium. Run with
 * `node --import tsx tools/docs/screenshots.ts` (about two minutes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { PROJECT_ROOT } from '../../agent/config/paths.js';

const CLI = path.join(PROJECT_ROOT, 'bin', 'edge-exit.js');
const OUT = path.join(PROJECT_ROOT, 'docs', 'images');
const BROKER_PORT = 18_884;
const SECONDS = Number(process.env.EDGE_EXIT_SCREENSHOT_SECONDS ?? 90);

const children: ChildProcess[] = [];

function start(args: string[]): { output: () => string; waitFor: (pattern: RegExp) => Promise<RegExpMatchArray> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let text = '';
  child.stdout!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return {
    output: () => text,
    async waitFor(pattern) {
      for (let i = 0; i < 1200; i++) {
        const match = text.match(pattern);
        if (match) return match;
        if (child.exitCode !== null) break;
        await sleep(250);
      }
      throw new Error(`${args.join(' ')} did not print ${pattern}:\n${text.slice(-3000)}`);
    },
  };
}

function gatewayConfig(dir: string, deviceId: string, extra: Record<string, unknown>): string {
  const file = path.join(dir, `${deviceId}.json`);
  // A bigger battery than the demo's, so that the gateways outlive the screenshots.
  const config = { deviceId, logs: { path: path.join(dir, deviceId, 'edge-exit.db') }, bridge: { kind: 'simulated', clock: 'real', capacityWh: 20, ambientC: 31 }, ...extra };
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-screenshots-'));
  const porch = start(['run', '-c', gatewayConfig(dir, 'porch-cam', { mqtt: { embeddedPort: BROKER_PORT }, web: { port: 0 } })]);
  const dashboardPort = (await porch.waitFor(/dashboard on http:\/\/[^:]+:(\d+)\//))[1]!;
  const broker = `mqtt://127.0.0.1:${BROKER_PORT}`;
  start(['run', '-c', gatewayConfig(dir, 'shed-cam', { mqtt: { url: broker, protocolVersion: 4 }, web: { enabled: false }, deviceProfile: 'jetson-nano' })]);
  const fleet = start(['server', '--broker', broker, '--protocol', '4', '--server-id', 'rack-1', '--web-port', '0']);
  const fleetPort = (await fleet.waitFor(/fleet page on http:\/\/[^:]+:(\d+)\//))[1]!;
  console.log(`running for ${SECONDS} s so that the timelines and events fill`);
  await sleep(SECONDS * 1000);

  fs.mkdirSync(OUT, { recursive: true });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`http://127.0.0.1:${dashboardPort}/`);
    await page.selectOption('#range', '900000');
    await sleep(4000);
    await page.screenshot({ path: path.join(OUT, 'dashboard.png'), fullPage: true });
    const fleetPage = await browser.newPage({ viewport: { width: 1280, height: 360 } });
    await fleetPage.goto(`http://127.0.0.1:${fleetPort}/`);
    await sleep(3000);
    await fleetPage.screenshot({ path: path.join(OUT, 'fleet.png'), fullPage: true });
  } finally {
    await browser.close();
  }
  console.log(`written: ${path.join(OUT, 'dashboard.png')}, ${path.join(OUT, 'fleet.png')}`);
}

try {
  await main();
} finally {
  for (const child of children) child.kill('SIGTERM');
}
