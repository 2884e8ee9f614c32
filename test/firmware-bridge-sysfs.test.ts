import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { readHwmon, readPowerRails } from '../firmware-bridge/sysfs/hwmon.js';
import { readPowerSupplies } from '../firmware-bridge/sysfs/power-supply.js';
import { SysfsBridge } from '../firmware-bridge/sysfs/sysfs-bridge.js';
import { readThermalZones } from '../firmware-bridge/sysfs/thermal.js';
import type { BridgeReading } from '../firmware-bridge/types.js';

const fakeRoots: string[] = [];
test.after.always(() => {
  for (const root of fakeRoots) fs.rmSync(root, { recursive: true, force: true });
});

/** A fake /sys: each key is a path under the root, each value the attribute's text (sysfs ends it with a newline). */
function fakeSysfs(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-sysfs-'));
  fakeRoots.push(root);
  for (const [file, text] of Object.entries(files)) {
    const target = path.join(root, file);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, `${text}\n`);
  }
  return root;
}

const close = (actual: number | undefined, expected: number, tolerance = 1e-9) => actual !== undefined && Math.abs(actual - expected) <= tolerance;

/** Every number anywhere in the reading is finite: a bad file must never leak NaN. */
function allFinite(reading: BridgeReading): boolean {
  const numbers: number[] = [];
  JSON.stringify(reading, (_key, value: unknown) => {
    if (typeof value === 'number') numbers.push(value);
    return value;
  });
  // JSON turns NaN into null, so look at the raw fields too.
  for (const value of [reading.stateOfCharge, reading.voltageV, reading.currentA, reading.powerW, ...Object.values(reading.temperaturesC)]) {
    if (value !== undefined) numbers.push(value);
  }
  return numbers.every(Number.isFinite);
}

// A Raspberry Pi 4 with a UPS HAT whose fuel gauge has a kernel driver (max17040 overlay).
const PI_WITH_UPS_HAT = {
  'class/power_supply/battery/type': 'Battery',
  'class/power_supply/battery/capacity': '87',
  'class/power_supply/battery/voltage_now': '3987500',
  // The power_supply ABI makes discharge negative; status decides the sign the bridge reports.
  'class/power_supply/battery/current_now': '-420000',
  'class/power_supply/battery/status': 'Discharging',
  'class/power_supply/ac/type': 'Mains',
  'class/power_supply/ac/online': '0',
  'class/thermal/thermal_zone0/type': 'cpu-thermal',
  'class/thermal/thermal_zone0/temp': '51540',
  'class/thermal/thermal_zone0/trip_point_0_temp': '110000',
  'class/thermal/thermal_zone0/trip_point_0_type': 'critical',
  'class/hwmon/hwmon0/name': 'cpu_thermal',
  'class/hwmon/hwmon0/temp1_input': '51540',
};

// A Jetson Orin Nano: INA3221 on the input rails, several thermal zones with trip points, no battery.
const JETSON_ORIN = {
  'class/hwmon/hwmon1/name': 'ina3221',
  'class/hwmon/hwmon1/in1_label': 'VDD_IN',
  'class/hwmon/hwmon1/in1_input': '5072',
  'class/hwmon/hwmon1/curr1_input': '1240',
  'class/hwmon/hwmon1/in2_label': 'VDD_CPU_GPU_CV',
  'class/hwmon/hwmon1/in2_input': '5064',
  'class/hwmon/hwmon1/curr2_input': '312',
  'class/hwmon/hwmon1/in3_label': 'VDD_SOC',
  'class/hwmon/hwmon1/in3_input': '5064',
  'class/hwmon/hwmon1/curr3_input': '584',
  // Shunt voltages: no current partner, so not rails.
  'class/hwmon/hwmon1/in4_input': '12',
  'class/hwmon/hwmon0/name': 'pwmfan',
  'class/hwmon/hwmon0/pwm1': '74',
  'class/thermal/thermal_zone0/type': 'cpu-thermal',
  'class/thermal/thermal_zone0/temp': '47500',
  'class/thermal/thermal_zone0/trip_point_0_temp': '99000',
  'class/thermal/thermal_zone0/trip_point_0_type': 'passive',
  'class/thermal/thermal_zone0/trip_point_1_temp': '104500',
  'class/thermal/thermal_zone0/trip_point_1_type': 'critical',
  'class/thermal/thermal_zone1/type': 'gpu-thermal',
  'class/thermal/thermal_zone1/temp': '45968',
  'class/thermal/thermal_zone1/trip_point_0_temp': '99000',
  'class/thermal/thermal_zone1/trip_point_0_type': 'passive',
  'class/thermal/thermal_zone2/type': 'soc0-thermal',
  'class/thermal/thermal_zone2/temp': '46812',
  'class/thermal/thermal_zone10/type': 'tj-thermal',
  'class/thermal/thermal_zone10/temp': '48062',
  'class/thermal/thermal_zone10/trip_point_0_temp': '46000',
  'class/thermal/thermal_zone10/trip_point_0_type': 'active',
  'class/thermal/thermal_zone10/trip_point_1_temp': '103000',
  'class/thermal/thermal_zone10/trip_point_1_type': 'hot',
};

