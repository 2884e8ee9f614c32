import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { gateSchema } from '../agent/config/agent-config.js';
import { deviceProfile } from '../agent/energy/device-profiles.js';
import { MotionGate, SCENE_SETTLE_FRAMES } from '../agent/gate/motion-gate.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import type { FrameContext } from '../agent/pipeline/frame-context.js';
import { FramePipeline } from '../agent/pipeline/frame-pipeline.js';
import { pipelineGate } from '../agent/pipeline/stages/gate-stage.js';
import { encodedImageToRgb } from '../agent/preprocess/image-to-rgb.js';
import type { FrameSource } from '../agent/sources/frame-source.js';
import { LogStore } from '../agent/store/log-store.js';
import { simulatedPlatform } from '../firmware-bridge/index.js';
import { SimulatedBridge } from '../firmware-bridge/simulated.js';
import { CAT_PHOTO, CIFAR_TEST, temporaryDir } from './helpers/shared.js';
import { readStatusFile } from '../agent/pipeline/status-file.js';
import { CameraSource } from '../agent/sources/camera-source.js';
import { FolderSource } from '../agent/sources/folder-source.js';
import { ReplaySource } from '../agent/sources/replay-source.js';
import { StreamSource } from '../agent/sources/stream-source.js';
import { LogReader } from '../agent/store/log-store.js';
import { AgentProcess } from './helpers/agent-process.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

let built: ReturnType<typeof buildTinyAgentPackage>;
test.before(() => {
  built = buildTinyAgentPackage();
});

/*
 * Defect: the gate's lightning rule took a whole-frame change for light, reset its background and
 * said "no motion", so the previous image's label stood on a different image for up to maxReuseS.
 * Here the real gate and the real engine see a real photo, then a different real image in its place:
 * the new image must be classified, fresh, once it has settled, and the frames while it settles are
 * neither classified nor counted as the old label standing.
 */

test('a different image in place of the scene is classified fresh once it settles: no gated reuse of the old label, no temporal reuse', async (t) => {
  const { pkg } = await built;
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 }, 'cifar10');
  const target = { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize };
  const photo = await encodedImageToRgb(fs.readFileSync(CAT_PHOTO), { ...target, resize: 'center-crop' });
  const other = await encodedImageToRgb(fs.readFileSync(path.join(CIFAR_TEST, 'ship', '0003.jpg')), target);
  // Six frames of the photo, then the other image, held: a camera knocked, or a replay's next image.
  const frames = [...new Array<Uint8Array>(6).fill(photo), ...new Array<Uint8Array>(12).fill(other)];
  let next = 0;
  const source: FrameSource = {
    name: 'test scene',
    continuousScene: true,
    next: async () => (next < frames.length ? { id: String(next), origin: 'test', bytes: Buffer.alloc(0), pixels: Buffer.from(frames[next++]!), capturedAt: Date.now() } : undefined),
    close: async () => {},
  };
  // Temporal reuse as loose as it goes: only the scene change keeps the old answer from settling the new image.
  const settings = gateSchema.parse({ maxReuseS: 60, temporalReuse: true, temporalMaxChange: 1, temporalMinConfidence: 0 });
  const still: number[] = [];
  const classified: string[] = [];
  const seen: FrameContext[] = [];
  const store = LogStore.open(path.join(temporaryDir('edge-exit-scene-'), 'log.db'));
  t.teardown(() => store.close());
  const points = pkg.manifest.operatingPoints;
  const pipeline = new FramePipeline({
    engine,
    source,
    ...simulatedPlatform(new SimulatedBridge({ clock: 'manual', capacityWh: 1000 }), 1),
    controller: undefined,
    staticPoint: points.find((p) => p.name === 'balanced') ?? points[0]!,
    points,
    profile: deviceProfile('pi4'),
    log: store,
    target,
    maxFrameRate: 10,
    gate: pipelineGate(new MotionGate(settings, target.width, target.height), settings),
    results: { classified: (frame) => classified.push(frame.label), still: (at) => still.push(at), serverAnswer: () => {} },
    onFrame: (context) => seen.push(context),
  });
  await pipeline.run();
  const status = pipeline.status();
  // Frame 6 is the change, and the next SCENE_SETTLE_FRAMES-1 frames hold still against it: settling, skipped.
  t.is(status.settling, SCENE_SETTLE_FRAMES, 'the frames while the new picture settles are counted as settling, not the old label re-published');
  t.is(status.skipped, 0, 'settling is not a decode failure');
  t.true(seen.filter((context) => context.seq >= 6 && context.seq < 6 + SCENE_SETTLE_FRAMES).every((context) => context.result === undefined), 'nothing classified while settling');
  // Frame 0 is classified (no result yet); the other frames of each picture let its own label stand.
  t.is(status.gated, frames.length - 2 - SCENE_SETTLE_FRAMES);
  t.is(still.length, status.gated, 'the old label is let stand only on its own picture');
  const fresh = seen.find((context) => context.seq > 5 && context.result !== undefined);
  t.truthy(fresh, 'the new image is classified');
  t.is(fresh!.seq, 6 + SCENE_SETTLE_FRAMES);
  t.true(fresh!.sceneChanged);
  t.false(fresh!.reused, 'nothing from the old image settles it');
  t.deepEqual(Buffer.from(fresh!.input), Buffer.from(other), 'on the new image, whole');
  t.is(classified.length, 2, 'the photo once, the new image once, then its label stands');
});

test('sources say whether their frames are one continuing scene: cameras and streams do, a replay and a watched folder do not', async (t) => {
  const replay = new ReplaySource(CIFAR_TEST, { loop: false, seed: 1 });
  const folder = new FolderSource(temporaryDir('edge-exit-watch-'), { pollMs: 50 });
  const camera = new CameraSource({ command: 'auto', width: 160, height: 120, timeoutMs: 1000 });
  t.teardown(() => Promise.all([replay.close(), folder.close(), camera.close()]));
  t.false(replay.continuousScene);
  t.false(folder.continuousScene);
  t.true(camera.continuousScene);
  if (fs.existsSync('/usr/bin/ffmpeg')) {
    const stream = new StreamSource({ url: CAT_PHOTO, target: { width: 32, height: 32, resize: 'stretch' }, loop: true, realtime: true, stallTimeoutMs: 10_000 });
    t.teardown(() => stream.close());
    t.true(stream.continuousScene);
  }
});

test('`gate.mode: on` over a replay: the agent says it will not gate unrelated images, classifies every frame, and makes no event', async (t) => {
  const agent = AgentProcess.start(
    await built,
    { gate: { mode: 'on' }, maxFrameRate: 40, statusIntervalMs: 200, events: { minConfidence: 0, minDurationS: 0.5 } },
    { frames: 80 },
  );
  t.teardown(() => agent.kill());
  t.is(await agent.exited, 0, agent.output);
  t.regex(agent.output, /gate\.mode is \\?"on\\?", but .* not one continuing scene/);
  const status = readStatusFile(path.join(agent.dir, 'status.json'))!;
  t.is(status.gated, 0, agent.output);
  t.is(status.settling, 0, 'nothing settling either: there is no gate');
  const reader = LogReader.open(agent.logFile);
  t.teardown(() => reader.close());
  t.deepEqual(reader.events(), []);
});
