import { Command } from 'commander';
import { logger } from '../log/logger.js';
import { benchCommand } from '../../tools/cli/bench.js';
import { buildModelCommand, DEFAULT_BUILD_CONFIG, DEFAULT_TASK_CONFIG } from '../../tools/cli/build-model.js';
import { evalCommand } from '../../tools/cli/eval.js';
import { inspectCommand } from '../../tools/cli/inspect.js';
import { logPath, runCommand } from './commands/run.js';
import { statusCommand } from './commands/status.js';
import { DEFAULT_SERVER_BROKER, serverCommand } from './commands/server.js';
import { DEFAULT_TRAIN_CONFIG, trainCommand } from '../../tools/cli/train.js';
import { registerLogsCommand } from './commands/logs.js';
import { loadAgentConfig } from '../config/agent-config.js';

const program = new Command()
  .name('edge-exit')
  .description('Multi-exit int8 inference agent for edge gateways')
  .showHelpAfterError();

program
  .command('inspect')
  .description('print a .tflite model: inputs, outputs, ops, shapes, quantization, MACs per op and candidate cut points')
  .argument('<model>', 'path to a .tflite file')
  .option('--json', 'machine-readable output')
  .action((model: string, options: { json?: boolean }) => inspectCommand(model, options));

program
  .command('build-model')
  .description('cut the base model into segments and heads and write models/<name>/ (cached)')
  .option('-c, --config <name|file>', 'build config: a name under models/configs/ or a .json path', DEFAULT_BUILD_CONFIG)
  .option('-o, --out <dir>', 'package directory (default models/<name>)')
  .option('-f, --force', 'rebuild even if the package is up to date')
  .action(buildModelCommand);

program
  .command('train')
  .description('fine-tune the backbone and every exit jointly on an ImageFolder (PyTorch), then export an int8 package (resumes from its checkpoint)')
  .option('-c, --config <name|file>', 'training config: a name under models/configs/ or a .json path', DEFAULT_TRAIN_CONFIG)
  .option('-o, --out <dir>', 'package directory (default models/<name>)')
  .option('-f, --force', 'replace a package at the destination even if its classes differ')
  .action(async (options: { config: string; out?: string; force?: boolean }) => {
    await trainCommand(options);
  });

program
  .command('bench')
  .description('side-by-side benchmarks: stock vs XNNPACK, monolithic vs segment chain, operating points vs the full model')
  .option('-c, --config <name|file>', 'build config of the runtime suite\'s package', DEFAULT_BUILD_CONFIG)
  .option('--task-config <name|file>', 'build config of the exits suite\'s multi-exit package', DEFAULT_TASK_CONFIG)
  .option('--suites <list>', 'runtime (stock vs XNNPACK, monolithic vs chain), exits (operating points vs full model), day (simulated day), logging (log overhead in the loop), offload (MQTT round trips and server throughput, needs mosquitto)', 'runtime,exits')
  .option('--images-per-class <n>', 'CIFAR-10 test images per class (the runtime suite adds cat.bmp)', '20')
  .option('--threads <list>', 'thread counts to measure', '1,2')
  .option('--no-write', 'do not update docs/benchmarks.md')
  .action(benchCommand);

program
  .command('eval')
  .description('per-exit and per-operating-point accuracy, cost and exit histogram on the test split, as JSON and plots')
  .option('-c, --config <name|file>', 'build config of the package (it must have a task)', DEFAULT_TASK_CONFIG)
  .option('--limit <n>', 'evaluate on a class-balanced subset of n test images')
  .option('--threads <n>', 'interpreter threads', '1')
  .option('-o, --out <dir>', 'report directory (default docs/results/<package>)')
  .action(evalCommand);

program
  .command('run')
  .description('run the agent: frames, multi-exit inference, energy-aware controller, local SQLite logs (Ctrl-C flushes and stops)')
  .option('-c, --config <file>', 'agent config file (default: $EDGE_EXIT_CONFIG, or edge-exit.config.json if present, or the defaults)')
  .option('--frames <n>', 'stop after n frames')
  .action(runCommand);

program
  .command('status')
  .description("print the running agent's live state")
  .option('-c, --config <file>', 'agent config file')
  .option('--json', 'machine-readable output')
  .action(statusCommand);

program
  .command('server')
  .description('the offload server: finishes the full model for frames gateways offload over MQTT')
  .option('-c, --config <name|file>', 'build config of the package it serves (the agents\' package)', DEFAULT_TASK_CONFIG)
  .option('--broker <url>', `MQTT broker URL (mqtt://, mqtts://; default $EDGE_EXIT__MQTT__URL or ${DEFAULT_SERVER_BROKER})`)
  .option('--workers <n>', 'worker processes (more than 1 needs --share-group)', '1')
  .option('--share-group <name>', 'subscribe as $share/<name>/... so workers and servers split the requests (Mosquitto)')
  .option('--protocol <4|5>', 'MQTT protocol version: 5 for response topics, 4 for MQTT 3.1.1 brokers such as aedes', '5')
  .option('--prefix <topic prefix>', 'topic prefix the agents use')
  .option('--threads <n>', 'interpreter threads per worker', '1')
  .option('--server-id <id>', 'the name it announces on <prefix>/servers/<id>/availability (letters, digits, _ . -; workers add -1, -2...; default host name and process id)')
  .option('--username <name>', 'broker login (or EDGE_EXIT__MQTT__USERNAME); the password only from EDGE_EXIT__MQTT__PASSWORD, so it never shows in a process list')
  .option('--ca-file <pem>', "the CA that signed the broker's certificate (or EDGE_EXIT__MQTT__CA_FILE)")
  .option('--cert-file <pem>', 'client certificate, when the broker requires one (or EDGE_EXIT__MQTT__CERT_FILE)')
  .option('--key-file <pem>', 'private key of --cert-file (or EDGE_EXIT__MQTT__KEY_FILE)')
  .action(serverCommand);

registerLogsCommand(program, () => logPath(loadAgentConfig(undefined).config));

try {
  await program.parseAsync();
} catch (error) {
  logger.debug({ err: error }, 'command failed');
  process.stderr.write(`edge-exit: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
