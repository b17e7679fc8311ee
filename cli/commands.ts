// Operator subcommands. Loaded only when testcni is not called as a CNI plugin.
import { parseArgs } from 'node:util';
import { readFileSync, existsSync } from 'node:fs';
import { loadConfig } from '../cni/config.ts';
import { toCniError } from '../model/errors.ts';
import { SUPPORTED_VERSIONS, LATEST } from '../cni/version.ts';
import { Logger } from '../lib/log.ts';
import { compile } from '../planner/compile.ts';
import { renderPlan, type Format } from '../planner/render.ts';
import type { PlanCommand } from '../model/plan.ts';
import { ProcessRunner } from '../executor/runner.ts';
import { gatherFacts } from '../executor/facts.ts';
import { JournalStore } from '../executor/journal.ts';
import { openIpam } from '../ipam/open.ts';
import { leaseFor, poolOf } from '../ipam/pool.ts';
import { gatherStatus, renderStatus } from './status.ts';
import { MODES } from '../planner/registry.ts';
import { factsWanted } from '../cni/verbs/context.ts';
import { runGc } from '../cni/verbs/gc.ts';
import { readNetworkConfig, DEFAULT_CONFIG } from './config-file.ts';

const VERSION = '0.1.0';

const HELP: Record<string, string> = {
  main: `usage: testcni <command> [options]

As a CNI plugin, testcni is run by the container runtime with CNI_COMMAND set.
Operator commands:
  plan --dry-run   compile and print the plan for a network config; changes nothing
  status           readiness, IPAM usage and attachments of a network
  gc               remove attachments whose pod netns is gone
  version          versions of testcni and of the CNI spec it speaks
  agent            the node agent (cluster IPAM, node routes); one per node
  install          put the executable and, once the agent is ready, the conflist on this node
  uninstall        remove the conflist, the executable and testcni's node state
  manifests        print the Kubernetes objects (DaemonSet and friends) that run testcni
  lab              a multi-node cluster in network namespaces: lab up|check|status|down

Run "testcni <command> --help" for a command's options.
`,
  plan: `usage: testcni plan --dry-run [--config FILE|-] [options]

Compiles the plan an ADD (or DEL, CHECK) would run and prints it. Nothing on the host
changes and no root is needed. The config is read from FILE (a .conf or .conflist) or stdin.

  --config FILE        network config; "-": stdin; "default" or omitted at a terminal:
                       the embedded default (host-gw, subnet 10.244.0.0/16, file IPAM)
  --netns PATH         pod netns path            (default /var/run/netns/example)
  --container-id ID    container id              (default example)
  --ifname NAME        interface in the pod      (default eth0)
  --command VERB       ADD, DEL or CHECK         (default ADD)
  --ip ADDRESS         pod address to plan with  (default: the next free one, reserving nothing)
  --format FORMAT      text, sh or json          (default text)
`,
  status: `usage: testcni status [--config FILE] [--json]

Shows whether the plugin is ready for ADD (as CNI STATUS would decide), the IPAM pool's
usage and the attachments journalled on this node; with cluster IPAM also the node agent's
view: node, block, peers and whether this node routes to them, leases, etcd health.
Default config: ${DEFAULT_CONFIG}.
`,
  gc: `usage: testcni gc [--config FILE] [--grace SECONDS]

Removes every attachment of the network whose pod netns no longer exists, and address
reservations that no attachment holds and that are older than the grace period (default 300 s,
so an ADD in flight is never touched). Default config: ${DEFAULT_CONFIG}.
`,
  version: 'usage: testcni version\n',
};

function out(text: string): void {
  process.stdout.write(text);
}

function loadFrom(path: string | undefined): ReturnType<typeof loadConfig> {
  return loadConfig(readNetworkConfig(path, () => readFileSync(0, 'utf8')));
}

