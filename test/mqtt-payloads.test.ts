import test from 'ava';
import { parseAgentConfig } from '../agent/config/agent-config.js';
import {
  decodeOffload,
  encodeOffload,
  encodeOffloadAnswer,
  MAX_OFFLOAD_BYTES,
  type OffloadInput,
  OffloadEncodeError,
  type OffloadPayload,
  parseOffloadAnswer,
} from '../agent/mqtt/offload-codec.js';
import { applyConfigPatch } from '../agent/config/config-patch.js';
import {
  configResponseFor,
  configStateSchema,
  encodeJsonPayload,
  MAX_CONFIG_SET_BYTES,
  parseConfigSet,
  telemetrySchema,
} from '../agent/mqtt/payloads.js';

/** Small seeded generator (xorshift32) so a failing fuzz case can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    bytes: (n: number) => {
      const out = Buffer.alloc(n);
      for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 256);
      return out;
    },
  };
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8');
const HASH = 'a3f1c2d4e5b60718293a4b5c6d7e8f90112233445566778899aabbccddeeff00';

// ---------------------------------------------------------------- config/set

test('a valid config/set is accepted with only the fields it names', (t) => {
  const result = parseConfigSet(
    json({ id: 'req-1', set: { policy: { operatingPoint: 'frugal', thresholds: [0.9, 0.8], maxExit: 3 }, controller: { maxTemperatureC: 70 }, offload: { mode: 'features', deadlineMs: 250 }, telemetryIntervalMs: 5000 } }),
  );
  t.true(result.ok);
  if (!result.ok) return;
  t.deepEqual(result.request, {
    id: 'req-1',
    set: { policy: { operatingPoint: 'frugal', thresholds: [0.9, 0.8], maxExit: 3 }, controller: { maxTemperatureC: 70 }, offload: { mode: 'features', deadlineMs: 250 }, telemetryIntervalMs: 5000 },
  });
  // No defaults leak into a patch: a field left out stays unchanged.
  t.false('enabled' in (result.request.set.controller ?? {}));
  t.deepEqual(configResponseFor(result, 7), { id: 'req-1', status: 'ok', version: 7 });
});

test('config/set rejections name the field and the rule, and keep the id when readable', (t) => {
  const cases: Array<[Buffer, RegExp, string | undefined]> = [
    [json({ id: 'a', set: { policy: { thresholds: [0.5, 1.5] } } }), /set\.policy\.thresholds\.1: .*<=1 \(got 1\.5\)/, 'a'],
    [json({ id: 'b', set: { policy: { thresholds: [-0.1] } } }), /set\.policy\.thresholds\.0: .*>=0/, 'b'],
    [json({ id: 'c', set: { controller: { maxTemperatureC: 'hot' } } }), /set\.controller\.maxTemperatureC: .*number/, 'c'],
    [json({ id: 'd', set: { policy: { operatingPoint: 'x' }, colour: 'red' } }), /set: unknown key "colour"/, 'd'],
    [json({ id: 'e', set: { offload: { mode: 'video' } } }), /set\.offload\.mode/, 'e'],
    [json({ id: 'f', set: { offload: { deadlineMs: 5 } } }), /set\.offload\.deadlineMs: .*>=10/, 'f'],
    [json({ id: 'g', set: {} }), /nothing to change/, 'g'],
    [json({ id: '', set: { telemetryIntervalMs: 1000 } }), /^config\/set: id:/, undefined],
    [json({ id: 'x'.repeat(65), set: { telemetryIntervalMs: 1000 } }), /id: .*<=64/, undefined],
    [json({ set: { telemetryIntervalMs: 1000 } }), /id: /, undefined],
    [json([1, 2]), /\(root\)/, undefined],
    [Buffer.from('{"id": "a", set:'), /not JSON/, 'a'],
    [Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), /not valid UTF-8/, undefined],
    [Buffer.alloc(0), /empty/, undefined],
    [Buffer.alloc(MAX_CONFIG_SET_BYTES + 1, 0x20), /at most 16384/, undefined],
  ];
  for (const [bytes, reason, id] of cases) {
    const result = parseConfigSet(bytes);
    t.false(result.ok, bytes.toString('utf8', 0, 80));
    if (result.ok) continue;
    t.regex(result.reason, reason);
    t.is(result.id, id);
    t.deepEqual(configResponseFor(result).status, 'error');
  }
});

test('applying a patch re-validates the patched sections and leaves the input alone', (t) => {
  const config = parseAgentConfig({});
  const before = structuredClone(config);
  const parsed = parseConfigSet(json({ id: 'p', set: { policy: { operatingPoint: 'fast', patience: 2 }, controller: { minDwellS: 5 } } }));
  t.true(parsed.ok);
  if (!parsed.ok) return;
  const applied = applyConfigPatch(config, parsed.request.set);
  t.true(applied.ok);
  if (!applied.ok) return;
  t.is(applied.config.policy.operatingPoint, 'fast');
  t.is(applied.config.policy.patience, 2);
  t.is(applied.config.controller.minDwellS, 5);
  t.is(applied.config.controller.maxTemperatureC, before.controller.maxTemperatureC);
  t.deepEqual(config, before);
  t.notThrows(() => encodeJsonPayload(configStateSchema, { version: 2, config: applied.config }));
});

test('telemetry payloads are checked before they are published', (t) => {
  const telemetry = { ts: 1_700_000_000_000, battery: 0.42, temperatureC: 51.5, framesPerSecond: 12.5, exitHistogram: [10, 3, 1], operatingPoint: 'balanced' };
  t.deepEqual(JSON.parse(encodeJsonPayload(telemetrySchema, telemetry).toString('utf8')), telemetry);
  t.throws(() => encodeJsonPayload(telemetrySchema, { ...telemetry, battery: 1.5 }), { message: /battery/ });
});

function mutateJson(r: ReturnType<typeof rng>, base: Record<string, unknown>): unknown {
  const weird = [null, true, -1, 1e308, -0.5, 1.5, Number.MAX_SAFE_INTEGER, '', 'x'.repeat(5000), [], {}, [0.5, 2], { a: 1 }, '0.5', NaN];
  const copy = structuredClone(base) as Record<string, any>;
  switch (r.int(7)) {
    case 0:
      copy.id = r.pick(weird.filter((w) => !(typeof w === 'string' && w.length >= 1 && w.length <= 64)));
      break;
    case 1:
      copy.set = r.pick(weird);
      break;
    case 2:
      copy.set.policy = { thresholds: [r.next(), r.pick([1 + r.next(), -r.next() - 1e-9, '0.3', null])] };
      break;
    case 3:
      copy.set.controller = { [r.pick(['maxTemperatureC', 'minBatteryReserve', 'minDwellS', 'maxAccuracyDropPoints', 'enabled'])]: r.pick([1e6, -5, 'warm', null, [], 1e9]) };
      break;
    case 4:
      copy.set[r.pick(['unknown', 'deviceId', 'bridge', '__proto__x'])] = r.pick(weird.filter((w) => w !== undefined));
      break;
    case 5:
      copy.set.offload = { mode: r.pick(['feature', 'IMAGE', 1, null]), deadlineMs: r.pick([0, 9, 60_001, 1.5, -1]) };
      break;
    default:
      return r.pick(weird);
  }
  return copy;
}

test('fuzz: 2,000+ malformed config/set payloads are rejected with a reason and never touch the config', (t) => {
  const r = rng(20240611);
  const config = parseAgentConfig({});
  const snapshot = structuredClone(config);
  const valid = json({ id: 'fuzz-1', set: { policy: { thresholds: [0.9, 0.7, 0.5], maxExit: 2 }, controller: { maxTemperatureC: 65 } } });
  t.true(parseConfigSet(valid).ok);
  const base = JSON.parse(valid.toString('utf8')) as Record<string, unknown>;
  const inputs: Buffer[] = [];
  for (let i = 0; i < 400; i++) inputs.push(r.bytes(r.int(300)));
  for (let n = 0; n < valid.length; n++) inputs.push(valid.subarray(0, n));
  for (let i = 0; i < 1200; i++) {
    const mutated = mutateJson(r, base);
    inputs.push(Buffer.from(JSON.stringify(mutated) ?? 'undefined', 'utf8'));
  }
  for (let i = 0; i < 20; i++) inputs.push(Buffer.alloc(MAX_CONFIG_SET_BYTES + 1 + r.int(1 << 20), 0x5b));
  // Deep nesting just under the size limit: the parser and the reason builder must not recurse out of stack.
  inputs.push(Buffer.from(`{"id":"deep","set":{"policy":${'['.repeat(8000)}${']'.repeat(8000)}}}`));
  let flippedAccepted = 0;
  const flips: Buffer[] = [];
  for (let i = 0; i < 600; i++) {
    const copy = Buffer.from(valid);
    copy[r.int(copy.length)]! ^= 1 << r.int(8);
    flips.push(copy);
  }
  for (const bytes of inputs) {
    const result = parseConfigSet(bytes);
    t.false(result.ok, bytes.toString('utf8', 0, 120));
    if (!result.ok) t.true(result.reason.length > 0 && result.reason.length <= 600);
  }
  for (const bytes of flips) {
    const result = parseConfigSet(bytes);
    if (result.ok) {
      // A flip inside a digit or the id can leave a valid request; it must then be self-consistent.
      flippedAccepted++;
      t.deepEqual(result.request, JSON.parse(bytes.toString('utf8')));
      const applied = applyConfigPatch(config, result.request.set);
      t.true(applied.ok || applied.reason.length > 0);
    } else {
      t.true(result.reason.length > 0);
    }
  }
  t.true(inputs.length + flips.length >= 1000);
  t.log(`${inputs.length} malformed and ${flips.length} bit-flipped payloads, ${flippedAccepted} flips still valid`);
  t.deepEqual(config, snapshot);
});

// ---------------------------------------------------------------- offload frames

function featureInput(): Extract<OffloadInput, { kind: 'features' }> {
  const shape = [1, 4, 4, 160];
  const data = new Int8Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = ((i * 37) % 256) - 128;
  return { kind: 'features', requestId: 'gw-01.000123', packageName: 'mobilenet_v2_cifar10', modelHash: HASH, segment: 3, dtype: 'int8', shape, scale: 0.0235294, zeroPoint: -128, data };
}

function imageInput(): Extract<OffloadInput, { kind: 'image' }> {
  const data = new Uint8Array(900);
  data.set([0xff, 0xd8, 0xff, 0xe0]);
  for (let i = 4; i < data.length; i++) data[i] = (i * 13) & 0xff;
  return { kind: 'image', requestId: 'img-7', packageName: 'mobilenet_v2_cifar10', modelHash: HASH.slice(0, 16), format: 'jpeg', data };
}

/** Re-encodes a decoded payload: a frame that decodes must come back byte for byte. */
function reencode(payload: OffloadPayload): Buffer {
  const { modelHashPrefix, ...rest } = payload;
  return encodeOffload({ ...rest, modelHash: modelHashPrefix } as OffloadInput);
}

