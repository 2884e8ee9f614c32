import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import anyTest, { type TestFn } from 'ava';
import mqtt from 'mqtt';
import { type Browser, chromium, type Page } from 'playwright-core';
import { deviceTopics } from '../agent/mqtt/topics.js';
import { LogStore } from '../agent/store/log-store.js';
import { AgentProcess } from './helpers/agent-process.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

/*
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core (never a
 * downloaded browser), on a running agent whose port is exposed behind a token. One agent
 * and one browser for the whole file; the tests run in order (each config change bumps the
 * version the next one expects).
 */

const CHROMIUM = '/usr/bin/chromium';
/** Where the screenshot goes: EDGE_EXIT_SCREENSHOTS, else a temporary directory. */
const SCREENSHOTS = process.env.EDGE_EXIT_SCREENSHOTS ?? path.join(os.tmpdir(), 'edge-exit-screenshots');
const TOKEN = 'dashboard-test-token-0123';
/** The log the agent starts on: a few minutes of telemetry from an earlier run, the first row this long ago. */
const PLANTED_MS = 4 * 60_000;

interface ConfigState {
  version: number;
  config: { maxFrameRate: number; planner: { target: unknown }; gate: { zones?: unknown } };
}
interface Context {
  agent: AgentProcess;
  browser: Browser;
  page: Page;
  url: string;
  /** When the planted log's first row was written (ms). */
  firstRowAt: number;
  pageErrors: string[];
  /** What the agent said on config/response and config/state, as an MQTT operator sees it. */
  responses: Array<{ id?: string; status: string; reason?: string }>;
  state: () => ConfigState | undefined;
  /** The bodies the page posted to /api/config. */
  posted: Array<{ id: string; set: Record<string, unknown> }>;
}

const test = anyTest as TestFn<Context>;
const serial = fs.existsSync(CHROMIUM) ? test.serial : test.serial.skip;

/** A few minutes of telemetry in the agent's log before it starts, one row every 5 s up to a few seconds ago. */
function plantLog(file: string, firstRowAt: number): void {
  const store = LogStore.open(file);
  for (let ts = firstRowAt; ts < Date.now() - 5_000; ts += 5_000) {
    store.logTelemetry({ ts, batterySoc: 0.9, temperatureC: 45, framesPerS: 9, extra: { operatingPoint: 'balanced' } });
  }
  store.flush();
  store.close();
}

