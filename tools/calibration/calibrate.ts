/**
 * Threshold calibration: from recorded per-exit head outputs on a validation
 * split, find for each policy and each target accuracy the thresholds that
 * reach the target at the least expected cost.
 *
 * Each exit's candidate thresholds are quantiles of that exit's confidence
 * score (all distinct scores when there are few), ordered from "exit off" to
 * "most permissive". A greedy pass lowers, one candidate at a time, the
 * threshold that saves the most cost per correct answer lost; a refinement
 * pass then optimizes one exit exactly with the others fixed, and when that
 * converges, every pair of exits jointly (all candidates of one, the exact best
 * of the other). With three exits the pair pass is an exhaustive search over
 * the grid.
 */
import {
  EXIT_POLICY_NAMES,
  createExitPolicy,
  exitEvidence,
  meetsExitRule,
  simulateExits,
  skippedExits,
  type ExitEvidence,
  type ExitPolicyName,
} from '../../agent/exit-policy/policy.js';

export interface OperatingPoint {
  name: string;
  policy: ExitPolicyName;
  /** One per exit; exits from maxExit on are ignored and set to the "exit off" value. */
  thresholds: number[];
  patience?: number;
  /** Deepest 0-based exit allowed: samples that got that far stop there. */
  maxExit: number;
  /** The accuracy the point was calibrated to reach, when it was calibrated for one. */
  targetAccuracy?: number;
  validationAccuracy: number;
  expectedMacs: number;
  expectedLatencyMs: number;
  /** Validation samples that stopped at each exit. */
  exitHistogram: number[];
}

export interface CalibrationData {
  /** Head outputs as probabilities, [sample][exit]. */
  perExitProbabilities: readonly (readonly Float32Array[])[];
  labels: ArrayLike<number>;
  /** Cost of running the model up to and including exit i (segments and that exit's head). */
  cumulativeMacs: readonly number[];
  cumulativeLatencyMs: readonly number[];
  /**
   * Exits whose segment nothing downstream reads (a glance network's): a point
   * that switches one off does not pay for it (see skippedExits).
   */
  branchExits?: readonly number[];
}

export interface CalibrationOptions {
  /** Target accuracies, in percentage points relative to the final exit's; all <= 0. */
  deltas?: readonly number[];
  policies?: readonly ExitPolicyName[];
  /** Patience values tried; each target keeps the cheapest. Values that cannot exit before maxExit are skipped. */
  patienceValues?: readonly number[];
  maxExit?: number;
  /** Candidate thresholds per exit, at most. */
  gridSize?: number;
  /** The cost minimized; the other one breaks ties. */
  objective?: 'latency' | 'macs';
  /**
   * Standard errors of the validation estimate kept in reserve when choosing
   * "balanced": its accuracy drop against the final exit, plus this many
   * standard errors of that drop, must stay within the 1-point tolerance
   * (default 1.96, a 95% interval). 0 trusts the validation split as is.
   */
  balancedConfidenceZ?: number;
}

export interface CalibrationResult {
  /** Accuracy of always running to maxExit. */
  finalExitAccuracy: number;
  /** `<policy>@<delta>` points (highest target first), then `full` and `balanced`. */
  points: OperatingPoint[];
  /** Always stopping at exit j, for each j <= maxExit: the baselines early exiting is measured against. */
  staticExits: OperatingPoint[];
}

export const DEFAULT_DELTAS: readonly number[] = [-0.5, -1, -2, -5];
export const DEFAULT_PATIENCE_VALUES: readonly number[] = [2, 3];
export const DEFAULT_GRID_SIZE = 128;
/** `balanced` may give up this much accuracy (percentage points) against the final exit. */
export const BALANCED_TOLERANCE_POINTS = 1;
export const DEFAULT_BALANCED_CONFIDENCE_Z = 1.96;
/**
 * Targets searched only as candidates for "balanced", finer than the stored
 * ladder: where the cost curve is flat, a slightly higher target costs almost
 * nothing and survives unseen data better.
 */
