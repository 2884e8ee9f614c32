import test from 'ava';
import { parseAgentConfig, publicConfig, ConfigError } from '../agent/config/agent-config.js';
import { AgentProcess } from './helpers/agent-process.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

/* /metrics and /health of a running agent, read over HTTP as Prometheus and a watchdog would. */

/** Prometheus' text format: `# HELP`/`# TYPE` lines, and samples `name{labels} value`. */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const match = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+-]+|NaN|[+-]Inf)$/);
    if (!match) throw new Error(`not Prometheus text: ${line}`);
    samples.set(match[1]!, Number(match[2]));
  }
  return samples;
}

test('/metrics parses as Prometheus text and its counters move with frames; /health says ok; exposed, a token is required', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const token = 'a-long-enough-test-token';
  const agent = AgentProcess.start({ modelsDir, buildConfig }, { maxFrameRate: 20, web: { host: '0.0.0.0', port: 0, token } });
  t.teardown(() => agent.kill());
  const port = (await agent.waitForOutput(/metrics on http:\/\/[^:]+:(\d+)\/metrics/))[1]!;
  const url = (path: string) => `http://127.0.0.1:${port}${path}`;
  const auth = { headers: { authorization: `Bearer ${token}` } };

  t.is((await fetch(url('/metrics'))).status, 401, 'no token, no metrics');
  t.is((await fetch(url('/metrics'), { headers: { authorization: 'Bearer wrong' } })).status, 401);
  await agent.waitForOutput(/\d+ frames\s+[\d.]+ fps/);
  const first = parsePrometheus(await (await fetch(url('/metrics'), auth)).text());
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const response = await fetch(url('/metrics'), auth);
  t.regex(response.headers.get('content-type') ?? '', /^text\/plain/);
  const second = parsePrometheus(await response.text());
  t.true(second.get('edge_exit_frames_total')! > first.get('edge_exit_frames_total')!, `frames ${first.get('edge_exit_frames_total')} → ${second.get('edge_exit_frames_total')}`);
  const exits = [...second].filter(([name]) => name.startsWith('edge_exit_exit_frames_total{')).reduce((sum, [, value]) => sum + value, 0);
  t.is(exits, second.get('edge_exit_frames_total')!, 'the exits add up to the frames');
  t.is(second.get('edge_exit_log_ok'), 1);
  t.true([...second.keys()].some((name) => name.startsWith('edge_exit_operating_point_info{point="')));
  // Segment 0 runs for every frame: its histogram counts them all.
  t.is(second.get('edge_exit_segment_seconds_count{segment="0"}'), second.get('edge_exit_frames_total'));
  t.true(second.get('edge_exit_segment_seconds_sum{segment="0"}')! > 0);
  for (const name of ['edge_exit_offload_requests_total', 'edge_exit_offload_answers_total', 'edge_exit_offload_timeouts_total', 'edge_exit_outbox_depth', 'process_resident_memory_bytes']) {
    t.true(second.has(name), name);
  }

  const health = await fetch(url('/health'), auth);
  t.is(health.status, 200);
  t.like(await health.json(), { status: 'ok', checks: { store: 'ok', source: 'ok' } });
  t.is((await fetch(url('/healthz'), auth)).status, 200, '/healthz is /health');
  t.is(await agent.stop(), 0, agent.output);
  t.false(agent.output.includes(token), 'the token is never printed');
});

test('exposing the metrics needs a token, and the token never shows in the published config', (t) => {
  const error = t.throws(() => parseAgentConfig({ web: { host: '0.0.0.0' } }), { instanceOf: ConfigError });
  t.regex(error!.message, /web\.token is required/);
  const config = parseAgentConfig({ web: { host: '0.0.0.0', token: 'sixteen-chars-long!' } });
  t.is(publicConfig(config).web.token, '[redacted]');
  t.notThrows(() => parseAgentConfig({ web: { host: '127.0.0.1' } }));
});
