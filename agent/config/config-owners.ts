import { logger } from '../../common/log/logger.js';
import type { AgentConfig } from './agent-config.js';
import { CONFIG_SECTIONS, type ConfigPatch, type ConfigSection } from './config-patch.js';

/** What changed in one accepted config/set. */
export interface ConfigChange {
  /** The top-level sections with a changed leaf. */
  readonly sections: ReadonlySet<ConfigSection>;
  /** Dotted paths of the changed leaves (`policy.thresholds`). */
  readonly paths: readonly string[];
}

/**
 * The part that applies some sections of the config/set patch: it judges a change by what the
 * schema cannot know (throwing with the reason, before anything is saved) and applies it live.
 */
export interface ConfigOwner {
  /** Who it is, in messages. */
  readonly name: string;
  /** Top-level keys of the patch schema it owns; no other owner names them. */
  readonly sections: readonly ConfigSection[];
  /** Throws Error with the reason when this part cannot take `next`; called only when the patch names one of its sections. */
  judge?(next: AgentConfig, patch: ConfigPatch): void;
  /** Applies `next` live; called only when one of its sections changed. What it returns is told to the operator. */
  apply(next: AgentConfig, change: ConfigChange): string | void;
}

/**
 * A config/set as remote-config.ts hands it on, once: each owner judges it and applies it in
 * one visit; a refusal undoes what the owners before had applied and is thrown, and a save
 * that fails afterwards is undone with `revert`.
 */
export interface ConfigTaker {
  take(previous: AgentConfig, next: AgentConfig, patch: ConfigPatch, changedPaths: readonly string[]): string | undefined;
  revert(previous: AgentConfig, changedPaths: readonly string[]): void;
}

const sectionOf = (path: string) => path.split('.')[0] as ConfigSection;
const changeOf = (paths: readonly string[]): ConfigChange => ({ sections: new Set(paths.map(sectionOf)), paths });

/**
 * Each section of the patch schema mapped to the one part that applies it, registered by the app:
 * a change reaches the owners of the sections it names, and no routing by path strings is left.
 */
export class ConfigOwners implements ConfigTaker {
  readonly #owners: ConfigOwner[] = [];
  readonly #bySection = new Map<ConfigSection, ConfigOwner>();

  /** Adds an owner; throws when it names a section the patch schema lacks, or one another owner has. */
  register(owner: ConfigOwner): void {
    for (const section of owner.sections) {
      if (!CONFIG_SECTIONS.includes(section)) throw new Error(`config owner ${owner.name}: "${section}" is not a section of the config/set patch (${CONFIG_SECTIONS.join(', ')})`);
      const other = this.#bySection.get(section);
      if (other) throw new Error(`config owner ${owner.name}: "${section}" is already owned by ${other.name}`);
    }
    for (const section of owner.sections) this.#bySection.set(section, owner);
    this.#owners.push(owner);
  }

  /** The owner of each section, for tests and docs. */
  get owners(): ReadonlyMap<ConfigSection, string> {
    return new Map([...this.#bySection].map(([section, owner]) => [section, owner.name]));
  }

  /** Sections of the patch schema nobody owns: a change to them would be saved and never applied. */
  get unowned(): ConfigSection[] {
    return CONFIG_SECTIONS.filter((section) => !this.#bySection.has(section));
  }

  /** Throws naming the sections without an owner. */
  checkComplete(): void {
    const missing = this.unowned;
    if (missing.length > 0) throw new Error(`config/set sections without an owner: ${missing.join(', ')}`);
  }

  /**
   * Each owner the patch names judges it and, where its sections changed, applies it at once;
   * a refusal (thrown by a judge) undoes the owners already applied and is thrown on. A failure
   * to apply does not refuse the change: it is saved and in force, and the operator is told.
   */
  take(previous: AgentConfig, next: AgentConfig, patch: ConfigPatch, changedPaths: readonly string[]): string | undefined {
    const named = new Set(Object.entries(patch).flatMap(([key, value]) => (value === undefined ? [] : [key as ConfigSection])));
    const change = changeOf(changedPaths);
    const applied: ConfigOwner[] = [];
    const notes: string[] = [];
    const failures: string[] = [];
    for (const owner of this.#owners) {
      const changed = owner.sections.some((section) => change.sections.has(section));
      try {
        if (owner.sections.some((section) => named.has(section))) owner.judge?.(next, patch);
      } catch (error) {
        this.#undo(applied, previous, change);
        throw error;
      }
      if (!changed) continue;
      applied.push(owner);
      try {
        const note = owner.apply(next, change);
        if (note) notes.push(note);
      } catch (error) {
        failures.push(`${owner.name}: ${(error as Error).message}`);
      }
    }
    if (failures.length > 0) {
      logger.error({ failures, changedPaths }, 'Applying a remote config change failed');
      notes.push(`accepted, but applying it live failed: ${failures.join('; ')}`);
    }
    return notes.length > 0 ? notes.join('; ') : undefined;
  }

  /** Puts the owners of the changed sections back to `previous` (the change could not be saved). */
  revert(previous: AgentConfig, changedPaths: readonly string[]): void {
    const change = changeOf(changedPaths);
    this.#undo(this.#owners.filter((owner) => owner.sections.some((section) => change.sections.has(section))), previous, change);
  }

  #undo(owners: readonly ConfigOwner[], previous: AgentConfig, change: ConfigChange): void {
    for (const owner of [...owners].reverse()) {
      try {
        owner.apply(previous, change);
      } catch (error) {
        logger.error({ owner: owner.name, err: (error as Error).message }, 'Could not put a config owner back after a refused or unsaved change');
      }
    }
  }
}
