import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import test from 'ava';
import { PROJECT_ROOT } from '../agent/config/paths.js';
import { combineBridges } from '../firmware-bridge/combine.js';
import { crc8, crc8Hex } from '../firmware-bridge/serial/crc8.js';
import { FrameDecoder, MAX_FRAME_BYTES } from '../firmware-bridge/serial/frame-decoder.js';
import { formatStatus, parseStatus } from '../firmware-bridge/serial/messages.js';
import { SerialBridge } from '../firmware-bridge/serial/serial-bridge.js';

/** A fake serial line: the device writes into `fromDevice`, the host's commands come out of `toDevice`. */
function fakeSerial(options: { staleAfterMs?: number } = {}) {
  let nowMs = 1_700_000_000_000;
  const fromDevice = new PassThrough();
  const toDevice = new PassThrough();
  const sent: string[] = [];
  toDevice.on('data', (chunk: Buffer) => sent.push(...chunk.toString('latin1').split(/(?<=\n)/)));
  const bridge = new SerialBridge({ name: '/dev/ttyFAKE', now: () => nowMs, staleAfterMs: options.staleAfterMs ?? 5000 });
  bridge.attach(fromDevice, toDevice);
  return {
    bridge,
    sent,
    /** Writes and lets the stream deliver it (PassThrough emits data on a later tick). */
    device: async (bytes: string | Buffer) => {
      fromDevice.write(bytes);
      await new Promise((resolve) => setImmediate(resolve));
    },
    advance: (ms: number) => (nowMs += ms),
    now: () => nowMs,
    fromDevice,
    toDevice,
  };
}

/** A frame written out by hand, with its checksum computed independently of the decoder. */
function frame(body: string): string {
  return `$${body}*${crc8Hex(body)}\r\n`;
}

test('CRC-8 (poly 0x07, init 0): the catalogue check value and a frame body', (t) => {
  t.is(crc8('123456789'), 0xf4);
  t.is(crc8(''), 0);
  t.is(formatStatus({ seq: 7, socTenthsPercent: 875, millivolts: 3987, milliamps: 420, charging: 0, tempTenthsC: 312 }), frame('EXB,1,7,875,3987,420,0,312'));
});

test('good status frames become a reading in SI units, stamped with when the frame arrived', async (t) => {
  const line = fakeSerial();
  await line.device(frame('EXB,1,41,875,3987,420,0,312'));
  const at = line.now();
  line.advance(1200);
  const reading = await line.bridge.read();
  t.is(reading.at, at, 'the reading is as old as its frame');
  t.is(reading.stateOfCharge, 0.875);
  t.is(reading.voltageV, 3.987);
  t.is(reading.currentA, 0.42);
  t.is(reading.powerW, 1.67454);
  t.is(reading.charging, false);
  t.deepEqual(reading.temperaturesC, { ups: 31.2 });
  t.deepEqual(reading.missing, []);

  // Charging: negative current; an empty temperature field means the device has no sensor.
  await line.device(frame('EXB,1,42,880,4150,-1250,1,'));
  const charging = await line.bridge.read();
  t.is(charging.currentA, -1.25);
  t.is(charging.charging, true);
  t.deepEqual(charging.temperaturesC, {});
  t.deepEqual(charging.missing, [{ reading: 'temperaturesC.ups', reason: 'serial(/dev/ttyFAKE): the device sent an empty temp field' }]);
  t.is(line.bridge.stats.statusFrames, 2);
  t.is(line.bridge.stats.lostFrames, 0);
});

test('frames split across chunks at every byte boundary decode the same', async (t) => {
  const text = frame('EXB,1,1,500,3700,300,0,250') + frame('EXB,1,2,499,3699,310,0,251');
  for (let cut = 1; cut < text.length; cut++) {
    const decoder = new FrameDecoder();
    const frames = [...decoder.push(Buffer.from(text.slice(0, cut))), ...decoder.push(Buffer.from(text.slice(cut)))];
    t.deepEqual(frames.map((f) => f[2]), ['1', '2'], `cut at ${cut}`);
  }
  // One byte at a time through the real stream path.
  const line = fakeSerial();
  for (const char of frame('EXB,1,9,123,3600,200,0,199')) await line.device(char);
  t.is((await line.bridge.read()).stateOfCharge, 0.123);
});

