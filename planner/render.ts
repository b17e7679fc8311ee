// Renders a Plan for people (text), for a shell (sh) or for tools (json). Pure.
import { HOST, ifindexToken, type Plan, type Step, type NodeFacts, type Operation } from '../model/plan.ts';
import { inNetnsArgv } from '../lib/netns.ts';
import { canonicalJson } from '../lib/canonical-json.ts';
import { CONFIG_PATH_ARG, type DaemonSpec } from '../model/daemon.ts';

export type Format = 'text' | 'sh' | 'json';

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

export function shellQuote(arg: string): string {
  return SAFE.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The ifindex tokens of an operation (model/plan.ts ifindexToken), by token. */
function ifindexTokens(op: Operation): Map<string, string> {
  return new Map(op.mech === 'bpftool' ? (op.ifindexOf ?? []).map((dev) => [ifindexToken(dev), dev]) : []);
}

/** One line for a person: the command, or what a file write does. A late-bound ifindex shows as
 *  its token, `ifindex(DEV)`: four bytes the executor reads when it runs the command. */
export function operationText(op: Operation): string {
  if (op.mech === 'file') return `write ${shellQuote(op.path)} (mode ${op.mode.toString(8).padStart(4, '0')}, ${op.content.length} bytes)`;
  if (op.mech === 'wait') return `wait until ${op.links.join(' and ')} ${op.links.length === 1 ? 'is' : 'are'} up (at most ${op.timeoutMs} ms)`;
  const tokens = ifindexTokens(op);
  return op.argv.map((a) => (tokens.has(a) ? a : shellQuote(a))).join(' ');
}

/** The shell function a script uses for a late-bound ifindex: the four bytes of a map value. */
function ifindexFunction(ip: string): string[] {
  return [
    '# ifindex_hex DEV: the index of link DEV as a BPF map holds it (u32, little-endian, hex bytes)',
    `ifindex_hex() { l=$(${shellQuote(ip)} -o link show dev "$1") && i=\${l%%:*} && printf '%02x %02x %02x %02x' $((i & 255)) $((i >> 8 & 255)) $((i >> 16 & 255)) $((i >> 24 & 255)); }`,
  ];
}

function where(ns: string): string {
  return ns === HOST ? 'node' : 'pod';
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

function summary(plan: Plan): string {
  const pod = plan.steps.filter((s) => s.scope === 'pod').length;
  const node = plan.steps.length - pod;
  if (plan.command === 'DEL') return `Plan: ${count(plan.steps.length, 'step')} to undo; anything already gone counts as done.`;
  if (plan.command === 'CHECK') return `Plan: ${count(plan.steps.filter((s) => s.probe).length, 'probe')} to verify.`;
  // After a complete ADD, a step another one supersedes (a rename's creation) needs no undo.
  const superseded = new Set(plan.steps.map((s) => s.supersedes));
  const undoable = plan.steps.filter((s) => s.undo !== null && !superseded.has(s.id)).length;
  return `Plan: ${count(plan.steps.length, 'step')} to apply (${pod} pod, ${node} node); DEL runs ${count(undoable, 'undo command')}, the rest go with them or are shared by the node.`;
}

function renderText(plan: Plan): string {
  const lines = [
    `testcni ${plan.command} ${plan.ifName} in ${plan.netns || '(no netns)'}`,
    `  network ${plan.network}, mode ${plan.mode}, container ${plan.containerId}`,
    `  inputs ${plan.inputsDigest.slice(0, 16)}`,
    '',
  ];
  const mark = plan.command === 'DEL' ? '-' : plan.command === 'CHECK' ? '?' : '+';
  plan.steps.forEach((s, i) => {
    lines.push(`${String(i + 1).padStart(3)}. ${mark} ${s.describe}  [${s.scope} step, ${where(s.ns)} netns]`);
    lines.push(`       ${s.id}`);
    lines.push(`       $ ${operationText(s)}`);
    if (plan.command === 'ADD') {
      lines.push(s.undo ? `       undo: ${operationText(s.undo)}` : `       undo: none (${s.undoReason ?? 'n/a'})`);
    }
  });
  lines.push('', summary(plan));
  const r = plan.result;
  if (r && r.ips.length > 0) {
    const ip = r.ips[0]!;
    const ifc = ip.interface !== undefined ? r.interfaces[ip.interface]?.name : plan.ifName;
    lines.push(`Result: ${ip.address}${ip.gateway ? ` via ${ip.gateway}` : ''} on ${ifc}`);
  }
  return lines.join('\n') + '\n';
}

/** A file write as a script does it: the content in a here-document, then its mode. */
function fileWriteLines(op: Extract<Operation, { mech: 'file' }>): string {
  const marker = 'TESTCNI_EOF';
  const body = op.content.endsWith('\n') ? op.content : `${op.content}\n`;
  return `cat > ${shellQuote(op.path)} <<'${marker}'\n${body}${marker}\nchmod ${op.mode.toString(8).padStart(4, '0')} ${shellQuote(op.path)}`;
}

/** A wait as a script does it: poll each link's state, give up after the timeout. */
function waitLines(op: Extract<Operation, { mech: 'wait' }>, facts: Pick<NodeFacts, 'tools' | 'hostPid'> | null): string {
  const ip = facts?.tools.ip ?? 'ip';
  const tries = Math.max(1, Math.ceil(op.timeoutMs / 100));
  return op.links.map((l) =>
    `i=0; until ${shellQuote(ip)} -o link show dev ${shellQuote(l)} | grep -q 'state UP'; do i=$((i+1)); [ "$i" -lt ${tries} ] || { echo ${shellQuote(`${l} is not up`)} >&2; exit 1; }; sleep 0.1; done`,
  ).join('\n');
}

/** A `path` probe as a shell test, for a script to skip what is in place (a second bpffs mount
 *  would hide the first one's pins). Null for probes a test cannot say. */
export function pathTest(probe: Step['probe']): string | null {
  if (!probe || probe.mech !== 'path') return null;
  const p = shellQuote(probe.path);
  const e = probe.expect as Record<string, unknown>;
  if ('$exit' in e && e.$exit === 1) return `[ ! -e ${p} ]`;
  const want = ('$some' in e ? e.$some : null) as { type?: string; fs?: string } | null;
  if (want?.type === 'file' && want.fs === undefined) return `[ -f ${p} ]`;
  if (want?.type === 'directory' && want.fs === undefined) return `[ -d ${p} ]`;
  if (want?.fs !== undefined && want.type === undefined) return `[ "$(stat -f -c %t ${p} 2>/dev/null)" = ${shellQuote(want.fs)} ]`;
  return null;
}

function commandLine(plan: Pick<Plan, 'command'>, s: Step, facts: Pick<NodeFacts, 'tools' | 'hostPid'> | null): string {
  if (s.mech === 'file') return fileWriteLines(s);
  if (s.mech === 'wait') return waitLines(s, facts);
  const argv = s.ns === HOST ? s.argv : inNetnsArgv(facts?.tools.nsenter ?? 'nsenter', s.ns, s.argv);
  const tokens = ifindexTokens(s);
  // "netns <pid>" names the node's namespace through a live process: in a script, the shell itself.
  const cmd = argv.map((a, i) => {
    if (argv[i - 1] === 'netns' && facts && a === String(facts.hostPid)) return '"$$"';
    if (tokens.has(a)) return `$(ifindex_hex ${shellQuote(tokens.get(a)!)})`; // unquoted: four words
    return shellQuote(a);
  }).join(' ');
  // A shared node object may already exist; a script run twice must not stop there.
  const test = s.scope === 'node' ? pathTest(s.probe) : null;
  if (test) return `${test} || ${cmd}`;
  if (s.scope === 'node' && !s.idempotent) return `${cmd} 2>/dev/null || echo ${shellQuote(`already in place: ${s.id}`)}`;
  if (plan.command === 'DEL') return `${cmd} || echo ${shellQuote(`already gone: ${s.id}`)}`;
  return cmd;
}

function renderSh(plan: Plan, facts: Pick<NodeFacts, 'tools' | 'hostPid'> | null): string {
  const lines = [
    '#!/bin/sh',
    `# testcni ${plan.command} ${plan.ifName} (container ${plan.containerId}, network ${plan.network}, mode ${plan.mode})`,
    `# ${summary(plan)}`,
    'set -eu',
  ];
  if (plan.command === 'CHECK') {
    lines.push('# CHECK runs probes only; run `testcni plan --format json` to read them.');
  } else {
    if (plan.steps.some((s) => ifindexTokens(s).size > 0)) lines.push(...ifindexFunction(facts?.tools.ip ?? 'ip'));
    for (const s of plan.steps) {
      lines.push(`# ${s.describe}`, commandLine(plan, s, facts));
    }
  }
  return lines.join('\n') + '\n';
}

/** A node daemon as a script starts it: its configuration written and checked, the program in
 *  the background with its output in its log, then a wait until it answers. */
function daemonLines(spec: DaemonSpec, text: string): string[] {
  const q = (argv: string[]) => argv.map(shellQuote).join(' ');
  const { path, mode } = spec.config;
  const dirs = [...new Set([path, spec.pidFile, spec.logFile].map((f) => f.slice(0, f.lastIndexOf('/')) || '/'))];
  return [
    `# daemon ${spec.name}: its configuration (checked before use), then the program in the background`,
    `mkdir -p ${dirs.map(shellQuote).join(' ')}`,
    fileWriteLines({ mech: 'file', path, content: text, mode }),
    q(spec.validate.map((a) => (a === CONFIG_PATH_ARG ? path : a))),
    `${q(spec.argv)} >>${shellQuote(spec.logFile)} 2>&1 </dev/null &`,
    `i=0; until ${q(spec.ready)} >/dev/null 2>&1; do i=$((i+1)); [ "$i" -lt 100 ] || { echo ${shellQuote(`${spec.name} does not answer`)} >&2; exit 1; }; sleep 0.1; done`,
  ];
}

/**
 * A node plan as a shell script: its steps (shared node objects tolerated when already there),
 * then its daemons started with their configuration (`text`: rendered by the caller, as the
 * agent does). For running a node plan where the agent cannot run (an emulated VM).
 */
export function renderNodeScript(title: string, steps: Step[], facts: Pick<NodeFacts, 'tools' | 'hostPid'> | null, daemons: { spec: DaemonSpec; text: string }[] = []): string {
  const lines = ['#!/bin/sh', `# ${title}`, `# Plan: ${count(steps.length, 'step')}, ${count(daemons.length, 'daemon')}.`, 'set -eu'];
  for (const s of steps) lines.push(`# ${s.describe}`, commandLine({ command: 'ADD' }, s, facts));
  for (const d of daemons) lines.push(...daemonLines(d.spec, d.text));
  return lines.join('\n') + '\n';
}

/** A node plan (what the agent converges) for people: one numbered entry per step. */
/** A step that takes something away (a `-` line in a rendered plan). */
const removes = (kind: Step['kind']) => kind.endsWith('.del') || kind.endsWith('.delete') || kind === 'fs.remove' || kind === 'daemon.stop';

export function renderNodeSteps(title: string, steps: Step[]): string {
  const lines = [title, ''];
  steps.forEach((s, i) => {
    lines.push(`${String(i + 1).padStart(3)}. ${removes(s.kind) ? '-' : '+'} ${s.describe}  [${s.scope} step, ${where(s.ns)} netns]`);
    lines.push(`       ${s.id}`);
    lines.push(`       $ ${operationText(s)}`);
  });
  if (steps.length > 0) lines.push('');
  lines.push(steps.length === 0 ? 'Plan: nothing to do; the node holds what it should.' : `Plan: ${count(steps.length, 'step')}.`);
  return lines.join('\n') + '\n';
}

export function renderPlan(plan: Plan, format: Format, facts: Pick<NodeFacts, 'tools' | 'hostPid'> | null = null): string {
  switch (format) {
    case 'json':
      return canonicalJson(plan, 2) + '\n';
    case 'sh':
      return renderSh(plan, facts);
    case 'text':
      return renderText(plan);
  }
}
