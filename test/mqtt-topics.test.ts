import test from 'ava';
import {
  assertPublishTopic,
  DEFAULT_TOPIC_PREFIX,
  deviceIdFromOffloadRequest,
  defaultServerId,
  deviceTopics,
  MQTT_PROTOCOL_VERSION,
  requestIdFromOffloadResponse,
  serverAvailabilityFilter,
  serverAvailabilityTopic,
  serverLoadTopic,
  serverIdFromAvailability,
  serverIdProblem,
  serverOffloadFilter,
  TOPIC_TABLE,
  TopicError,
  topicTableMarkdown,
} from '../agent/mqtt/topics.js';

test('device topics follow <prefix>/<deviceId>/... under the default prefix', (t) => {
  const topics = deviceTopics('gw-01');
  t.is(MQTT_PROTOCOL_VERSION, 5);
  t.is(topics.prefix, DEFAULT_TOPIC_PREFIX);
  t.is(topics.availability, 'edge-exit/gw-01/availability');
  t.is(topics.telemetry, 'edge-exit/gw-01/telemetry');
  t.is(topics.configSet, 'edge-exit/gw-01/config/set');
  t.is(topics.configResponse, 'edge-exit/gw-01/config/response');
  t.is(topics.configState, 'edge-exit/gw-01/config/state');
  t.is(topics.offloadRequest, 'edge-exit/gw-01/offload/request');
  t.is(topics.offloadResponseFilter, 'edge-exit/gw-01/offload/response/+');
  t.is(topics.offloadResponse('r-42.a_b'), 'edge-exit/gw-01/offload/response/r-42.a_b');
});

test('a prefix may have several levels', (t) => {
  const topics = deviceTopics('cam_7', 'home/site-a/edge');
  t.is(topics.telemetry, 'home/site-a/edge/cam_7/telemetry');
  t.is(serverOffloadFilter('home/site-a/edge'), 'home/site-a/edge/+/offload/request');
});

test('device ids with wildcards, separators and other bad characters are refused by name', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['cam+1', /device id "cam\+1" contains "\+", an MQTT single-level wildcard/],
    ['cam#', /contains "#", an MQTT multi-level wildcard/],
    ['site/cam', /contains "\/", the MQTT level separator/],
    ['', /device id is empty/],
    ['cam\u0000', /NUL/],
    ['$SYS', /starts with "\$"/],
    ['cam 1', /whitespace/],
    ['x'.repeat(65), /at most 64/],
    ['café', /letters, digits, _ and - only/],
  ];
  for (const [id, message] of cases) {
    const error = t.throws(() => deviceTopics(id), { instanceOf: TopicError }, JSON.stringify(id));
    t.regex(error.message, message);
  }
});

test('bad prefixes are refused by name', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /prefix is empty/],
    ['a//b', /level 2 is empty/],
    ['/a', /starts or ends with "\/"/],
    ['a/', /starts or ends with "\/"/],
    ['a/+/b', /level 2 "\+" contains "\+"/],
    ['edge#', /"#"/],
    ['$share/g', /starts with "\$"/],
    ['a\u0000b', /NUL/],
    ['p'.repeat(129), /at most 128/],
  ];
  for (const [prefix, message] of cases) {
    const error = t.throws(() => deviceTopics('gw', prefix), { instanceOf: TopicError }, JSON.stringify(prefix));
    t.regex(error.message, message);
  }
});

test('response topics refuse request ids that would add wildcards or levels', (t) => {
  const topics = deviceTopics('gw');
  for (const id of ['a+b', 'a#', 'a/b', '', 'x'.repeat(65), 'é']) {
    t.throws(() => topics.offloadResponse(id), { instanceOf: TopicError, message: /request id/ });
  }
});

test('shared subscriptions for server replicas', (t) => {
  t.is(serverOffloadFilter(undefined, { shareGroup: 'offload' }), '$share/offload/edge-exit/+/offload/request');
  t.throws(() => serverOffloadFilter('edge-exit', { shareGroup: 'a/b' }), { instanceOf: TopicError, message: /shared subscription group/ });
  t.throws(() => serverOffloadFilter('edge-exit', { shareGroup: '' }), { instanceOf: TopicError });
});

test('topics received are mapped back to device and request ids', (t) => {
  const topics = deviceTopics('gw-2', 'lab/edge');
  t.is(deviceIdFromOffloadRequest(topics.offloadRequest, 'lab/edge'), 'gw-2');
  t.is(deviceIdFromOffloadRequest('lab/edge/a/b/offload/request', 'lab/edge'), undefined);
  t.is(deviceIdFromOffloadRequest('other/gw-2/offload/request', 'lab/edge'), undefined);
  t.is(requestIdFromOffloadResponse(topics.offloadResponse('req-9'), topics), 'req-9');
  t.is(requestIdFromOffloadResponse('lab/edge/gw-2/offload/response/a/b', topics), undefined);
  t.is(requestIdFromOffloadResponse('lab/edge/gw-3/offload/response/req-9', topics), undefined);
});

