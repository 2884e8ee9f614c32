import test from 'ava';
import { createExitPolicy, simulateExits, type ExitPolicy } from '../agent/exit-policy/policy.js';
import {
  argmax,
  dequantizeSoftmax,
  maxProbability,
  normalizedEntropy,
  softmaxFromLogits,
} from '../agent/exit-policy/probabilities.js';

const p = (...values: number[]) => Float32Array.from(values);
const close = (actual: number, expected: number, tolerance = 1e-6) => Math.abs(actual - expected) <= tolerance;

test('dequantizeSoftmax maps int8 softmax codes to probabilities that sum to 1', (t) => {
  // TFLite's int8 softmax output: scale 1/256, zero point -128, so code c means (c + 128) / 256.
  const codes = Int8Array.from([64, -64, -128, -128]); // 192/256 and 64/256: already sums to 1
  const probabilities = dequantizeSoftmax(codes, 1 / 256, -128);
  t.deepEqual([...probabilities], [0.75, 0.25, 0, 0]);

  // 128/256 + 64/256 = 0.75 before renormalizing: 2/3 and 1/3 after.
  const short = dequantizeSoftmax(Int8Array.from([0, -64, -128]), 1 / 256, -128);
  t.true(close(short[0]!, 2 / 3) && close(short[1]!, 1 / 3) && short[2] === 0);

  const fromUint8 = dequantizeSoftmax(Uint8Array.from([255, 0]), 1 / 256, 0);
  t.deepEqual([...fromUint8], [1, 0]);
});

test('dequantizeSoftmax writes into a given buffer and rejects a bad one or a bad scale', (t) => {
  const out = new Float32Array(2);
  t.is(dequantizeSoftmax(Int8Array.from([0, 0]), 1 / 256, -128, out), out);
  t.deepEqual([...out], [0.5, 0.5]);
  t.throws(() => dequantizeSoftmax(Int8Array.from([0, 0]), 1 / 256, -128, new Float32Array(3)), {
    instanceOf: RangeError,
    message: /length 3, expected 2/,
  });
  t.throws(() => dequantizeSoftmax(Int8Array.from([0]), 0, -128), { instanceOf: RangeError, message: /scale = 0/ });
  // All codes at the zero point carry no information: uniform rather than 0/0.
  t.deepEqual([...dequantizeSoftmax(Int8Array.from([-128, -128]), 1 / 256, -128)], [0.5, 0.5]);
});

test('softmaxFromLogits matches the closed form and survives logits that would overflow exp()', (t) => {
  // Logits 0 and ln 3 give 1/4 and 3/4.
  const float = softmaxFromLogits(p(0, Math.log(3)));
  t.true(close(float[0]!, 0.25) && close(float[1]!, 0.75));

  // int8 logits with scale 0.5 and zero point 10: codes 12 and 10 are logits 1 and 0.
  const quantized = softmaxFromLogits(Int8Array.from([12, 10]), 0.5, 10);
  t.true(close(quantized[0]!, Math.E / (Math.E + 1)));

  const huge = softmaxFromLogits(p(1000, 1000, -1000));
  t.deepEqual([...huge], [0.5, 0.5, 0]);
  const wide = softmaxFromLogits(Int8Array.from([127, -128]), 10, 0);
  t.deepEqual([...wide], [1, 0]);
});

test('maxProbability, normalizedEntropy and argmax on hand-computed vectors', (t) => {
  t.is(maxProbability(p(0.1, 0.7, 0.2)), p(0.7)[0]!);
  t.true(close(normalizedEntropy(p(0.25, 0.25, 0.25, 0.25)), 1));
  t.is(normalizedEntropy(p(0, 1, 0, 0)), 0);
  // H = ln 2, ln K = ln 4.
  t.true(close(normalizedEntropy(p(0.5, 0.5, 0, 0)), 0.5));
  t.is(normalizedEntropy(p(1)), 0);
  t.is(argmax(p(0.2, 0.4, 0.4)), 1, 'ties go to the lowest index');
});