test('bad checksums, truncated frames, garbage and overlong lines are counted and skipped, never thrown', async (t) => {
  const line = fakeSerial();
  const good = frame('EXB,1,10,600,3800,400,0,300');
  const badChecksum = good.replace(/\*[0-9A-F]{2}/, (star) => (star === '*00' ? '*01' : '*00'));
  const corruptedBody = good.replace('3800', '3900'); // checksum no longer matches
  const garbage = Buffer.concat([Buffer.from([0x00, 0xff, 0x80]), Buffer.from(' boot v2.1 garbage\r\n')]);
  await line.device(garbage);
  await line.device(badChecksum);
  await line.device(corruptedBody);
  await line.device('$EXB,1,11,600,38'); // cut off by the next frame's `$`
  await line.device(frame('EXB,1,12,590,3790,410,0,301'));
  await line.device('$EXB,1,13,590\r\n'); // no *CC: cut off before the end
  await line.device(`$${'A'.repeat(MAX_FRAME_BYTES * 3)}\r\n`);
  await line.device('$EXB,1,14,5\x0790,3790,410,0,301*00\r\n'); // a control byte inside
  await line.device('$EXB,1,15,590,3790,410,0,301*XY\r\n');
  await line.device(frame('EXB,1,16,1200,3790,410,0,301')); // soc beyond 100.0 %
  await line.device(frame('EXB,2,17,590,3790,410,0,301,new-field')); // a future major version
  await line.device(frame('EXD,1,boot-count,7')); // a diagnostic sentence this host does not know
  await line.device(frame('EXB,1,18,585,3785,415,0,302,99')); // an extra trailing field is fine

  const stats = line.bridge.stats;
  t.is(stats.garbageBytes, garbage.length - 2, 'CR/LF between frames are not garbage');
  t.is(stats.badChecksum, 2);
  t.is(stats.truncated, 2);
  t.is(stats.overlong, 1);
  t.is(stats.malformed, 2);
  t.is(stats.invalidFields, 1);
  t.is(stats.unsupportedVersion, 1);
  t.is(stats.unknownSentences, 1);
  t.is(stats.statusFrames, 2);
  t.is(stats.lostFrames, 5, 'seq 13..17 never arrived as good status frames');

  const reading = await line.bridge.read();
  t.is(reading.stateOfCharge, 0.585);
  t.is(reading.voltageV, 3.785);
  t.deepEqual(reading.missing, []);

  t.deepEqual(parseStatus('EXB,1,3,abc,1,1,1,1'.split(',')), { ok: false, error: "soc 'abc' is not an integer" });
});

test('the last good reading is used until it is stale, then listed as missing with its age', async (t) => {
  const line = fakeSerial({ staleAfterMs: 5000 });
  const before = await line.bridge.read();
  t.is(before.stateOfCharge, undefined);
  t.regex(before.missing[0]!.reason, /no good status frame on serial\(\/dev\/ttyFAKE\) yet/);

  await line.device(frame('EXB,1,0,700,3850,380,0,280'));
  line.advance(3000);
  await line.device('garbage only\r\n');
  await line.device(frame('EXB,1,1,700,3850,380,0,280').replace(/..\r\n$/, '00\r\n'));
  const aging = await line.bridge.read();
  t.is(aging.stateOfCharge, 0.7, 'bad frames do not replace the last good one');
  t.is(line.now() - aging.at, 3000);

  line.advance(4500);
  const stale = await line.bridge.read();
  t.is(stale.stateOfCharge, undefined);
  t.deepEqual(
    stale.missing.map((m) => m.reading),
    ['stateOfCharge', 'voltageV', 'currentA', 'powerW', 'charging', 'temperaturesC.ups'],
  );
  t.regex(stale.missing[0]!.reason, /last good status frame on serial\(\/dev\/ttyFAKE\) is 7\.5 s old \(stale after 5 s\)/);
  t.regex(stale.missing[0]!.reason, /1 bad checksums, 12 garbage bytes/);

  line.fromDevice.end();
  await new Promise((resolve) => setImmediate(resolve));
  t.regex((await line.bridge.read()).missing[0]!.reason, /serial stream closed/);
});

