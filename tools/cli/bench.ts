import path from 'node:path';
import { sharedDir } from '../../agent/config/paths.js';
import { balancedSubset, readImageFolder } from '../../agent/datasets/image-folder.js';
import { MultiExitEngine } from '../../agent/inference/multi-exit-engine.js';
import { loadBuildConfig } from '../model-package/build-config.js';
import { formatExitBench, runExitBench } from '../bench/exit-bench.js';
import { formatModelBench, runModelBench } from '../bench/model-bench.js';
import { BENCHMARKS_FILE, writeBenchSection } from '../bench/results-file.js';
import { progressBar } from './progress.js';
import fs from 'node:fs';
import os from 'node:os';
import { LogStore } from '../../agent/store/log-store.js';
import { formatOffloadBench, runOffloadBench } from '../bench/offload-bench.js';
import { startMosquitto } from '../mqtt/mosquitto.js';
import { runLoggingOverhead } from '../bench/logging-overhead.js';
import { PROJECT_ROOT } from '../../agent/config/paths.js';
import { controllerSchema, parseAgentConfig } from '../../agent/config/agent-config.js';
import { operatingLadder } from '../../agent/controller/operating-ladder.js';
import { deviceProfile } from '../../agent/energy/device-profiles.js';
import { radioEnergy } from '../../agent/energy/energy-model.js';
import { encodeOffload } from '../../agent/mqtt/offload-codec.js';
import { timelineSvg } from '../plots/timeline-plot.js';
import { ReplaySource } from '../../agent/sources/replay-source.js';
import { runSimulatedDay, type DayResult } from '../bench/simulated-day.js';
import { buildConfigPath, openOrBuildPackage, openTaskPackage } from './build-model.js';
import { startEmbeddedBroker } from '../../agent/mqtt/embedded-broker.js';
import { freePort } from '../mqtt/mosquitto.js';
import { runStreamBench, type StreamBenchResult } from '../bench/stream-bench.js';
import { makeScene } from '../bench/stream-scenes.js';
import { runWebBench } from '../bench/web-bench.js';
import { describeLifetimeBench, runLifetimeBench } from '../bench/lifetime-bench.js';
import { DECODE_AND_GATE_MS } from '../../agent/controller/lifetime-planner.js';
import { CPU_PATH_VARIANTS, formatCpuPathBench, runCpuPathBench } from '../bench/cpu-path-bench.js';
import { loopOverhead, runLoopBench, summarizeLoopRuns } from '../bench/loop-bench.js';
import { runPeerBench } from '../bench/peer-bench.js';
import { ensurePeerOnnx } from '../bench/peer-network.js';
import { modelsDir } from '../../agent/config/paths.js';
import { GLANCE_SUITES, glanceTable, verdict, type GlanceRow } from '../bench/at-a-glance.js';
import { medianOf } from '../stats/summary.js';

export interface BenchOptions {
  config: string;
  taskConfig: string;
  suites: string;
  imagesPerClass: string;
  threads: string;
  write: boolean;
  baseline?: string;
}

const today = () => new Date().toISOString().slice(0, 10);

async function runtimeSuite(options: BenchOptions): Promise<void> {
  const pkg = await openOrBuildPackage(options.config);
  const config = loadBuildConfig(buildConfigPath(options.config));
  const threads = options.threads.split(',').map(Number);
  const imagesPerClass = Number(options.imagesPerClass);
  const bar = progressBar('bench runtime');
  const result = await runModelBench({
    pkg,
    baseModelPath: config.baseModelPath,
    sharedDir: sharedDir(),
    imagesPerClass,
    threads,
    onProgress: (done, total) => bar.update(done, total),
  });
  bar.stop();
  const table = formatModelBench(result, pkg.manifest.labels[pkg.manifest.heads[0]!.task]!);
  console.log(`${table}\n`);
  if (options.write) {
    const how =
      `Produced by \`edge-exit bench --suites runtime --images-per-class ${imagesPerClass} --threads ${options.threads}\` on ${today()}, ` +
      `Node ${process.version}, ${process.arch}, package ${path.basename(pkg.dir)} (cuts ${pkg.manifest.segments.map((s) => s.to).join(', ')}). ` +
      'Times are wall-clock per image from writing the input to reading the final output, seam copies included.';
    writeBenchSection('model', 'Runtime: stock vs XNNPACK, monolithic vs segment chain', `${how}\n\n${table}`);
  }
}

async function exitsSuite(options: BenchOptions): Promise<void> {
  const { pkg, taskName, testDir } = await openTaskPackage(options.taskConfig);
  const folder = readImageFolder(testDir);
  const images = balancedSubset(folder, Number(options.imagesPerClass));
  const points = pkg.manifest.operatingPoints.filter((p) => !/^exit-\d+$/.test(p.name));
  for (const threads of options.threads.split(',').map(Number)) {
    const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads }, taskName);
    const bar = progressBar(`bench exits (${threads}t)`);
    const result = await runExitBench(engine, points, images, { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize }, threads, (d, t) =>
      bar.update(d, t),
    );
    bar.stop();
    const table = formatExitBench(result);
    console.log(`${table}\n`);
    if (options.write) {
      const how =
        `Produced by \`edge-exit bench --suites exits --task-config ${options.taskConfig} --images-per-class ${options.imagesPerClass} --threads ${threads}\` on ${today()}, Node ${process.version}, ${process.arch}, ` +
        `package ${pkg.manifest.name} (input ${pkg.manifest.input.width}x${pkg.manifest.input.height}, exits after ${pkg.manifest.segments.map((s) => s.to).join(', ')}). ` +
        '"full" runs every segment and answers at the final exit; the others stop at the first exit their policy trusts.';
      writeBenchSection(`exits-${pkg.manifest.name}-${threads}t`, `Operating points vs the full model: ${pkg.manifest.name}, ${threads} thread(s)`, `${how}\n\n${table}`);
    }
  }
}

/** The simulated day's device: a Pi 4 in a warm enclosure on a small battery, so a day fits in minutes. */
const DAY = {
  profile: 'pi4',
  // An estimate, not a measurement (no Pi here): a Pi 4's Cortex-A72 runs this int8 model about 6x slower than this machine's cores.
  computeTimeScale: 6,
  maxFrameRate: 40,
  bridge: { capacityWh: 0.5, ambientC: 38, thermalResistanceCPerW: 8, thermalTimeConstantS: 120, idlePowerW: 2.7 },
  thermalLimitC: 70,
  // Cheap points lose more on unseen images than on validation (docs/exits.md), so 2 points below full on validation keeps the day within 2 of balanced.
  maxAccuracyDropPoints: 2,
  sampleEveryS: 20,
};

