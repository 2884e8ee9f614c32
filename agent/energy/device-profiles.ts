/**
 * Power figures of the gateways edge-exit runs on. They turn measured compute
 * time into joules when no power monitor is present; a monitor's reading
 * replaces `activePowerW`. Each figure says where it comes from: vendor
 * documents where they give one, otherwise published whole-board measurements.
 * They are board-level (SoC, RAM, regulators), without camera or USB loads.
 */
export interface DeviceProfile {
  name: string;
  /** Whole board, OS idle, networking up. */
  idlePowerW: number;
  /** Whole board while inference keeps the cores busy. */
  activePowerW: number;
  /** Extra power while the radio transmits, and its effective uplink rate. */
  radioTxPowerW: number;
  radioBytesPerSecond: number;
  /** Fixed cost of waking the radio and sending one MQTT message (QoS 1 round trip). */
  radioPerMessageJ: number;
  sources: string[];
}

export const DEVICE_PROFILES: Record<string, DeviceProfile> = {
  pi4: {
    name: 'Raspberry Pi 4 Model B',
    idlePowerW: 2.7,
    activePowerW: 6.4,
    radioTxPowerW: 0.8,
    radioBytesPerSecond: 2.5e6,
    radioPerMessageJ: 0.004,
    sources: [
      'Raspberry Pi 4 product brief: 5 V / 3 A supply budget',
      'published USB power-meter measurements of the Pi 4B: about 2.7 W idle, about 6.4 W with all four cores loaded',
      'radio: CYW43455 802.11ac, about 20 Mbit/s effective uplink; TX adds well under 1 W at board level',
    ],
  },
  pi5: {
    name: 'Raspberry Pi 5',
    idlePowerW: 2.7,
    activePowerW: 7.5,
    radioTxPowerW: 0.8,
    radioBytesPerSecond: 3.5e6,
    radioPerMessageJ: 0.004,
    sources: ['Raspberry Pi 5 product brief: 5 V / 5 A supply budget', 'published board measurements: about 2.7 W idle, 7-8 W under full CPU load'],
  },
  'jetson-nano': {
    name: 'NVIDIA Jetson Nano (5 W mode)',
    idlePowerW: 1.3,
    activePowerW: 5.0,
    radioTxPowerW: 1.0,
    radioBytesPerSecond: 2.5e6,
    radioPerMessageJ: 0.005,
    sources: ['Jetson Nano module data sheet: 5 W and 10 W power modes', 'INA3221 readings (VDD_IN) on the developer kit: about 1.3 W idle'],
  },
  'jetson-orin-nano': {
    name: 'NVIDIA Jetson Orin Nano (7 W mode)',
    idlePowerW: 3.0,
    activePowerW: 7.0,
    radioTxPowerW: 1.0,
    radioBytesPerSecond: 3.5e6,
    radioPerMessageJ: 0.005,
    sources: ['Jetson Orin Nano series data sheet: 7 W and 15 W power modes'],
  },
  'coral-usb-pi4': {
    name: 'Raspberry Pi 4 with a Coral USB Accelerator',
    idlePowerW: 3.2,
    activePowerW: 5.0,
    radioTxPowerW: 0.8,
    radioBytesPerSecond: 2.5e6,
    radioPerMessageJ: 0.004,
    sources: [
      'Coral USB Accelerator data sheet: Edge TPU at 4 TOPS for 2 W (0.5 W/TOPS); about 0.5 W idle on USB',
      'the host CPU mostly waits while the TPU computes, so the board draws well below its CPU-bound figure',
    ],
  },
};

export function deviceProfile(name: string): DeviceProfile {
  const profile = DEVICE_PROFILES[name];
  if (!profile) throw new RangeError(`Unknown device profile "${name}"; known: ${Object.keys(DEVICE_PROFILES).join(', ')}`);
  return profile;
}