test('a stream error is reported in the reasons, not thrown', async (t) => {
  const line = fakeSerial();
  await line.device(frame('EXB,1,0,700,3850,380,0,280'));
  line.fromDevice.destroy(new Error('EIO: USB serial adapter unplugged'));
  await new Promise((resolve) => setImmediate(resolve));
  t.is((await line.bridge.read()).stateOfCharge, 0.7, 'the last good frame is still fresh');
  line.advance(6000);
  t.regex((await line.bridge.read()).missing[0]!.reason, /stale after 5 s\); serial stream error: EIO: USB serial adapter unplugged$/);
});

test('commands: framed and checksummed, re-sent after the device restarts', async (t) => {
  const line = fakeSerial();
  await line.bridge.setFan(0.754);
  await line.bridge.setLed(true);
  await line.bridge.setLowBatteryAlert(false);
  t.deepEqual(line.sent, [frame('EXC,1,0,FAN,75'), frame('EXC,1,1,LED,1'), frame('EXC,1,2,ALERT,0')]);
  await t.throwsAsync(line.bridge.setFan(1.5), { instanceOf: RangeError, message: /0\.\.1, got 1\.5/ });

  await line.device(frame('EXA,1,0,OK') + frame('EXA,1,1,ERR,RANGE'));
  t.is(line.bridge.stats.acks, 1);
  t.is(line.bridge.stats.refusals, 1);

  line.sent.length = 0;
  await line.device(frame('EXB,1,500,700,3850,380,0,280'));
  await line.device(frame('EXB,1,0,700,3850,380,0,280')); // rebooted: counting from 0 again
  await new Promise((resolve) => setImmediate(resolve));
  t.is(line.bridge.stats.deviceRestarts, 1);
  t.deepEqual(line.sent, [frame('EXC,1,3,FAN,75'), frame('EXC,1,4,LED,1'), frame('EXC,1,5,ALERT,0')]);

  // 65535 → 0 is the counter wrapping, not a restart.
  await line.device(frame('EXB,1,65535,700,3850,380,0,280') + frame('EXB,1,0,700,3850,380,0,280'));
  t.is(line.bridge.stats.deviceRestarts, 1);
  await line.bridge.close();
});

/** The fake microcontroller's side of a sleep: it answers each EXS it receives with `reply`. */
function answerSleeps(line: ReturnType<typeof fakeSerial>, reply: (seq: string) => string | undefined): void {
  line.sent.length = 0;
  line.toDevice.on('data', (chunk: Buffer) => {
    const match = /^\$EXS,1,(\d+),/.exec(chunk.toString('latin1'));
    const answer = match ? reply(match[1]!) : undefined;
    if (answer) setImmediate(() => line.fromDevice.write(answer));
  });
}

test('sleep: the host sends EXS with the sleep, the wake-on-motion flag and the grace time, and goes on once the device says OK', async (t) => {
  const line = fakeSerial();
  answerSleeps(line, (seq) => frame(`EXA,1,${seq},OK`));
  await line.bridge.armWake({ seconds: 3600, wakeOnMotion: true, graceSeconds: 20 });
  const sleep = line.sent.find((s) => s.startsWith('$EXS'))!;
  t.regex(sleep, /^\$EXS,1,\d+,3600,1,20\*[0-9A-F]{2}\r\n$/);
  t.is(sleep, frame(sleep.slice(1, sleep.indexOf('*'))), 'a valid frame');
});

