import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { type AgentConfig, parseAgentConfig } from '../agent/config/agent-config.js';
import { chooseOperatingPoint } from '../agent/controller/choose-operating-point.js';
import { logger } from '../common/log/logger.js';
import { configResponseSchema, configStateSchema, MAX_CONFIG_SET_BYTES } from '../agent/mqtt/payloads.js';
import { RemoteConfig } from '../agent/mqtt/remote-config.js';
import { ConfigOwners } from '../agent/config/config-owners.js';
import { CONFIG_SECTIONS } from '../agent/config/config-patch.js';
import type { ConfigChangeRow } from '../agent/store/types.js';

const base = parseAgentConfig({});

function setup(t: ExecutionContext, overridesFile?: string, validate?: (config: AgentConfig) => void) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-remote-config-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = overridesFile ?? path.join(dir, 'state', 'overrides.json');
  const rows: ConfigChangeRow[] = [];
  const applied: Array<{ config: unknown; changedPaths: string[] }> = [];
  // One owner of every section, as the app's owners are together.
  const owners = new ConfigOwners();
  owners.register({ name: 'the parts', sections: CONFIG_SECTIONS, judge: (config) => validate?.(config), apply: (config, change) => void applied.push({ config, changedPaths: [...change.paths] }) });
  const open = () =>
    RemoteConfig.open({
      base,
      overridesFile: file,
      log: { logConfigChange: (row) => rows.push(row) },
      owners,
      now: () => 1234,
    });
  return { dir, file, rows, applied, open };
}

const message = (value: unknown) => Buffer.from(JSON.stringify(value));
const responseOf = (bytes: Buffer) => configResponseSchema.parse(JSON.parse(bytes.toString('utf8')));

/** Collects logger.warn messages for the length of one test (serial tests only). */
function captureWarnings(t: ExecutionContext): string[] {
  const messages: string[] = [];
  const original = logger.warn;
  logger.warn = ((...args: unknown[]) => {
    messages.push(args.find((arg): arg is string => typeof arg === 'string') ?? '');
  }) as typeof logger.warn;
  t.teardown(() => {
    logger.warn = original;
  });
  return messages;
}

test('a valid thresholds, operating point and controller change is applied, versioned, published and survives a restart', (t) => {
  const { file, rows, applied, open } = setup(t);
  const remote = open();
  t.is(remote.version, 0);

  const { response, state } = remote.handleSet(
    message({ id: 'req-1', set: { policy: { thresholds: [0.9, 0.8], operatingPoint: 'eco' }, controller: { maxTemperatureC: 70 } } }),
  );
  t.deepEqual(responseOf(response), { id: 'req-1', status: 'ok', version: 1 });
  t.is(remote.version, 1);
  t.deepEqual(remote.config.policy.thresholds, [0.9, 0.8]);
  t.is(remote.config.policy.operatingPoint, 'eco');
  t.is(remote.config.controller.maxTemperatureC, 70);
  t.is(remote.config.controller.minDwellS, base.controller.minDwellS, 'untouched fields keep their values');

  t.is(applied.length, 1);
  t.deepEqual(applied[0]!.changedPaths.sort(), ['controller.maxTemperatureC', 'policy.operatingPoint', 'policy.thresholds']);

  t.truthy(state);
  const parsedState = configStateSchema.parse(JSON.parse(state!.toString('utf8')));
  t.is(parsedState.version, 1);
  t.deepEqual((parsedState.config.policy as { thresholds: number[] }).thresholds, [0.9, 0.8]);
  t.deepEqual(remote.stateMessage(), state);

  t.is(rows.length, 1);
  t.like(rows[0], { ts: 1234, source: 'mqtt', version: 1, accepted: true, reason: null });
  t.deepEqual(rows[0]!.diff, { policy: { thresholds: [0.9, 0.8], operatingPoint: 'eco' }, controller: { maxTemperatureC: 70 } });

  // A second change bumps the version again and merges with the first in the file.
  const second = responseOf(remote.handleSet(message({ id: 'req-2', set: { controller: { enabled: false } } })).response);
  t.is(second.version, 2);
  t.deepEqual(
    fs.readdirSync(path.dirname(file)).filter((name) => name.endsWith('.tmp')),
    [],
    'no temp file is left behind',
  );

  const restarted = open();
  t.is(restarted.version, 2);
  t.deepEqual(restarted.config, remote.config);
});