const state = (exitIndex: number, probabilities: Float32Array, history: number[] = []) => ({ exitIndex, probabilities, history });

test('max-probability stops when max p reaches the exit threshold, and always at the last exit', (t) => {
  // Values exact in float32, so "equal" really is equal.
  const policy = createExitPolicy({ policy: 'max-probability', thresholds: [0.75, 0.875, 0.5] });
  t.is(policy.name, 'max-probability');
  t.true(policy.decide(state(0, p(0.75, 0.125, 0.125))), 'equal to the threshold stops');
  t.false(policy.decide(state(0, p(0.7, 0.2, 0.1))));
  t.false(policy.decide(state(1, p(0.75, 0.125, 0.125))), 'exit 1 asks for more');
  t.true(policy.decide(state(1, p(0.0625, 0.875, 0.0625))));
  t.true(policy.decide(state(2, p(0.34, 0.33, 0.33))), 'the last exit stops whatever its threshold');
});

test('threshold 1 (max-probability, patience) and 0 (entropy) switch an exit off, even for a one-hot output', (t) => {
  const oneHot = p(0, 1, 0);
  t.false(createExitPolicy({ policy: 'max-probability', thresholds: [1, 1] }).decide(state(0, oneHot)));
  t.false(createExitPolicy({ policy: 'entropy', thresholds: [0, 0] }).decide(state(0, oneHot)));
  t.false(createExitPolicy({ policy: 'patience', patience: 1, thresholds: [1, 1] }).decide(state(0, oneHot)));
  t.true(createExitPolicy({ policy: 'max-probability', thresholds: [0.999, 1] }).decide(state(0, oneHot)));
});

test('entropy stops when the normalized entropy is at most the exit threshold', (t) => {
  const policy = createExitPolicy({ policy: 'entropy', thresholds: [0.5, 0.2, 1] });
  const half = p(0.5, 0.5, 0, 0); // normalized entropy exactly 0.5
  t.true(policy.decide(state(0, half)));
  t.false(policy.decide(state(1, half)));
  t.false(policy.decide(state(0, p(0.4, 0.3, 0.2, 0.1))), 'normalized entropy 0.92');
  t.true(policy.decide(state(1, p(0.97, 0.01, 0.01, 0.01))), 'normalized entropy 0.12');
});

test('patience stops once the top-1 class has been the same for k consecutive exits', (t) => {
  const two = createExitPolicy({ policy: 'patience', patience: 2, thresholds: [0, 0, 0, 0] });
  const votesFor3 = p(0.1, 0.1, 0.1, 0.7);
  t.is(two.patience, 2);
  t.false(two.decide(state(0, votesFor3, [])), 'one exit is a run of 1');
  t.true(two.decide(state(1, votesFor3, [3])));
  t.false(two.decide(state(1, votesFor3, [2])));
  t.true(two.decide(state(2, votesFor3, [2, 3])), 'only the run ending here counts');

  const three = createExitPolicy({ policy: 'patience', patience: 3, thresholds: [0, 0, 0, 0] });
  t.false(three.decide(state(2, votesFor3, [1, 3])));
  t.true(three.decide(state(2, votesFor3, [3, 3])));
  t.true(three.decide(state(3, votesFor3, [0, 1, 2])), 'the last exit stops regardless');

  // The optional confidence gate: agreement alone is not enough under threshold 0.75.
  const gated = createExitPolicy({ policy: 'patience', patience: 2, thresholds: [0.75, 0.75, 0.75, 0.75] });
  t.false(gated.decide(state(1, votesFor3, [3])));
  t.true(gated.decide(state(1, p(0.05, 0.05, 0.05, 0.85), [3])));
});

