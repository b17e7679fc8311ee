// `testcni lab …`: the multi-node harness as an operator command.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { realpathSync } from 'node:fs';
import { DEFAULT_LAB_NAME, defaultLabDir, readLabState, type LabState } from './state.ts';
import { etcdAvailable } from './etcd.ts';
import { labUp, LAB_MODES, MAX_PODS_PER_NODE } from './up.ts';
import { MODES } from '../planner/registry.ts';
import { labDown } from './down.ts';
import { labStatus, renderStatus } from './status.ts';
import { pingAll, renderMatrix } from './check.ts';
import { diagnose, renderDiagnosis, neighbourTable } from './diagnose.ts';
import { MAX_NODES } from './topology.ts';
import { LabError } from './sys.ts';

const COMMON = `  --name NAME   lab name, used in namespace names (default ${DEFAULT_LAB_NAME})
  --dir DIR     where the lab keeps its state, logs and sockets (default ${defaultLabDir('NAME')})
`;

const HELP: Record<string, string> = {
  main: `usage: testcni lab <command> [options]

A multi-node testcni cluster on one machine, without Kubernetes: an underlay bridge and one
network namespace per node (addresses from 198.18.0.0/24), a throwaway etcd, one testcni agent
per node, and pods attached by running the plugin as a container runtime does.
Needs root, iproute2, nsenter, ping, fping and etcd (Debian: etcd-server, etcd-client).

  up       build a lab: testcni lab up --nodes 3 --pods 4 --mode host-gw
  check    all-pairs pod ping as a matrix; exit 1 on any failure
  status   nodes, blocks, routes, agents and pods (--json for scripts)
  down     remove everything the lab made, also after a failed or interrupted up

Run "testcni lab <command> --help" for a command's options.
`,
  up: `usage: testcni lab up [--nodes N] [--pods P] [--mode MODE] [--name NAME] [--dir DIR] [--metrics]

Creates the underlay and N nodes, starts etcd and one agent per node, waits until every agent
is ready and every node routes to every other node's block, then attaches P pods per node
(each node's pods in one concurrent burst, as kubelet would). Everything made is recorded in
DIR/lab.json as it is made; if up fails or is interrupted, \`testcni lab down\` removes it.

  --nodes N     nodes, 1..${MAX_NODES} (default 3)
  --pods P      pods per node, 0..${MAX_PODS_PER_NODE} (default 2)
  --mode MODE   ${LAB_MODES.join(', ')} (default ${MODES.defaultMode})
  --metrics     agents serve /metrics on <node underlay address>:9603 inside their node
${COMMON}`,
  check: `usage: testcni lab check [--name NAME] [--dir DIR]

Pings from every pod to every other pod (one fping per pod, 3 retries with backoff) and
prints the result as a matrix (row: from, column: to). Exits 1 if any pair is unreachable,
after printing each node's forwarding flags, routes and agent state, and whether the kernel's
neighbour table refused entries during the check.

${COMMON}`,
  status: `usage: testcni lab status [--json] [--name NAME] [--dir DIR]

Shows etcd, the nodes (underlay address, block, agent readiness, the routes in their
kernel) and the pods with their addresses. --json prints the same as one JSON document,
with a "pods" array whose entries carry "ip". Exits 1 if an agent is not ready.

${COMMON}`,
  down: `usage: testcni lab down [--name NAME] [--dir DIR]

Deletes every pod (CNI DEL, best effort), stops the agents and etcd, deletes every namespace
and the lab dir. Works from lab.json after a failed or interrupted up; with no lab there is
nothing to do and it exits 0.

${COMMON}`,
};

const out = (text: string) => void process.stdout.write(text);

/** The running testcni bundle: agents and pod ADDs run the same build as this command. */
function runningBinary(): string {
  const entry = process.argv[1] ? realpathSync(process.argv[1]) : '';
  if (!entry.endsWith('.cjs')) throw new LabError('lab up runs the built testcni: start it as bin/testcni or node dist/testcni.cjs (npm run build)');
  return entry;
}

