import path from 'node:path';
import { PLAUSIBLE, emptyReading } from '../reading.js';
import type { BridgeReading, MissingReading } from '../types.js';
import { listEntries, readScaled, readText } from './attribute.js';

export interface HwmonOptions {
  /** sysfs mount point; tests point it at a fake tree. */
  root?: string;
  /** Label of the rail that feeds the whole board; default: VDD_IN, POM_5V_IN, VIN or VIN_SYS_5V0, else the first rail. */
  inputRail?: string;
}

/** One channel of a power monitor (ina3221 has three, ina2xx one), as the hwmon driver reports it. */
export interface PowerRail {
  /** `<hwmon name>/<label>`, e.g. `ina3221/VDD_IN`; the label falls back to `in<N>`. */
  name: string;
  label: string;
  voltageV?: number;
  currentA?: number;
  /** power<N>_input when the driver has it, else voltage × current. */
  powerW?: number;
  missing: MissingReading[];
}

const BOARD_INPUT_RAILS = /^(VDD_IN|POM_5V_IN|VIN|VIN_SYS_5V0)$/i;

/**
 * Temperatures (temp<N>_input, m°C) of every hwmon device, keyed `<name>/<label or tempN>`, and
 * voltage/current/power of the board's input rail from a power monitor such as the Jetson's INA3221.
 */
export async function readHwmon(options: HwmonOptions = {}): Promise<BridgeReading> {
  const classDir = path.join(options.root ?? '/sys', 'class', 'hwmon');
  const reading = emptyReading(Date.now());
  const rails: PowerRail[] = [];
  for (const device of await hwmonDevices(classDir)) {
    await readTemperatures(device, reading);
    rails.push(...(await readRails(device)));
  }

  const rail = chooseInputRail(rails, options.inputRail);
  if (!rail) {
    const reason =
      rails.length === 0
        ? `no power monitor (a hwmon device with curr*_input, e.g. ina3221, ina219) under ${classDir}`
        : `no rail labelled ${options.inputRail} (found: ${rails.map((r) => r.name).join(', ')})`;
    for (const field of ['voltageV', 'currentA', 'powerW']) reading.missing.push({ reading: field, reason });
    return reading;
  }
  if (rail.voltageV !== undefined) reading.voltageV = rail.voltageV;
  if (rail.currentA !== undefined) reading.currentA = rail.currentA;
  if (rail.powerW !== undefined) reading.powerW = rail.powerW;
  reading.missing.push(...rail.missing);
  return reading;
}

/** Every power-monitor channel under /sys/class/hwmon (for diagnostics: all of the Jetson's rails). */
export async function readPowerRails(root = '/sys'): Promise<PowerRail[]> {
  const rails: PowerRail[] = [];
  for (const device of await hwmonDevices(path.join(root, 'class', 'hwmon'))) rails.push(...(await readRails(device)));
  return rails;
}

interface HwmonDevice {
  dir: string;
  /** The driver's `name` attribute (ina3221, cpu_thermal, ...), else the directory name. */
  name: string;
  files: string[];
}

async function hwmonDevices(classDir: string): Promise<HwmonDevice[]> {
  const devices: HwmonDevice[] = [];
  for (const entry of await listEntries(classDir, /^hwmon\d+$/)) {
    const dir = path.join(classDir, entry);
    const name = await readText(path.join(dir, 'name'));
    devices.push({ dir, name: name.ok && name.value ? name.value : entry, files: await listEntries(dir) });
  }
  return devices;
}

async function readTemperatures({ dir, name: deviceName, files }: HwmonDevice, reading: BridgeReading): Promise<void> {
  for (const file of files) {
    const match = /^temp(\d+)_input$/.exec(file);
    if (!match) continue;
    const label = await readText(path.join(dir, `temp${match[1]}_label`));
    const key = `${deviceName}/${label.ok && label.value ? label.value : `temp${match[1]}`}`;
    const value = await readScaled(path.join(dir, file), 1e3, PLAUSIBLE.temperatureC);
    if (value.ok) reading.temperaturesC[key] ??= value.value;
    else reading.missing.push({ reading: `temperaturesC.${key}`, reason: value.reason });
  }
}

/**
 * Channels are paired by index: in<N>_input (bus voltage, mV) with curr<N>_input (mA) and
 * power<N>_input (µW). That holds for ina3221 (N = 1..3) and the ina2xx driver (in1/curr1/power1;
 * its in0 is the shunt voltage and has no current partner).
 */
async function readRails({ dir, name: deviceName, files }: HwmonDevice): Promise<PowerRail[]> {
  const rails: PowerRail[] = [];
  for (const file of files) {
    const match = /^curr(\d+)_input$/.exec(file);
    if (!match) continue;
    const n = match[1]!;
    const labelFile = files.includes(`in${n}_label`) ? `in${n}_label` : `curr${n}_label`;
    const label = await readText(path.join(dir, labelFile));
    const railLabel = label.ok && label.value ? label.value : `in${n}`;
    const rail: PowerRail = { name: `${deviceName}/${railLabel}`, label: railLabel, missing: [] };
    const voltage = await readScaled(path.join(dir, `in${n}_input`), 1e3, PLAUSIBLE.voltageV);
    const current = await readScaled(path.join(dir, file), 1e3, PLAUSIBLE.currentA);
    if (voltage.ok) rail.voltageV = voltage.value;
    else rail.missing.push({ reading: 'voltageV', reason: voltage.reason });
    if (current.ok) rail.currentA = current.value;
    else rail.missing.push({ reading: 'currentA', reason: current.reason });
    if (files.includes(`power${n}_input`)) {
      const power = await readScaled(path.join(dir, `power${n}_input`), 1e6, PLAUSIBLE.powerW);
      if (power.ok) rail.powerW = power.value;
      else rail.missing.push({ reading: 'powerW', reason: power.reason });
    } else if (rail.voltageV !== undefined && rail.currentA !== undefined) {
      rail.powerW = rail.voltageV * rail.currentA;
    } else {
      rail.missing.push({ reading: 'powerW', reason: `${dir} has no power${n}_input and voltage × current is incomplete` });
    }
    rails.push(rail);
  }
  return rails;
}

function chooseInputRail(rails: PowerRail[], wanted: string | undefined): PowerRail | undefined {
  if (wanted) return rails.find((rail) => rail.label === wanted || rail.name === wanted);
  return rails.find((rail) => BOARD_INPUT_RAILS.test(rail.label)) ?? rails[0];
}
