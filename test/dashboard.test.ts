import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import mqtt from 'mqtt';
import { chromium } from 'playwright-core';
import { deviceTopics } from '../agent/mqtt/topics.js';
import { AgentProcess } from './helpers/agent-process.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

/*
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core (never a
 * downloaded browser), on a running agent whose port is exposed behind a token.
 */

const CHROMIUM = '/usr/bin/chromium';
const withChromium = fs.existsSync(CHROMIUM) ? test : test.skip;
/** Where the screenshot goes: EDGE_EXIT_SCREENSHOTS, else a temporary directory. */
const SCREENSHOTS = process.env.EDGE_EXIT_SCREENSHOTS ?? path.join(os.tmpdir(), 'edge-exit-screenshots');

withChromium('the dashboard shows live values, changes the config through config/set (read back from the retained config/state), shows the reason of a refusal, and needs the token', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const token = 'dashboard-test-token-0123';
  const brokerPort = 20_000 + Math.floor(Math.random() * 20_000);
  const agent = AgentProcess.start({ modelsDir, buildConfig }, { deviceId: 'dash-gw', maxFrameRate: 20, web: { host: '0.0.0.0', port: 0, token }, mqtt: { embeddedPort: brokerPort } });
  t.teardown(() => agent.kill());
  const webPort = (await agent.waitForOutput(/dashboard on http:\/\/[^:]+:(\d+)\//))[1]!;
  const url = `http://127.0.0.1:${webPort}/`;

  // Exposed: nothing without the token, whatever the path.
  for (const route of ['', 'api/live', 'api/config', 'metrics']) t.is((await fetch(url + route)).status, 401, `/${route} without the token`);
  t.is((await fetch(url, { headers: { authorization: `Basic ${Buffer.from('operator:wrong-token-wrong-token').toString('base64')}` } })).status, 401);

  const operator = await mqtt.connectAsync(`mqtt://127.0.0.1:${brokerPort}`);
  t.teardown(() => operator.endAsync());
  const topics = deviceTopics('dash-gw');
  const responses: Array<{ id?: string; status: string; reason?: string }> = [];
  let state: { version: number; config: { maxFrameRate: number } } | undefined;
  operator.on('message', (topic, payload) => {
    if (topic === topics.configResponse) responses.push(JSON.parse(payload.toString()));
    if (topic === topics.configState) state = JSON.parse(payload.toString());
  });
  await operator.subscribeAsync([topics.configResponse, topics.configState], { qos: 1 });

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const context = await browser.newContext({ httpCredentials: { username: 'operator', password: token }, viewport: { width: 1280, height: 1400 } });
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await page.goto(url);

  // Live, with no reload: the frame count moves by itself.
  // Page-side expressions as strings: the tests are compiled without the DOM's types.
  await page.waitForFunction(`/^\\d+$/.test(document.getElementById('frames').textContent)`);
  const firstCount = Number(await page.textContent('#frames'));
  await page.waitForFunction(`Number(document.getElementById('frames').textContent) > ${firstCount}`, undefined, { timeout: 10_000 });
  t.is(await page.textContent('#health'), 'ok');
  t.is(await page.textContent('#device'), 'dash-gw');

  // A change through the form: answered, in force, retained.
  await page.waitForSelector('input[name="maxFrameRate"]');
  await page.fill('input[name="maxFrameRate"]', '7');
  await page.click('form#config button[type="submit"]');
  await page.waitForSelector('#config-answer.ok');
  t.regex((await page.textContent('#config-answer'))!, /^applied \(config version 1\)/);
  for (let i = 0; i < 50 && state?.config.maxFrameRate !== 7; i++) await sleep(100);
  t.is(state?.config.maxFrameRate, 7, 'the retained config/state says 7');
  t.is(state?.version, 1);
  const accepted = responses.find((r) => r.id?.startsWith('dashboard-'));
  t.is(accepted?.status, 'ok', 'answered on config/response as an MQTT change is');

  // An invalid value: the page shows the reason config/response gives.
  await page.fill('input[name="maxFrameRate"]', '500');
  await page.click('form#config button[type="submit"]');
  await page.waitForSelector('#config-answer.error');
  const shown = (await page.textContent('#config-answer'))!;
  for (let i = 0; i < 50 && !responses.some((r) => r.status === 'error'); i++) await sleep(100);
  const refusal = responses.find((r) => r.status === 'error');
  t.is(shown, refusal?.reason ?? '(no refusal on config/response)', 'the same reason as on MQTT');
  t.regex(shown, /maxFrameRate/);
  t.truthy(refusal);
  t.is(state?.config.maxFrameRate, 7, 'nothing changed');

  // Timelines (uPlot) and the settings form were drawn.
  t.true((await page.locator('#charts .uplot').count()) >= 4);
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, 'dashboard-test.png'), fullPage: true });
  t.deepEqual(pageErrors, []);
  t.is(await agent.stop(), 0, agent.output);
  t.false(agent.output.includes(token));
});
