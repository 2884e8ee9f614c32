import test from 'ava';
import { EventTracker, type EventMessage, type Observation } from '../agent/events/event-tracker.js';
import { seededRandom } from './helpers/resilience.js';

const SETTINGS = { minConfidence: 0.6, endAfterS: 2, minDurationS: 1, switchMargin: 0.25 };

/** Frames at 10 a second from `from` ms, each made by `frame(i)`. */
function run(tracker: EventTracker, from: number, count: number, frame: (i: number) => Omit<Observation, 'at'>): EventMessage[] {
  const messages: EventMessage[] = [];
  for (let i = 0; i < count; i++) messages.push(...tracker.observe({ at: from + i * 100, ...frame(i) }).messages);
  return messages;
}

test('an object that comes, stays and goes makes one event: new, updates, end, all with one id', (t) => {
  const tracker = new EventTracker(SETTINGS, 3);
  const messages = [
    ...run(tracker, 0, 30, (i) => ({ label: 'deer', confidence: 0.65 + i * 0.01, exit: i % 3, motion: true })),
    // It stands still: no motion, a few frames classified when the reuse age runs out.
    ...tracker.still(3500),
    ...tracker.still(4800),
    ...tracker.still(5000),
  ];
  t.deepEqual(messages.map((m) => m.type), ['new', 'update', 'end']);
  t.is(new Set(messages.map((m) => m.event.id)).size, 1);
  const end = messages.at(-1)!.event;
  t.like(end, { start: 0, end: 2900, label: 'deer', frames: 30 });
  // The mean of 0.65, 0.66 … 0.94: what the frames said of the deer on the whole.
  t.true(Math.abs(end.confidence - 0.795) < 1e-9, String(end.confidence));
  t.deepEqual(end.exits, [10, 10, 10]);
  t.is(messages[0]!.event.end, null);
});

test('a flickering label makes no event storm: one event, and its label changes only when another clearly leads', (t) => {
  const random = seededRandom(3);
  const tracker = new EventTracker(SETTINGS, 2);
  // Forty seconds of a cat that the model sometimes calls a dog, one frame in three.
  const messages = run(tracker, 0, 400, () => ({ label: random() < 0.33 ? 'dog' : 'cat', confidence: 0.6 + random() * 0.3, exit: 0, motion: true }));
  messages.push(...tracker.still(42_000));
  t.is(messages.filter((m) => m.type === 'new').length, 1);
  t.is(messages.filter((m) => m.type === 'end').length, 1);
  t.true(messages.filter((m) => m.type === 'update').length <= 5, `${messages.length} messages`);
  t.true(messages.every((m) => m.event.label === 'cat'));
});

test('a blip shorter than minDurationS, or frames below minConfidence, never become an event', (t) => {
  const tracker = new EventTracker(SETTINGS, 2);
  const blip = run(tracker, 0, 5, () => ({ label: 'bird', confidence: 0.9, exit: 1, motion: true }));
  t.deepEqual([...blip, ...tracker.still(5000)], []);
  const unsure = run(tracker, 10_000, 50, () => ({ label: 'bird', confidence: 0.4, exit: 1, motion: true }));
  t.deepEqual(unsure, []);
  t.is(tracker.active, undefined);
});

test('finish ends an event going on, at its last motion plus endAfterS at most', (t) => {
  const tracker = new EventTracker(SETTINGS, 2);
  run(tracker, 0, 20, () => ({ label: 'car', confidence: 0.8, exit: 0, motion: true }));
  t.is(tracker.active?.label, 'car');
  const [end] = tracker.finish(10_000);
  t.like(end, { type: 'end', event: { end: 3900 } });
  t.is(tracker.active, undefined);
});

test("an event's confidence is the mean confidence of the frames that gave its label, not its best single frame", (t) => {
  const tracker = new EventTracker(SETTINGS, 2);
  // One lucky frame at 0.99 among frames near 0.65, and a few of another label that never takes over.
  const confidence = (i: number) => (i === 3 ? 0.99 : 0.65);
  const messages = run(tracker, 0, 30, (i) => (i % 10 === 9 ? { label: 'dog', confidence: 0.9, exit: 0, motion: true } : { label: 'cat', confidence: confidence(i), exit: 1, motion: true }));
  const [end] = tracker.finish(10_000);
  const cat = Array.from({ length: 30 }, (_, i) => i).filter((i) => i % 10 !== 9);
  const mean = cat.reduce((sum, i) => sum + confidence(i), 0) / cat.length;
  t.is(end!.event.label, 'cat');
  t.is(end!.event.frames, 30, 'every frame of the event counts in frames');
  t.true(Math.abs(end!.event.confidence - mean) < 1e-9, `${end!.event.confidence} against the mean ${mean.toFixed(4)}`);
  t.true(messages.every((m) => m.event.confidence < 0.8), messages.map((m) => m.event.confidence).join(', '));
});