/** Frames before empty if classifying cost nothing: the board's idle draw alone, at the highest frame rate. */
function idleOnlyFrames(): number {
  return ((DAY.bridge.capacityWh * 3600) / DAY.bridge.idlePowerW) * DAY.maxFrameRate;
}

/**
 * Frames before empty if every frame went to the server as its image with no local compute:
 * idle draw plus the radio energy of the mean image, framed as the agent frames it.
 */
function offloadEverythingFrames(meanImageBytes: number, packageName: string): number {
  // A UUID's length, as the agent's request ids have.
  const framed = encodeOffload({ requestId: 'x'.repeat(36), packageName, modelHash: '0'.repeat(64), kind: 'image', format: 'jpeg', data: Buffer.alloc(Math.round(meanImageBytes)) }).length;
  const joulesPerFrame = DAY.bridge.idlePowerW / DAY.maxFrameRate + radioEnergy(deviceProfile(DAY.profile), framed);
  return (DAY.bridge.capacityWh * 3600) / joulesPerFrame;
}

function meanFileBytes(folder: string): number {
  const files = readImageFolder(folder).samples;
  return files.reduce((sum, sample) => sum + fs.statSync(sample.file).size, 0) / files.length;
}

function formatDay(results: DayResult[], meanImageBytes: number, packageName: string): string {
  const balanced = results.find((r) => r.name === 'static balanced');
  const bound = idleOnlyFrames();
  const offloadAll = offloadEverythingFrames(meanImageBytes, packageName);
  const times = (frames: number) => (balanced ? `, ${(frames / balanced.frames).toFixed(2)}x static balanced` : '');
  return [
    '| run | frames before empty | x static balanced | accuracy | peak °C | s over limit | lifetime h |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...results.map(
      (r) =>
        `| ${r.name} | ${r.frames} | ${balanced ? (r.frames / balanced.frames).toFixed(2) : '-'} | ${(r.accuracy * 100).toFixed(2)}% | ${r.peakTemperatureC.toFixed(1)} | ${r.secondsOverLimit.toFixed(0)} | ${r.lifetimeH.toFixed(2)} |`,
    ),
    '',
    `Upper bound: if classifying cost nothing, the board's idle draw alone (${DAY.bridge.idlePowerW} W for ${DAY.bridge.capacityWh} Wh at ${DAY.maxFrameRate} fps) ` +
      `would empty the battery after ${Math.round(bound)} frames${times(bound)}. ` +
      'No choice of operating point, depth or offload can classify more frames than that at this frame rate; a lower frame rate gives fewer. ' +
      `Sending every frame to a server as its image (${Math.round(meanImageBytes)} bytes on average) with no local compute would still pay the radio: ${Math.round(offloadAll)} frames${times(offloadAll)}.`,
  ].join('\n');
}

async function daySuite(options: BenchOptions): Promise<void> {
  const { pkg, taskName, testDir } = await openTaskPackage(options.taskConfig);
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 }, taskName);
  const points = pkg.manifest.operatingPoints;
  const bounds = controllerSchema.parse({ maxTemperatureC: DAY.thermalLimitC, maxAccuracyDropPoints: DAY.maxAccuracyDropPoints });
  const bar = progressBar('simulated day (battery used, %)');
  const results = await runSimulatedDay({
    engine,
    points,
    makeSource: () => new ReplaySource(testDir, { loop: true, seed: 1 }),
    target: { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize },
    profile: deviceProfile(DAY.profile),
    bridge: DAY.bridge,
    bounds,
    maxFrameRate: DAY.maxFrameRate,
    computeTimeScale: DAY.computeTimeScale,
    thermalLimitC: DAY.thermalLimitC,
    sampleEveryS: DAY.sampleEveryS,
    variants: [
      { name: 'static full', controlled: false, staticPoint: 'full' },
      { name: 'static balanced', controlled: false, staticPoint: 'balanced' },
      { name: 'controller', controlled: true, staticPoint: 'balanced' },
    ],
    onProgress: (socs) => bar.update(Math.round((1 - Math.max(...socs)) * 100), 100),
  });
  bar.stop();
  const table = formatDay(results, meanFileBytes(testDir), pkg.manifest.name);
  console.log(`${table}\n`);
  const outDir = path.join(PROJECT_ROOT, 'docs', 'results', 'simulated-day');
  fs.mkdirSync(outDir, { recursive: true });
  const ladder = operatingLadder(points, bounds.maxAccuracyDropPoints).map((p) => p.name);
  const rows = (value: (row: DayResult['timeline'][number]) => number) => results.flatMap((r) => r.timeline.map((row) => ({ t: row.tS / 3600, value: value(row), series: r.name })));
  fs.writeFileSync(path.join(outDir, 'battery.svg'), await timelineSvg(rows((row) => row.soc * 100), { title: 'Battery over the simulated day', xLabel: 'hours', yLabel: 'state of charge (%)' }));
  fs.writeFileSync(path.join(outDir, 'temperature.svg'), await timelineSvg(rows((row) => row.temperatureC), { title: `Temperature (limit ${DAY.thermalLimitC} °C)`, xLabel: 'hours', yLabel: '°C' }));
  fs.writeFileSync(
    path.join(outDir, 'operating-point.svg'),
    await timelineSvg(
      results.filter((r) => r.name === 'controller').flatMap((r) => [
        ...r.timeline.map((row) => ({ t: row.tS / 3600, value: ladder.indexOf(row.point), series: 'ladder step (0 = full, higher = cheaper)' })),
        ...r.timeline.map((row) => ({ t: row.tS / 3600, value: row.frameRate, series: 'frame rate (fps)' })),
      ]),
      { title: 'What the controller chose', xLabel: 'hours', yLabel: '', interpolate: 'step-after', separatePanels: true },
    ),
  );
  fs.writeFileSync(path.join(outDir, 'day.json'), `${JSON.stringify(results, null, 2)}\n`);
  if (options.write) {
    const how =
      `Produced by \`edge-exit bench --suites day\` on ${today()}: three agents on the same replay of the CIFAR-10 test split, taking turns frame by frame on one engine, ` +
      `each with its own simulated ${DAY.bridge.capacityWh} Wh battery and heatsink (ambient ${DAY.bridge.ambientC} °C, ${DAY.bridge.thermalResistanceCPerW} °C/W, time constant ${DAY.bridge.thermalTimeConstantS} s, limit ${DAY.thermalLimitC} °C), ` +
      `device profile ${DAY.profile} with compute times scaled by ${DAY.computeTimeScale} (an estimate of a Pi 4 against this machine; no Pi was measured), at most ${DAY.maxFrameRate} fps, controller bound ${DAY.maxAccuracyDropPoints} points below the full model on validation. ` +
      'Plots: [battery](results/simulated-day/battery.svg), [temperature](results/simulated-day/temperature.svg), [operating point](results/simulated-day/operating-point.svg).';
    writeBenchSection('day', 'Simulated day: static full, static balanced, controller', `${how}\n\n${table}`);
  }
}

