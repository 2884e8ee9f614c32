import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { gpiomonArguments, PirBridge } from '../firmware-bridge/gpio/pir-bridge.js';
import { parseBridgeConfig } from '../firmware-bridge/config.js';
import { AgentProcess } from './helpers/agent-process.js';
import { temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';
import { captureWarnings } from './helpers/warnings.js';

/*
 * A PIR motion sensor through libgpiod's gpiomon, with a fake gpiomon first on PATH printing
 * edge events as the real one does (1.x or 2.x), and the agent's gate acting on its edges.
 */

/** A fake gpiomon: `--version` says which libgpiod; otherwise it records its arguments and runs `events`. */
function fakeGpiomon(version: string, events: string): { env: NodeJS.ProcessEnv; calls: () => string[] } {
  const dir = temporaryDir('edge-exit-fake-gpiomon-');
  const log = path.join(dir, 'calls.log');
  fs.writeFileSync(path.join(dir, 'gpiomon'), `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "gpiomon (libgpiod) ${version}"; exit 0; fi\necho "$*" >> ${log}\n${events}\n`, { mode: 0o755 });
  return { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` }, calls: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : []) };
}

test('gpiomon 1.x and 2.x are asked for rising edges in their own syntax', (t) => {
  t.deepEqual(gpiomonArguments(1, 'gpiochip0', 17), ['--rising-edge', 'gpiochip0', '17']);
  t.deepEqual(gpiomonArguments(2, 'gpiochip4', 17), ['--edges=rising', '--chip', 'gpiochip4', '17']);
});

test.serial('each rising edge gpiomon reports is motion; a gpiomon that stops is started again, said once', async (t) => {
  const warnings = captureWarnings(t);
  // libgpiod 1.6's output line; it then exits, as an unplugged sensor board would make it.
  const fake = fakeGpiomon('v1.6.3', 'echo "event:  RISING EDGE offset: 17 timestamp: [1700000000.123456789]"; sleep 0.05; echo "event:  RISING EDGE offset: 17 timestamp: [1700000000.223456789]"; exit 1');
  const pir = new PirBridge({ chip: 'gpiochip0', line: 17, env: fake.env, restartBackoff: { minMs: 50, maxMs: 100 } });
  t.teardown(() => pir.close());
  t.is(pir.lastMotionAt(), undefined);
  for (let i = 0; i < 100 && fake.calls().length < 3; i++) await sleep(20);
  t.true(pir.motionEdges >= 4, `${pir.motionEdges} edges`);
  t.true(Date.now() - pir.lastMotionAt()! < 5000);
  t.is(fake.calls()[0], '--rising-edge gpiochip0 17');
  t.is(warnings.filter((w) => w.includes('gpiomon stopped')).length, 1, warnings.join('\n'));
});

test.serial('libgpiod 2.x output counts too; no gpiomon names the package to install', async (t) => {
  const fake = fakeGpiomon('v2.1', 'echo "1700000000.123456789 rising gpiochip0 17"; exec sleep 30');
  const pir = new PirBridge({ chip: 'gpiochip0', line: 17, env: fake.env });
  t.teardown(() => pir.close());
  for (let i = 0; i < 100 && pir.motionEdges === 0; i++) await sleep(20);
  t.is(pir.motionEdges, 1);
  t.is(fake.calls()[0], '--edges=rising --chip gpiochip0 17');
  t.throws(() => new PirBridge({ chip: 'gpiochip0', line: 17, env: { PATH: temporaryDir('edge-exit-empty-path-') } }), { message: /gpiomon is not installed: apt-get install gpiod/ });
  t.throws(() => parseBridgeConfig({ kind: 'pir', chip: '/dev/gpiochip0', line: 17 }), { message: /a GPIO chip such as gpiochip0/ });
});

const FFMPEG = ['/usr/bin/ffmpeg', '/usr/local/bin/ffmpeg'].find((file) => fs.existsSync(file));

(FFMPEG ? test : test.skip)('with the gate on, a PIR edge makes the agent classify a frame of a scene that does not change', async (t) => {
  const pkg = await buildTinyAgentPackage();
  const video = path.join(temporaryDir('edge-exit-still-'), 'still.mkv');
  execFileSync(FFMPEG!, ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'color=c=gray:size=160x120:rate=10', '-t', '2', '-c:v', 'ffv1', video]);
  // The simulator's clock starts at START_AT when the agent builds its bridge; the motion sensor fires at these seconds of it.
  const START_AT = 1_700_000_000_000;
  const motionAtS = [4, 6, 8];
  const run = (edges: number[]) =>
    AgentProcess.start(pkg, {
      source: { kind: 'stream', url: video, loop: true },
      gate: { mode: 'on', maxReuseS: 3600 },
      maxFrameRate: 10,
      bridge: { kind: 'simulated', clock: 'real', capacityWh: 1000, startAt: START_AT, motionAtS: edges },
    });
  const quiet = run([]);
  const watched = run(motionAtS);
  t.teardown(() => quiet.kill());
  t.teardown(() => watched.kill());
  await sleep(14_000);
  t.is(await quiet.stop(), 0, quiet.output);
  t.is(await watched.stop(), 0, watched.output);
  t.is(quiet.inferences().length, 1, 'a still scene: only the first frame is classified');
  // An edge before the first frame (a slow start) merges with it; each later one makes one classification.
  const rows = watched.inferences();
  const firstS = (rows[0]!.simTs! - START_AT) / 1000;
  const edgesAfterFirst = motionAtS.filter((at) => at > firstS);
  t.true(edgesAfterFirst.length >= 2, `the first frame came at ${firstS} s of the sensor's clock`);
  t.is(rows.length, 1 + edgesAfterFirst.length, `frames at ${rows.map((r) => ((r.simTs! - START_AT) / 1000).toFixed(1)).join(', ')} s; edges at ${motionAtS.join(', ')} s`);
  for (const [i, at] of edgesAfterFirst.entries()) {
    const frameAt = (rows[i + 1]!.simTs! - START_AT) / 1000;
    t.true(frameAt >= at && frameAt < at + 1, `the frame after the edge at ${at} s came at ${frameAt} s`);
  }
});
