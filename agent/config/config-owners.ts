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

/** A config/set as remote-config.ts hands it on: judged before it is saved, applied after. */
export interface ConfigJudge {
  judge(next: AgentConfig, patch: ConfigPatch): void;
  apply(next: AgentConfig, changedPaths: readonly string[]): string | undefined;
}

const sectionOf = (path: string) => path.split('.')[0] as ConfigSection;

/**
 * Each section of the patch schema mapped to the one part that applies it, registered by the app:
 * a change reaches the owners of the sections it names, and no routing by path strings is left.
 */
export class ConfigOwners implements ConfigJudge {
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

  judge(next: AgentConfig, patch: ConfigPatch): void {
    const named = new Set(Object.entries(patch).flatMap(([key, value]) => (value === undefined ? [] : [key as ConfigSection])));
    for (const owner of this.#owners) if (owner.sections.some((section) => named.has(section))) owner.judge?.(next, patch);
  }

  /** Every owner of a changed section applies it, even when another fails; the failures are thrown together afterwards. */
  apply(next: AgentConfig, changedPaths: readonly string[]): string | undefined {
    const change: ConfigChange = { sections: new Set(changedPaths.map(sectionOf)), paths: changedPaths };
    const notes: string[] = [];
    const failures: string[] = [];
    for (const owner of this.#owners) {
      if (!owner.sections.some((section) => change.sections.has(section))) continue;
      try {
        const note = owner.apply(next, change);
        if (note) notes.push(note);
      } catch (error) {
        failures.push(`${owner.name}: ${(error as Error).message}`);
      }
    }
    if (failures.length > 0) throw new Error(failures.join('; '));
    return notes.length > 0 ? notes.join('; ') : undefined;
  }
}
