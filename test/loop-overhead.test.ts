import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { parseAgentConfig } from '../agent/config/agent-config.js';
import { ResultPublisher } from '../agent/events/result-publisher.js';
import { AgentLink } from '../agent/mqtt/agent-link.js';
import { startEmbeddedBroker } from '../agent/mqtt/embedded-broker.js';
import { stateSchema } from '../agent/mqtt/payloads.js';
import { encodedImageToRgb } from '../agent/preprocess/image-to-rgb.js';
import { RgbDecoder } from '../agent/preprocess/rgb-decoder.js';
import { FixedSizeSplitter } from '../agent/sources/child-stream.js';
import { ReplaySource } from '../agent/sources/replay-source.js';
import { freePort } from '../tools/mqtt/mosquitto.js';
import { MqttWatch } from './helpers/mqtt-watch.js';
import { CIFAR_TEST, temporaryDir } from './helpers/shared.js';
import { waitFor } from './helpers/wait.js';

/*
 * What the loop's speed-ups must not change: a replay decoded ahead on its own thread gives the
 * agent's own pixels, in the same order, and leaves an undecodable file to the agent to report;
 * the state topic under a label that changes every frame still ends on the latest state.
 */

const target = { width: 48, height: 40, resize: 'stretch' as const };

test('a replay decoded ahead on its own thread gives the same frames, in the same order, with the agent\'s own pixels', async (t) => {
  const ahead = new ReplaySource(CIFAR_TEST, { loop: true, seed: 4, target });
  const plain = new ReplaySource(CIFAR_TEST, { loop: true, seed: 4 });
  t.teardown(() => Promise.all([ahead.close(), plain.close()]));
  for (let i = 0; i < 12; i++) {
    const [decoded, raw] = [(await ahead.next())!, (await plain.next())!];
    t.is(decoded.id, raw.id);
    t.is(decoded.origin, raw.origin);
    t.is(decoded.trueLabel, raw.trueLabel);
    t.true(decoded.bytes.equals(raw.bytes), 'the encoded image is kept (image offload sends it)');
    t.true(decoded.pixels!.equals(await encodedImageToRgb(raw.bytes, target)), `frame ${i}: the same pixels as the agent's decoding`);
  }
});

test('a replay that does not loop ends after its last image, with nothing left decoding', async (t) => {
  const dir = temporaryDir('edge-exit-replay-');
  const files = fs.readdirSync(path.join(CIFAR_TEST, 'cat')).sort().slice(0, 3);
  fs.mkdirSync(path.join(dir, 'cat'));
  for (const file of files) fs.copyFileSync(path.join(CIFAR_TEST, 'cat', file), path.join(dir, 'cat', file));
  const source = new ReplaySource(dir, { loop: false, seed: 1, target });
  const frames = [];
  for (let frame = await source.next(); frame; frame = await source.next()) frames.push(frame);
  await source.close();
  t.is(frames.length, 3);
  t.true(frames.every((frame) => frame.pixels?.length === target.width * target.height * 3));
});

test('an undecodable file in a replay reaches the agent as bytes alone, so that it says why and skips it', async (t) => {
  const dir = temporaryDir('edge-exit-replay-');
  fs.mkdirSync(path.join(dir, 'cat'));
  fs.copyFileSync(path.join(CIFAR_TEST, 'cat', fs.readdirSync(path.join(CIFAR_TEST, 'cat')).sort()[0]!), path.join(dir, 'cat', 'a.jpg'));
  fs.writeFileSync(path.join(dir, 'cat', 'b.jpg'), Buffer.from('not a jpeg at all'));
  const source = new ReplaySource(dir, { loop: false, seed: 1, target });
  t.teardown(() => source.close());
  const frames = [(await source.next())!, (await source.next())!];
  t.is(await source.next(), undefined);
  const broken = frames.find((frame) => frame.origin.endsWith('b.jpg'))!;
  const good = frames.find((frame) => frame.origin.endsWith('a.jpg'))!;
  t.is(broken.pixels, undefined);
  t.true(broken.bytes.equals(Buffer.from('not a jpeg at all')));
  t.is(good.pixels?.length, target.width * target.height * 3);
});

