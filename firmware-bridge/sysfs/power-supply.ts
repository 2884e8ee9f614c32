import path from 'node:path';
import { PLAUSIBLE, emptyReading } from '../reading.js';
import type { BridgeReading } from '../types.js';
import { listEntries, readScaled, readText, type AttributeResult } from './attribute.js';

export interface PowerSupplyOptions {
  /** sysfs mount point; tests point it at a fake tree. */
  root?: string;
  /** Which Battery entry to read (e.g. `BAT1`); default: the first one that powers the system. */
  battery?: string;
}

interface Supply {
  name: string;
  dir: string;
  type: string;
}

const EXTERNAL_TYPES = new Set(['Mains', 'USB', 'Wireless']);

/**
 * Battery and external supplies from /sys/class/power_supply: a UPS HAT or laptop-style gauge with
 * a kernel driver (capacity %, voltage_now µV, current_now µA, power_now µW, status), and
 * Mains/USB entries (online 0|1).
 */
export async function readPowerSupplies(options: PowerSupplyOptions = {}): Promise<BridgeReading> {
  const classDir = path.join(options.root ?? '/sys', 'class', 'power_supply');
  const reading = emptyReading(Date.now());
  const supplies: Supply[] = [];
  for (const name of await listEntries(classDir)) {
    const dir = path.join(classDir, name);
    const type = await readText(path.join(dir, 'type'));
    if (type.ok) supplies.push({ name, dir, type: type.value });
  }

  const externalOnline = await anyExternalOnline(supplies.filter((s) => EXTERNAL_TYPES.has(s.type) || s.type.startsWith('USB')));
  const battery = await chooseBattery(supplies, options.battery);
  if (!battery) {
    const found = supplies.length ? supplies.map((s) => `${s.name} (${s.type})`).join(', ') : 'nothing';
    const why = options.battery
      ? `no Battery named ${options.battery} under ${classDir} (found: ${found})`
      : `no Battery under ${classDir} (found: ${found})`;
    reading.missing.push({ reading: 'stateOfCharge', reason: why });
    if (externalOnline === undefined) reading.missing.push({ reading: 'charging', reason: `no Battery, Mains or USB supply under ${classDir}` });
    else reading.charging = externalOnline;
    return reading;
  }

  const file = (attribute: string) => path.join(battery.dir, attribute);
  const take = (field: string, result: AttributeResult<number>): number | undefined => {
    if (result.ok) return result.value;
    reading.missing.push({ reading: field, reason: result.reason });
    return undefined;
  };

  const percent = take('stateOfCharge', await readScaled(file('capacity'), 1, PLAUSIBLE.stateOfChargePercent));
  if (percent !== undefined) reading.stateOfCharge = percent / 100;
  const volts = take('voltageV', await readScaled(file('voltage_now'), 1e6, PLAUSIBLE.voltageV));
  if (volts !== undefined) reading.voltageV = volts;

  const status = await readText(file('status'));
  const statusText = status.ok ? status.value : undefined;
  const current = await readScaled(file('current_now'), 1e6, PLAUSIBLE.currentA);
  const power = await readScaled(file('power_now'), 1e6, PLAUSIBLE.powerW);
  // Drivers disagree on the sign of current_now/power_now; status says which way energy flows.
  const signed = (value: number) => (statusText === 'Discharging' ? Math.abs(value) : statusText === 'Charging' ? -Math.abs(value) : value);
  if (current.ok) reading.currentA = signed(current.value);
  if (power.ok) reading.powerW = signed(power.value);
  if (reading.powerW === undefined && reading.currentA !== undefined && volts !== undefined) reading.powerW = reading.currentA * volts;
  if (reading.currentA === undefined && reading.powerW !== undefined && volts) reading.currentA = reading.powerW / volts;
  if (reading.currentA === undefined) reading.missing.push({ reading: 'currentA', reason: current.ok ? 'no voltage to derive it from power_now' : current.reason });
  if (reading.powerW === undefined) reading.missing.push({ reading: 'powerW', reason: power.ok ? 'no voltage to derive it from current_now' : power.reason });

  const charging = chargingFromStatus(statusText, externalOnline);
  if (charging !== undefined) reading.charging = charging;
  else reading.missing.push({ reading: 'charging', reason: status.ok ? `${file('status')} = '${status.value}' and no Mains/USB supply says online` : status.reason });
  return reading;
}

async function chooseBattery(supplies: Supply[], wanted: string | undefined): Promise<Supply | undefined> {
  if (wanted) return supplies.find((s) => s.name === wanted);
  for (const supply of supplies) {
    if (supply.type !== 'Battery') continue;
    // scope=Device marks a peripheral's battery (a wireless mouse), not the one powering the gateway.
    const scope = await readText(path.join(supply.dir, 'scope'));
    if (scope.ok && scope.value === 'Device') continue;
    return supply;
  }
  return undefined;
}

/** true when any Mains/USB supply is online, false when there are some and none is, undefined when there are none. */
async function anyExternalOnline(externals: Supply[]): Promise<boolean | undefined> {
  let known: boolean | undefined;
  for (const supply of externals) {
    const online = await readText(path.join(supply.dir, 'online'));
    if (!online.ok) continue;
    if (online.value === '1') return true;
    if (online.value === '0') known = false;
  }
  return known;
}

function chargingFromStatus(status: string | undefined, externalOnline: boolean | undefined): boolean | undefined {
  switch (status) {
    case 'Charging':
    case 'Full':
      return true;
    case 'Discharging':
      return false;
    default:
      // 'Not charging' and 'Unknown': the battery may be idle on mains or the gauge may not know.
      return externalOnline;
  }
}