const BALANCED_CANDIDATE_DELTAS: readonly number[] = Array.from({ length: 10 }, (_, i) => -(i + 1) / 10);
const MAX_REFINEMENT_ROUNDS = 50;

type Rule = { policy: ExitPolicyName; patience?: number };

function offThreshold(policy: ExitPolicyName): number {
  return policy === 'entropy' ? 0 : 1;
}

/** Validation data reduced to what the search needs, computed once. */
interface Problem {
  sampleCount: number;
  exitCount: number;
  maxExit: number;
  /** [exit][sample], exits 0..maxExit */
  evidence: ExitEvidence[][];
  correctAt: Uint8Array[];
  objectiveCost: readonly number[];
  secondaryCost: readonly number[];
}

/** Candidate thresholds of each free exit (0..maxExit-1), and where each sample starts passing. */
interface Grid {
  rule: Rule;
  candidates: number[][];
  /** [exit][sample]: the first candidate index at which the sample stops there; candidates.length if none. */
  firstPass: Int32Array[];
  /** Samples of each exit ordered by firstPass, with bucket c at bucketOrder[bucketStart[c]..bucketStart[c+1]). */
  bucketOrder: Int32Array[];
  bucketStart: Int32Array[];
}

interface Key {
  cost: number;
  secondary: number;
  correct: number;
}

function isBetter(a: Key, b: Key): boolean {
  if (a.cost !== b.cost) return a.cost < b.cost;
  if (a.secondary !== b.secondary) return a.secondary < b.secondary;
  return a.correct > b.correct;
}

