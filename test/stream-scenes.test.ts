import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { parseAgentConfig } from '../agent/config/agent-config.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import { startEmbeddedBroker } from '../agent/mqtt/embedded-broker.js';
import { runStreamBench } from '../tools/bench/stream-bench.js';
import { makeScene } from '../tools/bench/stream-scenes.js';
import { freePort } from '../tools/mqtt/mosquitto.js';
import { CAT_PHOTO, CIFAR_TEST, temporaryDir } from './helpers/shared.js';
import { buildTinyPackage } from './helpers/tiny-package.js';

/*
 * The stream benchmark's scenes and measurement on a small real model: a generated H.264
 * quiet scene decoded by the real ffmpeg, gated so the model runs on few frames and every
 * object still makes an event; a busy scene where the gate lets (nearly) everything through.
 */

(fs.existsSync('/usr/bin/ffmpeg') ? test : test.skip)('the gate on generated H.264 scenes: quiet runs the model on few frames and finds every object; busy loses no agreement', async (t) => {
  const pkg = await buildTinyPackage();
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 }, 'cifar10');
  // Thresholds of 1 never stop early: every inference runs to the last exit.
  const point = { ...pkg.manifest.operatingPoints[0]!, name: 'deepest', policy: 'max-probability' as const, thresholds: new Array<number>(engine.exitCount).fill(1), maxExit: engine.exitCount - 1 };
  const target = { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize };
  const broker = await startEmbeddedBroker(await freePort());
  t.teardown(() => broker.close());
  const dir = temporaryDir('edge-exit-scenes-');
  // The tiny model is seldom sure: any confidence may start an event.
  const config = parseAgentConfig({ source: { kind: 'stream', url: 'x.mp4' }, events: { minConfidence: 0 } });
  const common = { fps: 10, background: CAT_PHOTO, objects: CIFAR_TEST, outDir: dir, seed: 3 };

  const quiet = await makeScene({ kind: 'quiet', seconds: 40, ...common });
  t.true(quiet.truth.length >= 2, `${quiet.truth.length} objects in the quiet scene`);
  t.true(fs.statSync(quiet.file).size > 0);
  const calm = await runStreamBench({ scene: quiet, engine, point, target, brokerUrl: broker.url, config });
  t.is(calm.frames, 400, 'ffmpeg decoded every frame of the H.264 file');
  const ran = calm.gated.inferred / calm.frames;
  t.true(ran < 0.25, `the model ran on ${(ran * 100).toFixed(1)}% of the quiet frames`);
  t.is(calm.gated.eventRecall, 1, `${calm.gated.events} events for ${quiet.truth.length} objects`);

  const busy = await makeScene({ kind: 'busy', seconds: 8, ...common });
  const moving = await runStreamBench({ scene: busy, engine, point, target, brokerUrl: broker.url, config });
  t.true(moving.gated.inferred / moving.frames > 0.9, `the model ran on ${moving.gated.inferred} of ${moving.frames} busy frames`);
  t.true(moving.gated.agreement >= 0.95, `agreement ${moving.gated.agreement}`);
  fs.rmSync(path.join(dir), { recursive: true, force: true });
});
