import test from 'ava';
import {
  DEFAULT_DELTAS,
  calibrateOperatingPoints,
  type CalibrationData,
  type OperatingPoint,
} from '../tools/calibration/calibrate.js';
import { createExitPolicy, simulateExits, type ExitPolicyName } from '../agent/exit-policy/policy.js';
import { softmaxFromLogits } from '../agent/exit-policy/probabilities.js';

/** xorshift32: a deterministic stream in [0, 1), so every run sees the same tables. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4294967296;
  };
}

/**
 * A multi-exit classifier's recorded outputs: deeper exits see the true class
 * more strongly, and hard samples less so at every exit, so confidence and
 * correctness are correlated the way they are for real heads.
 */
function syntheticValidation(options: { samples: number; exits: number; classes: number; seed: number }): CalibrationData {
  const random = seededRandom(options.seed);
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const labels: number[] = [];
  const perExitProbabilities: Float32Array[][] = [];
  for (let sample = 0; sample < options.samples; sample++) {
    const label = Math.floor(random() * options.classes);
    const ease = 1.2 - random();
    labels.push(label);
    perExitProbabilities.push(
      Array.from({ length: options.exits }, (_, exit) => {
        const logits = Float32Array.from({ length: options.classes }, (_, k) => gaussian() + (k === label ? 1.3 * (exit + 1) * ease : 0));
        return softmaxFromLogits(logits);
      }),
    );
  }
  const cumulativeLatencyMs = Array.from({ length: options.exits }, (_, exit) => 2.5 * (exit + 1) + 0.4);
  const cumulativeMacs = Array.from({ length: options.exits }, (_, exit) => 60e6 * (exit + 1) + 5e6);
  return { perExitProbabilities, labels, cumulativeMacs, cumulativeLatencyMs };
}

function accuracyOf(data: CalibrationData, predictions: number[]): number {
  return predictions.filter((prediction, sample) => prediction === data.labels[sample]).length / predictions.length;
}

function replay(data: CalibrationData, point: OperatingPoint) {
  const policy = createExitPolicy(point, data.cumulativeMacs.length);
  const { exitTaken, predictions } = simulateExits(policy, data.perExitProbabilities, point.maxExit);
  const meanOf = (costs: readonly number[]) => exitTaken.reduce((sum, exit) => sum + costs[exit]!, 0) / exitTaken.length;
  return { accuracy: accuracyOf(data, predictions), latency: meanOf(data.cumulativeLatencyMs), macs: meanOf(data.cumulativeMacs), exitTaken, predictions };
}

const POLICIES: ExitPolicyName[] = ['max-probability', 'entropy', 'patience'];
const data = syntheticValidation({ samples: 600, exits: 4, classes: 10, seed: 7 });
const result = calibrateOperatingPoints(data);
const calibrated = (policy: ExitPolicyName) => result.points.filter((point) => point.policy === policy && point.name.startsWith(`${policy}@`));

test('there is one point per policy and target, named <policy>@<delta>, plus full and balanced', (t) => {
  const names = result.points.map((point) => point.name);
  for (const policy of POLICIES) t.deepEqual(calibrated(policy).map((point) => point.name), DEFAULT_DELTAS.map((delta) => `${policy}@${delta.toFixed(1)}`));
  t.true(names.includes('full'));
  t.is(names.filter((name) => name === 'balanced').length, 1);
  t.is(new Set(names).size, names.length);
  // The table is built so that early exiting pays: the points must actually use it.
  t.true(calibrated('max-probability').every((point) => point.expectedLatencyMs < data.cumulativeLatencyMs[3]!));
});

test('every calibrated point reaches its target on the calibration data, and replays to the numbers it reports', (t) => {
  for (const point of result.points) {
    if (point.targetAccuracy !== undefined) t.true(point.validationAccuracy >= point.targetAccuracy - 1e-12, point.name);
    const replayed = replay(data, point);
    t.is(replayed.accuracy, point.validationAccuracy, point.name);
    t.true(Math.abs(replayed.latency - point.expectedLatencyMs) < 1e-9, point.name);
    t.true(Math.abs(replayed.macs - point.expectedMacs) < 1e-3, point.name);
    t.deepEqual(point.exitHistogram, [0, 1, 2, 3].map((exit) => replayed.exitTaken.filter((taken) => taken === exit).length));
    t.is(point.thresholds.length, 4);
  }
  for (const [index, delta] of DEFAULT_DELTAS.entries()) {
    t.true(Math.abs(calibrated('entropy')[index]!.targetAccuracy! - (result.finalExitAccuracy + delta / 100)) < 1e-12);
  }
});

