import test from 'ava';
import { argmax } from '../agent/exit-policy/probabilities.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import { FrameContext } from '../agent/pipeline/frame-context.js';
import { LiveStats } from '../agent/pipeline/live-stats.js';
import { ClassifyStage } from '../agent/pipeline/stages/classify-stage.js';
import { encodedImageToRgb } from '../agent/preprocess/image-to-rgb.js';
import { ReplaySource } from '../agent/sources/replay-source.js';
import { CIFAR_TEST } from './helpers/shared.js';
import { buildTinyPackage } from './helpers/tiny-package.js';

/*
 * A server's answer re-enters the pipeline with its frame's context: the classify stage's
 * temporal reuse then agrees with the server's label, not with the device's own, which the
 * server has just overruled. Real engine on real weights and real CIFAR-10 images.
 */

test("a server's answer to the latest frame is what the next frame's temporal reuse agrees with; a late one is not", async (t) => {
  const pkg = await buildTinyPackage();
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 }, 'cifar10');
  const target = { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize };
  const last = engine.exitCount - 1;
  // An image whose first exit disagrees with the last: the server (the full model) may well name the first exit's class.
  const source = new ReplaySource(CIFAR_TEST, { loop: false, seed: 5 });
  let rgb: Uint8Array | undefined;
  let firstExitLabel = -1;
  for (let i = 0; i < 200 && rgb === undefined; i++) {
    const frame = (await source.next())!;
    const pixels = await encodedImageToRgb(frame.bytes, target, frame.origin);
    engine.input.data.set(pixels);
    const all = engine.runAllExits();
    if (argmax(all.probabilities[0]!) !== argmax(all.probabilities[last]!)) {
      rgb = pixels;
      firstExitLabel = argmax(all.probabilities[0]!);
    }
  }
  await source.close();
  if (!rgb) return t.fail('no CIFAR-10 image among 200 where the first exit disagrees with the last');
  const pixels = rgb;

  // Thresholds of 1: only temporal reuse can stop a frame before the last exit.
  const point = { ...pkg.manifest.operatingPoints[0]!, name: 'deepest', policy: 'max-probability' as const, thresholds: new Array<number>(engine.exitCount).fill(1), maxExit: last };
  const stageWith = () => new ClassifyStage({ engine, staticPoint: point, points: [point], stats: new LiveStats(engine.exitCount), temporal: () => ({ temporalReuse: true, temporalMaxChange: 0.05, temporalMinConfidence: 0.5 }) });
  let seq = 0;
  const classify = (stage: ClassifyStage) => {
    const context = new FrameContext(seq++);
    context.input = pixels;
    context.changedShare = 0.01;
    stage.process(context);
    return context;
  };
  const answer = { label: engine.labels[firstExitLabel]!, confidence: 0.97, serverMs: 12 };

  const answered = stageWith();
  const first = classify(answered);
  t.is(first.result.exit, last, 'without a previous answer the frame runs to the last exit');
  answered.answered('r1', answer, false, first);
  const next = classify(answered);
  t.is(next.result.exit, 0, "the first exit agrees with the server's label and is trusted");
  t.true(next.reused);
  t.is(next.label, answer.label);

  const late = stageWith();
  const before = classify(late);
  late.answered('r2', answer, true, before);
  const after = classify(late);
  t.true(after.result.exit > 0, 'a late answer does not steer the next frame: exit 0 still disagrees with the device\'s own answer');

  const stale = stageWith();
  const old = classify(stale);
  classify(stale);
  stale.answered('r3', answer, false, old);
  t.true(classify(stale).result.exit > 0, 'an answer to an older frame does not overrule a newer one');
});
