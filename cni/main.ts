// The CNI protocol entry: env + stdin in, exactly one JSON document (or nothing) out.
import { readFileSync } from 'node:fs';
import { parseEnv, type Verb } from './env.ts';
import { parseJson, loadConfig } from './config.ts';
import { CniError, toCniError } from '../model/errors.ts';
import { isSupported, LATEST, SUPPORTED_VERSIONS } from './version.ts';
import { Logger, type Level } from '../lib/log.ts';
import { SyncProcessRunner, type Runner } from '../executor/runner.ts';
import type { NodeSystem } from '../executor/system.ts';
import { MODES, type ModeRegistry } from '../planner/registry.ts';
import type { VerbContext } from './verbs/context.ts';
import { cmdAdd } from './verbs/add.ts';
import { cmdDel } from './verbs/del.ts';
import { cmdCheck } from './verbs/check.ts';
import { cmdGc } from './verbs/gc.ts';
import { cmdStatus } from './verbs/status.ts';

export interface CniOutcome {
  exitCode: 0 | 1;
  /** the document for stdout, or undefined for verbs that print nothing */
  doc: unknown;
}

const HANDLERS: Record<Exclude<Verb, 'VERSION'>, (ctx: VerbContext) => Promise<unknown>> = {
  ADD: cmdAdd,
  DEL: cmdDel,
  CHECK: cmdCheck,
  GC: cmdGc,
  STATUS: cmdStatus,
};

function errorDoc(err: CniError, version: string): Record<string, unknown> {
  const doc: Record<string, unknown> = { cniVersion: version, code: err.code, msg: err.message };
  if (err.details) doc.details = err.details;
  return doc;
}

export async function handleCni(
  processEnv: NodeJS.ProcessEnv,
  readStdin: () => string,
  deps: { log: Logger; runner?: Runner; sys?: NodeSystem; registry?: ModeRegistry },
): Promise<CniOutcome> {
  const started = process.hrtime.bigint();
  const { log } = deps;
  let version: string = LATEST;
  const runner = deps.runner ?? new SyncProcessRunner();
  try {
    const env = parseEnv(processEnv);
    log.with({ cmd: env.command, containerId: env.containerId || undefined, ifName: env.ifName || undefined });
    if (env.command === 'VERSION') {
      return { exitCode: 0, doc: { cniVersion: LATEST, supportedVersions: [...SUPPORTED_VERSIONS] } };
    }
    const raw = parseJson(readStdin());
    const requested = (raw as { cniVersion?: unknown } | null)?.cniVersion;
    if (isSupported(requested)) version = requested;
    const registry = deps.registry ?? MODES;
    const { config, extras } = loadConfig(raw, registry);
    // An operator's TESTCNI_LOG_LEVEL (e.g. debug while investigating) wins over the config.
    log.configure((processEnv.TESTCNI_LOG_LEVEL as Level | undefined) ?? config.logLevel, config.logFile);
    log.with({ network: config.name });
    const doc = await HANDLERS[env.command]({ env, config, mode: registry.require(config.mode), extras, log, runner, sys: deps.sys });
    log.debug('done', { ms: Number((process.hrtime.bigint() - started) / 1000n) / 1000, spawned: runner.spawned });
    return { exitCode: 0, doc };
  } catch (e) {
    const err = toCniError(e);
    log.error(err.message, { code: err.code, details: err.details, spawned: runner.spawned, ...(err.code === 999 ? { stack: (e as Error)?.stack } : {}) });
    return { exitCode: 1, doc: errorDoc(err, version) };
  }
}

export function readStdinSync(): string {
  return readFileSync(0, 'utf8');
}