test('the decoding thread says why a file does not decode, rejects one that cannot be read, and works in place once closed', async (t) => {
  const dir = temporaryDir('edge-exit-decoder-');
  const decoder = new RgbDecoder(target);
  const jpeg = path.join(CIFAR_TEST, 'dog', fs.readdirSync(path.join(CIFAR_TEST, 'dog')).sort()[0]!);
  fs.writeFileSync(path.join(dir, 'garbage.jpg'), 'garbage');
  const garbage = await decoder.decodeFile(path.join(dir, 'garbage.jpg'));
  t.is(garbage.pixels, undefined);
  t.regex(garbage.error ?? '', /garbage\.jpg/);
  await t.throwsAsync(decoder.decodeFile(path.join(dir, 'missing.jpg')), { code: 'ENOENT' });
  const threaded = await decoder.decodeFile(jpeg);
  await decoder.close();
  const inPlace = await decoder.decodeFile(jpeg);
  const reference = await encodedImageToRgb(fs.readFileSync(jpeg), target);
  t.true(threaded.pixels!.equals(reference));
  t.true(inPlace.pixels!.equals(reference));
});

test('a label that changes every frame is not a state message per frame, and the retained state ends on the latest', async (t) => {
  const broker = await startEmbeddedBroker(await freePort());
  t.teardown(() => broker.close());
  const config = parseAgentConfig({ deviceId: 'burst-1' });
  const link = await new AgentLink({ url: broker.url, deviceId: 'burst-1', config, protocolVersion: 4, handlers: { onAnswer: () => {} } }).start();
  const watch = await MqttWatch.connect(broker.url, [link.topics.state], { protocolVersion: 4 });
  t.teardown(() => Promise.all([link.stop(), watch.close()]));
  await waitFor('the link to connect', () => link.connected, 10_000, 20);
  const results = new ResultPublisher({ link, log: { logEvent: () => {} }, events: undefined, exitCount: 4, frameSize: target });
  const labels = ['cat', 'dog', 'ship', 'truck'];
  const start = Date.now();
  for (let i = 0; i < 400; i++) results.classified({ at: start + i, label: labels[i % 4]!, confidence: 0.5 + (i % 7) / 20, exit: i % 4, motion: true, rgb: new Uint8Array(0) });
  const last = { label: labels[399 % 4]!, confidence: 0.5 + (399 % 7) / 20, exit: 399 % 4 };
  const latest = await watch.waitFor('with the last frame\'s state', (m) => {
    const state = stateSchema.parse(JSON.parse(m.payload.toString()));
    return state.label === last.label && state.exit === last.exit && Math.abs(state.confidence - last.confidence) < 1e-9;
  }, { timeoutMs: 5000 });
  t.truthy(latest);
  const first = stateSchema.parse(JSON.parse(watch.on(link.topics.state)[0]!.payload.toString()));
  t.is(first.label, 'cat', 'the first label goes out at once');
  t.true(watch.on(link.topics.state).length <= 5, `${watch.on(link.topics.state).length} state messages for 400 frames`);
  await results.stop();
});

test('raw frames are cut from chunks of any size, each its own bytes, with a partial frame dropped on reset', (t) => {
  const frameBytes = 1000;
  const stream = Buffer.from(Array.from({ length: 3500 }, (_, i) => (i * 31 + (i >> 8)) & 255));
  for (const chunkSize of [1, 7, 999, 1000, 1001, 2500, 3500]) {
    const splitter = new FixedSizeSplitter(frameBytes);
    const frames: Buffer[] = [];
    for (let at = 0; at < stream.length; at += chunkSize) frames.push(...splitter.push(stream.subarray(at, at + chunkSize)));
    t.is(frames.length, 3, `chunks of ${chunkSize}`);
    frames.forEach((frame, i) => t.true(frame.equals(stream.subarray(i * frameBytes, (i + 1) * frameBytes)), `frame ${i}, chunks of ${chunkSize}`));
    frames[0]!.fill(0);
    t.true(frames[1]!.equals(stream.subarray(frameBytes, 2 * frameBytes)), 'no frame shares bytes with another');
    splitter.reset();
    t.deepEqual(splitter.push(stream.subarray(0, 999)), [], 'the half frame before the reset is gone');
  }
});

