import test from 'ava';
import { SIMULATED_ZONE, SimulatedBridge } from '../firmware-bridge/simulated.js';

const close = (actual: number | undefined, expected: number, tolerance = 1e-9) => actual !== undefined && Math.abs(actual - expected) <= tolerance;
const START = new Date(2026, 5, 21, 0, 0, 0).getTime(); // local midnight, so solar hours do not depend on the time zone

test('the battery drains by exactly the consumed energy plus idle power × time', async (t) => {
  const bridge = new SimulatedBridge({ capacityWh: 10, initialStateOfCharge: 0.5, idlePowerW: 2, clock: 'manual', startAt: START });
  const capacityJ = 10 * 3600;
  let expectedJ = 0.5 * capacityJ;

  bridge.advance(100);
  expectedJ -= 2 * 100;
  bridge.consume(500);
  expectedJ -= 500;
  t.true(close((await bridge.read()).stateOfCharge, expectedJ / capacityJ));

  // Many small frames: the sum is what counts, not the step size.
  for (let i = 0; i < 1000; i++) {
    bridge.consume(1.5);
    bridge.advance(0.1);
  }
  expectedJ -= 1000 * 1.5 + 2 * 100;
  const reading = await bridge.read();
  t.true(close(reading.stateOfCharge, expectedJ / capacityJ), `${reading.stateOfCharge} vs ${expectedJ / capacityJ}`);
  t.is(reading.at, START + 200_000, 'simulated time: 100 s + 1000 × 0.1 s');
  t.true(close(reading.powerW, 2 + 1.5 / 0.1, 1e-6), 'power over the last step: idle + that frame');
  t.is(reading.charging, false);
  t.true(reading.currentA! > 0, 'discharging');

  // Empty is empty: no negative charge.
  bridge.consume(1e9);
  t.is((await bridge.read()).stateOfCharge, 0);
  t.throws(() => bridge.consume(-1), { instanceOf: RangeError });
  t.throws(() => bridge.advance(Number.NaN), { instanceOf: RangeError });
});

test('the temperature approaches ambient + P·R with time constant τ, whatever the step size', async (t) => {
  const options = { idlePowerW: 5, ambientC: 25, thermalResistanceCPerW: 8, thermalTimeConstantS: 120, clock: 'manual', startAt: START } as const;
  const oneStep = new SimulatedBridge(options);
  oneStep.advance(120);
  const afterTau = (await oneStep.read()).temperaturesC[SIMULATED_ZONE]!;
  // One time constant: 63.2 % of the way from 25 °C to 25 + 5 W × 8 °C/W = 65 °C.
  t.true(close(afterTau, 25 + 40 * (1 - Math.exp(-1)), 1e-4), `${afterTau}`);

  const smallSteps = new SimulatedBridge(options);
  for (let i = 0; i < 1200; i++) smallSteps.advance(0.1);
  t.true(close((await smallSteps.read()).temperaturesC[SIMULATED_ZONE], afterTau, 1e-4));

  oneStep.advance(120 * 20);
  t.true(close((await oneStep.read()).temperaturesC[SIMULATED_ZONE], 65, 1e-4), 'settles at ambient + P·R');

  // The agent's reported energy heats too: 600 J over 60 s is 10 W more.
  const busy = new SimulatedBridge(options);
  busy.consume(600);
  busy.advance(60);
  t.true(close((await busy.read()).temperaturesC[SIMULATED_ZONE], 25 + 15 * 8 * (1 - Math.exp(-60 / 120)), 1e-4));

  const reading = await oneStep.read();
  t.deepEqual(reading.tripPointsC, {
    [SIMULATED_ZONE]: [
      { type: 'passive', temperatureC: 70 },
      { type: 'critical', temperatureC: 85 },
    ],
  });
});

test('the fan lowers the thermal resistance: a lower steady state, reached faster', async (t) => {
  const bridge = new SimulatedBridge({
    idlePowerW: 5,
    ambientC: 25,
    thermalResistanceCPerW: 8,
    fanThermalResistanceCPerW: 3,
    thermalTimeConstantS: 120,
    initialTemperatureC: 65,
    clock: 'manual',
    startAt: START,
  });
  await bridge.setFan(1);
  t.deepEqual(bridge.actuators, { fanDuty: 1, led: false, lowBatteryAlert: false });
  // Fan on: R = 3 °C/W, so 25 + 5 × 3 = 40 °C; the heat capacity (120 s / 8 °C/W) stays, so τ = 3 × 15 = 45 s.
  bridge.advance(45);
  t.true(close((await bridge.read()).temperaturesC[SIMULATED_ZONE], 40 + 25 * Math.exp(-1), 1e-4));
  await bridge.setFan(0.5);
  bridge.advance(10_000);
  t.true(close((await bridge.read()).temperaturesC[SIMULATED_ZONE], 25 + 5 * 5.5, 1e-4), 'half duty: R = 5.5 °C/W');
  await t.throwsAsync(bridge.setFan(2), { instanceOf: RangeError });
  await bridge.setLed(true);
  await bridge.setLowBatteryAlert(true);
  t.deepEqual(bridge.actuators, { fanDuty: 0.5, led: true, lowBatteryAlert: true });
});

test('charging: a charger adds its power, the battery tops out at full, and the reading says charging', async (t) => {
  const bridge = new SimulatedBridge({ capacityWh: 1, initialStateOfCharge: 0.5, idlePowerW: 2, chargePowerW: 10, clock: 'manual', startAt: START });
  bridge.setCharging(true);
  bridge.advance(100);
  const reading = await bridge.read();
  t.true(close(reading.stateOfCharge, (1800 + 8 * 100) / 3600));
  t.is(reading.charging, true);
  t.true(reading.currentA! < 0, 'net current into the battery');
  bridge.advance(3600);
  t.is((await bridge.read()).stateOfCharge, 1);
  bridge.setCharging(false);
  t.is((await bridge.read()).charging, false);
});

