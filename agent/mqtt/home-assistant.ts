/**
 * Home Assistant MQTT discovery: retained config messages on
 * `<discovery prefix>/<component>/<node>/<object>/config` (Home Assistant's documented
 * schema) that make the device and its entities appear by themselves. Sensors read the
 * agent's own state, telemetry and config/state topics; controls (a select for the
 * operating point, switches for offload and the controller, numbers for the controller's
 * bounds) publish to command topics that the agent turns into a config/set request, so a
 * change from Home Assistant goes through exactly the validation, persistence and answer
 * of any other.
 */
import type { DeviceTopics } from './topics.js';

export const DEFAULT_DISCOVERY_PREFIX = 'homeassistant';
/** Home Assistant says `online` here when it (re)starts: the configs are then published again. */
export const homeAssistantStatusTopic = (discoveryPrefix: string) => `${discoveryPrefix}/status`;

export interface DiscoveryDevice {
  deviceId: string;
  /** The model package the device runs. */
  model: string;
  softwareVersion: string;
  /** Operating points the select offers. */
  operatingPoints: readonly string[];
  topics: DeviceTopics;
  discoveryPrefix: string;
}

export interface DiscoveryMessage {
  topic: string;
  /** JSON; an empty payload deletes the retained config (the device is removed). */
  payload: Buffer;
}

type Entity = { component: 'sensor' | 'select' | 'switch' | 'number'; object: string; config: Record<string, unknown> };

/** The command topic of one control; the agent subscribes to `<prefix>/<deviceId>/ha/+/set`. */
export const controlCommandTopic = (topics: DeviceTopics, object: string) => `${topics.prefix}/${topics.deviceId}/ha/${object}/set`;
export const controlCommandFilter = (topics: DeviceTopics) => `${topics.prefix}/${topics.deviceId}/ha/+/set`;

/** The controller's bounds as number entities: the config field, its range and unit. */
const BOUNDS = [
  { object: 'max_temperature', field: 'maxTemperatureC', name: 'Max temperature', min: 30, max: 110, step: 1, unit: '°C' },
  { object: 'battery_reserve', field: 'minBatteryReserve', name: 'Battery reserve', min: 0, max: 0.9, step: 0.05, unit: undefined },
  { object: 'max_accuracy_drop', field: 'maxAccuracyDropPoints', name: 'Max accuracy drop', min: 0, max: 50, step: 0.5, unit: 'points' },
] as const;

function entities(device: DiscoveryDevice): Entity[] {
  const { topics } = device;
  const sensor = (object: string, name: string, stateTopic: string, valueTemplate: string, extra: Record<string, unknown> = {}): Entity => ({
    component: 'sensor',
    object,
    config: { name, state_topic: stateTopic, value_template: valueTemplate, ...extra },
  });
  const config = `value_json.config`;
  return [
    sensor('label', 'Label', topics.state, '{{ value_json.label }}', { json_attributes_topic: topics.state }),
    sensor('confidence', 'Confidence', topics.state, '{{ (value_json.confidence * 100) | round(1) }}', { unit_of_measurement: '%', state_class: 'measurement' }),
    sensor('exit', 'Exit taken', topics.state, '{{ value_json.exit }}'),
    sensor('frame_rate', 'Frames per second', topics.telemetry, '{{ value_json.framesPerSecond | round(1) }}', { unit_of_measurement: 'fps', state_class: 'measurement' }),
    sensor('battery', 'Battery', topics.telemetry, "{{ (value_json.battery * 100) | round(0) if value_json.battery is not none else 'unavailable' }}", {
      device_class: 'battery',
      unit_of_measurement: '%',
      state_class: 'measurement',
    }),
    sensor('temperature', 'Temperature', topics.telemetry, "{{ value_json.temperatureC if value_json.temperatureC is not none else 'unavailable' }}", {
      device_class: 'temperature',
      unit_of_measurement: '°C',
      state_class: 'measurement',
    }),
    sensor('operating_point', 'Operating point', topics.telemetry, '{{ value_json.operatingPoint }}'),
    sensor('offloaded', 'Offloaded frames', topics.telemetry, '{{ value_json.offloaded | default(0) }}', { state_class: 'measurement' }),
    sensor('gated', 'Frames without motion', topics.telemetry, '{{ value_json.gated | default(0) }}', { state_class: 'measurement' }),
    // Home Assistant keeps at most 255 characters of a state: the plan is cut there, its warning and any held-off sleep are attributes.
    sensor('plan', 'Battery plan', topics.telemetry, "{{ value_json.plan[:255] if value_json.plan is defined else 'planner off' }}", {
      json_attributes_topic: topics.telemetry,
      json_attributes_template: '{{ {"warning": value_json.planWarning | default(none), "sleep": value_json.sleep | default(none)} | tojson }}',
    }),
    sensor('backend', 'Inference backend', topics.telemetry, "{{ value_json.backend | default('unknown') }}", {
      json_attributes_topic: topics.telemetry,
      json_attributes_template: '{{ {"note": value_json.backendNote | default(none)} | tojson }}',
    }),
    {
      component: 'select',
      object: 'operating_point_select',
      config: {
        name: 'Operating point',
        command_topic: controlCommandTopic(topics, 'operating_point'),
        state_topic: topics.configState,
        value_template: `{{ ${config}.policy.operatingPoint }}`,
        options: [...device.operatingPoints],
      },
    },
    {
      component: 'switch',
      object: 'offload',
      config: { name: 'Offload', command_topic: controlCommandTopic(topics, 'offload'), state_topic: topics.configState, value_template: `{{ 'ON' if ${config}.offload.enabled else 'OFF' }}` },
    },
    {
      component: 'switch',
      object: 'controller',
      config: { name: 'Energy controller', command_topic: controlCommandTopic(topics, 'controller'), state_topic: topics.configState, value_template: `{{ 'ON' if ${config}.controller.enabled else 'OFF' }}` },
    },
    ...BOUNDS.map(
      (bound): Entity => ({
        component: 'number',
        object: bound.object,
        config: {
          name: bound.name,
          command_topic: controlCommandTopic(topics, bound.object),
          state_topic: topics.configState,
          value_template: `{{ ${config}.controller.${bound.field} }}`,
          min: bound.min,
          max: bound.max,
          step: bound.step,
          mode: 'box',
          ...(bound.unit ? { unit_of_measurement: bound.unit } : {}),
        },
      }),
    ),
  ];
}

