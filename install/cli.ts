// The operator commands `install`, `uninstall` and `manifests`: flags in, the modules out.
import { parseArgs } from 'node:util';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isSea } from 'node:sea';
import { AgentStore } from '../ipam/agent-store.ts';
import { ProcessRunner } from '../executor/runner.ts';
import { findTool } from '../executor/facts.ts';
import { AGENT_DEFAULTS } from '../agent/config.ts';
import { DEFAULTS } from '../schemas/network-config.ts';
import { install, InstallError } from './install.ts';
import { uninstall, UninstallRefused } from './uninstall.ts';
import { checkConflist, CONFLIST_NAME } from './conflist.ts';

const BIN_DIR = '/opt/cni/bin';
const CONF_DIR = '/etc/cni/net.d';

export const INSTALL_HELP = `usage: testcni install [--conflist FILE] [options]

Copies the executable into the CNI bin dir (temp file + rename), then, once the node agent
reports ready on its socket (GET /v1/status), writes the conflist into the CNI conf dir (temp
file + rename). Without --conflist only the binary is installed. The conflist is the one file
the runtime reads: it appears only when the plugin and its IPAM can answer.

  --conflist FILE      the network config to install (checked as the plugin will check it)
  --source FILE        the executable to copy (default: this one when it is the single
                       executable, else dist/testcni beside the bundle)
  --bin-dir DIR        (default ${BIN_DIR})
  --conf-dir DIR       (default ${CONF_DIR})
  --conf-name NAME     (default ${CONFLIST_NAME})
  --agent-socket PATH  the agent to wait for (default: the conflist's ipam.agentSocket)
  --no-wait            write the conflist without waiting for the agent (file IPAM)
  --timeout SECONDS    how long to wait for the agent (default 300); then exit 1, no conflist
  --state-dir DIR      where the install record goes (default ${DEFAULTS.stateDir})
  --keep-running       stay until SIGTERM once installed (a Kubernetes sidecar must not exit)
`;

export const UNINSTALL_HELP = `usage: testcni uninstall [options]

Removes the conflist first (the runtime stops putting pods on the network), then the binary,
then the node-scoped state of the network's mode (host-gw: its bridge, and the routes tagged
with the agent's route protocol). Only what testcni made is removed: the bridge only when its
MAC is the one testcni derives, the binary only when it is a testcni build. Refuses while the
node agent still answers or pods are still attached, unless --force.

  --bin-dir DIR, --conf-dir DIR, --conf-name NAME, --state-dir DIR   as for install
  --agent-socket PATH    the agent to check for (default: the conflist's)
  --route-protocol N     the agent's route protocol (default ${AGENT_DEFAULTS.routeProtocol})
  --purge-state          also the network's journals, locks and IPAM reservations, and the
                         agent socket; then the state dir if empty
  --force                go on although the agent runs or pods are attached
  --dry-run              print what would be removed; change nothing
`;

function say(line: string): void {
  process.stderr.write(`testcni: ${line}\n`);
}

const agentStatus = (socket: string) => new AgentStore(socket, 2000).agentStatus();

/** The executable install copies by default. */
function defaultSource(): string {
  if (isSea()) return process.execPath;
  const beside = join(dirname(process.argv[1] ?? ''), 'testcni');
  if (!existsSync(beside)) throw new InstallError(`no single executable at ${beside}: build it (npm run build) or give --source`);
  return beside;
}

function seconds(v: string | undefined, dflt: number, flag: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InstallError(`${flag} must be a number of seconds, got ${JSON.stringify(v)}`);
  return n;
}

export async function cmdInstall(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      conflist: { type: 'string' }, source: { type: 'string' }, 'bin-dir': { type: 'string' }, 'conf-dir': { type: 'string' },
      'conf-name': { type: 'string' }, 'agent-socket': { type: 'string' }, 'no-wait': { type: 'boolean' }, timeout: { type: 'string' },
      'state-dir': { type: 'string' }, 'keep-running': { type: 'boolean' }, help: { type: 'boolean' },
    },
  });
  if (values.help) return process.stdout.write(INSTALL_HELP), 0;
  let conflist = null;
  let agentSocket: string | null = null;
  if (values.conflist) {
    const text = readFileSync(values.conflist, 'utf8');
    const network = checkConflist(text, values.conflist);
    conflist = { text, confDir: values['conf-dir'] ?? CONF_DIR, name: values['conf-name'] ?? CONFLIST_NAME };
    agentSocket = values['no-wait'] ? null : (values['agent-socket'] ?? network.ipam.agentSocket);
  }
  try {
    await install({
      source: values.source ?? defaultSource(),
      binDir: values['bin-dir'] ?? BIN_DIR,
      binName: 'testcni',
      conflist,
      agentSocket,
      stateDir: values['state-dir'] ?? DEFAULTS.stateDir,
      timeoutMs: seconds(values.timeout, 300, '--timeout') * 1000,
    }, { agentStatus, sleep: (ms) => new Promise((r) => setTimeout(r, ms)), now: Date.now, say });
  } catch (e) {
    if (e instanceof InstallError) {
      say(`install: ${e.message}`);
      return 1;
    }
    throw e;
  }
  if (values['keep-running']) {
    say('installed; staying until SIGTERM');
    await new Promise<void>((resolve) => {
      const alive = setInterval(() => {}, 1 << 30); // keeps the event loop alive
      const stop = () => {
        clearInterval(alive);
        resolve();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
  }
  return 0;
}

export async function cmdUninstall(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'bin-dir': { type: 'string' }, 'conf-dir': { type: 'string' }, 'conf-name': { type: 'string' }, 'state-dir': { type: 'string' },
      'agent-socket': { type: 'string' }, 'route-protocol': { type: 'string' }, 'purge-state': { type: 'boolean' },
      force: { type: 'boolean' }, 'dry-run': { type: 'boolean' }, help: { type: 'boolean' },
    },
  });
  if (values.help) return process.stdout.write(UNINSTALL_HELP), 0;
  const proto = Number(values['route-protocol'] ?? AGENT_DEFAULTS.routeProtocol);
  if (!Number.isInteger(proto) || proto < 1 || proto > 255) throw new InstallError('--route-protocol must be 1..255');
  try {
    const report = await uninstall({
      binDir: values['bin-dir'] ?? BIN_DIR,
      confDir: values['conf-dir'] ?? CONF_DIR,
      confName: values['conf-name'] ?? CONFLIST_NAME,
      binName: 'testcni',
      stateDir: values['state-dir'] ?? DEFAULTS.stateDir,
      routeProtocol: proto,
      agentSocket: values['agent-socket'] ?? null,
      purgeState: values['purge-state'] ?? false,
      force: values.force ?? false,
      dryRun: values['dry-run'] ?? false,
    }, { runner: new ProcessRunner(), ip: findTool('ip'), agentStatus, say });
    for (const l of report.removed) process.stdout.write(`removed: ${l}\n`.replace('removed: would ', 'would: '));
    for (const l of report.kept) process.stdout.write(`kept: ${l}\n`);
    for (const l of report.failed) process.stdout.write(`FAILED: ${l}\n`);
    if (report.removed.length + report.kept.length + report.failed.length === 0) process.stdout.write('nothing of testcni found\n');
    return report.failed.length > 0 ? 1 : 0;
  } catch (e) {
    if (e instanceof UninstallRefused) {
      say(`uninstall refused: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