test('sleep: a refusal or no answer rejects, naming why, so that the host stays up', async (t) => {
  const refusing = fakeSerial();
  answerSleeps(refusing, (seq) => frame(`EXA,1,${seq},ERR,RANGE`));
  await t.throwsAsync(refusing.bridge.armWake({ seconds: 60, wakeOnMotion: false, graceSeconds: 10 }), { message: /refused the sleep command \(RANGE\)/ });

  const silent = new SerialBridge({ name: '/dev/ttyMUTE', sleepAckTimeoutMs: 100 });
  silent.attach(new PassThrough(), new PassThrough());
  await t.throwsAsync(silent.armWake({ seconds: 60, wakeOnMotion: false, graceSeconds: 10 }), { message: /did not acknowledge the sleep command within 100 ms/ });
  await t.throwsAsync(silent.armWake({ seconds: 0, wakeOnMotion: false, graceSeconds: 10 }), { instanceOf: RangeError });

  const unattached = new SerialBridge({ name: '/dev/ttyGONE' });
  await t.throwsAsync(unattached.armWake({ seconds: 60, wakeOnMotion: false, graceSeconds: 10 }), { message: /no link to the device/ });
});

test('wake reason: EXB\'s ninth field says why the board powered up; older firmware without it, or a word from a later revision, leaves it unknown', async (t) => {
  const line = fakeSerial();
  t.is(line.bridge.wakeReason(), undefined);
  await line.device(frame('EXB,1,0,875,3987,420,0,312,MOTION'));
  t.is(line.bridge.wakeReason(), 'motion');
  const parsed = parseStatus(['EXB', '1', '1', '875', '3987', '420', '0', '312', 'TIMER']);
  t.like(parsed, { ok: true, value: { wake: 'timer' } });
  await line.device(frame('EXB,1,1,875,3987,420,0,312'));
  t.is(line.bridge.wakeReason(), undefined, 'older firmware');
  await line.device(frame('EXB,1,2,875,3987,420,0,312,SOLAR'));
  t.is(line.bridge.wakeReason(), undefined, 'a reason this host does not know');
  t.is((await line.bridge.read()).stateOfCharge, 0.875, 'the frame itself is still read');
  t.is(formatStatus({ seq: 3, socTenthsPercent: 875, wake: 'TIMER' }), frame('EXB,1,3,875,,,,,TIMER'));
});

test('every example frame in SERIAL-PROTOCOL.md carries its right checksum', (t) => {
  const doc = fs.readFileSync(path.join(PROJECT_ROOT, 'firmware-bridge', 'SERIAL-PROTOCOL.md'), 'utf8');
  const examples = [...doc.matchAll(/\$([A-Z]{3},[^*\s`<]*)\*([0-9A-F]{2})\b/g)];
  t.true(examples.length >= 8, `${examples.length} examples`);
  for (const [whole, body, checksum] of examples) t.is(checksum, crc8Hex(body!), whole);
});

test('combined: the first source that can arm a wake-up arms it, and the wake reason comes from whichever source knows it', async (t) => {
  const line = fakeSerial();
  answerSleeps(line, (seq) => frame(`EXA,1,${seq},OK`));
  const combined = combineBridges([new SerialBridge({ name: 'no-stream' }), line.bridge]);
  t.is(combined.wakeReason!(), undefined);
  await line.device(frame('EXB,1,0,875,3987,420,0,312,TIMER'));
  t.is(combined.wakeReason!(), 'timer');
  // The first source has armWake too, but no link: the combined bridge says so rather than silently using another.
  await t.throwsAsync(combined.armWake!({ seconds: 60, wakeOnMotion: false, graceSeconds: 5 }), { message: /no link to the device/ });
  const ordered = combineBridges([line.bridge]);
  await ordered.armWake!({ seconds: 60, wakeOnMotion: false, graceSeconds: 5 });
  t.true(line.sent.some((s) => s.startsWith('$EXS,1,')));
});
