import { Command } from 'commander';
import { agentConfigJsonSchema, loadAgentConfig } from '../agent/config/agent-config.js';
import { agentVersion } from '../agent/config/paths.js';
import { logger } from '../common/log/logger.js';
import { defaultPackage } from '../agent/model-package/locate.js';
import { classifyCommand } from './commands/classify.js';
import { registerLogsCommand } from './commands/logs.js';
import { logPath, runCommand } from './commands/run.js';
import { DEFAULT_SERVER_BROKER, serverCommand } from './commands/server.js';
import { statusCommand } from './commands/status.js';

/*
 * Gateway commands (run, status, logs, classify, server) are imported here; the
 * workstation commands (build-model, train, eval, bench, inspect) live in tools/ and
 * are imported only when one of them is run, so a gateway never loads tfjs or the
 * training glue.
 */
const workstation = {
  buildModel: () => import('../tools/cli/build-model.js'),
  train: () => import('../tools/cli/train.js'),
  evaluate: () => import('../tools/cli/eval.js'),
  bench: () => import('../tools/cli/bench.js'),
  inspect: () => import('../tools/cli/inspect.js'),
  release: () => import('../tools/cli/release.js'),
};

/** The benchmark runtime suite's single-exit package, and its training recipe default. */
const DEFAULT_RUNTIME_BENCH_PACKAGE = 'mobilenet_v2_imagenet';
const DEFAULT_TRAIN_CONFIG = 'mobilenet_v2_cifar10_finetuned';

const version = agentVersion();

const program = new Command()
  .name('edge-exit')
  .description('Multi-exit int8 inference agent for edge gateways')
  .version(version, '-V, --version')
  .showHelpAfterError();

program
  .command('inspect')
  .description('print a .tflite model: inputs, outputs, ops, shapes, quantization, MACs per op and candidate cut points')
  .argument('<model>', 'path to a .tflite file (with --edgetpu, also a package directory: every file in it)')
  .option('--json', 'machine-readable output')
  .option('--edgetpu', "check it against Coral's Edge TPU requirements: what the compiler would leave on the CPU and why, and where it would split the graph (exit status 1 unless every op maps)")
  .action(async (model: string, options: { json?: boolean; edgetpu?: boolean }) => (await workstation.inspect()).inspectCommand(model, options));

program
  .command('build-model')
  .description('cut the base model into segments and heads and write models/<name>/ (cached)')
  .option('-c, --config <name|file>', 'build config: a name under models/configs/ or a .json path', defaultPackage())
  .option('-o, --out <dir>', 'package directory (default models/<name>)')
  .option('-f, --force', 'rebuild even if the package is up to date')
  .option('--edgetpu', 'also compile the segments for the Coral Edge TPU with edgetpu_compiler (one call, shared parameter cache; heads stay on the CPU)')
  .action(async (options) => (await workstation.buildModel()).buildModelCommand(options));

program
  .command('train')
  .description('fine-tune the backbone and every exit jointly on an ImageFolder (PyTorch), then export an int8 package (resumes from its checkpoint)')
  .option('-c, --config <name|file>', 'training config: a name under models/configs/ or a .json path', DEFAULT_TRAIN_CONFIG)
  .option('-o, --out <dir>', 'package directory (default models/<name>)')
  .option('-f, --force', 'replace a package at the destination even if its classes differ')
  .option('--edgetpu', 'also compile the exported segments for the Coral Edge TPU with edgetpu_compiler')
  .action(async (options: { config: string; out?: string; force?: boolean; edgetpu?: boolean }) => {
    await (await workstation.train()).trainCommand(options);
  });

program
  .command('bench')
  .description('side-by-side benchmarks: stock vs XNNPACK, monolithic vs segment chain, operating points vs the full model')
  .option('-c, --config <name|file>', 'build config of the runtime suite\'s package', DEFAULT_RUNTIME_BENCH_PACKAGE)
  .option('--task-config <name|file>', 'build config of the exits suite\'s multi-exit package', defaultPackage())
  .option('--suites <list>', 'runtime (stock vs XNNPACK, monolithic vs chain), exits (operating points vs full model), day (simulated day), logging (log overhead in the loop), offload (MQTT round trips and server throughput, needs mosquitto), stream (every-frame inference vs the motion gate on generated videos, needs ffmpeg), web (what the dashboard, /metrics and discovery cost the loop), lifetime (multi-day battery scenarios: static, controller, planner with duty cycling, oracle), cpu-path (1 vs 2 threads in a C harness and the runtime, int8 vs uint8 models), loop (what the real loop costs beyond the model, before and after with --baseline), peers (the same network in onnxruntime-node)', 'runtime,exits')
  .option('--baseline <checkout>', 'loop suite: another checkout (e.g. a git worktree of an earlier commit) run side by side as "before"')
  .option('--images-per-class <n>', 'CIFAR-10 test images per class (the runtime suite adds cat.bmp)', '20')
  .option('--threads <list>', 'thread counts to measure', '1,2')
  .option('--no-write', 'do not update docs/benchmarks.md')
  .action(async (options) => (await workstation.bench()).benchCommand(options));

