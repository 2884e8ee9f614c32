import fs from 'node:fs';
import { z } from 'zod';
import { type AgentConfig, ConfigError, parseAgentConfig, publicConfig } from '../config/agent-config.js';
import { logger } from '../../common/log/logger.js';
import { writeFileAtomically } from '../../common/atomic-write.js';
import type { ConfigChangeRow } from '../store/types.js';
import type { ConfigTaker } from '../config/config-owners.js';
import { applyConfigPatch, changedLeafPaths, type ConfigPatch, configPatchSchema, describeIssuesReason, mergePatches, shortenReason } from '../config/config-patch.js';
import { configResponseFor, configResponseSchema, configStateSchema, encodeJsonPayload, parseConfigSet } from './payloads.js';

export interface RemoteConfigOptions {
  /** From the config file and the environment. */
  base: AgentConfig;
  /** Where accepted remote changes persist: { version, patch } with the patches merged. */
  overridesFile: string;
  /** Where every change, accepted or refused, is written down (the SQLite log). */
  log?: { logConfigChange(row: ConfigChangeRow): void };
  /**
   * The parts that own the sections (agent/config/config-owners.ts): each judges a change by
   * what the schema cannot know, such as the package's exit count, and applies it live in the
   * same visit (a refusal is answered as an error, with nothing changed); the change is saved
   * after, and undone if it cannot be. What they say about it is told to the operator.
   */
  owners?: ConfigTaker;
  now?: () => number;
}

export interface HandleSetResult {
  response: Buffer;
  /** The new retained config/state; undefined when nothing changed. */
  state: Buffer | undefined;
}

/**
 * One merged patch rather than a list: the file stays small however many changes
 * arrive, and it is layered over the base on every start, so edits to the config
 * file still take effect for fields no operator has changed remotely.
 */
const overridesSchema = z.strictObject({
  version: z.number().int().nonnegative(),
  patch: configPatchSchema,
});
type Overrides = z.infer<typeof overridesSchema>;

/**
 * The agent config as operators change it over MQTT (config/set), persisted so that
 * changes survive a restart.
 */
export class RemoteConfig {
  #config: AgentConfig;
  #version: number;
  #merged: ConfigPatch | undefined;
  readonly #options: RemoteConfigOptions;

  private constructor(options: RemoteConfigOptions, config: AgentConfig, version: number, merged: ConfigPatch | undefined) {
    this.#options = options;
    this.#config = config;
    this.#version = version;
    this.#merged = merged;
  }