/** The retained discovery configs of one device; `remove` gives the empty payloads that delete them. */
export function discoveryMessages(device: DiscoveryDevice, remove = false): DiscoveryMessage[] {
  const deviceInfo = { identifiers: [`edge-exit_${device.deviceId}`], name: `edge-exit ${device.deviceId}`, model: device.model, sw_version: device.softwareVersion, manufacturer: 'edge-exit' };
  return entities(device).map((entity) => ({
    topic: `${device.discoveryPrefix}/${entity.component}/edge-exit_${device.deviceId}/${entity.object}/config`,
    payload: remove
      ? Buffer.alloc(0)
      : Buffer.from(
          JSON.stringify({
            ...entity.config,
            unique_id: `edge-exit_${device.deviceId}_${entity.object}`,
            object_id: `edge_exit_${device.deviceId.replaceAll('-', '_')}_${entity.object}`,
            availability_topic: device.topics.availability,
            device: deviceInfo,
          }),
        ),
  }));
}

/**
 * The config/set change a control's command asks for, or why it cannot be one. The
 * caller sends it through the same path as any config/set request.
 */
export function controlCommandToPatch(topics: DeviceTopics, topic: string, payload: Buffer): { set: Record<string, unknown> } | { error: string } {
  const prefix = `${topics.prefix}/${topics.deviceId}/ha/`;
  if (!topic.startsWith(prefix) || !topic.endsWith('/set')) return { error: `not a Home Assistant command topic: ${topic}` };
  const object = topic.slice(prefix.length, -'/set'.length);
  const text = payload.toString('utf8').trim();
  const onOff = (): boolean | undefined => (text === 'ON' ? true : text === 'OFF' ? false : undefined);
  switch (object) {
    case 'operating_point':
      return { set: { policy: { operatingPoint: text } } };
    case 'offload':
    case 'controller': {
      const on = onOff();
      if (on === undefined) return { error: `${object}: expected ON or OFF, got ${JSON.stringify(text.slice(0, 40))}` };
      return { set: { [object]: { enabled: on } } };
    }
    default: {
      const bound = BOUNDS.find((b) => b.object === object);
      if (!bound) return { error: `unknown Home Assistant control "${object}"` };
      const value = Number(text);
      if (text === '' || !Number.isFinite(value)) return { error: `${bound.name}: expected a number, got ${JSON.stringify(text.slice(0, 40))}` };
      return { set: { controller: { [bound.field]: value } } };
    }
  }
}
