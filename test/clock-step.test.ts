import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { LogReader } from '../agent/store/log-store.js';
import { readStatusFile, statusFilePath } from '../agent/pipeline/status-file.js';
import { AgentProcess } from './helpers/agent-process.js';
import { horseSceneVideo } from './helpers/scene-video.js';
import { temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

/*
 * A Raspberry Pi has no RTC: NTP or an operator steps the wall clock, here backwards, under a
 * running `edge-exit run`. Debian's libfaketime steps the process's wall clock (the offset is read
 * from a file at every call) and leaves its monotonic clock alone, as an NTP step does.
 */

/** Debian's libfaketime, under the machine's multiarch directory (x86_64-linux-gnu, aarch64-linux-gnu). */
const LIBFAKETIME = fs
  .readdirSync('/usr/lib')
  .map((dir) => path.join('/usr/lib', dir, 'faketime', 'libfaketime.so.1'))
  .find((file) => fs.existsSync(file));
const missing = [LIBFAKETIME ? undefined : 'faketime (apt-get install faketime)', fs.existsSync('/usr/bin/ffmpeg') ? undefined : 'ffmpeg'].filter(Boolean);
const withFaketime = missing.length === 0 ? test : test.skip;
if (missing.length > 0) console.warn(`clock-step test skipped: needs ${missing.join(' and ')}`);

withFaketime('a backward step of the wall clock (10 minutes, then 30 days) keeps frames, telemetry and health going, is logged, and no event lasts less than nothing', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const offsetFile = path.join(temporaryDir('edge-exit-faketime-'), 'offset');
  fs.writeFileSync(offsetFile, '+0\n');
  const agent = AgentProcess.start(
    { modelsDir, buildConfig },
    {
      deviceId: 'step-gw',
      source: { kind: 'stream', url: horseSceneVideo(120, 1, 120), loop: false, realtime: true },
      // A real board's bridge (an empty sysfs: nothing measured), so the platform runs on the real clock, not a simulator's.
      bridge: { kind: 'sysfs', root: temporaryDir('edge-exit-empty-sysfs-') },
      events: { minConfidence: 0, endAfterS: 600, minDurationS: 0.5 },
      gate: { maxReuseS: 30 },
      health: { stalledAfterS: 3 },
      maxFrameRate: 10,
      statusIntervalMs: 200,
      controller: { enabled: false },
    },
    { env: { LD_PRELOAD: LIBFAKETIME!, FAKETIME_TIMESTAMP_FILE: offsetFile, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' } },
  );
  t.teardown(() => agent.kill());
  const webPort = (await agent.waitForOutput(/metrics on http:\/\/[^:]+:(\d+)\/metrics/))[1]!;
  const health = async () => {
    const response = await fetch(`http://127.0.0.1:${webPort}/health`);
    return { code: response.status, body: (await response.json()) as { status: string; checks: Record<string, string>; notes?: string[] } };
  };
  const statusFile = statusFilePath(agent.logFile);
  const seen = () => {
    const status = readStatusFile(statusFile);
    return status ? status.frames + status.gated + status.settling : 0;
  };
  const telemetryRows = () => {
    const reader = LogReader.open(agent.logFile);
    try {
      return reader.telemetry().length;
    } finally {
      reader.close();
    }
  };
  // An event is going on (the horse walks in at 1 s and stays), so it spans both steps.
  for (let i = 0; i < 150 && readStatusFile(statusFile)?.event === undefined; i++) await sleep(100);
  t.truthy(readStatusFile(statusFile)?.event, 'an event started before the steps');

  for (const [step, offset] of [['10 minutes', '-600'], ['30 days', `-${600 + 30 * 86_400}`]] as const) {
    const framesBefore = seen();
    const rowsBefore = telemetryRows();
    fs.writeFileSync(offsetFile, `${offset}\n`);
    let frames = seen();
    for (let i = 0; i < 20 && frames <= framesBefore + 3; i++) {
      await sleep(100);
      frames = seen();
    }
    t.true(frames > framesBefore + 3, `frames flow within 2 s of a ${step} step back (${framesBefore} → ${frames})`);
    await sleep(1500);
    t.true(telemetryRows() > rowsBefore, `telemetry is still logged after a ${step} step back`);
    const report = await health();
    t.is(report.code, 200, JSON.stringify(report.body));
    t.is(report.body.status, 'ok', JSON.stringify(report.body));
    t.true((report.body.notes ?? []).some((note) => /wall clock stepped back/.test(note)), `health shows the step: ${JSON.stringify(report.body)}`);
    t.regex(readStatusFile(statusFile)?.clockSteps ?? '', /stepped back/, 'status shows the step');
  }
  t.is(await agent.stop(), 0, agent.output);
  t.regex(agent.output, /wall clock stepped back by 600 s/);
  t.regex(agent.output, /wall clock stepped back by 2592000 s/);
  t.notRegex(agent.output, /TimeoutOverflowWarning/);
  const reader = LogReader.open(agent.logFile);
  const events = reader.events();
  reader.close();
  t.true(events.length > 0, 'the event going on was logged as it ended');
  for (const event of events) t.true(event.end === null || event.end >= event.start, `event ${event.eventId} lasts ${((event.end ?? 0) - event.start) / 1000} s`);
});