test('invalid thresholds are rejected with the exit index, the value and the allowed range', (t) => {
  const make = (thresholds: number[], exitCount?: number) => () =>
    createExitPolicy({ policy: 'max-probability', thresholds }, exitCount);
  t.throws(make([0.5, -0.1, 1]), { instanceOf: RangeError, message: 'threshold[1] = -0.1 is outside [0, 1]' });
  t.throws(make([0.5, 0.5, 1.5]), { instanceOf: RangeError, message: 'threshold[2] = 1.5 is outside [0, 1]' });
  t.throws(make([Number.NaN, 0.5]), { instanceOf: RangeError, message: 'threshold[0] = NaN is not a finite number in [0, 1]' });
  t.throws(make([0.5, Infinity]), { instanceOf: RangeError, message: /threshold\[1\] = Infinity .*\[0, 1\]/ });
  t.throws(make([0.5, 0.5], 3), { instanceOf: RangeError, message: 'expected 3 thresholds (one per exit), got 2' });
  t.throws(make([]), { instanceOf: RangeError, message: /got none/ });
  // The last exit's threshold is unused but still has to be valid.
  t.throws(make([0.5, 0.5, 2]), { instanceOf: RangeError, message: /threshold\[2\] = 2/ });
  t.notThrows(make([0, 1, 0.5], 3));
});

test('invalid patience, policy name and exit index are rejected', (t) => {
  t.throws(() => createExitPolicy({ policy: 'patience', patience: 0, thresholds: [0, 0] }), {
    instanceOf: RangeError,
    message: 'patience = 0 is not an integer >= 1',
  });
  t.throws(() => createExitPolicy({ policy: 'patience', patience: 1.5, thresholds: [0, 0] }), { message: /patience = 1.5/ });
  t.throws(() => createExitPolicy({ policy: 'patience', thresholds: [0, 0] }), { message: /patience = undefined/ });
  t.throws(() => createExitPolicy({ policy: 'confidence' as 'entropy', thresholds: [0, 0] }), {
    instanceOf: RangeError,
    message: /"confidence" is not one of max-probability, entropy, patience/,
  });
  const policy = createExitPolicy({ policy: 'entropy', thresholds: [0.5, 0.5] });
  t.throws(() => policy.decide(state(2, p(1, 0))), { instanceOf: RangeError, message: 'exitIndex = 2 is outside [0, 1]' });
});

test('simulateExits replays recorded outputs: exit taken, its prediction, and maxExit', (t) => {
  const confident = (cls: number) => p(...[0, 1, 2].map((k) => (k === cls ? 0.9 : 0.05)));
  const unsure = (cls: number) => p(...[0, 1, 2].map((k) => (k === cls ? 0.4 : 0.3)));
  const table = [
    [confident(0), confident(1), confident(2)], // stops at exit 0
    [unsure(1), confident(2), unsure(0)], // stops at exit 1
    [unsure(1), unsure(2), unsure(0)], // runs to the end
  ];
  const policy: ExitPolicy = createExitPolicy({ policy: 'max-probability', thresholds: [0.8, 0.8, 0.8] });
  t.deepEqual(simulateExits(policy, table, 2), { exitTaken: [0, 1, 2], predictions: [0, 2, 0] });
  t.deepEqual(simulateExits(policy, table, 0), { exitTaken: [0, 0, 0], predictions: [0, 1, 1] });

  const patience = createExitPolicy({ policy: 'patience', patience: 2, thresholds: [0, 0, 0] });
  const agreeing = [[unsure(1), unsure(1), confident(0)], [unsure(1), unsure(2), unsure(2)]];
  t.deepEqual(simulateExits(patience, agreeing, 2), { exitTaken: [1, 2], predictions: [1, 2] });

  t.throws(() => simulateExits(policy, table, 3), { instanceOf: RangeError, message: 'maxExit = 3 is outside [0, 2]' });
  t.throws(() => simulateExits(policy, [[confident(0)]], 1), { instanceOf: RangeError, message: /sample 0 has outputs for 1 exits/ });
});
