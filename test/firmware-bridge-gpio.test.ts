import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { GpioBridge } from '../firmware-bridge/gpio/gpio-bridge.js';
import { loadPigpio, type Pigpio, type PigpioLoad } from '../firmware-bridge/gpio/pigpio-loader.js';

const fakeRoots: string[] = [];
test.after.always(() => {
  for (const root of fakeRoots) fs.rmSync(root, { recursive: true, force: true });
});

/** A fake /proc with the device-tree model string a board reports (NUL-terminated, as the kernel writes it). */
function fakeProc(model: string): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-proc-'));
  fakeRoots.push(root);
  fs.mkdirSync(path.join(root, 'proc/device-tree'), { recursive: true });
  fs.writeFileSync(path.join(root, 'proc/device-tree/model'), `${model}\0`);
  return root;
}

/** A stand-in for the pigpio module that records what would reach the pins. */
function fakePigpio() {
  const writes: string[] = [];
  const pigpio: Pigpio = {
    Gpio: Object.assign(
      class {
        constructor(readonly pin: number) {}
        digitalWrite(level: number) {
          writes.push(`${this.pin} digital ${level}`);
        }
        pwmWrite(duty: number) {
          writes.push(`${this.pin} pwm ${duty}`);
        }
        pwmFrequency(hz: number) {
          writes.push(`${this.pin} frequency ${hz}`);
        }
        hardwarePwmWrite(hz: number, duty: number) {
          writes.push(`${this.pin} hardware ${hz} ${duty}`);
        }
      },
      { OUTPUT: 1 },
    ),
    initialize: () => writes.push('initialize'),
    terminate: () => writes.push('terminate'),
  };
  return { pigpio, writes };
}

test('on this machine GPIO is unavailable: the actuators say why once and do nothing, without throwing', async (t) => {
  let loads = 0;
  let result: PigpioLoad | undefined;
  const bridge = new GpioBridge({
    fanPin: 18,
    ledPin: 17,
    alertPin: 27,
    load: async () => {
      loads += 1;
      result = await loadPigpio();
      return result;
    },
  });
  t.is(bridge.status.available, undefined, 'nothing loaded before an actuator is used');
  await bridge.setFan!(0.5);
  await bridge.setLed!(true);
  await bridge.setLowBatteryAlert!(true);
  t.is(loads, 1, 'loaded (and reported) once');
  t.false(bridge.status.available);
  t.is(bridge.status.reason, result!.ok ? undefined : result!.reason);
  // x86 in CI: no device-tree model. A real Pi running the tests would get further.
  if (!fs.existsSync('/proc/device-tree/model')) t.regex(bridge.status.reason!, /not a Raspberry Pi .*pigpio drives the GPIO of a Raspberry Pi 1-4 only/);
  const reading = await bridge.read();
  t.deepEqual(reading, { at: reading.at, temperaturesC: {}, tripPointsC: {}, missing: [] }, 'reads nothing, misses nothing');
  await bridge.close();
});

test('on a Pi 4 model string, the real pigpio package is imported; off a Pi its C library cannot start: a clear reason, no crash', async (t) => {
  const result = await loadPigpio({ root: fakeProc('Raspberry Pi 4 Model B Rev 1.4') });
  t.false(result.ok);
  if (!result.ok) t.regex(result.reason, /pigpio (is installed but its C library cannot start here|is not installed)|pigpio needs root/);
});

test('pigpio not installed, or a Pi 5: each says so and what to do instead', async (t) => {
  const missing = await loadPigpio({ root: fakeProc('Raspberry Pi 3 Model B Plus Rev 1.3'), moduleName: 'pigpio-not-a-real-package' });
  t.deepEqual(missing, { ok: false, reason: 'pigpio-not-a-real-package is not installed: apt install pigpio (the C library), then npm install pigpio-not-a-real-package' });
  const pi5 = await loadPigpio({ root: fakeProc('Raspberry Pi 5 Model B Rev 1.0') });
  t.false(pi5.ok);
  if (!pi5.ok) t.regex(pi5.reason, /pigpio does not support the Pi 5.*pwm-fan and gpio-leds/);
  const jetson = await loadPigpio({ root: fakeProc('NVIDIA Jetson Orin Nano Developer Kit') });
  if (!jetson.ok) t.regex(jetson.reason, /not a Raspberry Pi \(model: NVIDIA Jetson Orin Nano Developer Kit\)/);
});

test('with a working pigpio: hardware PWM on PWM pins, software PWM elsewhere, LED and active-low alert levels', async (t) => {
  const { pigpio, writes } = fakePigpio();
  const hardware = new GpioBridge({ fanPin: 18, ledPin: 17, alertPin: 27, alertActiveLow: true, load: async () => ({ ok: true, pigpio }) });
  await hardware.setFan!(0.5);
  await hardware.setLed!(true);
  await hardware.setLowBatteryAlert!(true);
  await hardware.setLowBatteryAlert!(false);
  await t.throwsAsync(hardware.setFan!(-0.1), { instanceOf: RangeError });
  t.true(hardware.status.available);
  await hardware.close();
  t.deepEqual(writes, ['18 hardware 25000 500000', '17 digital 1', '27 digital 0', '27 digital 1', '17 digital 0', 'terminate']);

  const software = fakePigpio();
  const soft = new GpioBridge({ fanPin: 23, fanPwmHz: 100, load: async () => ({ ok: true, pigpio: software.pigpio }) });
  t.is(soft.setLed, undefined, 'no LED pin: no LED actuator');
  await soft.setFan!(0.5);
  t.deepEqual(software.writes, ['23 frequency 100', '23 pwm 128']);
});