test('published topics never contain wildcards', (t) => {
  t.throws(() => assertPublishTopic('a/+/b'), { instanceOf: TopicError });
  t.throws(() => assertPublishTopic('a/#'), { instanceOf: TopicError });
  t.throws(() => assertPublishTopic('a//b'), { instanceOf: TopicError });
  t.throws(() => assertPublishTopic(''), { instanceOf: TopicError });
  // Random device ids: either refused, or every topic built from them is concrete.
  let state = 0x2f6b_1d3c;
  const next = () => ((state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0) >>> 8) / (1 << 24);
  const alphabet = 'ab09-_+#/ $\u0000é.';
  let accepted = 0;
  for (let i = 0; i < 2000; i++) {
    const length = Math.floor(next() * 8);
    let id = '';
    for (let j = 0; j < length; j++) id += alphabet[Math.floor(next() * alphabet.length)];
    let topics;
    try {
      topics = deviceTopics(id);
    } catch (error) {
      t.true(error instanceof TopicError);
      continue;
    }
    accepted++;
    for (const topic of [topics.availability, topics.telemetry, topics.configSet, topics.configResponse, topics.configState, topics.offloadRequest, topics.offloadResponse('r1')]) {
      t.false(/[+#\u0000]/.test(topic), topic);
      t.true(topic.startsWith(`edge-exit/${id}/`), topic);
      t.false(topic.split('/').includes(''), topic);
    }
  }
  t.true(accepted > 0);
});

test('server availability topics: four levels under the prefix, parsed back, and never a device topic', (t) => {
  t.is(serverAvailabilityTopic('gpu-box-4242', 'site/a'), 'site/a/servers/gpu-box-4242/availability');
  t.is(serverIdFromAvailability('site/a/servers/gpu-box-4242/availability', 'site/a'), 'gpu-box-4242');
  t.is(serverIdFromAvailability('site/a/servers/availability', 'site/a'), undefined, 'the availability of a device named "servers"');
  t.is(serverIdFromAvailability('edge-exit/servers/a/b/availability'), undefined, 'a server id is one level');
  t.is(serverAvailabilityFilter('site/a'), 'site/a/servers/+/availability');
  // A device called "servers" publishes on three levels; the filter matches only four.
  const device = deviceTopics('servers');
  const matches = (topic: string) => new RegExp(`^${serverAvailabilityFilter().replace('+', '[^/]+')}$`).test(topic);
  for (const topic of [device.availability, device.telemetry, device.configSet, device.configState, device.offloadRequest, device.offloadResponse('r1')]) t.false(matches(topic), topic);
  t.true(matches(serverAvailabilityTopic('w1')));
  t.throws(() => serverAvailabilityTopic('has space'), { instanceOf: TopicError, message: /server id "has space" must be 1 to 64 of letters, digits/ });
  t.throws(() => serverAvailabilityTopic('w+'), { instanceOf: TopicError });
  t.is(defaultServerId('rack 3/gpu', 77), 'rack-3-gpu-77');
  t.is(defaultServerId('rack 3/gpu', 77, 2), 'rack-3-gpu-77-2', 'a second server in one process');
  t.is(serverIdProblem(defaultServerId('x'.repeat(200), 4_194_304, 1000)), undefined, 'a long host name is cut to fit a level');
});

test('the topic table matches the builders and renders as Markdown', (t) => {
  const topics = deviceTopics('gw');
  const built = new Set([
    topics.availability,
    topics.telemetry,
    topics.configSet,
    topics.configResponse,
    topics.configState,
    topics.state,
    topics.events,
    topics.snapshot,
    topics.healthRequest,
    topics.healthResponse,
    topics.offloadRequest,
    topics.offloadResponse('requestId'),
    serverOffloadFilter(),
    serverAvailabilityTopic('worker-1'),
    serverLoadTopic('worker-1'),
  ]);
  built.add('edge-exit/gw/ha/control/set').add('homeassistant/component/edge-exit_gw/object/config');
  for (const row of TOPIC_TABLE) {
    const concrete = row.topic.replace('<prefix>', 'edge-exit').replace('<deviceId>', 'gw').replace('<requestId>', 'requestId').replace('<serverId>', 'worker-1').replace('<control>', 'control').replace('<component>', 'component').replace('<object>', 'object').replace('edge-exit_<deviceId>', 'edge-exit_gw');
    t.true(built.has(concrete), concrete);
  }
  t.true(TOPIC_TABLE.find((r) => r.topic.endsWith('/availability'))!.retained);
  t.true(TOPIC_TABLE.find((r) => r.topic.endsWith('/config/state'))!.retained);
  const markdown = topicTableMarkdown();
  t.is(markdown.split('\n').length, TOPIC_TABLE.length + 2);
  t.regex(markdown, /\| `<prefix>\/<deviceId>\/availability` \| agent → broker \| 1 \| yes \|/);
});
