import type { LifetimeTarget } from '../../agent/controller/lifetime-planner.js';
import type { SolarProfile } from '../../firmware-bridge/simulated.js';
import { seededRandom } from '../../agent/datasets/split.js';

/** One event in front of the camera: when it starts and how long it lasts, s from the scenario's start. */
export interface ScenarioEvent {
  startS: number;
  durationS: number;
}

export interface LifetimeScenario {
  name: string;
  description: string;
  days: number;
  profile: 'pi4' | 'pi5';
  batteryWh: number;
  maxFrameRate: number;
  /** A PIR on the power-management side can wake the board. */
  pir: boolean;
  target: LifetimeTarget;
  minAccuracy: number;
  minEventRecall: number;
  /** Events an hour by hour of day, and their mean length (exponential, at least minEventS). */
  eventsPerHour: (hour: number) => number;
  meanEventS: number;
  minEventS: number;
  /** Ambient temperature by hour of day. */
  ambientC: (hour: number) => number;
  /** Still-air thermal resistance of the enclosure, °C/W. */
  thermalResistanceCPerW: number;
  solar?: SolarProfile;
  /** What the operator tells the planner to expect. */
  expectedEventsPerHour: number;
  expectedEventS: number;
}

/** Poisson arrivals hour by hour, non-overlapping; seeded, so every variant sees the same events. */
export function scenarioEvents(scenario: LifetimeScenario, seed: number): ScenarioEvent[] {
  const random = seededRandom(seed);
  const events: ScenarioEvent[] = [];
  const totalS = scenario.days * 86_400;
  let t = 0;
  while (t < totalS) {
    const rate = scenario.eventsPerHour(Math.floor(t / 3600) % 24) / 3600;
    if (rate <= 0) {
      t = (Math.floor(t / 3600) + 1) * 3600;
      continue;
    }
    const gap = -Math.log(1 - random()) / rate;
    // A gap that runs past the hour is drawn again at the next hour's rate.
    const hourEnd = (Math.floor(t / 3600) + 1) * 3600;
    if (t + gap > hourEnd) {
      t = hourEnd;
      continue;
    }
    t += gap;
    const durationS = Math.max(scenario.minEventS, -Math.log(1 - random()) * scenario.meanEventS);
    if (t + durationS < totalS) events.push({ startS: t, durationS });
    t += durationS;
  }
  return events;
}

const dayCycle = (minC: number, maxC: number, peakHour: number) => (hour: number) => minC + ((maxC - minC) * (1 + Math.cos(((hour - peakHour) / 24) * 2 * Math.PI))) / 2;

export const LIFETIME_SCENARIOS: LifetimeScenario[] = [
  {
    name: 'camera trap',
    description: 'a Pi 4 on a power HAT with a PIR, in a forest: about 3 animals an hour by night, 1.5 by day, a minute each on average; 37 Wh; three days wanted',
    days: 8,
    profile: 'pi4',
    batteryWh: 37,
    maxFrameRate: 5,
    pir: true,
    target: { kind: 'hours', hours: 72 },
    minAccuracy: 0,
    minEventRecall: 0.95,
    eventsPerHour: (hour) => (hour >= 20 || hour < 6 ? 3 : 1.5),
    meanEventS: 60,
    minEventS: 5,
    ambientC: dayCycle(4, 16, 14),
    thermalResistanceCPerW: 8,
    expectedEventsPerHour: 2,
    expectedEventS: 60,
  },
  {
    name: 'busy street',
    description: 'a Pi 5 on a solar-charged 74 Wh pack at a street: 40 passers-by an hour by day, 2 by night, 20 s each; the battery must last until the sun is back at 08:00',
    days: 3,
    profile: 'pi5',
    batteryWh: 74,
    maxFrameRate: 10,
    pir: false,
    target: { kind: 'until-charging', schedule: '08:00' },
    minAccuracy: 0.8,
    minEventRecall: 0.9,
    eventsPerHour: (hour) => (hour >= 7 && hour < 21 ? 40 : 2),
    meanEventS: 20,
    minEventS: 3,
    ambientC: dayCycle(12, 26, 15),
    thermalResistanceCPerW: 8,
    solar: { peakW: 20, sunriseHour: 7, sunsetHour: 19 },
    expectedEventsPerHour: 20,
    expectedEventS: 20,
  },
  {
    name: 'hot enclosure',
    description: 'a Pi 4 in a sealed box in the sun: 30-50 °C outside, 10 events an hour, 30 s each; 74 Wh; 24 h wanted',
    days: 2,
    profile: 'pi4',
    batteryWh: 74,
    maxFrameRate: 10,
    pir: false,
    target: { kind: 'hours', hours: 24 },
    minAccuracy: 0.8,
    minEventRecall: 0.9,
    eventsPerHour: () => 10,
    meanEventS: 30,
    minEventS: 3,
    ambientC: dayCycle(30, 50, 15),
    thermalResistanceCPerW: 8,
    expectedEventsPerHour: 10,
    expectedEventS: 30,
  },
];