test('solar: half a sine from sunrise to sunset adds peak × day × 2/π', async (t) => {
  const bridge = new SimulatedBridge({
    capacityWh: 1000,
    initialStateOfCharge: 0,
    idlePowerW: 0,
    solar: { peakW: 20, sunriseHour: 6, sunsetHour: 18 },
    clock: 'manual',
    startAt: START,
  });
  bridge.advance(6 * 3600);
  t.is((await bridge.read()).stateOfCharge, 0, 'nothing before sunrise');
  bridge.advance(6 * 3600);
  t.true((await bridge.read()).charging, 'noon');
  bridge.advance(12 * 3600);
  const expectedJ = (20 * 12 * 3600 * 2) / Math.PI;
  const stateOfCharge = (await bridge.read()).stateOfCharge!;
  t.true(Math.abs(stateOfCharge * 1000 * 3600 - expectedJ) / expectedJ < 1e-6, `${stateOfCharge * 3.6e6} J vs ${expectedJ} J`);
});

test('time acceleration: the real clock runs timeScale simulated seconds per second; the agent clock waits in simulated time', async (t) => {
  const fast = new SimulatedBridge({ timeScale: 3600, idlePowerW: 3.6, capacityWh: 100, startAt: START });
  const before = fast.clock.nowMs();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const elapsedS = (fast.clock.nowMs() - before) / 1000;
  // 100 ms of real time is about 360 simulated seconds; timers are not exact, so a wide band.
  t.true(elapsedS > 300 && elapsedS < 3600, `${elapsedS} s`);
  t.true((await fast.read()).stateOfCharge! < 1);

  const manual = new SimulatedBridge({ clock: 'manual', startAt: START });
  await manual.clock.wait(2500);
  t.is(manual.clock.nowMs(), START + 2500);
  t.is(manual.elapsedS, 2.5);
});

test('the reading has the shape of a real bridge reading', async (t) => {
  const reading = await new SimulatedBridge({ clock: 'manual', startAt: START }).read();
  t.deepEqual(Object.keys(reading).sort(), ['at', 'charging', 'currentA', 'missing', 'powerW', 'stateOfCharge', 'temperaturesC', 'tripPointsC', 'voltageV']);
  t.is(reading.stateOfCharge, 1);
  t.is(reading.voltageV, 4.2);
  t.deepEqual(reading.missing, []);
});

test('a power cycle: grace at idle, powered down at off power until the timer, then a boot charged at boot power', async (t) => {
  const sim = new SimulatedBridge({ clock: 'manual', capacityWh: 10, idlePowerW: 2, offPowerW: 0.05, bootS: 30, bootPowerW: 3, fanPowerW: 0, initialTemperatureC: 60 });
  t.throws(() => sim.powerCycle(), { message: /no wake-up was armed/ });
  const before = sim.stateOfCharge * 10 * 3600;
  await sim.armWake({ seconds: 3600, wakeOnMotion: false, graceSeconds: 20 });
  const cycle = sim.powerCycle();
  t.deepEqual(cycle, { reason: 'timer', offS: 3600, bootJ: 90 });
  t.is(sim.wakeReason(), 'timer');
  const spent = before - sim.stateOfCharge * 10 * 3600;
  t.true(close(spent, 20 * 2 + 3600 * 0.05 + 30 * 3, 1e-6), `${spent} J: 40 J of grace, 180 J off, 90 J of boot`);
  t.true(close(sim.elapsedS, 20 + 3600 + 30, 1e-9));
  // An hour off cooled the board from 60 °C to ambient (τ 120 s); the 30 s boot then warms it by about 5 °C.
  const afterBoot = (await sim.read()).temperaturesC[SIMULATED_ZONE]!;
  t.true(close(afterBoot, 25 + 0.05 * 8 + (3 * 8 - 0.05 * 8) * (1 - Math.exp(-30 / 120)), 0.05), `${afterBoot} °C`);
});

test('a sleep that wakes on motion ends at the first motion once armed, even in the grace time; one that does not ignores motion', async (t) => {
  const motionAtS = [10, 500, 900];
  const waking = new SimulatedBridge({ clock: 'manual', motionAtS, bootS: 0 });
  await waking.armWake({ seconds: 3600, wakeOnMotion: true, graceSeconds: 20 });
  // The microcontroller watches the PIR from the moment it is armed: motion at 10 s, in the grace time, wakes the board as soon as it is down.
  t.deepEqual(waking.powerCycle(), { reason: 'motion', offS: 0, bootJ: 0 });
  await waking.armWake({ seconds: 3600, wakeOnMotion: true, graceSeconds: 20 });
  t.deepEqual(waking.powerCycle(), { reason: 'motion', offS: 460, bootJ: 0 }, 'armed at 20 s, down at 40 s, woken by the motion at 500 s');
  t.is(waking.wakeReason(), 'motion');
  const deaf = new SimulatedBridge({ clock: 'manual', motionAtS, bootS: 0 });
  await deaf.armWake({ seconds: 3600, wakeOnMotion: false, graceSeconds: 20 });
  t.is(deaf.powerCycle().reason, 'timer');
  const realClock = new SimulatedBridge({ clock: 'real' });
  await realClock.armWake({ seconds: 60, wakeOnMotion: false, graceSeconds: 0 });
  t.throws(() => realClock.powerCycle(), { message: /needs the manual clock/ });
});
