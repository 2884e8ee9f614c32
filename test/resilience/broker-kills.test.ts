import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { AgentProcess } from '../helpers/agent-process.js';
import { mosquittoTest } from '../helpers/brokers.js';
import { assertNoSecrets, GATEWAY_USER, OFFLOAD_EVERY_FRAME, recordFigures, securedBroker, startServerProcess, tinyAgentPackageForFile } from '../helpers/resilience.js';

/*
 * The broker crashes (kill -9, no persistence: every session and in-flight message
 * forgotten) five times while a gateway offloads every frame to a server. Every
 * offload must end answered exactly once, and the frame rate must hold.
 */

const BROKER_KILLS = 5;
const FRAME_RATE = 10;
const withMosquitto = mosquittoTest('mosquitto_passwd');
const tinyPackage = tinyAgentPackageForFile();

withMosquitto(`${BROKER_KILLS} broker kills during offload: no offload lost or answered twice, the loop keeps its pace`, async (t) => {
  const broker = await securedBroker(t);
  const server = await startServerProcess(t, broker, tinyPackage());
  // Enough frames to run through every outage, and 10 s of calm after the last.
  const frames = FRAME_RATE * (BROKER_KILLS * 5 + 15);
  const agent = AgentProcess.start(
    tinyPackage(),
    { deviceId: GATEWAY_USER, mqtt: { url: broker.gatewayUrl }, maxFrameRate: FRAME_RATE, ...OFFLOAD_EVERY_FRAME },
    { frames },
  );
  t.teardown(() => agent.kill());
  await agent.waitForOutput(/offload server resilience-rack is up/);

  const outages: { at: number; downMs: number }[] = [];
  const started = Date.now();
  for (let kill = 0; kill < BROKER_KILLS; kill += 1) {
    await sleep(3000);
    await broker.kill();
    const downMs = 500 + kill * 300;
    outages.push({ at: (Date.now() - started) / 1000, downMs });
    await sleep(downMs);
    await broker.start();
  }
  // --frames ends the run; the agent waits for the answers still in flight, then exits.
  t.is(await agent.exited, 0, agent.output);

  const rows = agent.inferences();
  t.is(rows.length, frames, 'every frame logged');
  const offloaded = rows.filter((row) => row.offloaded);
  const answered = offloaded.filter((row) => row.serverLabel !== null);
  const requestIds = offloaded.map((row) => row.requestId);
  const duplicated = requestIds.length - new Set(requestIds).size;
  const leftInOutbox = agent.outboxRequestIds();
  const lost = offloaded.length - answered.length;
  t.true(offloaded.length >= frames * 0.75, `${offloaded.length} of ${frames} frames offloaded`);
  t.is(lost, 0, `${lost} offloads never answered`);
  t.is(duplicated, 0, 'no request logged twice');
  t.deepEqual(leftInOutbox, [], 'nothing left waiting in the outbox');

  // Frame rate: the wall time the run took against the frames it made (the cap is FRAME_RATE).
  const spanS = (rows.at(-1)!.ts - rows[0]!.ts) / 1000;
  const framesPerSecond = (rows.length - 1) / spanS;
  // A loose bound (the figure goes to the report): outages must not stop the loop, whatever else CI runs beside it.
  t.true(framesPerSecond > FRAME_RATE * 0.5, `${framesPerSecond.toFixed(1)} frames/s against a cap of ${FRAME_RATE}`);
  const reconnects = (agent.output.match(/offload server resilience-rack is up/g) ?? []).length;

  const searched = await assertNoSecrets(t, { outputs: { agent: agent.output, server: server.output }, dirs: [agent.dir], exclude: [agent.configFile], broker });
  recordFigures(t, 'broker-kills', {
    brokerKills: outages.length,
    outages,
    frames: rows.length,
    framesPerSecond: Number(framesPerSecond.toFixed(2)),
    offloaded: offloaded.length,
    answered: answered.length,
    lost,
    duplicated,
    answeredLate: answered.filter((row) => row.answeredAt !== null && row.answeredAt - row.ts > OFFLOAD_EVERY_FRAME.offload.deadlineMs).length,
    serverSeenUpTimes: reconnects,
    secretSearch: { placesSearched: searched, leaks: 0 },
  });
});
