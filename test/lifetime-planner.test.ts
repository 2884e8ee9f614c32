import test from 'ava';
import { plannerSchema } from '../agent/config/agent-config.js';
import { EnergyController, ladderWithin } from '../agent/controller/energy-controller.js';
import { LifetimePlanner, plannerSettings, type PlannerInputs } from '../agent/controller/lifetime-planner.js';
import { controllerSchema } from '../agent/config/agent-config.js';
import { deviceProfile, type DeviceProfile } from '../agent/energy/device-profiles.js';
import type { OperatingPoint } from '../agent/model-package/manifest.js';
import { SimulatedBridge } from '../firmware-bridge/simulated.js';
import { parseConfigSet } from '../agent/mqtt/payloads.js';

/*
 * The lifetime planner on its own: a package's ladder of points (accuracy and measured cost),
 * a device profile, and battery readings from the simulator's battery.
 */

const point = (name: string, validationAccuracy: number, expectedLatencyMs: number): OperatingPoint => ({
  name,
  policy: 'max-probability',
  thresholds: [0.9, 0.9, 0.9, 0],
  maxExit: 3,
  validationAccuracy,
  expectedMacs: expectedLatencyMs * 1e7,
  expectedLatencyMs,
  exitHistogram: [],
});
const POINTS = [point('full', 0.9, 3), point('balanced', 0.895, 2.2), point('saving', 0.87, 1.6)];
const LADDER = ladderWithin(POINTS, controllerSchema.parse({}));
const START = new Date(2026, 5, 1, 20, 0, 0).getTime();

function planner(config: Record<string, unknown>, profile: DeviceProfile = deviceProfile('pi4')): LifetimePlanner {
  const inputs: PlannerInputs = { profile, ladder: LADDER, maxFrameRate: 10, computeTimeScale: 6, gateMsPerFrame: 8, maxReuseS: 10 };
  return new LifetimePlanner(plannerSettings(plannerSchema.parse({ enabled: true, ...config }), profile), inputs, START);
}

test('a profile that says half the real drain is corrected from the battery: the planner then expects what the battery gives', async (t) => {
  // The profile believes 2.7 W idle; the board really draws twice that (a camera and a modem on the same pack).
  const battery = new SimulatedBridge({ clock: 'manual', capacityWh: 37, idlePowerW: 5.4, startAt: START });
  const plans = planner({ target: { kind: 'hours', hours: 4 }, batteryWh: 37, sleep: false });
  const first = plans.replan({ nowMs: START, stateOfCharge: battery.stateOfCharge });
  t.true(first.expectedHours > 10, `believed at first: ${first.expectedHours.toFixed(1)} h`);
  for (let minute = 10; minute <= 6 * 60; minute += 10) {
    battery.advance(600);
    plans.replan({ nowMs: START + minute * 60_000, stateOfCharge: battery.stateOfCharge });
  }
  const trueHoursLeft = (battery.stateOfCharge - 0.05) * 37 / 5.4;
  const last = plans.plan!;
  t.true(Math.abs(plans.drainCorrection - 5.4 / first.expectedPowerW) < 0.15 * (5.4 / first.expectedPowerW), `correction ${plans.drainCorrection.toFixed(2)}`);
  t.true(Math.abs(last.expectedHours - trueHoursLeft) / trueHoursLeft < 0.15, `expects ${last.expectedHours.toFixed(2)} h, the battery gives ${trueHoursLeft.toFixed(2)} h`);
  t.regex(last.reason, /drain ×\d\.\d\d as measured/);
});

test('an impossible target is reported on the first plan, with the hours it now expects, and the plan lasts as long as it can', (t) => {
  const plans = planner({ target: { kind: 'hours', hours: 1000 }, batteryWh: 37, sleep: true, minEventRecall: 0.9 });
  const plan = plans.replan({ nowMs: START, stateOfCharge: 1 });
  t.false(plan.feasible);
  t.regex(plan.warning ?? '', /target \(1000\.0 h\) cannot be met above the floors .* expect \d+\.\d h/);
  // Of the plans above the floors, the longest-lasting: nothing else runs longer.
  const sure = planner({ target: { kind: 'hours', hours: 1 }, batteryWh: 37, sleep: true, minEventRecall: 0.9 }).replan({ nowMs: START, stateOfCharge: 1 });
  t.true(plan.expectedHours > sure.expectedHours, `${plan.expectedHours.toFixed(1)} h against ${sure.expectedHours.toFixed(1)} h for an easy target`);
  t.true(plan.expectedRecall >= 0.9);
});

