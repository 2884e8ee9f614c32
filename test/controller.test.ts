import test from 'ava';
import { EnergyController, type ControllerBounds } from '../agent/controller/energy-controller.js';
import { operatingLadder } from '../agent/controller/operating-ladder.js';
import type { OperatingPoint } from '../agent/model-package/manifest.js';

/** A calibrated ladder shaped like the CIFAR-10 package's: cost falls as accuracy is given up. */
function point(name: string, accuracy: number, latency: number, maxExit = 3): OperatingPoint {
  return { name, policy: 'max-probability', thresholds: [0.9, 0.9, 0.9, 1], maxExit, validationAccuracy: accuracy, expectedMacs: latency * 1e7, expectedLatencyMs: latency, exitHistogram: [0, 0, 0, 1] };
}
const POINTS = [
  point('full', 0.8, 3.0),
  point('max-probability@-0.5', 0.795, 2.6),
  point('balanced', 0.79, 2.2),
  point('max-probability@-2.0', 0.78, 1.9),
  point('max-probability@-5.0', 0.75, 1.4),
  point('max-probability@-10.0', 0.7, 1.0),
  point('exit-0', 0.6, 0.9, 0),
];
const BOUNDS: ControllerBounds = { maxAccuracyDropPoints: 5, maxTemperatureC: 75, minBatteryReserve: 0.1, minDwellS: 30 };

test('the ladder keeps calibrated points within the accuracy bound, most accurate first, and no static exits', (t) => {
  t.deepEqual(operatingLadder(POINTS, 5).map((p) => p.name), ['full', 'max-probability@-0.5', 'balanced', 'max-probability@-2.0', 'max-probability@-5.0']);
  t.deepEqual(operatingLadder(POINTS, 1).map((p) => p.name), ['full', 'max-probability@-0.5', 'balanced']);
});

test('the ladder leaves off a point that another beats on accuracy and cost, but keeps full and balanced', (t) => {
  const points = [
    ...POINTS,
    // Slower than max-probability@-0.5 and less accurate: a patience point that runs the glance on every frame.
    point('patience-2', 0.79, 2.8),
    // As accurate as balanced, and cheaper: balanced stays because the controller asks for it by name.
    point('max-probability@-1.0', 0.79, 2.1),
  ];
  t.deepEqual(operatingLadder(points, 5).map((p) => p.name), ['full', 'max-probability@-0.5', 'balanced', 'max-probability@-1.0', 'max-probability@-2.0', 'max-probability@-5.0']);
  // Dominance is judged among the points within the bound: an excluded point removes nothing.
  t.deepEqual(operatingLadder([point('full', 0.8, 3.0), point('slow', 0.77, 2.0), point('fast-but-poor', 0.6, 0.5)], 5).map((p) => p.name), ['full', 'slow']);
});

test('the most accurate point runs only on a charger; a full battery runs balanced, both at the full frame rate', (t) => {
  const charging = new EnergyController(POINTS, BOUNDS, 20).decide({ nowS: 0, stateOfCharge: 0.95, charging: true, temperatureC: 45 });
  t.is(charging.level, 'relaxed');
  t.is(charging.operatingPoint, 'full');
  t.is(charging.frameRate, 20);
  t.true(charging.offloadAllowed);
  const discharging = new EnergyController(POINTS, BOUNDS, 20).decide({ nowS: 0, stateOfCharge: 0.95, temperatureC: 45 });
  t.is(discharging.level, 'normal');
  t.is(discharging.operatingPoint, 'balanced');
  t.is(discharging.frameRate, 20);
  t.regex(discharging.reason, /battery 95%, discharging/);
});

test('a draining battery walks down the ladder to the cheapest allowed point and stops offloading at the reserve', (t) => {
  const controller = new EnergyController(POINTS, { ...BOUNDS, minDwellS: 0 }, 20);
  const seen = [0.9, 0.9, 0.3, 0.12].map((soc, i) => controller.decide({ nowS: i * 100, stateOfCharge: soc, charging: i === 0, temperatureC: 40 }));
  t.deepEqual(seen.map((d) => d.operatingPoint), ['full', 'balanced', 'max-probability@-2.0', 'max-probability@-5.0']);
  t.deepEqual(seen.map((d) => d.level), ['relaxed', 'normal', 'saving', 'critical']);
  t.deepEqual(seen.map((d) => d.frameRate), [20, 20, 20, 20], 'idle power dominates: slowing down would cost frames per charge');
  t.false(seen[3]!.offloadAllowed);
  t.true(seen[2]!.offloadAllowed);
});

