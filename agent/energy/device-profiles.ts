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
  /** Powered down with a wake-up armed (RTC alarm, a power HAT's timer), W. */
  offPowerW: number;
  /** From power-up to the agent classifying: the wake latency, and the power drawn meanwhile. */
  bootS: number;
  bootPowerW: number;
  sources: string[];
}

/**
 * A boot to a running agent: the Pi's firmware, kernel and systemd (about 20 s to the default target on
 * Raspberry Pi OS Lite, by `systemd-analyze time`; network up at about 18 s on a Pi Zero W) plus Node
 * loading TFLite and the package. Power meanwhile is between idle and one busy core.
 */
const BOOT_SOURCES = 'boot: systemd-analyze on Raspberry Pi OS Lite reports about 21 s to the default target (Obuda University embedded Linux boot-timing lab); a stock Raspbian Lite Pi 3B takes about a minute to an application (himeshp, "Fast boot with Raspberry Pi", 2018); plus about 10 s for the agent to load its model';

export const DEVICE_PROFILES = {
  pi4: {
    name: 'Raspberry Pi 4 Model B',
    idlePowerW: 2.7,
    activePowerW: 6.4,
    radioTxPowerW: 0.8,
    radioBytesPerSecond: 2.5e6,
    radioPerMessageJ: 0.004,
    // Halted, a Pi 4 still draws 270-400 mA at 5 V: only a power HAT that cuts its supply makes "off" cheap.
    offPowerW: 0.05,
    bootS: 35,
    bootPowerW: 3.5,
    sources: [
      'Raspberry Pi 4 product brief: 5 V / 3 A supply budget',
      'off: a halted Pi 4 draws 270-400 mA at 5 V (raspberrypi.stackexchange.com question 114422), so sleeping needs a power-management HAT that cuts the supply; its own standby draw (a microcontroller and a regulator) is taken as 50 mW',
      BOOT_SOURCES,
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
    offPowerW: 0.01,
    bootS: 30,
    bootPowerW: 4,
    sources: [
      'Raspberry Pi 5 product brief: 5 V / 5 A supply budget',
      'published board measurements: about 2.7 W idle, 7-8 W under full CPU load',
      'off: halted, 1.2-1.6 W with the default EEPROM; about 0.01 W with POWER_OFF_ON_HALT=1, the RTC alarm still armed (Jeff Geerling, "Reducing Raspberry Pi 5\'s power consumption by 140x", 2023)',
      BOOT_SOURCES,
    ],
  },
  'jetson-nano': {
    name: 'NVIDIA Jetson Nano (5 W mode)',
    idlePowerW: 1.3,
    activePowerW: 5.0,
    radioTxPowerW: 1.0,
    radioBytesPerSecond: 2.5e6,
    radioPerMessageJ: 0.005,
    offPowerW: 0.05,
    bootS: 45,
    bootPowerW: 3,
    sources: [
      'Jetson Nano module data sheet: 5 W and 10 W power modes',
      'INA3221 readings (VDD_IN) on the developer kit: about 1.3 W idle',
      'off and boot: no published figure found; the same kind of power HAT as a Pi, and a longer L4T boot (estimates, to be measured)',
    ],
  },
  'jetson-orin-nano': {
    name: 'NVIDIA Jetson Orin Nano (7 W mode)',
    idlePowerW: 3.0,
    activePowerW: 7.0,
    radioTxPowerW: 1.0,
    radioBytesPerSecond: 3.5e6,
    radioPerMessageJ: 0.005,
    offPowerW: 0.05,
    bootS: 45,
    bootPowerW: 5,
    sources: ['Jetson Orin Nano series data sheet: 7 W and 15 W power modes', 'off and boot: no published figure found (estimates, to be measured)'],
  },
  'coral-usb-pi4': {
    name: 'Raspberry Pi 4 with a Coral USB Accelerator',
    idlePowerW: 3.2,
    activePowerW: 5.0,
    radioTxPowerW: 0.8,
    radioBytesPerSecond: 2.5e6,
    radioPerMessageJ: 0.004,
    offPowerW: 0.05,
    bootS: 40,
    bootPowerW: 3.7,
    sources: [
      'off and boot: as the Pi 4, with the accelerator enumerated and its model loaded on the way',
      'Coral USB Accelerator data sheet: Edge TPU at 4 TOPS for 2 W (0.5 W/TOPS); about 0.5 W idle on USB',
      'the host CPU mostly waits while the TPU computes, so the board draws well below its CPU-bound figure',
    ],
  },
} satisfies Record<string, DeviceProfile>;

/** The profile names, as the config schema offers them: the keys above, declared once. */
export type DeviceProfileName = keyof typeof DEVICE_PROFILES;
export const DEVICE_PROFILE_NAMES = Object.keys(DEVICE_PROFILES) as [DeviceProfileName, ...DeviceProfileName[]];

export function deviceProfile(name: string): DeviceProfile {
  const profile = (DEVICE_PROFILES as Record<string, DeviceProfile | undefined>)[name];
  if (!profile) throw new RangeError(`Unknown device profile "${name}"; known: ${Object.keys(DEVICE_PROFILES).join(', ')}`);
  return profile;
}