test('int8 features at a cut survive a round trip', (t) => {
  const input = featureInput();
  const frame = encodeOffload(input);
  t.is(frame.length, 3 + 1 + 1 + 1 + 12 + 1 + 20 + 8 + 3 + 8 + 12 + 2560);
  const decoded = decodeOffload(frame);
  t.true(decoded.ok);
  if (!decoded.ok || decoded.payload.kind !== 'features') return t.fail();
  const p = decoded.payload;
  t.is(p.requestId, input.requestId);
  t.is(p.packageName, input.packageName);
  t.is(p.modelHashPrefix, HASH.slice(0, 16));
  t.is(p.segment, 3);
  t.is(p.dtype, 'int8');
  t.deepEqual(p.shape, [1, 4, 4, 160]);
  t.is(p.scale, Math.fround(input.scale));
  t.is(p.zeroPoint, -128);
  t.true(p.data instanceof Int8Array);
  t.deepEqual(Array.from(p.data), Array.from(input.data));
  t.deepEqual(reencode(p), frame);
});

test('encoded images survive a round trip', (t) => {
  const input = imageInput();
  const frame = encodeOffload(input);
  const decoded = decodeOffload(frame);
  t.true(decoded.ok);
  if (!decoded.ok || decoded.payload.kind !== 'image') return t.fail();
  t.is(decoded.payload.format, 'jpeg');
  t.is(decoded.payload.requestId, 'img-7');
  t.deepEqual(Buffer.from(decoded.payload.data), Buffer.from(input.data));
  // Copied out, so the frame buffer can be reused by the MQTT client.
  frame.fill(0);
  t.is(decoded.payload.data[0], 0xff);
});