async function lifetimeSuite(options: BenchOptions): Promise<void> {
  const { pkg } = await openTaskPackage(options.taskConfig);
  const bar = progressBar('lifetime (scenario × variant)');
  const lifetime = {
    points: pkg.manifest.operatingPoints,
    packageName: pkg.manifest.name,
    computeTimeScale: DAY.computeTimeScale,
    gateMs: DECODE_AND_GATE_MS,
    seed: 1,
    outDir: path.join(PROJECT_ROOT, 'docs', 'results', 'lifetime'),
    onProgress: (done: number, total: number) => bar.update(done, total),
  };
  const report = await runLifetimeBench(lifetime);
  bar.stop();
  const goals = ['| goal | held | figures |', '|---|---|---|', ...report.goals.map((g) => `| ${g.goal} | ${g.held ? 'yes' : '**no**'} | ${g.figures} |`)].join('\n');
  console.log(`${report.table}\n\n${goals}\n`);
  if (options.write) {
    const plots = ['camera-trap', 'busy-street', 'hot-enclosure'].map((slug) => `[${slug} battery](results/lifetime/${slug}-battery.svg), [${slug} planner](results/lifetime/${slug}-planner.svg)`).join(', ');
    writeBenchSection('lifetime', 'Battery lifetime: static, controller, planner with duty cycling, oracle', `${describeLifetimeBench(lifetime, today())}\n\n${report.table}\n\n${goals}\n\nPlots: ${plots}.`);
  }
}

async function loggingSuite(options: BenchOptions): Promise<void> {
  const { pkg, taskName, testDir } = await openTaskPackage(options.taskConfig);
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 }, taskName);
  const dbDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-logging-bench-'));
  const store = LogStore.open(path.join(dbDir, 'log.db'));
  const frames = Number(options.imagesPerClass) * 40;
  const result = await runLoggingOverhead({
    engine,
    staticPoint: pkg.manifest.operatingPoints.find((p) => p.name === 'balanced')!,
    points: pkg.manifest.operatingPoints,
    makeSource: () => new ReplaySource(testDir, { loop: true, seed: 1 }),
    profile: deviceProfile('pi4'),
    target: { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize },
    store,
    frames,
  });
  store.close();
  fs.rmSync(dbDir, { recursive: true, force: true });
  const table = [
    '| loop | mean ms/frame | median ms/frame | p95 ms/frame |',
    '| --- | --- | --- | --- |',
    `| without the SQLite log | ${result.without.meanMs.toFixed(3)} | ${result.without.medianMs.toFixed(3)} | ${result.without.p95Ms.toFixed(3)} |`,
    `| with the SQLite log | ${result.withLog.meanMs.toFixed(3)} | ${result.withLog.medianMs.toFixed(3)} | ${result.withLog.p95Ms.toFixed(3)} |`,
    '',
    `Logging costs ${(result.overheadMean * 100).toFixed(2)}% of the loop's mean time (${(result.overheadMedian * 100).toFixed(2)}% of the median).`,
  ].join('\n');
  console.log(`${table}\n`);
  if (options.write) {
    const how =
      `Produced by \`edge-exit bench --suites logging --images-per-class ${options.imagesPerClass}\` on ${today()}: the agent's real loop (JPEG decode, multi-exit inference at the balanced point, energy accounting) ` +
      `for ${frames} frames with the SQLite log and ${frames} without, taking turns frame by frame on one engine; the store's batched flushes run between frames and count. ` +
      'A synthetic-loop version that also times the store calls directly is `npx tsx tools/bench/logging-bench.ts`.';
    writeBenchSection('logging', 'Logging overhead in the agent loop', `${how}\n\n${table}`);
  }
}

async function offloadSuite(options: BenchOptions): Promise<void> {
  const { pkg, taskName, testDir } = await openTaskPackage(options.taskConfig);
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 }, taskName);
  const images = balancedSubset(readImageFolder(testDir), 5);
  const broker = await startMosquitto();
  try {
    const requests = Number(options.imagesPerClass) * 4;
    const result = await runOffloadBench({ pkg, engine, images, brokerUrl: broker.url, config: options.taskConfig, requests });
    const table = formatOffloadBench(result);
    console.log(`${table}\n`);
    if (options.write) {
      const how =
        `Produced by \`edge-exit bench --suites offload --images-per-class ${options.imagesPerClass}\` on ${today()}: a real Mosquitto 2 on loopback, \`edge-exit server\` worker processes on a shared subscription (MQTT 5, response topic + correlation data), ` +
        `package ${pkg.manifest.name}. Round trips: one request at a time (${requests} per kind), from publish to answer, server compute included; "features" is the int8 seam after exit 0 ` +
        '(the server runs the remaining segments and the final head), "image" is the CIFAR-10 JPEG (the server decodes it and runs the whole model). Throughput: image payloads, 16 in flight. ' +
        'This machine has 2 cores, which the agent side of the benchmark shares with the workers.';
      writeBenchSection('offload', 'Offload round trips and server throughput', `${how}\n\n${table}`);
    }
  } finally {
    await broker.stop();
  }
}