test('with a charge due soon the surplus is spent: awake all night at the top point; with days to last, the same battery sleeps until motion', (t) => {
  const common = { batteryWh: 40, sleep: true, wakeOnMotion: true, minEventRecall: 0.9, expectedEventsPerHour: 2 };
  // 20:00 now; the sun is back at 07:00.
  const untilSunrise = planner({ ...common, target: { kind: 'until-charging', schedule: '07:00' } }).replan({ nowMs: START, stateOfCharge: 0.9 });
  const threeDays = planner({ ...common, target: { kind: 'hours', hours: 72 } }).replan({ nowMs: START, stateOfCharge: 0.9 });
  t.is(untilSunrise.targetHours, 11);
  t.true(untilSunrise.feasible && threeDays.feasible);
  t.is(untilSunrise.duty.sleepS, 0, `until sunrise: ${untilSunrise.reason}`);
  t.true(threeDays.duty.sleepS > 0, `three days: ${threeDays.reason}`);
  t.is(untilSunrise.operatingPoint, 'full');
  t.is(untilSunrise.frameRate, 10);
  t.true(threeDays.duty.wakeOnMotion);
  // While charging, energy is free: the top of the ladder (within the accuracy tie), always on, at the full rate.
  const charging = planner({ ...common, target: { kind: 'hours', hours: 72 } }).replan({ nowMs: START, stateOfCharge: 0.2, charging: true });
  t.is(charging.duty.sleepS, 0);
  t.is(charging.frameRate, 10);
  t.true(charging.expectedAccuracy >= 0.895 - 1e-9);
});

test('a board that cannot sleep is planned awake from then on, and says why', (t) => {
  const plans = planner({ target: { kind: 'hours', hours: 72 }, batteryWh: 20, sleep: true });
  t.true(plans.replan({ nowMs: START, stateOfCharge: 1 }).duty.sleepS > 0);
  plans.refuseSleep('the gpio bridge cannot wake the board');
  const awake = plans.replan({ nowMs: START + 60_000, stateOfCharge: 1 });
  t.is(awake.duty.sleepS, 0);
  t.is(plans.sleepRefusal, 'the gpio bridge cannot wake the board');
});

test('thermal limits win over the plan: near the limit the controller runs a cheaper point than the one planned', (t) => {
  const controller = new EnergyController(POINTS, controllerSchema.parse({ maxTemperatureC: 75 }), 10);
  const plan = { operatingPoint: 'full', frameRate: 10, reason: 'plan full' };
  const cool = controller.decide({ nowS: 0, stateOfCharge: 0.9, temperatureC: 40, plan });
  t.is(cool.operatingPoint, 'full');
  const hot = controller.decide({ nowS: 1, stateOfCharge: 0.9, temperatureC: 74.5, plan });
  t.not(hot.operatingPoint, 'full');
  t.true(hot.frameRate < 10, 'at a critical temperature the frame rate halves too');
  t.regex(hot.reason, /^plan full; hot: 74\.5 °C/);
});

test('targets are validated by the config schema, naming the field and the form expected', (t) => {
  t.throws(() => plannerSchema.parse({ target: { kind: 'until', at: 'tomorrow' } }), { message: /HH:MM or an ISO date-time/ });
  t.throws(() => plannerSchema.parse({ target: { kind: 'until-charging', schedule: '25:00' } }), { message: /HH:MM/ });
  t.notThrows(() => plannerSchema.parse({ target: { kind: 'until', at: '2026-12-24T08:00' } }));
});

test('the target and floors are set over config/set; the halt command is not, for a broker must never choose what the gateway runs', (t) => {
  const set = (body: unknown) => parseConfigSet(Buffer.from(JSON.stringify({ id: 'p1', set: body })));
  const ok = set({ planner: { enabled: true, target: { kind: 'until-charging', schedule: '07:30' }, minAccuracy: 0.8, minEventRecall: 0.95 } });
  t.true(ok.ok, JSON.stringify(ok));
  const halt = set({ planner: { haltCommand: ['rm', '-rf', '/'] } });
  t.false(halt.ok);
  t.regex(halt.ok ? '' : halt.reason, /haltCommand/);
});