test('the encoder refuses what the decoder would refuse', (t) => {
  const base = featureInput();
  const bad: Array<[Partial<OffloadInput>, RegExp]> = [
    [{ requestId: 'a/b' }, /request id/],
    [{ packageName: 'bad name' }, /package name/],
    [{ modelHash: 'xyz' }, /model hash/],
    [{ shape: [1, 4, 4, 160, 1] }, /rank is 5/],
    [{ shape: [5000, 1] }, /dim 0 is 5000/],
    [{ shape: [1, 4, 4, 159] }, /needs 2544/],
    [{ scale: Number.NaN }, /scale/],
    [{ scale: 1e39 }, /scale/],
    [{ scale: 0 }, /scale/],
    [{ zeroPoint: 128 }, /zero point/],
    [{ segment: 32 }, /segment/],
  ];
  for (const [change, message] of bad) t.throws(() => encodeOffload({ ...base, ...change } as OffloadInput), { instanceOf: OffloadEncodeError, message });
  t.throws(() => encodeOffload({ ...imageInput(), data: new Uint8Array(MAX_OFFLOAD_BYTES) }), { instanceOf: OffloadEncodeError, message: /at most/ });
});

test('the decoder names what is wrong', (t) => {
  const frame = encodeOffload(featureInput());
  const scaleAt = frame.length - 2560 - 12;
  const withByte = (at: number, value: number) => {
    const copy = Buffer.from(frame);
    copy[at] = value;
    return copy;
  };
  const nanScale = Buffer.from(frame);
  nanScale.writeFloatBE(Number.NaN, scaleAt);
  const infScale = Buffer.from(frame);
  infScale.writeFloatBE(Number.POSITIVE_INFINITY, scaleAt);
  const cases: Array<[unknown, RegExp]> = [
    [withByte(0, 0x46), /wrong magic/],
    [withByte(3, 2), /format version 2/],
    [withByte(4, 9), /kind 9/],
    [withByte(5, 0), /request id length 0/],
    [withByte(5, 65), /request id length 65/],
    [nanScale, /scale NaN/],
    [infScale, /scale Infinity/],
    [frame.subarray(0, frame.length - 1), /truncated: tensor needs 2560 bytes, 2559 remain/],
    [frame.subarray(0, 10), /truncated/],
    [Buffer.concat([frame, Buffer.from([0])]), /1 unexpected bytes after the tensor/],
    [Buffer.alloc(MAX_OFFLOAD_BYTES + 1), /at most 2097152/],
    ['EXO', /must be bytes/],
    [null, /must be bytes/],
  ];
  for (const [input, reason] of cases) {
    const result = decodeOffload(input);
    t.false(result.ok);
    if (!result.ok) t.regex(result.reason, reason);
  }
});