  /** Loads the overrides file when there is one; a bad one is ignored with a warning, never fatal. */
  static open(options: RemoteConfigOptions): RemoteConfig {
    const file = options.overridesFile;
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        logger.warn({ file, err: (error as Error).message }, 'Cannot read the remote config overrides; using the config file alone');
      }
      return new RemoteConfig(options, options.base, 0, undefined);
    }
    try {
      const raw: unknown = JSON.parse(text);
      const parsed = overridesSchema.safeParse(raw);
      if (!parsed.success) throw new Error(describeIssuesReason('overrides', parsed.error, raw));
      const config = configWithPatch(options.base, parsed.data.patch);
      return new RemoteConfig(options, config, parsed.data.version, parsed.data.patch);
    } catch (error) {
      // Re-validated against the current base: a config file edited since may make old overrides invalid.
      logger.warn({ file, err: (error as Error).message }, 'Ignoring invalid remote config overrides; using the config file alone');
      return new RemoteConfig(options, options.base, 0, undefined);
    }
  }

  get config(): AgentConfig {
    return this.#config;
  }

  get version(): number {
    return this.#version;
  }

  /** The retained config/state payload for the config in force. */
  stateMessage(): Buffer {
    // The retained state is readable by anyone on the broker: no credentials in it.
    return encodeJsonPayload(configStateSchema, { version: this.#version, config: publicConfig(this.#config) as Record<string, unknown> });
  }

  /** Handles one config/set message; never throws, and changes nothing unless the whole change is accepted. */
  handleSet(bytes: Buffer): HandleSetResult {
    let id: string | undefined;
    let patch: ConfigPatch | undefined;
    try {
      const parsed = parseConfigSet(bytes);
      if (!parsed.ok) return this.#reject(parsed.id, undefined, parsed.reason);
      id = parsed.request.id;
      patch = parsed.request.set;

      let next: AgentConfig;
      try {
        next = configWithPatch(this.#config, patch);
      } catch (error) {
        return this.#reject(id, patch, (error as Error).message);
      }
      const previous = this.#config;
      const changedPaths = changedLeafPaths(previous, next);
      let reason: string | undefined;
      try {
        reason = this.#options.owners?.take(previous, next, patch, changedPaths);
      } catch (error) {
        return this.#reject(id, patch, shortenReason(`config/set: ${(error as Error).message}; nothing was changed`));
      }
      if (changedPaths.length === 0) {
        // Nothing to bump, persist or republish: the retained state is already right.
        this.#log(patch, true, 'no change');
        return { response: this.#response({ ok: true, request: parsed.request }), state: undefined };
      }

      const version = this.#version + 1;
      const merged = mergePatches(this.#merged, patch);
      try {
        writeFileAtomically(this.#options.overridesFile, `${JSON.stringify({ version, patch: merged } satisfies Overrides, null, 2)}\n`);
      } catch (error) {
        // Undone rather than kept live: an "ok" change that silently reverts on the next
        // restart would mislead the operator; an error can simply be retried.
        this.#options.owners?.revert(previous, changedPaths);
        return this.#reject(id, patch, `config/set: cannot save the change to ${this.#options.overridesFile} (${(error as Error).message}); nothing was changed`);
      }
      this.#config = next;
      this.#version = version;
      this.#merged = merged;
      this.#log(patch, true, reason);
      const response = configResponseFor({ ok: true, request: parsed.request }, version);
      if (reason !== undefined) response.reason = shortenReason(reason);
      return { response: encodeJsonPayload(configResponseSchema, response), state: this.stateMessage() };
    } catch (error) {
      // A message from the network must never take the agent down.
      return this.#reject(id, patch, shortenReason(`config/set: ${String(error)}`));
    }
  }

  #reject(id: string | undefined, patch: ConfigPatch | undefined, reason: string): HandleSetResult {
    this.#log(patch ?? null, false, reason);
    return { response: this.#response(id === undefined ? { ok: false, reason } : { ok: false, id, reason }), state: undefined };
  }

  #response(result: Parameters<typeof configResponseFor>[0]): Buffer {
    return encodeJsonPayload(configResponseSchema, configResponseFor(result, this.#version));
  }

  #log(diff: ConfigPatch | null, accepted: boolean, reason?: string): void {
    if (!this.#options.log) return;
    try {
      this.#options.log.logConfigChange({
        ts: (this.#options.now ?? Date.now)(),
        source: 'mqtt',
        version: this.#version,
        diff,
        accepted,
        reason: reason === undefined ? null : shortenReason(reason),
      });
    } catch (error) {
      logger.warn({ err: (error as Error).message }, 'Could not log a remote config change');
    }
  }
}

/**
 * A config with a patch applied and the WHOLE result validated, so a remote change is
 * judged by the same rules as the config file. Throws Error with a reason naming the fields.
 */
function configWithPatch(config: AgentConfig, patch: ConfigPatch): AgentConfig {
  const applied = applyConfigPatch(config, patch);
  if (!applied.ok) throw new Error(applied.reason);
  try {
    return parseAgentConfig(applied.config, 'config after config/set');
  } catch (error) {
    if (error instanceof ConfigError) throw new Error(shortenReason(`config/set: ${error.problems.join('; ')}`));
    throw error;
  }
}