function needRoot(): void {
  if (process.getuid?.() !== 0) throw new LabError('needs root (it creates network namespaces)');
}

function existingLab(dir: string, name: string): LabState {
  const s = readLabState(dir);
  if (!s) throw new LabError(`no lab ${name} in ${dir} (create one with: testcni lab up)`);
  return s;
}

function count(v: string | undefined, dflt: number, flag: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isInteger(n)) throw new LabError(`${flag} must be a whole number, got ${JSON.stringify(v)}`);
  return n;
}

export async function runLab(argv: string[]): Promise<number> {
  const [sub, ...args] = argv;
  if (!sub || sub === '--help' || sub === '-h' || sub === 'help') return out(HELP.main!), 0;
  if (!['up', 'check', 'status', 'down'].includes(sub)) {
    process.stderr.write(`testcni lab: unknown command ${JSON.stringify(sub)}\n\n${HELP.main}`);
    return 2;
  }
  const options: ParseArgsConfig['options'] = {
    name: { type: 'string' }, dir: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    ...(sub === 'up' ? { nodes: { type: 'string' }, pods: { type: 'string' }, mode: { type: 'string' }, metrics: { type: 'boolean' } } : {}),
    ...(sub === 'status' ? { json: { type: 'boolean' } } : {}),
  };
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({ args, options }).values as typeof v;
  } catch (e) {
    process.stderr.write(`testcni lab ${sub}: ${(e as Error).message}\n\n${HELP[sub]}`);
    return 2;
  }
  if (v.help) return out(HELP[sub]!), 0;
  const name = (v.name as string | undefined) ?? DEFAULT_LAB_NAME;
  const dir = (v.dir as string | undefined) ?? defaultLabDir(name);

  try {
    if (sub === 'up') {
      needRoot();
      const missing = etcdAvailable();
      if (missing) throw new LabError(missing);
      const started = Date.now();
      try {
        const r = await labUp({
          name, dir,
          nodes: count(v.nodes as string | undefined, 3, '--nodes'),
          pods: count(v.pods as string | undefined, 2, '--pods'),
          mode: (v.mode as string | undefined) ?? MODES.defaultMode,
          binary: runningBinary(),
          tuning: { metrics: v.metrics === true },
          log: (line) => out(line + '\n'),
        });
        const phases = Object.entries(r.timings).filter(([k]) => k !== 'total').map(([k, ms]) => `${k} ${ms}`).join(', ');
        out(`\nlab ${name} is up in ${r.timings.total} ms (${phases} ms)\nnext: testcni lab check${name === DEFAULT_LAB_NAME ? '' : ` --name ${name}`}\n`);
        return 0;
      } catch (e) {
        // validation errors happen before anything is made; anything later left a lab.json behind
        if (readLabState(dir)) {
          const hint = `testcni lab down${name === DEFAULT_LAB_NAME ? '' : ` --name ${name}`}${v.dir ? ` --dir ${dir}` : ''}`;
          throw new LabError(`${(e as Error).message}\n(after ${Date.now() - started} ms; logs are in ${dir}; remove the lab with: ${hint})`);
        }
        throw e;
      }
    }
    if (sub === 'down') {
      needRoot();
      if (!(await labDown(dir, (line) => out(line + '\n')))) out(`no lab ${name} in ${dir}: nothing to do\n`);
      return 0;
    }
    const state = existingLab(dir, name);
    if (sub === 'status') {
      const report = await labStatus(state);
      out(v.json ? JSON.stringify(report, null, 2) + '\n' : renderStatus(report));
      return report.nodes.every((n) => n.agent.ready) ? 0 : 1;
    }
    needRoot();
    const before = neighbourTable();
    const m = await pingAll(state);
    out(renderMatrix(m));
    if (m.failures.length > 0) out('\n' + renderDiagnosis(await diagnose(state), { before, after: neighbourTable() }));
    return m.failures.length === 0 && m.pods.length > 0 ? 0 : 1;
  } catch (e) {
    process.stderr.write(`testcni lab ${sub}: ${e instanceof LabError ? e.message : ((e as Error).stack ?? String(e))}\n`);
    return 1;
  }
}