test.before(async (t) => {
  if (!fs.existsSync(CHROMIUM)) return;
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const brokerPort = 20_000 + Math.floor(Math.random() * 20_000);
  const firstRowAt = Date.now() - PLANTED_MS;
  const agent = AgentProcess.start(
    { modelsDir, buildConfig },
    { deviceId: 'dash-gw', maxFrameRate: 20, web: { host: '0.0.0.0', port: 0, token: TOKEN }, mqtt: { embeddedPort: brokerPort } },
    { beforeStart: (dir) => plantLog(path.join(dir, 'edge-exit.db'), firstRowAt) },
  );
  const webPort = (await agent.waitForOutput(/dashboard on http:\/\/[^:]+:(\d+)\//))[1]!;

  const operator = await mqtt.connectAsync(`mqtt://127.0.0.1:${brokerPort}`);
  const topics = deviceTopics('dash-gw');
  const responses: Context['responses'] = [];
  let state: ConfigState | undefined;
  operator.on('message', (topic, payload) => {
    if (topic === topics.configResponse) responses.push(JSON.parse(payload.toString()));
    if (topic === topics.configState) state = JSON.parse(payload.toString());
  });
  await operator.subscribeAsync([topics.configResponse, topics.configState], { qos: 1 });

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const context = await browser.newContext({ httpCredentials: { username: 'operator', password: TOKEN }, viewport: { width: 1280, height: 1400 } });
  const page = await context.newPage();
  const pageErrors: string[] = [];
  const posted: Context['posted'] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('request', (request) => {
    if (request.method() === 'POST' && request.url().endsWith('/api/config')) posted.push(JSON.parse(request.postData() ?? '{}'));
  });
  Object.assign(t.context, { agent, browser, page, url: `http://127.0.0.1:${webPort}/`, firstRowAt, pageErrors, responses, state: () => state, posted });
  // Cleanup here, not in teardown: the hook's teardown would run before the tests.
  cleanups.push(() => operator.endAsync(), () => browser.close(), () => agent.kill());
});

const cleanups: Array<() => unknown> = [];
test.after.always(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

serial('the dashboard shows live values, changes the config through config/set (read back from the retained config/state), shows the reason of a refusal, and needs the token', async (t) => {
  const { page, url, responses } = t.context;
  // Exposed: nothing without the token, whatever the path.
  for (const route of ['', 'api/live', 'api/config', 'metrics']) t.is((await fetch(url + route)).status, 401, `/${route} without the token`);
  t.is((await fetch(url, { headers: { authorization: `Basic ${Buffer.from('operator:wrong-token-wrong-token').toString('base64')}` } })).status, 401);

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
  for (let i = 0; i < 50 && t.context.state()?.config.maxFrameRate !== 7; i++) await sleep(100);
  t.is(t.context.state()?.config.maxFrameRate, 7, 'the retained config/state says 7');
  t.is(t.context.state()?.version, 1);
  t.deepEqual(t.context.posted.at(-1)?.set, { maxFrameRate: 7 }, 'only the changed field is sent');
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
  t.is(t.context.state()?.config.maxFrameRate, 7, 'nothing changed');
  await page.fill('input[name="maxFrameRate"]', '7');

  // Timelines (uPlot) and the settings form were drawn.
  t.true((await page.locator('#charts .uplot').count()) >= 4);
  t.deepEqual(t.context.pageErrors, []);
});

serial('nested settings have inputs of their own: the planner target (a union) by a select of its kind and that kind\'s inputs, zones as a list of fieldsets, thresholds checked item by item', async (t) => {
  const { page, url, posted } = t.context;
  const form = (selector: string) => `form#config ${selector}`;
  // No raw JSON: the target is a select of its variant plus the variant's own inputs.
  await page.waitForSelector(form('select[name="planner.target.kind"]'), { timeout: 5_000 });
  t.is(await page.inputValue(form('select[name="planner.target.kind"]')), 'hours');
  t.is(await page.inputValue(form('input[name="planner.target.hours"]')), '24');
  t.is(await page.getAttribute(form('input[name="planner.target.hours"]'), 'type'), 'number');
  t.is(await page.getAttribute(form('input[name="planner.target.hours"]'), 'max'), '87600');
  t.is(await page.getAttribute(form('input[name="planner.enabled"]'), 'type'), 'checkbox');
  t.is(await page.getAttribute(form('input[name="controller.maxTemperatureC"]'), 'min'), '30');
  t.is(await page.locator(form('select[name="offload.mode"] option')).count(), 3, 'an enum is a select');
  t.is(await page.locator(form('fieldset.union')).count(), 1);

  // Thresholds are checked item by item before anything is sent.
  const postsBefore = posted.length;
  await page.fill(form('input[name="policy.thresholds"]'), '0.5, abc');
  await page.click(form('button[type="submit"]'));
  await page.waitForSelector('#config-answer.error');
  t.is(await page.textContent('#config-answer'), 'policy.thresholds: item 2 ("abc") is not a number');
  t.is(posted.length, postsBefore, 'nothing sent');
  await page.fill(form('input[name="policy.thresholds"]'), '');

  // The target by a time of day instead of hours, and a zone added, through the inputs.
  await page.selectOption(form('select[name="planner.target.kind"]'), 'until');
  t.is(await page.locator(form('input[name="planner.target.hours"]')).count(), 0, "the hours variant's input is gone");
  await page.fill(form('input[name="planner.target.at"]'), '07:30');
  await page.click(form('fieldset[data-path="gate.zones"] button.add'));
  for (const [field, value] of [['x', '0.1'], ['y', '0.2'], ['width', '0.5'], ['height', '0.25']] as const) {
    await page.fill(form(`input[name="gate.zones.0.${field}"]`), value);
  }
  await page.click(form('button[type="submit"]'));
  await page.waitForSelector('#config-answer.ok');
  t.regex((await page.textContent('#config-answer'))!, /^applied \(config version 2\)/);
  t.deepEqual(
    posted.at(-1)?.set,
    { planner: { target: { kind: 'until', at: '07:30' } }, gate: { zones: [{ x: 0.1, y: 0.2, width: 0.5, height: 0.25 }] } },
    'only the changed fields are sent',
  );

  // In force: the config endpoint and the retained config/state say so, and the form shows it again.
  const { config } = (await (await fetch(`${url}api/config`, { headers: { authorization: `Basic ${Buffer.from(`operator:${TOKEN}`).toString('base64')}` } })).json()) as ConfigState;
  t.deepEqual(config.planner.target, { kind: 'until', at: '07:30' });
  t.deepEqual(config.gate.zones, [{ x: 0.1, y: 0.2, width: 0.5, height: 0.25 }]);
  for (let i = 0; i < 50 && t.context.state()?.version !== 2; i++) await sleep(100);
  t.deepEqual(t.context.state()?.config.planner.target, { kind: 'until', at: '07:30' });
  await page.waitForFunction(`document.querySelector('form#config input[name="planner.target.at"]')?.value === '07:30'`);
  t.is(await page.inputValue(form('select[name="planner.target.kind"]')), 'until');

  // Nothing changed since: nothing is sent.
  await page.click(form('button[type="submit"]'));
  await page.waitForFunction(`document.getElementById('config-answer').textContent === 'nothing changed'`);
  t.deepEqual(t.context.pageErrors, []);
});

serial('the timelines start at the first data point of a fresh log, not an hour back; the range chooser still works', async (t) => {
  const { page, firstRowAt } = t.context;
  await page.waitForFunction(`document.querySelectorAll('#charts .uplot').length >= 4`);
  // uPlot's x scale, in seconds: the page's own charts.
  const xRange = async () => (await page.evaluate(`charts.map((chart) => [chart.scales.x.min, chart.scales.x.max])`)) as Array<[number, number]>;
  for (const [min, max] of await xRange()) {
    t.true(Math.abs(min * 1000 - firstRowAt) < 15_000, `starts ${((min * 1000 - firstRowAt) / 1000).toFixed(1)} s from the first row`);
    t.true(Math.abs(max * 1000 - Date.now()) < 60_000, 'ends now');
  }
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, 'dashboard-test.png'), fullPage: true });
  // A chosen range spans all of itself.
  await page.selectOption('#range', '900000');
  await page.waitForFunction(`charts.length >= 4 && charts[0].scales.x.max - charts[0].scales.x.min > 899`);
  const [min, max] = (await xRange())[0]!;
  t.true(Math.abs(max - min - 900) < 1);
  t.deepEqual(t.context.pageErrors, []);
});

serial('the agent stops cleanly and never printed the token', async (t) => {
  const { agent } = t.context;
  t.is(await agent.stop(), 0, agent.output);
  t.false(agent.output.includes(TOKEN));
});
