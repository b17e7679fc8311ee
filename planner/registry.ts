// The explicit mode registry: a mode exists when it has an entry here, not by import side
// effects. Tests build registries of their own (e.g. with a throwaway mode) with createRegistry.
import { CniError, Code } from '../model/errors.ts';
import type { AnyMode } from './mode.ts';
import { hostGw } from './modes/host-gw/index.ts';
import { ipip } from './modes/ipip/index.ts';
import { ipvlan } from './modes/ipvlan/index.ts';
import { macvlan } from './modes/macvlan/index.ts';
import { vxlan } from './modes/vxlan/index.ts';

export interface ModeRegistry {
  /** mode names in registration order (the first is the default) */
  names(): string[];
  all(): readonly AnyMode[];
  get(name: string): AnyMode | null;
  /** the mode, or code 7 naming `mode` with the modes that exist */
  require(name: string): AnyMode;
  readonly defaultMode: string;
}

export function createRegistry(modes: readonly AnyMode[]): ModeRegistry {
  const byName = new Map<string, AnyMode>();
  for (const m of modes) {
    if (byName.has(m.name)) throw new Error(`mode ${m.name} is registered twice`);
    byName.set(m.name, m);
  }
  const names = [...byName.keys()];
  if (names.length === 0) throw new Error('a registry needs at least one mode');
  return {
    names: () => [...names],
    all: () => modes,
    get: (name) => byName.get(name) ?? null,
    require(name) {
      const m = byName.get(name);
      if (!m) throw new CniError(Code.InvalidConfig, 'invalid network config: mode', `mode: ${JSON.stringify(name)} is not one of ${names.join(', ')}`);
      return m;
    },
    defaultMode: names[0]!,
  };
}

/** The modes this build carries; the first is the default. */
export const MODES: ModeRegistry = createRegistry([hostGw, ipip, ipvlan, macvlan, vxlan]);
