import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { BridgeConfigError, GpioBridge, SimulatedBridge, SysfsBridge, createBridge, parseBridgeConfig } from '../firmware-bridge/index.js';

function problemsOf(config: unknown): string[] {
  try {
    parseBridgeConfig(config);
  } catch (error) {
    if (error instanceof BridgeConfigError) return error.problems;
    throw error;
  }
  return [];
}

test('createBridge builds each kind from a plain config', async (t) => {
  const simulated = await createBridge({ kind: 'simulated', clock: 'manual', capacityWh: 10, initialStateOfCharge: 0.4 });
  t.true(simulated instanceof SimulatedBridge);
  t.is((await simulated.read()).stateOfCharge, 0.4);

  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-sysfs-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.mkdirSync(path.join(root, 'class/thermal/thermal_zone0'), { recursive: true });
  fs.writeFileSync(path.join(root, 'class/thermal/thermal_zone0/type'), 'cpu-thermal\n');
  fs.writeFileSync(path.join(root, 'class/thermal/thermal_zone0/temp'), '48000\n');
  const sysfs = await createBridge({ kind: 'sysfs', root });
  t.true(sysfs instanceof SysfsBridge);
  t.deepEqual((await sysfs.read()).temperaturesC, { 'cpu-thermal': 48 });

  const gpio = await createBridge({ kind: 'gpio', fanPin: 18 });
  t.true(gpio instanceof GpioBridge);
  t.is(typeof gpio.setFan, 'function');
  t.is(gpio.setLed, undefined);
});

test('combined: sysfs + an absent I2C gauge + an absent serial MCU + GPIO; absent hardware is listed, not thrown', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-sysfs-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.mkdirSync(path.join(root, 'class/thermal/thermal_zone0'), { recursive: true });
  fs.writeFileSync(path.join(root, 'class/thermal/thermal_zone0/type'), 'cpu-thermal\n');
  fs.writeFileSync(path.join(root, 'class/thermal/thermal_zone0/temp'), '55000\n');

  const bridge = await createBridge({
    kind: 'combined',
    sources: [
      { kind: 'sysfs', root },
      { kind: 'i2c', bus: 250, devices: [{ chip: 'max17048', address: '0x36' }] },
      { kind: 'serial', path: '/dev/ttyEDGEEXIT-NONE', reopenAfterMs: 60_000 },
      { kind: 'gpio', fanPin: 18, ledPin: 17 },
    ],
  });
  t.regex(bridge.name, /^combined\(sysfs\(.*\) \+ i2c\(\/dev\/i2c-250: max17048 at 0x36\) \+ serial\(\/dev\/ttyEDGEEXIT-NONE\) \+ gpio\(fan 18, led 17\)\)$/);
  const reading = await bridge.read();
  t.deepEqual(reading.temperaturesC, { 'cpu-thermal': 55 });
  const reasons = reading.missing.filter((m) => m.reading === 'stateOfCharge').map((m) => m.reason);
  t.true(reasons.some((r) => /Cannot open \/dev\/i2c-250/.test(r)), reasons.join('\n'));
  t.true(reasons.some((r) => /Cannot open serial port \/dev\/ttyEDGEEXIT-NONE/.test(r)), reasons.join('\n'));
  // Off a Pi the GPIO actuators are no-ops, so this neither throws nor hangs.
  await bridge.setFan!(0.3);
  await bridge.setLed!(true);
  // The serial MCU has an alert command; with its port absent the state is kept until it opens.
  await bridge.setLowBatteryAlert!(true);
  await bridge.close();
});

test('a bad config names each field and its allowed range', (t) => {
  t.deepEqual(problemsOf({ kind: 'battery' }), ['bridge.kind: must be simulated, sysfs, i2c, serial, gpio, pir or combined (got "battery")']);
  t.deepEqual(problemsOf({ kind: 'simulated', initialStateOfCharge: 1.5, thermalTimeConstantS: 0 }), [
    'bridge.initialStateOfCharge: must be 0..1 (fraction) (got 1.5)',
    'bridge.thermalTimeConstantS: must be 1..86400 s (got 0)',
  ]);
  t.deepEqual(problemsOf({ kind: 'i2c', devices: [{ chip: 'max17048', address: 200 }, { chip: 'ina219', shuntOhms: 0 }, { chip: 'bq27441' }] }), [
    'bridge.devices.0.address: must be an I2C address 0x8..0x77 (got 200)',
    'bridge.devices.1.shuntOhms: must be 0.0001..10 Ω (got 0)',
    'bridge.devices.2.chip: must be max17048 or ina219 (got "bq27441")',
  ]);
  t.deepEqual(problemsOf({ kind: 'serial', path: '/dev/ttyAMA0', baudRate: 9600.5 }), ['bridge.baudRate: must be a whole number 300..4000000 baud (got 9600.5)']);
  t.deepEqual(problemsOf({ kind: 'serial' }), ['bridge.path: must be the tty path, e.g. /dev/ttyAMA0']);
  t.deepEqual(problemsOf({ kind: 'gpio', fanPin: 40 }), ['bridge.fanPin: must be 0..27 (BCM GPIO number) (got 40)']);
  t.deepEqual(problemsOf({ kind: 'gpio' }), ['bridge: needs at least one of fanPin, ledPin, alertPin (got {"kind":"gpio"})']);
  t.regex(problemsOf({ kind: 'sysfs', rooot: '/sys' })[0]!, /^bridge: unknown key "rooot": did you mean "root"\?/);
  t.deepEqual(problemsOf({ kind: 'combined', sources: [{ kind: 'combined', sources: [] }] }), [
    'bridge.sources.0.kind: must be simulated, sysfs, i2c, serial, gpio or pir (a combined source cannot nest) (got "combined")',
  ]);
  t.deepEqual(problemsOf({ kind: 'simulated', fanThermalResistanceCPerW: 20 }), [
    'bridge.fanThermalResistanceCPerW: must not exceed thermalResistanceCPerW: the fan cools, it does not insulate (got 20)',
  ]);
});

test('defaults fill what a config leaves out; hex I2C addresses are read', (t) => {
  t.deepEqual(parseBridgeConfig({ kind: 'i2c', devices: [{ chip: 'ina219', address: '0x41' }, { chip: 'max17048' }] }), {
    kind: 'i2c',
    bus: 1,
    devices: [
      { chip: 'ina219', address: 0x41, shuntOhms: 0.1, reverseCurrent: false },
      { chip: 'max17048', address: 0x36, readChargeRate: true },
    ],
  });
  t.deepEqual(parseBridgeConfig({ kind: 'serial', path: '/dev/ttyACM0' }), {
    kind: 'serial',
    path: '/dev/ttyACM0',
    baudRate: 115_200,
    staleAfterMs: 5000,
    temperatureName: 'ups',
    reopenAfterMs: 10_000,
  });
  t.is(parseBridgeConfig({ kind: 'sysfs' }).kind, 'sysfs');
});

test('createBridge rejects a bad config before touching hardware', async (t) => {
  const error = await t.throwsAsync(createBridge({ kind: 'simulated', capacityWh: -1 }), { instanceOf: BridgeConfigError });
  t.regex(error!.message, /Invalid bridge config:\n {2}- bridge\.capacityWh: must be 0\.1\.\.100000 Wh \(got -1\)/);
});
