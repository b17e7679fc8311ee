// STATUS (CNI 1.1): ready for ADD when the mode's tools exist, the state dir is writable and
// the pool has room.
import { accessSync, constants, mkdirSync } from 'node:fs';
import { CniError, Code } from '../../model/errors.ts';
import type { NetworkConfig } from '../../model/config.ts';
import type { AnyMode } from '../../planner/mode.ts';
import { resolveTools } from '../../executor/facts.ts';
import { openIpam } from '../../ipam/open.ts';
import type { VerbContext } from './context.ts';
import { requireVerbVersion } from '../version.ts';

export interface Readiness {
  ready: boolean;
  problems: string[];
  ipam: { used: number; free: number } | null;
}

export async function readiness(config: NetworkConfig, mode: AnyMode): Promise<Readiness> {
  const problems: string[] = [];
  for (const [name, path] of Object.entries(resolveTools(mode.tools(config)))) {
    try {
      accessSync(path, constants.X_OK);
    } catch {
      problems.push(`${name} not found (${path}; mode ${mode.name} needs it)`);
    }
  }
  try {
    mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
    accessSync(config.stateDir, constants.W_OK);
  } catch (e) {
    problems.push(`state dir ${config.stateDir} is not writable: ${(e as Error).message}`);
  }
  let ipam: Readiness['ipam'] = null;
  try {
    const s = await openIpam(config).status();
    ipam = { used: s.used, free: s.free };
    if (!s.ready) problems.push(s.reason ?? 'IPAM not ready');
  } catch (e) {
    problems.push((e as Error).message);
  }
  return { ready: problems.length === 0, problems, ipam };
}

export async function cmdStatus(ctx: VerbContext): Promise<void> {
  requireVerbVersion('STATUS', ctx.config.cniVersion);
  const r = await readiness(ctx.config, ctx.mode);
  if (!r.ready) throw new CniError(Code.NotReady, 'plugin not ready for ADD', r.problems.join('; '));
}
