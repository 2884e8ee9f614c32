import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { readConfigObject } from '../agent/config/json-file.js';
import { agentConfigJsonSchema } from '../agent/config/agent-config.js';
import { configDirs, PROJECT_ROOT } from '../agent/config/paths.js';
import { RECOMMENDED_PACKAGE } from '../agent/model-package/locate.js';
import { loadBuildConfig } from '../tools/model-package/build-config.js';
import { isCascadeConfigFile, loadCascadeConfig } from '../tools/training/cascade-config.js';
import { loadTrainConfig } from '../tools/training/train-config.js';
import { temporaryDir } from './helpers/shared.js';

const [productConfigs, labConfigs] = configDirs();

test('models/configs holds only what a user should pick and the base they extend', (t) => {
  const names = fs.readdirSync(productConfigs!).sort();
  t.true(names.length <= 6, names.join(', '));
  t.true(names.includes('mobilenet_v2_cifar10.json') && names.includes('mobilenet_v2_imagenet.json'));
});

test('every config, product or lab, resolves its extends and passes its loader', (t) => {
  for (const dir of [productConfigs!, labConfigs!]) {
    for (const name of fs.readdirSync(dir)) {
      const file = path.join(dir, name);
      const resolved = readConfigObject(file);
      t.false('extends' in resolved, `${name}: extends is resolved away`);
      if (isCascadeConfigFile(file)) t.notThrows(() => loadCascadeConfig(file), name);
      else if ('training' in resolved) t.notThrows(() => loadTrainConfig(file), name);
      else t.notThrows(() => loadBuildConfig(file), name);
    }
  }
});

test('extends lays a config over its base: objects merge, arrays replace; a cycle or a missing base is an error', (t) => {
  const dir = temporaryDir('edge-exit-extends-');
  const write = (name: string, json: unknown) => fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(json));
  write('base', { name: 'base', training: { epochs: 6, seed: 1, exitWeights: [0.5, 1] }, cuts: ['block_3'] });
  write('child', { extends: 'base', name: 'child', training: { seed: 3, exitWeights: [1] } });
  t.deepEqual(readConfigObject(path.join(dir, 'child.json'), []), { name: 'child', training: { epochs: 6, seed: 3, exitWeights: [1] }, cuts: ['block_3'] });
  write('a', { extends: 'b' });
  write('b', { extends: 'a' });
  t.throws(() => readConfigObject(path.join(dir, 'a.json'), []), { message: /goes round in a circle/ });
  write('orphan', { extends: 'nowhere' });
  t.throws(() => readConfigObject(path.join(dir, 'orphan.json'), []), { message: /no config "nowhere"/ });
});

test('the recommended cascade resolves to exactly the settings its release was trained with', (t) => {
  const configFile = (name: string) => path.join(PROJECT_ROOT, 'models', 'configs', `${name}.json`);
  const cascade = readConfigObject(configFile(RECOMMENDED_PACKAGE));
  t.like(cascade, { main: 'mobilenet_v2_cifar10_finetuned_final_first_bf16_10ep_seed3', glance: 'mobilenet_v2_cifar10_glance_64_seed3', balancedConfidenceZ: 3 });
  t.like(readConfigObject(configFile(String(cascade.main))), { inputSize: 128, training: { epochs: 10, seed: 3, bfloat16: true, cutout: 0.5, exitWeights: [0, 0, 0, 0, 1] } });
  t.like(readConfigObject(configFile(String(cascade.glance))), { inputSize: 64, frameSize: 128, training: { epochs: 10, seed: 3, labelSmoothing: 0 } });
});

test('docs/agent-config.schema.json is the schema the agent validates with, and checks a config as the agent does', (t) => {
  const committed = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'docs', 'agent-config.schema.json'), 'utf8')) as { properties: Record<string, { additionalProperties?: boolean }>; additionalProperties?: boolean };
  t.deepEqual(committed, JSON.parse(JSON.stringify(agentConfigJsonSchema())), 'regenerate it: node bin/edge-exit.js config-schema > docs/agent-config.schema.json');
  t.is(committed.additionalProperties, false, 'unknown keys are refused by the schema too');
  t.is(committed.properties.controller!.additionalProperties, false);
});
