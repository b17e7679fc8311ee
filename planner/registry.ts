// The explicit mode registry: a mode exists when it has an entry here, not by import side effects.
import type { PlanRequest, Step } from './types.ts';
import type { Result } from '../cni/result.ts';
import type { Mode } from '../cni/config.ts';
import * as hostGw from './modes/host-gw.ts';

export interface ModePlanner {
  /** the ordered ADD steps; DEL and CHECK are derived from them */
  planAdd(req: PlanRequest): Step[];
  resultOf(req: PlanRequest): Result;
}

const REGISTRY: Partial<Record<Mode, ModePlanner>> = {
  'host-gw': hostGw,
};

export function plannerFor(mode: Mode): ModePlanner | null {
  return REGISTRY[mode] ?? null;
}

export function availableModes(): Mode[] {
  return Object.keys(REGISTRY) as Mode[];
}