/** Every-frame inference against the gated pipeline on generated videos (tools/bench/stream-scenes.ts). */
async function streamSuite(options: BenchOptions): Promise<void> {
  const { pkg, taskName } = await openTaskPackage(options.taskConfig);
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: Number(options.threads.split(',')[0]) }, taskName);
  const point = pkg.manifest.operatingPoints.find((p) => p.name === 'balanced') ?? pkg.manifest.operatingPoints[0]!;
  const target = { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-scenes-'));
  const broker = await startEmbeddedBroker(await freePort());
  const shared = sharedDir();
  const results: Array<StreamBenchResult & { crop?: boolean; temporal?: boolean; pointName: string }> = [];
  // Temporal exit reuse saves only where exits after the first run: shown at the full point as well.
  const full = pkg.manifest.operatingPoints.find((p) => p.name === 'full');
  const points = new Map([point, ...(full ? [full] : [])].map((p) => [p.name, p]));
  try {
    for (const [kind, seconds] of [['quiet', 180], ['busy', 30]] as const) {
      const scene = await makeScene({ kind, seconds, fps: 10, background: path.join(shared, 'images', 'cat.bmp'), objects: path.join(shared, 'data', 'cifar10', 'test'), outDir: dir, seed: 7 });
      // The quiet scene again with the model on the square around what moved (gate.cropToMotion); both with temporal exit reuse.
      const variants = [
        { crop: false, temporal: false, pointName: point.name },
        ...(kind === 'quiet' ? [{ crop: true, temporal: false, pointName: point.name }] : []),
        { crop: false, temporal: true, pointName: point.name },
        ...(full ? [false, true].map((temporal) => ({ crop: false, temporal, pointName: full.name })) : []),
      ];
      for (const { crop, temporal, pointName } of variants) {
        const config = parseAgentConfig({ source: { kind: 'stream', url: scene.file }, gate: { cropToMotion: crop, temporalReuse: temporal } });
        const bar = progressBar(`bench stream (${kind}, ${pointName}${crop ? ', crop' : ''}${temporal ? ', temporal reuse' : ''})`);
        const result = await runStreamBench({ scene, engine, point: points.get(pointName)!, target, brokerUrl: broker.url, config, onProgress: (d, t) => bar.update(d, t) });
        results.push({ ...result, crop, temporal, pointName });
        bar.stop();
      }
    }
  } finally {
    await broker.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  const table = [
    '| scene | frames | model ran | mean exit (reused) | label agreement | events / objects | event recall | event precision | event label right | CPU ms/frame every / gated | ms/frame: decode, model, gate+log+publish | frames/s model only / pipeline | latency p50 / p95 ms |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...results.map(
      (r) =>
        `| ${r.scene}${r.pointName === point.name ? '' : `, ${r.pointName} point`}${r.crop ? ', crop to motion' : ''}${r.temporal ? ', temporal exit reuse' : ''} | ${r.frames} | ${pct(r.gated.inferred / r.frames)} | ${r.gated.meanExit.toFixed(2)} (${r.gated.reused}) | ${pct(r.gated.agreement)} | ${r.gated.events} / ${r.objects} | ${pct(r.gated.eventRecall)} | ${pct(r.gated.eventPrecision)} | ${pct(r.gated.eventLabelAccuracy)} | ` +
        `${r.everyFrame.cpuMsPerFrame.toFixed(2)} / ${r.gated.cpuMsPerFrame.toFixed(2)} | ${r.decodeMsPerFrame.toFixed(2)}, ${r.everyFrame.msPerFrame.toFixed(2)}, ${(r.gated.msPerFrame - (r.everyFrame.msPerFrame * r.gated.inferred) / r.frames).toFixed(2)} | ` +
        `${r.framesPerSecond.modelOnly.toFixed(0)} / ${r.framesPerSecond.pipeline.toFixed(0)} | ${r.gated.latencyP50Ms.toFixed(1)} / ${r.gated.latencyP95Ms.toFixed(1)} |`,
    ),
  ].join('\n');
  const plain = (r: (typeof results)[number]) => !r.crop && !r.temporal && r.pointName === point.name;
  const quiet = results.find((r) => r.scene === 'quiet' && plain(r))!;
  const busy = results.find((r) => r.scene === 'busy' && plain(r))!;
  const mark = (ok: boolean) => (ok ? 'met' : 'missed');
  const overhead = 1 - busy.framesPerSecond.pipeline / busy.framesPerSecond.modelOnly;
  const gateLogPublish = (busy.gated.msPerFrame - busy.everyFrame.msPerFrame) / busy.everyFrame.msPerFrame;
  const goals = [
    `- quiet, at most 15% of frames inferred: ${pct(quiet.gated.inferred / quiet.frames)}, ${mark(quiet.gated.inferred / quiet.frames <= 0.15)}`,
    `- quiet, at least 99% label agreement: ${pct(quiet.gated.agreement)}, ${mark(quiet.gated.agreement >= 0.99)}`,
    `- quiet, 100% event recall: ${pct(quiet.gated.eventRecall)}, ${mark(quiet.gated.eventRecall === 1)}`,
    `- busy, at least 98% label agreement: ${pct(busy.gated.agreement)}, ${mark(busy.gated.agreement >= 0.98)} (its event figures say little: motion never stops, so it is one long event)`,
    `- busy, decode + gate + log + publish cost at most 20% of the model-only rate: ${pct(overhead)}, ${mark(overhead <= 0.2)}; ` +
      `gate, log and publish alone add ${pct(gateLogPublish)} to the model's time, decode (ffmpeg's H.264 at 320x240, scaled) the rest. The goal is stated for a model that is the bottleneck; ` +
      `this package runs in ${busy.everyFrame.msPerFrame.toFixed(1)} ms a frame here, so decoding costs about as much as inference. ` +
      'This adds ffmpeg\'s CPU time to the loop\'s, as on one core; run live, with ffmpeg beside the agent and the model the bottleneck, the loop suite below measures what the real `edge-exit run` loses.',
  ].join('\n');
  console.log(`${table}\n\n${goals}\n`);
  if (options.write) {
    const plot = path.join(PROJECT_ROOT, 'docs', 'results', 'stream', 'quiet-timeline.svg');
    fs.mkdirSync(path.dirname(plot), { recursive: true });
    const labels = [...new Set(quiet.timeline.map((row) => row.label))];
    const rows = quiet.timeline.flatMap((row) => [
      { t: row.frame / 10, value: row.motion ? 1 : 0, series: 'motion' },
      { t: row.frame / 10, value: row.inferred ? 1 : 0, series: 'model ran' },
      { t: row.frame / 10, value: labels.indexOf(row.label), series: 'label (index)' },
    ]);
    fs.writeFileSync(plot, await timelineSvg(rows, { title: 'Quiet scene: motion, inference and label over time', xLabel: 'seconds', yLabel: '', interpolate: 'step-after', separatePanels: true, height: 90 }));
    const how =
      `Produced by \`edge-exit bench --suites stream --task-config ${options.taskConfig}\` on ${today()}, package ${pkg.manifest.name} at its "${point.name}" point, Node ${process.version}. ` +
      'Videos made by tools/bench/stream-scenes.ts with ffmpeg (H.264, 320x240, 10 frames/s) from ../shared: the cat photo as background with sensor noise (±6 levels) and a lighting drift (±12% over a minute); ' +
      'quiet: CIFAR-10 test objects (96 px) pasted in for 3-6 s at random times, 5-15 s apart; busy: an object crossing the scene in every frame, a new one every second. ' +
      'Both modes run on the same decoded frames and the same engine, frame by frame in turn. "every" runs the model on every frame (the reference for label agreement); "gated" runs the motion gate (default settings), ' +
      'the model only on motion or when the 10 s reuse age runs out, logs to SQLite and publishes state and events to an in-process aedes broker. Decode is ffmpeg\'s own CPU time per frame (-benchmark), ' +
      'added to both modes\' frames/s and to the latency (decode to published result, offline: no capture wait). An event matches a ground-truth object when their frames overlap; ' +
      '"event label right" is the share of matched events labelled with the object\'s class. "mean exit (reused)" is the mean 0-based exit of the inferences, and how many an earlier exit settled by temporal exit reuse (gate.temporalReuse: a change of at most 2% of the frame after an answer at least 90% sure trusts the first exit that agrees with it); the "full point" rows run every inference to the last exit unless temporal reuse stops it, and their agreement is with every-frame inference at the full point. The "crop to motion" row runs the model on the square around what moved (gate.cropToMotion); its agreement is with whole-frame inference, so it shows how often the crop changes the answer.';
    writeBenchSection('stream', 'Streams: every-frame inference vs the motion gate', `${how}\n\n${table}\n\nGoals:\n${goals}\n\n![Quiet scene timeline](results/stream/quiet-timeline.svg)`);
  }
}