function checkCosts(name: string, costs: readonly number[], exitCount: number): void {
  if (costs.length !== exitCount) throw new RangeError(`${name} has ${costs.length} entries, expected ${exitCount} (one per exit)`);
  costs.forEach((value, index) => {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name}[${index}] = ${value} is not a finite number >= 0`);
  });
}

function buildProblem(data: CalibrationData, maxExit: number, objective: 'latency' | 'macs'): Problem {
  const exitCount = data.cumulativeMacs.length;
  const sampleCount = data.perExitProbabilities.length;
  const evidence: ExitEvidence[][] = Array.from({ length: maxExit + 1 }, () => []);
  const correctAt = Array.from({ length: maxExit + 1 }, () => new Uint8Array(sampleCount));
  data.perExitProbabilities.forEach((exits, sample) => {
    if (exits.length !== exitCount) {
      throw new RangeError(`sample ${sample} has outputs for ${exits.length} exits, expected ${exitCount}`);
    }
    const label = data.labels[sample]!;
    const history: number[] = [];
    for (let exit = 0; exit <= maxExit; exit++) {
      const found = exitEvidence(exits[exit]!, history);
      evidence[exit]!.push(found);
      correctAt[exit]![sample] = found.top1 === label ? 1 : 0;
      history.push(found.top1);
    }
  });
  const [objectiveCost, secondaryCost] =
    objective === 'latency' ? [data.cumulativeLatencyMs, data.cumulativeMacs] : [data.cumulativeMacs, data.cumulativeLatencyMs];
  return { sampleCount, exitCount, maxExit, evidence, correctAt, objectiveCost, secondaryCost };
}

/**
 * Quantiles of the scores, strictest first. Scores at the extreme (max p = 1,
 * entropy = 0) are nudged to the nearest value that is not the "exit off"
 * threshold, so that those samples can still be let through.
 */
function candidateThresholds(rule: Rule, scores: number[], gridSize: number): number[] {
  const entropy = rule.policy === 'entropy';
  const sorted = [...scores].sort((a, b) => (entropy ? a - b : b - a));
  const distinct = sorted.filter((value, i) => i === 0 || value !== sorted[i - 1]);
  const picked =
    distinct.length <= gridSize
      ? distinct
      : Array.from({ length: gridSize }, (_, i) => sorted[Math.ceil(((i + 1) * sorted.length) / gridSize) - 1]!);
  const nudged = picked.map((value) =>
    entropy ? (value <= 0 ? Number.MIN_VALUE : value) : value >= 1 ? 1 - Number.EPSILON / 2 : value,
  );
  const candidates = [offThreshold(rule.policy)];
  for (const value of nudged) if (value !== candidates[candidates.length - 1]) candidates.push(value);
  return candidates;
}

function buildGrid(problem: Problem, rule: Rule, gridSize: number): Grid {
  const candidates: number[][] = [];
  const firstPass: Int32Array[] = [];
  const bucketOrder: Int32Array[] = [];
  const bucketStart: Int32Array[] = [];
  for (let exit = 0; exit < problem.maxExit; exit++) {
    const evidence = problem.evidence[exit]!;
    const eligible = rule.policy === 'patience' ? evidence.filter((e) => e.agreeingRun >= rule.patience!) : evidence;
    const scores = eligible.map((e) => (rule.policy === 'entropy' ? e.normalizedEntropy : e.maxProbability));
    const exitCandidates = candidateThresholds(rule, scores, gridSize);
    const length = exitCandidates.length;
    // Passing is monotone along the candidates, so binary search with the runtime's own rule.
    const passes = new Int32Array(problem.sampleCount);
    evidence.forEach((e, sample) => {
      let low = 1;
      let high = length;
      while (low < high) {
        const middle = (low + high) >> 1;
        if (meetsExitRule(rule, e, exitCandidates[middle]!)) high = middle;
        else low = middle + 1;
      }
      passes[sample] = low;
    });
    const start = new Int32Array(length + 2);
    for (const c of passes) start[c + 1]!++;
    for (let c = 0; c <= length; c++) start[c + 1]! += start[c]!;
    const fill = start.slice(0, length + 1);
    const order = new Int32Array(problem.sampleCount);
    passes.forEach((c, sample) => (order[fill[c]!++] = sample));
    candidates.push(exitCandidates);
    firstPass.push(passes);
    bucketOrder.push(order);
    bucketStart.push(start);
  }
  return { rule, candidates, firstPass, bucketOrder, bucketStart };
}

/** A threshold assignment (candidate index per free exit) and where each sample stops under it. */
class ThresholdSearch {
  readonly chosen: Int32Array;
  private readonly exitOf: Int32Array;
  private readonly fallback: Int32Array;
  private readonly free: number;

  constructor(
    private readonly problem: Problem,
    private readonly grid: Grid,
    private readonly requiredCorrect: number,
    start: Int32Array,
  ) {
    this.free = problem.maxExit;
    this.chosen = Int32Array.from(start);
    this.exitOf = new Int32Array(problem.sampleCount);
    this.fallback = new Int32Array(problem.sampleCount);
    this.recomputeExits();
  }

  private firstPassingExit(sample: number, from: number): number {
    for (let exit = from; exit < this.free; exit++) {
      if (this.chosen[exit]! >= this.grid.firstPass[exit]![sample]!) return exit;
    }
    return this.free;
  }

  private recomputeExits(): void {
    for (let sample = 0; sample < this.problem.sampleCount; sample++) this.exitOf[sample] = this.firstPassingExit(sample, 0);
  }

  private keyOf(histogram: Float64Array, correct: number): Key {
    let cost = 0;
    let secondary = 0;
    for (let exit = 0; exit <= this.free; exit++) {
      cost += histogram[exit]! * this.problem.objectiveCost[exit]!;
      secondary += histogram[exit]! * this.problem.secondaryCost[exit]!;
    }
    return { cost, secondary, correct };
  }

  key(): Key {
    const histogram = new Float64Array(this.free + 1);
    let correct = 0;
    for (let sample = 0; sample < this.problem.sampleCount; sample++) {
      const exit = this.exitOf[sample]!;
      histogram[exit]!++;
      correct += this.problem.correctAt[exit]![sample]!;
    }
    return this.keyOf(histogram, correct);
  }

  /**
   * Lowers one exit's threshold at a time to its next candidate that changes
   * anything, choosing the move that saves the most cost per correct answer
   * lost, while the accuracy stays at the target.
   */
  greedy(): void {
    const { correctAt, objectiveCost } = this.problem;
    let correct = this.key().correct;
    for (;;) {
      let best: { exit: number; candidate: number; ratio: number; saving: number; correctChange: number } | undefined;
      for (let exit = 0; exit < this.free; exit++) {
        const order = this.grid.bucketOrder[exit]!;
        const start = this.grid.bucketStart[exit]!;
        const length = this.grid.candidates[exit]!.length;
        let moved = 0;
        let correctChange = 0;
        let saving = 0;
        let candidate = this.chosen[exit]! + 1;
        for (; candidate < length; candidate++) {
          for (let k = start[candidate]!; k < start[candidate + 1]!; k++) {
            const sample = order[k]!;
            const current = this.exitOf[sample]!;
            if (current <= exit) continue;
            moved++;
            correctChange += correctAt[exit]![sample]! - correctAt[current]![sample]!;
            saving += objectiveCost[current]! - objectiveCost[exit]!;
          }
          if (moved > 0) break;
        }
        if (moved === 0 || saving <= 0 || correct + correctChange < this.requiredCorrect) continue;
        const ratio = correctChange >= 0 ? Infinity : saving / -correctChange;
        if (!best || ratio > best.ratio || (ratio === best.ratio && saving > best.saving)) {
          best = { exit, candidate, ratio, saving, correctChange };
        }
      }
      if (!best) return;
      const order = this.grid.bucketOrder[best.exit]!;
      const start = this.grid.bucketStart[best.exit]!;
      for (let k = start[this.chosen[best.exit]! + 1]!; k < start[best.candidate + 1]!; k++) {
        const sample = order[k]!;
        if (this.exitOf[sample]! > best.exit) this.exitOf[sample] = best.exit;
      }
      this.chosen[best.exit] = best.candidate;
      correct += best.correctChange;
    }
  }

  /** The best candidate for one exit with the others fixed, over all its candidates; undefined if none reaches the target. */
  private sweep(exit: number): { candidate: number; key: Key } | undefined {
    const { correctAt, sampleCount } = this.problem;
    const histogram = new Float64Array(this.free + 1);
    let correct = 0;
    for (let sample = 0; sample < sampleCount; sample++) {
      const current = this.exitOf[sample]!;
      // Samples stopping before this exit never see its threshold; the others fall back to their next passing exit.
      const settled = current < exit ? current : current > exit ? current : this.firstPassingExit(sample, exit + 1);
      this.fallback[sample] = settled;
      histogram[settled]!++;
      correct += correctAt[settled]![sample]!;
    }
    const order = this.grid.bucketOrder[exit]!;
    const start = this.grid.bucketStart[exit]!;
    const length = this.grid.candidates[exit]!.length;
    let best: { candidate: number; key: Key } | undefined;
    for (let candidate = 0; candidate < length; candidate++) {
      for (let k = start[candidate]!; k < start[candidate + 1]!; k++) {
        const sample = order[k]!;
        const settled = this.fallback[sample]!;
        if (settled < exit) continue;
        histogram[settled]!--;
        histogram[exit]!++;
        correct += correctAt[exit]![sample]! - correctAt[settled]![sample]!;
      }
      if (correct < this.requiredCorrect) continue;
      const key = this.keyOf(histogram, correct);
      if (!best || isBetter(key, best.key)) best = { candidate, key };
    }
    return best;
  }

  private coordinatePass(): boolean {
    let improved = false;
    for (let exit = 0; exit < this.free; exit++) {
      const found = this.sweep(exit);
      if (found && isBetter(found.key, this.key())) {
        this.chosen[exit] = found.candidate;
        this.recomputeExits();
        improved = true;
      }
    }
    return improved;
  }

  private pairPass(): boolean {
    let improved = false;
    for (let first = 0; first < this.free; first++) {
      for (let second = first + 1; second < this.free; second++) {
        const kept = { first: this.chosen[first]!, second: this.chosen[second]! };
        let best = { first: kept.first, second: kept.second, key: this.key() };
        this.chosen[first] = 0;
        this.recomputeExits();
        const order = this.grid.bucketOrder[first]!;
        const start = this.grid.bucketStart[first]!;
        for (let candidate = 0; candidate < this.grid.candidates[first]!.length; candidate++) {
          // Lowering `first` one candidate only stops that candidate's bucket there.
          this.chosen[first] = candidate;
          for (let k = start[candidate]!; k < start[candidate + 1]!; k++) {
            const sample = order[k]!;
            if (this.exitOf[sample]! > first) this.exitOf[sample] = first;
          }
          const found = this.sweep(second);
          if (found && isBetter(found.key, best.key)) best = { first: candidate, second: found.candidate, key: found.key };
        }
        this.chosen[first] = best.first;
        this.chosen[second] = best.second;
        this.recomputeExits();
        if (best.first !== kept.first || best.second !== kept.second) improved = true;
      }
    }
    return improved;
  }

  refine(): void {
    for (let round = 0; round < MAX_REFINEMENT_ROUNDS; round++) {
      if (this.coordinatePass()) continue;
      if (!this.pairPass()) return;
    }
  }
}

/** For each required correct count (highest first), the best assignment found; each search also starts from the previous one, so cost cannot rise as the target falls. */
function searchTargets(problem: Problem, grid: Grid, requiredCorrects: readonly number[]): { chosen: Int32Array; key: Key }[] {
  const results: { chosen: Int32Array; key: Key }[] = [];
  let previous: Int32Array | undefined;
  for (const required of requiredCorrects) {
    let search = new ThresholdSearch(problem, grid, required, new Int32Array(problem.maxExit));
    search.greedy();
    if (previous) {
      const warm = new ThresholdSearch(problem, grid, required, previous);
      warm.greedy();
      if (isBetter(warm.key(), search.key())) search = warm;
    }
    search.refine();
    results.push({ chosen: search.chosen, key: search.key() });
    previous = search.chosen;
  }
  return results;
}

function thresholdsFor(problem: Problem, grid: Grid, chosen: Int32Array): number[] {
  return Array.from({ length: problem.exitCount }, (_, exit) =>
    exit < problem.maxExit ? grid.candidates[exit]![chosen[exit]!]! : offThreshold(grid.rule.policy),
  );
}

/** Cumulative costs when the given exits' segments and heads do not run. */
export function costsWithout(cumulative: readonly number[], skipped: readonly number[]): number[] {
  let saved = 0;
  return cumulative.map((cost, exit) => {
    const paid = cost - saved;
    if (skipped.includes(exit)) saved += cost - (exit > 0 ? cumulative[exit - 1]! : 0);
    return paid;
  });
}

function evaluatePoint(
  data: CalibrationData,
  point: { name: string; policy: ExitPolicyName; thresholds: number[]; patience?: number; maxExit: number; targetAccuracy?: number },
): OperatingPoint {
  const policy = createExitPolicy(point, data.cumulativeMacs.length);
  const { exitTaken, predictions } = simulateExits(policy, data.perExitProbabilities, point.maxExit);
  const exitHistogram = new Array<number>(data.cumulativeMacs.length).fill(0);
  let correct = 0;
  exitTaken.forEach((exit, sample) => {
    exitHistogram[exit]!++;
    if (predictions[sample] === data.labels[sample]) correct++;
  });
  const count = exitTaken.length;
  const skipped = skippedExits(policy, data.branchExits ?? [], point.maxExit);
  // From the histogram, so that a point stopping everything at exit j costs exactly cost[j].
  const expected = (costs: readonly number[]) => {
    const paid = costsWithout(costs, skipped);
    return exitHistogram.reduce((sum, n, exit) => sum + (n / count) * paid[exit]!, 0);
  };
  return {
    name: point.name,
    policy: point.policy,
    thresholds: point.thresholds,
    ...(point.patience !== undefined ? { patience: point.patience } : {}),
    maxExit: point.maxExit,
    ...(point.targetAccuracy !== undefined ? { targetAccuracy: point.targetAccuracy } : {}),
    validationAccuracy: correct / count,
    expectedMacs: expected(data.cumulativeMacs),
    expectedLatencyMs: expected(data.cumulativeLatencyMs),
    exitHistogram,
  };
}

function formatDelta(delta: number): string {
  return delta === 0 ? '0.0' : delta.toFixed(1);
}

/** Smallest correct count whose accuracy is at least `final - points`; the epsilon absorbs float error in points * N / 100. */
function requiredCorrectFor(finalCorrect: number, sampleCount: number, deltaPoints: number): number {
  return Math.max(0, Math.ceil(finalCorrect + (deltaPoints / 100) * sampleCount - 1e-9));
}

/**
 * The point's accuracy drop against always running to maxExit, plus z standard
 * errors. The drop is a paired difference on the same samples, so its error
 * comes only from the samples where the two disagree on correctness.
 */
function accuracyDropBound(data: CalibrationData, problem: Problem, point: OperatingPoint, z: number): number {
  const policy = createExitPolicy(point, data.cumulativeMacs.length);
  const { predictions } = simulateExits(policy, data.perExitProbabilities, point.maxExit);
  const finalCorrect = problem.correctAt[problem.maxExit]!;
  let sum = 0;
  let sumOfSquares = 0;
  predictions.forEach((prediction, sample) => {
    const difference = finalCorrect[sample]! - (prediction === data.labels[sample] ? 1 : 0);
    sum += difference;
    sumOfSquares += difference * difference;
  });
  const count = predictions.length;
  const mean = sum / count;
  const standardError = Math.sqrt(Math.max(0, sumOfSquares / count - mean * mean) / count);
  return mean + z * standardError;
}

export function calibrateOperatingPoints(data: CalibrationData, options: CalibrationOptions = {}): CalibrationResult {
  const exitCount = data.cumulativeMacs.length;
  if (exitCount === 0) throw new RangeError('cumulativeMacs is empty: expected one entry per exit');
  checkCosts('cumulativeMacs', data.cumulativeMacs, exitCount);
  checkCosts('cumulativeLatencyMs', data.cumulativeLatencyMs, exitCount);
  const sampleCount = data.perExitProbabilities.length;
  if (sampleCount === 0) throw new RangeError('no validation samples');
  if (data.labels.length !== sampleCount) {
    throw new RangeError(`labels has ${data.labels.length} entries, expected ${sampleCount} (one per sample)`);
  }
  const maxExit = options.maxExit ?? exitCount - 1;
  if (!Number.isInteger(maxExit) || maxExit < 0 || maxExit >= exitCount) {
    throw new RangeError(`maxExit = ${maxExit} is outside [0, ${exitCount - 1}]`);
  }
  const gridSize = options.gridSize ?? DEFAULT_GRID_SIZE;
  if (!Number.isInteger(gridSize) || gridSize < 1) throw new RangeError(`gridSize = ${gridSize} is not an integer >= 1`);
  const deltas = [...new Set(options.deltas ?? DEFAULT_DELTAS)].sort((a, b) => b - a);
  for (const delta of deltas) {
    if (!Number.isFinite(delta) || delta > 0) throw new RangeError(`delta ${delta} is not a finite number of points <= 0`);
  }
  const policies = options.policies ?? EXIT_POLICY_NAMES;
  for (const policy of policies) {
    if (!EXIT_POLICY_NAMES.includes(policy)) throw new RangeError(`policy "${policy}" is not one of ${EXIT_POLICY_NAMES.join(', ')}`);
  }
  const patienceValues = options.patienceValues ?? DEFAULT_PATIENCE_VALUES;
  for (const patience of patienceValues) {
    if (!Number.isInteger(patience) || patience < 1) throw new RangeError(`patience = ${patience} is not an integer >= 1`);
  }

  const problem = buildProblem(data, maxExit, options.objective ?? 'latency');
  let finalCorrect = 0;
  for (let sample = 0; sample < sampleCount; sample++) finalCorrect += problem.correctAt[maxExit]![sample]!;
  const finalExitAccuracy = finalCorrect / sampleCount;
  const z = options.balancedConfidenceZ ?? DEFAULT_BALANCED_CONFIDENCE_Z;
  if (!(Number.isFinite(z) && z >= 0)) throw new RangeError(`balancedConfidenceZ = ${z} is not a finite number >= 0`);
  const searched = [...new Set([...deltas, ...BALANCED_CANDIDATE_DELTAS])].sort((a, b) => b - a);
  const requiredCorrects = searched.map((delta) => requiredCorrectFor(finalCorrect, sampleCount, delta));

  const points: OperatingPoint[] = [];
  const balancedCandidates: OperatingPoint[] = [];
  for (const policy of policies) {
    // Patience k can only stop early if some exit before maxExit has k exits up to and including it.
    const rules: Rule[] =
      policy === 'patience' ? patienceValues.filter((k) => k <= maxExit).map((patience) => ({ policy, patience })) : [{ policy }];
    if (rules.length === 0) continue;
    const perRule = rules.map((rule) => {
      const grid = buildGrid(problem, rule, gridSize);
      return { grid, results: searchTargets(problem, grid, requiredCorrects) };
    });
    searched.forEach((delta, target) => {
      let best = perRule[0]!;
      for (const candidate of perRule) if (isBetter(candidate.results[target]!.key, best.results[target]!.key)) best = candidate;
      const found = best.results[target]!;
      const point = evaluatePoint(data, {
        name: `${policy}@${formatDelta(delta)}`,
        policy,
        thresholds: thresholdsFor(problem, best.grid, found.chosen),
        ...(best.grid.rule.patience !== undefined ? { patience: best.grid.rule.patience } : {}),
        maxExit,
        // A weak final exit (tiny data) can put the target below zero, which every point meets.
        targetAccuracy: Math.max(0, finalExitAccuracy + delta / 100),
      });
      // The replay through the real policy must agree with the search's bookkeeping.
      if (Math.round(point.validationAccuracy * sampleCount) !== found.key.correct) {
        throw new Error(`calibration bookkeeping disagrees with simulateExits for ${point.name}`);
      }
      balancedCandidates.push(point);
      if (deltas.includes(delta)) points.push(point);
    });
  }

  const staticExit = (exit: number, name: string) =>
    evaluatePoint(data, { name, policy: 'max-probability', thresholds: new Array<number>(exitCount).fill(1), maxExit: exit });
  const staticExits = Array.from({ length: maxExit + 1 }, (_, exit) => staticExit(exit, `exit-${exit}`));
  const full = staticExit(maxExit, 'full');
  points.push(full);

  let balanced = full;
  for (const point of balancedCandidates) {
    if (accuracyDropBound(data, problem, point, z) > BALANCED_TOLERANCE_POINTS / 100) continue;
    const cheaper =
      point.expectedLatencyMs < balanced.expectedLatencyMs ||
      (point.expectedLatencyMs === balanced.expectedLatencyMs && point.expectedMacs < balanced.expectedMacs);
    if (cheaper) balanced = point;
  }
  points.push({
    ...balanced,
    name: 'balanced',
    targetAccuracy: Math.max(0, finalExitAccuracy - BALANCED_TOLERANCE_POINTS / 100),
    thresholds: [...balanced.thresholds],
    exitHistogram: [...balanced.exitHistogram],
  });

  return { finalExitAccuracy, points, staticExits };
}
