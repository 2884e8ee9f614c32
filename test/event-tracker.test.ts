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
  t.is(end.confidence, 0.94);
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