/** The dashboard, /metrics and discovery: off, on with nobody connected, on with a dashboard open (tools/bench/web-bench.ts). */
async function webSuite(options: BenchOptions): Promise<void> {
  const { pkg } = await openTaskPackage(options.taskConfig);
  const settings = { rounds: 5, warmupS: 10, measureS: 60, maxFrameRate: 120 };
  const bar = progressBar('bench web');
  const result = await runWebBench({ packageDir: pkg.dir, ...settings, onProgress: (d, t) => bar.update(d, t) });
  bar.stop();
  const table = [
    '| web port and discovery | frames/s | CPU ms per frame | frames/s lost against off (median of rounds; range) |',
    '| --- | --- | --- | --- |',
    ...result.byVariant.map((v) => {
      const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(1)}%`;
      const vsOff = v.variant === 'off' ? '–' : `${signed(v.overheadPercent)} (${signed(v.overheadRange[0])} to ${signed(v.overheadRange[1])})`;
      return `| ${v.variant} | ${v.framesPerSecond.toFixed(1)} | ${v.cpuMsPerFrame.toFixed(3)} | ${vsOff} |`;
    }),
  ].join('\n');
  const runs = result.runs.map((r) => `${r.variant} (round ${r.round + 1}): ${((1000 * r.cpuSeconds) / r.frames).toFixed(3)} ms`).join('; ');
  const worst = Math.max(...result.byVariant.slice(1).map((v) => v.overheadPercent));
  const goal = `- under 3% for each: worst ${worst.toFixed(1)}%, ${worst < 3 ? 'met' : 'missed'}`;
  console.log(`${table}\n\n${goal}\n\nruns: ${runs}\n`);
  if (options.write) {
    const how =
      `Produced by \`edge-exit bench --suites web\` on ${today()}, Node ${process.version}, package ${pkg.manifest.name} at the controller's choice (balanced at full battery), ` +
      `replaying the same CIFAR-10 test images in every agent. In each of ${settings.rounds} rounds the three variants run at once as separate \`edge-exit run\` processes (embedded broker, simulated bridge, offload off so that no server runs in the agent's process), ` +
      `all pinned to one core (taskset), so that each gets a fair third of it and whatever else the machine does hits all three alike; sharing a core, each stays below the ${settings.maxFrameRate} frames/s cap, so its frames/s is what its work per frame allows. ` +
      `Each round measures ${settings.measureS} s after ${settings.warmupS} s of warm-up, and the start order rotates. ` +
      '"off" has `web.enabled` and `homeassistant.enabled` false; "on" has both true (the defaults); "dashboard open" adds what an open page does (its live stream, its loads, a timeline every 30 s) and a Prometheus scrape every 15 s, from the benchmark process on the other core. ' +
      'The cost is the frames/s each variant loses against "off" in its own round (median over the rounds, with the range); CPU per frame is the agent process\'s user + system time from /proc.';
    writeBenchSection('web', 'Operator surfaces: what the dashboard, /metrics and discovery cost the loop', `${how}\n\n${table}\n\nGoal:\n${goal}\n\nEach run: ${runs}.`);
  }
}

/** What the cpu-path suite's figures were explained by (found with the C harness, gdb and /proc; see the commits of the thread fix). */
const CPU_PATH_FINDINGS = {
  threads:
    '**Why 2 threads gave no speed-up before: the runtime, not the machine.** `nproc` and `lscpu` give 2 CPUs, 1 thread per core (AMD EPYC under KVM), and `taskset -p` an affinity mask of 3 (both). ' +
    'The C harness on the same library scales, both making the XNNPACK delegate itself and going through edge-exit\'s plugin with key/value options. ' +
    'The runtime did not because tfjs-tflite-node 0.0.2\'s binding hands the plugin each option as a pointer into a loop-local copy of the pair (`for (auto option : options) insert(option.first.c_str(), option.second.c_str())`): ' +
    'every key and value points at the same, already destroyed copy, which holds the last pair. The plugin was given `flags=1` twice and never `num_threads`, and made a one-thread delegate without a thread pool ' +
    '(seen with gdb at `tflite_plugin_create_delegate`, and in /proc/self/task: no thread started). The "before the fix" row rebuilds that path. ' +
    'Now no key/value options go through the binding: a small Node addon built beside the plugin, linked to the same loaded copy of it, stages the thread count and flags just before the interpreter is made ' +
    'and reads back what the delegate was made with (the last column). ' +
    'On a machine others share, 2 threads can also be far slower than 1: XNNPACK\'s workers meet after every layer, so a worker that loses its core to another process holds the layer for a time slice ' +
    '(invokes of 40-600 ms instead of 6 ms were seen here while other jobs ran; the 10th-percentile and fastest figures show the cost without most of that). Hence `model.threads: auto`, all cores but one (at most 4): 3 on a 4-core Pi. ' +
    'With a load average above the core count (see above), judge the 2-thread speed-up by the 10th-percentile and fastest columns: the medians then measure the other jobs. ' +
    '**A chain of small interpreters needs one pool.** With the fix, a multi-exit package at 2 threads was far slower than at 1 even on a quiet machine (the CIFAR-10 package, 8 interpreters, about 80 ms a frame against 3): each interpreter had a delegate, and so a thread pool, of its own, ' +
    'and the workers of the pool that had just finished spun on the second core while the next pool\'s worker waited for it. The plugin now gives every interpreter made with the same threads and flags one delegate, ' +
    'so a chain runs on one pool whose worker stays warm (the "one shared thread pool" rows; "a thread pool each" rebuilds the earlier path). A model with constants XNNPACK unpacks into the delegate (DEQUANTIZE, DENSIFY) keeps its own: the delegate forgets them when it prepares the next graph.',
  uint8:
    '**uint8 models.** The runtime asks for XNNPACK\'s QU8 kernels per model, when its convolutions carry uint8 weights (the int8 model, uint8 only at its edges, gets QS8 alone). ' +
    'The TFLite 2.9 XNNPACK bundled with tfjs-tflite-node refuses them: every uint8 convolution, depthwise convolution and addition fails to be defined ("failed to delegate CONV_2D node #0"), ' +
    'also in a one-layer model fed by a QUANTIZE that XNNPACK did accept with QU8, whatever the zero points; so preparation fails, the runtime retries without QU8 (reported as "QU8 asked and refused") and the uint8 layers run on the stock kernels. ' +
    '(The arm64 build of the library was not tried.) `edge-exit build-model` therefore cuts a uint8 base model as its int8 equivalent (tools/tflite/uint8-to-int8.ts): activations shifted by 128 exactly, weights symmetric per channel, ' +
    'exact for all but 63 of the 18,057 channels of this model, which are scaled down to fit int8 and rounded by at most half a step.',
};

/** 1 vs 2 threads (C harness and runtime) and the int8 vs the uint8 MobileNetV2 (tools/bench/cpu-path-bench.ts). */
async function cpuPathSuite(options: BenchOptions): Promise<GlanceRow[]> {
  const int8Config = loadBuildConfig(buildConfigPath('mobilenet_v2_imagenet'));
  const uint8Config = loadBuildConfig(buildConfigPath('mobilenet_v2_imagenet_uint8'));
  const int8Package = await openOrBuildPackage('mobilenet_v2_imagenet');
  const uint8Package = await openOrBuildPackage('mobilenet_v2_imagenet_uint8');
  const chainPackage = (await openTaskPackage(options.taskConfig)).pkg;
  const chunks = 10;
  const roundsPerChunk = Math.max(1, Math.round(Number(options.imagesPerClass)));
  const bar = progressBar('bench cpu-path');
  const result = await runCpuPathBench({
    int8Model: int8Config.baseModelPath,
    uint8Model: uint8Config.baseModelPath,
    int8Package,
    uint8Package,
    chainPackage,
    catPhoto: path.join(sharedDir(), 'images', 'cat.bmp'),
    chunks,
    roundsPerChunk,
    onProgress: (d, t) => bar.update(d, t),
  });
  bar.stop();
  const tables = formatCpuPathBench(result, int8Package.manifest.labels.imagenet!);
  console.log(`${tables.threads}\n\n${tables.uint8}\n\n${tables.load}\n`);
  if (options.write) {
    const how =
      `Produced by \`edge-exit bench --suites cpu-path --images-per-class ${options.imagesPerClass}\` on ${today()}, Node ${process.version}, ${process.arch}: ` +
      `${chunks} chunks of ${roundsPerChunk} rounds; in each chunk the C harness (tools/bench/native/cpu_harness.c, on tfjs-tflite-node's own libtensorflowlite_c.so) runs its variants in turn, ` +
      'then the runtime runs its variants in turn, one invoke each on cat.bmp, in a rotating order. Times are per invoke, from writing the input to reading the output.';
    writeBenchSection('cpu-path', 'CPU path: 1 vs 2 threads, int8 vs uint8', `${how}\n\n${tables.load}\n\n${tables.threads}\n\n${CPU_PATH_FINDINGS.threads}\n\n${tables.uint8}\n\n${CPU_PATH_FINDINGS.uint8}`);
  }
  const median = (name: string, threads: number) => medianOf(result.runtime.find((v) => v.name === name && v.threads === threads)!.times);
  const int8 = median(CPU_PATH_VARIANTS.int8, 1);
  const asked = median(CPU_PATH_VARIANTS.uint8QU8, 1) / int8;
  const cut = median(CPU_PATH_VARIANTS.uint8AsInt8, 1) / int8;
  const modelSpeedUp = int8 / median(CPU_PATH_VARIANTS.int8, 2);
  const beforeFix = int8 / median(CPU_PATH_VARIANTS.keyValueOptions, 2);
  const chainShared = median(CPU_PATH_VARIANTS.chainShared, 1);
  const chainSpeedUp = chainShared / median(CPU_PATH_VARIANTS.chainShared, 2);
  const chainOwnPools = chainShared / median(CPU_PATH_VARIANTS.chainOwnPools, 2);
  return [
    { suite: 'cpu-path', question: 'uint8 MobileNetV2 (Coral\'s) vs int8, 1 thread, median', measured: `QU8 asked: ${asked.toFixed(2)}x (refused by the bundled TFLite 2.9, stock kernels); cut by build-model as int8: ${cut.toFixed(2)}x`, goal: `at most 1.3x: ${verdict(cut, 1.3, 'at most')} through the int8 cut; ${verdict(asked, 1.3, 'at most')} with QU8` },
    { suite: 'cpu-path', question: '2 threads vs 1, int8 MobileNetV2 224x224, median', measured: `${modelSpeedUp.toFixed(2)}x (before the fix ${beforeFix.toFixed(2)}x)`, goal: `at least 1.6x: ${verdict(modelSpeedUp, 1.6, 'at least')}` },
    { suite: 'cpu-path', question: '2 threads vs 1, the CIFAR-10 multi-exit chain, median', measured: `${chainSpeedUp.toFixed(2)}x with one shared pool (a pool per interpreter: ${chainOwnPools.toFixed(2)}x)`, goal: `at least 1.6x: ${verdict(chainSpeedUp, 1.6, 'at least')}` },
  ];
}

/** The real `edge-exit run` flat out on a replay and on a video, its frames/s against the model's time; before and after with --baseline (tools/bench/loop-bench.ts). */
async function loopSuite(options: BenchOptions): Promise<GlanceRow[]> {
  const { pkg, testDir } = await openTaskPackage(options.taskConfig);
  const point = pkg.manifest.operatingPoints.find((p) => p.name === 'balanced') ?? pkg.manifest.operatingPoints[0]!;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-loop-scenes-'));
  const settings = { rounds: 3, warmupS: 5, measureS: 20 };
  const checkouts = [...(options.baseline ? [{ name: 'before', root: path.resolve(options.baseline) }] : []), { name: options.baseline ? 'after' : 'this checkout', root: PROJECT_ROOT }];
  let runs;
  try {
    const busy = await makeScene({ kind: 'busy', seconds: 30, fps: 10, background: path.join(sharedDir(), 'images', 'cat.bmp'), objects: path.join(sharedDir(), 'data', 'cifar10', 'test'), outDir: dir, seed: 7 });
    const scenarios = [
      { name: 'replay (CIFAR-10 test JPEGs, decoded by sharp)', source: { kind: 'replay', dataset: testDir, loop: true, seed: 1 } },
      { name: 'video (busy scene, H.264 320x240, decoded and scaled by ffmpeg)', source: { kind: 'stream', url: busy.file, loop: true, realtime: false } },
    ];
    const bar = progressBar('bench loop');
    runs = await runLoopBench({ checkouts, scenarios, packageDir: pkg.dir, operatingPoint: point.name, ...settings, onProgress: (d, t) => bar.update(d, t) });
    bar.stop();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  const summary = summarizeLoopRuns(runs);
  const table = [
    '| source | checkout | frames/s end to end | model ms/frame | loop overhead over the model (median; range) | share of the model-only rate | CPU ms/frame (agent process) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...summary.map(
      (s) =>
        `| ${s.scenario} | ${s.checkout} | ${s.framesPerSecond.toFixed(0)} | ${s.modelMsPerFrame.toFixed(2)} | ${pct(s.overhead)} (${pct(s.overheadRange[0])} to ${pct(s.overheadRange[1])}) | ${pct(1 / (1 + s.overhead))} | ${s.cpuMsPerFrame.toFixed(2)} |`,
    ),
  ].join('\n');
  const eachRun = runs.map((r) => `${r.checkout}, ${r.scenario.split(' ')[0]}, round ${r.round + 1}: ${r.framesPerSecond.toFixed(0)} frames/s, ${pct(loopOverhead(r))}`).join('; ');
  const goal = summary
    .filter((s) => s.checkout !== 'before')
    .map((s) => `- ${s.scenario.split(' (')[0]}: the loop costs ${pct(s.overhead)} of the model's time, ${s.overhead <= 0.2 ? 'met' : 'missed'}`)
    .join('\n');
  console.log(`${table}\n\nGoal, under 20%:\n${goal}\n\n${eachRun}\n`);
  if (options.write) {
    const how =
      `Produced by \`edge-exit bench --suites loop --task-config ${options.taskConfig}${options.baseline ? ' --baseline <worktree of the commit before>' : ''}\` on ${today()}, Node ${process.version}, package ${pkg.manifest.name} pinned to its "${point.name}" point (controller off), 1 interpreter thread, load average ${os.loadavg()[0]!.toFixed(1)} at the end. ` +
      `Each run is the real \`edge-exit run\` as a child process (embedded broker, state and events published, every classified frame logged to SQLite, dashboard and /metrics on, offload off so that no server runs in the agent's process) on the simulated bridge's manual clock, so the loop never waits for a frame slot. ` +
      `${settings.measureS} s are measured after ${settings.warmupS} s of warm-up, in ${settings.rounds} rounds; ${options.baseline ? 'before and after alternate their order from round to round. ' : ''}` +
      'Frames/s counts the frames logged in the window; the model time is the engine\'s own (segments and heads, the log\'s total_ms) over the same frames, so the overhead (wall time per frame over model time per frame, minus one) compares each run with itself. ' +
      'The video is the stream bench\'s busy scene (motion in every frame, so the gate passes every frame to the model), looped, read as fast as ffmpeg decodes it: ffmpeg runs beside the agent on the other core and the agent takes the latest frame, so the model is the bottleneck. CPU is the agent process\'s user + system time (ffmpeg\'s is not in it; the stream section gives it).';
    writeBenchSection('loop', "The agent loop's overhead over the model, before and after", `${how}\n\n${table}\n\nGoal, under 20% of the model's time:\n${goal}\n\nEach run: ${eachRun}.`);
  }
  return [...new Set(summary.map((s) => s.scenario))].map((scenario) => {
    const mine = summary.filter((s) => s.scenario === scenario);
    const after = mine.find((s) => s.checkout !== 'before')!;
    const before = mine.find((s) => s.checkout === 'before');
    return {
      suite: 'loop' as const,
      question: `loop overhead over the model, ${scenario.split(' (')[0]}, median of ${settings.rounds}`,
      measured: `${before ? `before ${pct(before.overhead)}, after ` : ''}${pct(after.overhead)} (${after.framesPerSecond.toFixed(0)} frames/s, model ${after.modelMsPerFrame.toFixed(2)} ms)`,
      goal: `under 20%: ${verdict(after.overhead, 0.2, 'at most')}`,
    };
  });
}

/** The same network in onnxruntime-node, exported from PyTorch, against edge-exit's int8 path (tools/bench/peer-bench.ts). */
async function peersSuite(options: BenchOptions): Promise<GlanceRow[]> {
  const { pkg, taskName, testDir } = await openTaskPackage(options.taskConfig);
  const file = buildConfigPath(options.taskConfig);
  const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as { baseModel?: unknown };
  if (!raw.baseModel) throw new Error(`the peers suite exports a package that build-model made from its base model (like mobilenet_v2_cifar10); ${file} is not a build config`);
  const baseModelPath = loadBuildConfig(file).baseModelPath;
  // Calibration from the training split, never the test images measured.
  const calibration = balancedSubset(readImageFolder(path.join(path.dirname(testDir), 'train')), 20).map((image) => image.file);
  const onnx = await ensurePeerOnnx(pkg, baseModelPath, path.join(modelsDir(), '.cache', 'peers'), calibration);
  const full = pkg.manifest.operatingPoints.find((p) => p.name === 'full');
  if (!full) throw new Error(`package ${pkg.manifest.name} has no "full" operating point`);
  const images = balancedSubset(readImageFolder(testDir), Number(options.imagesPerClass));
  const threads = options.threads.split(',').map(Number);
  const bar = progressBar('bench peers');
  const rows = await runPeerBench({
    engineFor: (t) => MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: t }, taskName),
    full,
    onnx: [{ name: 'float32', file: onnx.float32 }, ...(onnx.int8 ? [{ name: 'int8 (QDQ)', file: onnx.int8 }] : [])],
    images,
    target: { width: pkg.manifest.input.width, height: pkg.manifest.input.height, resize: pkg.manifest.input.resize },
    threads,
    onProgress: (d, t) => bar.update(d, t),
  });
  bar.stop();
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  const table = [
    '| runtime | threads | median ms | p95 ms | images/s | top-1 accuracy | top-1 agreement with edge-exit int8 |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.variant} | ${r.threads} | ${r.medianMs.toFixed(2)} | ${r.p95Ms.toFixed(2)} | ${r.imagesPerSecond.toFixed(0)} | ${pct(r.accuracy)} | ${pct(r.agreement)} |`),
  ].join('\n');
  const ratios = threads
    .flatMap((t) => {
      const mine = rows.find((r) => r.threads === t && r.variant.startsWith('edge-exit'))!;
      return rows.filter((r) => r.threads === t && r !== mine).map((r) => `- ${t} thread(s): ${r.variant} takes ${(r.medianMs / mine.medianMs).toFixed(2)}x edge-exit's median time`);
    })
    .join('\n');
  const scaling = rows
    .filter((r) => r.threads === threads[0])
    .map((r) => {
      const two = rows.find((o) => o.variant === r.variant && o.threads === threads.at(-1));
      return two && two !== r ? `- ${r.variant}: ${threads[0]} to ${threads.at(-1)} threads, ${(r.medianMs / two.medianMs).toFixed(2)}x` : undefined;
    })
    .filter(Boolean)
    .join('\n');
  console.log(`${table}\n\n${ratios}\n${scaling}\n`);
  if (options.write) {
    const how =
      `Produced by \`edge-exit bench --suites peers --task-config ${options.taskConfig} --images-per-class ${options.imagesPerClass} --threads ${options.threads}\` on ${today()}, Node ${process.version}, ${process.arch}, onnxruntime-node ${(await import('onnxruntime-node')).env.versions.node}, load average ${os.loadavg()[0]!.toFixed(1)} at the end. ` +
      `The network is package ${pkg.manifest.name} to its final exit (${pkg.manifest.heads.at(-1)!.name}): its backbone is the int8 base model ${path.basename(baseModelPath)} (frozen; this package was not fine-tuned, only its exit heads were trained), its final head an average pool and two dense layers. ` +
      'For onnxruntime the same weights are dequantized to float32 (tools/bench/peer-network.ts), built in PyTorch with the trainer\'s units and exported to ONNX (tools/bench/peer_onnx.py, a build artifact under models/.cache/peers, made when missing); it takes the same uint8 NHWC input and normalizes inside the graph. ' +
      `edge-exit runs the package's segment chain at its "full" point (every segment, the final head). Images: ${images.length} CIFAR-10 test images (decoded beforehand by the agent's preprocessing), all variants in turn image by image; times are from handing over the input to having the top-1, intraOpNumThreads for onnxruntime (sequential execution, all graph optimizations, no spinning between runs). ` +
      `${onnx.notes.join(' ')}`;
    writeBenchSection('peers', 'A peer: the same network in onnxruntime-node', `${how}\n\n${table}\n\n${ratios}\n\nThreads:\n${scaling}`);
  }
  return threads.map((t) => {
    const mine = rows.find((r) => r.threads === t && r.variant.startsWith('edge-exit'))!;
    const peers = rows.filter((r) => r.threads === t && r !== mine).map((r) => `${r.variant.replace('onnxruntime-node ', 'ORT ')} ${r.medianMs.toFixed(2)} ms (agrees ${pct(r.agreement)})`);
    return { suite: 'peers' as const, question: `edge-exit vs onnxruntime-node, ${t} thread(s), median per image`, measured: `edge-exit int8 ${mine.medianMs.toFixed(2)} ms; ${peers.join('; ')}` };
  });
}