test('expected cost does not rise as the target accuracy is lowered', (t) => {
  for (const policy of POLICIES) {
    const points = calibrated(policy);
    for (let i = 1; i < points.length; i++) {
      t.true(points[i]!.expectedLatencyMs <= points[i - 1]!.expectedLatencyMs + 1e-9, `${points[i]!.name} vs ${points[i - 1]!.name}`);
    }
    t.true(points[0]!.expectedLatencyMs <= result.points.find((point) => point.name === 'full')!.expectedLatencyMs);
  }
  // With MACs as the objective the same holds for MACs.
  const byMacs = calibrateOperatingPoints(data, { objective: 'macs', policies: ['max-probability'] }).points.slice(0, DEFAULT_DELTAS.length);
  for (let i = 1; i < byMacs.length; i++) t.true(byMacs[i]!.expectedMacs <= byMacs[i - 1]!.expectedMacs + 1e-3);
});

/** Accuracy drop against the final exit plus z standard errors of that paired difference, computed here from first principles. */
function dropBound(points: OperatingPoint[], point: OperatingPoint, z: number): number {
  const finalPoint = points.find((candidate) => candidate.name === 'full')!;
  const finalRight = replay(data, finalPoint).predictions.map((prediction, sample) => (prediction === data.labels[sample] ? 1 : 0));
  const differences = replay(data, point).predictions.map((prediction, sample) => finalRight[sample]! - (prediction === data.labels[sample] ? 1 : 0));
  const mean = differences.reduce((a, b) => a + b, 0) / differences.length;
  const variance = differences.reduce((a, d) => a + (d - mean) ** 2, 0) / differences.length;
  return mean + z * Math.sqrt(variance / differences.length);
}

test('full never exits early and balanced is the cheapest point whose drop, plus z standard errors, is within 1 point', (t) => {
  const full = result.points.find((point) => point.name === 'full')!;
  t.deepEqual(full.exitHistogram, [0, 0, 0, 600]);
  t.is(full.expectedLatencyMs, data.cumulativeLatencyMs[3]!);
  t.is(full.validationAccuracy, result.finalExitAccuracy);

  const balancedLatency: number[] = [];
  for (const z of [0, 0.5, 1.96]) {
    const points = z === 1.96 ? result.points : calibrateOperatingPoints(data, { balancedConfidenceZ: z }).points;
    const balanced = points.find((point) => point.name === 'balanced')!;
    t.true(dropBound(points, balanced, z) <= 0.01 + 1e-12, `z ${z}`);
    const eligible = points.filter((point) => point.name !== 'balanced' && dropBound(points, point, z) <= 0.01 + 1e-12);
    t.true(eligible.some((point) => point.name === 'full'), `z ${z}`);
    for (const point of eligible) t.true(balanced.expectedLatencyMs <= point.expectedLatencyMs, `${point.name}, z ${z}`);
    t.true(balanced.expectedLatencyMs <= full.expectedLatencyMs, `z ${z}`);
    balancedLatency.push(balanced.expectedLatencyMs);
  }
  t.true(balancedLatency[0]! < full.expectedLatencyMs);
  // Asking for more confidence can only cost more; on 600 samples a 95% bound leaves nothing cheaper than the full model.
  t.true(balancedLatency[0]! <= balancedLatency[1]! && balancedLatency[1]! <= balancedLatency[2]!);
  t.is(balancedLatency[2], full.expectedLatencyMs);
  // With ten times the samples the standard error shrinks and early exits qualify again.
  const larger = syntheticValidation({ samples: 6000, exits: 4, classes: 10, seed: 7 });
  const largerPoints = calibrateOperatingPoints(larger, { policies: ['max-probability'] }).points;
  t.true(largerPoints.find((point) => point.name === 'balanced')!.expectedLatencyMs < larger.cumulativeLatencyMs[3]!);
  t.throws(() => calibrateOperatingPoints(data, { balancedConfidenceZ: -1 }), { instanceOf: RangeError, message: /balancedConfidenceZ = -1 is not a finite number >= 0/ });
});

test('static exits stop every sample at one exit', (t) => {
  t.deepEqual(result.staticExits.map((point) => point.name), ['exit-0', 'exit-1', 'exit-2', 'exit-3']);
  result.staticExits.forEach((point, exit) => {
    t.is(point.exitHistogram[exit], 600);
    t.is(point.expectedLatencyMs, data.cumulativeLatencyMs[exit]!);
  });
  // The synthetic heads get better with depth, as real ones do.
  const accuracies = result.staticExits.map((point) => point.validationAccuracy);
  t.deepEqual(accuracies, [...accuracies].sort((a, b) => a - b));
});