test('answers from the server are parsed without throwing', (t) => {
  const answer = { requestId: 'gw-01.000123', label: 'cat', confidence: 0.93, serverMs: 12.5, modelHash: HASH };
  const parsed = parseOffloadAnswer(encodeOffloadAnswer(answer));
  t.deepEqual(parsed, { ok: true, answer });
  const bad: Array<[unknown, RegExp]> = [
    [json({ ...answer, confidence: 1.2 }), /confidence: .*<=1/],
    [json({ ...answer, requestId: 'a+b' }), /requestId/],
    [json({ ...answer, modelHash: 'ABC' }), /modelHash/],
    [json({ ...answer, extra: 1 }), /Unrecognized key/],
    [Buffer.from('nope'), /not JSON/],
    [Buffer.alloc(5000, 0x20), /at most 4096/],
    [42, /must be bytes/],
  ];
  for (const [input, reason] of bad) {
    const result = parseOffloadAnswer(input);
    t.false(result.ok);
    if (!result.ok) t.regex(result.reason, reason);
  }
});

test('fuzz: thousands of malformed offload frames never throw and are rejected or decoded consistently', (t) => {
  const r = rng(7_771_337);
  const frames = [encodeOffload(featureInput()), encodeOffload(imageInput())];
  let rejected = 0;
  let flipsAccepted = 0;
  const expectRejected = (input: unknown, label: string) => {
    const result = decodeOffload(input);
    t.false(result.ok, label);
    if (!result.ok) {
      t.true(result.reason.length > 0);
      rejected++;
    }
  };
  // Random bytes, with and without a valid magic and version in front.
  for (let i = 0; i < 600; i++) {
    const junk = r.bytes(r.int(400));
    if (i % 2 === 1 && junk.length >= 4) Buffer.from('EXO\u0001', 'latin1').copy(junk);
    expectRejected(junk, `random ${i}`);
  }
  // Every truncation of both valid frames.
  for (const frame of frames) for (let n = 0; n < frame.length; n++) expectRejected(frame.subarray(0, n), `truncated at ${n}`);
  // Wrong types and huge sizes.
  for (const input of [undefined, null, 0, 'EXO', {}, [1, 2, 3], new ArrayBuffer(16), Buffer.alloc(MAX_OFFLOAD_BYTES + 1), Buffer.alloc(8 << 20)]) expectRejected(input, String(input));
  // Header fields set to out-of-range values.
  const header = frames[0]!;
  for (const at of [3, 4, 5]) for (const value of [0, 2, 3, 65, 200, 255]) {
    const copy = Buffer.from(header);
    copy[at] = value;
    const result = decodeOffload(copy);
    t.true(result.ok ? value === 1 || (at === 4 && value === 2) : result.reason.length > 0);
  }
  // Bit flips: rejected, or decoded to something that re-encodes to exactly the flipped bytes.
  for (let i = 0; i < 1500; i++) {
    const copy = Buffer.from(r.pick(frames));
    const flipsHere = 1 + r.int(3);
    for (let f = 0; f < flipsHere; f++) copy[r.int(copy.length)]! ^= 1 << r.int(8);
    const result = decodeOffload(copy);
    if (result.ok) {
      flipsAccepted++;
      t.deepEqual(reencode(result.payload), copy);
    } else {
      t.true(result.reason.length > 0);
      rejected++;
    }
  }
  t.true(rejected >= 1000);
  t.log(`${rejected} rejected, ${flipsAccepted} bit-flipped frames still valid and consistent`);
});

