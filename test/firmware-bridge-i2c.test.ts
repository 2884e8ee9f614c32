import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { combineBridges } from '../firmware-bridge/combine.js';
import { I2cBridge } from '../firmware-bridge/i2c/i2c-bridge.js';
import { I2cUnavailableError, openI2cBus, type I2cBus } from '../firmware-bridge/i2c/i2c-bus.js';
import { readIna219 } from '../firmware-bridge/i2c/ina219.js';
import { readMax17048 } from '../firmware-bridge/i2c/max17048.js';
import { SysfsBridge } from '../firmware-bridge/sysfs/sysfs-bridge.js';

/**
 * A fake bus holding each chip's registers as the chip stores them (most significant byte first)
 * and answering readWord as SMBus does: the first byte on the wire becomes the low byte.
 * An address with no chip fails like a NAK on Linux.
 */
class FakeI2cBus implements I2cBus {
  readonly transfers: string[] = [];
  closed = false;

  constructor(private readonly chips: Record<number, Record<number, number>>) {}

  async readWord(address: number, command: number): Promise<number> {
    this.transfers.push(`${address}:${command}`);
    const register = this.chips[address]?.[command];
    if (register === undefined) throw Object.assign(new Error('Remote I/O error'), { code: 'EREMOTEIO' });
    const firstOnWire = register >> 8;
    const secondOnWire = register & 0xff;
    return (secondOnWire << 8) | firstOnWire;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const close = (actual: number | undefined, expected: number, tolerance = 1e-9) => actual !== undefined && Math.abs(actual - expected) <= tolerance;

test('MAX17048: VCELL at 78.125 µV/LSB and SOC at 1/256 % per LSB, big-endian words', async (t) => {
  const bus = new FakeI2cBus({
    0x36: {
      0x02: 0xc5a0, // 50592 × 78.125 µV = 3.9525 V (read little-endian it would be 0xa0c5: 3.2154 V)
      0x04: 0x5780, // 0x57 = 87 %, 0x80 = 128/256 %: 87.5 %
      0x16: 0xffce, // -50 × 0.208 %/h = -10.4 %/h: discharging
    },
  });
  const reading = await readMax17048(bus);
  t.is(reading.voltageV, 3.9525);
  t.is(reading.stateOfCharge, 0.875);
  t.is(reading.charging, false);
  t.deepEqual(reading.missing, []);
  t.deepEqual(bus.transfers, ['54:2', '54:4', '54:22']);
});

test('MAX17048: charge rate decides charging; an idle rate or a garbage SOC is listed as missing', async (t) => {
  const charging = await readMax17048(new FakeI2cBus({ 0x36: { 0x02: 0xd200, 0x04: 0x6400, 0x16: 0x0030 } }));
  t.is(charging.voltageV, 0xd200 * 78.125e-6); // 53760 × 78.125 µV = 4.2 V
  t.is(charging.voltageV, 4.2);
  t.is(charging.stateOfCharge, 1);
  t.is(charging.charging, true, '+48 × 0.208 = +9.98 %/h');

  const idle = await readMax17048(new FakeI2cBus({ 0x36: { 0x02: 0xd200, 0x04: 0xffff, 0x16: 0x0002 } }));
  t.is(idle.stateOfCharge, undefined);
  t.is(idle.charging, undefined);
  const reason = (name: string) => idle.missing.find((m) => m.reading === name)?.reason ?? '';
  t.regex(reason('stateOfCharge'), /max17048 at 0x36 register SOC \(0x04\) = 0xffff: 255\.996094 % is outside 0\.\.105 %/);
  t.regex(reason('charging'), /0\.416 %\/h is within ±1 %\/h/);

  // A MAX17043 has no CRATE: the read fails, the rest stands.
  const noCrate = await readMax17048(new FakeI2cBus({ 0x36: { 0x02: 0xd200, 0x04: 0x3200 } }));
  t.is(noCrate.stateOfCharge, 0.5);
  t.regex(noCrate.missing[0]!.reason, /register CRATE \(0x16\): read failed \(Remote I\/O error\)/);
  const skipped = await readMax17048(new FakeI2cBus({ 0x36: { 0x02: 0xd200, 0x04: 0x3200 } }), { readChargeRate: false });
  t.regex(skipped.missing[0]!.reason, /readChargeRate: false/);
});

test('INA219: bus voltage (value >> 3) × 4 mV, current from the signed shunt voltage over the shunt resistance', async (t) => {
  // 5.104 V = 1276 × 4 mV, shifted left 3, with the conversion-ready bit (bit 1) set: 0x27e2.
  // Shunt 38.00 mV = 3800 × 10 µV = 0x0ed8; over 0.1 Ω: 0.38 A; × 5.104 V = 1.93952 W.
  const bus = new FakeI2cBus({ 0x40: { 0x02: 0x27e2, 0x01: 0x0ed8 } });
  const reading = await readIna219(bus, { shuntOhms: 0.1 });
  t.is(reading.voltageV, 5.104);
  t.is(reading.currentA, 0.38);
  t.true(close(reading.powerW, 1.93952));
  t.deepEqual(reading.missing, []);

  const smallShunt = await readIna219(bus, { shuntOhms: 0.01 });
  t.is(smallShunt.currentA, 3.8);

  // -12.50 mV = -1250 LSB = 0xfb1e in two's complement: current flowing back (charging).
  const reverse = await readIna219(new FakeI2cBus({ 0x41: { 0x02: 0x27e2, 0x01: 0xfb1e } }), { address: 0x41 });
  t.is(reverse.currentA, -0.125);
  const flipped = await readIna219(new FakeI2cBus({ 0x41: { 0x02: 0x27e2, 0x01: 0xfb1e } }), { address: 0x41, reverseCurrent: true });
  t.is(flipped.currentA, 0.125);

  const saturated = await readIna219(new FakeI2cBus({ 0x40: { 0x02: 0x27e2, 0x01: 0x7d00 } }));
  t.is(saturated.currentA, undefined);
  t.regex(saturated.missing[0]!.reason, /ina219 at 0x40 register SHUNT_VOLTAGE \(0x01\) = 0x7d00: at the ±320 mV limit/);
});

test('I2C bridge: chips in order, a chip that does not answer listed as missing, the bus closed once', async (t) => {
  const bus = new FakeI2cBus({ 0x36: { 0x02: 0xc5a0, 0x04: 0x5780, 0x16: 0xffce } });
  const bridge = new I2cBridge({
    openBus: async () => bus,
    busLabel: '/dev/i2c-1',
    devices: [
      { chip: 'max17048', address: 0x36 },
      { chip: 'ina219', address: 0x40, shuntOhms: 0.1 },
    ],
  });
  t.is(bridge.name, 'i2c(/dev/i2c-1: max17048 at 0x36, ina219 at 0x40)');
  const reading = await bridge.read();
  t.is(reading.stateOfCharge, 0.875);
  t.is(reading.voltageV, 3.9525, 'the gauge comes first, so its voltage wins');
  t.deepEqual(reading.missing.map((m) => m.reading).sort(), ['currentA', 'powerW']);
  t.regex(reading.missing[0]!.reason, /ina219 at 0x40 register .*read failed \(Remote I\/O error\)/);
  await bridge.close();
  t.true(bus.closed);
});

test('I2C bridge: a bus that cannot be opened lists every reading of its chips, with the reason, and retries', async (t) => {
  let attempts = 0;
  const bridge = new I2cBridge({
    openBus: async () => {
      attempts += 1;
      if (attempts === 1) throw new I2cUnavailableError('Cannot open /dev/i2c-1: ENOENT; enable I2C');
      return new FakeI2cBus({ 0x36: { 0x02: 0xc5a0, 0x04: 0x5780, 0x16: 0xffce } });
    },
    busLabel: '/dev/i2c-1',
    devices: [{ chip: 'max17048' }],
  });
  const first = await bridge.read();
  t.deepEqual(
    first.missing.map((m) => m.reading),
    ['stateOfCharge', 'voltageV', 'charging'],
  );
  t.true(first.missing.every((m) => m.reason.includes('enable I2C')));
  const second = await bridge.read();
  t.is(second.stateOfCharge, 0.875);
  await bridge.close();
});

test('openI2cBus on a machine without that bus: a clear error naming the device and the fix', async (t) => {
  const error = await t.throwsAsync(openI2cBus(250), { instanceOf: I2cUnavailableError });
  t.regex(error!.message, /Cannot open \/dev\/i2c-250: .*ENOENT.*enable I2C/);
});

test('combined: sysfs temperatures + I2C fuel gauge; first source with a value wins, missing lists only what none had', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-sysfs-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const zone = path.join(root, 'class/thermal/thermal_zone0');
  fs.mkdirSync(zone, { recursive: true });
  fs.writeFileSync(path.join(zone, 'type'), 'cpu-thermal\n');
  fs.writeFileSync(path.join(zone, 'temp'), '62300\n');

  const sysfs = new SysfsBridge({ root });
  const gauge = new I2cBridge({
    openBus: async () => new FakeI2cBus({ 0x36: { 0x02: 0xc5a0, 0x04: 0x5780, 0x16: 0x0030 } }),
    busLabel: '/dev/i2c-1',
    devices: [{ chip: 'max17048' }],
  });
  const combined = combineBridges([sysfs, gauge]);
  t.is(combined.name, 'combined(sysfs(' + root + ') + i2c(/dev/i2c-1: max17048 at 0x36))');
  t.is(combined.setFan, undefined, 'no source has a fan');

  const reading = await combined.read();
  t.is(reading.temperaturesC['cpu-thermal'], 62.3);
  t.is(reading.stateOfCharge, 0.875);
  t.is(reading.voltageV, 3.9525);
  t.is(reading.charging, true);
  // sysfs had no battery and no power monitor; the gauge filled SOC, voltage and charging.
  t.deepEqual(reading.missing.map((m) => m.reading).sort(), ['currentA', 'powerW']);
  t.true(reading.missing.every((m) => m.reason.includes(root)), 'the reasons say where sysfs looked');
  await combined.close();
});
