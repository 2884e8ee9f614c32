import test from 'ava';
import { createExitPolicy } from '../agent/exit-policy/policy.js';
import { reusedEarlierExit, withTemporalReuse } from '../agent/exit-policy/temporal-reuse.js';

/* Temporal exit reuse: after a small change, an exit that agrees with a confident previous answer is trusted. */

// Thresholds of 1: the operating point alone would never stop before the last exit.
const strict = createExitPolicy({ policy: 'max-probability', thresholds: [1, 1, 1, 1] }, 4);
const settings = { temporalReuse: true, temporalMaxChange: 0.02, temporalMinConfidence: 0.9 };
const probabilities = (top: number, p = 0.55) => Float32Array.from({ length: 10 }, (_, i) => (i === top ? p : (1 - p) / 9));

test('a small change after a confident answer: the first exit agreeing with it stops the frame, one that disagrees does not', (t) => {
  const policy = withTemporalReuse(strict, settings, 0.01, { label: 3, confidence: 0.95 });
  t.false(policy.decide({ exitIndex: 0, probabilities: probabilities(5), history: [] }), 'exit 0 says 5, the previous answer was 3: go deeper');
  t.false(reusedEarlierExit(policy));
  t.true(policy.decide({ exitIndex: 1, probabilities: probabilities(3), history: [5] }), 'exit 1 agrees: trusted');
  t.true(reusedEarlierExit(policy));
  t.is(policy.name, strict.name, 'logged under the operating point\'s policy');
});

test('no reuse after a large change, after an unsure answer, without a previous answer, or when turned off', (t) => {
  const agreeing = { exitIndex: 0, probabilities: probabilities(3), history: [] };
  for (const [why, policy] of [
    ['large change', withTemporalReuse(strict, settings, 0.1, { label: 3, confidence: 0.95 })],
    ['unsure previous answer', withTemporalReuse(strict, settings, 0.01, { label: 3, confidence: 0.6 })],
    ['no previous answer', withTemporalReuse(strict, settings, 0.01, undefined)],
    ['turned off', withTemporalReuse(strict, { ...settings, temporalReuse: false }, 0.01, { label: 3, confidence: 0.95 })],
  ] as const) {
    t.is(policy, strict, why);
    t.false(policy.decide(agreeing), why);
  }
});

test('the operating point still stops a frame by its own rule, and that is not counted as reuse', (t) => {
  const lenient = createExitPolicy({ policy: 'max-probability', thresholds: [0.5, 0.5, 0.5, 0.5] }, 4);
  const policy = withTemporalReuse(lenient, settings, 0.01, { label: 3, confidence: 0.95 });
  t.true(policy.decide({ exitIndex: 0, probabilities: probabilities(7, 0.8), history: [] }));
  t.false(reusedEarlierExit(policy));
});