test('calibration is deterministic', (t) => {
  t.deepEqual(calibrateOperatingPoints(data), result);
});

test('maxExit caps every point, and the targets are relative to that exit', (t) => {
  const capped = calibrateOperatingPoints(data, { maxExit: 2, deltas: [-1, -3] });
  t.is(capped.finalExitAccuracy, result.staticExits[2]!.validationAccuracy);
  for (const point of capped.points) {
    t.is(point.maxExit, 2);
    t.is(point.exitHistogram[3], 0, point.name);
  }
  t.is(capped.points.find((point) => point.name === 'full')!.expectedLatencyMs, data.cumulativeLatencyMs[2]!);
  t.deepEqual(capped.points.filter((point) => point.policy === 'entropy').map((point) => point.name), ['entropy@-1.0', 'entropy@-3.0']);
});

test('invalid calibration inputs are rejected', (t) => {
  t.throws(() => calibrateOperatingPoints(data, { deltas: [0.5] }), { instanceOf: RangeError, message: /delta 0.5 .* <= 0/ });
  t.throws(() => calibrateOperatingPoints({ ...data, labels: [1, 2] }), {
    instanceOf: RangeError,
    message: 'labels has 2 entries, expected 600 (one per sample)',
  });
  t.throws(() => calibrateOperatingPoints({ ...data, cumulativeLatencyMs: [1, 2, 3] }), { message: /3 entries, expected 4/ });
  t.throws(() => calibrateOperatingPoints(data, { maxExit: 4 }), { message: 'maxExit = 4 is outside [0, 3]' });
  t.throws(() => calibrateOperatingPoints(data, { patienceValues: [0] }), { message: 'patience = 0 is not an integer >= 1' });
});

// A 3-exit toy problem small enough to search exhaustively.
const toy = syntheticValidation({ samples: 90, exits: 3, classes: 5, seed: 11 });
const toyDeltas = [-0.5, -2, -5, -10];
const toyResult = calibrateOperatingPoints(toy, { deltas: toyDeltas });

/** Cheapest expected latency among threshold pairs for exits 0 and 1 whose accuracy reaches each target. */
function bruteForce(policy: ExitPolicyName, grid0: number[], grid1: number[], patience?: number): number[] {
  const best = toyDeltas.map(() => Infinity);
  for (const first of grid0) {
    for (const second of grid1) {
      const point = { name: 'probe', policy, thresholds: [first, second, 0.5], ...(patience ? { patience } : {}), maxExit: 2 };
      const { accuracy, latency } = replay(toy, point as OperatingPoint);
      toyDeltas.forEach((delta, i) => {
        if (accuracy >= toyResult.finalExitAccuracy + delta / 100 - 1e-12) best[i] = Math.min(best[i]!, latency);
      });
    }
  }
  return best;
}

const coarseGrid = Array.from({ length: 21 }, (_, i) => i / 20);

test('on a 3-exit toy problem calibration is never costlier than a brute-force grid search', (t) => {
  const cases: [ExitPolicyName, number[], number | undefined][] = [
    ['max-probability', coarseGrid, undefined],
    ['entropy', coarseGrid, undefined],
    // With patience 2 exit 0 can never stop, so only exit 1's confidence gate matters.
    ['patience', [0], 2],
  ];
  for (const [policy, grid0, patience] of cases) {
    const brute = bruteForce(policy, grid0, coarseGrid, patience);
    const points = toyResult.points.filter((point) => point.name.startsWith(`${policy}@`));
    points.forEach((point, i) => {
      t.true(point.expectedLatencyMs <= brute[i]! + 1e-9, `${point.name}: ${point.expectedLatencyMs} vs brute force ${brute[i]}`);
    });
  }
});

test('on the toy problem max-probability calibration finds the optimum over every threshold that matters', (t) => {
  // Only thresholds equal to an observed score (or 1, exit off) give distinct outcomes, so this grid is exhaustive.
  const observed = (exit: number) => [1, ...new Set(toy.perExitProbabilities.map((exits) => Math.max(...exits[exit]!)))];
  const exhaustive = bruteForce('max-probability', observed(0), observed(1));
  const points = toyResult.points.filter((point) => point.name.startsWith('max-probability@'));
  points.forEach((point, i) => t.true(Math.abs(point.expectedLatencyMs - exhaustive[i]!) < 1e-9, point.name));
});