program
  .command('eval')
  .description('per-exit and per-operating-point accuracy, cost and exit histogram on the test split, as JSON and plots')
  .option('-c, --config <name|file>', 'package or build config (it must have a task)', defaultPackage())
  .option('--test-dir <folder>', 'an ImageFolder of the package\'s classes to evaluate on (default: the task\'s test split)')
  .option('--limit <n>', 'evaluate on a class-balanced subset of n test images')
  .option('--threads <n>', 'interpreter threads', '1')
  .option('-o, --out <dir>', 'report directory (default docs/results/<package>)')
  .action(async (options) => (await workstation.evaluate()).evalCommand(options));

program
  .command('run')
  .description(
    'run the agent: frames, multi-exit inference, energy-aware controller, local SQLite logs (Ctrl-C flushes and stops). ' +
      'It runs a released or built model package and never builds one (a missing one is named, with the command that builds it), and without mqtt.url it starts ' +
      'an embedded MQTT broker on 127.0.0.1 (mqtt.embeddedPort, 1884) and an offload server beside it',
  )
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
  .option('-c, --config <name|file>', 'the package it serves (the agents\' package): a name, a directory or a build config', defaultPackage())
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
  .option('--web-port <port>', 'serve the fleet page (every gateway and worker on the broker) and /metrics on this port; 0 picks a free one')
  .option('--web-host <host>', 'address of the fleet page; off localhost, EDGE_EXIT__WEB__TOKEN must hold a token', '127.0.0.1')
  .action(serverCommand);

program
  .command('classify')
  .description('classify images with a package or a plain .tflite: top-k labels, the exit taken, the confidence at every exit that ran, ms per segment')
  .argument('<image...>', 'image files (JPEG, PNG, BMP, ...)')
  .option('-c, --config <name|path>', 'the package: a name, a directory or a build config (a .tflite path is taken as --model)', defaultPackage())
  .option('-m, --model <file.tflite>', 'a plain image classification model instead of a package, as pycoral\'s classify_image takes one')
  .option('-l, --labels <file>', 'class names of --model: one a line, or "N label" lines (default: class indices)')
  .option('-k, --top <k>', 'how many labels to print', '5')
  .option('--operating-point <name>', 'the calibrated point that decides where to stop (default balanced; none for single-exit packages)')
  .option('--threads <n>', 'interpreter threads', '1')
  .option('--json', 'machine-readable output')
  .action(classifyCommand);

program
  .command('release')
  .description('copy a built or trained package to models/releases/<name>/ with its provenance, for gateways to run without building (at most 10 MB)')
  .argument('<package>', 'the package name')
  .option('--command <text>', 'the command that made it, for the provenance')
  .action(async (name: string, options: { command?: string }) => (await workstation.release()).releaseCommand(name, options));

program
  .command('config-schema')
  .description("print the agent config's JSON Schema (for editors: \"$schema\" in edge-exit.config.json)")
  .action(() => console.log(JSON.stringify(agentConfigJsonSchema(), null, 2)));

registerLogsCommand(program, () => logPath(loadAgentConfig(undefined).config));

try {
  await program.parseAsync();
} catch (error) {
  logger.debug({ err: error }, 'command failed');
  process.stderr.write(`edge-exit: ${(error as Error).message}\n`);
  // A bad config or package exits 78 (EX_CONFIG): restarting cannot fix it, so the systemd units do not (RestartPreventExitStatus=78).
  process.exitCode = ['ConfigError', 'ModelPackageError', 'PackageNotFoundError'].includes((error as Error | undefined)?.name ?? '') ? 78 : 1;
  // A part that failed to start may leave a handle open (a listening socket, a client); a failed command must still end.
  setTimeout(() => process.exit(), 2000).unref();
}