export async function benchCommand(options: BenchOptions): Promise<void> {
  const suites = options.suites.split(',');
  if (suites.includes('runtime')) await runtimeSuite(options);
  if (suites.includes('exits')) await exitsSuite(options);
  if (suites.includes('day')) await daySuite(options);
  if (suites.includes('logging')) await loggingSuite(options);
  if (suites.includes('offload')) await offloadSuite(options);
  if (suites.includes('stream')) await streamSuite(options);
  if (suites.includes('web')) await webSuite(options);
  if (suites.includes('lifetime')) await lifetimeSuite(options);
  const glance: GlanceRow[] = [];
  if (suites.includes('cpu-path')) glance.push(...(await cpuPathSuite(options)));
  if (suites.includes('peers')) glance.push(...(await peersSuite(options)));
  if (suites.includes('loop')) glance.push(...(await loopSuite(options)));
  if (GLANCE_SUITES.every((suite) => suites.includes(suite))) {
    const table = glanceTable(glance);
    console.log(table);
    if (options.write) {
      const how = `Produced by \`edge-exit bench --suites ${GLANCE_SUITES.join(',')}${options.baseline ? ' --baseline <worktree of the commit before the loop work>' : ''}\` on ${today()}: every line comes from this one invocation, its sections below give the details. Load average ${os.loadavg().map((l) => l.toFixed(2)).join(', ')} at the end, on ${os.availableParallelism()} cores.`;
      writeBenchSection('cpu-glance', 'CPU path at a glance: uint8, threads, a peer and the loop, from one run', `${how}\n\n${table}`);
    }
  }
  if (options.write) console.log(`Written to ${BENCHMARKS_FILE}`);
}
