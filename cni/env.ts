// The CNI_* environment, validated against a table of what each verb requires.
import { CniError, Code } from '../model/errors.ts';
import { CONTAINER_ID, ifNameProblem } from '../model/attachment.ts';

export { CONTAINER_ID, ifNameProblem };

export const VERBS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;
export type Verb = (typeof VERBS)[number];

type Need = 'req' | 'opt' | '-';
type Var = 'CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME' | 'CNI_PATH' | 'CNI_ARGS';

// Rows of cni-protocol.md: which variables each verb must receive.
const TABLE: Record<Verb, Record<Var, Need>> = {
  ADD: { CNI_CONTAINERID: 'req', CNI_NETNS: 'req', CNI_IFNAME: 'req', CNI_PATH: 'req', CNI_ARGS: 'opt' },
  DEL: { CNI_CONTAINERID: 'req', CNI_NETNS: 'opt', CNI_IFNAME: 'req', CNI_PATH: 'req', CNI_ARGS: 'opt' },
  CHECK: { CNI_CONTAINERID: 'req', CNI_NETNS: 'req', CNI_IFNAME: 'req', CNI_PATH: 'req', CNI_ARGS: 'opt' },
  GC: { CNI_CONTAINERID: '-', CNI_NETNS: '-', CNI_IFNAME: '-', CNI_PATH: 'req', CNI_ARGS: '-' },
  STATUS: { CNI_CONTAINERID: '-', CNI_NETNS: '-', CNI_IFNAME: '-', CNI_PATH: 'req', CNI_ARGS: '-' },
  VERSION: { CNI_CONTAINERID: '-', CNI_NETNS: '-', CNI_IFNAME: '-', CNI_PATH: '-', CNI_ARGS: '-' },
};

export interface CniEnv {
  command: Verb;
  containerId: string;
  netns: string;
  ifName: string;
  path: string[];
  args: Record<string, string>;
}

function parseArgs(raw: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) return `CNI_ARGS entry ${JSON.stringify(pair)} is not KEY=VALUE`;
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** Reads the command alone: null when CNI_COMMAND is unset (not a CNI call). */
export function commandOf(env: NodeJS.ProcessEnv): Verb | null | string {
  const c = env.CNI_COMMAND;
  if (c === undefined || c === '') return null;
  return (VERBS as readonly string[]).includes(c) ? (c as Verb) : c;
}

export function parseEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = commandOf(env);
  if (command === null || !(VERBS as readonly string[]).includes(command)) {
    throw new CniError(Code.InvalidEnv, 'invalid CNI_COMMAND', `CNI_COMMAND=${JSON.stringify(command ?? '')} is not one of ${VERBS.join(', ')}`);
  }
  const verb = command as Verb;
  const need = TABLE[verb];
  const problems: string[] = [];
  const value = (name: Var): string => env[name] ?? '';
  for (const name of Object.keys(need) as Var[]) {
    if (need[name] === 'req' && value(name) === '') problems.push(`${name} is required for ${verb}`);
  }
  const containerId = value('CNI_CONTAINERID');
  if (need.CNI_CONTAINERID !== '-' && containerId !== '' && !CONTAINER_ID.test(containerId)) {
    problems.push('CNI_CONTAINERID must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$');
  }
  const ifName = value('CNI_IFNAME');
  if (need.CNI_IFNAME !== '-' && ifName !== '') {
    const p = ifNameProblem(ifName);
    if (p) problems.push(`CNI_IFNAME ${p}`);
  }
  const netns = value('CNI_NETNS');
  if (need.CNI_NETNS !== '-' && netns !== '' && !netns.startsWith('/')) {
    problems.push('CNI_NETNS must be an absolute path');
  }
  let args: Record<string, string> = {};
  if (need.CNI_ARGS !== '-') {
    const parsed = parseArgs(value('CNI_ARGS'));
    if (typeof parsed === 'string') problems.push(parsed);
    else args = parsed;
  }
  if (problems.length > 0) {
    throw new CniError(Code.InvalidEnv, 'invalid environment', problems.join('; '));
  }
  return {
    command: verb,
    containerId,
    netns,
    ifName,
    path: value('CNI_PATH').split(':').filter(Boolean),
    args,
  };
}