test('a config/set too large or cut short is refused under its own id when it starts with one', (t) => {
  const oversize = json({ id: 'big-1', set: { policy: { thresholds: Array.from({ length: MAX_CONFIG_SET_BYTES / 4 }, () => 0.5) } } });
  t.like(parseConfigSet(oversize), { ok: false, id: 'big-1' });
  t.regex((parseConfigSet(oversize) as { reason: string }).reason, /at most 16384 are allowed/);
  t.like(parseConfigSet(Buffer.from(' { "id" : "cut-\\"2", "set": {"policy"')), { ok: false, id: 'cut-"2' });
  // No id to read: an id too long, not a string, not first, or not valid JSON inside.
  for (const text of [`{"id":"${'x'.repeat(65)}","set":{`, '{"id":7,"set":{', '{"set":{},"id":"late"', '{"id":"bad\\q"', '["id","x"]'])
    t.is((parseConfigSet(Buffer.from(text)) as { id?: string }).id, undefined, text);
});

test('every field config/set accepts reaches the config: maxFrameRate, telemetry, offload, and sections merge field by field', (t) => {
  const config = parseAgentConfig({});
  const applied = applyConfigPatch(config, { maxFrameRate: 5, telemetryIntervalMs: 2000, offload: { minConfidence: 0.3 } });
  t.true(applied.ok);
  if (!applied.ok) return;
  t.is(applied.config.maxFrameRate, 5);
  t.is(applied.config.telemetryIntervalMs, 2000);
  t.is(applied.config.offload.minConfidence, 0.3);
  t.is(applied.config.offload.mode, config.offload.mode, 'a field left out keeps its value');
  t.is(config.maxFrameRate, 40, 'the input is left alone');
});

test('the motion gate is set over MQTT like any section; its width, fixed at start-up, is refused by name', (t) => {
  const accepted = parseConfigSet(json({ id: 'g1', set: { gate: { mode: 'on', threshold: 20, maxReuseS: 30 } } }));
  t.true(accepted.ok);
  if (accepted.ok) {
    const applied = applyConfigPatch(parseAgentConfig({}), accepted.request.set);
    t.like(applied.ok ? applied.config.gate : {}, { mode: 'on', threshold: 20, maxReuseS: 30, minArea: 0.005 });
  }
  const refused = parseConfigSet(json({ id: 'g2', set: { gate: { width: 32 } } }));
  t.false(refused.ok);
  if (!refused.ok) t.regex(refused.reason, /set\.gate: unknown key "width"/);
});