async function cmdPlan(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'dry-run': { type: 'boolean' }, config: { type: 'string' }, netns: { type: 'string' },
      'container-id': { type: 'string' }, ifname: { type: 'string' }, command: { type: 'string' },
      ip: { type: 'string' }, format: { type: 'string' }, help: { type: 'boolean' },
    },
  });
  if (values.help) return out(HELP.plan!), 0;
  if (!values['dry-run']) {
    process.stderr.write('testcni plan: only --dry-run is supported (plans are applied by the runtime through CNI ADD)\n');
    return 2;
  }
  const format = (values.format ?? 'text') as Format;
  if (!['text', 'sh', 'json'].includes(format)) throw new Error(`--format must be text, sh or json`);
  const command = (values.command ?? 'ADD').toUpperCase() as PlanCommand;
  if (!['ADD', 'DEL', 'CHECK'].includes(command)) throw new Error('--command must be ADD, DEL or CHECK');
  const { config } = loadFrom(values.config ?? (process.stdin.isTTY ? 'default' : '-'));
  const pool = poolOf(config.ipam);
  let lease;
  if (values.ip) {
    lease = { address: values.ip.includes('/') ? values.ip : `${values.ip}/${pool.prefix}`, gateway: config.ipam.gateway };
  } else {
    try {
      lease = await openIpam(config).peek();
    } catch {
      lease = leaseFor(pool, pool.first === pool.gateway ? pool.first + 1 : pool.first);
    }
  }
  const mode = MODES.require(config.mode);
  const facts = await gatherFacts(factsWanted(config, mode, { add: true }), new ProcessRunner());
  const plan = compile({
    command, config, lease, facts,
    containerId: values['container-id'] ?? 'example',
    ifName: values.ifname ?? 'eth0',
    netns: values.netns ?? '/var/run/netns/example',
  }, mode);
  out(renderPlan(plan, format, facts));
  return 0;
}

async function cmdStatus(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } } });
  if (values.help) return out(HELP.status!), 0;
  const { config } = loadFrom(values.config ?? DEFAULT_CONFIG);
  const report = await gatherStatus(config);
  out(values.json ? JSON.stringify(report, null, 2) + '\n' : renderStatus(report, config));
  return report.ready ? 0 : 1;
}

async function cmdGc(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, grace: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) return out(HELP.gc!), 0;
  const { config, extras } = loadFrom(values.config ?? DEFAULT_CONFIG);
  const journals = new JournalStore(config.stateDir);
  // Valid: every journalled attachment whose pod netns still exists.
  const valid = journals.list(config.name).filter((a) => {
    const j = journals.readOrNull(a);
    return j !== null && j.netns !== '' && existsSync(j.netns);
  });
  const log = new Logger('warn');
  const report = await runGc(
    { config, mode: MODES.require(config.mode), extras: { ...extras, validAttachments: valid.map((a) => ({ containerID: a.containerId, ifname: a.ifName })) }, log, runner: new ProcessRunner() },
    Number(values.grace ?? 300) * 1000,
  );
  out(`removed ${report.removed.length} attachment(s)${report.removed.length ? ': ' + report.removed.join(', ') : ''}\n`);
  out(`released ${report.released.length} address(es)${report.released.length ? ': ' + report.released.join(', ') : ''}\n`);
  out(`removed ${report.leftovers.length} stale lock(s) and temp file(s)${report.leftovers.length ? ': ' + report.leftovers.join(', ') : ''}\n`);
  return 0;
}

export async function runCli(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'plan': return await cmdPlan(rest);
      case 'status': return await cmdStatus(rest);
      case 'gc': return await cmdGc(rest);
      case 'lab': {
        // Loaded only for `lab`: the other commands never evaluate the harness.
        const { runLab } = await import('../lab/commands.ts');
        return await runLab(rest);
      }
      case 'install': case 'uninstall': {
        const { cmdInstall, cmdUninstall } = await import('../install/cli.ts');
        return await (cmd === 'install' ? cmdInstall(rest) : cmdUninstall(rest));
      }
      case 'manifests': {
        const { cmdManifests } = await import('../install/manifests-cli.ts');
        return await cmdManifests(rest);
      }
      case 'version':
        if (rest.includes('--help')) return out(HELP.version!), 0;
        out(`testcni ${VERSION}\nCNI spec ${LATEST} (supports ${SUPPORTED_VERSIONS.join(', ')})\n`);
        return 0;
      case 'help': case '--help': case '-h':
        out(HELP.main!);
        return 0;
      default:
        process.stderr.write(`testcni: unknown command ${JSON.stringify(cmd)}\n\n${HELP.main}`);
        return 2;
    }
  } catch (e) {
    const err = toCniError(e);
    const msg = err.code === 999 ? err.details : `${err.message}${err.details ? `: ${err.details}` : ''}`;
    process.stderr.write(`testcni ${cmd}: ${msg}\n`);
    return 1;
  }
}