test('every settable field survives a restart: policy, deepest exit, controller bounds, offload mode and deadline, telemetry interval', (t) => {
  const { file, open } = setup(t);
  const remote = open();
  const changes = [
    { policy: { operatingPoint: 'eco', maxExit: 2 } },
    { controller: { minBatteryReserve: 0.3, minDwellS: 5 } },
    { offload: { mode: 'image', deadlineMs: 1500 } },
    { telemetryIntervalMs: 250 },
    // A later change to one field of a section keeps the section's other fields.
    { offload: { deadlineMs: 2500 } },
  ];
  for (const [i, set] of changes.entries()) t.is(responseOf(remote.handleSet(message({ id: `c${i}`, set })).response).status, 'ok', JSON.stringify(set));

  const restarted = open();
  t.is(restarted.version, changes.length);
  t.deepEqual(restarted.config, remote.config);
  t.like(restarted.config, {
    policy: { operatingPoint: 'eco', maxExit: 2 },
    controller: { minBatteryReserve: 0.3, minDwellS: 5 },
    offload: { mode: 'image', deadlineMs: 2500 },
    telemetryIntervalMs: 250,
  });
  t.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), {
    version: changes.length,
    patch: {
      policy: { operatingPoint: 'eco', maxExit: 2 },
      controller: { minBatteryReserve: 0.3, minDwellS: 5 },
      offload: { mode: 'image', deadlineMs: 2500 },
      telemetryIntervalMs: 250,
    },
  });
});