test('a Pi with a UPS HAT: battery from power_supply, temperatures from thermal and hwmon, nothing missing', async (t) => {
  const reading = await new SysfsBridge({ root: fakeSysfs(PI_WITH_UPS_HAT) }).read();
  t.is(reading.stateOfCharge, 0.87);
  t.true(close(reading.voltageV, 3.9875));
  t.true(close(reading.currentA, 0.42), 'discharging current reported positive');
  t.true(close(reading.powerW, 0.42 * 3.9875), 'no power_now: V × I');
  t.is(reading.charging, false);
  t.deepEqual(reading.temperaturesC, { 'cpu-thermal': 51.54, 'cpu_thermal/temp1': 51.54 });
  t.deepEqual(reading.tripPointsC, { 'cpu-thermal': [{ type: 'critical', temperatureC: 110 }] });
  // hwmon has no power monitor here, but power_supply supplied those readings: not missing.
  t.deepEqual(reading.missing, []);
  t.true(Math.abs(reading.at - Date.now()) < 5000);
});

test('a Jetson: the INA3221 input rail gives V, I and V × I; every thermal zone and trip point is read', async (t) => {
  const root = fakeSysfs(JETSON_ORIN);
  const reading = await new SysfsBridge({ root }).read();
  t.true(close(reading.voltageV, 5.072));
  t.true(close(reading.currentA, 1.24));
  t.true(close(reading.powerW, 5.072 * 1.24));
  t.deepEqual(Object.keys(reading.temperaturesC), ['cpu-thermal', 'gpu-thermal', 'soc0-thermal', 'tj-thermal'], 'zones in natural order');
  t.is(reading.temperaturesC['tj-thermal'], 48.062);
  t.deepEqual(reading.tripPointsC['cpu-thermal'], [
    { type: 'passive', temperatureC: 99 },
    { type: 'critical', temperatureC: 104.5 },
  ]);
  t.deepEqual(reading.tripPointsC['tj-thermal'], [
    { type: 'active', temperatureC: 46 },
    { type: 'hot', temperatureC: 103 },
  ]);
  t.is(reading.tripPointsC['soc0-thermal'], undefined);
  // No battery on a Jetson dev kit: said so, with where the bridge looked.
  t.deepEqual(
    reading.missing.map((m) => m.reading),
    ['stateOfCharge', 'charging'],
  );
  t.regex(reading.missing[0]!.reason, /no Battery under .*class\/power_supply/);

  const rails = await readPowerRails(root);
  t.deepEqual(
    rails.map((r) => r.name),
    ['ina3221/VDD_IN', 'ina3221/VDD_CPU_GPU_CV', 'ina3221/VDD_SOC'],
  );
  t.true(close(rails[2]!.powerW, 5.064 * 0.584));

  const soc = await readHwmon({ root, inputRail: 'VDD_SOC' });
  t.true(close(soc.currentA, 0.584));
  const wrong = await readHwmon({ root, inputRail: 'VDD_GPU' });
  t.is(wrong.powerW, undefined);
  t.regex(wrong.missing.find((m) => m.reading === 'powerW')!.reason, /no rail labelled VDD_GPU \(found: ina3221\/VDD_IN, /);
});

test('an ina219 through the kernel ina2xx driver: in1/curr1/power1, its power file preferred to V × I', async (t) => {
  const root = fakeSysfs({
    'class/hwmon/hwmon2/name': 'ina219',
    'class/hwmon/hwmon2/in0_input': '38', // shunt voltage, mV
    'class/hwmon/hwmon2/in1_input': '5104',
    'class/hwmon/hwmon2/curr1_input': '380',
    'class/hwmon/hwmon2/power1_input': '1940000',
  });
  const reading = await readHwmon({ root });
  t.true(close(reading.voltageV, 5.104));
  t.true(close(reading.currentA, 0.38));
  t.true(close(reading.powerW, 1.94));
  t.deepEqual(reading.missing, []);
});

test('malformed values are left out and listed with the file and the bad value; nothing throws, nothing is NaN', async (t) => {
  const root = fakeSysfs({
    'class/power_supply/BAT0/type': 'Battery',
    'class/power_supply/BAT0/capacity': '250',
    'class/power_supply/BAT0/voltage_now': 'n/a',
    'class/power_supply/BAT0/current_now': '',
    'class/power_supply/BAT0/status': 'Charging',
    'class/thermal/thermal_zone0/type': 'cpu-thermal',
    'class/thermal/thermal_zone0/temp': '900000',
    'class/thermal/thermal_zone0/trip_point_0_temp': '85000',
    'class/thermal/thermal_zone0/trip_point_0_type': 'critical',
    'class/thermal/thermal_zone0/trip_point_1_temp': 'oops',
    'class/thermal/thermal_zone0/trip_point_1_type': 'passive',
    'class/thermal/thermal_zone0/trip_point_2_temp': '60000',
    'class/thermal/thermal_zone0/trip_point_2_type': 'lukewarm',
    'class/thermal/thermal_zone1/type': 'gpu-thermal',
    'class/thermal/thermal_zone1/temp': '-274000',
    'class/hwmon/hwmon0/name': 'nct6775',
    'class/hwmon/hwmon0/temp1_label': 'SYSTIN',
    'class/hwmon/hwmon0/temp1_input': '1e5',
  });
  const reading = await new SysfsBridge({ root }).read();
  t.true(allFinite(reading));
  t.is(reading.stateOfCharge, undefined);
  t.is(reading.voltageV, undefined);
  t.is(reading.currentA, undefined);
  t.is(reading.charging, true, 'status still readable');
  t.deepEqual(reading.temperaturesC, {});
  t.deepEqual(reading.tripPointsC, { 'cpu-thermal': [{ type: 'critical', temperatureC: 85 }] });

  const reason = (name: string) => reading.missing.find((m) => m.reading === name)?.reason ?? '';
  t.regex(reason('stateOfCharge'), /BAT0\/capacity = '250': 250 % is outside 0\.\.100 %/);
  t.regex(reason('voltageV'), /BAT0\/voltage_now = 'n\/a' is not a number/);
  t.regex(reason('currentA'), /BAT0\/current_now is empty/);
  t.regex(reason('temperaturesC.cpu-thermal'), /thermal_zone0\/temp = '900000': 900 °C is outside -60\.\.200 °C/);
  t.regex(reason('temperaturesC.gpu-thermal'), /'-274000': -274 °C is outside/);
  t.regex(reason('temperaturesC.nct6775/SYSTIN'), /temp1_input = '1e5' is not a number/);
  t.regex(reason('tripPointsC.cpu-thermal/trip_point_1'), /trip_point_1_temp = 'oops'/);
  t.regex(reason('tripPointsC.cpu-thermal/trip_point_2'), /'lukewarm' is not passive, active, hot or critical/);
  t.true(reading.missing.every((m) => m.reason.includes(root) || !m.reason.includes('/')), 'every file named with its full path');
});

test('a missing or unreadable sensor is listed as missing, the rest still read', async (t) => {
  const root = fakeSysfs({
    'class/hwmon/hwmon0/name': 'ina3221',
    'class/hwmon/hwmon0/in1_label': 'VDD_IN',
    'class/hwmon/hwmon0/curr1_input': '900',
    // in1_input absent: the channel's voltage sensor is not there.
    'class/thermal/thermal_zone0/type': 'cpu-thermal',
    'class/thermal/thermal_zone0/temp': '40000',
    'class/thermal/thermal_zone1/type': 'board-thermal',
  });
  // A driver that fails the read (EIO on real hardware): a directory where the file should be.
  fs.mkdirSync(path.join(root, 'class/thermal/thermal_zone1/temp'));

  const reading = await new SysfsBridge({ root }).read();
  t.true(close(reading.currentA, 0.9));
  t.is(reading.voltageV, undefined);
  t.is(reading.powerW, undefined);
  t.deepEqual(reading.temperaturesC, { 'cpu-thermal': 40 });
  const reason = (name: string) => reading.missing.find((m) => m.reading === name)?.reason ?? '';
  t.regex(reason('voltageV'), /hwmon0\/in1_input does not exist/);
  t.regex(reason('powerW'), /no power1_input and voltage × current is incomplete/);
  t.regex(reason('temperaturesC.board-thermal'), /thermal_zone1\/temp: read failed \(EISDIR\)/);
});

test('power_supply: charging from status or an online Mains supply; peripheral batteries skipped; current sign from status', async (t) => {
  const charging = await readPowerSupplies({
    root: fakeSysfs({
      'class/power_supply/hid-mouse-battery/type': 'Battery',
      'class/power_supply/hid-mouse-battery/scope': 'Device',
      'class/power_supply/hid-mouse-battery/capacity': '5',
      'class/power_supply/ups/type': 'Battery',
      'class/power_supply/ups/capacity': '64',
      'class/power_supply/ups/voltage_now': '4100000',
      'class/power_supply/ups/power_now': '2050000',
      'class/power_supply/ups/status': 'Charging',
      'class/power_supply/usb/type': 'USB',
      'class/power_supply/usb/online': '1',
    }),
  });
  t.is(charging.stateOfCharge, 0.64, 'the UPS battery, not the mouse');
  t.true(close(charging.powerW, -2.05), 'charging: negative');
  t.true(close(charging.currentA, -0.5), 'no current_now: P / V');
  t.is(charging.charging, true);
  t.deepEqual(charging.missing, []);

  const idleOnMains = await readPowerSupplies({
    root: fakeSysfs({
      'class/power_supply/BAT1/type': 'Battery',
      'class/power_supply/BAT1/capacity': '100',
      'class/power_supply/BAT1/voltage_now': '4200000',
      'class/power_supply/BAT1/current_now': '0',
      'class/power_supply/BAT1/status': 'Not charging',
      'class/power_supply/AC/type': 'Mains',
      'class/power_supply/AC/online': '1',
    }),
    battery: 'BAT1',
  });
  t.is(idleOnMains.charging, true, 'not charging but on mains: the battery is not drained');

  const nothing = await readPowerSupplies({ root: fakeSysfs({}) });
  t.deepEqual(
    nothing.missing.map((m) => m.reading),
    ['stateOfCharge', 'charging'],
  );
  t.regex(nothing.missing[0]!.reason, /found: nothing/);

  const zones = await readThermalZones({ root: fakeSysfs({}) });
  t.regex(zones.missing[0]!.reason, /no thermal zones under/);
});

test('RTC wake alarm: the sysfs bridge clears the alarm, arms it N seconds ahead, and says what is wrong when it cannot', async (t) => {
  const root = fakeSysfs({ 'class/rtc/rtc0/wakealarm': '' });
  const alarm = path.join(root, 'class/rtc/rtc0/wakealarm');
  const bridge = new SysfsBridge({ root, rtc: 'rtc0' });
  await bridge.armWake!({ seconds: 3600, wakeOnMotion: false, graceSeconds: 20 });
  t.is(fs.readFileSync(alarm, 'utf8'), '+3600', 'relative to now, as the kernel takes it');

  await t.throwsAsync(bridge.armWake!({ seconds: 60, wakeOnMotion: true, graceSeconds: 20 }), { message: /wakes on time only: waking on motion needs a power-management microcontroller/ });
  await t.throwsAsync(new SysfsBridge({ root, rtc: 'rtc1' }).armWake!({ seconds: 60, wakeOnMotion: false, graceSeconds: 20 }), { message: /no wake alarm at .*rtc1\/wakealarm: the Raspberry Pi 5 has rtc0/ });
  t.is(new SysfsBridge({ root }).armWake, undefined, 'without an RTC the bridge arms nothing');
});