test('a temperature wobbling at a margin does not make the frame rate flap', (t) => {
  const controller = new EnergyController(POINTS, BOUNDS, 40);
  const rates = new Set<number>();
  let changes = 0;
  for (let i = 0; i < 60; i++) {
    // Around the edge of the saving level's recovery margin (8 °C of headroom under 75 °C).
    const d = controller.decide({ nowS: 100 + i, stateOfCharge: 0.12, temperatureC: 67 + (i % 2 === 0 ? 0.05 : -0.05) });
    rates.add(d.frameRate);
    if (d.changed) changes++;
  }
  t.true(changes <= 2, `${changes} changes, frame rates ${[...rates].join(', ')}`);
});

test('hysteresis: a battery wobbling around a threshold does not flap', (t) => {
  const controller = new EnergyController(POINTS, { ...BOUNDS, minDwellS: 0 }, 20);
  let changes = 0;
  for (let i = 0; i < 40; i++) {
    // Around the saving level's threshold, 30% above the 10% reserve.
    const soc = 0.4 + (i % 2 === 0 ? 0.01 : -0.01);
    if (controller.decide({ nowS: i * 60, stateOfCharge: soc, temperatureC: 40 }).changed) changes++;
  }
  t.is(changes, 2, 'one change in (first decision), one when it first dips, none after');
});

test('the dwell time holds a decision, except in an emergency', (t) => {
  const controller = new EnergyController(POINTS, BOUNDS, 20);
  t.is(controller.decide({ nowS: 0, stateOfCharge: 0.9, temperatureC: 40 }).operatingPoint, 'balanced');
  const held = controller.decide({ nowS: 10, stateOfCharge: 0.3, temperatureC: 40 });
  t.is(held.operatingPoint, 'balanced');
  t.regex(held.reason, /holding battery at normal for the 30 s dwell time/);
  t.is(controller.decide({ nowS: 31, stateOfCharge: 0.3, temperatureC: 40 }).operatingPoint, 'max-probability@-2.0');
  const hot = controller.decide({ nowS: 32, stateOfCharge: 0.3, temperatureC: 76 });
  t.is(hot.level, 'critical');
  t.is(hot.operatingPoint, 'max-probability@-5.0');
  t.is(hot.frameRate, 20 * 0.5 * 0.5, 'a critical temperature slows down, and over the limit by half again');
});

test('the lower of the operator limit and the kernel trip point bounds the temperature', (t) => {
  const controller = new EnergyController(POINTS, { ...BOUNDS, minDwellS: 0 }, 20);
  t.is(controller.decide({ nowS: 0, charging: true, temperatureC: 58 }).level, 'relaxed');
  t.is(controller.decide({ nowS: 1, charging: true, temperatureC: 58, tripPointC: 60 }).level, 'saving');
  const d = controller.decide({ nowS: 2, charging: true, temperatureC: 59.5, tripPointC: 60 });
  t.is(d.level, 'critical');
  t.regex(d.reason, /60 °C limit/);
});

test('charging relaxes the battery side; missing readings fall back to the normal level and say so', (t) => {
  const controller = new EnergyController(POINTS, { ...BOUNDS, minDwellS: 0 }, 20);
  t.is(controller.decide({ nowS: 0, stateOfCharge: 0.15, charging: true, temperatureC: 40 }).level, 'relaxed');
  const blind = controller.decide({ nowS: 1 });
  t.is(blind.level, 'normal');
  t.is(blind.operatingPoint, 'balanced');
  t.regex(blind.reason, /battery level unknown/);
  t.regex(blind.reason, /temperature unknown/);
});

test('a package without a full point, or bounds no point meets, are refused', (t) => {
  t.throws(() => new EnergyController(POINTS.slice(1), BOUNDS, 20), { message: /no "full" operating point/ });
});

test('heat cuts the depth only when an offload server can take the deeper segments', (t) => {
  const warm = { stateOfCharge: 0.9, temperatureC: 71 }; // 4 °C below the 75 °C limit: saving
  const alone = new EnergyController(POINTS, { ...BOUNDS, minDwellS: 0 }, 20).decide({ nowS: 0, ...warm });
  t.is(alone.level, 'saving');
  t.is(alone.maxExit, 3, 'no server: the calibrated point keeps its depth');
  const linked = new EnergyController(POINTS, { ...BOUNDS, minDwellS: 0 }, 20);
  t.is(linked.decide({ nowS: 0, ...warm, offloadAvailable: true }).maxExit, 2);
  const reserve = linked.decide({ nowS: 1, ...warm, stateOfCharge: 0.12, offloadAvailable: true });
  t.false(reserve.offloadAllowed);
  t.is(reserve.maxExit, 3, 'offload not allowed at the reserve, so the depth stays');
});