test('thresholds that do not match the package\'s exit count are refused up front, naming the count, and nothing is saved or applied', (t) => {
  // The package's own check, as the agent runs it: four exits with calibrated points.
  const point = { name: 'balanced', policy: 'max-probability' as const, thresholds: [0.9, 0.9, 0.9, 1], maxExit: 3, validationAccuracy: 0.8, expectedMacs: 1, expectedLatencyMs: 1, exitHistogram: [1, 0, 0, 0] };
  const { file, rows, applied, open } = setup(t, undefined, (config) => void chooseOperatingPoint(config, [point], 4));
  const remote = open();
  const before = structuredClone(remote.config);
  for (const [id, set] of [
    ['too-few', { policy: { policy: 'max-probability', thresholds: [0.5, 0.5] } }],
    ['too-many', { policy: { policy: 'entropy', thresholds: [0.5, 0.5, 0.5, 0.5, 0.5] } }],
  ] as const) {
    const { response, state } = remote.handleSet(message({ id, set }));
    const answer = responseOf(response);
    t.like(answer, { id, status: 'error', version: 0 });
    t.regex(answer.reason ?? '', /policy\.thresholds: this package has 4 exits, so it takes 4 thresholds \(one per exit\), got [25]; nothing was changed/);
    t.is(state, undefined);
  }
  t.deepEqual(remote.config, before);
  t.is(remote.version, 0);
  t.is(applied.length, 0, 'not applied live');
  t.false(fs.existsSync(file), 'not saved');
  t.deepEqual(rows.map((row) => row.accepted), [false, false]);
  t.deepEqual(open().config, before, 'a restart finds nothing either');

  // The right count is accepted, and a deepest exit beyond the package's is refused the same way.
  t.is(responseOf(remote.handleSet(message({ id: 'four', set: { policy: { policy: 'max-probability', thresholds: [0.5, 0.5, 0.5, 1] } } })).response).status, 'ok');
  t.regex(responseOf(remote.handleSet(message({ id: 'deep', set: { policy: { maxExit: 7 } } })).response).reason ?? '', /policy\.maxExit: this package's exits are numbered 0 to 3, got 7/);
  t.is(remote.version, 1);
});

test('a change that sets values already in force is ok but bumps nothing', (t) => {
  const { applied, open } = setup(t);
  const remote = open();
  const { response, state } = remote.handleSet(message({ id: 'same', set: { policy: { operatingPoint: base.policy.operatingPoint } } }));
  t.deepEqual(responseOf(response), { id: 'same', status: 'ok', version: 0 });
  t.is(state, undefined);
  t.is(applied.length, 0);
});

const rejections: Array<[string, Buffer, RegExp]> = [
  ['an out-of-range threshold', message({ id: 'bad-1', set: { policy: { thresholds: [0.5, 1.5] } } }), /policy\.thresholds\.1/],
  ['malformed JSON', Buffer.from('{"id": "bad-2", "set": {'), /not JSON/],
  ['an unknown field', message({ id: 'bad-3', set: { controller: { maxTemperatureF: 160 } } }), /controller.*maxTemperatureF/],
  ['a too-large payload', message({ id: 'bad-4', set: { policy: { operatingPoint: 'x'.repeat(MAX_CONFIG_SET_BYTES) } } }), /bytes, at most 16384/],
  ['an offload deadline below its range', message({ id: 'bad-5', set: { offload: { deadlineMs: 5 } } }), /offload\.deadlineMs/],
];

for (const [what, bytes, reasonPattern] of rejections) {
  test(`${what} changes nothing, answers error with a reason and is logged as refused`, (t) => {
    const { file, rows, applied, open } = setup(t);
    const remote = open();
    const before = structuredClone(remote.config);

    const { response, state } = remote.handleSet(bytes);
    const answer = responseOf(response);
    t.is(answer.status, 'error');
    t.regex(answer.reason ?? '', reasonPattern);
    t.is(state, undefined);

    t.deepEqual(remote.config, before);
    t.is(remote.version, 0);
    t.is(applied.length, 0);
    t.false(fs.existsSync(file));
    t.is(rows.length, 1);
    t.like(rows[0], { source: 'mqtt', accepted: false });
    t.regex(rows[0]!.reason ?? '', reasonPattern);
  });
}

test('the request id is echoed on a rejection when it could be read', (t) => {
  const { open } = setup(t);
  t.is(responseOf(open().handleSet(message({ id: 'bad-1', set: { policy: { thresholds: [2] } } })).response).id, 'bad-1');
  t.is(responseOf(open().handleSet(Buffer.from('nope')).response).id, null);
});

test.serial('a corrupt or invalid overrides file is ignored with a warning and the base is kept', (t) => {
  const warnings = captureWarnings(t);
  const { file, open } = setup(t);
  fs.mkdirSync(path.dirname(file), { recursive: true });

  fs.writeFileSync(file, '{ "version": 3, "patch": ');
  let remote = open();
  t.deepEqual(remote.config, base);
  t.is(remote.version, 0);
  t.is(warnings.length, 1);
  t.regex(warnings[0]!, /Ignoring invalid remote config overrides/);

  // Well-formed JSON, but a value the schema refuses.
  fs.writeFileSync(file, JSON.stringify({ version: 3, patch: { controller: { maxTemperatureC: 500 } } }));
  remote = open();
  t.deepEqual(remote.config, base);
  t.is(warnings.length, 2);

  // A later accepted change replaces the bad file.
  t.is(responseOf(remote.handleSet(message({ id: 'fix', set: { controller: { maxTemperatureC: 80 } } })).response).status, 'ok');
  t.is(open().config.controller.maxTemperatureC, 80);
});

test.serial('an unwritable overrides location makes the change fail cleanly', (t) => {
  const warnings = captureWarnings(t);
  const { dir } = setup(t);
  // A regular file where the directory should be: refused even when the tests run as root.
  const blocker = path.join(dir, 'blocker');
  fs.writeFileSync(blocker, '');
  const { rows, applied, open } = setup(t, path.join(blocker, 'overrides.json'));
  const remote = open();
  t.regex(warnings[0] ?? '', /Cannot read the remote config overrides/);

  const { response, state } = remote.handleSet(message({ id: 'no-disk', set: { policy: { operatingPoint: 'eco' } } }));
  const answer = responseOf(response);
  t.is(answer.status, 'error');
  t.is(answer.id, 'no-disk');
  t.regex(answer.reason ?? '', /cannot save the change.*nothing was changed/);
  t.is(state, undefined);
  t.is(remote.version, 0);
  t.is(remote.config.policy.operatingPoint, base.policy.operatingPoint);
  t.is(applied.length, 2, 'applied live, then put back when it could not be saved');
  t.is((applied[1]!.config as AgentConfig).policy.operatingPoint, base.policy.operatingPoint);
  t.like(rows[0], { accepted: false });
  t.deepEqual(fs.readdirSync(dir).sort(), ['blocker']);
});
